// The data-plane worker: HTTP listeners for the snapshot's listeners, the request path, and a
// snapshot swapped by reference. A reload opens new ports, closes removed ones (after draining)
// and leaves the rest listening; keep-alive connections see the new config on their next request.
// Every accepted connection goes through the listener's dispatcher (listener-dispatch.ts) first,
// which picks a filter chain by its first bytes; only plaintext HTTP/1.1 chains are served yet.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type {
  FilterChain,
  HttpsFilterChain,
  Listener,
  Snapshot,
  TcpFilterChain,
} from '../config/snapshot.js';
import { ClusterManager } from './cluster-manager.js';
import { parseDnsServers } from './dns-resolver.js';
import { FastServer } from './downstream.js';
import type { DownstreamRequest, DownstreamResponse, Exchange } from './exchange.js';
import { ConnectionDispatcher, type FirstBytes, SERVED } from './listener-dispatch.js';
import { handleRequest, type ProxyDeps, type RequestObserver, type Runtime } from './request-path.js';
import { TcpProxy } from './tcp-proxy.js';
import { ChainTls, HANDSHAKE_TIMEOUT_MS, type RefusalKind, type TerminatedFacts } from './tls-server.js';
import { handleUpgrade } from './upgrade.js';

export interface WorkerOptions {
  random?: () => number;
  observer?: RequestObserver;
  maxBufferedBody?: number;
  /** Per-worker budget for buffered request bodies (default 64 MiB, COURIER_MAX_BUFFERED_BYTES). */
  maxBufferedTotal?: number;
  /** Called when a listener fails to bind (port in use, ...). */
  onListenError?: (l: Listener, err: Error) => void;
  /**
   * Downstream connections each listener of this worker holds at most (Node's
   * `server.maxConnections`); connections beyond it are closed as soon as they are accepted.
   */
  maxConnections?: number;
  /** A listening socket failed after binding (accept errors); it keeps listening. */
  onServerError?: (l: Listener, err: Error) => void;
  /** DNS servers for `dns` clusters (`ip[:port]`); default env COURIER_DNS_SERVERS, else the system's. */
  dnsServers?: string[];
  /**
   * Serve plain bodyless HTTP/1.1 requests on the raw socket (proxy/downstream.ts); default on,
   * off with COURIER_FAST_DOWNSTREAM=0. Everything else always goes through node:http.
   */
  fastDownstream?: boolean;
}

interface ServingListener {
  key: string;
  server: Server;
  fast: FastServer | undefined;
  dispatcher: ConnectionDispatcher;
  sockets: Set<Socket>;
  bound: boolean;
  /** TLS termination of each terminating chain, by chain name (contexts survive reloads). */
  tls: Map<string, ChainTls>;
}

/** A connection whose TLS was terminated here: its facts, and the chain whose routes serve it. */
interface TerminatedSocket extends TLSSocket {
  tls?: TerminatedFacts;
  courierChain?: string;
}

const KEEP_ALIVE_TIMEOUT_MS = 65_000;
const HEADERS_TIMEOUT_MS = 60_000;

/** ALPN offered by terminating chains: HTTP/1.1 only while HTTP/2 is not served. */
const ALPN = Object.freeze(['http/1.1']);

/** Does this worker serve any chain of the listener? Others are not listened on at all. */
export function servesListener(l: Listener): boolean {
  return l.filterChains.some((c) => SERVED.transports.has(c.transport));
}

const NOOP_OBSERVER: RequestObserver = { onComplete: (_x: Exchange) => {} };

/** Default per-listener, per-worker downstream connection limit. */
export const DEFAULT_MAX_CONNECTIONS = 10_000;

export class ProxyWorker {
  private runtime: Runtime | undefined;
  private listenersByKey = new Map<string, Listener>();
  private readonly serving = new Map<string, ServingListener>();
  readonly deps: ProxyDeps;
  readonly manager: ClusterManager;
  /**
   * Downstream connections closed at accept because a listener was at `maxConnections`; requests
   * on the fast path and its handoffs; connections closed because their first bytes matched no
   * filter chain served (Envoy's no_filter_chain_match), by what those bytes were.
   */
  readonly counters = {
    connectionsOverflowed: 0,
    fastRequests: 0,
    handoffs: 0,
    noFilterChain: { tls: 0, h2c: 0, http1: 0, tcp: 0 } satisfies Record<Exclude<FirstBytes, 'more'>, number>,
    /** TLS connections refused by a terminating chain, by why; handshakes completed. */
    tlsRefused: { handshake: 0, client_certificate: 0, credential: 0 } satisfies Record<RefusalKind, number>,
    tlsHandshakes: 0,
  };
  readonly tcp: TcpProxy;
  /** A terminating chain refused a connection (rate-limited logging is the caller's). */
  onTlsRefused: ((listener: Listener, chain: string, reason: string) => void) | undefined;
  /** Per listener key: the view of each https chain (the listener with that chain's routes). */
  private chainViews = new Map<string, Map<string, Listener>>();

  constructor(private readonly opts: WorkerOptions = {}) {
    const random = opts.random ?? Math.random;
    const servers = opts.dnsServers ?? parseDnsServers(process.env.COURIER_DNS_SERVERS);
    this.manager = new ClusterManager({ random, dns: servers ? { servers } : {} });
    this.deps = {
      manager: this.manager,
      random,
      now: () => performance.now(),
      observer: opts.observer ?? NOOP_OBSERVER,
      maxBufferedBody: opts.maxBufferedBody ?? 1024 * 1024,
      maxBufferedTotal:
        opts.maxBufferedTotal ?? (Number(process.env.COURIER_MAX_BUFFERED_BYTES) || 64 * 1024 * 1024),
      bufferedBytes: 0,
      draining: false,
    };
    this.tcp = new TcpProxy({ deps: this.deps, runtime: () => this.runtime });
  }

  get snapshot(): Snapshot | undefined {
    return this.runtime?.snapshot;
  }

  /** Swap in a new snapshot and make the listening sockets follow it. Resolves once bound. */
  async apply(snapshot: Snapshot): Promise<void> {
    const clusters = this.manager.build(snapshot);
    const byKey = new Map<string, Listener>();
    for (const l of snapshot.listeners) if (servesListener(l)) byKey.set(listenerKey(l), l);
    this.runtime = { snapshot, clusters };
    this.listenersByKey = byKey;
    this.chainViews = new Map();
    for (const [key, l] of byKey) {
      const views = new Map<string, Listener>();
      for (const c of l.filterChains)
        if (c.transport === 'https') views.set(c.name, Object.freeze({ ...l, routes: c.routes }));
      if (views.size > 0) this.chainViews.set(key, views);
      const s = this.serving.get(key);
      if (s) this.syncTls(s, l);
    }
    const opening: Promise<void>[] = [];
    for (const [key, l] of byKey) if (!this.serving.has(key)) opening.push(this.open(key, l));
    for (const [key, s] of this.serving) if (!byKey.has(key)) this.closeListener(s, 5000);
    await Promise.all(opening);
  }

  /** Every listener of the current snapshot is bound. */
  get allBound(): boolean {
    for (const key of this.listenersByKey.keys()) if (!this.serving.get(key)?.bound) return false;
    return true;
  }

  boundPorts(): number[] {
    return [...this.serving.values()]
      .filter((s) => s.bound)
      .map((s) => (s.server.address() as { port: number }).port);
  }

  private open(key: string, l: Listener): Promise<void> {
    const server = createServer({
      maxHeaderSize: 60 * 1024,
      requireHostHeader: true,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: 0,
    });
    server.maxConnections = this.opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
    const { fast, dispatcher } = this.dispatch(key, l, server);
    const s: ServingListener = {
      key,
      server,
      fast,
      dispatcher,
      sockets: new Set(),
      bound: false,
      tls: new Map(),
    };
    this.serving.set(key, s);
    this.syncTls(s, l);
    server.on('drop', () => this.counters.connectionsOverflowed++);
    server.prependListener('connection', (sock: Socket) => {
      s.sockets.add(sock);
      sock.once('close', () => s.sockets.delete(sock));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(key, req, res));
    server.on('upgrade', (req: IncomingMessage, sock: Socket, head: Buffer) => {
      const rt = this.runtime;
      const listener = this.listenersByKey.get(key);
      if (!rt || !listener) return sock.destroy();
      try {
        handleUpgrade(rt, listener, req, sock, head, this.deps);
      } catch (err) {
        process.stderr.write(`courier: upgrade path error: ${(err as Error).stack ?? err}\n`);
        sock.destroy();
      }
    });
    server.on('clientError', (err: Error & { code?: string }, sock: Socket) => clientError(err, sock));
    return new Promise((resolve) => {
      const onBindError = (err: Error) => {
        this.serving.delete(key);
        this.opts.onListenError?.(l, err);
        resolve();
      };
      server.once('error', onBindError);
      server.listen({ port: l.port, host: l.address === '0.0.0.0' ? undefined : l.address }, () => {
        s.bound = true;
        // From here an 'error' is an accept failure (EMFILE, ...): the listener stays up.
        server.off('error', onBindError);
        server.on('error', (err) => this.opts.onServerError?.(l, err));
        resolve();
      });
    });
  }

  private get fastDownstream(): boolean {
    return this.opts.fastDownstream ?? process.env.COURIER_FAST_DOWNSTREAM !== '0';
  }

  /**
   * Put the dispatcher in front of node:http's own connection handling. The listening socket
   * stays node:http's Server (a net.Server): its 'listening' starts the connection tracking that
   * enforces headersTimeout, and close()/closeIdleConnections() keep working for what it serves.
   * A plaintext HTTP/1 connection starts on the fast path (handed to node:http's listener when
   * the fast path declines a request), or goes straight to node:http when the fast path is off.
   */
  private dispatch(
    key: string,
    l: Listener,
    server: Server,
  ): { fast?: FastServer; dispatcher: ConnectionDispatcher } {
    const nodeConnection = server.listeners('connection')[0] as (this: Server, sock: Socket) => void;
    server.removeListener('connection', nodeConnection);
    const fast = this.fastDownstream
      ? new FastServer({
          onRequest: (req, res) => this.onRequest(key, req, res),
          handoff: (sock) => nodeConnection.call(server, sock),
          keepAliveTimeoutMs: KEEP_ALIVE_TIMEOUT_MS,
          counters: this.counters,
        })
      : undefined;
    const dispatcher = new ConnectionDispatcher({
      listener: () => this.listenersByKey.get(key) ?? l,
      served: SERVED,
      serve: (chain, sock, head, hello) => {
        switch (chain.transport) {
          case 'http':
            if (fast) return fast.accept(sock, head);
            nodeConnection.call(server, sock);
            sock.emit('data', head); // node:http's parser reads it as the connection's first bytes
            return;
          case 'tls_passthrough':
            return this.tcp.serve(this.listenersByKey.get(key) ?? l, chain, sock, head, hello?.serverName);
          case 'tcp':
            if (!chain.tls)
              return this.tcp.serve(this.listenersByKey.get(key) ?? l, chain, sock, head, undefined);
            return this.terminate(key, chain, sock, head);
          case 'https':
            return this.terminate(key, chain, sock, head);
        }
      },
      noFilterChain: (first) => {
        if (first !== 'more') this.counters.noFilterChain[first]++;
      },
      // A connection that sends nothing is closed as before the dispatcher: by the fast path's
      // idle sweep (keep-alive timeout, silently), or by node:http's headersTimeout (its answer).
      firstBytesTimeoutMs: l.filterChains.some((c) => c.match.transportProtocol === 'tls')
        ? HANDSHAKE_TIMEOUT_MS // Envoy's listener filter timeout on TLS-inspecting ports
        : fast
          ? KEEP_ALIVE_TIMEOUT_MS
          : HEADERS_TIMEOUT_MS,
      onTimeout: (sock) => {
        if (fast) sock.destroy();
        else
          server.emit(
            'clientError',
            Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' }),
            sock,
          );
      },
    });
    server.on('connection', (sock: Socket) => dispatcher.accept(sock));
    nodeConnections.set(server, nodeConnection);
    return { ...(fast ? { fast } : {}), dispatcher };
  }

  /** A connection whose TLS ended here: HTTP/1.1 behind an https chain, or a TCP proxy. */
  private serveTerminated(
    key: string,
    chain: HttpsFilterChain | TcpFilterChain,
    sock: TerminatedSocket,
  ): void {
    const s = this.serving.get(key);
    const l = this.listenersByKey.get(key);
    if (!s || !l) return void sock.destroy();
    if (chain.transport === 'tcp') return this.tcp.serve(l, chain, sock, Buffer.alloc(0), sock.tls?.sni);
    if (s.fast) return s.fast.accept(sock);
    nodeConnections.get(s.server)?.call(s.server, sock);
  }

  /** Keep each terminating chain's TLS in step with the listener's config. */
  private syncTls(s: ServingListener, l: Listener): void {
    const live = new Set<string>();
    for (const c of l.filterChains) {
      if (!isTerminating(c)) continue;
      live.add(c.name);
      const existing = s.tls.get(c.name);
      if (existing) {
        existing.update(c.tls);
        continue;
      }
      const name = c.name;
      s.tls.set(
        name,
        new ChainTls({
          tls: c.tls,
          alpn: ALPN,
          onSecure: (sock: TerminatedSocket, facts) => {
            this.counters.tlsHandshakes++;
            sock.tls = facts;
            sock.courierChain = name;
            const now = this.listenersByKey.get(s.key)?.filterChains.find((x) => x.name === name);
            if (!now || !isTerminating(now)) return void sock.destroy(); // the chain went away
            this.serveTerminated(s.key, now, sock);
          },
          onRefused: (kind, reason) => {
            this.counters.tlsRefused[kind]++;
            this.onTlsRefused?.(this.listenersByKey.get(s.key) ?? l, name, reason);
          },
        }),
      );
    }
    for (const [name, t] of s.tls)
      if (!live.has(name)) {
        t.close();
        s.tls.delete(name);
      }
  }

  private terminate(key: string, chain: HttpsFilterChain | TcpFilterChain, sock: Socket, head: Buffer): void {
    const t = this.serving.get(key)?.tls.get(chain.name);
    if (!t) return void sock.destroy();
    t.accept(sock, head);
  }

  private onRequest(key: string, req: DownstreamRequest, res: DownstreamResponse): void {
    const rt = this.runtime;
    const chain = (req.socket as Partial<TerminatedSocket>).courierChain;
    const listener =
      chain === undefined ? this.listenersByKey.get(key) : this.chainViews.get(key)?.get(chain);
    if (!rt || !listener) {
      res.writeHead(503, { 'content-length': '0', connection: 'close' });
      res.end();
      return;
    }
    try {
      handleRequest(rt, listener, req, res, this.deps);
    } catch (err) {
      // A bug, not an outcome: answer 500 and keep serving.
      process.stderr.write(`courier: request path error: ${(err as Error).stack ?? err}\n`);
      if (!res.headersSent) {
        res.writeHead(500, { 'content-length': '0' });
        res.end();
      } else res.destroy();
    }
  }

  private closeListener(s: ServingListener, graceMs: number): Promise<void> {
    this.serving.delete(s.key);
    return new Promise((resolve) => {
      s.server.close(() => resolve());
      s.server.closeIdleConnections();
      s.fast?.closeIdle();
      s.dispatcher.close();
      for (const t of s.tls.values()) t.close();
      const t = setTimeout(() => {
        for (const sock of s.sockets) sock.destroy();
      }, graceMs);
      t.unref();
    });
  }

  /** Stop accepting, tell keep-alive clients to close, wait for in-flight work up to `graceMs`. */
  async drain(graceMs: number): Promise<void> {
    this.deps.draining = true;
    await Promise.all([...this.serving.values()].map((s) => this.closeListener(s, graceMs)));
    this.tcp.close();
    await this.manager.close();
  }
}

/**
 * What a worker binds a socket for: the address, the port and the transports its chains serve
 * (`0.0.0.0:8080/http`). A port whose transports change (HTTP to TLS, say) is closed and bound
 * anew with the server those need; a change of routes or SNI names alone keeps the socket.
 */
export function listenerKey(l: Listener): string {
  const transports = new Set(
    l.filterChains.map((c) => (c.transport === 'tcp' && c.tls ? 'tcp+tls' : c.transport)),
  );
  return `${l.address}:${l.port}/${[...transports].sort().join(',')}`;
}

/** node:http's own connection listener of each listening server (the dispatcher replaced it). */
const nodeConnections = new WeakMap<Server, (this: Server, sock: Socket) => void>();

function isTerminating(c: FilterChain): c is HttpsFilterChain | (TcpFilterChain & { tls: object }) {
  return c.transport === 'https' || (c.transport === 'tcp' && c.tls !== undefined);
}

/** Malformed requests: Envoy-like 400 / 431, never forwarded. */
function clientError(err: Error & { code?: string }, sock: Socket): void {
  // Bytes after a `Connection: close` request: ignored (as Envoy does); the request before them
  // is answered and the connection then closes.
  if (err.code === 'HPE_CLOSED_CONNECTION' && !sock.destroyed) return;
  if (!sock.writable || sock.destroyed) {
    sock.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
  const body = tooLarge ? '' : 'Bad Request';
  sock.end(
    `HTTP/1.1 ${status}\r\ncontent-length: ${body.length}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n${body}`,
  );
}
