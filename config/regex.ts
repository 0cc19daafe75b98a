// RE2 regexes (Istio StringMatch.regex, uriRegexRewrite.match) translated into JavaScript.
// Envoy's safe_regex is RE2 and matches the whole value, so `full` is anchored. The translation
// parses the RE2 syntax (as Go's regexp/syntax accepts it, which is what Istio validates with) and
// emits an equivalent `u`-mode JS pattern: RE2 constructs JS lacks are rewritten (`\A`, `\z`,
// `\Q…\E`, `[[:alpha:]]`, `\pL`, scoped flags `(?i:…)`, `(?U)`), RE2's `.` and `\s` keep their
// RE2 meaning, and what RE2 rejects (look-around, back-references, unknown escapes, repeat counts
// over 1000) is an error here too, rather than a different regex.

export interface CompiledRegex {
  /** Anchored: matches only when the whole input matches. */
  full: RegExp;
  /** Unanchored, global, for rewrite substitution (Envoy regex_rewrite replaces every match). */
  search: RegExp;
}

/** Istio rejects longer regexes (an approximation of Envoy's RE2 program-size limit). */
export const MAX_REGEX_LENGTH = 1024;
const MAX_REPEAT = 1000;

interface Flags {
  i: boolean;
  m: boolean;
  s: boolean;
  U: boolean;
}

class SyntaxErr extends Error {}

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\x00-\\x7f',
  blank: '\\t ',
  cntrl: '\\x00-\\x1f\\x7f',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-\\/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

/** RE2's \s is ASCII whitespace without \v (JS's \s is Unicode and includes \v). */
const RE2_SPACE = '\\t\\n\\f\\r ';

/** Escape one code point for a u-mode JS pattern (u-mode allows `\-` only inside a class). */
function lit(cp: number, inClass = false): string {
  const ch = String.fromCodePoint(cp);
  if (/[\\^$.*+?()[\]{}|/]/.test(ch) || (inClass && ch === '-')) return `\\${ch}`;
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (cp === 0x2028 || cp === 0x2029) return `\\u${cp.toString(16)}`;
  return ch;
}

/** Other-case variants of a code point (simple case mapping), excluding itself. */
function caseVariants(cp: number): number[] {
  const ch = String.fromCodePoint(cp);
  const out = new Set<number>();
  for (const v of [ch.toLowerCase(), ch.toUpperCase()]) {
    const c = v.codePointAt(0);
    if (c !== undefined && [...v].length === 1 && c !== cp) out.add(c);
  }
  return [...out];
}

type ClassItem = { lo: number; hi: number } | { raw: string };

class Translator {
  private pos = 0;
  private readonly out: string[] = [];
  /** Whether any literal/class was emitted under i=false / i=true (decides native `i`). */
  sawSensitive = false;
  sawInsensitive = false;

  constructor(
    private readonly src: string,
    private readonly nativeI: boolean,
  ) {}

  run(): string {
    const stack: Flags[] = [];
    let flags: Flags = { i: false, m: false, s: false, U: false };
    // Whether the previous item can take a repetition operator, and whether it already has one.
    let canRepeat = false;
    let repeated = false;
    const src = this.src;
    while (this.pos < src.length) {
      const c = src[this.pos] as string;
      if (c === '(') {
        const g = this.group(flags);
        if (g.setFlags) {
          flags = g.setFlags;
          continue;
        }
        stack.push(flags);
        flags = g.inner ?? { ...flags };
        this.out.push(g.open);
        canRepeat = false;
        repeated = false;
        continue;
      }
      if (c === ')') {
        const prev = stack.pop();
        if (!prev) throw new SyntaxErr('unexpected ) (unbalanced parentheses)');
        flags = prev;
        this.out.push(')');
        this.pos++;
        canRepeat = true;
        repeated = false;
        continue;
      }
      if (c === '|') {
        this.out.push('|');
        this.pos++;
        canRepeat = false;
        repeated = false;
        continue;
      }
      const q = this.quantifier();
      if (q !== undefined) {
        if (repeated) throw new SyntaxErr(`invalid nested repetition operator: ${q.text}`);
        if (!canRepeat) throw new SyntaxErr(`missing argument to repetition operator: ${q.text}`);
        this.out.push(q.js + (q.lazy !== flags.U ? '?' : ''));
        repeated = true;
        continue;
      }
      repeated = false;
      canRepeat = true;
      if (c === '^') {
        this.out.push(flags.m ? '(?<![^\\n])' : '^');
        this.pos++;
      } else if (c === '$') {
        this.out.push(flags.m ? '(?![^\\n])' : '$');
        this.pos++;
      } else if (c === '.') {
        this.out.push(flags.s ? '[\\s\\S]' : '[^\\n]');
        this.pos++;
      } else if (c === '[') {
        this.out.push(this.charClass(flags));
      } else if (c === '\\') {
        this.escape(flags);
      } else {
        const cp = src.codePointAt(this.pos) as number;
        this.pos += cp > 0xffff ? 2 : 1;
        this.out.push(this.literal(cp, flags));
      }
    }
    if (stack.length > 0) throw new SyntaxErr('missing closing ) (unbalanced parentheses)');
    return this.out.join('');
  }

  /** `(`…: returns the JS opening and the flags inside, or new flags for a bare `(?i)`. */
  private group(flags: Flags): { open: string; inner?: Flags; setFlags?: Flags } {
    const src = this.src;
    const rest = src.slice(this.pos);
    if (!rest.startsWith('(?')) {
      this.pos++;
      return { open: '(' };
    }
    if (/^\(\?<?[=!]/.test(rest)) throw new SyntaxErr('look-around assertions are not supported by RE2');
    if (rest.startsWith('(?P=') || rest.startsWith('(?P>'))
      throw new SyntaxErr('named back-references are not supported by RE2');
    const named = /^\(\?P?<([^>]*)>/.exec(rest);
    if (named) {
      const name = named[1] as string;
      if (!/^[A-Za-z0-9_]+$/.test(name))
        throw new SyntaxErr(`invalid named capture: ${JSON.stringify(name)}`);
      this.pos += named[0].length;
      return { open: `(?<${name}>` };
    }
    const fl = /^\(\?([A-Za-z-]*)([:)])/.exec(rest);
    if (!fl) throw new SyntaxErr(`invalid or unsupported Perl syntax: ${JSON.stringify(rest.slice(0, 3))}`);
    const spec = fl[1] as string;
    const next = { ...flags };
    let negate = false;
    let sawFlag = false;
    for (const ch of spec) {
      if (ch === '-') {
        if (negate) throw new SyntaxErr(`invalid or unsupported Perl syntax: ${JSON.stringify(fl[0])}`);
        negate = true;
        sawFlag = false;
        continue;
      }
      if (ch !== 'i' && ch !== 'm' && ch !== 's' && ch !== 'U')
        throw new SyntaxErr(`invalid or unsupported Perl syntax: ${JSON.stringify(fl[0])}`);
      next[ch] = !negate;
      sawFlag = true;
    }
    if (!sawFlag && (spec.length > 0 || fl[2] === ')'))
      throw new SyntaxErr(`missing argument in flag group: ${JSON.stringify(fl[0])}`);
    this.pos += fl[0].length;
    if (fl[2] === ')') return { open: '', setFlags: next };
    return { open: '(?:', inner: next };
  }

  private quantifier(): { js: string; text: string; lazy: boolean } | undefined {
    const src = this.src;
    const c = src[this.pos];
    let js: string;
    let len: number;
    if (c === '*' || c === '+' || c === '?') {
      js = c;
      len = 1;
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(this.pos));
      if (!m) return undefined; // a literal `{`
      const min = Number(m[1]);
      const max = m[3] === undefined || m[3] === '' ? undefined : Number(m[3]);
      if (min > MAX_REPEAT || (max !== undefined && (max > MAX_REPEAT || max < min)))
        throw new SyntaxErr(`invalid repeat count: ${m[0]}`);
      js = m[0];
      len = m[0].length;
    } else return undefined;
    const text = src.slice(this.pos, this.pos + len + (src[this.pos + len] === '?' ? 1 : 0));
    this.pos += len;
    const lazy = src[this.pos] === '?';
    if (lazy) this.pos++;
    return { js, text, lazy };
  }

  /** A literal code point, case-folded when `i` is on and not handled natively. */
  private literal(cp: number, flags: Flags): string {
    const variants = caseVariants(cp);
    if (variants.length === 0) return lit(cp);
    if (flags.i) this.sawInsensitive = true;
    else this.sawSensitive = true;
    if (!flags.i || this.nativeI) return lit(cp);
    return `[${[cp, ...variants].map((v) => lit(v, true)).join('')}]`;
  }

  private escape(flags: Flags): void {
    const src = this.src;
    const c = src[this.pos + 1];
    if (c === undefined) throw new SyntaxErr('trailing backslash at end of expression');
    this.pos += 2;
    switch (c) {
      case 'A':
        this.out.push('(?<![\\s\\S])');
        return;
      case 'z':
        this.out.push('(?![\\s\\S])');
        return;
      case 'b':
      case 'B':
      case 'd':
      case 'D':
      case 'w':
      case 'W':
        this.out.push(`\\${c}`);
        return;
      case 's':
        this.out.push(`[${RE2_SPACE}]`);
        return;
      case 'S':
        this.out.push(`[^${RE2_SPACE}]`);
        return;
      case 'C':
        this.out.push('[\\s\\S]');
        return;
      case 'p':
      case 'P':
        this.out.push(this.property(c === 'P'));
        return;
      case 'Q': {
        const end = src.indexOf('\\E', this.pos);
        const text = end < 0 ? src.slice(this.pos) : src.slice(this.pos, end);
        this.pos = end < 0 ? src.length : end + 2;
        const cps = [...text].map((ch) => ch.codePointAt(0) as number);
        // Keep the literal one atom, so a following repetition applies to its last character only
        // (as in RE2, where \Qab\E* repeats b).
        this.out.push(cps.map((cp) => this.literal(cp, flags)).join(''));
        return;
      }
      case 'E':
        return; // a stray \E is ignored by RE2
    }
    const cp = this.simpleEscape(c, src);
    this.out.push(this.literal(cp, flags));
  }

  /** Escapes that stand for one code point (shared by classes); advances past any operands. */
  private simpleEscape(c: string, src: string): number {
    switch (c) {
      case 'a':
        return 7;
      case 'f':
        return 12;
      case 't':
        return 9;
      case 'n':
        return 10;
      case 'r':
        return 13;
      case 'v':
        return 11;
      case 'x': {
        const braced = /^\{([0-9A-Fa-f]+)\}/.exec(src.slice(this.pos));
        const two = /^[0-9A-Fa-f]{2}/.exec(src.slice(this.pos));
        const hex = braced ? (braced[1] as string) : two?.[0];
        if (hex === undefined)
          throw new SyntaxErr(`invalid escape sequence: \\x${src.slice(this.pos, this.pos + 2)}`);
        const cp = Number.parseInt(hex, 16);
        if (cp > 0x10ffff) throw new SyntaxErr(`invalid escape sequence: \\x{${hex}}`);
        this.pos += braced ? braced[0].length : 2;
        return cp;
      }
    }
    if (c >= '0' && c <= '7') {
      // Octal: \0, \0NN, or \NNN with at least two digits; a lone \1-\7 is a back-reference.
      const digits = /^[0-7]{0,2}/.exec(src.slice(this.pos))?.[0] ?? '';
      if (c !== '0' && digits.length === 0) throw new SyntaxErr('back-references are not supported by RE2');
      this.pos += digits.length;
      return Number.parseInt(c + digits, 8);
    }
    if (c === '8' || c === '9') throw new SyntaxErr('back-references are not supported by RE2');
    const cp = c.codePointAt(0) as number;
    if (cp < 0x80 && !/[0-9A-Za-z]/.test(c)) return cp; // escaped punctuation
    throw new SyntaxErr(`invalid escape sequence: \\${c}`);
  }

  /** `\pL`, `\p{Greek}`, `\p{^Lu}`, `\PN` → a JS Unicode property escape. */
  private property(negated: boolean): string {
    const src = this.src;
    let name: string;
    if (src[this.pos] === '{') {
      const end = src.indexOf('}', this.pos);
      if (end < 0) throw new SyntaxErr('invalid character class range: missing }');
      name = src.slice(this.pos + 1, end);
      this.pos = end + 1;
    } else {
      name = src[this.pos] ?? '';
      this.pos++;
    }
    if (name.startsWith('^')) {
      negated = !negated;
      name = name.slice(1);
    }
    if (!/^[A-Za-z_]+$/.test(name)) throw new SyntaxErr(`invalid character class range: \\p{${name}}`);
    // General categories are one or two letters (L, Lu, Nd); anything else is a script.
    const body = name === 'Any' ? 'Any' : /^[A-Z][a-z]?$/.test(name) ? name : `Script=${name}`;
    const out = `\\${negated ? 'P' : 'p'}{${body}}`;
    try {
      new RegExp(out, 'u');
    } catch {
      throw new SyntaxErr(`invalid character class range: unknown Unicode class ${JSON.stringify(name)}`);
    }
    return out;
  }

  /** `[...]` with RE2 rules; returns a JS class. */
  private charClass(flags: Flags): string {
    const src = this.src;
    const start = this.pos;
    this.pos++;
    let negated = false;
    if (src[this.pos] === '^') {
      negated = true;
      this.pos++;
    }
    const items: ClassItem[] = [];
    let first = true;
    const single = (): number | ClassItem => {
      const c = src[this.pos];
      if (c === undefined) throw new SyntaxErr(`missing closing ]: ${JSON.stringify(src.slice(start))}`);
      if (c === '[') {
        const posix = /^\[:(\^?)([a-z]+):\]/.exec(src.slice(this.pos));
        if (posix) {
          const set = POSIX[posix[2] as string];
          if (set === undefined) throw new SyntaxErr(`invalid character class range: ${posix[0]}`);
          this.pos += posix[0].length;
          if (posix[1])
            throw new SyntaxErr(`negated POSIX classes inside a bracket are not supported: ${posix[0]}`);
          return { raw: set };
        }
      }
      if (c === '\\') {
        const e = src[this.pos + 1];
        if (e === undefined) throw new SyntaxErr('trailing backslash at end of expression');
        this.pos += 2;
        switch (e) {
          case 'd':
          case 'D':
          case 'w':
          case 'W':
            return { raw: `\\${e}` };
          case 's':
            return { raw: RE2_SPACE };
          case 'S':
            return { raw: '\\S' };
          case 'p':
          case 'P':
            return { raw: this.property(e === 'P') };
        }
        return this.simpleEscape(e, src);
      }
      const cp = src.codePointAt(this.pos) as number;
      this.pos += cp > 0xffff ? 2 : 1;
      return cp;
    };
    for (;;) {
      const c = src[this.pos];
      if (c === undefined) throw new SyntaxErr(`missing closing ]: ${JSON.stringify(src.slice(start))}`);
      if (c === ']' && !first) {
        this.pos++;
        break;
      }
      first = false;
      const lo = single();
      if (typeof lo !== 'number') {
        items.push(lo);
        continue;
      }
      if (src[this.pos] === '-' && src[this.pos + 1] !== ']' && src[this.pos + 1] !== undefined) {
        this.pos++;
        const hi = single();
        if (typeof hi !== 'number' || hi < lo)
          throw new SyntaxErr(`invalid character class range: ${JSON.stringify(src.slice(start, this.pos))}`);
        items.push({ lo, hi });
      } else items.push({ lo, hi: lo });
    }
    // Negated POSIX classes (`[[:^alpha:]]`) were rejected above; `[^[:alpha:]]` is the way to write them.
    const parts: string[] = [];
    for (const it of items) {
      if ('raw' in it) {
        parts.push(it.raw);
        continue;
      }
      parts.push(it.lo === it.hi ? lit(it.lo, true) : `${lit(it.lo, true)}-${lit(it.hi, true)}`);
      const folds = this.foldRange(it.lo, it.hi, flags);
      parts.push(...folds);
    }
    return `[${negated ? '^' : ''}${parts.join('')}]`;
  }

  /** Extra ranges a class needs under a scoped `(?i)`. */
  private foldRange(lo: number, hi: number, flags: Flags): string[] {
    let cased = false;
    for (let cp = lo; cp <= Math.min(hi, lo + 0x3000); cp++)
      if (caseVariants(cp).length > 0) {
        cased = true;
        break;
      }
    if (!cased) return [];
    if (flags.i) this.sawInsensitive = true;
    else this.sawSensitive = true;
    if (!flags.i || this.nativeI) return [];
    const out: string[] = [];
    const shift = (a: number, b: number, from: number, to: number) => {
      const x = Math.max(a, from);
      const y = Math.min(b, from + 25);
      if (x <= y) out.push(`${lit(x - from + to, true)}-${lit(y - from + to, true)}`);
    };
    shift(lo, hi, 0x61, 0x41); // a-z → A-Z
    shift(lo, hi, 0x41, 0x61); // A-Z → a-z
    if (hi > 0x7f) {
      if (hi - lo > 0x3000)
        throw new SyntaxErr('case-insensitive non-ASCII ranges inside a scoped (?i) are not supported');
      for (let cp = Math.max(lo, 0x80); cp <= hi; cp++)
        for (const v of caseVariants(cp)) out.push(lit(v, true));
    }
    return out;
  }
}

/** Translate RE2 syntax into a JS source + flags, or return an error message. */
function translate(pattern: string): { source: string; flags: string } | string {
  try {
    const first = new Translator(pattern, false);
    const source = first.run();
    // A pattern that is case-insensitive throughout compiles with JS's own `i` flag.
    if (first.sawInsensitive && !first.sawSensitive)
      return { source: new Translator(pattern, true).run(), flags: 'iu' };
    return { source, flags: 'u' };
  } catch (e) {
    if (e instanceof SyntaxErr) return e.message;
    throw e;
  }
}

/** Compile, or return an error message. */
export function compileRegex(pattern: string): CompiledRegex | string {
  const t = translate(pattern);
  if (typeof t === 'string') return t;
  try {
    const full = new RegExp(`^(?:${t.source})$`, t.flags);
    const search = new RegExp(t.source, `${t.flags}g`);
    return { full, search };
  } catch (e) {
    return (e as Error).message.replace(/^Invalid regular expression: /, '');
  }
}

/** How many capture groups a valid pattern has (for checking `\N` in a rewrite). */
export function captureGroupCount(pattern: string): number | undefined {
  const r = compileRegex(pattern);
  if (typeof r === 'string') return undefined;
  return (new RegExp(`${r.search.source}|`, 'u').exec('')?.length ?? 1) - 1;
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
