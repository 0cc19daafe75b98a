// HTTPMatchRequest → a pre-built matcher. Conditions inside a block are AND-ed; the caller
// OR-s the blocks. Regexes are compiled once here: full-string RE2, linear time (config/regex.ts).

import { compileRegex } from '../regex.js';
import type { Matcher, RequestView } from '../snapshot.js';
import type { HTTPMatchRequest, StringMatch } from '../types.js';

type StrPred = (v: string) => boolean;

/** StringMatch → predicate. `lower` folds case on exact/prefix (ignoreUriCase). */
export function stringPredicate(m: StringMatch, lower = false): StrPred {
  if (m.exact !== undefined) {
    const x = lower ? m.exact.toLowerCase() : m.exact;
    return lower ? (v) => v.toLowerCase() === x : (v) => v === x;
  }
  if (m.prefix !== undefined) {
    const p = lower ? m.prefix.toLowerCase() : m.prefix;
    return lower ? (v) => v.toLowerCase().startsWith(p) : (v) => v.startsWith(p);
  }
  if (m.regex !== undefined) {
    const r = compileRegex(m.regex);
    if (typeof r === 'string') throw new Error(`regex passed validation but does not compile: ${r}`);
    const re = r.full;
    return (v) => re.test(v);
  }
  return () => true;
}

const IGNORED_HEADER_KEYS = new Set(['uri', 'scheme', 'method', 'authority']);

/** Value of a header (or pseudo-header) as Envoy's header matcher sees it; undefined when absent. */
function headerValue(req: RequestView, name: string): string | undefined {
  switch (name) {
    case ':method':
      return req.method;
    case ':authority':
    case 'host':
      return req.authority;
    case ':scheme':
      return req.scheme;
    case ':path':
      return req.query ? `${req.path}?${req.query}` : req.path;
  }
  const v = req.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

function isPresence(m: StringMatch | null | undefined): boolean {
  if (!m) return true;
  if (m.regex === '*') return true;
  return m.exact === undefined && m.prefix === undefined && m.regex === undefined;
}

/** First value of each query parameter, percent-decoded. */
export function parseQuery(query: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!query) return out;
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = safeDecode(eq >= 0 ? part.slice(0, eq) : part);
    if (!out.has(k)) out.set(k, safeDecode(eq >= 0 ? part.slice(eq + 1) : ''));
  }
  return out;
}

function safeDecode(s: string): string {
  if (!s.includes('%') && !s.includes('+')) return s;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

export function compileMatchBlock(m: HTTPMatchRequest): Matcher {
  const conds: Matcher[] = [];
  if (m.uri) {
    const p = stringPredicate(m.uri, m.ignoreUriCase === true && m.uri.regex === undefined);
    conds.push((r) => p(r.path));
  }
  if (m.method) {
    const p = stringPredicate(m.method);
    conds.push((r) => p(r.method));
  }
  if (m.authority) {
    const p = stringPredicate(m.authority);
    conds.push((r) => p(r.authority));
  }
  if (m.scheme) {
    const p = stringPredicate(m.scheme);
    conds.push((r) => p(r.scheme));
  }
  for (const [rawName, sm] of Object.entries(m.headers ?? {})) {
    const name = rawName.toLowerCase();
    if (IGNORED_HEADER_KEYS.has(name) || name.startsWith('@request.auth.claims')) continue;
    if (isPresence(sm)) conds.push((r) => headerValue(r, name) !== undefined);
    else {
      const p = stringPredicate(sm as StringMatch);
      conds.push((r) => {
        const v = headerValue(r, name);
        return v !== undefined && p(v);
      });
    }
  }
  for (const [rawName, sm] of Object.entries(m.withoutHeaders ?? {})) {
    const name = rawName.toLowerCase();
    if (IGNORED_HEADER_KEYS.has(name) || name.startsWith('@request.auth.claims')) continue;
    // Istio: invert_match + treat_missing_header_as_empty. A missing header makes the request match.
    if (isPresence(sm)) conds.push((r) => headerValue(r, name) === undefined);
    else {
      const p = stringPredicate(sm as StringMatch);
      conds.push((r) => !p(headerValue(r, name) ?? ''));
    }
  }
  const qps = Object.entries(m.queryParams ?? {});
  if (qps.length > 0) {
    const preds = qps.map(
      ([k, sm]) => [k, isPresence(sm) ? undefined : stringPredicate(sm as StringMatch)] as const,
    );
    conds.push((r) => {
      const q = parseQuery(r.query);
      for (const [k, p] of preds) {
        const v = q.get(k);
        if (v === undefined || (p && !p(v))) return false;
      }
      return true;
    });
  }
  if (conds.length === 0) return () => true;
  if (conds.length === 1) return conds[0] as Matcher;
  return (r) => {
    for (const c of conds) if (!c(r)) return false;
    return true;
  };
}
