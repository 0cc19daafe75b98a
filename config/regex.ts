// RE2-style regexes for Istio StringMatch.regex: full-string semantics (Envoy safe_regex
// matches the whole value), `(?i)`-style leading flags, `(?P<name>...)` groups. Constructs RE2
// does not have (look-around, back-references) are rejected rather than silently accepted.

export interface CompiledRegex {
  /** Anchored: matches only when the whole input matches. */
  full: RegExp;
  /** Unanchored, global, for rewrite substitution (Envoy regex_rewrite replaces every match). */
  search: RegExp;
}

const NON_RE2 = [
  { re: /\(\?<?[=!]/, what: 'look-around assertions are not supported by RE2' },
  { re: /\\[1-9]/, what: 'back-references are not supported by RE2' },
  { re: /\\k</, what: 'named back-references are not supported by RE2' },
];

/** Translate RE2 syntax into a JS source + flags, or return an error message. */
function translate(pattern: string): { source: string; flags: string } | string {
  let source = pattern;
  let flags = '';
  const lead = /^\(\?([imsU]+)\)/.exec(source);
  if (lead) {
    const f = lead[1] as string;
    if (f.includes('U')) return 'the U (ungreedy) flag is not supported';
    flags = [...new Set(f.split(''))].join('');
    source = source.slice(lead[0].length);
  }
  if (/\(\?[imsU-]+[:)]/.test(source)) return 'inline flag groups are only supported at the start of the pattern';
  for (const { re, what } of NON_RE2) if (re.test(source)) return what;
  source = source.replace(/\(\?P</g, '(?<');
  // RE2's \z is end of text; \A start of text.
  source = source.replace(/\\z/g, '$').replace(/\\A/g, '^');
  return { source, flags };
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

/** Validate only; error message or undefined. */
export function checkRegex(pattern: unknown): string | undefined {
  if (typeof pattern !== 'string') return 'regex must be a string';
  if (pattern.length === 0) return 'regex must not be empty';
  const r = compileRegex(pattern);
  return typeof r === 'string' ? `invalid regex ${JSON.stringify(pattern)}: ${r}` : undefined;
}

/** Convert an RE2 rewrite template (`\1`) into a JS replacement string (`$1`). */
export function rewriteTemplate(rewrite: string): string {
  return rewrite.replace(/\$/g, '$$$$').replace(/\\(\d)/g, '$$$1');
}
