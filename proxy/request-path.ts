// The request path, one function with visible stages (like Envoy's decodeHeaders):
//   normalise → virtual host → route → CORS → redirect / direct response → fault →
//   weighted destination → cluster → endpoint → upstream (timeout, retries) → response ops → log.
// Each early exit is a typed LocalOutcome mapped to one status, body and flag in local-reply.ts.

import { randomUUID } from 'node:crypto';
import type {
  CompiledRoute,
  Listener,
  RouteActionRedirect,
  RouteActionRoute,
  Snapshot,
  VirtualHost,
  WeightedDestination,
} from '../config/snapshot.js';
import type { ClusterManager, ClusterRuntime } from './cluster-manager.js';
import { type DownstreamRequest, type DownstreamResponse, downstreamAddress, Exchange } from './exchange.js';
import { hashKeyFor } from './hash-key.js';
import { applyHeaderOps, normalizePath } from './http-util.js';
import { LOCAL_REPLIES, type LocalOutcome, resetWords } from './local-reply.js';
import { MAX_TIMER_MS } from './timers.js';
import type { UpgradeContext } from './upgrade.js';
import { forward } from './upstream.js';

/** What a worker serves: a snapshot and the runtime clusters built for it. Swapped by reference. */
export interface Runtime {
  readonly snapshot: Snapshot;
  readonly clusters: ReadonlyMap<string, ClusterRuntime>;
}

export interface RequestObserver {
  onComplete(x: Exchange): void;
}

export interface ProxyDeps {
  readonly manager: ClusterManager;
  readonly random: () => number;
  readonly now: () => number;
  readonly observer: RequestObserver;
  /** Upper bound for buffering a request body for retry replay or mirroring. */
  readonly maxBufferedBody: number;
  /** Per-worker budget for all buffered bodies in flight; beyond it bodies stream (no replay). */
  readonly maxBufferedTotal: number;
  /** Bytes of request bodies currently buffered for replay in this worker. */
  bufferedBytes: number;
  /** True while draining: responses carry `Connection: close`. */
  draining: boolean;
}

export function handleRequest(
  rt: Runtime,
  listener: Listener,
  req: DownstreamRequest,
  res: DownstreamResponse,
  deps: ProxyDeps,
  upgrade?: UpgradeContext,
): void {
  const x = new Exchange(req, res, listener, deps.now());
  x.upgrade = upgrade;
  // One shared 'close' handler per response (no per-request closure): finish, log, count.
  (res as ResWithExchange)[kExchange] = x;
  (res as ResWithExchange)[kDeps] = deps;
  res.on('close', onResponseClose);
  if (deps.draining) res.shouldKeepAlive = false;

  // Stage 1: framing, target and path normalisation. The codec already rejected CL+TE,
  // duplicate Content-Length and malformed heads; Envoy accepts no coding but chunked.
  const te = req.headers['transfer-encoding'];
  if (te !== undefined && te.toLowerCase() !== 'chunked') return localReply(x, 'bad_request', deps);
  let target = req.url ?? '/';
  if (target.startsWith('http://') || target.startsWith('https://')) {
    // Absolute form (an application using HTTP_PROXY): the authority comes from the URL.
    const slash = target.indexOf('/', target.indexOf('//') + 2);
    x.authority = target.slice(target.indexOf('//') + 2, slash < 0 ? undefined : slash);
    target = slash < 0 ? '/' : target.slice(slash);
  }
  const q = target.indexOf('?');
  const rawPath = q < 0 ? target : target.slice(0, q);
  x.query = q < 0 ? '' : target.slice(q + 1);
  const path = normalizePath(rawPath.includes('#') ? rawPath.slice(0, rawPath.indexOf('#')) : rawPath);
  if (path === undefined) return localReply(x, 'bad_request', deps);
  x.path = path;
  x.originalPath = x.query ? `${path}?${x.query}` : path;

  // Stage 2: virtual host.
  const vh = listener.routes.lookup(x.authority);
  if (!vh) return localReply(x, 'no_route', deps);
  if (vh.httpsRedirect) return httpsRedirect(x, deps);
  if (vh.fallback) return fallback(rt, x, vh, deps);

  // Stage 3: first matching route wins; no implicit fallback.
  const route = matchRoute(vh, x);
  if (!route) return localReply(x, 'no_route', deps);
  x.route = route;

  // Stage 4: CORS preflight answered here when the origin is allowed.
  if (route.cors && applyCors(x, route, deps)) return;

  // Stage 5: non-forwarding actions.
  const action = route.action;
  if (action.kind === 'redirect') return redirect(x, action, deps);
  if (action.kind === 'direct_response') {
    x.details = 'direct_response';
    return sendLocal(x, action.status, action.body, route, deps);
  }

  // Stage 6: fault injection (delay and abort are independent).
  const fault = route.fault;
  if (fault) {
    const delay = fault.delay && hits(fault.delay.percent, deps) ? fault.delay.ms : 0;
    const abort = fault.abort && hits(fault.abort.percent, deps) ? fault.abort : undefined;
    if (delay > 0 || abort) {
      if (delay > 0) x.flag('DI');
      const go = () => {
        if (x.done || res.destroyed) return;
        if (abort) {
          x.flag('FI');
          x.details = 'fault_filter_abort';
          return sendLocal(x, abort.status, FAULT_BODY, route, deps, abort.grpcStatus);
        }
        route_(rt, x, deps);
      };
      if (delay > 0) setTimeout(go, Math.min(delay, MAX_TIMER_MS)).unref();
      else go();
      return;
    }
  }
  route_(rt, x, deps);
}

const FAULT_BODY = Buffer.from(LOCAL_REPLIES.fault_abort.body);

function hits(percent: number, deps: ProxyDeps): boolean {
  return percent >= 100 || (percent > 0 && deps.random() * 100 < percent);
}

export function matchRoute(vh: VirtualHost, x: Exchange): CompiledRoute | undefined {
  for (const r of vh.routes) {
    if (r.matchers.length === 0) return r;
    for (const m of r.matchers) if (m(x)) return r;
  }
  return undefined;
}

/** Stage 7: weighted destination → cluster → endpoint, then hand over to upstream I/O. */
/** A weighted pick over the route's destinations (zero weights were dropped at compile time). */
export function pickDestination(
  action: RouteActionRoute,
  random: () => number,
): WeightedDestination | undefined {
  const list = action.destinations;
  if (list.length <= 1) return list[0];
  let r = random() * action.totalWeight;
  for (const d of list) {
    r -= d.weight;
    if (r < 0) return d;
  }
  return list[list.length - 1];
}

function route_(rt: Runtime, x: Exchange, deps: ProxyDeps): void {
  const route = x.route as CompiledRoute;
  const action = route.action;
  if (action.kind !== 'route' || action.destinations.length === 0) return localReply(x, 'no_cluster', deps);
  const dest = pickDestination(action, deps.random);
  x.destination = dest;
  const cluster = dest ? rt.clusters.get(dest.cluster) : undefined;
  if (!cluster) return localReply(x, 'no_cluster', deps);
  x.cluster = cluster;
  if (cluster.config.hashPolicy) x.hashKey = hashKeyFor(cluster.config.hashPolicy, x);
  forward(rt, x, deps);
}

export function localReply(x: Exchange, outcome: LocalOutcome, deps: ProxyDeps): void {
  const r = LOCAL_REPLIES[outcome];
  x.flag(r.flag);
  x.details = r.details;
  let body = r.body;
  const connect = outcome === 'connect_failure';
  if (r.reset !== undefined && (x.retried || (connect && x.resetReason !== undefined))) {
    const w = connect
      ? resetWords(r, x.retried, x.resetReason, x.transportFailure)
      : resetWords(r, x.retried, undefined, undefined);
    body = w.body;
    x.details = w.details;
  }
  const extra = outcome === 'overflow' ? OVERLOADED : undefined;
  sendLocal(x, r.status, body ? Buffer.from(body) : undefined, x.route, deps, undefined, extra);
}

const OVERLOADED: [string, string][] = [['x-envoy-overloaded', 'true']];

/** Write a locally generated response (route response header ops apply, as in Envoy). */
export function sendLocal(
  x: Exchange,
  status: number,
  body: Buffer | undefined,
  route: CompiledRoute | undefined,
  deps: ProxyDeps,
  grpcStatus?: string,
  extra?: [string, string][],
): void {
  const res = x.res;
  if (x.done || res.headersSent || res.destroyed) {
    if (!res.writableEnded) res.destroy();
    return;
  }
  x.responseCode = status;
  const headers: Record<string, string | string[] | undefined> = {};
  if (body && body.length > 0) {
    headers['content-type'] = 'text/plain';
    headers['content-length'] = String(body.length);
  } else headers['content-length'] = '0';
  if (grpcStatus) headers['grpc-status'] = String(GRPC_CODES[grpcStatus] ?? 14);
  if (extra) for (const [k, v] of extra) headers[k] = v;
  if (route) {
    applyHeaderOps(headers, route.headers.response);
    if (x.setCookie) headers['set-cookie'] = x.setCookie;
  }
  headers.date = new Date().toUTCString();
  headers.server = 'envoy';
  if (deps.draining) headers.connection = 'close';
  res.writeHead(status, headers);
  if (x.method === 'HEAD' || !body) res.end();
  else {
    x.bytesSent = body.length;
    res.end(body);
  }
}

const GRPC_CODES: Record<string, number> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

function httpsRedirect(x: Exchange, deps: ProxyDeps): void {
  const host = x.authority.replace(/:\d+$/, '');
  x.details = 'https_redirect';
  x.res.setHeader('location', `https://${host}${x.originalPath}`);
  sendLocal(x, 301, undefined, undefined, deps);
}

/**
 * Istio's redirect rules: `authority` replaces the whole Host; an explicit `port` replaces its
 * port; `derivePort: FROM_REQUEST_PORT` uses the listener port unless it is the scheme's default
 * (then the Host is kept as sent, `b:80` stays `b:80`); a default port for the scheme is omitted;
 * the query string is kept.
 */
function redirect(x: Exchange, a: RouteActionRedirect, deps: ProxyDeps): void {
  const scheme = a.scheme ?? x.scheme;
  const authority = a.authority ?? x.authority;
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(authority);
  const hostOnly = m?.[1] ?? authority;
  let port: number | undefined = m?.[2] ? Number(m[2]) : undefined;
  const isDefault = (p: number | undefined) =>
    (scheme === 'http' && p === 80) || (scheme === 'https' && p === 443);
  if (a.port) port = isDefault(a.port) ? undefined : a.port;
  else if (a.deriveFromRequestPort) {
    if (!isDefault(x.listener.port)) port = x.listener.port;
  } else if (
    a.scheme &&
    a.scheme !== x.scheme &&
    port !== undefined &&
    port === (x.scheme === 'https' ? 443 : 80)
  ) {
    port = undefined; // the old scheme's default port does not carry over to the new scheme
  }
  const host = port !== undefined ? `${hostOnly}:${port}` : hostOnly;
  let path = x.path;
  if (a.uri !== undefined) path = a.uri;
  else if (a.prefixRewrite !== undefined) {
    const prefix = matchedPrefix(x);
    path = prefix !== undefined ? a.prefixRewrite + path.slice(prefix.length) : a.prefixRewrite;
  }
  const q = x.query ? (path.includes('?') ? `&${x.query}` : `?${x.query}`) : '';
  x.details = 'redirect';
  x.res.setHeader('location', `${scheme}://${host}${path}${q}`);
  sendLocal(x, a.code, undefined, x.route, deps);
}

/** The uri prefix of the match block that matched (for prefix rewrites). */
export function matchedPrefix(x: Exchange): string | undefined {
  const r = x.route;
  if (!r) return undefined;
  if (r.matchers.length === 0) return r.matchPrefixes[0];
  for (let i = 0; i < r.matchers.length; i++) if (r.matchers[i]?.(x)) return r.matchPrefixes[i];
  return undefined;
}

/** Returns true when the request was answered here (an allowed preflight). */
function applyCors(x: Exchange, route: CompiledRoute, deps: ProxyDeps): boolean {
  const cors = route.cors;
  if (!cors) return false;
  const origin = x.headers.origin;
  if (typeof origin !== 'string') return false;
  const allowed = cors.allowOrigin(origin);
  const preflight = x.method === 'OPTIONS' && x.headers['access-control-request-method'] !== undefined;
  if (preflight) {
    if (!allowed) {
      if (cors.forwardUnmatchedPreflights) return false;
      sendLocal(x, 200, undefined, undefined, deps);
      return true;
    }
    const res = x.res;
    res.setHeader('access-control-allow-origin', origin);
    if (cors.allowMethods) res.setHeader('access-control-allow-methods', cors.allowMethods);
    if (cors.allowHeaders) res.setHeader('access-control-allow-headers', cors.allowHeaders);
    if (cors.maxAge) res.setHeader('access-control-max-age', cors.maxAge);
    if (cors.allowCredentials) res.setHeader('access-control-allow-credentials', 'true');
    x.details = 'cors_response';
    sendLocal(x, 200, undefined, undefined, deps);
    return true;
  }
  if (allowed) {
    x.res.setHeader('access-control-allow-origin', origin);
    if (cors.allowCredentials) x.res.setHeader('access-control-allow-credentials', 'true');
    if (cors.exposeHeaders) x.res.setHeader('access-control-expose-headers', cors.exposeHeaders);
  }
  return false;
}

/** Sidecar catch-all: ALLOW_ANY forwards to the original destination, REGISTRY_ONLY answers 502. */
function fallback(rt: Runtime, x: Exchange, vh: VirtualHost, deps: ProxyDeps): void {
  if (vh.fallback === 'block') return localReply(x, 'registry_only', deps);
  forward(rt, x, deps, true);
}

/** Request id and forwarding headers, set once per request before the first attempt. */
export function prepareRequestHeaders(x: Exchange): void {
  const h = x.headers;
  if (typeof h['x-request-id'] !== 'string' || h['x-request-id'] === '') h['x-request-id'] = randomUUID();
  const remote = downstreamAddress(x);
  const xff = h['x-forwarded-for'];
  h['x-forwarded-for'] = xff ? `${Array.isArray(xff) ? xff.join(',') : xff},${remote}` : remote;
  if (x.listener.kind === 'gateway' || h['x-forwarded-proto'] === undefined)
    h['x-forwarded-proto'] = x.scheme;
}

const kExchange = Symbol('courier.exchange');
const kDeps = Symbol('courier.deps');
type ResWithExchange = DownstreamResponse & { [kExchange]?: Exchange; [kDeps]?: ProxyDeps };

function onResponseClose(this: ResWithExchange): void {
  const x = this[kExchange];
  const deps = this[kDeps];
  if (x && deps) finish(x, deps);
}

function finish(x: Exchange, deps: ProxyDeps): void {
  if (x.done) return;
  if (!x.res.writableFinished) x.onAbort?.();
  if (x.reservedBytes > 0) {
    deps.bufferedBytes -= x.reservedBytes;
    x.reservedBytes = 0;
  }
  x.done = true;
  if (x.routeTimer) clearTimeout(x.routeTimer);
  if (!x.res.writableFinished) {
    // The downstream went away before the response completed.
    x.flag('DC');
  }
  deps.observer.onComplete(x);
}
