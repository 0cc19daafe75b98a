// The request path, one function with visible stages (like Envoy's decodeHeaders):
//   normalise → virtual host → route → CORS → redirect / direct response → fault →
//   weighted destination → cluster → endpoint → upstream (timeout, retries) → response ops → log.
// Each early exit is a typed LocalOutcome mapped to one status, body and flag in local-reply.ts.

import type { CompiledRoute, Listener, RouteActionRedirect, VirtualHost } from '../config/snapshot.js';
import { authorize } from './authorization.js';
import type { ProxyDeps, Runtime } from './deps.js';
import {
  type DownstreamRequest,
  type DownstreamResponse,
  Exchange,
  type UpgradeContext,
} from './exchange.js';
import { hashKeyFor } from './hash-key.js';
import { normalizePath } from './http-util.js';
import { LOCAL_REPLIES } from './local-reply.js';
import { localReply, sendLocal } from './respond.js';
import {
  decideCors,
  decideFault,
  httpsRedirectLocation,
  matchRoute,
  pickDestination,
  redirectLocation,
} from './router.js';
import { MAX_TIMER_MS } from './timers.js';
import { forward } from './upstream.js';

export type { ProxyDeps, RequestObserver, Runtime } from './deps.js';

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
  const m = matchRoute(vh, x);
  if (!m) return localReply(x, 'no_route', deps);
  const route = m.route;
  x.route = route;
  x.matchPrefix = m.prefix;

  // Stage 4: CORS preflight answered here when the origin is allowed.
  if (route.cors && applyCors(x, route, deps)) return;

  // Stage 4b: authorization, once the route is known (nothing is enforced yet: it allows).
  if (authorize(x) !== 'allow') return localReply(x, 'rbac_denied', deps);

  // Stage 5: non-forwarding actions.
  const action = route.action;
  if (action.kind === 'redirect') return redirect(x, action, deps);
  if (action.kind === 'direct_response') {
    x.details = 'direct_response';
    return sendLocal(x, action.status, action.body, route, deps);
  }

  // Stage 6: fault injection (delay and abort are independent).
  const fault = route.fault ? decideFault(route.fault, deps.random) : undefined;
  if (fault) {
    const delay = fault.delayMs;
    const abort = fault.abort;
    {
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

/** Stage 7: weighted destination → cluster → endpoint, then hand over to upstream I/O. */
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

function httpsRedirect(x: Exchange, deps: ProxyDeps): void {
  x.details = 'https_redirect';
  x.res.setHeader('location', httpsRedirectLocation(x.authority, x.originalPath));
  sendLocal(x, 301, undefined, undefined, deps);
}

function redirect(x: Exchange, a: RouteActionRedirect, deps: ProxyDeps): void {
  x.details = 'redirect';
  x.res.setHeader('location', redirectLocation(a, x, x.listener.port, x.matchPrefix));
  sendLocal(x, a.code, undefined, x.route, deps);
}

/** Returns true when the request was answered here (a preflight). */
function applyCors(x: Exchange, route: CompiledRoute, deps: ProxyDeps): boolean {
  const d = decideCors(route.cors as NonNullable<CompiledRoute['cors']>, x);
  if (d.kind === 'none') return false;
  if (d.kind === 'reject_preflight') {
    sendLocal(x, 200, undefined, undefined, deps);
    return true;
  }
  for (const [k, v] of d.headers) x.res.setHeader(k, v);
  if (d.kind === 'simple') return false;
  x.details = 'cors_response';
  sendLocal(x, 200, undefined, undefined, deps);
  return true;
}

/** Sidecar catch-all: ALLOW_ANY forwards to the original destination, REGISTRY_ONLY answers 502. */
function fallback(rt: Runtime, x: Exchange, vh: VirtualHost, deps: ProxyDeps): void {
  if (vh.fallback === 'block') return localReply(x, 'registry_only', deps);
  forward(rt, x, deps, true);
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
