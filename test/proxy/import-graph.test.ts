// The shape of proxy/: no import cycles (type imports included: a cycle of types is still two
// files that cannot be read one after the other), and `courier explain` reaches the router
// without loading upstream code (undici, the pools, the forwarder).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import t from 'tap';

const ROOT = resolve(import.meta.dirname, '..', '..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative imports of a file (`import ... from './x.js'`, `export ... from`), as .ts paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)) {
    const spec = m[1] as string;
    if (spec.startsWith('.')) out.push(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
    else out.push(spec);
  }
  return out;
}

function graph(files: string[]): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of files) g.set(f, importsOf(f));
  return g;
}

/** Every cycle's files, found by depth-first search. */
function cycles(g: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const to of g.get(f) ?? []) {
      if (!g.has(to)) continue;
      if (state.get(to) === 'open') found.push(stack.slice(stack.indexOf(to)));
      else if (!state.has(to)) visit(to);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of g.keys()) if (!state.has(f)) visit(f);
  return found;
}

t.test('proxy/ has no import cycle', async (t) => {
  const g = graph(sources(join(ROOT, 'proxy')));
  t.ok(g.size > 20, `${g.size} files read`);
  const found = cycles(g).map((c) => c.map((f) => relative(ROOT, f)).join(' -> '));
  t.same(found, [], 'no cycles');
});

t.test('the cycle check finds a cycle when there is one', async (t) => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
  ]);
  t.same(cycles(g), [['a', 'b', 'c']]);
});

t.test('courier explain does not load undici, the pools or the forwarder', async (t) => {
  const all = graph([
    ...sources(join(ROOT, 'proxy')),
    ...sources(join(ROOT, 'config')),
    ...sources(join(ROOT, 'pilot-agent')),
  ]);
  const seen = new Set<string>();
  const walk = (f: string) => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const next of all.get(f) ?? []) walk(next);
  };
  walk(join(ROOT, 'pilot-agent', 'explain.ts'));
  const reached = [...seen].map((f) => (f.startsWith(ROOT) ? relative(ROOT, f) : f));
  t.ok(reached.includes('proxy/router.ts'), 'explain uses the router');
  for (const banned of [
    'undici',
    'proxy/upstream.ts',
    'proxy/h1-pool.ts',
    'proxy/cluster-manager.ts',
    'proxy/request-path.ts',
  ])
    t.notOk(reached.includes(banned), `explain does not reach ${banned}`);
});
