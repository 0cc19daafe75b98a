// A path-aware walker over untyped YAML. Every check records an error and carries on, so one
// run collects every problem in a document (never stop at the first).

import { isIPv4 as netIsIPv4, isIPv6 as netIsIPv6 } from 'node:net';
import { checkDuration } from '../duration.js';
import { checkRegex } from '../regex.js';

export interface PathError {
  path: string;
  message: string;
}

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_LABEL_ANYCASE = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const WILDCARD_LABEL = /^(\*|(\*|\*-)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$/;
const LABEL_NAME = /^([a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?)$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** HTTP/2 pseudo-headers a route match may name (Istio's list). */
export const PSEUDO_HEADERS: ReadonlySet<string> = new Set([
  ':method',
  ':scheme',
  ':authority',
  ':path',
  ':status',
]);

export function isToken(name: string): boolean {
  return TOKEN.test(name);
}

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

/** Kubernetes IsDNS1123Subdomain (object names): at most 253 characters, no per-label limit. */
export function isDns1123Subdomain(s: string): boolean {
  return s.length > 0 && s.length <= 253 && s.split('.').every((l) => DNS1123_LABEL.test(l));
}

export function isIPv4(s: string): boolean {
  return netIsIPv4(s);
}

export function isIPv6(s: string): boolean {
  return netIsIPv6(s);
}

export function isIP(s: string): boolean {
  return isIPv4(s) || isIPv6(s);
}

export function isCIDR(s: string): boolean {
  const [ip, bits, extra] = s.split('/');
  if (extra !== undefined || ip === undefined) return false;
  if (bits === undefined) return isIP(ip);
  if (!/^\d{1,3}$/.test(bits)) return false;
  return isIPv4(ip) ? Number(bits) <= 32 : isIPv6(ip) && Number(bits) <= 128;
}

/**
 * Istio ValidateWildcardDomain: `*`, `*.example.com`, `*foo.example.com`, `*-foo.example.com` or a
 * plain DNS name (one trailing dot allowed); the top-level label may not be all digits, so an IP
 * address is not a domain.
 */
export function wildcardDomainError(domain: string): string | undefined {
  if (domain.length === 0) return 'empty domain name not allowed';
  if (domain.length > 255) return `domain name "${domain}" too long (max 255)`;
  const labels = domain.split('.');
  const first = labels[0] as string;
  if (!WILDCARD_LABEL.test(first) || first.length > 63) {
    if (first.slice(1).includes('*'))
      return `domain name "${domain}" invalid (wildcard only allowed as the left-most label)`;
    return `domain name "${domain}" invalid (label "${first}" invalid)`;
  }
  if (labels.length === 1) return undefined;
  const rest = labels.slice(1);
  const tld = rest[rest.length - 1] as string;
  if (/^\d+$/.test(tld))
    return `domain name "${domain}" invalid (top level domain "${tld}" cannot be all-numeric)`;
  for (let i = 0; i < rest.length; i++) {
    const l = rest[i] as string;
    if (l === '' && i === rest.length - 1) break; // a trailing dot (FQDN) is allowed once
    if (l.includes('*'))
      return `domain name "${domain}" invalid (wildcard only allowed as the left-most label)`;
    if (l.length > 63 || !DNS1123_LABEL_ANYCASE.test(l))
      return `domain name "${domain}" invalid (label "${l}" invalid)`;
  }
  return undefined;
}

export class Checker {
  readonly errors: PathError[] = [];
  readonly warnings: PathError[] = [];

  err(path: string, message: string): void {
    this.errors.push({ path, message });
  }

  warn(path: string, message: string): void {
    this.warnings.push({ path, message });
  }

  /** An object, or undefined (recording an error when present but not an object). */
  obj(v: unknown, path: string, required = false): Obj | undefined {
    if (v === undefined || v === null) {
      if (required) this.err(path, 'is required');
      return undefined;
    }
    if (!isObj(v)) {
      this.err(path, 'must be an object');
      return undefined;
    }
    return v;
  }

  arr(v: unknown, path: string, required = false): unknown[] | undefined {
    if (v === undefined || v === null) {
      if (required) this.err(path, 'is required');
      return undefined;
    }
    if (!Array.isArray(v)) {
      this.err(path, 'must be a list');
      return undefined;
    }
    if (required && v.length === 0) this.err(path, 'must not be empty');
    return v;
  }

  str(v: unknown, path: string, required = false): string | undefined {
    if (v === undefined || v === null || (required && v === '')) {
      if (required) this.err(path, 'is required');
      return undefined;
    }
    if (typeof v !== 'string') {
      this.err(path, 'must be a string');
      return undefined;
    }
    return v;
  }

  strList(v: unknown, path: string, required = false): string[] {
    const a = this.arr(v, path, required);
    if (!a) return [];
    const out: string[] = [];
    a.forEach((s, i) => {
      const x = this.str(s, `${path}[${i}]`, true);
      if (x !== undefined) out.push(x);
    });
    return out;
  }

  bool(v: unknown, path: string): boolean | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'boolean') {
      this.err(path, 'must be true or false');
      return undefined;
    }
    return v;
  }

  /** An integer (YAML may quote numbers in Int32Value wrappers; accept numeric strings too). */
  int(
    v: unknown,
    path: string,
    opts: { required?: boolean; min?: number; max?: number } = {},
  ): number | undefined {
    if (v === undefined || v === null) {
      if (opts.required) this.err(path, 'is required');
      return undefined;
    }
    const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) {
      this.err(path, 'must be an integer');
      return undefined;
    }
    if (opts.min !== undefined && n < opts.min) {
      this.err(path, `must be >= ${opts.min}`);
      return undefined;
    }
    if (opts.max !== undefined && n > opts.max) {
      this.err(path, `must be <= ${opts.max}`);
      return undefined;
    }
    return n;
  }

  num(v: unknown, path: string, opts: { min?: number; max?: number } = {}): number | undefined {
    if (v === undefined || v === null) return undefined;
    const n = typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) {
      this.err(path, 'must be a number');
      return undefined;
    }
    if (opts.min !== undefined && n < opts.min) this.err(path, `must be >= ${opts.min}`);
    else if (opts.max !== undefined && n > opts.max) this.err(path, `must be <= ${opts.max}`);
    else return n;
    return undefined;
  }

  port(v: unknown, path: string, required = false): number | undefined {
    if (v === undefined || v === null) {
      if (required) this.err(path, 'is required');
      return undefined;
    }
    const n = this.int(v, path);
    if (n === undefined) return undefined;
    if (n < 1 || n > 65535) {
      this.err(path, `port number ${n} must be in the range 1..65535`);
      return undefined;
    }
    return n;
  }

  duration(v: unknown, path: string, opts: { allowZero?: boolean } = {}): void {
    if (v === undefined || v === null) return;
    const e = checkDuration(v, opts);
    if (e) this.err(path, e);
  }

  regex(v: unknown, path: string): void {
    const e = checkRegex(v);
    if (e) this.err(path, e);
  }

  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.err(path, `unsupported value ${JSON.stringify(v)} (expected one of ${allowed.join(', ')})`);
      return undefined;
    }
    return v as T;
  }

  /** At most one of `keys` may be set on `o`. Returns the set keys. */
  exclusive(o: Obj, path: string, keys: readonly string[], what?: string): string[] {
    const set = keys.filter((k) => o[k] !== undefined && o[k] !== null);
    if (set.length > 1)
      this.err(
        path,
        `${what ?? 'only one of'} ${set.map((k) => `"${k}"`).join(' and ')} ${what ? '' : 'may be set'}`.trim(),
      );
    return set;
  }

  /** An HTTP header name (an RFC 7230 token). `allowPseudo`: also the HTTP/2 pseudo-headers. */
  headerName(name: string, path: string, allowPseudo = false): boolean {
    if (name === '') {
      this.err(path, 'header name cannot be empty');
      return false;
    }
    if (allowPseudo && PSEUDO_HEADERS.has(name)) return true;
    if (!isToken(name)) {
      this.err(path, `invalid header name ${JSON.stringify(name)}`);
      return false;
    }
    return true;
  }

  labels(v: unknown, path: string): Record<string, string> | undefined {
    const o = this.obj(v, path);
    if (!o) return undefined;
    for (const [k, val] of Object.entries(o)) {
      const slash = k.lastIndexOf('/');
      const name = slash >= 0 ? k.slice(slash + 1) : k;
      const prefix = slash >= 0 ? k.slice(0, slash) : '';
      if (!LABEL_NAME.test(name) || name.length > 63 || (prefix && !isDns1123Subdomain(prefix)))
        this.err(`${path}.${k}`, `invalid label key ${JSON.stringify(k)}`);
      if (typeof val !== 'string' || val.length > 63 || !LABEL_VALUE.test(val))
        this.err(`${path}.${k}`, `invalid label value ${JSON.stringify(val)}`);
    }
    return o as Record<string, string>;
  }

  /** A Percent `{value}` in 0..100; `fine`: Istio's fault rule, a non-zero value is at least 0.0001. */
  percent(v: unknown, path: string, fine = false): void {
    const o = this.obj(v, path);
    if (!o) return;
    const n = this.num(o.value, `${path}.value`, { min: 0, max: 100 });
    if (fine && n !== undefined && n > 0 && n < 0.0001)
      this.err(`${path}.value`, `percentage ${n} is neither 0 nor in the range [0.0001, 100]`);
  }
}

/** Render a map key into a field path the way users write it. */
export function keyPath(base: string, key: string): string {
  return /^[A-Za-z_][\w-]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}
