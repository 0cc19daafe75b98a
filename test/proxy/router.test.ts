// The pure router: what it decides for a request, without a socket. These are the decisions the
// request path carries out and `courier explain` prints.

import t, { type Test } from 'tap';
import type { CompiledRoute, RouteActionRedirect, RouteActionRoute } from '../../dist/config/snapshot.js';
import {
  decideCors,
  decideFault,
  decideRoute,
  httpsRedirectLocation,
  matchRoute,
  pickDestination,
  redirectLocation,
} from '../../dist/proxy/router.js';
import { compileYaml, GATEWAY, listenerOn, req } from '../config/compile-fixtures.js';

const CONFIG = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8443, name: http-redirect, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: istio-system}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /api/v1}}, {uri: {prefix: /v1}}]
    redirect: {prefixRewrite: /v2, derivePort: FROM_REQUEST_PORT}
  - match: [{uri: {exact: /split}}]
    route:
    - {destination: {host: a.default.svc.cluster.local}, weight: 25}
    - {destination: {host: b.default.svc.cluster.local}, weight: 75}
  - match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: https://ok.example}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a]
      maxAge: 1h
      allowCredentials: true
      exposeHeaders: [x-b]
    route: [{destination: {host: a.default.svc.cluster.local}}]
  - match: [{uri: {prefix: /fault}}]
    fault:
      delay: {fixedDelay: 2s, percentage: {value: 50}}
      abort: {httpStatus: 503, percentage: {value: 10}}
    route: [{destination: {host: a.default.svc.cluster.local}}]
`;

const snapFor = (t: Test) => compileYaml(t, CONFIG, GATEWAY);

t.test('decideRoute: no host, https redirect, a route with the match block that matched', async (t) => {
  const l = listenerOn(snapFor(t), 8080);
  if (!l) throw new Error('no listener');
  t.match(decideRoute(l, req({ authority: 'nope.example.com' })), { kind: 'no_route' });
  const d = decideRoute(l, req({ authority: 'shop.example.com', path: '/v1/items' }));
  t.equal(d.kind, 'route');
  if (d.kind !== 'route') return;
  t.equal(d.prefix, '/v1', 'the second match block matched: its prefix, not the first one');
  t.match(decideRoute(l, req({ authority: 'shop.example.com', path: '/other' })), { kind: 'no_route' });
  const secure = listenerOn(snapFor(t), 8443);
  if (!secure) throw new Error('no listener');
  t.match(decideRoute(secure, req({ authority: 'secure.example.com' })), { kind: 'https_redirect' });
});

t.test('redirect locations: prefix rewrite of the matched block, derived port, query kept', async (t) => {
  const l = listenerOn(snapFor(t), 8080);
  const vh = l?.routes.lookup('shop.example.com');
  if (!vh) throw new Error('no vhost');
  const r = req({ authority: 'shop.example.com', path: '/api/v1/x', query: 'q=1' });
  const m = matchRoute(vh, r);
  const a = m?.route.action as RouteActionRedirect;
  t.equal(redirectLocation(a, r, 8080, m?.prefix), 'http://shop.example.com:8080/v2/x?q=1');
  t.equal(
    redirectLocation(a, req({ authority: 'shop.example.com:80', path: '/v1' }), 80, '/v1'),
    'http://shop.example.com:80/v2',
    'on the default port the Host is kept as sent',
  );
  t.equal(
    redirectLocation(
      { kind: 'redirect', code: 301, scheme: 'https' } as RouteActionRedirect,
      req({ authority: 'a:80' }),
      80,
      undefined,
    ),
    'https://a/',
    "the old scheme's default port does not carry over",
  );
  t.equal(
    httpsRedirectLocation('secure.example.com:8443', '/p?x=1'),
    'https://secure.example.com:8443/p?x=1',
    'Envoy keeps the Host as sent, port included',
  );
  t.equal(httpsRedirectLocation('a', '/p?q=1'), 'https://a/p?q=1');
});

t.test('pickDestination follows the weights with the injected random source', async (t) => {
  const vh = listenerOn(snapFor(t), 8080)?.routes.lookup('shop.example.com');
  const route = vh?.routes.find((r: CompiledRoute) => r.name.endsWith('.1')) as CompiledRoute;
  const action = route.action as RouteActionRoute;
  t.equal(pickDestination(action, () => 0)?.host, 'a.default.svc.cluster.local');
  t.equal(pickDestination(action, () => 0.2499)?.host, 'a.default.svc.cluster.local');
  t.equal(pickDestination(action, () => 0.25)?.host, 'b.default.svc.cluster.local');
  t.equal(pickDestination(action, () => 0.9999)?.host, 'b.default.svc.cluster.local');
});

t.test('decideFault draws delay and abort independently', async (t) => {
  const vh = listenerOn(snapFor(t), 8080)?.routes.lookup('shop.example.com');
  const fault = vh?.routes.find((r: CompiledRoute) => r.fault)?.fault;
  if (!fault) throw new Error('no fault');
  t.same(
    decideFault(fault, () => 0),
    { delayMs: 2000, abort: { status: 503, percent: 10 } },
  );
  const seq = [0.4, 0.2];
  t.same(
    decideFault(fault, () => seq.shift() ?? 1),
    { delayMs: 2000, abort: undefined },
    'delay only',
  );
  t.equal(
    decideFault(fault, () => 0.99),
    undefined,
    'neither',
  );
});

t.test('decideCors: preflights, simple requests, unknown origins', async (t) => {
  const vh = listenerOn(snapFor(t), 8080)?.routes.lookup('shop.example.com');
  const cors = vh?.routes.find((r: CompiledRoute) => r.cors)?.cors;
  if (!cors) throw new Error('no cors');
  const pre = (origin: string) =>
    req({ method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } });
  t.same(decideCors(cors, pre('https://ok.example')), {
    kind: 'preflight',
    headers: [
      ['access-control-allow-origin', 'https://ok.example'],
      ['access-control-allow-methods', 'GET,POST'],
      ['access-control-allow-headers', 'x-a'],
      ['access-control-max-age', '3600'],
      ['access-control-allow-credentials', 'true'],
    ],
  });
  t.same(decideCors(cors, pre('https://evil.example')), { kind: 'none' }, "Istio's default: forwarded");
  t.same(
    decideCors({ ...cors, forwardUnmatchedPreflights: false }, pre('https://evil.example')),
    { kind: 'reject_preflight' },
    'unmatchedPreflights: IGNORE answers it here',
  );
  t.same(decideCors(cors, req({ headers: { origin: 'https://ok.example' } })), {
    kind: 'simple',
    headers: [
      ['access-control-allow-origin', 'https://ok.example'],
      ['access-control-allow-credentials', 'true'],
      ['access-control-expose-headers', 'x-b'],
    ],
  });
  t.same(decideCors(cors, req({ headers: { origin: 'https://evil.example' } })), { kind: 'none' });
  t.same(decideCors(cors, req()), { kind: 'none' }, 'no Origin');
});
