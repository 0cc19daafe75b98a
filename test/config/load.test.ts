// Loading a config directory: which files are read, how documents are split and numbered, and
// how problems are reported (always file + document index, never a throw).

import { symlinkSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadConfig } from '../../dist/config/load.js';
import { formatError } from '../../dist/config/types.js';

const vs = (name: string, ns?: string) =>
  `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}
${ns ? `  namespace: ${ns}\n` : ''}spec:
  hosts: [${name}]
  http:
  - route: [{destination: {host: ${name}}}]
`;

const dr = (name: string) =>
  `apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: ${name}}
spec: {host: ${name}, subsets: [{name: v1, labels: {version: v1}}]}
`;

const names = (r: ReturnType<typeof loadConfig>) =>
  r.resources.map((x) => `${x.kind}/${x.namespace}/${x.name}@${x.source.file}[${x.source.index}]`).sort();

function loadDir(t: Test, files: NonNullable<Parameters<Test['testdir']>[0]>, opts = {}) {
  const dir = t.testdir(files);
  return { dir, r: loadConfig([dir], { displayBase: dir, ...opts }) };
}

t.test('recursive directories with .yaml, .yml and .json files', async (t) => {
  const json = JSON.stringify({
    apiVersion: 'networking.istio.io/v1',
    kind: 'Gateway',
    metadata: { name: 'gw', namespace: 'edge' },
    spec: { servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'] }] },
  });
  const { r } = loadDir(t, {
    'a.yaml': vs('a'),
    'README.md': '# not config',
    'notes.txt': 'kind: VirtualService',
    sub: {
      'b.yml': vs('b'),
      'C.YAML': vs('c'),
      deeper: { 'gw.json': json, 'dr.yaml': dr('d') },
    },
  });
  t.same(r.errors, []);
  t.same(names(r), [
    'DestinationRule/default/d@sub/deeper/dr.yaml[0]',
    'Gateway/edge/gw@sub/deeper/gw.json[0]',
    'VirtualService/default/a@a.yaml[0]',
    'VirtualService/default/b@sub/b.yml[0]',
    'VirtualService/default/c@sub/C.YAML[0]',
  ]);
  t.equal(r.files.length, 5, 'only config files are listed');
  t.same([...r.files].sort(), r.files, 'files come sorted');
});

t.test('a JSON file may hold an array or a List of documents', async (t) => {
  const item = (name: string) => ({
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name },
    spec: { host: name },
  });
  const { r } = loadDir(t, {
    'arr.json': JSON.stringify([item('a'), item('b')]),
    'list.json': JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [item('c')] }),
    'bad.json': '{"kind": ',
  });
  t.same(names(r), [
    'DestinationRule/default/a@arr.json[0]',
    'DestinationRule/default/b@arr.json[1]',
    'DestinationRule/default/c@list.json[0]',
  ]);
  t.equal(r.errors.length, 1);
  t.match(formatError(r.errors[0]!), /^bad\.json\[0\]: invalid JSON: /);
});

t.test('multi-document YAML: empty documents are skipped but still counted', async (t) => {
  const text = `---\n${vs('a')}---\n---\n# only a comment\n---\n${vs('b')}...\n---\n${dr('c')}---\n`;
  const { r } = loadDir(t, { 'multi.yaml': text });
  t.same(r.errors, []);
  t.same(names(r), [
    'DestinationRule/default/c@multi.yaml[4]',
    'VirtualService/default/a@multi.yaml[0]',
    'VirtualService/default/b@multi.yaml[3]',
  ]);
});

t.test('hidden files and directories are skipped', async (t) => {
  const { r } = loadDir(t, {
    '.hidden.yaml': vs('hidden'),
    '.git': { 'config.yaml': vs('git') },
    sub: { '.swp.yaml': vs('swap'), 'ok.yaml': vs('ok') },
  });
  t.same(r.errors, []);
  t.same(names(r), ['VirtualService/default/ok@sub/ok.yaml[0]']);
});

t.test('a Kubernetes ConfigMap volume loads each resource exactly once', async (t) => {
  const stamp = '..2026_11_25_00_00_00.123';
  const dir = t.testdir({
    [stamp]: { 'vs.yaml': vs('reviews'), 'dr.yaml': dr('reviews'), 'gw.json': '[]' },
    '..data': t.fixture('symlink', stamp),
    'vs.yaml': t.fixture('symlink', '..data/vs.yaml'),
    'dr.yaml': t.fixture('symlink', '..data/dr.yaml'),
    'gw.json': t.fixture('symlink', '..data/gw.json'),
  });
  const r = loadConfig([dir], { displayBase: dir });
  t.same(r.errors, []);
  t.same(names(r), [
    'DestinationRule/default/reviews@dr.yaml[0]',
    'VirtualService/default/reviews@vs.yaml[0]',
  ]);
  t.same(r.files.map((f) => f.slice(dir.length + 1)).sort(), ['dr.yaml', 'gw.json', 'vs.yaml']);

  // Pointing at the ..data directory itself (a hidden top-level path) works too.
  const direct = loadConfig([join(dir, '..data')]);
  t.equal(direct.resources.length, 2);
});

t.test('the same file reached twice is read once', async (t) => {
  const dir = t.testdir({
    real: { 'a.yaml': vs('a') },
    'alias.yaml': t.fixture('symlink', 'real/a.yaml'),
    loop: { back: t.fixture('symlink', '..') },
  });
  const r = loadConfig([dir, join(dir, 'real'), join(dir, 'real', 'a.yaml')], { displayBase: dir });
  t.same(r.errors, [], 'no duplicate-resource error');
  t.equal(r.resources.length, 1);
});

t.test('a dangling symlink inside the directory is skipped', async (t) => {
  const dir = t.testdir({ 'a.yaml': vs('a') });
  symlinkSync(join(dir, 'gone.yaml'), join(dir, 'dangling.yaml'));
  const r = loadConfig([dir]);
  t.same(r.errors, []);
  t.equal(r.resources.length, 1);
});

t.test('a file named on the command line is read whatever its extension', async (t) => {
  const dir = t.testdir({ 'config.txt': vs('a') });
  const r = loadConfig([join(dir, 'config.txt')]);
  t.same(r.errors, []);
  t.equal(r.resources.length, 1);
});

t.test('invalid YAML is reported with file and document index', async (t) => {
  const { r } = loadDir(t, {
    'bad.yaml': `${vs('a')}---\nkind: VirtualService\nmetadata: {name: b\n---\n${vs('c')}---\nkey: [unclosed\n`,
    'dupkey.yaml': 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nkind: Gateway\n',
    'tabs.yaml': 'a:\n\tb: 1\n',
  });
  const lines = r.errors.map(formatError).sort();
  t.equal(lines.length, 4, 'one error per broken document', { lines });
  t.match(lines[0], /^bad\.yaml\[1\]: invalid YAML: .*\(line \d+, column \d+\)$/);
  t.match(lines[1], /^bad\.yaml\[3\]: invalid YAML: /);
  t.match(lines[2], /^dupkey\.yaml\[0\]: invalid YAML: .*unique/i);
  t.match(lines[3], /^tabs\.yaml\[0\]: invalid YAML: /);
  t.same(names(r), ['VirtualService/default/a@bad.yaml[0]', 'VirtualService/default/c@bad.yaml[2]']);
});

t.test('documents that are not objects, or lack apiVersion, are errors', async (t) => {
  const { r } = loadDir(t, {
    'scalar.yaml': 'just a string\n',
    'list.yaml': '- a\n- b\n',
    'noversion.yaml': 'kind: VirtualService\nmetadata: {name: x}\nspec: {}\n',
    'nokind.yaml': 'apiVersion: networking.istio.io/v1\nmetadata: {name: x}\n',
  });
  t.same(r.errors.map(formatError).sort(), [
    'list.yaml[0]: document is not a mapping (expected a Kubernetes object)',
    'nokind.yaml[0] ?/default/x: kind: unknown networking.istio.io kind null (expected one of Gateway, VirtualService, DestinationRule, ServiceEntry, WorkloadEntry, Sidecar)',
    'noversion.yaml[0] VirtualService/default/x: apiVersion: is required',
    'scalar.yaml[0]: document is not a mapping (expected a Kubernetes object)',
  ]);
});

t.test('an alias bomb is an error, not a crash', async (t) => {
  const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 0; i < 12; i++)
    lines.push(
      `${'b'.repeat(i + 1)}: &${'b'.repeat(i + 1)} [${Array(10)
        .fill(`*${i === 0 ? 'a' : 'b'.repeat(i)}`)
        .join(', ')}]`,
    );
  const { r } = loadDir(t, { 'bomb.yaml': `${lines.join('\n')}\n` });
  t.equal(r.errors.length, 1);
  t.match(formatError(r.errors[0]!), /^bomb\.yaml\[0\]: invalid YAML: .*alias/i);
});

t.test('a byte-order mark is ignored', async (t) => {
  const { r } = loadDir(t, {
    'bom.yaml': `\uFEFF${vs('a')}`,
    'bom.json': `\uFEFF${JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'b' }, spec: { host: 'b' } })}`,
  });
  t.same(r.errors, []);
  t.equal(r.resources.length, 2);
});

t.test('namespace defaults to "default"', async (t) => {
  const { r } = loadDir(t, { 'a.yaml': `${vs('a')}---\n${vs('b', 'shop')}---\n${vs('c', '')}` });
  t.same(r.errors, []);
  t.same(
    r.resources.map((x) => `${x.name}:${x.namespace}`),
    ['a:default', 'b:shop', 'c:default'],
  );
  const a = r.resources[0]!;
  t.equal(a.kind, 'VirtualService');
  t.equal(a.apiVersion, 'networking.istio.io/v1');
  t.same(a.labels, {});
  t.same(a.source, { file: 'a.yaml', index: 0 });
});

t.test('duplicate kind/namespace/name across files', async (t) => {
  const files = { 'one.yaml': vs('reviews'), sub: { 'two.yaml': `${dr('reviews')}---\n${vs('reviews')}` } };
  const strict = loadDir(t, files).r;
  t.same(strict.errors.map(formatError), [
    'sub/two.yaml[1] VirtualService/default/reviews: metadata.name: duplicate resource (also defined in one.yaml[0])',
  ]);
  t.same(strict.warnings, []);

  const lenient = loadDir(t, files, { duplicates: 'warning' }).r;
  t.same(lenient.errors, []);
  t.same(lenient.warnings.map(formatError), [
    'sub/two.yaml[1] VirtualService/default/reviews: metadata.name: duplicate resource (also defined in one.yaml[0])',
  ]);

  const otherNs = loadDir(t, { 'one.yaml': vs('reviews'), 'two.yaml': vs('reviews', 'shop') }).r;
  t.same(otherNs.errors, [], 'the same name in another namespace is a different resource');
});

t.test('a missing path is an error', async (t) => {
  const dir = t.testdir({ 'a.yaml': vs('a') });
  const missing = join(dir, 'nope');
  const r = loadConfig([dir, missing]);
  t.equal(r.resources.length, 1, 'the paths that exist still load');
  t.same(r.errors.map(formatError), [`${missing}[0]: no such file or directory`]);
});

t.test('file names in messages are as given when no displayBase is set', async (t) => {
  const dir = t.testdir({ 'x.yaml': 'kind: [' });
  const r = loadConfig([dir]);
  t.equal(r.errors[0]?.file, join(dir, 'x.yaml'));
});
