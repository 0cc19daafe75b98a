// compile() in sidecar mode: the outbound listener's Host forms, which VirtualServices and which
// of their routes apply to this proxy, the catch-all virtual host, and the inbound listener.

import t from 'tap';
import { compile } from '../../dist/config/compile/index.js';
import {
  compileYaml,
  dispatch,
  load,
  outbound,
  req,
  routeFor,
  SIDECAR,
  service,
} from './compile-fixtures.js';

const reviews = (subset = '', port = 9080) => `outbound|${port}|${subset}|reviews.default.svc.cluster.local`;

const REGISTRY =
  service(
    'reviews',
    'default',
    [{ number: 9080, name: 'http' }],
    [
      { address: '10.0.0.1', labels: { version: 'v1' } },
      { address: '10.0.0.2', labels: { version: 'v2' } },
    ],
  ) +
  '---\n' +
  service('web', 'default', [
    { number: 8080, name: 'http-alt' },
    { number: 80, name: 'http' },
  ]) +
  '---\n' +
  service('details', 'bookinfo', [{ number: 9080, name: 'http' }]) +
  '---\n' +
  service('ratings', 'default', [{ number: 8080, name: 'http' }]) +
  `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
    - name: v1
      labels: { version: v1 }
    - name: v2
      labels: { version: v2 }
    - name: v3
      labels: { version: v3 }
---
`;

t.test('outbound domains: every Istio Host form, bare forms only for the default port', async (t) => {
  const snap = compileYaml(t, REGISTRY, SIDECAR);
  const l = outbound(snap);
  t.equal(l.port, 15001, 'default outbound port');
  t.equal(l.address, '127.0.0.1');
  const vh = l.routes.virtualHosts.find((v) => v.name === 'reviews.default.svc.cluster.local:9080');
  t.strictSame(
    [...(vh?.domains ?? [])].sort(),
    [
      'reviews',
      'reviews.default',
      'reviews.default.svc',
      'reviews.default.svc.cluster.local',
      'reviews.default.svc.cluster.local:9080',
      'reviews.default.svc.cluster.local:9080'.replace('.svc.cluster.local', ''),
      'reviews.default.svc:9080',
      'reviews:9080',
    ].sort(),
  );
  for (const h of [
    'reviews',
    'reviews:9080',
    'reviews.default',
    'reviews.default:9080',
    'reviews.default.svc',
    'reviews.default.svc:9080',
    'reviews.default.svc.cluster.local',
    'Reviews.Default.svc.cluster.local:9080',
  ])
    t.equal(dispatch(l, h), reviews(), `${h} reaches reviews`);
  t.equal(dispatch(l, 'reviews:9081'), 'PASSTHROUGH', 'an undeclared port is not reviews');

  // Two ports: bare forms go to the default port (80 here, though 8080 is listed first).
  t.equal(dispatch(l, 'web'), 'outbound|80||web.default.svc.cluster.local');
  t.equal(dispatch(l, 'web:80'), 'outbound|80||web.default.svc.cluster.local');
  t.equal(dispatch(l, 'web:8080'), 'outbound|8080||web.default.svc.cluster.local');
  t.equal(dispatch(l, 'web.default.svc.cluster.local'), 'outbound|80||web.default.svc.cluster.local');
  const web8080 = l.routes.virtualHosts.find((v) => v.name === 'web.default.svc.cluster.local:8080');
  t.notOk(web8080?.domains.includes('web'), 'no bare form on the non-default port');

  // Another namespace: no bare short name, namespace-qualified forms work.
  t.equal(dispatch(l, 'details'), 'PASSTHROUGH', '`details` is not a name in default');
  t.equal(dispatch(l, 'details.bookinfo'), 'outbound|9080||details.bookinfo.svc.cluster.local');
  t.equal(dispatch(l, 'details.bookinfo.svc:9080'), 'outbound|9080||details.bookinfo.svc.cluster.local');
  const fromBookinfo = outbound(compileYaml(t, REGISTRY, { ...SIDECAR, namespace: 'bookinfo' }));
  t.equal(dispatch(fromBookinfo, 'details'), 'outbound|9080||details.bookinfo.svc.cluster.local');
  t.equal(dispatch(fromBookinfo, 'reviews'), 'PASSTHROUGH');
});

t.test('outboundPort from the identity', async (t) => {
  const snap = compileYaml(t, REGISTRY, { ...SIDECAR, outboundPort: 15101 });
  t.equal(outbound(snap).port, 15101);
});

t.test('a VirtualService bound only to a gateway does not apply in sidecars', async (t) => {
  const vs = (name: string, gateways: string, subset: string) => `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}
spec:
  hosts: [reviews]
  ${gateways}
  http:
    - route:
        - destination:
            host: reviews
            subset: ${subset}
`;
  const gwOnly = compileYaml(t, REGISTRY + vs('gw', 'gateways: [istio-system/gw]', 'v2'), SIDECAR);
  t.equal(dispatch(outbound(gwOnly), 'reviews'), reviews(), 'default route, not the gateway VS');
  const mesh = compileYaml(t, REGISTRY + vs('m', 'gateways: [mesh, istio-system/gw]', 'v2'), SIDECAR);
  t.equal(dispatch(outbound(mesh), 'reviews'), reviews('v2'), 'mesh listed: applies');
  const omitted = compileYaml(t, REGISTRY + vs('o', '', 'v1'), SIDECAR);
  t.equal(dispatch(outbound(omitted), 'reviews'), reviews('v1'), 'gateways omitted means mesh');
});

t.test('sourceLabels and sourceNamespace select routes by proxy identity', async (t) => {
  const yaml = `${REGISTRY}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
    - match:
        - sourceLabels:
            app: productpage
            version: v2
      route:
        - destination: { host: reviews, subset: v2 }
    - match:
        - sourceNamespace: bookinfo
      route:
        - destination: { host: reviews, subset: v3 }
    - route:
        - destination: { host: reviews, subset: v1 }
`;
  const routes = (id: typeof SIDECAR) => {
    const vh = outbound(compileYaml(t, yaml, id)).routes.lookup('reviews.default.svc.cluster.local');
    return vh?.routes.map((r) => r.name);
  };
  t.strictSame(routes(SIDECAR), ['default.reviews.2'], 'productpage v1: only the plain route is compiled');
  t.strictSame(
    routes({ ...SIDECAR, labels: { app: 'productpage', version: 'v2', extra: 'x' } }),
    ['default.reviews.0'],
    'labels are a subset: the v2 route applies; with no runtime condition left it is a catch-all',
  );
  t.strictSame(routes({ ...SIDECAR, namespace: 'bookinfo' }), ['default.reviews.1'], 'sourceNamespace');
  t.strictSame(
    routes({ ...SIDECAR, labels: { app: 'productpage' } }),
    ['default.reviews.2'],
    'a missing label does not match',
  );
  const v2 = outbound(compileYaml(t, yaml, { ...SIDECAR, labels: { app: 'productpage', version: 'v2' } }));
  t.equal(dispatch(v2, 'reviews.default'), reviews('v2'));
});

t.test('match gateways and port select routes in a sidecar', async (t) => {
  const snap = compileYaml(
    t,
    `${REGISTRY}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: web
spec:
  hosts: [web]
  gateways: [mesh, istio-system/gw]
  http:
    - match:
        - gateways: [istio-system/gw]
      route:
        - destination: { host: gateway-only.example.org, port: { number: 80 } }
    - match:
        - port: 8080
      route:
        - destination: { host: alt.example.org, port: { number: 80 } }
    - route:
        - destination: { host: web }
`,
    SIDECAR,
  );
  const l = outbound(snap);
  t.equal(
    dispatch(l, 'web:80'),
    'outbound|80||web.default.svc.cluster.local',
    'gateway and 8080 blocks dropped',
  );
  t.equal(dispatch(l, 'web:8080'), 'outbound|80||alt.example.org', 'port 8080 block kept on 8080');
  t.strictSame(
    l.routes.lookup('web:8080')?.routes.map((r) => r.name),
    ['default.web.1'],
    'port block has no matcher left: it is a catch-all and later routes are not generated',
  );
});

t.test('a catch-all block for another gateway does not end the route list', async (t) => {
  const snap = compileYaml(
    t,
    `${REGISTRY}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  gateways: [mesh, istio-system/gw]
  http:
    - match:
        - gateways: [istio-system/gw]
        - headers:
            end-user: { exact: jason }
      route:
        - destination: { host: reviews, subset: v2 }
    - route:
        - destination: { host: reviews, subset: v1 }
`,
    SIDECAR,
  );
  const l = outbound(snap);
  t.equal(dispatch(l, 'reviews', { headers: { 'end-user': 'jason' } }), reviews('v2'));
  t.equal(dispatch(l, 'reviews', { headers: {} }), reviews('v1'), 'the second route still exists');
});

t.test('egress-gateway pattern: mesh block routes to the egress gateway', async (t) => {
  const snap = compileYaml(
    t,
    `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: cnn
spec:
  hosts: [edition.cnn.com]
  ports:
    - { number: 80, name: http-port, protocol: HTTP }
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: direct-cnn-through-egress-gateway
spec:
  hosts: [edition.cnn.com]
  gateways: [istio-egressgateway, mesh]
  http:
    - match:
        - gateways: [mesh]
          port: 80
      route:
        - destination:
            host: istio-egressgateway.istio-system.svc.cluster.local
            subset: cnn
            port: { number: 80 }
    - match:
        - gateways: [istio-egressgateway]
          port: 80
      route:
        - destination:
            host: edition.cnn.com
            port: { number: 80 }
`,
    SIDECAR,
  );
  t.equal(
    dispatch(outbound(snap), 'edition.cnn.com'),
    'outbound|80|cnn|istio-egressgateway.istio-system.svc.cluster.local',
  );
});

t.test('destination without port: single-port service uses its port, else the listener port', async (t) => {
  const snap = compileYaml(
    t,
    `${REGISTRY}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
    - match:
        - uri: { prefix: /ratings }
      route:
        - destination: { host: ratings }
      mirror: { host: ratings }
    - route:
        - destination: { host: web }
`,
    SIDECAR,
  );
  const vh = outbound(snap).routes.lookup('reviews');
  t.equal(
    dispatch(outbound(snap), 'reviews', { path: '/ratings/1' }),
    'outbound|8080||ratings.default.svc.cluster.local',
    'ratings has only 8080: not the 9080 of the listener',
  );
  t.equal(vh?.routes[0]?.mirrors[0]?.cluster, 'outbound|8080||ratings.default.svc.cluster.local');
  t.ok(snap.clusters.has('outbound|8080||ratings.default.svc.cluster.local'));
  t.equal(
    dispatch(outbound(snap), 'reviews', { path: '/x' }),
    'outbound|9080||web.default.svc.cluster.local',
    'multi-port web: Istio uses the listener port',
  );
});

t.test('Sidecar outboundTrafficPolicy: ALLOW_ANY passthrough or REGISTRY_ONLY block', async (t) => {
  const none = outbound(compileYaml(t, REGISTRY, SIDECAR));
  t.equal(none.routes.lookup('unknown.example.com')?.name, 'allow_any', 'mesh default is ALLOW_ANY');
  t.equal(dispatch(none, 'unknown.example.com'), 'PASSTHROUGH');
  t.equal(dispatch(none, 'reviews'), reviews(), 'the fallback does not shadow known hosts');

  const sidecars = `---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: productpage
spec:
  workloadSelector:
    labels: { app: productpage }
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
spec:
  egress:
    - hosts: ["./*"]
  outboundTrafficPolicy:
    mode: ALLOW_ANY
`;
  const pp = outbound(compileYaml(t, REGISTRY + sidecars, SIDECAR));
  t.equal(pp.routes.lookup('unknown.example.com')?.name, 'block_all');
  t.equal(dispatch(pp, 'unknown.example.com'), 'BLOCK', 'selected Sidecar: REGISTRY_ONLY');
  t.equal(dispatch(pp, 'details.bookinfo'), 'outbound|9080||details.bookinfo.svc.cluster.local');
  const other = outbound(compileYaml(t, REGISTRY + sidecars, { ...SIDECAR, labels: { app: 'reviews' } }));
  t.equal(dispatch(other, 'unknown.example.com'), 'PASSTHROUGH', 'namespace default Sidecar: ALLOW_ANY');
  t.equal(dispatch(other, 'details.bookinfo'), 'PASSTHROUGH', 'egress ./* hides bookinfo services');
  t.equal(dispatch(other, 'reviews'), reviews(), 'egress ./* keeps default services');

  const root = outbound(
    compileYaml(
      t,
      `${REGISTRY}---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
  namespace: istio-system
spec:
  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
`,
      SIDECAR,
    ),
  );
  t.equal(dispatch(root, 'unknown.example.com'), 'BLOCK', 'root-namespace Sidecar is the mesh default');
});

t.test('inbound listener forwards to the app port', async (t) => {
  const snap = compileYaml(t, REGISTRY, { ...SIDECAR, appPort: 9080, inboundPort: 15106 });
  const inbound = snap.listeners.find((l) => l.kind === 'inbound');
  t.equal(inbound?.port, 15106);
  t.equal(inbound?.address, '0.0.0.0');
  t.equal(dispatch(inbound, 'anything.example.com:9080'), 'inbound|9080||');
  const c = snap.clusters.get('inbound|9080||');
  t.strictSame(
    c?.endpoints.map((e) => `${e.address}:${e.port}`),
    ['127.0.0.1:9080'],
  );
  t.equal(c?.serviceName, 'productpage');
  t.notOk(
    compileYaml(t, REGISTRY, SIDECAR).listeners.some((l) => l.kind === 'inbound'),
    'no app port, no inbound listener',
  );
  const fromSidecar = compile(
    load(t, {
      'sc.yaml': `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
spec:
  ingress:
    - port: { number: 9080, protocol: HTTP, name: http }
      defaultEndpoint: 127.0.0.1:8080
`,
    }),
    SIDECAR,
  );
  const fromSidecarInbound = fromSidecar.listeners.find((l) => l.kind === 'inbound');
  t.equal(fromSidecarInbound?.port, 15006, 'default inbound port');
  t.equal(dispatch(fromSidecarInbound, 'x'), 'inbound|8080||', 'app port from ingress defaultEndpoint');
  t.ok(fromSidecar.clusters.has('inbound|8080||'));
});

t.test('a VS host with no service behind it still routes on port 80', async (t) => {
  const snap = compileYaml(
    t,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ext
spec:
  hosts: [api.example.com]
  http:
    - route:
        - destination: { host: backend.example.org, port: { number: 8000 } }
`,
    SIDECAR,
  );
  const l = outbound(snap);
  t.equal(dispatch(l, 'api.example.com'), 'outbound|8000||backend.example.org');
  t.equal(dispatch(l, 'api.example.com:80'), 'outbound|8000||backend.example.org');
  t.equal(routeFor(l.routes.lookup('api.example.com'), req())?.virtualService, 'default/ext');
});

t.test('a wildcard ServiceEntry admits its hosts and a VirtualService on one of them applies', async (t) => {
  const wild = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: wild
spec:
  hosts: ["*.example.com"]
  location: MESH_EXTERNAL
  ports: [{ number: 80, name: http, protocol: HTTP }, { number: 8080, name: http-alt, protocol: HTTP }]
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: api
spec:
  hosts: [api.example.com]
  http:
    - fault: { abort: { httpStatus: 418, percentage: { value: 100 } } }
      route: [{ destination: { host: api.example.com } }]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: default
spec:
  outboundTrafficPolicy: { mode: REGISTRY_ONLY }
`;
  const l = outbound(compileYaml(t, wild, SIDECAR));
  t.equal(dispatch(l, 'www.example.com'), 'outbound|80||*.example.com', 'REGISTRY_ONLY admits the wildcard');
  t.equal(dispatch(l, 'www.example.com:8080'), 'outbound|8080||*.example.com', 'on each of its ports');
  t.equal(dispatch(l, 'other.org'), 'BLOCK', 'and nothing else');
  const api = routeFor(l.routes.lookup('api.example.com'), req());
  t.equal(api?.virtualService, 'default/api', "the VirtualService's host is more specific than the wildcard");
  t.equal(api?.fault?.abort?.status, 418);
  t.equal(
    dispatch(l, 'api.example.com:8080'),
    'outbound|8080||*.example.com',
    'on the wildcard service port',
  );

  const hidden = outbound(
    compileYaml(t, `${wild}  egress: [{ hosts: ["./reviews.default.svc.cluster.local"] }]\n`, SIDECAR),
  );
  t.equal(dispatch(hidden, 'www.example.com'), 'BLOCK', 'a Sidecar egress that hides the wildcard hides it');
  t.equal(dispatch(hidden, 'api.example.com'), 'BLOCK', 'and the VirtualService hosts it covers');
});
