// compile(): what one HTTPRoute becomes — weights, retries, faults, mirrors, redirects, and the
// catch-all rule that ends a VirtualService's route list.

import t, { type Test } from 'tap';
import type { CompiledRoute, RouteActionRoute } from '../../dist/config/snapshot.js';
import { compileYaml, outbound, req, routeFor, SIDECAR, service } from './compile-fixtures.js';

const REGISTRY = `${service(
  'reviews',
  'default',
  [{ number: 9080, name: 'http' }],
  [{ address: '10.0.0.1', labels: { version: 'v1' } }],
)}---
${service('ratings', 'default', [{ number: 9080, name: 'http' }])}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
    - { name: v3, labels: { version: v3 } }
---
`;

/** Compile one VS for `reviews` (its `http:` list given as YAML) and return the reviews routes. */
function routes(t: Test, http: string): readonly CompiledRoute[] {
  const snap = compileYaml(
    t,
    `${REGISTRY}apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
${http}`,
    SIDECAR,
  );
  return outbound(snap).routes.lookup('reviews')?.routes ?? [];
}

function only(t: Test, http: string): CompiledRoute {
  const rs = routes(t, http);
  t.equal(rs.length, 1, 'one route');
  return rs[0] as CompiledRoute;
}

const weights = (r: CompiledRoute) =>
  (r.action as RouteActionRoute).destinations.map((d) => [d.subset, d.weight] as const);

t.test('weights: zero dropped, relative to the sum, one destination takes all', async (t) => {
  const split = only(
    t,
    `    - route:
        - { destination: { host: reviews, subset: v1 }, weight: 0 }
        - { destination: { host: reviews, subset: v2 }, weight: 30 }
        - { destination: { host: reviews, subset: v3 }, weight: 70 }
`,
  );
  t.strictSame(weights(split), [
    ['v2', 30],
    ['v3', 70],
  ]);
  t.equal((split.action as RouteActionRoute).totalWeight, 100);
  const relative = only(
    t,
    `    - route:
        - { destination: { host: reviews, subset: v1 }, weight: 1 }
        - { destination: { host: reviews, subset: v2 }, weight: 3 }
`,
  );
  t.equal((relative.action as RouteActionRoute).totalWeight, 4, 'weights need not sum to 100');
  const single = only(
    t,
    `    - route:
        - { destination: { host: reviews, subset: v2 }, weight: 10 }
`,
  );
  const a = single.action as RouteActionRoute;
  t.equal(a.destinations.length, 1);
  t.equal(a.destinations[0]?.weight, a.totalWeight, 'the single destination receives all traffic');
  t.equal(a.destinations[0]?.cluster, 'outbound|9080|v2|reviews.default.svc.cluster.local');
});

t.test(
  'default retry policy: 2 retries on connect-failure,refused-stream,unavailable,cancelled',
  async (t) => {
    const r = only(t, '    - route:\n        - destination: { host: reviews }\n');
    t.equal(r.retry.numRetries, 2);
    for (const on of ['connect-failure', 'refused-stream', 'unavailable', 'cancelled'])
      t.ok(r.retry.retryOn.has(on), on);
    t.notOk(r.retry.retryOn.has('5xx'), 'not 5xx');
    t.notOk(r.retry.retriableStatusCodes.has(503), '503 no longer retried by default (Istio >= 1.24)');
    t.equal(r.retry.perTryTimeoutMs, 0);
    t.equal(r.timeoutMs, 0, 'no route timeout by default');
    t.equal(r.retry.retryOtherHosts, true);
  },
);

t.test('explicit retries replace the default; attempts 0 disables', async (t) => {
  const r = only(
    t,
    `    - route:
        - destination: { host: reviews }
      timeout: 10s
      retries:
        attempts: 5
        perTryTimeout: 2s
        retryOn: gateway-error,503
`,
  );
  t.equal(r.retry.numRetries, 5);
  t.equal(r.retry.perTryTimeoutMs, 2000);
  t.equal(r.timeoutMs, 10_000);
  t.ok(r.retry.retryOn.has('gateway-error'));
  t.ok(r.retry.retryOn.has('retriable-status-codes'), 'a status code enables retriable-status-codes');
  t.ok(r.retry.retriableStatusCodes.has(503));
  t.notOk(r.retry.retryOn.has('connect-failure'), 'retryOn replaces the default list');
  const off = only(
    t,
    '    - route:\n        - destination: { host: reviews }\n      retries:\n        attempts: 0\n',
  );
  t.equal(off.retry.numRetries, 0);
});

t.test('a fault disables retries; unset fault percentage is 0', async (t) => {
  const r = only(
    t,
    `    - route:
        - destination: { host: reviews }
      retries:
        attempts: 3
      fault:
        abort:
          httpStatus: 503
        delay:
          fixedDelay: 5s
          percentage: { value: 50 }
`,
  );
  t.equal(r.retry.numRetries, 0, 'retries off with a fault');
  t.strictSame(r.fault?.abort, { status: 503, percent: 0 }, 'abort percentage unset → 0');
  t.strictSame(r.fault?.delay, { ms: 5000, percent: 50 });
  const dflt = only(
    t,
    `    - route:
        - destination: { host: reviews }
      fault:
        abort:
          httpStatus: 418
          percentage: { value: 100 }
`,
  );
  t.equal(dflt.retry.numRetries, 0, 'default retries are off too');
  t.equal(dflt.fault?.abort?.percent, 100);
});

t.test('mirror percentage unset → 100', async (t) => {
  const r = only(
    t,
    `    - route:
        - destination: { host: reviews }
      mirror: { host: ratings }
`,
  );
  t.strictSame(r.mirrors, [
    {
      cluster: 'outbound|9080||ratings.default.svc.cluster.local',
      host: 'ratings.default.svc.cluster.local',
      percent: 100,
    },
  ]);
  const pct = only(
    t,
    `    - route:
        - destination: { host: reviews }
      mirrors:
        - destination: { host: ratings }
          percentage: { value: 25.5 }
        - destination: { host: reviews, subset: v2 }
`,
  );
  t.strictSame(
    pct.mirrors.map((m) => [m.cluster, m.percent]),
    [
      ['outbound|9080||ratings.default.svc.cluster.local', 25.5],
      ['outbound|9080|v2|reviews.default.svc.cluster.local', 100],
    ],
  );
});

t.test('redirect code defaults to 301', async (t) => {
  const r = only(t, '    - redirect:\n        uri: /new\n        authority: example.org\n');
  t.equal(r.action.kind, 'redirect');
  t.match(r.action, { kind: 'redirect', code: 301, uri: '/new', authority: 'example.org' });
  const c = only(t, '    - redirect:\n        uri: /new\n        redirectCode: 308\n');
  t.match(c.action, { code: 308 });
});

t.test('direct response', async (t) => {
  const r = only(t, '    - directResponse:\n        status: 418\n        body:\n          string: teapot\n');
  t.equal(r.action.kind, 'direct_response');
  if (r.action.kind === 'direct_response') {
    t.equal(r.action.status, 418);
    t.equal(r.action.body?.toString(), 'teapot');
  }
});

t.test('a catch-all route ends the VirtualService', async (t) => {
  const tail = `    - route:
        - destination: { host: reviews, subset: v3 }
`;
  const noMatch = routes(t, `    - route:\n        - destination: { host: reviews, subset: v1 }\n${tail}`);
  t.strictSame(
    noMatch.map((r) => r.name),
    ['default.reviews.0'],
    'no match: later routes are not generated',
  );
  const slash = routes(
    t,
    `    - match:
        - uri: { prefix: /api }
        - uri: { prefix: / }
      route:
        - destination: { host: reviews, subset: v1 }
${tail}`,
  );
  t.strictSame(
    slash.map((r) => r.name),
    ['default.reviews.0'],
    'a prefix / block is a catch-all',
  );
  const notCatchAll = routes(
    t,
    `    - match:
        - uri: { prefix: / }
          headers:
            end-user: { exact: jason }
      route:
        - destination: { host: reviews, subset: v1 }
${tail}`,
  );
  t.strictSame(
    notCatchAll.map((r) => r.name),
    ['default.reviews.0', 'default.reviews.1'],
    'prefix / with a header condition is not a catch-all',
  );
  const vh = { name: 'x', domains: [], routes: notCatchAll };
  t.equal(routeFor(vh, req({ headers: { 'end-user': 'jason' } }))?.name, 'default.reviews.0');
  t.equal(routeFor(vh, req({ headers: { 'end-user': 'bob' } }))?.name, 'default.reviews.1');
});

t.test('no rule matching a VS host request leaves no route (404 NR, no default)', async (t) => {
  const rs = routes(
    t,
    `    - match:
        - uri: { exact: /only }
      route:
        - destination: { host: reviews, subset: v1 }
`,
  );
  t.equal(rs.length, 1, 'no default route appended after VS routes');
  t.equal(routeFor({ name: 'x', domains: [], routes: rs }, req({ path: '/other' })), undefined);
  t.equal(
    routeFor({ name: 'x', domains: [], routes: rs }, req({ path: '/only' }))?.name,
    'default.reviews.0',
  );
});

t.test('route name: the HTTPRoute name when set', async (t) => {
  const r = only(t, '    - name: primary\n      route:\n        - destination: { host: reviews }\n');
  t.equal(r.name, 'primary');
  t.equal(r.virtualService, 'default/reviews');
});
