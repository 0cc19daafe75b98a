// Consistent-hash key of a request (Envoy route hash_policy, built from the DestinationRule).
// A cookie policy with a ttl generates the cookie when absent; the generated value is the key,
// so this request and the next ones (which carry the cookie) hash alike.

import { randomUUID } from 'node:crypto';
import { parseQuery } from '../config/compile/route-matcher.js';
import type { HashPolicy } from '../config/snapshot.js';
import { downstreamAddress, type Exchange } from './exchange.js';

export function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (!header) return undefined;
  const s = Array.isArray(header) ? header.join('; ') : header;
  for (const part of s.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) {
      const v = part.slice(eq + 1).trim();
      return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
    }
  }
  return undefined;
}

export function hashKeyFor(p: HashPolicy, x: Exchange): string | undefined {
  switch (p.kind) {
    case 'header': {
      const v = x.headers[p.name];
      return v === undefined ? undefined : Array.isArray(v) ? v.join(',') : v;
    }
    case 'source_ip':
      return downstreamAddress(x);
    case 'query':
      return parseQuery(x.query).get(p.name);
    case 'cookie': {
      const v = cookieValue(x.headers.cookie, p.name);
      if (v !== undefined || p.ttlMs === undefined) return v;
      const generated = randomUUID().replace(/-/g, '').slice(0, 16);
      const maxAge = p.ttlMs > 0 ? `; Max-Age=${Math.floor(p.ttlMs / 1000)}` : '';
      x.setCookie = `${p.name}="${generated}"${maxAge}${p.path ? `; Path=${p.path}` : ''}; HttpOnly`;
      return generated;
    }
  }
}
