// compile(): the snapshot's version hash (content of resources + identity, not their layout)
// and its immutability.

import t from 'tap';
import { compile } from '../../dist/config/compile/index.js';
import type { Snapshot } from '../../dist/config/snapshot.js';
import { compileYaml, GATEWAY, load, SIDECAR, service } from './compile-fixtures.js';

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

const SPLIT_A = `# bookinfo routing
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: { host: reviews, subset: v1 }
          weight: 90
        - destination: { host: reviews, subset: v2 }
          weight: 10
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;

/** The same resources: other files, other document order, other key order, comments. */
const SPLIT_B = {
  'dr.yaml': `spec:
  subsets:
    - labels: { version: v1 }
      name: v1   # first subset
    - { labels: { version: v2 }, name: v2 }
  host: reviews
metadata: { name: reviews }
kind: DestinationRule
apiVersion: networking.istio.io/v1
`,
  sub: {
    'vs.yml': `kind: VirtualService
apiVersion: networking.istio.io/v1
metadata:
  name: reviews
spec:
  http:
    - route:
        - weight: 90
          destination: { subset: v1, host: reviews }
        - { weight: 10, destination: { subset: v2, host: reviews } }
  hosts: [reviews]
`,
  },
  'se.yaml': REVIEWS,
};

t.test('snapshot version: a content hash of resources and identity', async (t) => {
  const one = compile(load(t, { 'all.yaml': `${REVIEWS}---\n${SPLIT_A}` }), SIDECAR);
  const split = compile(load(t, SPLIT_B), SIDECAR);
  t.match(one.version, /^[0-9a-f]{16}$/);
  t.equal(split.version, one.version, 'file split, document order, key order and comments do not matter');
  t.equal(
    compile(load(t, { 'all.yaml': `${REVIEWS}---\n${SPLIT_A}` }), SIDECAR).version,
    one.version,
    'stable',
  );

  const changed = (from: string, to: string) => {
    t.ok(SPLIT_A.includes(from), `fixture has ${from}`);
    return compile(load(t, { 'all.yaml': `${REVIEWS}---\n${SPLIT_A.replace(from, to)}` }), SIDECAR).version;
  };
  t.not(changed('weight: 90', 'weight: 91'), one.version, 'a weight');
  t.not(changed('{ version: v2 }', '{ version: v3 }'), one.version, 'a subset label');
  t.not(changed('name: reviews\nspec:\n  hosts', 'name: reviews2\nspec:\n  hosts'), one.version, 'a name');
  t.not(
    changed('  name: reviews\nspec:\n  host:', '  name: reviews\n  namespace: bookinfo\nspec:\n  host:'),
    one.version,
    'a namespace',
  );

  const resources = load(t, { 'all.yaml': `${REVIEWS}---\n${SPLIT_A}` });
  const v = (id: typeof SIDECAR) => compile(resources, id).version;
  t.not(v({ ...SIDECAR, labels: { app: 'productpage', version: 'v2' } }), one.version, 'identity labels');
  t.not(v({ ...SIDECAR, namespace: 'bookinfo' }), one.version, 'identity namespace');
  t.not(v({ ...SIDECAR, appPort: 9080 }), one.version, 'identity app port');
  t.not(v({ ...SIDECAR, mode: 'router' }), one.version, 'identity mode');
});

/** Every plain object and array reachable from the snapshot (Maps are walked, not frozen). */
function unfrozen(root: unknown): string[] {
  const out: string[] = [];
  const seen = new Set<unknown>();
  const walk = (v: unknown, path: string) => {
    if (!v || typeof v !== 'object' || seen.has(v)) return;
    seen.add(v);
    if (v instanceof Map) {
      for (const [k, x] of v) walk(x, `${path}.get(${String(k)})`);
      return;
    }
    if (v instanceof Set || v instanceof RegExp || ArrayBuffer.isView(v)) return;
    if (!Object.isFrozen(v)) out.push(path);
    for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
  };
  walk(root, 'snapshot');
  return out;
}

t.test('the snapshot is frozen all the way down', async (t) => {
  const yaml = `${REVIEWS}---\n${SPLIT_A}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: hashed
spec:
  host: ratings.default.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      consistentHash: { httpHeaderName: x-user }
    outlierDetection: { consecutive5xxErrors: 3 }
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: istio-system
spec:
  selector: { istio: ingressgateway }
  servers:
    - port: { number: 80, name: http, protocol: HTTP }
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: edge
  namespace: istio-system
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
    - match:
        - uri: { regex: "/v[0-9]+/.*" }
      rewrite:
        uriRegexRewrite: { match: "^/v[0-9]+", rewrite: "/" }
      route:
        - destination: { host: reviews.default.svc.cluster.local }
      retries: { attempts: 1 }
      headers:
        request:
          set: { x-edge: "1" }
`;
  const snaps: Snapshot[] = [
    compileYaml(t, yaml, { ...SIDECAR, appPort: 9080 }),
    compileYaml(t, yaml, GATEWAY),
  ];
  for (const snap of snaps) {
    t.ok(Object.isFrozen(snap));
    t.strictSame(unfrozen(snap), [], `${snap.identity.mode}: nothing reachable is mutable`);
    t.throws(() => {
      (snap as { version: string }).version = 'x';
    }, TypeError);
    const route = snap.listeners[0]?.routes.virtualHosts[0]?.routes[0];
    t.ok(route, 'has a route');
    t.throws(() => {
      (route as { timeoutMs: number }).timeoutMs = 1;
    }, TypeError);
  }
  const gwRoute = snaps[1]?.listeners[0]?.routes.lookup('x.example.com')?.routes[0];
  t.ok(gwRoute?.rewrite?.regex, 'a regex rewrite is compiled');
  t.equal(
    '/v2/items'.replace(
      gwRoute?.rewrite?.regex?.pattern as RegExp,
      gwRoute?.rewrite?.regex?.replacement ?? '',
    ),
    '//items',
    'a global rewrite regex still works (RegExp objects are not frozen)',
  );
  const cluster = snaps[0]?.clusters.get('outbound|9080||reviews.default.svc.cluster.local');
  t.throws(() => {
    (cluster?.lb as { kind: string }).kind = 'RANDOM';
  }, TypeError);
});
