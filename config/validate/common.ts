// Validators shared by several kinds: destinations, string matches, header operations, TLS.

import { type Checker, isObj, keyPath, wildcardDomainError } from './checker.js';

const DNS1123_LABEL_ANYCASE = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

/** A DNS-1123 label as Istio's labels package checks it (letters of either case). */
export function isDns1123LabelAnyCase(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL_ANYCASE.test(s);
}

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
  if (subset !== undefined && subset !== '') checkSubsetName(c, subset, `${path}.subset`);
  const port = c.obj(d.port, `${path}.port`);
  if (port) c.port(port.number, `${path}.port.number`);
}

/** Istio validateSubsetName: a DNS-1123 label. */
export function checkSubsetName(c: Checker, name: string, path: string): void {
  if (!isDns1123LabelAnyCase(name))
    c.err(
      path,
      `invalid subset name ${JSON.stringify(name)} (must be a DNS-1123 label: letters, digits and "-")`,
    );
}

/**
 * StringMatch: a oneof of exact / prefix / regex. `allowEmpty` lets `{}` mean presence (headers,
 * query parameters), and with it `regex: "*"` (Istio's presence match, not RE2). `emptyPrefix`:
 * `prefix: ""` is allowed (uri only, as in Envoy's route match).
 */
export function checkStringMatch(
  c: Checker,
  v: unknown,
  path: string,
  opts: { allowEmpty?: boolean; emptyPrefix?: boolean } = {},
): void {
  const m = c.obj(v, path, true);
  if (!m) return;
  const set = c.exclusive(m, path, ['exact', 'prefix', 'regex']);
  if (set.length === 0 && !opts.allowEmpty) c.err(path, 'one of exact, prefix or regex is required');
  if (m.exact !== undefined) c.str(m.exact, `${path}.exact`);
  if (m.prefix !== undefined) {
    const p = c.str(m.prefix, `${path}.prefix`);
    if (p === '' && !opts.emptyPrefix) c.err(`${path}.prefix`, 'prefix string match should not be empty');
  }
  if (m.regex !== undefined && !(opts.allowEmpty && m.regex === '*')) c.regex(m.regex, `${path}.regex`);
  for (const k of Object.keys(m))
    if (!['exact', 'prefix', 'regex'].includes(k)) c.err(keyPath(path, k), 'unknown field in string match');
}

export function checkStringMatchMap(
  c: Checker,
  v: unknown,
  path: string,
  opts: { headerNames: boolean; allowEmpty: boolean; nullIsPresence?: boolean },
): void {
  const o = c.obj(v, path);
  if (!o) return;
  for (const [k, m] of Object.entries(o)) {
    const p = keyPath(path, k);
    if (opts.headerNames) {
      if (!isJwtClaimKey(k)) c.headerName(k, p, true);
    } else if (k === '') c.err(p, 'query parameter name must not be empty');
    if (m === null || m === undefined) {
      if (!opts.nullIsPresence) c.err(p, 'match cannot be null (use {} to match presence)');
      continue;
    }
    checkStringMatch(c, m, p, { allowEmpty: opts.allowEmpty });
  }
}

/** `@request.auth.claims.<name>` (or `[a][b]`) keys: JWT claim routing, gateway only. */
export function isJwtClaimKey(k: string): boolean {
  return k.startsWith('@request.auth.claims.') || /^@request\.auth\.claims(\[[^\]]+\])+$/.test(k);
}

/**
 * HeaderOperations, with Istio's rules: names must be tokens; pseudo-headers (`:path`) and `host`
 * cannot be touched, except that request `set`/`add` of `:authority` or `host` is a host rewrite.
 * Values may not hold control characters.
 */
export function checkHeaderOps(c: Checker, v: unknown, path: string, request: boolean): void {
  const ops = c.obj(v, path);
  if (!ops) return;
  const checkName = (k: string, p: string, op: 'set' | 'add' | 'remove') => {
    const authority = k.toLowerCase() === 'host' || k.toLowerCase() === ':authority';
    if (authority && request && op !== 'remove') return;
    if (k.toLowerCase() === 'host')
      c.err(p, 'the Host header cannot be modified here (use rewrite.authority)');
    else if (k.startsWith(':'))
      c.err(p, `invalid header ${JSON.stringify(k)}: pseudo-headers cannot be modified`);
    else c.headerName(k, p);
  };
  for (const op of ['set', 'add'] as const) {
    const m = c.obj(ops[op], `${path}.${op}`);
    if (!m) continue;
    for (const [k, val] of Object.entries(m)) {
      const p = keyPath(`${path}.${op}`, k);
      checkName(k, p, op);
      if (typeof val !== 'string') c.err(p, 'header value must be a string');
      else if (/[\u0000-\u0008\u000a-\u001f\u007f]/.test(val))
        c.err(p, 'header value must not contain control characters');
    }
  }
  const rm = c.strList(ops.remove, `${path}.remove`);
  rm.forEach((k, i) => {
    checkName(k, `${path}.remove[${i}]`, 'remove');
  });
  for (const k of Object.keys(ops))
    if (!['set', 'add', 'remove'].includes(k))
      c.err(keyPath(path, k), 'unknown field (expected set, add or remove)');
}

export function checkHeaders(c: Checker, v: unknown, path: string): void {
  const h = c.obj(v, path);
  if (!h) return;
  checkHeaderOps(c, h.request, `${path}.request`, true);
  checkHeaderOps(c, h.response, `${path}.response`, false);
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
