// kube-inject against golden outputs: the httpbin manifest of test/fixtures/istio (ServiceAccount,
// Service, Deployment, as Istio's httpbin sample has them), the seed's httpbin Deployment and
// every workload kind; untouched documents byte for byte; idempotent; opt-out honoured.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { injectManifest, SIDECAR_NAME } from '../../dist/pilot-agent/kube-inject.js';
import { COURIER, ROOT } from '../helpers/procs.js';

const here = join(ROOT, 'test', 'pilot-agent');
const inputs: Record<string, string> = {
  'httpbin-httpbin': join(ROOT, 'test', 'fixtures', 'istio', 'httpbin', 'httpbin.yaml'),
  'seed-httpbin-nodeport': join(here, 'fixtures', 'seed-httpbin-nodeport.yaml'),
  workloads: join(here, 'fixtures', 'workloads.yaml'),
};

for (const [name, file] of Object.entries(inputs)) {
  t.test(`${name}: matches the golden output and is idempotent`, async (t) => {
    const r = spawnSync(process.execPath, [COURIER, 'kube-inject', '-f', file], { encoding: 'utf8' });
    t.equal(r.status, 0, r.stderr);
    const golden = readFileSync(join(here, 'golden', `${name}.injected.yaml`), 'utf8');
    t.equal(r.stdout, golden);
    t.equal(`${injectManifest(golden).replace(/\n$/, '')}\n`, golden, 'injecting again changes nothing');
  });
}

// biome-ignore lint/suspicious/noExplicitAny: walking arbitrary Kubernetes manifests in assertions
type Obj = Record<string, any>;
const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as Obj);

t.test('sidecar shape: container, probe, env, volume, annotations', async (t) => {
  const out = docs(injectManifest(readFileSync(inputs['httpbin-httpbin'] as string, 'utf8')));
  const dep = out.find((d) => d.kind === 'Deployment') as Obj;
  const pod = dep.spec.template;
  const side = pod.spec.containers.find((c: Obj) => c.name === SIDECAR_NAME);
  t.same(side.args, [
    'proxy',
    'sidecar',
    '--config-dir',
    '/etc/courier/config',
    '--labels',
    'app=httpbin,version=v1',
    '--app-port',
    '8080',
  ]);
  t.same(side.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 });
  t.equal(side.securityContext.runAsUser, 1337);
  t.same(
    side.env.map((e: Obj) => e.name),
    ['POD_NAME', 'POD_NAMESPACE', 'INSTANCE_IP', 'SERVICE_ACCOUNT'],
  );
  t.ok(pod.spec.volumes.some((v: Obj) => v.name === 'courier-config' && v.configMap));
  t.equal(pod.metadata.annotations['prometheus.io/port'], '15020');
  t.equal(out.find((d) => d.kind === 'Service')?.spec.ports[0].port, 8000, 'Service untouched');
});

t.test('every workload kind is injected; opt-outs and other kinds are not', async (t) => {
  const out = docs(injectManifest(readFileSync(inputs.workloads as string, 'utf8')));
  const has = (d: Obj) => JSON.stringify(d).includes(`"name":"${SIDECAR_NAME}"`);
  const by = (n: string) => out.find((d) => d.metadata.name === n) as Obj;
  for (const n of ['db', 'agent', 'once', 'nightly', 'plain']) t.ok(has(by(n)), `${n} injected`);
  for (const n of ['settings', 'opted-out', 'opted-out-deploy']) t.notOk(has(by(n)), `${n} left alone`);
  t.match(
    injectManifest(readFileSync(inputs.workloads as string, 'utf8')),
    /name: settings # untouched, comments kept/,
  );
});

t.test('usage errors are clear', async (t) => {
  const r = spawnSync(process.execPath, [COURIER, 'kube-inject'], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /kube-inject -f FILE/);
  const m = spawnSync(process.execPath, [COURIER, 'kube-inject', '-f', '/nonexistent.yaml'], {
    encoding: 'utf8',
  });
  t.equal(m.status, 1);
  t.notMatch(m.stderr, /\bat .*\.js:\d+/);
});
