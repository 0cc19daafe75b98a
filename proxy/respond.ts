// Local replies: Envoy's status, body and flag for a typed outcome (local-reply.ts), with the
// route's response header operations, written to the downstream response. Every stage that
// answers on its own (the request path, the forwarder, the upgrade tunnel) answers through here.

import type { CompiledRoute } from '../config/snapshot.js';
import type { ProxyDeps } from './deps.js';
import type { Exchange } from './exchange.js';
import { applyHeaderOps } from './http-util.js';
import { LOCAL_REPLIES, type LocalOutcome, resetWords } from './local-reply.js';

const OVERLOADED: [string, string][] = [['x-envoy-overloaded', 'true']];

export function localReply(x: Exchange, outcome: LocalOutcome, deps: ProxyDeps): void {
  const r = LOCAL_REPLIES[outcome];
  if (r.flag) x.flag(r.flag);
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

/** Write a locally generated response (route response header ops apply, as in Envoy). */
export function sendLocal(
  x: Exchange,
  status: number,
  body: Buffer | undefined,
  route: CompiledRoute | undefined,
  deps: ProxyDeps,
  grpcStatus?: string,
  extra?: readonly (readonly [string, string])[],
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
