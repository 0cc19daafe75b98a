// The router: every decision of the request path that needs no I/O, as pure functions over the
// snapshot and a codec-neutral view of the request. It returns what it decided (which virtual
// host, which route and which of its match blocks, which weighted destination, where a redirect
// points, what CORS and fault injection say); the request path carries the decision out. `courier
// explain` calls the same functions, so what it prints is what the proxy does.

import type {
  CompiledRoute,
  CorsConfig,
  FaultPolicy,
  Listener,
  RequestView,
  RouteActionRedirect,
  RouteActionRoute,
  VirtualHost,
  WeightedDestination,
} from '../config/snapshot.js';

/** The route that matched, and the uri prefix of the match block that matched (prefix rewrites). */
export interface RouteMatch {
  readonly route: CompiledRoute;
  readonly prefix: string | undefined;
}

/** What the virtual host and route tables say of a request. */
export type RouteDecision =
  | { readonly kind: 'no_route'; readonly vh?: VirtualHost }
  | { readonly kind: 'https_redirect'; readonly vh: VirtualHost }
  | { readonly kind: 'fallback'; readonly vh: VirtualHost; readonly mode: 'passthrough' | 'block' }
  | ({ readonly kind: 'route'; readonly vh: VirtualHost } & RouteMatch);

/** Virtual host by authority (Envoy's domain order), then the first route whose match holds. */
export function decideRoute(listener: Listener, req: RequestView): RouteDecision {
  const vh = listener.routes.lookup(req.authority);
  if (!vh) return NO_ROUTE;
  if (vh.httpsRedirect) return { kind: 'https_redirect', vh };
  if (vh.fallback) return { kind: 'fallback', vh, mode: vh.fallback };
  const m = matchRoute(vh, req);
  return m ? { kind: 'route', vh, route: m.route, prefix: m.prefix } : { kind: 'no_route', vh };
}

const NO_ROUTE: RouteDecision = Object.freeze({ kind: 'no_route' });

/** First matching route wins (match blocks are ORed); no implicit fallback. */
export function matchRoute(vh: VirtualHost, req: RequestView): RouteMatch | undefined {
  for (const route of vh.routes) {
    const ms = route.matchers;
    if (ms.length === 0) return { route, prefix: route.matchPrefixes[0] };
    for (let i = 0; i < ms.length; i++)
      if ((ms[i] as (r: RequestView) => boolean)(req)) return { route, prefix: route.matchPrefixes[i] };
  }
  return undefined;
}

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

/** Fault injection for one request: delay and abort are drawn independently. */
export interface FaultDecision {
  readonly delayMs: number;
  readonly abort: FaultPolicy['abort'] | undefined;
}

export function decideFault(fault: FaultPolicy, random: () => number): FaultDecision | undefined {
  const delayMs = fault.delay && hits(fault.delay.percent, random) ? fault.delay.ms : 0;
  const abort = fault.abort && hits(fault.abort.percent, random) ? fault.abort : undefined;
  return delayMs > 0 || abort ? { delayMs, abort } : undefined;
}

function hits(percent: number, random: () => number): boolean {
  return percent >= 100 || (percent > 0 && random() * 100 < percent);
}

/**
 * `Location` of an HTTP server's `httpsRedirect` (Envoy's `require_tls: ALL`): the Host exactly as
 * sent, port included, then the path and query.
 */
export function httpsRedirectLocation(authority: string, pathAndQuery: string): string {
  return `https://${authority}${pathAndQuery}`;
}

/**
 * Istio's redirect rules: `authority` replaces the whole Host; an explicit `port` replaces its
 * port; `derivePort: FROM_REQUEST_PORT` uses the listener port unless it is the scheme's default
 * (then the Host is kept as sent, `b:80` stays `b:80`); a default port for the scheme is omitted;
 * the query string is kept.
 */
export function redirectLocation(
  a: RouteActionRedirect,
  req: RequestView,
  listenerPort: number,
  prefix: string | undefined,
): string {
  const scheme = a.scheme ?? req.scheme;
  const authority = a.authority ?? req.authority;
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(authority);
  const hostOnly = m?.[1] ?? authority;
  let port: number | undefined = m?.[2] ? Number(m[2]) : undefined;
  const isDefault = (p: number | undefined) =>
    (scheme === 'http' && p === 80) || (scheme === 'https' && p === 443);
  if (a.port) port = isDefault(a.port) ? undefined : a.port;
  else if (a.deriveFromRequestPort) {
    if (!isDefault(listenerPort)) port = listenerPort;
  } else if (
    a.scheme &&
    a.scheme !== req.scheme &&
    port !== undefined &&
    port === (req.scheme === 'https' ? 443 : 80)
  ) {
    port = undefined; // the old scheme's default port does not carry over to the new scheme
  }
  const host = port !== undefined ? `${hostOnly}:${port}` : hostOnly;
  let path = req.path;
  if (a.uri !== undefined) path = a.uri;
  else if (a.prefixRewrite !== undefined)
    path = prefix !== undefined ? a.prefixRewrite + path.slice(prefix.length) : a.prefixRewrite;
  const q = req.query ? (path.includes('?') ? `&${req.query}` : `?${req.query}`) : '';
  return `${scheme}://${host}${path}${q}`;
}

/** What a route's CORS policy says of a request. */
export type CorsDecision =
  /** No Origin, or not a preflight and the origin is not allowed: nothing to add. */
  | { readonly kind: 'none' }
  /** A preflight for an origin that is not allowed: answered 200 without CORS headers. */
  | { readonly kind: 'reject_preflight' }
  /** A preflight for an allowed origin: answered 200 with these headers. */
  | { readonly kind: 'preflight'; readonly headers: readonly (readonly [string, string])[] }
  /** A simple request from an allowed origin: forwarded, these headers added to the response. */
  | { readonly kind: 'simple'; readonly headers: readonly (readonly [string, string])[] };

const CORS_NONE: CorsDecision = Object.freeze({ kind: 'none' });

export function decideCors(cors: CorsConfig, req: RequestView): CorsDecision {
  const origin = req.headers.origin;
  if (typeof origin !== 'string') return CORS_NONE;
  const allowed = cors.allowOrigin(origin);
  const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
  if (preflight) {
    if (!allowed) return cors.forwardUnmatchedPreflights ? CORS_NONE : { kind: 'reject_preflight' };
    const h: [string, string][] = [['access-control-allow-origin', origin]];
    if (cors.allowMethods) h.push(['access-control-allow-methods', cors.allowMethods]);
    if (cors.allowHeaders) h.push(['access-control-allow-headers', cors.allowHeaders]);
    if (cors.maxAge) h.push(['access-control-max-age', cors.maxAge]);
    if (cors.allowCredentials) h.push(['access-control-allow-credentials', 'true']);
    return { kind: 'preflight', headers: h };
  }
  if (!allowed) return CORS_NONE;
  const h: [string, string][] = [['access-control-allow-origin', origin]];
  if (cors.allowCredentials) h.push(['access-control-allow-credentials', 'true']);
  if (cors.exposeHeaders) h.push(['access-control-expose-headers', cors.exposeHeaders]);
  return { kind: 'simple', headers: h };
}
