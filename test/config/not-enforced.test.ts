// config/not-enforced.ts: every resource or field that would change security or where (and how)
// traffic goes, but that courier does not enforce yet, is listed with its file, document,
// resource, field path and what happens instead; with a proxy identity, only what applies to that
// proxy. Security kinds load (never rejected), and `courier validate` prints each entry as a
// warning and still exits 0.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadConfig } from '../../dist/config/load.js';
import { countByKind, formatNotEnforced, notEnforced } from '../../dist/config/not-enforced.js';
import type { ProxyIdentity } from '../../dist/config/snapshot.js';
import { formatError } from '../../dist/config/types.js';
import { validateCommand } from '../../dist/pilot-agent/courier-cli.js';
import { COURIER, ROOT } from '../helpers/procs.js';

const ROUTER: ProxyIdentity = { mode: 'router', labels: { istio: 'ingressgateway' }, namespace: 'default' };
const SIDECAR: ProxyIdentity = {
  mode: 'sidecar',
  labels: { app: 'reviews' },
  namespace: 'default',
  outboundPort: 15001,
  inboundPort: 15006,
};

/** One document; `meta` is the YAML flow mapping of metadata. */
function doc(apiVersion: string, kind: string, spec: string, meta = '{name: r}'): string {
  return `apiVersion: ${apiVersion}\nkind: ${kind}\nmetadata: ${meta}\nspec:\n${spec
    .trim()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n')}\n`;
}
const net = (kind: string, spec: string, meta?: string) => doc('networking.istio.io/v1', kind, spec, meta);
const sec = (kind: string, spec: string, meta?: string) => doc('security.istio.io/v1', kind, spec, meta);

/** Load `docs` (one file, `c.yaml`) and render the not-enforced list as `courier validate` lines. */
function lines(t: Test, docs: string[], identity?: ProxyIdentity): string[] {
  const dir = t.testdir({ 'c.yaml': docs.join('---\n') });
  const r = loadConfig([dir], { displayBase: dir });
  t.same(r.errors.map(formatError), [], 'the config is valid');
  return notEnforced(r, identity).map(formatNotEnforced);
}

t.test('AuthorizationPolicy: listed for every action, saying requests are not checked', async (t) => {
  const got = lines(t, [
    sec(
      'AuthorizationPolicy',
      'action: DENY\nrules: [{to: [{operation: {paths: [/admin]}}]}]',
      '{name: deny}',
    ),
    sec('AuthorizationPolicy', 'selector: {matchLabels: {app: x}}', '{name: allow-nothing}'),
    sec('AuthorizationPolicy', 'rules: [{from: [{source: {namespaces: [a]}}]}]', '{name: allow}'),
    sec('AuthorizationPolicy', 'action: AUDIT\nrules: [{}]', '{name: audit}'),
    sec('AuthorizationPolicy', 'action: CUSTOM\nprovider: {name: ext-authz}\nrules: [{}]', '{name: custom}'),
  ]);
  const ap = (i: number, name: string, why: string) =>
    `c.yaml[${i}] AuthorizationPolicy/default/${name}: spec: AuthorizationPolicy is not enforced: requests are NOT checked against it (${why})`;
  t.same(got, [
    ap(0, 'deny', 'action DENY: requests it denies are let through'),
    ap(1, 'allow-nothing', 'action ALLOW: it allows nothing, yet every request is let through'),
    ap(2, 'allow', 'action ALLOW: requests it does not allow are let through'),
    ap(3, 'audit', 'action AUDIT: requests it matches are not audit-logged'),
    ap(4, 'custom', 'action CUSTOM: requests are not sent to the external authorizer "ext-authz"'),
  ]);
});

t.test('security policies: with an identity, only those that select this workload', async (t) => {
  const docs = [
    sec('AuthorizationPolicy', 'action: DENY\nrules: [{}]', '{name: ns-wide}'),
    sec('AuthorizationPolicy', 'action: DENY\nrules: [{}]', '{name: mesh-wide, namespace: istio-system}'),
    sec('AuthorizationPolicy', 'action: DENY\nrules: [{}]', '{name: elsewhere, namespace: shop}'),
    sec(
      'AuthorizationPolicy',
      'selector: {matchLabels: {app: reviews}}\naction: DENY\nrules: [{}]',
      '{name: reviews}',
    ),
    sec(
      'AuthorizationPolicy',
      'targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: gw}]',
      '{name: ref}',
    ),
    sec('RequestAuthentication', 'jwtRules: [{issuer: https://issuer.example}]', '{name: jwt}'),
    sec('RequestAuthentication', '{}', '{name: no-rules}'),
    sec('PeerAuthentication', 'mtls: {mode: STRICT}', '{name: strict}'),
    sec('PeerAuthentication', 'mtls: {mode: PERMISSIVE}', '{name: permissive}'),
    sec(
      'PeerAuthentication',
      'selector: {matchLabels: {app: reviews}}\nmtls: {mode: PERMISSIVE}\nportLevelMtls: {9080: {mode: STRICT}}',
      '{name: port}',
    ),
  ];
  const where = (l: string) => /^c\.yaml\[\d+\] (\S+): (\S+):/.exec(l)?.slice(1).join(' ');
  t.same(lines(t, docs).map(where), [
    'AuthorizationPolicy/default/ns-wide spec',
    'AuthorizationPolicy/istio-system/mesh-wide spec',
    'AuthorizationPolicy/shop/elsewhere spec',
    'AuthorizationPolicy/default/reviews spec',
    'AuthorizationPolicy/default/ref spec',
    'RequestAuthentication/default/jwt spec.jwtRules',
    'PeerAuthentication/default/strict spec.mtls.mode',
    'PeerAuthentication/default/port spec.portLevelMtls["9080"].mode',
  ]);
  t.same(
    lines(t, docs, SIDECAR).map(where),
    [
      'AuthorizationPolicy/default/ns-wide spec',
      'AuthorizationPolicy/istio-system/mesh-wide spec',
      'AuthorizationPolicy/default/reviews spec',
      'AuthorizationPolicy/default/ref spec',
      'RequestAuthentication/default/jwt spec.jwtRules',
      'PeerAuthentication/default/strict spec.mtls.mode',
      'PeerAuthentication/default/port spec.portLevelMtls["9080"].mode',
    ],
    'sidecar app=reviews in default: not the policy of namespace shop',
  );
  t.same(
    lines(t, docs, ROUTER).map(where),
    [
      'AuthorizationPolicy/default/ns-wide spec',
      'AuthorizationPolicy/istio-system/mesh-wide spec',
      'AuthorizationPolicy/default/ref spec',
      'RequestAuthentication/default/jwt spec.jwtRules',
    ],
    'router: no PeerAuthentication (gateways are not subject to it), not the app=reviews policy',
  );
  const [jwt] = lines(t, [docs[5] as string]);
  t.match(jwt, /JWTs are NOT validated; requests with invalid tokens are let through$/);
  const [strict] = lines(t, [docs[7] as string]);
  t.match(strict, /STRICT is not enforced yet: inbound plaintext requests are accepted/);
});

t.test('DestinationRule tls at every level, h2 upgrade, locality, tunnel, PROXY protocol', async (t) => {
  const got = lines(t, [
    net(
      'DestinationRule',
      `host: reviews
trafficPolicy:
  tls: {mode: SIMPLE}
  connectionPool: {http: {h2UpgradePolicy: UPGRADE}}
  loadBalancer: {localityLbSetting: {enabled: true}}
  tunnel: {protocol: CONNECT, targetHost: proxy.example, targetPort: 3128}
  proxyProtocol: {version: V2}
  portLevelSettings:
  - port: {number: 9443}
    tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem}
  - port: {number: 9080}
    tls: {mode: DISABLE}
subsets:
- name: v1
  labels: {version: v1}
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 9080}
      tls: {mode: SIMPLE}
- name: v2
  labels: {version: v2}
  trafficPolicy: {tls: {mode: DISABLE}}`,
      '{name: reviews}',
    ),
    net(
      'DestinationRule',
      'host: ratings\ntrafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}',
      '{name: ratings}',
    ),
  ]);
  const r = 'c.yaml[0] DestinationRule/default/reviews';
  t.same(got, [
    `${r}: spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: UPGRADE is not enforced yet: requests to reviews are sent as HTTP/1.1, not HTTP/2`,
    `${r}: spec.trafficPolicy.loadBalancer.localityLbSetting: locality load balancing is not enforced yet: endpoints of reviews are picked regardless of locality`,
    `${r}: spec.trafficPolicy.tunnel: tunnel is not enforced yet: traffic to reviews connects directly, not through proxy.example:3128`,
    `${r}: spec.trafficPolicy.proxyProtocol: PROXY protocol is not sent yet: reviews receives no PROXY header`,
    `${r}: spec.subsets[0].trafficPolicy.tls.mode: ISTIO_MUTUAL is not enforced yet: traffic to reviews subset v1 leaves in plaintext`,
  ]);
});

t.test(
  'DestinationRule workloadSelector and exportTo: reported unless they hold for this proxy',
  async (t) => {
    const docs = [
      net('DestinationRule', 'host: a\nworkloadSelector: {matchLabels: {app: reviews}}', '{name: ws}'),
      net('DestinationRule', 'host: b\nexportTo: ["."]', '{name: here}'),
      net('DestinationRule', 'host: c\nexportTo: ["."]', '{name: there, namespace: shop}'),
      net('DestinationRule', 'host: d\nexportTo: ["*"]', '{name: all}'),
    ];
    const paths = (ls: string[]) => ls.map((l) => /^c\.yaml\[\d+\] (\S+: \S+):/.exec(l)?.[1]);
    t.same(paths(lines(t, docs)), [
      'DestinationRule/default/ws: spec.workloadSelector',
      'DestinationRule/default/here: spec.exportTo',
      'DestinationRule/shop/there: spec.exportTo',
    ]);
    t.same(
      paths(lines(t, docs, SIDECAR)),
      ['DestinationRule/shop/there: spec.exportTo'],
      'app=reviews in default: the selector and "." hold; shop\'s rule is not exported here',
    );
    t.match(lines(t, docs, ROUTER), [
      /spec\.workloadSelector: workloadSelector is not enforced yet: this rule applies to every proxy/,
      /not exported there/,
    ]);
  },
);

const SERVERS = `selector: {istio: ingressgateway}
servers:
- {port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"], tls: {httpsRedirect: true}}
- {port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, credentialName: c}}
- {port: {number: 8443, name: pass, protocol: HTTPS}, hosts: ["*"], tls: {mode: PASSTHROUGH}}
- {port: {number: 9443, name: tls, protocol: TLS}, hosts: ["*"], tls: {mode: MUTUAL, credentialName: c}}
- {port: {number: 31400, name: tcp, protocol: TCP}, hosts: ["*"]}
- {port: {number: 9444, name: two, protocol: HTTPS}, hosts: ["*"], tls: {mode: SIMPLE, tlsCertificates: [{serverCertificate: /a, privateKey: /b}]}}
- {port: {number: 8444, name: im, protocol: HTTPS}, hosts: ["*"], tls: {mode: ISTIO_MUTUAL}}
- {port: {number: 15443, name: ap, protocol: TLS}, hosts: ["*"], tls: {mode: AUTO_PASSTHROUGH}}
- {port: {number: 5353, name: udp, protocol: UDP}, hosts: ["*"]}
- {port: {number: 27017, name: mongo, protocol: MONGO}, hosts: ["*"]}
- {port: {number: 8081, name: h2, protocol: HTTP2}, hosts: ["*"]}
- {port: {number: 9090, name: grpc, protocol: GRPC}, hosts: ["*"]}
- {port: {number: 9091, name: grpc-web, protocol: GRPC-WEB}, hosts: ["*"]}`;

t.test(
  'Gateway servers not served (or served as HTTP/1.1), for the routers that select them; HTTPS, TLS and TCP are served',
  async (t) => {
    const docs = [net('Gateway', SERVERS, '{name: gw}')];
    const g = 'c.yaml[0] Gateway/default/gw';
    const expected = [
      `${g}: spec.servers[5].tls.tlsCertificates: several certificates per server are not served yet: without serverCertificate/privateKey this server has no certificate and its connections are refused`,
      `${g}: spec.servers[6].port.protocol: HTTPS (TLS ISTIO_MUTUAL) is not served yet: the gateway has no workload certificate, so connections to this server on port 8444 are refused`,
      `${g}: spec.servers[7].port.protocol: TLS (TLS AUTO_PASSTHROUGH) is not served yet: connections on port 15443 get no filter chain from it (no SNI-encoded clusters)`,
      `${g}: spec.servers[8].port.protocol: UDP is not served yet: nothing listens for this server on port 5353`,
      `${g}: spec.servers[10].port.protocol: HTTP2 is served as HTTP/1.1: HTTP/2 clients on port 8081 are not understood`,
      `${g}: spec.servers[11].port.protocol: GRPC is served as HTTP/1.1: HTTP/2 clients on port 9090 (every gRPC client) are not understood`,
      `${g}: spec.servers[12].port.protocol: GRPC-WEB is served as plain HTTP/1.1: gRPC-Web requests on port 9091 reach the upstream as they are, not translated to gRPC`,
    ];
    t.same(lines(t, docs), expected);
    t.same(lines(t, docs, ROUTER), expected, 'the router the selector matches');
    t.same(lines(t, docs, { ...ROUTER, labels: { istio: 'egressgateway' } }), [], 'another router');
    t.same(lines(t, docs, SIDECAR), [], 'a sidecar serves no Gateway');
  },
);

t.test('VirtualService tcp and tls routes and delegation, where the VS applies', async (t) => {
  const docs = [
    net(
      'Gateway',
      'selector: {istio: ingressgateway}\nservers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]',
      '{name: gw}',
    ),
    net(
      'VirtualService',
      `hosts: [db.example.com]
gateways: [gw]
tcp: [{route: [{destination: {host: db.example.com, port: {number: 5432}}}]}]
tls: [{match: [{sniHosts: [db.example.com]}], route: [{destination: {host: db.example.com}}]}]
http:
- route: [{destination: {host: web}}]
- delegate: {name: child, namespace: team}`,
      '{name: edge}',
    ),
    net(
      'VirtualService',
      'hosts: [reviews]\ntcp: [{route: [{destination: {host: reviews}}]}]',
      '{name: mesh}',
    ),
  ];
  const e = 'c.yaml[1] VirtualService/default/edge';
  const m = 'c.yaml[2] VirtualService/default/mesh';
  const edge = [
    `${e}: spec.http[1].delegate: delegation is not served yet: requests matching this route are answered 503 instead of taking the routes of team/child`,
  ];
  const mesh = `${m}: spec.tcp: tcp routes are not served at sidecars yet: TCP connections to reviews are not routed by them`;
  t.same(lines(t, docs), [...edge, mesh]);
  t.same(
    lines(t, docs, ROUTER),
    edge,
    'the router: the VS bound to its gateway (its tcp and tls routes are served)',
  );
  t.same(lines(t, docs, SIDECAR), [mesh], 'a sidecar: the mesh VS');
});

t.test('ServiceEntry ports whose protocol is not spoken upstream', async (t) => {
  const got = lines(t, [
    net(
      'ServiceEntry',
      `hosts: [api.example.com]
location: MESH_EXTERNAL
resolution: DNS
ports:
- {number: 80, name: http, protocol: HTTP}
- {number: 443, name: https, protocol: HTTPS}
- {number: 8443, name: tls, protocol: TLS}
- {number: 5432, name: tcp, protocol: TCP}
- {number: 9090, name: grpc, protocol: GRPC}
- {number: 8081, name: h2, protocol: HTTP2}
- {number: 8000, name: plain}`,
      '{name: api}',
    ),
  ]);
  const s = 'c.yaml[0] ServiceEntry/default/api';
  t.same(got, [
    `${s}: spec.ports[1].protocol: HTTPS is not served yet: sidecars do not pass connections to api.example.com:443 through as TLS; requests routed there are sent as plaintext HTTP/1.1`,
    `${s}: spec.ports[2].protocol: TLS is not served yet: sidecars do not pass connections to api.example.com:8443 through as TLS; requests routed there are sent as plaintext HTTP/1.1`,
    `${s}: spec.ports[3].protocol: TCP is not served yet: sidecars do not proxy connections to api.example.com:5432 as TCP; only HTTP/1.1 requests are routed there`,
    `${s}: spec.ports[4].protocol: upstream GRPC is not spoken yet: requests to api.example.com:9090 are sent as HTTP/1.1, not HTTP/2`,
    `${s}: spec.ports[5].protocol: upstream HTTP2 is not spoken yet: requests to api.example.com:8081 are sent as HTTP/1.1, not HTTP/2`,
  ]);
});

t.test('Sidecar inbound TLS, unused ingress endpoints and the egress proxy', async (t) => {
  const docs = [
    net(
      'Sidecar',
      `workloadSelector: {labels: {app: reviews}}
ingress:
- port: {number: 9080, name: http, protocol: HTTP}
  defaultEndpoint: 127.0.0.1:8080
  tls: {mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}
- port: {number: 9090, name: admin, protocol: HTTP}
  defaultEndpoint: 127.0.0.1:8090
outboundTrafficPolicy:
  mode: ALLOW_ANY
  egressProxy: {host: egress.example.com, port: {number: 3128}}`,
      '{name: reviews}',
    ),
  ];
  const s = 'c.yaml[0] Sidecar/default/reviews';
  const expected = [
    `${s}: spec.ingress[0].tls: inbound TLS is not served yet: inbound traffic for port 9080 is accepted in plaintext`,
    `${s}: spec.ingress[1].defaultEndpoint: is not used: every inbound request goes to 127.0.0.1:8080, not 127.0.0.1:8090`,
    `${s}: spec.outboundTrafficPolicy.egressProxy: egressProxy is not enforced yet: traffic to hosts outside the registry goes directly, not through egress.example.com`,
  ];
  t.same(lines(t, docs), expected);
  t.same(lines(t, docs, SIDECAR), expected, 'the sidecar it selects');
  t.same(lines(t, docs, { ...SIDECAR, labels: { app: 'ratings' } }), [], 'another workload');
  t.same(lines(t, docs, ROUTER), [], 'a router uses no Sidecar');
  t.match(
    lines(t, docs, { ...SIDECAR, appPort: 8090 }),
    [
      /ingress\[0\]\.tls/,
      /spec\.ingress\[0\]\.defaultEndpoint: is not used: every inbound request goes to 127\.0\.0\.1:8090, not 127\.0\.0\.1:8080/,
      /egressProxy/,
    ],
    '--app-port wins over every defaultEndpoint',
  );
});

t.test(
  'kinds courier does not load that change traffic are listed; a plain config lists nothing',
  async (t) => {
    const got = lines(t, [
      doc('networking.istio.io/v1alpha3', 'EnvoyFilter', '{}', '{name: lua, namespace: istio-system}'),
      doc('extensions.istio.io/v1alpha1', 'WasmPlugin', '{}', '{name: wasm}'),
      doc('gateway.networking.k8s.io/v1', 'HTTPRoute', '{}', '{name: route}'),
      doc('gateway.networking.k8s.io/v1', 'Gateway', '{}', '{name: k8s-gw}'),
      doc('telemetry.istio.io/v1', 'Telemetry', '{}', '{name: tel}'),
      doc('networking.istio.io/v1', 'ProxyConfig', '{}', '{name: pc}'),
    ]);
    t.same(got, [
      'c.yaml[0] EnvoyFilter/istio-system/lua: EnvoyFilter is not applied: its patches do not change this proxy',
      'c.yaml[1] WasmPlugin/default/wasm: WasmPlugin is not run: requests do not pass through its filter',
      'c.yaml[2] HTTPRoute/default/route: HTTPRoute is not served yet: requests are not routed by it',
      'c.yaml[3] Gateway/default/k8s-gw: Gateway (Gateway API) is not served yet: none of its listeners is opened',
    ]);
    const plain = [
      net(
        'Gateway',
        'selector: {istio: ingressgateway}\nservers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]',
        '{name: gw}',
      ),
      net(
        'VirtualService',
        'hosts: ["*"]\ngateways: [gw]\nhttp: [{route: [{destination: {host: web}}]}]',
        '{name: vs}',
      ),
      net(
        'ServiceEntry',
        'hosts: [web.default.svc.cluster.local]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\nendpoints: [{address: 127.0.0.1}]',
        '{name: web}',
      ),
      net(
        'DestinationRule',
        'host: web\ntrafficPolicy: {tls: {mode: DISABLE}, connectionPool: {http: {h2UpgradePolicy: DO_NOT_UPGRADE}}}',
        '{name: web}',
      ),
    ];
    t.same(lines(t, plain), [], 'no false alarms');
    t.same(lines(t, plain, ROUTER), []);
  },
);

t.test('countByKind: the gauge values', async (t) => {
  const dir = t.testdir({
    'c.yaml': [
      sec('AuthorizationPolicy', 'action: DENY\nrules: [{}]'),
      net(
        'DestinationRule',
        'host: a\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\nsubsets: [{name: v1, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}]',
      ),
    ].join('---\n'),
  });
  t.same(
    [...countByKind(notEnforced(loadConfig([dir])))],
    [
      ['AuthorizationPolicy', 1],
      ['DestinationRule', 2],
    ],
  );
});

t.test('security kinds load in v1 and v1beta1 and are never rejected', async (t) => {
  const dir = t.testdir({
    'ap.yaml': [
      doc('security.istio.io/v1beta1', 'AuthorizationPolicy', 'action: DENY\nrules: [{}]', '{name: beta}'),
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: nospec}\n',
      doc('security.istio.io/v1', 'AuthorizationPolicy', 'action: DENYY\nacton: DENY', '{name: typo}'),
      doc('security.istio.io/v1alpha1', 'PeerAuthentication', 'mtls: {mode: STRICT}', '{name: old}'),
      doc('security.istio.io/v1', 'AuthorizationPolicy', '{}', '{name: beta}'),
    ].join('---\n'),
  });
  const r = loadConfig([dir], { displayBase: dir });
  t.same(r.errors, [], 'no errors: the directory still loads');
  t.same(
    r.resources.map((x) => `${x.kind}/${x.name}`),
    [
      'AuthorizationPolicy/beta',
      'AuthorizationPolicy/nospec',
      'AuthorizationPolicy/typo',
      'PeerAuthentication/old',
      'AuthorizationPolicy/beta',
    ],
  );
  t.same(r.notes, [], 'none is a note any more');
  t.match(r.warnings.map(formatError), [
    /ap\.yaml\[2\] AuthorizationPolicy\/default\/typo: spec\.action: unsupported value "DENYY"/,
    /ap\.yaml\[2\] AuthorizationPolicy\/default\/typo: spec\.acton: unknown field "acton" \(did you mean "action"\?\)/,
    /ap\.yaml\[3\] PeerAuthentication\/default\/old: apiVersion: unsupported version "security\.istio\.io\/v1alpha1"/,
    /ap\.yaml\[4\] AuthorizationPolicy\/default\/beta: metadata\.name: duplicate resource/,
  ]);
  t.match(notEnforced(r).map(formatNotEnforced), [
    /beta: spec: .*action DENY/,
    /nospec: spec: .*it allows nothing/,
    /typo: spec: .*action DENYY/,
    /old: spec\.mtls\.mode: STRICT is not enforced yet/,
    /beta: spec: .*it allows nothing/,
  ]);
});

const CONFIG = [
  sec('AuthorizationPolicy', 'action: DENY\nrules: [{}]', '{name: deny-all}'),
  net('DestinationRule', 'host: reviews\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL}}', '{name: reviews}'),
  net('Gateway', SERVERS, '{name: gw}'),
].join('---\n');

t.test('courier validate prints each as a warning and exits 0', async (t) => {
  const dir = t.testdir({ 'dr.yaml': CONFIG });
  const out: string[] = [];
  const err: string[] = [];
  t.equal(validateCommand([dir], { out: (l) => out.push(l), err: (l) => err.push(l) }), 0);
  t.same(out, [], 'no errors');
  const warnings = err.filter((l) => l.startsWith('warning: '));
  t.equal(warnings.length, 9, 'the policy, the rule and seven servers');
  t.ok(
    warnings.includes(
      `warning: ${join(dir, 'dr.yaml')}[1] DestinationRule/default/reviews: spec.trafficPolicy.tls.mode: ISTIO_MUTUAL is not enforced yet: traffic to reviews leaves in plaintext`,
    ),
    { warnings },
  );
  t.match(err[err.length - 1], /^3 resource\(s\) in 1 file\(s\) valid$/);

  // The bin, as a user runs it.
  const r = spawnSync(process.execPath, [COURIER, 'validate', dir], { encoding: 'utf8', cwd: ROOT });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '');
  t.match(
    r.stderr,
    /^warning: \S*dr\.yaml\[0\] AuthorizationPolicy\/default\/deny-all: spec: AuthorizationPolicy is not enforced: requests are NOT checked against it \(action DENY: requests it denies are let through\)$/m,
  );
  t.match(
    r.stderr,
    /^warning: \S*dr\.yaml\[2\] Gateway\/default\/gw: spec\.servers\[11\]\.port\.protocol: GRPC is served as HTTP\/1\.1/m,
  );
});

t.test('a server on a port taken by a server of another protocol is reported as not served', async (t) => {
  const gw = net(
    'Gateway',
    `selector: {istio: ingressgateway}
servers:
- port: {number: 8443, name: https, protocol: HTTPS}
  hosts: [a.example.com]
  tls: {mode: SIMPLE, credentialName: a}
- port: {number: 8443, name: http, protocol: HTTP}
  hosts: [b.example.com]
- port: {number: 8080, name: http-c, protocol: HTTP}
  hosts: [c.example.com]
- port: {number: 8080, name: grpc, protocol: GRPC}
  hosts: [d.example.com]`,
    '{name: gw}',
  );
  const got = lines(t, [gw], ROUTER).filter((l) => l.includes('already taken'));
  t.same(got, [
    'c.yaml[0] Gateway/default/gw: spec.servers[1].port: port 8443 is already taken by a HTTPS server: this HTTP server is not served (servers sharing a port must share a protocol)',
  ]);
});
