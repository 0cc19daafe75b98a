// VirtualService HTTPRoute → CompiledRoute, for one proxy and one listener port.
// sourceLabels, sourceNamespace, gateways and port are selectors evaluated here (Istio applies
// them when generating a proxy's config), not per request.

import { parseDuration } from '../duration.js';
import { labelsMatch } from '../names.js';
import { compileRegex, rewriteTemplate } from '../regex.js';
import type {
  CompiledHeaders,
  CompiledRoute,
  CorsConfig,
  FaultPolicy,
  HeaderOps,
  Matcher,
  MirrorPolicy,
  RetryPolicy,
  RewritePolicy,
  RouteAction,
  WeightedDestination,
} from '../snapshot.js';
import type {
  Destination,
  HeaderOperations,
  Headers,
  HTTPMatchRequest,
  HTTPRoute,
  Resource,
  StringMap,
} from '../types.js';
import { compileMatchBlock, stringPredicate } from './route-matcher.js';

export interface RouteContext {
  /** Gateway names (`ns/name`) this proxy is, or `mesh` for a sidecar. */
  gatewayNames: ReadonlySet<string>;
  proxyLabels: StringMap;
  proxyNamespace: string;
  /** The listener / service port this route table serves (match.port filters on it). */
  port: number;
  /** Normalises a VS's match.gateways entries to `ns/name`. */
  gatewayRef: (ref: string, vsNamespace: string) => string;
  /** Destination → cluster. */
  resolve: (d: Destination, vsNamespace: string) => Omit<WeightedDestination, 'weight' | 'headers'>;
}

const DEFAULT_RETRY_ON = [
  'connect-failure',
  'refused-stream',
  'unavailable',
  'cancelled',
  'retriable-status-codes',
];

export const NO_HEADERS: CompiledHeaders = Object.freeze({
  request: Object.freeze({ set: [], add: [], remove: [] }),
  response: Object.freeze({ set: [], add: [], remove: [] }),
});

/** Istio sourceMatchHTTP: does this match block apply to this proxy? */
function blockApplies(m: HTTPMatchRequest, vsNamespace: string, ctx: RouteContext): boolean {
  if (m.port !== undefined && m.port !== ctx.port) return false;
  if (m.gateways && m.gateways.length > 0)
    return m.gateways.some((g) => ctx.gatewayNames.has(ctx.gatewayRef(g, vsNamespace)));
  if (!labelsMatch(m.sourceLabels, ctx.proxyLabels)) return false;
  return !m.sourceNamespace || m.sourceNamespace === ctx.proxyNamespace;
}

function ops(o: HeaderOperations | undefined): HeaderOps {
  const keep = (k: string) => !k.startsWith(':') && k.toLowerCase() !== 'host';
  const pairs = (m: StringMap | undefined) =>
    Object.entries(m ?? {})
      .filter(([k]) => keep(k))
      .map(([k, v]) => [k.toLowerCase(), String(v)] as const);
  return {
    set: pairs(o?.set),
    add: pairs(o?.add),
    remove: (o?.remove ?? []).filter(keep).map((k) => k.toLowerCase()),
  };
}

export function compileHeaders(h: Headers | undefined): CompiledHeaders {
  if (!h) return NO_HEADERS;
  const authority = (m: StringMap | undefined) =>
    m ? Object.entries(m).find(([k]) => k.toLowerCase() === 'host' || k === ':authority')?.[1] : undefined;
  const auth = authority(h.request?.set) ?? authority(h.request?.add);
  return {
    request: ops(h.request),
    response: ops(h.response),
    ...(auth !== undefined ? { authority: auth } : {}),
  };
}

function retryPolicy(r: HTTPRoute, timeoutMs: number): RetryPolicy {
  const codes = new Set<number>();
  const on = new Set<string>();
  const spec = r.retries;
  const attempts = r.fault ? 0 : spec ? (spec.attempts ?? 0) : 2;
  const list = spec?.retryOn ? spec.retryOn.split(',').map((s) => s.trim()) : DEFAULT_RETRY_ON;
  for (const p of list) {
    if (/^\d+$/.test(p)) {
      codes.add(Number(p));
      on.add('retriable-status-codes');
    } else if (p) on.add(p);
  }
  return {
    numRetries: Math.max(0, attempts),
    perTryTimeoutMs: spec?.perTryTimeout ? (parseDuration(spec.perTryTimeout) ?? timeoutMs) : timeoutMs,
    retryOn: on,
    retriableStatusCodes: codes,
    backoffBaseMs: spec?.backoff ? (parseDuration(spec.backoff) ?? 25) : 25,
    retryOtherHosts: spec?.retryIgnorePreviousHosts ?? true,
  };
}

/** Istio's policy for routes that set no `retries` (and for sidecar default routes). */
export function defaultRetryPolicy(): RetryPolicy {
  return retryPolicy({}, 0);
}

function faultPolicy(r: HTTPRoute): FaultPolicy | undefined {
  const f = r.fault;
  if (!f) return undefined;
  const out: { delay?: FaultPolicy['delay']; abort?: FaultPolicy['abort'] } = {};
  if (f.delay?.fixedDelay) {
    out.delay = {
      ms: parseDuration(f.delay.fixedDelay) ?? 0,
      percent: f.delay.percentage?.value ?? f.delay.percent ?? 0,
    };
  }
  if (f.abort && (f.abort.httpStatus !== undefined || f.abort.grpcStatus !== undefined)) {
    out.abort = {
      status: f.abort.httpStatus ?? 200,
      ...(f.abort.grpcStatus ? { grpcStatus: f.abort.grpcStatus } : {}),
      percent: f.abort.percentage?.value ?? 0,
    };
  }
  return out;
}

function corsConfig(r: HTTPRoute): CorsConfig | undefined {
  const c = r.corsPolicy;
  if (!c) return undefined;
  const preds = [
    ...(c.allowOrigins ?? []).map((m) => stringPredicate(m)),
    ...(c.allowOrigin ?? []).map((o) => (o === '*' ? () => true : (v: string) => v === o)),
  ];
  const maxAge = c.maxAge ? parseDuration(c.maxAge) : undefined;
  return {
    allowOrigin: (origin) => preds.some((p) => p(origin)),
    allowMethods: (c.allowMethods ?? []).join(','),
    allowHeaders: (c.allowHeaders ?? []).join(','),
    exposeHeaders: (c.exposeHeaders ?? []).join(','),
    maxAge: maxAge !== undefined ? String(Math.floor(maxAge / 1000)) : '',
    allowCredentials: c.allowCredentials === true,
    forwardUnmatchedPreflights: c.unmatchedPreflights !== 'IGNORE',
  };
}

function action(r: HTTPRoute, vsNamespace: string, ctx: RouteContext): RouteAction | undefined {
  if (r.redirect) {
    const code = r.redirect.redirectCode || 301;
    if (![301, 302, 303, 307, 308].includes(code)) return undefined; // Istio leaves such a route without action
    return {
      kind: 'redirect',
      ...(r.redirect.uri !== undefined ? { uri: r.redirect.uri } : {}),
      ...(r.redirect.prefixRewrite !== undefined ? { prefixRewrite: r.redirect.prefixRewrite } : {}),
      ...(r.redirect.authority ? { authority: r.redirect.authority } : {}),
      ...(r.redirect.scheme ? { scheme: r.redirect.scheme } : {}),
      ...(r.redirect.port ? { port: r.redirect.port } : {}),
      deriveFromRequestPort: r.redirect.derivePort === 'FROM_REQUEST_PORT',
      code,
    };
  }
  if (r.directResponse) {
    const b = r.directResponse.body;
    const body =
      b?.string !== undefined ? Buffer.from(b.string) : b?.bytes ? Buffer.from(b.bytes, 'base64') : undefined;
    return { kind: 'direct_response', status: r.directResponse.status, ...(body ? { body } : {}) };
  }
  const list = r.route ?? [];
  const dests: WeightedDestination[] = list.map((d) => ({
    ...ctx.resolve(d.destination, vsNamespace),
    weight: list.length === 1 ? 1 : (d.weight ?? 0),
    headers: compileHeaders(d.headers),
  }));
  // One destination takes all traffic; with several, zero weights are dropped. When no weight is
  // given anywhere, Istio splits evenly.
  const anyWeight = list.some((d) => d.weight !== undefined);
  const weighted = list.length > 1 && !anyWeight ? dests.map((d) => ({ ...d, weight: 1 })) : dests;
  const kept = weighted.filter((d) => d.weight > 0);
  return { kind: 'route', destinations: kept, totalWeight: kept.reduce((s, d) => s + d.weight, 0) };
}

function mirrors(r: HTTPRoute, vsNamespace: string, ctx: RouteContext): MirrorPolicy[] {
  const list: { destination: Destination; percent: number }[] = [];
  if (r.mirror)
    list.push({ destination: r.mirror, percent: r.mirrorPercentage?.value ?? r.mirrorPercent ?? 100 });
  for (const m of r.mirrors ?? [])
    list.push({ destination: m.destination, percent: m.percentage?.value ?? 100 });
  return list
    .filter((m) => m.percent > 0)
    .map((m) => {
      const d = ctx.resolve(m.destination, vsNamespace);
      return { cluster: d.cluster, host: d.host, percent: m.percent };
    });
}

function rewritePolicy(r: HTTPRoute): RewritePolicy | undefined {
  const rw = r.rewrite;
  if (!rw) return undefined;
  const out: {
    uri?: string;
    regex?: RewritePolicy['regex'];
    authority?: string;
  } = {};
  if (rw.uri !== undefined) {
    out.uri = rw.uri;
  }
  if (rw.uriRegexRewrite?.match !== undefined) {
    const re = compileRegex(rw.uriRegexRewrite.match);
    if (typeof re !== 'string')
      out.regex = { pattern: re.search, replacement: rewriteTemplate(rw.uriRegexRewrite.rewrite ?? '') };
  }
  if (rw.authority) out.authority = rw.authority;
  return out;
}

/** One HTTPRoute for one proxy/port; undefined when no match block applies (or no valid action). */
export function compileHttpRoute(
  r: HTTPRoute,
  index: number,
  vs: Resource<'VirtualService'>,
  ctx: RouteContext,
): CompiledRoute | undefined {
  const blocks = r.match ?? [];
  const applicable = blocks.filter((m) => blockApplies(m, vs.namespace, ctx));
  if (blocks.length > 0 && applicable.length === 0) return undefined;
  const act = action(r, vs.namespace, ctx);
  if (!act) return undefined;
  const matchers: Matcher[] = applicable.map(compileMatchBlock);
  const matchPrefixes = (applicable.length ? applicable : [{} as HTTPMatchRequest]).map((m) =>
    m.uri === undefined ? '/' : (m.uri.prefix ?? m.uri.exact),
  );
  const timeoutMs = r.timeout ? (parseDuration(r.timeout) ?? 0) : 0;
  const fault = faultPolicy(r);
  const rewrite = rewritePolicy(r);
  const cors = corsConfig(r);
  return {
    name: r.name ?? `${vs.namespace}.${vs.name}.${index}`,
    virtualService: `${vs.namespace}/${vs.name}`,
    matchers,
    matchPrefixes,
    action: act,
    timeoutMs,
    retry: retryPolicy(r, timeoutMs),
    mirrors: mirrors(r, vs.namespace, ctx),
    headers: compileHeaders(r.headers),
    ...(rewrite ? { rewrite } : {}),
    ...(fault ? { fault } : {}),
    ...(cors ? { cors } : {}),
  };
}

/** Istio IsCatchAllRoute: no match, or a match block that matches everything. Only blocks that
 *  apply to this proxy and port count: Istio tests the Envoy routes it generated, and a block
 *  for another gateway generates none. */
export function isCatchAll(src: HTTPRoute, vsNamespace: string, ctx: RouteContext): boolean {
  const blocks = src.match ?? [];
  if (blocks.length === 0) return true;
  return blocks.some(
    (m) =>
      blockApplies(m, vsNamespace, ctx) &&
      (m.uri === undefined || m.uri.prefix === '/' || m.uri.regex === '.*' || m.uri.regex === '*') &&
      !m.method &&
      !m.authority &&
      !m.scheme &&
      !m.headers &&
      !m.withoutHeaders &&
      !m.queryParams,
  );
}

/** A VirtualService's http routes in order, up to its first catch-all: Istio generates no route
 *  after one. `catchAll` is that route, if there is one. */
export function compileVsHttpRoutes(
  vs: Resource<'VirtualService'>,
  ctx: RouteContext,
): { routes: CompiledRoute[]; catchAll: CompiledRoute | undefined } {
  const routes: CompiledRoute[] = [];
  const http = vs.spec.http ?? [];
  for (let i = 0; i < http.length; i++) {
    const src = http[i];
    if (!src) continue;
    const r = compileHttpRoute(src, i, vs, ctx);
    if (!r) continue;
    routes.push(r);
    if (isCatchAll(src, vs.namespace, ctx)) return { routes, catchAll: r };
  }
  return { routes, catchAll: undefined };
}
