// Small HTTP helpers for the request path: hop-by-hop headers, path normalisation, header ops.

import type { HeaderOps } from '../config/snapshot.js';

/** Never forwarded in either direction (RFC 9110 §7.6.1 plus the legacy proxy ones). */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

/** An RFC 9110 token: what a header name (and a method) may be. */
export const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const NONE: string[] = [];

/** Header names listed in a Connection header (also hop-by-hop). */
export function connectionTokens(v: string | string[] | undefined): string[] {
  if (!v || v === 'keep-alive' || v === 'close' || v === 'Keep-Alive') return NONE;
  const s = Array.isArray(v) ? v.join(',') : v;
  return s
    .split(',')
    .map((x) => x.trim().toLowerCase())
    .filter((x) => x && x !== 'close' && x !== 'keep-alive' && x !== 'upgrade');
}

/**
 * RFC 3986 dot-segment removal (Envoy normalize_path): `/a/./b/../c` → `/a/c`. Returns undefined
 * for a path that is not origin-form (caller answers 400).
 */
export function normalizePath(path: string): string | undefined {
  if (path.length === 0 || path[0] !== '/') return undefined;
  if (!path.includes('/.') && !path.includes('\\')) return path;
  const segs = path.split('/');
  const out: string[] = [];
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i] as string;
    if (s === '.') {
      if (i === segs.length - 1) out.push('');
      continue;
    }
    if (s === '..') {
      out.pop();
      if (i === segs.length - 1) out.push('');
      continue;
    }
    out.push(s);
  }
  return `/${out.join('/')}`;
}

/** Apply set/add/remove to a flat lowercase header record. `add` appends with a comma. */
export function applyHeaderOps(headers: Record<string, string | string[] | undefined>, ops: HeaderOps): void {
  for (const k of ops.remove) delete headers[k];
  for (const [k, v] of ops.set) headers[k] = v;
  for (const [k, v] of ops.add) {
    const cur = headers[k];
    if (cur === undefined) headers[k] = v;
    else if (Array.isArray(cur)) cur.push(v);
    else headers[k] = k === 'set-cookie' ? [cur, v] : `${cur},${v}`;
  }
}

export function hasOps(ops: HeaderOps): boolean {
  return ops.set.length > 0 || ops.add.length > 0 || ops.remove.length > 0;
}
