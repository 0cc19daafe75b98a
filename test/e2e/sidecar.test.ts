// Sidecar mode end to end: two real sidecars with different workload labels routing the same
// mesh config differently, every Host form, absolute-form (HTTP_PROXY) requests, gateway-only
// VirtualServices not leaking into the mesh, ALLOW_ANY vs REGISTRY_ONLY, and the inbound listener.

import t from 'tap';
import {
  freePort,
  request,
  serviceEntryYaml,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const v1 = await startUpstream('reviews-v1');
const v2 = await startUpstream('reviews-v2');
const external = await startUpstream('external');
const app = await startUpstream('local-app');

const mesh = `${serviceEntryYaml(
  'reviews.default.svc.cluster.local',
  [
    { port: v1.port, labels: { version: 'v1' } },
    { port: v2.port, labels: { version: 'v2' } },
  ],
  9080,
)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {app: productpage}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gateway-only}
spec:
  hosts: [reviews]
  gateways: [some-gateway]
  http:
  - directResponse: {status: 418}
`;

async function sidecar(labels: string, extra: Record<string, string> = {}, appPort?: number) {
  const [outbound, inbound] = [await freePort(), await freePort()];
  const args = ['--labels', labels, '--outbound-port', String(outbound), '--inbound-port', String(inbound)];
  if (appPort) args.push('--app-port', String(appPort));
  const agent = await startAgent({
    configDir: writeConfigDir({ 'mesh.yaml': mesh, ...extra }),
    mode: 'sidecar',
    args,
  });
  return { agent, outbound, inbound };
}

const productpage = await sidecar('app=productpage,version=v1', {}, app.port);
const other = await sidecar('app=ratings');
const locked = await sidecar('app=locked', {
  'sidecar.yaml': `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`,
  'wild.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: wild}
spec:
  hosts: ["*.wild.test"]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${external.port}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api-wild}
spec:
  hosts: [api.wild.test]
  http:
  - fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: api.wild.test}}]
`,
});
t.teardown(async () => {
  await Promise.all([productpage, other, locked].map((s) => s.agent.stop()));
  await Promise.all([v1, v2, external, app].map((u) => u.close()));
});

const who = (b: string) => (JSON.parse(b) as { name: string }).name;

t.test('sourceLabels route differently per client proxy', async (t) => {
  t.equal(who((await request(productpage.outbound, '/r', { host: 'reviews:9080' })).body), 'reviews-v2');
  t.equal(who((await request(other.outbound, '/r', { host: 'reviews:9080' })).body), 'reviews-v1');
});

t.test('every Host form Istio generates resolves', async (t) => {
  for (const host of [
    'reviews:9080',
    'reviews.default:9080',
    'reviews.default.svc:9080',
    'reviews.default.svc.cluster.local:9080',
    'reviews',
    'reviews.default.svc.cluster.local',
  ]) {
    const r = await request(other.outbound, '/r', { host });
    t.equal(r.status, 200, host);
    t.equal(who(r.body), 'reviews-v1', host);
  }
});

t.test('a gateway-only VirtualService does not apply in the mesh', async (t) => {
  t.not((await request(other.outbound, '/r', { host: 'reviews:9080' })).status, 418);
});

t.test('absolute-form requests (HTTP_PROXY) route by the URL authority', async (t) => {
  const r = await request(other.outbound, 'http://reviews.default.svc.cluster.local:9080/abs?x=1', {
    host: 'ignored',
  });
  t.equal(who(r.body), 'reviews-v1');
  t.equal((JSON.parse(r.body) as { url: string }).url, '/abs?x=1');
});

t.test('unknown hosts: ALLOW_ANY passes through, REGISTRY_ONLY answers 502', async (t) => {
  const pass = await request(other.outbound, '/out', { host: `127.0.0.1:${external.port}` });
  t.equal(pass.status, 200);
  t.equal(who(pass.body), 'external');
  const blocked = await request(locked.outbound, '/out', { host: `127.0.0.1:${external.port}` });
  t.equal(blocked.status, 502);
  const known = await request(locked.outbound, '/r', { host: 'reviews:9080' });
  t.equal(known.status, 200, 'registry hosts still route under REGISTRY_ONLY');
});

t.test(
  'REGISTRY_ONLY admits a wildcard ServiceEntry; a VirtualService on a host it covers applies',
  async (t) => {
    const wild = await request(locked.outbound, '/w', { host: 'www.wild.test' });
    t.equal(wild.status, 200, 'a host under *.wild.test is in the registry');
    t.equal(who(wild.body), 'external');
    t.equal((await request(locked.outbound, '/w', { host: 'api.wild.test' })).status, 418, 'the VS fault');
    t.equal((await request(locked.outbound, '/w', { host: 'www.other.test' })).status, 502);
  },
);

t.test('inbound listener forwards to the local application', async (t) => {
  const r = await request(productpage.inbound, '/in', { host: 'productpage:9080' });
  t.equal(r.status, 200);
  t.equal(who(r.body), 'local-app');
});
