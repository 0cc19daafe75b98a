// RE2 → JavaScript regex translation: full-string matching with RE2's meaning, and RE2's errors.

import t from 'tap';
import { checkRegex, compileRegex, rewriteTemplate } from '../../dist/config/regex.js';

function full(pattern: string) {
  const r = compileRegex(pattern);
  if (typeof r === 'string') throw new Error(`${pattern}: ${r}`);
  return r.full;
}

t.test('matches the whole value, with RE2 semantics', async (t) => {
  const cases: [pattern: string, yes: string[], no: string[]][] = [
    ['\\d+$', ['123'], ['a123', '123a', '']],
    ['/api/v[0-9]+/.*', ['/api/v1/x', '/api/v12/'], ['/api/v/x', 'x/api/v1/']],
    ['.*\\.(jpg|png)', ['/a/b.png', '.jpg'], ['/a/b.gif', '/a.png/x']],
    ['(?i)/Login', ['/login', '/LOGIN', '/LoGiN'], ['/logout']],
    ['/(?i:admin)/Panel', ['/ADMIN/Panel', '/admin/Panel'], ['/admin/panel']],
    ['(?i)/a(?-i:B)c', ['/ABC', '/aBc'], ['/abc', '/Abc']],
    ['(?i)[a-c]+x', ['AbCx', 'abcX'], ['dx']],
    ['(?i:[a-c])z', ['Az', 'cz'], ['AZ', 'dz']],
    ['caf(?i:É)', ['cafÉ', 'café'], ['cafe']],
    ['a.c', ['abc', 'a\rc'], ['a\nc']],
    ['(?s)a.c', ['a\nc'], ['ac']],
    ['\\Aabc\\z', ['abc'], ['abcd']],
    ['(?m)a$\n^b', ['a\nb'], []],
    ['(?m)a$\\nb', ['a\nb'], ['ab']],
    ['a\\sb', ['a b', 'a\tb'], ['a\u00a0b', 'a\vb']],
    ['[[:alpha:]]+[[:digit:]]', ['abc1'], ['abc', '1a']],
    ['[^[:space:]]+', ['a-b'], ['a b']],
    ['\\pL+', ['héllo', 'Ωμέγα'], ['a1']],
    ['\\p{Greek}+', ['Ωμέγα'], ['abc']],
    ['\\PN+', ['abc'], ['a1']],
    ['\\Qa.b*c\\E+', ['a.b*c', 'a.b*cc'], ['aXb*c', 'abbc']],
    ['\\x41\\x{1F600}', ['A😀'], ['A']],
    ['\\101\\0', ['A\0'], ['A']],
    ['(?P<ver>v[0-9])/(?<rest>.*)', ['v1/x'], ['x/v1']],
    ['a{2,3}', ['aa', 'aaa'], ['a', 'aaaa']],
    ['a{,2}', ['a{,2}'], ['aa']],
    ['x{', ['x{'], ['x']],
    ['a]b}c', ['a]b}c'], []],
    ['[a-]+', ['a-a'], ['b']],
    ['[]a]+', [']a]'], ['b']],
    ['\\-\\#\\/', ['-#/'], []],
    ['(?U)a+', ['aaa'], []],
    ['.', ['😀'], ['😀😀']],
  ];
  for (const [pattern, yes, no] of cases) {
    const re = full(pattern);
    for (const s of yes) t.ok(re.test(s), `${pattern} matches ${JSON.stringify(s)}`);
    for (const s of no) t.notOk(re.test(s), `${pattern} does not match ${JSON.stringify(s)}`);
  }
});

t.test('ungreedy flag and lazy quantifiers change what a rewrite replaces', async (t) => {
  const sub = (pattern: string, input: string, tmpl: string) => {
    const r = compileRegex(pattern);
    if (typeof r === 'string') throw new Error(r);
    return input.replace(r.search, rewriteTemplate(tmpl));
  };
  t.equal(sub('a+', 'caaat', '<\\0>'), 'c<aaa>t');
  t.equal(sub('(?U)a+', 'caaat', '<\\0>'), 'c<a><a><a>t');
  t.equal(sub('(?U)a+?', 'caaat', '<\\0>'), 'c<aaa>t');
  t.equal(
    sub('^/service/([^/]+)(/.*)$', '/service/foo/bar', '/customprefix\\2/\\1'),
    '/customprefix/bar/foo',
  );
  t.equal(sub('/v1', '/v1/x/v1', '/v2'), '/v2/x/v2', 'every match is replaced');
  t.equal(sub('(?m)^', 'a\nb', '>'), '>a\n>b', 'multi-line anchors');
  t.equal(sub('^', 'a\nb', '>'), '>a\nb', 'without (?m), ^ is the start of the text');
  t.equal(sub('(a)', 'a', '\\15$1\\\\'), 'a5$1\\', 'a digit after a group, a literal $ and a backslash');
});

t.test("RE2 syntax errors are errors (what Go's regexp rejects)", async (t) => {
  const bad: [string, RegExp][] = [
    ['(?=a)', /look-around/],
    ['(?<!a)b', /look-around/],
    ['(a)\\1', /back-references/],
    ['(?P<n>a)(?P=n)', /back-references/],
    ['a\\u0041', /invalid escape sequence: \\u/],
    ['\\cA', /invalid escape sequence/],
    ['a\\Z', /invalid escape sequence/],
    ['x{1001}', /invalid repeat count/],
    ['x{3,2}', /invalid repeat count/],
    ['a**', /nested repetition/],
    ['*a', /missing argument to repetition operator/],
    ['(a|b', /missing closing \)/],
    ['a)', /unexpected \)/],
    ['[a-', /missing closing \]/],
    ['[z-a]', /invalid character class range/],
    ['[[:foo:]]', /invalid character class range/],
    ['\\p{Klingon}', /unknown Unicode class/],
    ['(?x)a', /unsupported Perl syntax/],
    ['(?i-)a', /missing argument/],
    ['(?<n-m>a)', /invalid named capture/],
    ['a\\', /trailing backslash/],
  ];
  for (const [pattern, want] of bad) {
    const e = checkRegex(pattern);
    t.match(e, want, pattern);
    t.match(e, `invalid regex ${JSON.stringify(pattern)}`);
  }
  t.equal(checkRegex(''), 'regex must not be empty');
  t.equal(checkRegex(5), 'regex must be a string');
  t.match(checkRegex(`a${'b'.repeat(1024)}`), /regex is too large, max length allowed is 1024/);
});
