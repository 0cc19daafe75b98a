// Validators shared by several kinds: destinations, string matches, header operations, TLS.

import { type Checker, isObj, keyPath, wildcardDomainError } from './checker.js';

export const GRPC_STATUS = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;

export function checkHost(c: Checker, host: unknown, path: string, opts: { allowStar?: boolean } = {}): void {
  const h = c.str(host, path, true);
  if (h === undefined) return;
  if (h === '*' && opts.allowStar === false) {
    c.err(path, 'wildcard host "*" is not allowed here');
    return;
  }
  const e = wildcardDomainError(h);
  if (e) c.err(path, e);
}

export function checkDestination(c: Checker, v: unknown, path: string): void {
  const d = c.obj(v, path, true);
  if (!d) return;
  const host = c.str(d.host, `${path}.host`, true);
  if (host !== undefined) {
    if (host === '*') c.err(`${path}.host`, 'destination host must not be "*"');
    else {
      const e = wildcardDomainError(host);
      if (e) c.err(`${path}.host`, e);
    }
  }
  const subset = c.str(d.subset, `${path}.subset`);
  if (subset !== undefined && subset !== '' && !/^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$/.test(subset))
    c.err(`${path}.subset`, `invalid subset name ${JSON.stringify(subset)}`);
  const port = c.obj(d.port, `${path}.port`);
  if (port) c.port(port.number, `${path}.port.number`);
}

/** StringMatch: a oneof of exact / prefix / regex. `allowEmpty` lets `{}` mean presence (headers). */
export function checkStringMatch(c: Checker, v: unknown, path: string, allowEmpty = false): void {
  if (v === null && allowEmpty) return;
  const m = c.obj(v, path, true);
  if (!m) return;
  const set = c.exclusive(m, path, ['exact', 'prefix', 'regex']);
  if (set.length === 0 && !allowEmpty) c.err(path, 'one of exact, prefix or regex is required');
  if (m.exact !== undefined) c.str(m.exact, `${path}.exact`);
  if (m.prefix !== undefined) {
    const p = c.str(m.prefix, `${path}.prefix`);
    if (p === '') c.err(`${path}.prefix`, 'prefix string match should not be empty');
  }
  // `regex: "*"` is Istio's presence match for headers (not RE2).
  if (m.regex !== undefined && !(allowEmpty && m.regex === '*')) c.regex(m.regex, `${path}.regex`);
  for (const k of Object.keys(m))
    if (!['exact', 'prefix', 'regex'].includes(k)) c.err(keyPath(path, k), 'unknown field in string match');
}

export function checkStringMatchMap(
  c: Checker,
  v: unknown,
  path: string,
  opts: { headerNames: boolean; allowEmpty: boolean },
): void {
  const o = c.obj(v, path);
  if (!o) return;
  for (const [k, m] of Object.entries(o)) {
    const p = keyPath(path, k);
    if (opts.headerNames) {
      if (!k.startsWith('@request.auth.claims')) c.headerName(k, p, true);
    } else if (k === '') c.err(p, 'query parameter name must not be empty');
    checkStringMatch(c, m, p, opts.allowEmpty);
  }
}

export function checkHeaderOps(c: Checker, v: unknown, path: string): void {
  const ops = c.obj(v, path);
  if (!ops) return;
  for (const kind of ['set', 'add'] as const) {
    const m = c.obj(ops[kind], `${path}.${kind}`);
    if (!m) continue;
    for (const [k, val] of Object.entries(m)) {
      const p = keyPath(`${path}.${kind}`, k);
      c.headerName(k, p, true);
      if (typeof val !== 'string') c.err(p, 'header value must be a string');
    }
  }
  const rm = c.strList(ops.remove, `${path}.remove`);
  rm.forEach((k, i) => {
    c.headerName(k, `${path}.remove[${i}]`, true);
  });
}

export function checkHeaders(c: Checker, v: unknown, path: string): void {
  const h = c.obj(v, path);
  if (!h) return;
  checkHeaderOps(c, h.request, `${path}.request`);
  checkHeaderOps(c, h.response, `${path}.response`);
}

/** True when headers.request sets or adds the authority (host rewrite via headers). */
export function headersSetAuthority(v: unknown): boolean {
  if (!isObj(v) || !isObj(v.request)) return false;
  const req = v.request;
  return ['set', 'add'].some((kind) => {
    const m = req[kind];
    return isObj(m) && Object.keys(m).some((k) => k.toLowerCase() === 'host' || k === ':authority');
  });
}

/** Istio validateHTTPStatus: 200..599. */
export function checkHttpStatus(c: Checker, v: unknown, path: string, required = true): void {
  const s = c.int(v, path, { required });
  if (s !== undefined && (s < 200 || s > 599)) c.err(path, `HTTP status ${s} is not in range 200-599`);
}

export function checkGatewayNames(c: Checker, v: unknown, path: string): void {
  c.strList(v, path).forEach((g, i) => {
    const p = `${path}[${i}]`;
    if (g === 'mesh') return;
    const parts = g.split('/');
    if (parts.length > 2 || parts.some((x) => x === '')) {
      c.err(p, `invalid gateway name ${JSON.stringify(g)} (expected "mesh", "name" or "namespace/name")`);
      return;
    }
    const name = parts[parts.length - 1] as string;
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) c.err(p, `invalid gateway name ${JSON.stringify(g)}`);
  });
}
