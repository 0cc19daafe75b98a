// The last stage of an upgrade request (WebSocket and others): the request goes upstream with
// its Upgrade header; once the upstream answers 101 the two sockets are piped both ways. An
// upstream that answers without upgrading has its response passed on; local replies are written
// to the raw socket (SocketResponse), which then closes. The upgrade goes through the pool the
// cluster manager picks for it (undici), and counts as a request in flight (the endpoint's
// `active` for LEAST_REQUEST, the cluster's circuit breakers) until the tunnel closes.

import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { splitHostPort } from '../config/names.js';
import { overflows } from './cluster-manager.js';
import type { ProxyDeps } from './deps.js';
import type { DownstreamResponse, Exchange, OutgoingHeaders, UpgradeContext } from './exchange.js';
import type { LocalOutcome } from './local-reply.js';
import { localReply } from './respond.js';
import { MAX_TIMER_MS } from './timers.js';
import { failureOutcome } from './upstream-failure.js';
import { responseHeaders } from './upstream-headers.js';
import type { PoolHandler, RawHeaders, UpstreamFailure, UpstreamPool } from './upstream-pool.js';
import { tlsUnusable } from './upstream-tls.js';

/** The last stage for an upgrade request: `headers`/`path` are the upstream request as built. */
export function tunnel(
  x: Exchange,
  deps: ProxyDeps,
  up: { method: string; path: string; headers: Record<string, string | string[]> },
  passthrough: boolean,
): void {
  const ctx = x.upgrade as UpgradeContext;
  const sock = ctx.sock;
  const res = x.res as SocketResponse;
  const m = deps.manager;
  const c = x.cluster;
  let pool: UpstreamPool;
  let held: (() => void) | undefined;
  // A TLS cluster whose material is not ready answers as Envoy's warming cluster: no connection.
  if (c !== undefined && tlsUnusable(c.config.tls)) return localReply(x, 'no_healthy_upstream', deps);
  // A TLS cluster's SNI comes from the Host the upgrade goes out with.
  const authority = String(up.headers.host ?? '');
  if (passthrough || c?.config.discovery === 'original_dst') {
    const { host, port } = splitHostPort(x.authority);
    if (!host) return localReply(x, 'no_healthy_upstream', deps);
    pool = m.passthroughPool(host, port ?? 80, c?.config, authority);
    x.upstreamHost = `${host}:${port ?? 80}`;
  } else {
    if (!c) return localReply(x, 'no_cluster', deps);
    const ep = c.lb.pick({ hashKey: x.hashKey });
    if (!ep) return localReply(x, 'no_healthy_upstream', deps);
    // The cluster's breakers trip for upgrades as for any request (Envoy: 503 UO).
    if (c.limited && overflows(c)) {
      m.overflows.requests++;
      return localReply(x, 'overflow', deps);
    }
    pool = m.poolFor(c.config, ep, 'upgrade', authority);
    x.endpoint = ep;
    x.upstreamHost = ep.key;
    // In flight until the exchange fails, a response that is not an upgrade completes, or the
    // tunnel closes.
    ep.active++;
    c.circuit.active++;
    held = () => {
      held = undefined;
      ep.active--;
      c.circuit.active--;
    };
  }
  const release = () => held?.();
  // `settled`: the upstream answered (101 or another response) or the exchange failed. The route
  // timeout runs until the tunnel opens or a response that is not an upgrade is complete.
  let abort: ((err?: Error) => void) | undefined;
  let settled = false;
  let timer: NodeJS.Timeout | undefined;
  const stopTimer = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
  x.onAbort = () => {
    stopTimer();
    settled = true;
    abort?.();
  };
  const fail = (outcome: LocalOutcome) => {
    stopTimer();
    const started = settled;
    settled = true; // before abort: its onError must not answer a second time
    abort?.();
    if (!started) localReply(x, outcome, deps);
    else if (!res.writableEnded) res.destroy(); // a response already started: cut, never short
  };
  const timeoutMs = x.route?.timeoutMs ?? 0;
  if (timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)
    timer = setTimeout(() => {
      timer = undefined;
      x.flag('UT');
      fail('timeout');
    }, timeoutMs);
  x.upstreamStart = deps.now();
  const answered = (status: number) => {
    settled = true;
    x.responseCode = status;
    x.details = 'via_upstream';
    x.upstreamServiceTime = Math.round(deps.now() - x.upstreamStart);
  };
  const upgrade = String(x.req.headers.upgrade ?? 'websocket');
  const handler: PoolHandler = {
    onConnect(a: (err?: Error) => void) {
      abort = a;
      if (settled) a();
    },
    // An upstream that does not upgrade: its response goes to the client like any response.
    onHeaders(status: number, raw: RawHeaders) {
      if (settled) return false;
      answered(status);
      res.writeHead(status, responseHeaders(raw, x, deps.draining));
      return true;
    },
    onData(chunk: Buffer) {
      x.bytesSent += chunk.length;
      return res.write(chunk);
    },
    onComplete() {
      release();
      if (!settled) return fail('connection_termination');
      stopTimer();
      res.end();
    },
    onUpgrade(status: number, raw: RawHeaders, upstream: Socket) {
      upstream.once('close', release);
      if (settled) return void upstream.destroy();
      stopTimer();
      answered(status);
      let out = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Switching Protocols'}\r\n`;
      const r = raw;
      for (let i = 0; i < r.length; i += 2) out += `${String(r[i])}: ${String(r[i + 1])}\r\n`;
      res.upgraded();
      sock.write(`${out}\r\n`);
      if (ctx.head.length > 0) upstream.write(ctx.head);
      upstream.on('error', () => sock.destroy());
      upstream.on('close', () => sock.destroy());
      sock.on('close', () => upstream.destroy());
      upstream.pipe(sock);
      sock.pipe(upstream);
    },
    onError(err: UpstreamFailure) {
      release();
      if (settled && !res.headersSent) return; // aborted: the client left or the route timed out
      fail(failureOutcome(x, err));
    },
  };
  pool.dispatch({ method: up.method, path: up.path, headers: up.headers, body: null, upgrade }, handler);
}

/**
 * A response written straight to an upgrade request's socket (node:http gives no ServerResponse
 * for them). Every response closes the connection, so a body without a length is close-delimited.
 */
export class SocketResponse implements DownstreamResponse {
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = false;
  private extra: [string, string][] = [];
  private closeListener: (() => void) | undefined;

  constructor(private readonly sock: Socket) {
    sock.once('close', () => {
      this.destroyed = true;
      const fn = this.closeListener;
      this.closeListener = undefined;
      fn?.call(this);
    });
  }

  setHeader(name: string, value: string): this {
    this.extra.push([name.toLowerCase(), value]);
    return this;
  }

  writeHead(status: number, headers?: OutgoingHeaders): this {
    if (this.headersSent) return this;
    this.headersSent = true;
    let h = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    const all: [string, string | string[] | number][] = this.extra.filter(
      ([k]) => headers?.[k] === undefined,
    );
    if (headers) for (const k in headers) if (headers[k] !== undefined) all.push([k, headers[k] as string]);
    for (const [k, v] of all) {
      const lk = k.toLowerCase();
      if (lk === 'connection' || lk === 'transfer-encoding' || lk === 'keep-alive') continue;
      for (const one of Array.isArray(v) ? v : [v]) {
        const s = String(one);
        if (/[\r\n\0]/.test(s)) continue; // never split the head
        h += `${k}: ${s}\r\n`;
      }
    }
    this.sock.write(`${h}connection: close\r\n\r\n`);
    return this;
  }

  write(chunk: Buffer): boolean {
    if (this.destroyed || this.writableEnded) return false;
    if (!this.headersSent) this.writeHead(200);
    return this.sock.write(chunk);
  }

  end(chunk?: Buffer): this {
    if (this.writableEnded) return this;
    if (!this.headersSent) this.writeHead(200);
    if (chunk !== undefined && chunk.length > 0 && !this.destroyed) this.sock.write(chunk);
    this.writableEnded = true;
    this.writableFinished = true;
    this.sock.end();
    this.sock.once('finish', () => this.sock.destroy());
    return this;
  }

  destroy(_err?: Error): this {
    this.sock.destroy();
    return this;
  }

  on(event: 'close', fn: () => void): this {
    if (event === 'close') this.closeListener = fn;
    return this;
  }

  once(event: 'drain', fn: () => void): this {
    if (event === 'drain') this.sock.once('drain', fn);
    return this;
  }

  /** The upstream answered 101: the exchange is complete, the socket now carries the tunnel. */
  upgraded(): void {
    this.headersSent = true;
    this.writableEnded = true;
    this.writableFinished = true;
  }
}
