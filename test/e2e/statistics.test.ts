// Statistical behaviour over >= 1000 requests each, through the real pilot-agent: weighted
// splits, RANDOM load balancing and fault percentages. Tolerances are stated per check
// (about 4 standard deviations, so a correct proxy fails less than once in ten thousand runs).

import t from 'tap';
import { Agent, request as undiciRequest } from 'undici';
import {
  freePort,
  gatewayYaml,
  serviceEntryYaml,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const ups = await Promise.all(['a', 'b', 'c'].map((n) => startUpstream(n)));
const gw = await freePort();
const labels = ['a', 'b', 'c'];
const config = `${gatewayYaml(gw)}
---
${serviceEntryYaml(
  'svc.default.svc.cluster.local',
  ups.map((u, i) => ({ port: u.port, labels: { version: labels[i] as string } })),
)}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: a, labels: {version: a}}
  - {name: b, labels: {version: b}}
  - {name: c, labels: {version: c}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /eighty}}]
    route:
    - {destination: {host: svc, subset: a}, weight: 80}
    - {destination: {host: svc, subset: b}, weight: 20}
  - match: [{uri: {prefix: /three}}]
    route:
    - {destination: {host: svc, subset: a}, weight: 50}
    - {destination: {host: svc, subset: b}, weight: 30}
    - {destination: {host: svc, subset: c}, weight: 20}
  - match: [{uri: {prefix: /random}}]
    route: [{destination: {host: svc}}]
  - match: [{uri: {prefix: /fault}}]
    fault:
      abort: {httpStatus: 503, percentage: {value: 30}}
      delay: {fixedDelay: 1ms, percentage: {value: 50}}
    route: [{destination: {host: svc, subset: a}}]
`;
const agent = await startAgent({ configDir: writeConfigDir({ 'c.yaml': config }), concurrency: 2 });
const client = new Agent({ connections: 16 });
t.teardown(async () => {
  await client.close();
  await agent.stop();
  await Promise.all(ups.map((u) => u.close()));
});

async function counts(path: string, n: number): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const one = async () => {
    const r = await undiciRequest(`http://127.0.0.1:${gw}${path}`, { dispatcher: client });
    const key =
      r.statusCode === 200 ? ((await r.body.json()) as { name: string }).name : String(r.statusCode);
    if (r.statusCode !== 200) await r.body.text();
    out.set(key, (out.get(key) ?? 0) + 1);
  };
  for (let i = 0; i < n; i += 16) await Promise.all(Array.from({ length: Math.min(16, n - i) }, one));
  return out;
}

/** |observed share - p| within 4 standard deviations of a binomial(n, p). */
function near(
  t: { ok: (v: boolean, m: string) => void },
  got: number,
  n: number,
  p: number,
  what: string,
): void {
  const tol = 4 * Math.sqrt((p * (1 - p)) / n);
  t.ok(
    Math.abs(got / n - p) <= tol,
    `${what}: ${(got / n).toFixed(3)} vs ${p} (tolerance ±${tol.toFixed(3)})`,
  );
}

const N = 1000;

t.test('80/20 split', async (t) => {
  const c = await counts('/eighty', N);
  near(t, c.get('a') ?? 0, N, 0.8, 'a');
  t.equal((c.get('a') ?? 0) + (c.get('b') ?? 0), N, 'nothing else');
});

t.test('50/30/20 split', async (t) => {
  const c = await counts('/three', N);
  near(t, c.get('a') ?? 0, N, 0.5, 'a');
  near(t, c.get('b') ?? 0, N, 0.3, 'b');
  near(t, c.get('c') ?? 0, N, 0.2, 'c');
});

t.test('RANDOM spreads evenly over three endpoints', async (t) => {
  const c = await counts('/random', N);
  for (const k of labels) near(t, c.get(k) ?? 0, N, 1 / 3, k);
});

t.test('fault abort at 30%', async (t) => {
  const c = await counts('/fault', N);
  near(t, c.get('503') ?? 0, N, 0.3, 'aborted');
  near(t, c.get('a') ?? 0, N, 0.7, 'forwarded');
});
