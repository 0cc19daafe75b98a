// RE2 regexes (Istio StringMatch.regex, uriRegexRewrite.match), matched in linear time by re2js,
// a pure-JS port of RE2 (RE2/J → Go's regexp): the same syntax Istio validates with, the same
// leftmost-first semantics, and no backtracking. Envoy's safe_regex is RE2 and matches the whole
// value, so `full` is anchored; Envoy's regex_rewrite is RE2::GlobalReplace (every match).
//
// Why not V8's RegExp: courier used to translate RE2 into a backtracking JS RegExp, and a header
// match `(a+)+b` against 28 `a`s and a `c` took 1.3 s of a worker's event loop (doubling per `a`;
// `(.*a){20}` against 30 `a`s and a `b`: 74 s). With re2js a 56 KiB crafted value against any of
// these takes 1–3 ms for a full match (lazy DFA). Why not V8's own linear engine
// (`--enable-experimental-regexp-engine`, flag `l`): it needs a node flag on every worker, Node 20's
// rejects `i` and `u` (so no `(?i)`, `\pL` or astral characters) and look-behind, and it was
// 2.5–7x slower than re2js on the patterns below (e.g. ^/api/v[0-9]+/.* 4.3 µs vs 1.7 µs a call
// over a mix of inputs up to 200 characters).
// Cost per call in ns (Node 20, best of 5 × 200k calls, a matching and a non-matching input):
//   pattern                          JS RegExp (old)   re2js (new)
//   ^/api/v[0-9]+/.*                        13              203
//   .*\.(jpg|png)                           41              374
//   /productpage                            14               28
//   (?i)/login                              14               83
//   [a-z0-9-]+\.example\.com                20              149
//   ^(Mozilla|Chrome).*Mobile.*             31              429
//   rewrite ^/service/([^/]+)(/.*)$ → \2/\1  205              678
//   rewrite /v1 → /v2                       54              402
// So a regex costs ~0.1–0.4 µs more per evaluation, paid only by routes that have one (exact and
// prefix matches never reach this file), for a bound on every input. Compiling is ~0.3 ms a
// pattern (4x the old), so compiled regexes are cached by pattern.
// The price: a rewrite whose pattern matches runs RE2's capture engine (a Pike VM once past the
// few KiB re2js's bit-state backtracker takes) over the whole match, O(input × pattern): linear,
// but for an ambiguous pattern slow in JS, e.g. `(.*a){20}` (~40 live threads a character) costs
// 2.5–5 ms a KiB, ~140 ms for a 56 KiB path; `(a+)+b` 0.1–0.5 ms a KiB. Inputs without a match
// never get there: a DFA test comes first. Each regex's lazy DFA may grow to re2js's 8 MB budget
// (RE2's default max_mem, as in Envoy) before it resets its cache.
//
// RE2's error text is kept (re2js reports Go's messages); a few are made clearer: look-around,
// back-references and unknown Unicode classes say what they are.

import { RE2JS, RE2JSSyntaxException, RE2Set } from 're2js';

export interface CompiledRegex {
  /** Anchored: matches only when the whole input matches. Stateless, linear time. */
  readonly full: { test(input: string): boolean };
  /**
   * For a rewrite: `input.replace(search, rewriteTemplate(t))` replaces every match with RE2's
   * GlobalReplace rules. A RegExp so that it passes where a global RegExp is expected; every
   * match it makes is RE2's (see Re2RegExp).
   */
  readonly search: RegExp;
}

/** Istio rejects longer regexes (an approximation of Envoy's RE2 program-size limit). */
export const MAX_REGEX_LENGTH = 1024;

type Replacer = (substring: string, ...args: unknown[]) => string;

/** A replacement template, parsed: literal text, or a group number (BEFORE: $`, AFTER: $'). */
type Part = string | number;
const BEFORE = -1;
const AFTER = -2;

/**
 * One RE2 search from `from` (the text before it still counts for `^` and `\b`): the [start, end)
 * pairs of groups 0..ngroup-1 in UTF-16 offsets (-1 when a group is unset), or null. Asking for
 * fewer groups is cheaper, as RE2::GlobalReplace asks only for those its rewrite uses.
 */
function searchFrom(re: RE2JS, input: string, from: number, ngroup: number): number[] | null {
  const [ok, groups] = re.re2Input.matchWithGroup(input, from, input.length, RE2Set.UNANCHORED, ngroup);
  return ok ? (groups as number[]) : null;
}

function capture(input: string, g: number[], i: number): string | undefined {
  const start = g[2 * i] ?? -1;
  return start < 0 ? undefined : input.slice(start, g[2 * i + 1]);
}

/**
 * An RE2 regex with a global RegExp's face. `exec` (and so `test`, `match`, `search`) and
 * `replace` run re2js; the V8 pattern underneath (`(?:)`) is never used. `split` and `matchAll`
 * would build a fresh V8 RegExp, so they throw. The re2js state lives in private fields, out of
 * the snapshot freeze's reach (which leaves RegExps alone anyway); matching is synchronous, so one
 * instance is safely shared by every request.
 */
class Re2RegExp extends RegExp {
  readonly #re: RE2JS;
  readonly #names: Record<string, number>;
  /** Capture groups in the pattern. */
  readonly groupCount: number;
  /** The last replacement template and its parse (a route always passes the same one). */
  #template: string | undefined;
  #parts: Part[] = [];
  #ngroup = 1;

  constructor(re: RE2JS) {
    super('(?:)', 'gu');
    this.groupCount = re.groupCount();
    this.#re = re;
    this.#names = re.namedGroups();
  }

  override toString(): string {
    return `/${this.#re.pattern()}/ (RE2)`;
  }

  /** A global RegExp's exec: searches from lastIndex and moves it past the match. */
  override exec(input: string): RegExpExecArray | null {
    const from = this.lastIndex;
    const g = from > input.length ? null : searchFrom(this.#re, input, from, this.groupCount + 1);
    if (!g) {
      this.lastIndex = 0;
      return null;
    }
    const caps: (string | undefined)[] = [];
    for (let i = 0; i <= this.groupCount; i++) caps.push(capture(input, g, i));
    const res = Object.assign(caps, {
      index: g[0] as number,
      input,
      groups: this.#namedGroups(caps),
    }) as unknown as RegExpExecArray;
    this.lastIndex = g[1] as number;
    return res;
  }

  #namedGroups(caps: (string | undefined)[]): Record<string, string> | undefined {
    const names = Object.entries(this.#names);
    if (names.length === 0) return undefined;
    const out: Record<string, string> = Object.create(null);
    for (const [name, i] of names) out[name] = caps[i] as string;
    return out;
  }

  /**
   * RE2::GlobalReplace (what Envoy's regex_rewrite calls): every non-overlapping match from left to
   * right; an empty match right where the previous match ended is skipped (JS would replace it:
   * `a*` on `baaac` gives `<>b<aaa>c<>` here, `<>b<aaa><>c<>` in JS). The replacement uses JS
   * syntax ($&, $1, $$), as produced by rewriteTemplate. Does not read or write lastIndex.
   */
  override [Symbol.replace](input: string, replacement: string | Replacer): string {
    const re = this.#re;
    // The DFA answers "no match" without captures; only a matching input pays for the capture
    // engine (one pass per match, for the groups the replacement uses).
    if (!re.test(input)) return input;
    const fn = typeof replacement === 'function' ? replacement : undefined;
    if (!fn && replacement !== this.#template) this.#parse(String(replacement));
    const ngroup = fn ? this.groupCount + 1 : this.#ngroup;
    const len = input.length;
    let out = '';
    let p = 0;
    let lastEnd = -1;
    let count = 0;
    for (
      let g = searchFrom(re, input, 0, ngroup);
      g;
      g = p <= len ? searchFrom(re, input, p, ngroup) : null
    ) {
      const start = g[0] as number;
      const end = g[1] as number;
      if (p < start) out += input.slice(p, start);
      if (start === end && start === lastEnd) {
        // Skip ahead one character (a whole surrogate pair).
        const step = (input.codePointAt(p) ?? 0) > 0xffff ? 2 : 1;
        out += input.slice(p, p + step);
        p += step;
        continue;
      }
      if (fn) {
        const caps: (string | undefined)[] = [];
        for (let i = 0; i <= this.groupCount; i++) caps.push(capture(input, g, i));
        const named = this.#namedGroups(caps);
        out += String(fn(...(caps as [string]), start, input, ...(named ? [named] : [])));
      } else {
        for (const part of this.#parts) {
          if (typeof part === 'string') out += part;
          else if (part === BEFORE) out += input.slice(0, start);
          else if (part === AFTER) out += input.slice(end);
          else out += capture(input, g, part) ?? '';
        }
      }
      p = end;
      lastEnd = end;
      count++;
    }
    if (count === 0) return input;
    return p < len ? out + input.slice(p) : out;
  }

  /** ECMAScript GetSubstitution's syntax: $$, $&, $`, $', $n / $nn, $<name>. */
  #parse(tmpl: string): void {
    const parts: Part[] = [];
    let text = '';
    const group = (n: number) => {
      if (text) parts.push(text);
      text = '';
      parts.push(n);
    };
    const m = this.groupCount;
    const named = Object.keys(this.#names).length > 0;
    for (let i = 0; i < tmpl.length; ) {
      const c = tmpl[i] as string;
      const n = tmpl[i + 1] ?? '';
      if (c !== '$' || n === '') {
        text += c;
        i++;
      } else if (n === '$') {
        text += '$';
        i += 2;
      } else if (n === '&' || n === '`' || n === "'") {
        group(n === '&' ? 0 : n === '`' ? BEFORE : AFTER);
        i += 2;
      } else if (n >= '0' && n <= '9') {
        const d2 = tmpl[i + 2] ?? '';
        const two = d2 >= '0' && d2 <= '9' ? Number(n + d2) : -1;
        if (two >= 1 && two <= m) {
          group(two);
          i += 3;
        } else if (Number(n) >= 1 && Number(n) <= m) {
          group(Number(n));
          i += 2;
        } else {
          text += '$';
          i++;
        }
      } else if (n === '<' && named && tmpl.indexOf('>', i + 2) >= 0) {
        const close = tmpl.indexOf('>', i + 2);
        const idx = this.#names[tmpl.slice(i + 2, close)];
        if (idx !== undefined) group(idx);
        i = close + 1;
      } else {
        text += '$';
        i++;
      }
    }
    if (text) parts.push(text);
    this.#template = tmpl;
    this.#parts = parts;
    this.#ngroup = 1 + Math.max(0, ...parts.filter((x): x is number => typeof x === 'number'));
  }

  override [Symbol.split](): string[] {
    throw new Error('split is not supported on an RE2 regex');
  }

  override [Symbol.matchAll](): RegExpStringIterator<RegExpExecArray> {
    throw new Error('matchAll is not supported on an RE2 regex');
  }
}

/** re2js reports Go's messages; a few RE2 rejections are worded for what they are. */
function errorMessage(pattern: string, e: RE2JSSyntaxException): string {
  const code = e.error;
  const at = e.input ?? '';
  if (
    (code === 'invalid or unsupported Perl syntax' && (at === '(?=' || at === '(?!')) ||
    (code === 'invalid named capture' && (at.startsWith('(?<=') || at.startsWith('(?<!')))
  )
    return 'look-around assertions are not supported by RE2';
  if (code === 'invalid or unsupported Perl syntax' && at === '(?P' && /\(\?P[=>]/.test(pattern))
    return 'named back-references are not supported by RE2';
  if (code === 'invalid escape sequence' && /^\\[1-9]$/.test(at))
    return `back-references are not supported by RE2: ${at}`;
  if (code === 'invalid character class range' && /^\\[pP]/.test(at))
    return `invalid character class range: unknown Unicode class ${at}`;
  if (code === 'invalid or unsupported Perl syntax' && /^\(\?[a-zA-Z]*-\)$/.test(at))
    return `missing argument in flag group: ${at}`;
  return at ? `${code}: ${at}` : code;
}

/** Compiled regexes by pattern: the validator, every snapshot and every worker's recompiles reuse
 *  them (re2js compiling costs ~0.3 ms; sharing is safe, see Re2RegExp). Oldest out first. */
const cache = new Map<string, CompiledRegex | string>();
const CACHE_SIZE = 1024;

/** Compile, or return an error message. */
export function compileRegex(pattern: string): CompiledRegex | string {
  const hit = cache.get(pattern);
  if (hit !== undefined) return hit;
  const r = compile(pattern);
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  cache.set(pattern, r);
  return r;
}

function compile(pattern: string): CompiledRegex | string {
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (e) {
    if (e instanceof RE2JSSyntaxException) return errorMessage(pattern, e);
    return (e as Error).message;
  }
  return Object.freeze({
    full: Object.freeze({ test: (input: string) => re.testExact(input) }),
    search: new Re2RegExp(re),
  });
}

/** How many capture groups a valid pattern has (for checking `\N` in a rewrite). */
export function captureGroupCount(pattern: string): number | undefined {
  const r = compileRegex(pattern);
  return typeof r === 'string' ? undefined : (r.search as Re2RegExp).groupCount;
}

/** Validate only; error message or undefined. */
export function checkRegex(pattern: unknown): string | undefined {
  if (typeof pattern !== 'string') return 'regex must be a string';
  if (pattern.length === 0) return 'regex must not be empty';
  if (pattern.length > MAX_REGEX_LENGTH)
    return `regex is too large, max length allowed is ${MAX_REGEX_LENGTH} (RE2 syntax: https://github.com/google/re2/wiki/Syntax)`;
  const r = compileRegex(pattern);
  return typeof r === 'string' ? `invalid regex ${JSON.stringify(pattern)}: ${r} (RE2 syntax)` : undefined;
}

/**
 * Convert an RE2 rewrite template (`\1`, `\0` for the whole match, `\\` for a backslash) into a JS
 * replacement string.
 */
export function rewriteTemplate(rewrite: string): string {
  return rewrite.replace(/\\(\d|\\)|\$/g, (m, d: string | undefined) => {
    if (m === '$') return '$$';
    if (d === '\\') return '\\';
    return d === '0' ? '$&' : `$0${d}`;
  });
}
