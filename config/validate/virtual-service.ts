// VirtualService validation, after Istio's pkg/config/validation (virtualservice.go, validation.go).

import { type Checker, isIP, isObj, type Obj } from './checker.js';
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

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'];

function appliesToMesh(gateways: unknown): boolean {
  return !Array.isArray(gateways) || gateways.length === 0 || gateways.includes('mesh');
}

export function validateVirtualService(c: Checker, spec: Obj): void {
  const isDelegate = spec.hosts === undefined || (Array.isArray(spec.hosts) && spec.hosts.length === 0);
  const mesh = appliesToMesh(spec.gateways);
  const hosts = c.strList(spec.hosts, 'spec.hosts');
  const seen = new Map<string, number>();
  hosts.forEach((h, i) => {
    const p = `spec.hosts[${i}]`;
    if (h === '*' && mesh) {
      c.err(p, 'wildcard host * is not allowed for virtual services bound to the mesh gateway');
      return;
    }
    if (isIP(h)) {
      if (mesh) c.err(p, 'IP address hosts are only allowed for virtual services bound to gateways');
      return;
    }
    checkHost(c, h, p);
    const key = h.toLowerCase();
    const prev = seen.get(key);
    if (prev !== undefined) c.err(p, `duplicate host "${h}" (also spec.hosts[${prev}])`);
    else seen.set(key, i);
  });
  // Overlapping wildcards (`*.foo.com` with `*.com`) count as duplicates in Istio.
  hosts.forEach((a, i) => {
    hosts.forEach((b, j) => {
      if (i < j && a !== b && a.startsWith('*.') && b.startsWith('*.')) {
        const [shorter, longer, at] = a.length < b.length ? [a, b, j] : [b, a, i];
        if (longer.endsWith(shorter.slice(1))) c.err(`spec.hosts[${at}]`, `host "${longer}" overlaps "${shorter}"`);
      }
    });
  });
  checkGatewayNames(c, spec.gateways, 'spec.gateways');
  c.strList(spec.exportTo, 'spec.exportTo');

  const http = c.arr(spec.http, 'spec.http');
  const tcp = c.arr(spec.tcp, 'spec.tcp');
  const tls = c.arr(spec.tls, 'spec.tls');
  if (!http?.length && !tcp?.length && !tls?.length)
    c.err('spec', 'http, tcp or tls must be provided in virtual service');
  http?.forEach((r, i) => {
    validateHttpRoute(c, r, `spec.http[${i}]`, isDelegate);
  });
  tcp?.forEach((r, i) => {
    validateL4Route(c, r, `spec.tcp[${i}]`, false);
  });
  tls?.forEach((r, i) => {
    validateL4Route(c, r, `spec.tls[${i}]`, true);
  });
}

function validateHttpRoute(c: Checker, v: unknown, path: string, isDelegate: boolean): void {
  const r = c.obj(v, path, true);
  if (!r) return;
  c.str(r.name, `${path}.name`);
  const has = (k: string) => r[k] !== undefined && r[k] !== null;
  const hasRoute = Array.isArray(r.route) && r.route.length > 0;
  if (has('redirect')) {
    for (const k of ['route', 'fault', 'rewrite', 'directResponse'])
      if (k === 'route' ? hasRoute : has(k)) c.err(path, `HTTP route cannot contain both "${k}" and "redirect"`);
  }
  if (has('directResponse')) {
    for (const k of ['route', 'fault', 'rewrite'])
      if (k === 'route' ? hasRoute : has(k)) c.err(path, `HTTP route cannot contain both "${k}" and "directResponse"`);
  }
  if (has('delegate')) {
    if (isDelegate) c.err(`${path}.delegate`, 'delegate virtual service cannot itself delegate');
    if (hasRoute || has('redirect')) c.err(path, 'HTTP route cannot contain both "delegate" and "route"/"redirect"');
    const d = c.obj(r.delegate, `${path}.delegate`);
    if (d) c.str(d.name, `${path}.delegate.name`, true);
  } else if (!hasRoute && !has('redirect') && !has('directResponse')) {
    c.err(path, 'HTTP route, redirect or direct response is required');
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
    const weighted = route.some((d) => isObj(d) && d.weight !== undefined);
    if (route.length > 1 && weighted && total === 0) c.err(`${path}.route`, 'total destination weight = 0');
  }

  if (has('redirect')) validateRedirect(c, r.redirect, `${path}.redirect`, r.match);
  if (has('directResponse')) {
    const dr = c.obj(r.directResponse, `${path}.directResponse`);
    if (dr) {
      checkHttpStatus(c, dr.status, `${path}.directResponse.status`);
      const body = c.obj(dr.body, `${path}.directResponse.body`);
      if (body) {
        c.exclusive(body, `${path}.directResponse.body`, ['string', 'bytes']);
        const text = typeof body.string === 'string' ? body.string : typeof body.bytes === 'string' ? body.bytes : '';
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
      if (rw.uri === undefined && rw.authority === undefined && rw.uriRegexRewrite === undefined)
        c.err(`${path}.rewrite`, 'rewrite must specify uri, authority, or uriRegexRewrite');
      const rr = c.obj(rw.uriRegexRewrite, `${path}.rewrite.uriRegexRewrite`);
      if (rr) {
        if (c.str(rr.match, `${path}.rewrite.uriRegexRewrite.match`, true) !== undefined)
          c.regex(rr.match, `${path}.rewrite.uriRegexRewrite.match`);
        c.str(rr.rewrite, `${path}.rewrite.uriRegexRewrite.rewrite`, true);
      }
      if (rw.authority !== undefined && headersSetAuthority(r.headers))
        c.err(`${path}.headers`, 'authority header cannot be set with rewrite.authority');
    }
  }
  c.duration(r.timeout, `${path}.timeout`, { allowZero: true });
  validateRetries(c, r.retries, `${path}.retries`);
  validateFault(c, r.fault, `${path}.fault`);
  if (has('mirror')) checkDestination(c, r.mirror, `${path}.mirror`);
  c.arr(r.mirrors, `${path}.mirrors`)?.forEach((m, i) => {
    const p = `${path}.mirrors[${i}]`;
    const mo = c.obj(m, p, true);
    if (!mo) return;
    checkDestination(c, mo.destination, `${p}.destination`);
    c.percent(mo.percentage, `${p}.percentage`);
  });
  c.int(r.mirrorPercent, `${path}.mirrorPercent`, { min: 0, max: 100 });
  c.percent(r.mirrorPercentage, `${path}.mirrorPercentage`);
  validateCors(c, r.corsPolicy, `${path}.corsPolicy`);
  checkHeaders(c, r.headers, `${path}.headers`);
}

function validateHttpMatch(c: Checker, v: unknown, path: string, route: Obj): void {
  const m = c.obj(v, path, true);
  if (!m) return;
  c.str(m.name, `${path}.name`);
  for (const k of ['uri', 'scheme', 'method', 'authority'] as const)
    if (m[k] !== undefined) checkStringMatch(c, m[k], `${path}.${k}`);
  checkStringMatchMap(c, m.headers, `${path}.headers`, { headerNames: true, allowEmpty: true });
  checkStringMatchMap(c, m.withoutHeaders, `${path}.withoutHeaders`, { headerNames: true, allowEmpty: true });
  checkStringMatchMap(c, m.queryParams, `${path}.queryParams`, { headerNames: false, allowEmpty: true });
  c.port(m.port, `${path}.port`);
  c.labels(m.sourceLabels, `${path}.sourceLabels`);
  checkGatewayNames(c, m.gateways, `${path}.gateways`);
  c.bool(m.ignoreUriCase, `${path}.ignoreUriCase`);
  c.str(m.sourceNamespace, `${path}.sourceNamespace`);
  c.str(m.statPrefix, `${path}.statPrefix`);
  if (isObj(route.redirect) && route.redirect.prefixRewrite !== undefined) {
    if (!isObj(m.uri) || m.uri.prefix === undefined)
      c.err(`${path}.uri`, 'redirect.prefixRewrite requires every uri match to be a prefix match');
  }
}

function validateRedirect(c: Checker, v: unknown, path: string, matches: unknown): void {
  const r = c.obj(v, path);
  if (!r) return;
  c.exclusive(r, path, ['uri', 'prefixRewrite']);
  c.exclusive(r, path, ['port', 'derivePort']);
  c.str(r.uri, `${path}.uri`);
  c.str(r.authority, `${path}.authority`);
  c.str(r.prefixRewrite, `${path}.prefixRewrite`);
  if (r.scheme !== undefined) c.oneOf(r.scheme, `${path}.scheme`, ['http', 'https']);
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
  if (r.prefixRewrite !== undefined && (!Array.isArray(matches) || matches.length === 0))
    c.err(`${path}.prefixRewrite`, 'prefixRewrite requires a prefix uri match');
}

function validateRetries(c: Checker, v: unknown, path: string): void {
  const r = c.obj(v, path);
  if (!r) return;
  c.int(r.attempts, `${path}.attempts`, { min: 0 });
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
        const code = Number(p);
        if (code < 100 || code > 599) c.err(`${path}.retryOn`, `${p} is not a valid HTTP status code`);
      } else if (!RETRY_ON.has(p)) c.err(`${path}.retryOn`, `${JSON.stringify(p)} is not a valid retryOn policy`);
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
    if (d.exponentialDelay !== undefined) c.err(`${path}.delay.exponentialDelay`, 'exponentialDelay is not supported');
    else if (d.fixedDelay === undefined) c.err(`${path}.delay.fixedDelay`, 'is required');
    c.duration(d.fixedDelay, `${path}.delay.fixedDelay`);
    c.percent(d.percentage, `${path}.delay.percentage`);
    c.int(d.percent, `${path}.delay.percent`, { min: 0, max: 100 });
  }
  const a = c.obj(f.abort, `${path}.abort`);
  if (a) {
    const set = c.exclusive(a, `${path}.abort`, ['httpStatus', 'grpcStatus', 'http2Error']);
    if (set.length === 0) c.err(`${path}.abort`, 'one of httpStatus or grpcStatus is required');
    if (a.httpStatus !== undefined) checkHttpStatus(c, a.httpStatus, `${path}.abort.httpStatus`);
    if (a.grpcStatus !== undefined) c.oneOf(a.grpcStatus, `${path}.abort.grpcStatus`, GRPC_STATUS);
    if (a.http2Error !== undefined) c.err(`${path}.abort.http2Error`, 'http2Error is not supported');
    c.percent(a.percentage, `${path}.abort.percentage`);
  }
}

function validateCors(c: Checker, v: unknown, path: string): void {
  const p = c.obj(v, path);
  if (!p) return;
  c.arr(p.allowOrigins, `${path}.allowOrigins`)?.forEach((m, i) => {
    checkStringMatch(c, m, `${path}.allowOrigins[${i}]`);
  });
  c.strList(p.allowOrigin, `${path}.allowOrigin`);
  c.strList(p.allowMethods, `${path}.allowMethods`).forEach((m, i) => {
    if (!HTTP_METHODS.includes(m)) c.err(`${path}.allowMethods[${i}]`, `${JSON.stringify(m)} is not a valid HTTP method`);
  });
  for (const k of ['allowHeaders', 'exposeHeaders'] as const)
    c.strList(p[k], `${path}.${k}`).forEach((h, i) => {
      c.headerName(h, `${path}.${k}[${i}]`);
    });
  c.duration(p.maxAge, `${path}.maxAge`, { allowZero: true });
  c.bool(p.allowCredentials, `${path}.allowCredentials`);
  c.oneOf(p.unmatchedPreflights, `${path}.unmatchedPreflights`, ['UNSPECIFIED', 'FORWARD', 'IGNORE']);
}

function validateL4Route(c: Checker, v: unknown, path: string, tls: boolean): void {
  const r = c.obj(v, path, true);
  if (!r) return;
  const matches = c.arr(r.match, `${path}.match`, tls);
  matches?.forEach((m, i) => {
    const p = `${path}.match[${i}]`;
    const mo = c.obj(m, p, true);
    if (!mo) return;
    if (tls) c.strList(mo.sniHosts, `${p}.sniHosts`, true);
    c.port(mo.port, `${p}.port`);
    c.labels(mo.sourceLabels, `${p}.sourceLabels`);
    checkGatewayNames(c, mo.gateways, `${p}.gateways`);
    c.strList(mo.destinationSubnets, `${p}.destinationSubnets`);
  });
  const route = c.arr(r.route, `${path}.route`, true);
  let total = 0;
  route?.forEach((d, i) => {
    const p = `${path}.route[${i}]`;
    const rd = c.obj(d, p, true);
    if (!rd) return;
    checkDestination(c, rd.destination, `${p}.destination`);
    total += c.int(rd.weight, `${p}.weight`, { min: 0 }) ?? 0;
  });
  if (route && route.length > 1 && route.some((d) => isObj(d) && d.weight !== undefined) && total === 0)
    c.err(`${path}.route`, 'total destination weight = 0');
}
