// Header operations at route and destination level, in the combinations Istio's own routing
// integration tests check ("set authority header", "set host header in destination", "set host
// header in route and destination", "... in route and multi destination", "set host header multi
// destination"): the route's value wins over a destination's, as Envoy applies the weighted
// cluster's operations first and the route's after them. Real pilot-agent, real upstreams.

import t from 'tap';
import {
  freePort,
  gatewayYaml,
  request,
  serviceEntryYaml,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const v1 = await startUpstream('v1');
const v2 = await startUpstream('v2');
const gw = await freePort();

/** One VirtualService per case, each on its own host so the cases cannot interfere. */
const cases: Record<string, string> = {
  'route-authority': `
    route:
    - destination: {host: svc}
    headers: {request: {set: {":authority": my-custom-authority}}}`,
  'dest-host': `
    route:
    - destination: {host: svc}
      headers: {request: {set: {Host: my-custom-authority}}}`,
  'dest-authority': `
    route:
    - destination: {host: svc}
      headers: {request: {set: {":authority": my-custom-authority}}}`,
  'route-and-dest': `
    route:
    - destination: {host: svc}
      headers: {request: {set: {Host: dest-authority}}}
    headers: {request: {set: {":authority": route-authority}}}`,
  'route-and-multi-dest': `
    route:
    - destination: {host: svc, subset: v1}
      headers: {request: {set: {Host: dest-authority}}}
      weight: 50
    - destination: {host: svc, subset: v2}
      weight: 50
    headers: {request: {set: {":authority": route-authority}}}`,
  'multi-dest': `
    route:
    - destination: {host: svc, subset: v1}
      headers: {request: {set: {Host: dest-authority}}}
      weight: 50
    - destination: {host: svc, subset: v2}
      headers: {request: {set: {Host: dest-authority}}}
      weight: 50`,
  'set-both-levels': `
    route:
    - destination: {host: svc}
      headers:
        request: {set: {x-custom: from-destination}, add: {x-dest-only: d}}
        response: {set: {x-answer: from-destination}}
    headers:
      request: {set: {x-custom: from-route}, add: {x-route-only: r}}
      response: {set: {x-answer: from-route}}`,
};

const vss = Object.entries(cases)
  .map(
    ([name, http]) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}}
spec:
  hosts: [${name}.example.com]
  gateways: [gw]
  http:
  -${http.replace(/^\n {4}/, ' ').replace(/\n {4}/g, '\n    ')}
`,
  )
  .join('---\n');

const config = `${gatewayYaml(gw)}
---
${serviceEntryYaml('svc.default.svc.cluster.local', [
  { port: v1.port, labels: { version: 'v1' } },
  { port: v2.port, labels: { version: 'v2' } },
])}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
${vss}`;

const agent = await startAgent({ configDir: writeConfigDir({ 'c.yaml': config }) });
t.teardown(async () => {
  await agent.stop();
  await Promise.all([v1.close(), v2.close()]);
});

/** The Host the upstream saw, for `n` requests to one case. */
async function hostsSeen(name: string, n = 1): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await request(gw, '/', { host: `${name}.example.com` });
    t.equal(r.status, 200, `${name}: routed`);
    out.push((JSON.parse(r.body) as { headers: { host: string } }).headers.host);
  }
  return out;
}

t.test('set :authority on the route', async (t) => {
  t.same(await hostsSeen('route-authority'), ['my-custom-authority']);
});

t.test('set Host on the destination', async (t) => {
  t.same(await hostsSeen('dest-host'), ['my-custom-authority']);
});

t.test('set :authority on the destination', async (t) => {
  t.same(await hostsSeen('dest-authority'), ['my-custom-authority']);
});

t.test('route and destination both set it: the route wins', async (t) => {
  t.same(await hostsSeen('route-and-dest'), ['route-authority']);
});

t.test('route and a weighted destination both set it: the route wins on every pick', async (t) => {
  const seen = await hostsSeen('route-and-multi-dest', 20);
  t.same([...new Set(seen)], ['route-authority'], '20 requests over both destinations');
  t.ok(v1.hits > 0 && v2.hits > 0, 'both destinations were picked');
});

t.test('every weighted destination sets it and the route does not', async (t) => {
  t.same([...new Set(await hostsSeen('multi-dest', 10))], ['dest-authority']);
});

t.test('other headers set at both levels: the route wins, adds from both arrive', async (t) => {
  const r = await request(gw, '/', { host: 'set-both-levels.example.com' });
  const seen = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
  t.equal(seen['x-custom'], 'from-route', 'request set: route over destination');
  t.equal(seen['x-route-only'], 'r');
  t.equal(seen['x-dest-only'], 'd');
  t.equal(r.headers['x-answer'], 'from-route', 'response set: route over destination');
});
