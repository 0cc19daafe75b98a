// Upstream I/O: build the upstream request once, then run attempts through the pools the cluster
// manager picks (upstream-pool.ts) with the route's timeout and retry policy, and the one replay
// of an idle-socket race; stream the response back with backpressure.

import type { IncomingMessage } from 'node:http';
import { splitHostPort } from '../config/names.js';
import type { CompiledRoute } from '../config/snapshot.js';
import { type ClusterRuntime, overflows } from './cluster-manager.js';
import type { ProxyDeps, Runtime } from './deps.js';
import type { Exchange } from './exchange.js';
import { hasOps } from './http-util.js';
import type { Endpoint } from './lb/types.js';
import { sendMirrors } from './mirror.js';
import type { AttemptResult } from './outlier-detection.js';
import { localReply } from './respond.js';
import { MAX_TIMER_MS as MAX_TIMER } from './timers.js';
import { tunnel } from './tunnel.js';
import { FAILURE_OUTCOME, type Failure, noteFailure } from './upstream-failure.js';
import {
  buildUpstreamRequest,
  prepareRequestHeaders,
  responseHeaders,
  type UpstreamRequest,
} from './upstream-headers.js';
import type { PoolHandler, RawHeaders, UpstreamFailure, UpstreamPool } from './upstream-pool.js';
import { tlsUnusable } from './upstream-tls.js';

/**
 * The forwarder's timers (route and per-try timeouts, retry backoff, the replay's next tick): a
 * seam, so unit tests run the forwarder on a fake clock (with deps.now) in milliseconds.
 */
export interface ForwarderTimers {
  setTimeout(fn: () => void, ms: number): NodeJS.Timeout;
  clearTimeout(t: NodeJS.Timeout): void;
  setImmediate(fn: () => void): void;
}

export const timers: ForwarderTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (t) => clearTimeout(t),
  setImmediate: (fn) => void setImmediate(fn),
};

/** RFC 9110 §9.2.2: safe to send twice. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/** Entry from the request path: the route, cluster and (optional) hash key are decided. */
export function forward(rt: Runtime, x: Exchange, deps: ProxyDeps, passthrough = false): void {
  prepareRequestHeaders(x);
  const req = buildUpstreamRequest(x);
  if (x.upgrade) return tunnel(x, deps, req, passthrough);
  const hasBody =
    x.req.headers['content-length'] !== undefined
      ? x.req.headers['content-length'] !== '0'
      : x.req.headers['transfer-encoding'] !== undefined;
  const route = x.route;
  const wantsReplay = route !== undefined && (route.retry.numRetries > 0 || route.mirrors.length > 0);
  if (!hasBody) return start(rt, x, deps, req, passthrough, null, false);
  const len = Number(x.req.headers['content-length'] ?? Number.NaN);
  if (
    wantsReplay &&
    Number.isFinite(len) &&
    len <= deps.maxBufferedBody &&
    deps.bufferedBytes + len <= deps.maxBufferedTotal
  ) {
    deps.bufferedBytes += len;
    x.reservedBytes = len;
    const chunks: Buffer[] = [];
    // A request with a body came through node:http (the fast path serves bodyless ones only).
    const stream = x.req as IncomingMessage;
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.once('end', () => {
      const b = Buffer.concat(chunks);
      x.bytesReceived = b.length;
      start(rt, x, deps, req, passthrough, b, false);
    });
    stream.once('error', () => x.res.destroy());
    return;
  }
  // Streamed as is (undici reads the request stream itself); count bytes from its framing.
  x.bytesReceived = Number.isFinite(len) ? len : 0;
  start(rt, x, deps, req, passthrough, null, true);
}

/** Mirrors (for a replayable body) and the first attempt. */
function start(
  rt: Runtime,
  x: Exchange,
  deps: ProxyDeps,
  req: UpstreamRequest,
  passthrough: boolean,
  body: Buffer | null,
  streamed: boolean,
): void {
  req.body = streamed ? (x.req as IncomingMessage) : body;
  req.streamed = streamed;
  const route = x.route;
  if (route && route.mirrors.length > 0 && !streamed) sendMirrors(rt, x, route, req, deps);
  new Forwarder(x, deps, req, passthrough).run();
}

/** Runs attempts for one request. */
class Forwarder {
  private current: Attempt | undefined;
  /** The idle-socket race was replayed (once per request). */
  private resent = false;
  /** The pool of the attempt in flight hands validated string heads (writeRawHead can take them). */
  rawHeads = false;
  private pool: UpstreamPool | undefined;
  private readonly route: CompiledRoute | undefined;

  constructor(
    readonly x: Exchange,
    readonly deps: ProxyDeps,
    readonly req: UpstreamRequest,
    private readonly passthrough: boolean,
  ) {
    this.route = x.route;
  }

  run(): void {
    const x = this.x;
    const timeout = this.route?.timeoutMs ?? 0;
    // Node fires timers over 2^31-1 ms at once; such timeouts are effectively none.
    if (timeout > 0 && timeout <= MAX_TIMER)
      x.routeTimer = timers.setTimeout(() => this.onRouteTimeout(), timeout);
    x.onAbort = () => this.current?.cancel();
    this.attempt();
  }

  private onRouteTimeout(): void {
    this.current?.cancel();
    this.current = undefined;
    this.x.flag('UT');
    if (this.x.res.headersSent) this.x.res.destroy();
    else localReply(this.x, 'timeout', this.deps);
  }

  /** An endpoint and its pool; none (503 UH) when none is healthy or the cluster's TLS is unusable. */
  private pick(): { ep?: Endpoint; pool?: UpstreamPool; host?: string } {
    const x = this.x;
    const cluster = x.cluster;
    const m = this.deps.manager;
    // TLS material not ready: Envoy's cluster waits for its secret, so no connection is tried.
    if (cluster !== undefined && tlsUnusable(cluster.config.tls)) return {};
    // The SNI of a TLS cluster comes from the Host the request goes out with (after rewrites).
    const authority = this.req.headers.host as string;
    if (this.passthrough || cluster?.config.discovery === 'original_dst') {
      const { host, port } = splitHostPort(x.authority);
      if (!host) return {};
      const p = port ?? 80;
      return { pool: m.passthroughPool(host, p, cluster?.config, authority), host: `${host}:${p}` };
    }
    const c = cluster as ClusterRuntime;
    const avoid = this.route?.retry.retryOtherHosts !== false ? x.attempted : undefined;
    const ep = c.lb.pick({ hashKey: x.hashKey, attempted: avoid });
    if (!ep) return {};
    const pool = m.poolFor(c.config, ep, this.req.streamed ? 'streamed' : 'buffered', authority);
    return { ep, pool, host: ep.key };
  }

  attempt(): void {
    const x = this.x;
    if (x.done) return;
    x.attempt++;
    // Hosts tried so far (retries prefer another host); no Set for a first attempt.
    if (x.attempt > 1 && x.endpoint) {
      x.attempted ??= new Set();
      x.attempted.add(x.endpoint);
    }
    const { ep, pool, host } = this.pick();
    if (!pool) return localReply(x, 'no_healthy_upstream', this.deps);
    const c = x.cluster;
    if (ep && c?.limited && overflows(c)) {
      this.deps.manager.overflows.requests++;
      return localReply(x, 'overflow', this.deps);
    }
    this.send(ep, pool, host ?? '-', false);
  }

  /** One dispatch: counted against the endpoint (LEAST_REQUEST) and the cluster's breakers. */
  private send(ep: Endpoint | undefined, pool: UpstreamPool, host: string, fresh: boolean): void {
    const x = this.x;
    const c = x.cluster;
    if (ep && c) {
      ep.active++;
      c.circuit.active++;
      if (x.attempt > 1) c.circuit.retriesActive++;
    }
    x.endpoint = ep;
    x.upstreamHost = host;
    this.pool = pool;
    this.rawHeads = pool.validatedHeads;
    const req = this.req;
    req.headers['x-envoy-attempt-count'] = String(x.attempt);
    req.fresh = fresh;
    const a = new Attempt(this, ep);
    this.current = a;
    const perTry = this.route?.retry.perTryTimeoutMs ?? 0;
    if (perTry > 0 && perTry <= MAX_TIMER && this.route && this.route.timeoutMs !== perTry)
      a.startTimer(perTry);
    x.upstreamStart = this.deps.now();
    pool.dispatch(req, a);
  }

  /**
   * The one replay rule: a reused connection that failed before any response byte (typically a
   * keep-alive socket the upstream closed just as this request went out) did not process the
   * request. Re-send it once, on a fresh connection to the same endpoint, when that is safe
   * (idempotent method, replayable body), outside the route's retry policy (as Go's and curl's
   * clients do): not a retry, no backoff, no URX, the same attempt count.
   */
  replays(a: Attempt, err: UpstreamFailure): boolean {
    const x = this.x;
    if (
      a !== this.current ||
      x.done ||
      this.resent ||
      err.kind !== 'reset' ||
      !err.reused ||
      err.gotBytes ||
      this.req.streamed ||
      !IDEMPOTENT.has(x.method)
    )
      return false;
    this.resent = true;
    this.current = undefined;
    const ep = x.endpoint;
    const pool = this.pool as UpstreamPool;
    const host = x.upstreamHost;
    // Out of the failing pool's callback before dispatching to it again.
    timers.setImmediate(() => {
      if (!x.done) this.send(ep, pool, host, true);
    });
    return true;
  }

  /** A response status arrived: retry it, or let it through. */
  shouldRetryStatus(status: number): boolean {
    const p = this.route?.retry;
    // attempts: 0 is no retry policy at all in Istio: nothing retried, never URX.
    if (!p || p.numRetries === 0 || status < 300) return false;
    const on = p.retryOn;
    const retriable =
      (status >= 500 && on.has('5xx')) ||
      (status >= 502 && status <= 504 && on.has('gateway-error')) ||
      (status === 409 && on.has('retriable-4xx')) ||
      (on.has('retriable-status-codes') && p.retriableStatusCodes.has(status));
    if (!retriable) return false;
    if (!this.canRetry()) {
      this.x.flag('URX');
      return false;
    }
    return true;
  }

  private retriableFailure(f: Failure): boolean {
    const p = this.route?.retry;
    if (!p || p.numRetries === 0) return false;
    const on = p.retryOn;
    if (on.has('5xx') || on.has('gateway-error')) return f !== 'overflow';
    if (f === 'connect')
      return on.has('connect-failure') || on.has('reset') || on.has('reset-before-request');
    if (f === 'reset') return on.has('reset');
    return false;
  }

  private canRetry(): boolean {
    const p = this.route?.retry;
    if (!p || this.x.attempt > p.numRetries || this.req.streamed || this.x.done) return false;
    const c = this.x.cluster;
    if (c && c.circuit.retriesActive >= c.config.connectionPool.maxRetries) {
      // Envoy's retry circuit breaker (upstream_rq_retry_overflow): answer with what we have.
      this.deps.manager.overflows.retries++;
      return false;
    }
    return true;
  }

  /** Schedule the next attempt after Envoy's full-jitter backoff. */
  retry(): void {
    const p = this.route?.retry;
    const base = p?.backoffBaseMs ?? 25;
    const n = this.x.attempt;
    const ceiling = Math.min(base * (2 ** n - 1), base * 10);
    const delay = Math.floor(this.deps.random() * ceiling);
    this.current = undefined;
    this.x.retried = true;
    timers.setTimeout(() => this.attempt(), delay).unref();
  }

  failed(a: Attempt, f: Failure, err?: UpstreamFailure): void {
    if (a !== this.current || this.x.done) return;
    noteFailure(this.x, f, err);
    if (this.retriableFailure(f)) {
      if (this.canRetry()) return this.retry();
      this.x.flag('URX');
    }
    this.current = undefined;
    if (f === 'timeout') this.x.flag('UT');
    if (this.x.res.headersSent) this.x.res.destroy();
    else localReply(this.x, FAILURE_OUTCOME[f], this.deps);
  }

  isCurrent(a: Attempt): boolean {
    return a === this.current;
  }
}

/** One try against one endpoint: the pool handler (raw header pairs, no re-parsing). */
class Attempt implements PoolHandler {
  private abortFn: ((err?: Error) => void) | undefined;
  private cancelled = false;
  private discard = false;
  private timer: NodeJS.Timeout | undefined;
  private resumeFn: (() => void) | undefined;
  private released = false;

  private readonly retry: boolean;

  constructor(
    private readonly f: Forwarder,
    private readonly ep: Endpoint | undefined,
  ) {
    this.retry = f.x.attempt > 1;
  }

  startTimer(ms: number): void {
    this.timer = timers.setTimeout(() => {
      this.timer = undefined;
      if (this.discard) return;
      this.cancel();
      this.outcome('local');
      this.f.failed(this, 'timeout');
    }, ms);
  }

  cancel(): void {
    this.cancelled = true;
    this.release();
    this.abortFn?.();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    if (this.timer) timers.clearTimeout(this.timer);
    if (this.ep) {
      this.ep.active--;
      const c = this.f.x.cluster;
      if (c) {
        c.circuit.active--;
        if (this.retry) c.circuit.retriesActive--;
      }
    }
  }

  /** Outlier detection sees every attempt's result. */
  private outcome(r: AttemptResult): void {
    const c = this.f.x.cluster;
    const od = c?.config.outlierDetection;
    if (od && this.ep && c) this.f.deps.manager.outlier.record(od, c.endpoints, this.ep, r);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    if (this.cancelled) abort();
  }

  onHeaders(status: number, raw: RawHeaders, resume: () => void, _text: string): boolean {
    if (this.cancelled) return true;
    const f = this.f;
    const x = f.x;
    if (status < 200) return true; // 1xx informational: not forwarded
    this.outcome(status);
    if (f.shouldRetryStatus(status)) {
      this.discard = true;
      this.release();
      f.retry();
      return true;
    }
    if (this.timer) {
      timers.clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (x.done || x.res.headersSent) {
      this.cancel();
      return false;
    }
    this.resumeFn = resume;
    x.responseCode = status;
    x.upstreamServiceTime = Math.round(f.deps.now() - x.upstreamStart);
    x.details = 'via_upstream';
    const res = x.res;
    // Common case on the fast paths: no response header operations, so the raw pool's validated
    // pairs go straight into the downstream head, without a header object in between.
    if (
      res.writeRawHead !== undefined &&
      f.rawHeads &&
      !f.deps.draining &&
      x.setCookie === undefined &&
      (x.route === undefined || !hasOps(x.route.headers.response)) &&
      (x.destination === undefined || !hasOps(x.destination.headers.response)) &&
      res.writeRawHead(status, raw as string[], [
        'x-envoy-upstream-service-time',
        String(x.upstreamServiceTime),
      ])
    )
      return true;
    res.writeHead(status, responseHeaders(raw, x, f.deps.draining));
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discard || this.cancelled) return true;
    const res = this.f.x.res;
    this.f.x.bytesSent += chunk.length;
    const ok = res.write(chunk);
    if (!ok && this.resumeFn) {
      res.once('drain', this.resumeFn);
      return false;
    }
    return true;
  }

  onComplete(_trailers: RawHeaders | null): void {
    this.release();
    if (this.discard || this.cancelled) return;
    const x = this.f.x;
    if (x.routeTimer) {
      timers.clearTimeout(x.routeTimer);
      x.routeTimer = undefined;
    }
    x.res.end();
  }

  onError(err: UpstreamFailure): void {
    this.release();
    if (this.discard) return;
    if (this.cancelled) return;
    const x = this.f.x;
    if (x.res.headersSent) {
      // The upstream cut the body short: pass it on as a broken response, never a short success.
      x.flag('UR');
      x.res.destroy(err);
      return;
    }
    // The idle-socket race is no failure of the endpoint: replayed, not recorded.
    if (this.f.replays(this, err)) return;
    this.outcome('local');
    this.f.failed(this, err.kind, err);
  }
}
