// compile(): clusters (endpoints from ServiceEntry/WorkloadEntry, subsets, DNS), the effective
// DestinationRule traffic policy per cluster and how a proxy finds its DestinationRule.

import t from 'tap';
import { lbPolicy } from '../../dist/config/compile/traffic-policy.js';
import type { Cluster } from '../../dist/config/snapshot.js';
import { compileYaml, GATEWAY, SIDECAR, service } from './compile-fixtures.js';

const MAX = 2 ** 32 - 1;
const eps = (c: Cluster | undefined) => c?.endpoints.map((e) => `${e.address}:${e.port}`);
const rv = (subset = '', port = 9080) => `outbound|${port}|${subset}|reviews.default.svc.cluster.local`;

const REVIEWS = service(
  'reviews',
  'default',
  [
    { number: 9080, name: 'http' },
    { number: 9090, name: 'http-admin', targetPort: 19090 },
  ],
  [
    { address: '10.0.0.1', labels: { version: 'v1' } },
    { address: '10.0.0.2', labels: { version: 'v2', zone: 'a' }, ports: { http: 8080 } },
    { address: '10.0.0.3', labels: { version: 'v2', zone: 'b' } },
  ],
);

t.test('subset clusters select ServiceEntry endpoints by labels', async (t) => {
  const snap = compileYaml(
    t,
    `${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
    - { name: v2a, labels: { version: v2, zone: a } }
    - { name: v3, labels: { version: v3 } }
`,
    SIDECAR,
  );
  t.strictSame(eps(snap.clusters.get(rv())), ['10.0.0.1:9080', '10.0.0.2:8080', '10.0.0.3:9080']);
  t.strictSame(eps(snap.clusters.get(rv('v1'))), ['10.0.0.1:9080']);
  t.strictSame(eps(snap.clusters.get(rv('v2'))), ['10.0.0.2:8080', '10.0.0.3:9080'], 'port by port name');
  t.strictSame(eps(snap.clusters.get(rv('v2a'))), ['10.0.0.2:8080'], 'all subset labels must match');
  t.strictSame(eps(snap.clusters.get(rv('v3'))), [], 'subset with no endpoints is an empty cluster');
  t.strictSame(
    eps(snap.clusters.get(rv('v2', 9090))),
    ['10.0.0.2:19090', '10.0.0.3:19090'],
    'no endpoint port for http-admin: targetPort',
  );
  const c = snap.clusters.get(rv('v1'));
  t.match(c, {
    host: 'reviews.default.svc.cluster.local',
    port: 9080,
    subset: 'v1',
    serviceName: 'reviews',
    serviceNamespace: 'default',
    discovery: 'static',
    meshExternal: false,
    destinationRule: 'default/reviews',
  });
});

t.test('WorkloadEntries join a ServiceEntry by workloadSelector, same namespace only', async (t) => {
  const we = (name: string, ns: string, address: string, labels: string, ports = '') => `---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  address: ${address}
  labels: ${labels}
${ports}`;
  const snap = compileYaml(
    t,
    `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: legacy
  namespace: vm
spec:
  hosts: [legacy.vm.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
    - { number: 80, name: http, protocol: HTTP, targetPort: 8000 }
  workloadSelector:
    labels: { app: legacy }
${we('vm-1', 'vm', '10.1.0.1', '{ app: legacy, version: v1 }', '  ports: { http: 8080 }\n')}${we(
  'vm-2',
  'vm',
  '10.1.0.2',
  '{ app: legacy, version: v2 }',
)}${we('other-app', 'vm', '10.1.0.3', '{ app: other }')}${we(
  'other-ns',
  'default',
  '10.1.0.4',
  '{ app: legacy }',
)}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: legacy
  namespace: vm
spec:
  host: legacy
  subsets:
    - { name: v2, labels: { version: v2 } }
`,
    SIDECAR,
  );
  t.strictSame(
    eps(snap.clusters.get('outbound|80||legacy.vm.svc.cluster.local')),
    ['10.1.0.1:8080', '10.1.0.2:8000'],
    'selected by labels in the SE namespace; port by name, else targetPort',
  );
  t.strictSame(eps(snap.clusters.get('outbound|80|v2|legacy.vm.svc.cluster.local')), ['10.1.0.2:8000']);
});

t.test('DNS resolution without endpoints resolves the host itself', async (t) => {
  const snap = compileYaml(
    t,
    `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin-ext
spec:
  hosts: [httpbin.org, www.httpbin.org]
  ports:
    - { number: 80, name: http, protocol: HTTP }
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: with-endpoints
spec:
  hosts: [api.example.com]
  ports:
    - { number: 443, name: https, protocol: HTTPS }
  resolution: DNS
  endpoints:
    - address: us.api.example.com
    - address: eu.api.example.com
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: passthrough
spec:
  hosts: [any.example.com]
  ports:
    - { number: 80, name: http, protocol: HTTP }
  resolution: NONE
`,
    SIDECAR,
  );
  const bin = snap.clusters.get('outbound|80||httpbin.org');
  t.equal(bin?.discovery, 'dns');
  t.equal(bin?.meshExternal, true, 'location defaults to MESH_EXTERNAL');
  t.strictSame(eps(bin), ['httpbin.org:80']);
  t.strictSame(eps(snap.clusters.get('outbound|80||www.httpbin.org')), ['www.httpbin.org:80'], 'per host');
  t.strictSame(eps(snap.clusters.get('outbound|443||api.example.com')), [
    'us.api.example.com:443',
    'eu.api.example.com:443',
  ]);
  const none = snap.clusters.get('outbound|80||any.example.com');
  t.equal(none?.discovery, 'original_dst');
  t.strictSame(eps(none), []);
});

const POLICY_DR = `${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews.default.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
    connectionPool:
      tcp:
        maxConnections: 100
    outlierDetection:
      consecutive5xxErrors: 7
    portLevelSettings:
      - port: { number: 9090 }
        connectionPool:
          tcp:
            maxConnections: 9
  subsets:
    - name: pool-only
      labels: { version: v1 }
      trafficPolicy:
        connectionPool:
          http:
            http1MaxPendingRequests: 5
    - name: lb-only
      labels: { version: v2 }
      trafficPolicy:
        loadBalancer:
          simple: RANDOM
    - name: port-level
      labels: { version: v2 }
      trafficPolicy:
        loadBalancer:
          simple: RANDOM
        portLevelSettings:
          - port: { number: 9080 }
            outlierDetection:
              consecutive5xxErrors: 2
`;

t.test('traffic policy: subsets inherit whole components they do not set', async (t) => {
  const snap = compileYaml(t, POLICY_DR, SIDECAR);
  const base = snap.clusters.get(rv());
  t.strictSame(base?.lb, { kind: 'ROUND_ROBIN' });
  t.equal(base?.connectionPool.maxConnections, 100);
  t.equal(base?.outlierDetection?.consecutive5xxErrors, 7);

  const pool = snap.clusters.get(rv('pool-only'));
  t.strictSame(
    pool?.lb,
    { kind: 'ROUND_ROBIN' },
    'DR-level LB inherited by a subset that sets only connectionPool',
  );
  t.equal(pool?.connectionPool.maxPendingRequests, 5);
  t.equal(
    pool?.connectionPool.maxConnections,
    MAX,
    'connectionPool replaced as a whole, not merged by field',
  );
  t.equal(pool?.outlierDetection?.consecutive5xxErrors, 7, 'outlierDetection inherited');

  const lb = snap.clusters.get(rv('lb-only'));
  t.strictSame(lb?.lb, { kind: 'RANDOM' }, 'subset LB replaces');
  t.equal(lb?.connectionPool.maxConnections, 100, 'connectionPool inherited');
});

t.test('traffic policy: port-level settings replace every component', async (t) => {
  const snap = compileYaml(t, POLICY_DR, SIDECAR);
  const admin = snap.clusters.get(rv('', 9090));
  t.equal(admin?.connectionPool.maxConnections, 9);
  t.strictSame(admin?.lb, { kind: 'LEAST_REQUEST' }, 'LB not set at port level: back to the default');
  t.equal(admin?.outlierDetection, undefined, 'outlier detection not inherited either');

  const poolAdmin = snap.clusters.get(rv('pool-only', 9090));
  t.equal(
    poolAdmin?.connectionPool.maxPendingRequests,
    5,
    'subset component on top of the port-level policy',
  );
  t.strictSame(poolAdmin?.lb, { kind: 'LEAST_REQUEST' });

  const subsetPort = snap.clusters.get(rv('port-level', 9080));
  t.equal(subsetPort?.outlierDetection?.consecutive5xxErrors, 2);
  t.strictSame(subsetPort?.lb, { kind: 'LEAST_REQUEST' }, "subset port level drops the subset's own LB");
  t.equal(subsetPort?.connectionPool.maxConnections, MAX, 'and the inherited connectionPool');
  const subsetOther = snap.clusters.get(rv('port-level', 9090));
  t.strictSame(subsetOther?.lb, { kind: 'RANDOM' }, 'other port: the subset LB');
  t.equal(subsetOther?.connectionPool.maxConnections, 9, 'DR port-level pool for 9090');
});

t.test('load balancer defaults and consistent hashing', async (t) => {
  const dr = (name: string, lb: string) => `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: ${name}
spec:
  host: ${name}
  trafficPolicy:
    loadBalancer:
${lb}`;
  const svc = (name: string) => `---\n${service(name, 'default', [{ number: 80, name: 'http' }])}`;
  const names = ['plain', 'leastconn', 'header', 'maglev', 'ring', 'cookie', 'session', 'srcip', 'query'];
  const snap = compileYaml(
    t,
    names.map(svc).join('') +
      dr('leastconn', '      simple: LEAST_CONN\n') +
      dr('header', '      consistentHash:\n        httpHeaderName: X-User\n') +
      dr(
        'maglev',
        '      consistentHash:\n        httpHeaderName: x-user\n        maglev:\n          tableSize: 65537\n',
      ) +
      dr(
        'ring',
        '      consistentHash:\n        httpQueryParameterName: id\n        ringHash:\n          minimumRingSize: 2048\n',
      ) +
      dr(
        'cookie',
        '      consistentHash:\n        httpCookie:\n          name: session\n          path: /\n',
      ) +
      dr('session', '      consistentHash:\n        httpCookie:\n          name: sid\n          ttl: 0s\n') +
      dr('srcip', '      consistentHash:\n        useSourceIp: true\n') +
      dr(
        'query',
        '      consistentHash:\n        httpQueryParameterName: user\n        maglev:\n          tableSize: 131\n',
      ),
    SIDECAR,
  );
  const c = (n: string) => snap.clusters.get(`outbound|80||${n}.default.svc.cluster.local`);
  t.strictSame(c('plain')?.lb, { kind: 'LEAST_REQUEST' }, 'Istio default LB is LEAST_REQUEST');
  t.equal(c('plain')?.hashPolicy, undefined);
  t.strictSame(c('leastconn')?.lb, { kind: 'LEAST_REQUEST' }, 'LEAST_CONN is an alias');
  t.strictSame(c('header')?.lb, { kind: 'RING_HASH', minimumRingSize: 1024 }, 'ring hash 1024 by default');
  t.strictSame(c('header')?.hashPolicy, { kind: 'header', name: 'x-user' });
  t.strictSame(c('maglev')?.lb, { kind: 'MAGLEV', tableSize: 65537 });
  // The validator insists on tableSize; compile still defaults it as Istio does.
  t.strictSame(lbPolicy({ consistentHash: { maglev: {} } }).lb, { kind: 'MAGLEV', tableSize: 65537 });
  t.strictSame(lbPolicy({ consistentHash: { useSourceIp: true } }).lb, {
    kind: 'RING_HASH',
    minimumRingSize: 1024,
  });
  t.strictSame(c('ring')?.lb, { kind: 'RING_HASH', minimumRingSize: 2048 });
  t.strictSame(c('ring')?.hashPolicy, { kind: 'query', name: 'id' });
  t.strictSame(
    c('cookie')?.hashPolicy,
    { kind: 'cookie', name: 'session', path: '/' },
    'no ttl: never generated',
  );
  t.strictSame(c('session')?.hashPolicy, { kind: 'cookie', name: 'sid', ttlMs: 0 }, 'ttl 0: session cookie');
  t.strictSame(c('srcip')?.hashPolicy, { kind: 'source_ip' });
  t.strictSame(c('query')?.lb, { kind: 'MAGLEV', tableSize: 131 });
});

t.test('connection pool and outlier detection defaults', async (t) => {
  const snap = compileYaml(
    t,
    `${REVIEWS}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    outlierDetection:
      interval: 1s
`,
    SIDECAR,
  );
  const c = snap.clusters.get(rv());
  t.strictSame(c?.connectionPool, {
    maxConnections: MAX,
    connectTimeoutMs: 10_000,
    maxPendingRequests: MAX,
    maxRequests: MAX,
    maxRequestsPerConnection: 0,
    maxRetries: MAX,
    idleTimeoutMs: 3_600_000,
    maxConnectionDurationMs: 0,
    tcpKeepaliveMs: 0,
    tcpIdleTimeoutMs: 3_600_000,
  });
  t.match(c?.outlierDetection, {
    consecutive5xxErrors: 5,
    consecutiveGatewayErrors: 0,
    intervalMs: 1000,
    baseEjectionTimeMs: 30_000,
    maxEjectionPercent: 10,
    minHealthPercent: 0,
  });
  const noDr = compileYaml(t, REVIEWS, SIDECAR).clusters.get(rv());
  t.equal(noDr?.outlierDetection, undefined, 'no outlier detection unless configured');
  t.equal(noDr?.destinationRule, undefined);
});

t.test('DestinationRule lookup: proxy namespace, then service namespace, then root', async (t) => {
  const dr = (ns: string, lb: string) => `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: details-${ns}
  namespace: ${ns}
spec:
  host: details.bookinfo.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      simple: ${lb}
`;
  const details = service('details', 'bookinfo', [{ number: 9080, name: 'http' }]);
  const key = 'outbound|9080||details.bookinfo.svc.cluster.local';
  const lbFor = (yaml: string, ns: string) =>
    compileYaml(t, yaml, { ...SIDECAR, namespace: ns }).clusters.get(key)?.lb.kind;
  const all =
    details + dr('istio-system', 'RANDOM') + dr('bookinfo', 'ROUND_ROBIN') + dr('default', 'PASSTHROUGH');
  t.equal(lbFor(all, 'default'), 'PASSTHROUGH', "the proxy's namespace first");
  t.equal(lbFor(all, 'other'), 'ROUND_ROBIN', "then the service's namespace, whatever the file order");
  const rootOnly = details + dr('unrelated', 'ROUND_ROBIN') + dr('istio-system', 'RANDOM');
  t.equal(lbFor(rootOnly, 'default'), 'RANDOM', 'then the root namespace; an unrelated namespace never');
  t.equal(lbFor(rootOnly, 'unrelated'), 'ROUND_ROBIN', 'but a proxy in that namespace sees it');
  const gw = compileYaml(t, all, GATEWAY).clusters.get(key)?.lb.kind;
  t.equal(gw, 'ROUND_ROBIN', 'a proxy in the root namespace looks in the service namespace first');
});
