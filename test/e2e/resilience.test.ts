// Circuit breaking (connectionPool) and outlier detection through the real pilot-agent.

import t from 'tap';
import {
  freePort,
  gatewayYaml,
  request,
  serviceEntryYaml,
  sleep,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const slow = await startUpstream('slow', (_req, res) => {
  setTimeout(() => {
    res.writeHead(200, { 'content-length': '2' });
    res.end('ok');
  }, 150);
  return true;
});
const good = await startUpstream('good');
const bad = await startUpstream('bad', (_req, res) => {
  res.writeHead(500, { 'content-length': '3' });
  res.end('bad');
  return true;
});
const gw = await freePort();
const config = `${gatewayYaml(gw)}
---
${serviceEntryYaml('cb.default.svc.cluster.local', [{ port: slow.port }])}
---
${serviceEntryYaml('maxreq.default.svc.cluster.local', [{ port: slow.port }])}
---
${serviceEntryYaml('od.default.svc.cluster.local', [{ port: good.port }, { port: bad.port }])}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cb}
spec:
  host: cb
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: maxreq}
spec:
  host: maxreq
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: od}
spec:
  host: od
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 200ms
      baseEjectionTime: 1500ms
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /cb}}]
    route: [{destination: {host: cb}}]
  - match: [{uri: {prefix: /maxreq}}]
    route: [{destination: {host: maxreq}}]
  - match: [{uri: {prefix: /od}}]
    retries: {attempts: 0}
    route: [{destination: {host: od}}]
`;
const agent = await startAgent({ configDir: writeConfigDir({ 'c.yaml': config }), concurrency: 1 });
t.teardown(async () => {
  await agent.stop();
  await Promise.all([slow, good, bad].map((u) => u.close()));
});

const OVERFLOW = 'upstream connect error or disconnect/reset before headers. reset reason: overflow';

async function burst(path: string, clients: number, each: number) {
  const results: { status: number; body: string; overloaded: unknown }[] = [];
  await Promise.all(
    Array.from({ length: clients }, async () => {
      for (let i = 0; i < each; i++) {
        const r = await request(gw, path);
        results.push({ status: r.status, body: r.body, overloaded: r.headers['x-envoy-overloaded'] });
      }
    }),
  );
  return results;
}

t.test('circuit breaker: one client never trips it', async (t) => {
  const r = await burst('/cb', 1, 10);
  t.same(
    r.map((x) => x.status),
    Array(10).fill(200),
  );
});

t.test('circuit breaker: three concurrent clients trip it with 503 UO + x-envoy-overloaded', async (t) => {
  const r = await burst('/cb', 3, 10);
  const tripped = r.filter((x) => x.status === 503);
  t.ok(tripped.length > 0, `${tripped.length} of ${r.length} overflowed`);
  t.ok(
    r.some((x) => x.status === 200),
    'some still served',
  );
  for (const x of tripped) {
    t.equal(x.body, OVERFLOW);
    t.equal(x.overloaded, 'true');
  }
  const after = await request(gw, '/cb');
  t.equal(after.status, 200, 'released after the burst');
  const m = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
  t.match(
    m,
    /istio_requests_total\{[^}]*response_code="503",response_flags="UO"[^}]*\} [1-9]/,
    'flag UO counted',
  );
});

t.test('http2MaxRequests bounds outstanding requests', async (t) => {
  const r = await burst('/maxreq', 4, 3);
  t.ok(
    r.some((x) => x.status === 503 && x.body === OVERFLOW),
    'overflow',
  );
  t.equal((await request(gw, '/maxreq')).status, 200, 'released');
});

t.test(
  'outlier detection ejects a 5xx endpoint after 3 in a row and returns it after the ejection time',
  async (t) => {
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await request(gw, '/od')).status);
    const fails = statuses.filter((s) => s === 500).length;
    t.equal(fails, 3, `exactly consecutive5xxErrors failures before ejection (${statuses.join(',')})`);
    t.same(statuses.slice(-20), Array(20).fill(200), 'traffic shifted to the healthy endpoint');
    const m = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
    t.match(
      m,
      new RegExp(
        `courier_endpoint_ejected\\{cluster_name="outbound\\|80\\|\\|od\\.default\\.svc\\.cluster\\.local",endpoint="127\\.0\\.0\\.1:${bad.port}"\\} 1`,
      ),
    );
    t.match(m, /courier_outlier_ejections_total [1-9]/);
    const clusters = (await (await fetch(`http://127.0.0.1:${agent.admin}/clusters`)).json()) as {
      name: string;
      endpoints: { address: string; health: string }[];
    }[];
    const od = clusters.find((c) => c.name === 'outbound|80||od.default.svc.cluster.local');
    t.same(
      od?.endpoints.map((e) => [e.address, e.health]),
      [
        [`127.0.0.1:${good.port}`, 'HEALTHY'],
        [`127.0.0.1:${bad.port}`, 'EJECTED'],
      ],
      'ejection visible in /clusters',
    );
    t.match(
      m,
      /courier_upstream_rq_overflow_total\{kind="requests"\} [1-9]/,
      'earlier circuit-breaker trips are counted',
    );
    await sleep(1900);
    const later: number[] = [];
    for (let i = 0; i < 6; i++) later.push((await request(gw, '/od')).status);
    t.ok(later.includes(500), `the ejected endpoint is back after baseEjectionTime (${later.join(',')})`);
  },
);
