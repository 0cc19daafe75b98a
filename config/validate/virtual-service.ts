// VirtualService validation, after Istio's pkg/config/validation (virtualservice.go, validation.go).

import { parseDuration } from '../duration.js';
import { captureGroupCount } from '../regex.js';
import {
  type Checker,
  isCIDR,
  isDns1123Label,
  isIP,
  isObj,
  type Obj,
  wildcardDomainError,
} from './checker.js';
import {
  checkDestination,
  checkGatewayNames,
  checkHeaders,
  checkHost,
  checkHttpStatus,
  checkStringMatch,
  checkStringMatchMap,
  GRPC_STATUS,
  headersSetAuthority,
  isJwtClaimKey,
} from './common.js';

export const RETRY_ON = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'envoy-ratelimited',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'http3-post-connect-failure',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

// Istio's supportedCORSMethods (Go's net/http method names, plus "*").
const CORS_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', '*'];

/** HTTP status codes Go's net/http knows (Istio accepts a numeric retryOn entry only if it is one). */
const KNOWN_STATUS = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307,
  308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421,
  422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

/** Istio host.Name.Matches: equal, or one wildcard covers the other. */
export function hostsMatch(a: string, b: string): boolean {
  const aw = a.startsWith('*');
  const bw = b.startsWith('*');
  if (aw && bw)
    return a.length < b.length ? b.slice(1).endsWith(a.slice(1)) : a.slice(1).endsWith(b.slice(1));
  if (aw) return b.endsWith(a.slice(1));
  if (bw) return a.endsWith(b.slice(1));
  return a === b;
}

/** Istio host.Name.SubsetOf: every name `n` matches is matched by `o`. */
function hostSubsetOf(n: string, o: string): boolean {
  const nw = n.startsWith('*');
  const ow = o.startsWith('*');
  if (nw) return ow && n.length >= o.length && n.slice(1).endsWith(o.slice(1));
  if (ow) return n.endsWith(o.slice(1));
  return n === o;
}

function appliesToMesh(gateways: unknown): boolean {
  return !Array.isArray(gateways) || gateways.length === 0 || gateways.includes('mesh');
}

export function validateVirtualService(c: Checker, spec: Obj): void {
  const isDelegate = spec.hosts === undefined || (Array.isArray(spec.hosts) && spec.hosts.length === 0);
  const mesh = appliesToMesh(spec.gateways);
  const hosts = c.strList(spec.hosts, 'spec.hosts');
  if (isDelegate) {
    // A VS without hosts is a delegate: only http routes, bound by its root.
    if (Array.isArray(spec.gateways) && spec.gateways.length > 0)
      c.err('spec.gateways', 'delegate virtual service (no hosts) must have no gateways specified');
    if (Array.isArray(spec.tcp) && spec.tcp.length > 0)
      c.err('spec.tcp', 'delegate virtual service (no hosts) must have no tcp route specified');
    if (Array.isArray(spec.tls) && spec.tls.length > 0)
      c.err('spec.tls', 'delegate virtual service (no hosts) must have no tls route specified');
  }
  const errorsBefore = c.errors.length;
  hosts.forEach((h, i) => {
    const p = `spec.hosts[${i}]`;
    if (h === '*' && mesh) {
      c.err(p, 'wildcard host * is not allowed for virtual services bound to the mesh gateway');
      return;
    }
    if (isIP(h)) {
      // Istio's validation accepts IP hosts everywhere; the API only documents them for gateways.
      if (mesh) c.warn(p, 'IP address hosts are only meaningful for virtual services bound to gateways');
      return;
    }
    checkHost(c, h, p);
  });
  // Istio: hosts that match each other are duplicates (`a.com` twice, `*.foo.com` with `*.com`,
  // `foo.com` with `*.com`, anything with `*`).
  if (c.errors.length === errorsBefore)
    hosts.forEach((a, i) => {
      hosts.forEach((b, j) => {
        if (i < j && hostsMatch(a.toLowerCase(), b.toLowerCase()))
          c.err(`spec.hosts[${j}]`, `duplicate hosts in virtual service: "${a}" (spec.hosts[${i}]) & "${b}"`);
      });
    });
  checkGatewayNames(c, spec.gateways, 'spec.gateways');
  c.strList(spec.exportTo, 'spec.exportTo');
  // Istio: JWT claim routing needs a gateway-only VS (the claims come from a gateway's
  // RequestAuthentication); a VS that also applies to the mesh cannot use it.
  const onGateway = !mesh;

  const http = c.arr(spec.http, 'spec.http');
  const tcp = c.arr(spec.tcp, 'spec.tcp');
  const tls = c.arr(spec.tls, 'spec.tls');
  if (!http?.length && !tcp?.length && !tls?.length)
    c.err('spec', 'http, tcp or tls must be provided in virtual service');
  http?.forEach((r, i) => {
    validateHttpRoute(c, r, `spec.http[${i}]`, isDelegate);
    if (!onGateway && isObj(r))
      c.arr(r.match, `spec.http[${i}].match`)?.forEach((m, j) => {
        if (!isObj(m)) return;
        for (const field of ['headers', 'withoutHeaders'] as const)
          if (isObj(m[field]))
            for (const k of Object.keys(m[field]))
              if (isJwtClaimKey(k))
                c.err(
                  `spec.http[${i}].match[${j}].${field}["${k}"]`,
                  'JWT claim based routing is only supported for virtual services bound to a gateway',
                );
      });
  });
  tcp?.forEach((r, i) => {
    validateTcpRoute(c, r, `spec.tcp[${i}]`);
  });
  // Istio isGateway: the gateways do not name `mesh` (no gateways at all counts as a gateway here).
  const gatewaySni = !(Array.isArray(spec.gateways) && spec.gateways.includes('mesh'));
  tls?.forEach((r, i) => {
    validateTlsRoute(c, r, `spec.tls[${i}]`, hosts, gatewaySni);
  });
}

function validateHttpRoute(c: Checker, v: unknown, path: string, isDelegate: boolean): void {
  const r = c.obj(v, path, true);
  if (!r) return;
  c.str(r.name, `${path}.name`);
  const has = (k: string) => r[k] !== undefined && r[k] !== null;
  const hasRoute = Array.isArray(r.route) && r.route.length > 0;
  if (has('delegate') && !isDelegate) {
    // A root route: only the delegate acts (Istio validateHTTPRouteConflict, RootRoute).
    if (has('redirect')) c.err(path, 'HTTP route cannot contain both "delegate" and "redirect"');
    if (hasRoute) c.err(path, 'HTTP route cannot contain both "delegate" and "route"');
    const d = c.obj(r.delegate, `${path}.delegate`);
    if (d) {
      c.str(d.name, `${path}.delegate.name`, true);
      const ns = c.str(d.namespace, `${path}.delegate.namespace`);
      if (ns && !isDns1123Label(ns))
        c.err(`${path}.delegate.namespace`, `invalid namespace ${JSON.stringify(ns)}`);
    }
  } else {
    if (has('delegate')) c.err(`${path}.delegate`, 'a delegate virtual service cannot itself delegate');
    if (has('redirect')) {
      for (const k of ['route', 'fault', 'rewrite', 'directResponse'])
        if (k === 'route' ? hasRoute : has(k))
          c.err(path, `HTTP route cannot contain both "${k}" and "redirect"`);
    } else if (has('directResponse')) {
      for (const k of ['route', 'fault', 'rewrite'])
        if (k === 'route' ? hasRoute : has(k))
          c.err(path, `HTTP route cannot contain both "${k}" and "directResponse"`);
    } else if (!hasRoute) {
      c.err(path, 'HTTP route, redirect or directResponse is required');
    }
  }
  if (has('mirror') && has('mirrors')) c.err(path, '"mirror" and "mirrors" cannot both be set');
  if (has('mirrorPercent') && has('mirrorPercentage'))
    c.err(path, '"mirrorPercent" and "mirrorPercentage" cannot both be set');

  c.arr(r.match, `${path}.match`)?.forEach((m, i) => {
    validateHttpMatch(c, m, `${path}.match[${i}]`, r);
  });

  const route = c.arr(r.route, `${path}.route`);
  if (route) {
    let total = 0;
    route.forEach((d, i) => {
      const p = `${path}.route[${i}]`;
      const rd = c.obj(d, p, true);
      if (!rd) return;
      checkDestination(c, rd.destination, `${p}.destination`);
      const w = c.int(rd.weight, `${p}.weight`, { min: 0 });
      total += w ?? 0;
      checkHeaders(c, rd.headers, `${p}.headers`);
      if (headersSetAuthority(rd.headers) && isObj(r.rewrite) && r.rewrite.authority !== undefined)
        c.err(`${p}.headers`, 'authority header cannot be set with rewrite.authority');
    });
    // Istio (proto3: an unset weight is 0): several destinations need a positive total.
    if (route.length > 1 && total === 0)
      c.err(
        `${path}.route`,
        'total destination weight = 0 (give at least one destination a positive weight)',
      );
  }

  if (has('redirect')) validateRedirect(c, r.redirect, `${path}.redirect`);
  if (has('directResponse')) {
    const dr = c.obj(r.directResponse, `${path}.directResponse`);
    if (dr) {
      checkHttpStatus(c, dr.status, `${path}.directResponse.status`);
      const body = c.obj(dr.body, `${path}.directResponse.body`);
      if (body) {
        c.exclusive(body, `${path}.directResponse.body`, ['string', 'bytes']);
        const text =
          typeof body.string === 'string' ? body.string : typeof body.bytes === 'string' ? body.bytes : '';
        if (body.string !== undefined) c.str(body.string, `${path}.directResponse.body.string`);
        if (body.bytes !== undefined) {
          const b = c.str(body.bytes, `${path}.directResponse.body.bytes`);
          if (b !== undefined && !/^[A-Za-z0-9+/\s]*={0,2}$/.test(b))
            c.err(`${path}.directResponse.body.bytes`, 'must be base64');
        }
        if (text.length > 1024 * 1024) c.err(`${path}.directResponse.body`, 'body must be less than 1MB');
        else if (text.length > 100 * 1024) c.warn(`${path}.directResponse.body`, 'body is over 100KB');
      }
    }
  }
  if (has('rewrite')) {
    const rw = c.obj(r.rewrite, `${path}.rewrite`);
    if (rw) {
      c.exclusive(rw, `${path}.rewrite`, ['uri', 'uriRegexRewrite']);
      c.str(rw.uri, `${path}.rewrite.uri`);
      c.str(rw.authority, `${path}.rewrite.authority`);
      noControl(c, rw.uri, `${path}.rewrite.uri`);
      noControl(c, rw.authority, `${path}.rewrite.authority`);
      if (!rw.uri && !rw.authority && rw.uriRegexRewrite === undefined)
        c.err(`${path}.rewrite`, 'rewrite must specify uri, authority, or uriRegexRewrite');
      const rr = c.obj(rw.uriRegexRewrite, `${path}.rewrite.uriRegexRewrite`);
      if (rr) {
        if (c.str(rr.match, `${path}.rewrite.uriRegexRewrite.match`, true) !== undefined)
          c.regex(rr.match, `${path}.rewrite.uriRegexRewrite.match`);
        const tmpl = c.str(rr.rewrite, `${path}.rewrite.uriRegexRewrite.rewrite`, true);
        const groups = typeof rr.match === 'string' ? captureGroupCount(rr.match) : undefined;
        const refs = [...(tmpl ?? '').matchAll(/\\(\\|\d)/g)].map((m) => m[1]).filter((d) => d !== '\\');
        const highest = Math.max(0, ...refs.map(Number));
        if (groups !== undefined && highest > groups)
          c.err(
            `${path}.rewrite.uriRegexRewrite.rewrite`,
            `rewrite refers to \\${highest} but the regex has ${groups} capture group(s)`,
          );
      }
      if (rw.authority && headersSetAuthority(r.headers))
        c.err(`${path}.headers`, 'authority header cannot be set with rewrite.authority');
    }
  }
  c.duration(r.timeout, `${path}.timeout`);
  validateRetries(c, r.retries, `${path}.retries`);
  validateFault(c, r.fault, `${path}.fault`);
  if (has('mirror')) checkDestination(c, r.mirror, `${path}.mirror`);
  c.arr(r.mirrors, `${path}.mirrors`)?.forEach((m, i) => {
    const p = `${path}.mirrors[${i}]`;
    const mo = c.obj(m, p, true);
    if (!mo) return;
    checkDestination(c, mo.destination, `${p}.destination`);
    c.percent(mo.percentage, `${p}.percentage`, false);
  });
  c.int(r.mirrorPercent, `${path}.mirrorPercent`, { min: 0, max: 100 });
  if (has('mirrorPercent')) c.warn(`${path}.mirrorPercent`, 'deprecated: use mirrorPercentage');
  c.percent(r.mirrorPercentage, `${path}.mirrorPercentage`, false);
  validateCors(c, r.corsPolicy, `${path}.corsPolicy`);
  checkHeaders(c, r.headers, `${path}.headers`);
}

function validateHttpMatch(c: Checker, v: unknown, path: string, route: Obj): void {
  const m = c.obj(v, path, true);
  if (!m) return;
  c.str(m.name, `${path}.name`);
  for (const k of ['uri', 'scheme', 'method', 'authority'] as const)
    if (m[k] !== undefined && m[k] !== null)
      checkStringMatch(c, m[k], `${path}.${k}`, { emptyPrefix: k === 'uri' });
  checkStringMatchMap(c, m.headers, `${path}.headers`, { headerNames: true, allowEmpty: true });
  checkStringMatchMap(c, m.withoutHeaders, `${path}.withoutHeaders`, {
    headerNames: true,
    allowEmpty: true,
    nullIsPresence: true,
  });
  checkStringMatchMap(c, m.queryParams, `${path}.queryParams`, {
    headerNames: false,
    allowEmpty: true,
    nullIsPresence: true,
  });
  if (m.port !== 0) c.port(m.port, `${path}.port`);
  c.labels(m.sourceLabels, `${path}.sourceLabels`);
  checkGatewayNames(c, m.gateways, `${path}.gateways`);
  c.bool(m.ignoreUriCase, `${path}.ignoreUriCase`);
  const srcNs = c.str(m.sourceNamespace, `${path}.sourceNamespace`);
  if (srcNs && !isDns1123Label(srcNs))
    c.err(`${path}.sourceNamespace`, `invalid namespace ${JSON.stringify(srcNs)}`);
  c.str(m.statPrefix, `${path}.statPrefix`);
  // Only matches that have a uri constrain prefixRewrite (a match without one is a prefix "/").
  if (isObj(route.redirect) && route.redirect.prefixRewrite && isObj(m.uri) && m.uri.prefix === undefined)
    c.err(`${path}.uri`, 'redirect.prefixRewrite requires every uri match to be a prefix match');
}

function validateRedirect(c: Checker, v: unknown, path: string): void {
  const r = c.obj(v, path);
  if (!r) return;
  c.exclusive(r, path, ['uri', 'prefixRewrite']);
  c.exclusive(r, path, ['port', 'derivePort']);
  c.str(r.uri, `${path}.uri`);
  c.str(r.authority, `${path}.authority`);
  for (const k of ['uri', 'authority', 'prefixRewrite'] as const) noControl(c, r[k], `${path}.${k}`);
  c.str(r.prefixRewrite, `${path}.prefixRewrite`);
  if (r.scheme !== undefined && r.scheme !== '') c.oneOf(r.scheme, `${path}.scheme`, ['http', 'https']);
  c.port(r.port, `${path}.port`);
  c.oneOf(r.derivePort, `${path}.derivePort`, ['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']);
  const code = c.int(r.redirectCode, `${path}.redirectCode`);
  if (code !== undefined && code !== 0 && (code < 300 || code > 399))
    c.err(`${path}.redirectCode`, `${code} is not a valid redirect code, must be 3xx`);
  if (
    !r.uri &&
    !r.authority &&
    r.prefixRewrite === undefined &&
    r.port === undefined &&
    r.derivePort === undefined &&
    !r.scheme
  )
    c.err(path, 'redirect must specify uri, prefixRewrite, authority, scheme, or port');
}

function validateRetries(c: Checker, v: unknown, path: string): void {
  const r = c.obj(v, path);
  if (!r) return;
  const attempts = c.int(r.attempts, `${path}.attempts`, { min: 0 }) ?? 0;
  // Istio: with attempts 0 (the default) retries are off, so tuning them is a mistake.
  if (
    attempts === 0 &&
    [r.perTryTimeout, r.retryOn, r.retryRemoteLocalities].some(
      (x) => x !== undefined && x !== null && x !== '',
    )
  )
    c.err(path, 'retry policy configured while attempts is 0 (retries disabled); set attempts');
  c.duration(r.perTryTimeout, `${path}.perTryTimeout`);
  c.duration(r.backoff, `${path}.backoff`);
  c.bool(r.retryRemoteLocalities, `${path}.retryRemoteLocalities`);
  c.bool(r.retryIgnorePreviousHosts, `${path}.retryIgnorePreviousHosts`);
  const on = c.str(r.retryOn, `${path}.retryOn`);
  if (on !== undefined) {
    for (const raw of on.split(',')) {
      const p = raw.trim();
      if (p === '') continue;
      if (/^\d+$/.test(p)) {
        if (!KNOWN_STATUS.has(Number(p))) c.err(`${path}.retryOn`, `${p} is not a valid HTTP status code`);
      } else if (!RETRY_ON.has(p))
        c.err(`${path}.retryOn`, `${JSON.stringify(p)} is not a valid retryOn policy`);
    }
  }
}

function validateFault(c: Checker, v: unknown, path: string): void {
  const f = c.obj(v, path);
  if (!f) return;
  if (f.delay === undefined && f.abort === undefined) c.err(path, 'fault must have a delay and/or an abort');
  const d = c.obj(f.delay, `${path}.delay`);
  if (d) {
    c.exclusive(d, `${path}.delay`, ['fixedDelay', 'exponentialDelay']);
    if (d.exponentialDelay !== undefined)
      c.err(`${path}.delay.exponentialDelay`, 'exponentialDelay is not supported');
    else if (d.fixedDelay === undefined)
      c.warn(`${path}.delay`, 'delay has no fixedDelay, so it never delays');
    c.duration(d.fixedDelay, `${path}.delay.fixedDelay`);
    c.percent(d.percentage, `${path}.delay.percentage`, true);
    c.int(d.percent, `${path}.delay.percent`, { min: 0, max: 100 });
  }
  const a = c.obj(f.abort, `${path}.abort`);
  if (a) {
    const set = c.exclusive(a, `${path}.abort`, ['httpStatus', 'grpcStatus', 'http2Error']);
    if (set.length === 0)
      c.warn(`${path}.abort`, 'abort has no httpStatus or grpcStatus, so it never aborts');
    if (a.httpStatus !== undefined) checkHttpStatus(c, a.httpStatus, `${path}.abort.httpStatus`);
    if (a.grpcStatus !== undefined) c.oneOf(a.grpcStatus, `${path}.abort.grpcStatus`, GRPC_STATUS);
    if (a.http2Error !== undefined) c.err(`${path}.abort.http2Error`, 'http2Error is not supported');
    c.percent(a.percentage, `${path}.abort.percentage`, true);
  }
}

function validateCors(c: Checker, v: unknown, path: string): void {
  const p = c.obj(v, path);
  if (!p) return;
  c.arr(p.allowOrigins, `${path}.allowOrigins`)?.forEach((m, i) => {
    const o = `${path}.allowOrigins[${i}]`;
    checkStringMatch(c, m, o);
    if (isObj(m) && m.exact === '') c.err(`${o}.exact`, 'an allowOrigins match must not be empty');
  });
  c.strList(p.allowOrigin, `${path}.allowOrigin`);
  c.strList(p.allowMethods, `${path}.allowMethods`).forEach((m, i) => {
    if (!CORS_METHODS.includes(m))
      c.err(`${path}.allowMethods[${i}]`, `${JSON.stringify(m)} is not a supported HTTP method`);
  });
  for (const k of ['allowHeaders', 'exposeHeaders'] as const)
    c.strList(p[k], `${path}.${k}`).forEach((h, i) => {
      c.headerName(h, `${path}.${k}[${i}]`);
    });
  c.duration(p.maxAge, `${path}.maxAge`);
  const maxAgeMs = parseDuration(p.maxAge);
  if (maxAgeMs !== undefined && maxAgeMs % 1000 !== 0)
    c.err(`${path}.maxAge`, 'max_age duration is accurate only to seconds precision');
  c.bool(p.allowCredentials, `${path}.allowCredentials`);
  c.oneOf(p.unmatchedPreflights, `${path}.unmatchedPreflights`, ['UNSPECIFIED', 'FORWARD', 'IGNORE']);
}

/** A TCP route (Istio validateTCPRoute, validateTCPMatch). */
function validateTcpRoute(c: Checker, v: unknown, path: string): void {
  const r = c.obj(v, path, true);
  if (!r) return;
  c.arr(r.match, `${path}.match`)?.forEach((m, i) => {
    const p = `${path}.match[${i}]`;
    const mo = c.obj(m, p, true);
    if (mo) validateL4Match(c, mo, p);
  });
  if (!Array.isArray(r.route) || r.route.length === 0) {
    if (r.route !== undefined && r.route !== null && !Array.isArray(r.route))
      c.err(`${path}.route`, 'must be a list');
    else c.err(`${path}.route`, 'TCP route is required');
  }
  validateRouteDestinations(c, r.route, `${path}.route`);
}

/**
 * A `tls:` route (Istio validateTLSRoute, validateTLSMatch, validateSniHost): every match block
 * names SNI hosts, each within the virtual service's hosts. `gatewaySni`: Istio's isGateway (the
 * gateways do not name `mesh`), which also accepts the SNI AUTO_PASSTHROUGH clients send.
 */
function validateTlsRoute(
  c: Checker,
  v: unknown,
  path: string,
  vsHosts: string[],
  gatewaySni: boolean,
): void {
  const r = c.obj(v, path, true);
  if (!r) return;
  if (r.match !== undefined && r.match !== null && !Array.isArray(r.match))
    c.err(`${path}.match`, 'must be a list');
  else if (!Array.isArray(r.match) || r.match.length === 0)
    c.err(`${path}.match`, 'TLS route must have at least one match condition');
  if (Array.isArray(r.match))
    r.match.forEach((m, i) => {
      const p = `${path}.match[${i}]`;
      if (m === undefined || m === null) {
        c.err(p, 'TLS match may not be null');
        return;
      }
      const mo = c.obj(m, p, true);
      if (!mo) return;
      const missing = Array.isArray(mo.sniHosts)
        ? mo.sniHosts.length === 0
        : mo.sniHosts === undefined || mo.sniHosts === null;
      if (missing) c.err(`${p}.sniHosts`, 'TLS match must have at least one SNI host');
      c.strList(mo.sniHosts, `${p}.sniHosts`).forEach((sni, j) => {
        checkSniHost(c, sni, `${p}.sniHosts[${j}]`, vsHosts, gatewaySni);
      });
      validateL4Match(c, mo, p);
    });
  if (r.route !== undefined && r.route !== null && !Array.isArray(r.route))
    c.err(`${path}.route`, 'must be a list');
  else if (!Array.isArray(r.route) || r.route.length === 0) c.err(`${path}.route`, 'TLS route is required');
  validateRouteDestinations(c, r.route, `${path}.route`);
}

const AUTO_SNI_FORMAT = 'outbound_.<PORT>_._.<HOSTNAME>';

/** Istio ValidateWildcardDomainForVirtualServiceBoundToGateway for an `outbound_` SNI. */
function autoSniError(domain: string): string | undefined {
  const parts = domain.split('_');
  if (parts.length < 4) return `domain name ${domain} invalid, should follow '${AUTO_SNI_FORMAT}' format`;
  const port = (parts[1] as string).replace(/^\.+|\.+$/g, '');
  const host = (parts[3] as string).replace(/^\.+|\.+$/g, '');
  if (!/[0-9]/.test(port))
    return `domain name ${JSON.stringify(domain)} invalid (label ${JSON.stringify(port)} invalid). should follow ${AUTO_SNI_FORMAT} format`;
  if (!/[a-zA-Z]/.test(host))
    return `domain name ${JSON.stringify(domain)} invalid (label ${JSON.stringify(host)} invalid). should follow ${AUTO_SNI_FORMAT} format`;
  return undefined;
}

function checkSniHost(c: Checker, sni: string, path: string, vsHosts: string[], gatewaySni: boolean): void {
  const e =
    gatewaySni && sni.startsWith('outbound_') && sni.length <= 255
      ? autoSniError(sni)
      : wildcardDomainError(sni);
  if (e) {
    if (isIP(sni))
      c.warn(
        path,
        `using an IP address (${JSON.stringify(sni)}) goes against SNI spec and most clients do not support this`,
      );
    else c.err(path, e);
    return;
  }
  const n = sni.toLowerCase();
  if (!vsHosts.some((h) => hostSubsetOf(n, h.toLowerCase())))
    c.err(
      path,
      `SNI host ${JSON.stringify(sni)} is not a compatible subset of any of the virtual service hosts: [${vsHosts.join(', ')}]`,
    );
}

/** What TCP and TLS match blocks share (Istio validateTCPMatch, validateTLSMatch). */
function validateL4Match(c: Checker, mo: Obj, p: string): void {
  c.strList(mo.destinationSubnets, `${p}.destinationSubnets`).forEach((s, j) => {
    // Istio ValidateIPSubnet: with one "/" a CIDR block, otherwise an IP address.
    if (!isCIDR(s))
      c.err(
        `${p}.destinationSubnets[${j}]`,
        s.split('/').length === 2 ? `${s} is not a valid CIDR block` : `${s} is not a valid IP`,
      );
  });
  if (mo.port !== 0) c.port(mo.port, `${p}.port`);
  c.labels(mo.sourceLabels, `${p}.sourceLabels`);
  checkGatewayNames(c, mo.gateways, `${p}.gateways`);
  c.str(mo.sourceNamespace, `${p}.sourceNamespace`);
}

/** Istio validateRouteDestinations for TCP and TLS routes. */
function validateRouteDestinations(c: Checker, v: unknown, path: string): void {
  if (!Array.isArray(v)) return;
  let total = 0;
  v.forEach((d, i) => {
    const p = `${path}[${i}]`;
    const rd = c.obj(d, p, true);
    if (!rd) return;
    checkDestination(c, rd.destination, `${p}.destination`);
    total += c.int(rd.weight, `${p}.weight`, { min: 0 }) ?? 0;
  });
  if (v.length > 1 && total === 0)
    c.err(path, 'total destination weight = 0 (give at least one destination a positive weight)');
}

/** URIs and authorities go onto the wire as is: control characters (CR, LF, NUL, ...) and spaces
 * would split or corrupt the request line or a header. */
function noControl(c: Checker, v: unknown, path: string): void {
  if (typeof v === 'string' && /[\u0000-\u0020\u007f]/.test(v))
    c.err(path, 'must not contain spaces or control characters');
}
