// The headers that cross the proxy: the request id and forwarding headers set once per request,
// the upstream request built from the downstream one (hop-by-hop headers dropped, destination then
// route header operations, rewrites), and the upstream response head turned into the downstream
// one. Shared by the forwarder, mirrors and upgrade tunnels.

import { randomUUID } from 'node:crypto';
import { downstreamAddress, type Exchange } from './exchange.js';
import { applyHeaderOps, connectionTokens, HOP_BY_HOP } from './http-util.js';
import type { PoolRequest, RawHeaders } from './upstream-pool.js';

/** The request every attempt sends: dispatched as is to any upstream pool. */
export interface UpstreamRequest extends PoolRequest {
  streamed: boolean;
  fresh: boolean;
}

/** Request id and forwarding headers, set once per request before the first attempt. */
export function prepareRequestHeaders(x: Exchange): void {
  const h = x.headers;
  if (typeof h['x-request-id'] !== 'string' || h['x-request-id'] === '') h['x-request-id'] = randomUUID();
  const remote = downstreamAddress(x);
  const xff = h['x-forwarded-for'];
  h['x-forwarded-for'] = xff ? `${Array.isArray(xff) ? xff.join(',') : xff},${remote}` : remote;
  if (x.listener.kind === 'gateway') {
    h['x-forwarded-proto'] = x.scheme;
    // Gateways SANITIZE_SET: a client's XFCC never passes; a verified client certificate's does.
    const xfcc = x.req.socket.tls?.xfcc;
    if (xfcc === undefined) delete h['x-forwarded-client-cert'];
    else h['x-forwarded-client-cert'] = xfcc;
  } else if (h['x-forwarded-proto'] === undefined) h['x-forwarded-proto'] = x.scheme;
}

export function buildUpstreamRequest(x: Exchange): UpstreamRequest {
  const route = x.route;
  const dest = x.destination;
  const headers: Record<string, string | string[]> = {};
  const drop = connectionTokens(x.headers.connection);
  for (const k in x.headers) {
    const v = x.headers[k];
    if (v === undefined || HOP_BY_HOP.has(k) || k === 'host') continue;
    if (drop.length > 0 && drop.includes(k)) continue;
    headers[k] = v;
  }
  // TE: trailers is the one TE value a proxy may pass on.
  if (x.headers.te === 'trailers') headers.te = 'trailers';
  let authority = x.authority;
  let path = x.path;
  if (route) {
    // Envoy applies the most specific level first (weighted cluster, then route), so the route's
    // `set` wins over a destination's; Istio's routing tests expect the route's authority too.
    if (dest) applyHeaderOps(headers, dest.headers.request);
    applyHeaderOps(headers, route.headers.request);
    authority = route.headers.authority ?? dest?.headers.authority ?? authority;
    const rw = route.rewrite;
    if (rw) {
      if (rw.authority) authority = rw.authority;
      const before = path;
      if (rw.uri !== undefined) {
        const prefix = x.matchPrefix;
        path = prefix !== undefined ? rw.uri + path.slice(prefix.length) : rw.uri;
        if (path === '') path = '/';
      } else if (rw.regex) {
        path = path.replace(rw.regex.pattern, rw.regex.replacement);
      }
      if (path !== before) headers['x-envoy-original-path'] = x.originalPath;
    }
  }
  headers.host = authority;
  return {
    method: x.method,
    path: x.query ? `${path}?${x.query}` : path,
    headers,
    body: null,
    streamed: false,
    fresh: false,
  };
}

/** Upstream response head → downstream: hop-by-hop stripped, route/destination ops, service time. */
export function responseHeaders(
  raw: RawHeaders,
  x: Exchange,
  draining: boolean,
): Record<string, string | string[]> {
  const h: Record<string, string | string[]> = {};
  let drop: string[] | undefined;
  let sawTransferEncoding = false;
  for (let i = 0; i < raw.length; i += 2) {
    // The raw pool hands lower-cased strings; undici hands Buffers as received.
    const n = raw[i] as Buffer | string;
    const k = typeof n === 'string' ? n : n.toString('latin1').toLowerCase();
    const rv = raw[i + 1] as Buffer | string;
    const v = typeof rv === 'string' ? rv : rv.toString('latin1');
    if (k === 'connection') drop = connectionTokens(v);
    else if (k === 'transfer-encoding') sawTransferEncoding = true;
    if (HOP_BY_HOP.has(k)) continue;
    const cur = h[k];
    if (cur === undefined) h[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else h[k] = k === 'set-cookie' ? [cur, v] : `${cur}, ${v}`;
  }
  if (drop) for (const d of drop) delete h[d];
  // Transfer-Encoding (already stripped) overrides Content-Length; ours frames the body instead.
  if (sawTransferEncoding) delete h['content-length'];
  h['x-envoy-upstream-service-time'] = String(x.upstreamServiceTime);
  const route = x.route;
  if (route) {
    // Most specific first, as for request headers: the route's operations have the last word.
    if (x.destination) applyHeaderOps(h, x.destination.headers.response);
    applyHeaderOps(h, route.headers.response);
  }
  if (x.setCookie) {
    const cur = h['set-cookie'];
    h['set-cookie'] =
      cur === undefined ? x.setCookie : Array.isArray(cur) ? [...cur, x.setCookie] : [cur, x.setCookie];
  }
  if (draining) h.connection = 'close';
  return h;
}
