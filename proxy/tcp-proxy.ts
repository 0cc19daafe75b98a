// TCP proxying for `tcp` filter chains (a Gateway TCP server, or a TLS server terminated first)
// and `tls_passthrough` chains (the still-encrypted connection, chosen by SNI): the destination is
// picked once per connection from the chain's weighted route, an endpoint by the cluster's load
// balancer, and bytes are relayed both ways (Envoy's tcp_proxy).
//
// As Envoy's tcp_proxy with Istio's settings: one connect attempt (max_connect_attempts 1), so a
// failed connect closes the downstream with no bytes and flags `UF,URX`; the cluster's
// `tcp.maxConnections` is the same cluster-wide budget the HTTP pools open connections from, and a
// connection beyond it is closed at once (`UO`, no upstream attempt); a FIN from either side is
// passed on as a FIN and the other direction keeps flowing (half-close), the connection ends when
// both directions have ended or on an error; the idle timeout (DestinationRule `tcp.idleTimeout`
// of the route's first destination, default 1 h, `0s` off) counts bytes in either direction.
//
// Per connection: one session object, two sockets, their listeners and at most two timers (the
// connect timeout, then the max connection duration when one is set). Idle time is Node's own
// socket timeout on the downstream socket: every byte relayed is either read from it or written to
// it, and both refresh that timer. Nothing is allocated per chunk.

import { connect, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type {
  Listener,
  ListenerKind,
  TcpFilterChain,
  TlsPassthroughFilterChain,
} from '../config/snapshot.js';
import type { ClusterRuntime } from './cluster-manager.js';
import type { ProxyDeps, Runtime } from './deps.js';
import type { Endpoint } from './lb/types.js';
import { connectFailure } from './local-reply.js';
import { MAX_TIMER_MS } from './timers.js';
import { originates, tlsUnusable, upstreamTlsOptions } from './upstream-tls.js';

export interface TcpProxyOptions {
  readonly deps: ProxyDeps;
  /** The runtime now (a reload swaps it; a connection reads it once, at its start). */
  runtime(): Runtime | undefined;
}

/**
 * What the worker's observer is told about proxied connections (StatsObserver implements it; the
 * methods are optional so that a plain RequestObserver is enough for tests that ignore TCP).
 */
export interface TcpObserver {
  /** The upstream connection is established. */
  onTcpOpen?(c: TcpSession): void;
  /** The connection is over (both sockets closed), whatever happened; called once. */
  onTcpClose?(c: TcpSession): void;
}

/** Envoy's default for the tcp_proxy idle timeout (Istio leaves it at 1 h). */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000;

const NO_FLAGS: readonly string[] = Object.freeze([]);

/** One proxied connection: what the metrics and the access log read of it once it is over. */
export class TcpSession {
  /** performance.now() (deps.now) at accept. */
  readonly start: number;
  readonly startTime = new Date();
  readonly listener: { readonly kind: ListenerKind };
  /** The route's destination picked for this connection. */
  destination: { readonly host: string; readonly subset: string; readonly cluster: string } | undefined;
  cluster: ClusterRuntime | undefined;
  endpoint: Endpoint | undefined;
  /** Envoy response flags, in Envoy's order (`UF,URX`). */
  flags: readonly string[] = NO_FLAGS;
  /** %UPSTREAM_TRANSPORT_FAILURE_REASON% of a failed connect (`delayed connect error: ...`). */
  transportFailure: string | undefined;
  /** Bytes read from the downstream (the ClientHello of a passthrough connection included). */
  bytesReceived = 0;
  /** Bytes written to the downstream. */
  bytesSent = 0;
  readonly responseCode = 0;
  /** The requested server name (SNI) of a TLS connection. */
  readonly sni: string | undefined;
  readonly downstreamLocalAddress: string | undefined;
  readonly downstreamLocalPort: number | undefined;
  readonly downstreamRemoteAddress: string | undefined;
  readonly downstreamRemotePort: number | undefined;
  upstreamLocalAddress: string | undefined;
  upstreamLocalPort: number | undefined;
  /** The upstream connection was established (the observer was told `onTcpOpen`). */
  opened = false;

  constructor(now: number, listener: Listener, down: Socket, sni: string | undefined) {
    this.start = now;
    this.listener = listener;
    this.sni = sni;
    this.downstreamLocalAddress = down.localAddress;
    this.downstreamLocalPort = down.localPort;
    this.downstreamRemoteAddress = down.remoteAddress;
    this.downstreamRemotePort = down.remotePort;
  }

  flag(f: string): void {
    this.flags = this.flags.length === 0 ? [f] : [...this.flags, f];
  }

  get flagString(): string {
    return this.flags.length === 0 ? '-' : this.flags.join(',');
  }

  /** `address:port` of the upstream host, `-` before one was picked. */
  get upstreamHost(): string {
    return this.endpoint?.key ?? '';
  }

  get clusterName(): string {
    return this.destination?.cluster ?? '';
  }
}

/** A weighted pick over the route's destinations (zero weights were dropped at compile time). */
export function pickL4Destination<D extends { readonly weight: number }>(
  destinations: readonly D[],
  totalWeight: number,
  random: () => number,
): D | undefined {
  if (destinations.length <= 1) return destinations[0];
  let r = random() * totalWeight;
  for (const d of destinations) {
    r -= d.weight;
    if (r < 0) return d;
  }
  return destinations[destinations.length - 1];
}

function sourceIp(sock: Socket): string {
  const a = sock.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export class TcpProxy {
  /** Connections being proxied (drain cuts them). */
  private readonly live = new Set<Relay>();

  constructor(readonly opts: TcpProxyOptions) {}

  /** Connections open now (tests, gauges). */
  get active(): number {
    return this.live.size;
  }

  /**
   * Proxy one downstream connection. `head`: bytes already read from it (for passthrough, the
   * ClientHello), sent upstream first and in order. `sni`: the requested server name, if any.
   */
  serve(
    listener: Listener,
    chain: TcpFilterChain | TlsPassthroughFilterChain,
    down: Socket,
    head: Buffer,
    sni: string | undefined,
  ): void {
    if (down.destroyed) return;
    // Hold what arrives until the upstream is connected; never lose an error event meanwhile.
    down.pause();
    down.allowHalfOpen = true;
    const deps = this.opts.deps;
    const s = new TcpSession(deps.now(), listener, down, sni);
    const relay = new Relay(this, s, down, head);
    this.live.add(relay);
    const rt = this.opts.runtime();
    const route = chain.route;
    const d = pickL4Destination(route.destinations, route.totalWeight, deps.random);
    if (d) s.destination = d;
    const c = d ? rt?.clusters.get(d.cluster) : undefined;
    if (!c) return relay.refuse('NC'); // Envoy's NoClusterFound
    s.cluster = c;
    const first = route.destinations[0];
    // Istio: the idle timeout is a property of the listener, set by the first route's DestinationRule.
    const idleMs =
      (first && first !== d ? rt?.clusters.get(first.cluster) : c)?.config.connectionPool.tcpIdleTimeoutMs ??
      DEFAULT_TCP_IDLE_TIMEOUT_MS;
    // Upstream TLS whose secret is not usable: Envoy's cluster never warms (no attempt).
    if (tlsUnusable(c.config.tls)) return relay.refuse('UH');
    const hashKey = c.config.hashPolicy?.kind === 'source_ip' ? sourceIp(down) : undefined;
    const ep = c.lb.pick({ hashKey });
    if (!ep) return relay.refuse('UH');
    if (!c.circuit.connections.tryAcquire()) return relay.refuse('UO');
    s.endpoint = ep;
    relay.connect(c, ep, idleMs);
  }

  /** Drain: open connections are cut when the drain period ends (TCP has no drain protocol). */
  close(): void {
    for (const r of this.live) r.destroy();
  }

  /** @internal */
  finished(r: Relay): void {
    this.live.delete(r);
    const obs = this.opts.deps.observer as Partial<TcpObserver>;
    obs.onTcpClose?.(r.s);
  }

  /** @internal */
  opened(r: Relay): void {
    const obs = this.opts.deps.observer as Partial<TcpObserver>;
    obs.onTcpOpen?.(r.s);
  }
}

/** Both sockets of one proxied connection and the rules that tie them. */
class Relay {
  private up: Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The cluster budget slot and the endpoint's `active` this connection holds, until released. */
  private held: { c: ClusterRuntime; ep: Endpoint } | undefined;
  private downClosed = false;
  private upClosed = true;
  private done = false;

  constructor(
    private readonly proxy: TcpProxy,
    readonly s: TcpSession,
    private readonly down: Socket,
    private readonly head: Buffer,
  ) {
    down.on('error', noop); // 'close' follows; an RST from the client is not an error of ours
    down.once('close', () => {
      this.downClosed = true;
      // The client went away: nothing more can reach it. After a clean end of both directions
      // the upstream socket is ending too; let it flush what it still has.
      const up = this.up;
      if (up && !(up.readableEnded && up.writableEnded)) up.destroy();
      this.settle();
    });
  }

  /** Close the downstream at once, with no bytes, flagged. */
  refuse(flag: string): void {
    this.s.flag(flag);
    this.down.destroy();
  }

  connect(c: ClusterRuntime, ep: Endpoint, idleMs: number): void {
    const cp = c.config.connectionPool;
    ep.active++;
    this.held = { c, ep };
    const addr = ep.address;
    const tls = c.config.tls;
    // DestinationRule tls: originate. No request authority here, so the SNI and the name checked
    // are the DR's `sni`/SANs, else the service host (a wildcard host: the chain only).
    const secure = originates(tls)
      ? upstreamTlsOptions(tls, c.config.host.startsWith('*') ? '' : c.config.host, [])
      : undefined;
    const up: Socket = addr.startsWith('unix://')
      ? secure
        ? tlsConnect({ path: addr.slice('unix://'.length), ...halfOpen, ...secure })
        : connect({ path: addr.slice('unix://'.length), allowHalfOpen: true })
      : secure
        ? tlsConnect({ host: addr, port: ep.port, ...halfOpen, ...secure })
        : connect({ host: addr, port: ep.port, allowHalfOpen: true, noDelay: true });
    this.up = up;
    this.upClosed = false;
    up.on('error', (err: Error & { code?: string }) => {
      if (!this.s.opened) this.connectFailed(err);
    });
    up.once('close', () => {
      this.upClosed = true;
      this.release();
      if (this.s.opened) {
        // After an upstream error, what is queued for the client still goes out, then it closes.
        if (!this.downClosed) this.down.destroySoon();
      } else this.down.destroy();
      this.settle();
    });
    const connectMs = cp.connectTimeoutMs;
    if (connectMs > 0 && connectMs <= MAX_TIMER_MS)
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.connectFailed({ name: 'Error', message: 'connect timeout', code: 'ETIMEDOUT' });
        up.destroy();
      }, connectMs);
    up.once(secure ? 'secureConnect' : 'connect', () => this.connected(c, up, idleMs));
  }

  private connectFailed(err: Error & { code?: string }): void {
    if (this.s.flags.includes('UF')) return;
    this.clearTimer();
    const s = this.s;
    s.flag('UF');
    s.flag('URX'); // max_connect_attempts is 1: the only attempt failed
    s.transportFailure = connectFailure(err).transport;
    const held = this.held;
    const od = held?.c.config.outlierDetection;
    if (held && od) this.proxy.opts.deps.manager.outlier.record(od, held.c.endpoints, held.ep, 'local');
    this.down.destroy();
  }

  private connected(c: ClusterRuntime, up: Socket, idleMs: number): void {
    this.clearTimer();
    const s = this.s;
    const down = this.down;
    if (this.downClosed) return void up.destroy();
    s.opened = true;
    s.upstreamLocalAddress = up.localAddress;
    s.upstreamLocalPort = up.localPort;
    const cp = c.config.connectionPool;
    const od = c.config.outlierDetection;
    if (od && this.held) this.proxy.opts.deps.manager.outlier.record(od, c.endpoints, this.held.ep, 200);
    if (cp.tcpKeepaliveMs > 0) up.setKeepAlive(true, cp.tcpKeepaliveMs);
    this.proxy.opened(this);
    if (idleMs > 0 && idleMs <= MAX_TIMER_MS) {
      down.setTimeout(idleMs);
      down.once('timeout', () => this.destroy());
    }
    const maxMs = cp.maxConnectionDurationMs;
    if (maxMs > 0 && maxMs <= MAX_TIMER_MS)
      this.timer = setTimeout(() => {
        this.timer = undefined;
        s.flag('DT');
        this.destroy();
      }, maxMs);
    if (this.head.length > 0) {
      s.bytesReceived += this.head.length;
      up.write(this.head);
    }
    // Relay with backpressure, counting bytes; a FIN becomes a FIN on the other side.
    down.on('data', (b: Buffer) => {
      s.bytesReceived += b.length;
      if (!up.write(b)) down.pause();
    });
    up.on('drain', () => down.resume());
    up.on('data', (b: Buffer) => {
      s.bytesSent += b.length;
      if (!down.write(b)) up.pause();
    });
    down.on('drain', () => up.resume());
    // A FIN that came with the first bytes may have ended the (paused) downstream already.
    if (down.readableEnded) up.end();
    else down.once('end', () => up.end());
    up.once('end', () => down.end());
    down.resume();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Give back the cluster budget slot and the endpoint's count (once). */
  private release(): void {
    const h = this.held;
    if (!h) return;
    this.held = undefined;
    h.ep.active--;
    h.c.circuit.connections.release();
  }

  /** Cut both sides now (idle timeout, max duration, drain). */
  destroy(): void {
    this.down.destroy();
    this.up?.destroy();
  }

  /** Both sockets closed: the connection is over. */
  private settle(): void {
    if (this.done || !this.downClosed || !this.upClosed) return;
    this.done = true;
    this.clearTimer();
    this.release();
    this.proxy.finished(this);
  }
}

function noop(): void {}

/** tls.connect passes these to its socket; @types/node does not list them. */
const halfOpen = { allowHalfOpen: true, noDelay: true } as ConnectionOptions;
