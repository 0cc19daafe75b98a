// deploy/: the Kubernetes manifests parse, the Istio config they carry is valid, and the
// gateway workload has the probes, ports, identity and budgets the README promises.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../dist/config/load.js';
import { ROOT, writeConfigDir } from '../helpers/procs.js';

// biome-ignore lint/suspicious/noExplicitAny: walking Kubernetes manifests in assertions
type Obj = Record<string, any>;
const docs = parseAllDocuments(
  readFileSync(join(ROOT, 'deploy', 'kubernetes', 'ingress-gateway.yaml'), 'utf8'),
).map((d) => {
  t.same(d.errors, [], 'parses');
  return d.toJS() as Obj;
});
const kind = (k: string) => docs.find((d) => d.kind === k) as Obj;

t.test('every expected object is there', async (t) => {
  t.same(docs.map((d) => d.kind).sort(), [
    'ConfigMap',
    'Deployment',
    'HorizontalPodAutoscaler',
    'PodDisruptionBudget',
    'Service',
    'ServiceAccount',
  ]);
});

t.test('the ConfigMap carries valid Istio config', async (t) => {
  const dir = writeConfigDir({});
  for (const [name, text] of Object.entries(kind('ConfigMap').data as Record<string, string>))
    writeFileSync(join(dir, name), text);
  const r = loadConfig([dir]);
  t.same(r.errors, []);
  t.equal(r.resources.length, 3);
});

t.test('the gateway Deployment: probes, ports, non-root, config volume, scrape annotations', async (t) => {
  const pod = kind('Deployment').spec.template;
  const c = pod.spec.containers[0];
  t.same(c.readinessProbe.httpGet, { path: '/healthz/ready', port: 15021 });
  t.equal(pod.metadata.annotations['prometheus.io/port'], '15020');
  t.equal(pod.spec.securityContext.runAsUser, 1337);
  t.ok(c.resources.requests.cpu);
  t.same(c.args.slice(0, 4), ['proxy', 'router', '--config-dir', '/etc/courier/config']);
  t.equal(pod.spec.volumes[0].configMap.name, kind('ConfigMap').metadata.name);
  t.same(pod.metadata.labels.istio, 'ingressgateway');
  t.same(kind('Service').spec.selector, { istio: 'ingressgateway' });
  t.equal(kind('HorizontalPodAutoscaler').spec.scaleTargetRef.name, kind('Deployment').metadata.name);
});

t.test('the Dockerfile runs as UID 1337 with pilot-agent as the entrypoint', async (t) => {
  const df = readFileSync(join(ROOT, 'deploy', 'Dockerfile'), 'utf8');
  t.match(df, /^FROM node:\d+-slim/m);
  t.match(df, /^USER 1337/m);
  t.match(df, /^ENTRYPOINT \["node", "\/opt\/courier\/dist\/pilot-agent\/main\.js"\]/m);
});
