// Unknown fields are warnings, as Kubernetes' default field validation reports them for CRDs: the
// document still loads, and the warning names file, document, resource and field path
// (`doc.yaml[0] VirtualService/default/r: spec.http[0].rout: unknown field "rout" ...`).
// Real Istio config (the samples, the examples, the deploy manifests) must produce none.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../../dist/config/load.js';
import { formatError } from '../../dist/config/types.js';
import { ROOT } from '../helpers/procs.js';

const SAMPLES = join(ROOT, 'test', 'fixtures', 'istio');

function load(t: Test, files: Record<string, string>) {
  const dir = t.testdir(files);
  const r = loadConfig([dir], { displayBase: dir });
  return {
    errors: r.errors.map(formatError),
    warnings: r.warnings.map(formatError),
    resources: r.resources,
  };
}

const unknown = (lines: string[]) => lines.filter((l) => l.includes('unknown field'));

/** A document with `metadata: {name: r}` and the given spec, written as YAML below `spec:`. */
function doc(kind: string, spec: string, extra = ''): string {
  const body = spec
    .trim()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  return `apiVersion: networking.istio.io/v1\nkind: ${kind}\nmetadata:\n  name: r\n${extra}spec:\n${body}\n`;
}

// ---------------------------------------------------------------- no false positives

t.test('the Istio samples (recursively) have no unknown fields', async (t) => {
  const r = loadConfig([SAMPLES], { duplicates: 'warning' });
  t.same(r.errors.map(formatError), []);
  t.ok(r.resources.length >= 25, `${r.resources.length} resources checked`);
  t.same(unknown(r.warnings.map(formatError)), []);
});

t.test('the examples have no unknown fields', async (t) => {
  // Each example is a config of its own (two may define the same egress gateway).
  let total = 0;
  for (const ex of readdirSync(join(ROOT, 'examples'))) {
    const r = loadConfig([join(ROOT, 'examples', ex)]);
    t.same(r.errors.map(formatError), [], ex);
    t.same(unknown(r.warnings.map(formatError)), [], ex);
    total += r.resources.length;
  }
  t.ok(total >= 10, `${total} resources checked`);
});

t.test('the Istio config inside the deploy ConfigMaps has no unknown fields', async (t) => {
  const dir = join(ROOT, 'deploy', 'kubernetes');
  const files: Record<string, string> = {};
  for (const f of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)))
    for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      const o = d.toJS() as { kind?: string; data?: Record<string, string> } | null;
      if (o?.kind !== 'ConfigMap') continue;
      for (const [k, v] of Object.entries(o.data ?? {})) if (/\.ya?ml$/.test(k)) files[`${f}-${k}`] = v;
    }
  const r = load(t, files);
  t.same(r.errors, []);
  t.ok(r.resources.length >= 3, `${r.resources.length} resources checked`);
  t.same(unknown(r.warnings), []);
});

t.test('every field of the API, including those courier does not serve, is known', async (t) => {
  const r = load(t, {
    'doc.yaml': [
      doc(
        'VirtualService',
        `
hosts: [reviews]
gateways: [mesh]
exportTo: ["."]
http:
- name: all
  match:
  - {name: m, uri: {prefix: /}, scheme: {exact: http}, method: {exact: GET}, authority: {exact: a}, port: 80,
     ignoreUriCase: true, sourceNamespace: default, statPrefix: s, gateways: [mesh]}
  route: [{destination: {host: reviews, subset: v1, port: {number: 9080}}, weight: 100,
           headers: {request: {set: {a: b}, add: {c: d}, remove: [e]}, response: {remove: [f]}}}]
  timeout: 5s
  retries: {attempts: 2, perTryTimeout: 1s, retryOn: 5xx, retryRemoteLocalities: true, retryIgnorePreviousHosts: true, backoff: 25ms}
  fault: {delay: {fixedDelay: 1s, percentage: {value: 1}}, abort: {httpStatus: 503, percentage: {value: 1}}}
  mirror: {host: mirror, subset: v1, port: {number: 80}}
  mirrorPercentage: {value: 5}
  mirror_percent: 5
  corsPolicy: {allowOrigins: [{exact: "https://a"}], allowMethods: [GET], allowHeaders: [x], exposeHeaders: [y],
               maxAge: 1h, allowCredentials: true, unmatchedPreflights: IGNORE}
  headers: {request: {set: {x: y}}}
- name: more
  mirrors: [{destination: {host: m2}, percentage: {value: 10}}]
  rewrite: {uriRegexRewrite: {match: "^/a", rewrite: /b}, authority: b}
  route: [{destination: {host: reviews}}]
- redirect: {uri: /x, authority: a, derivePort: FROM_REQUEST_PORT, scheme: https, redirectCode: 302}
- directResponse: {status: 200, body: {string: ok}}
tcp:
- match: [{port: 3306, destinationSubnets: [10.0.0.0/8], sourceLabels: {app: a}, gateways: [mesh], sourceNamespace: default}]
  route: [{destination: {host: db}, weight: 100}]
tls:
- match: [{port: 443, sniHosts: [reviews], destinationSubnets: [10.0.0.0/8]}]
  route: [{destination: {host: reviews}}]`,
      ),
      doc(
        'DestinationRule',
        `
host: reviews
exportTo: ["*"]
workloadSelector: {matchLabels: {app: reviews}}
trafficPolicy:
  loadBalancer:
    simple: ROUND_ROBIN
    localityLbSetting: {enabled: true, distribute: [{from: us-west/*, to: {"us-west/*": 80, "us-east/*": 20}}]}
    warmup: {duration: 10s, minimumPercent: 10, aggression: 1}
  connectionPool:
    tcp: {maxConnections: 10, connectTimeout: 1s, tcpKeepalive: {probes: 3, time: 1s, interval: 1s}, maxConnectionDuration: 1h, idleTimeout: 1h}
    http: {http1MaxPendingRequests: 1, http2MaxRequests: 1, maxRequestsPerConnection: 1, maxRetries: 1, idleTimeout: 1s,
           h2UpgradePolicy: DEFAULT, useClientProtocol: true, maxConcurrentStreams: 10}
  outlierDetection: {consecutive5xxErrors: 5, consecutiveGatewayErrors: 2, splitExternalLocalOriginErrors: true,
                     consecutiveLocalOriginFailures: 2, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 50, minHealthPercent: 10}
  tls: {mode: SIMPLE, sni: reviews, insecureSkipVerify: true}
  portLevelSettings: [{port: {number: 80}, loadBalancer: {consistentHash: {httpCookie: {name: u, path: /, ttl: 0s}}}}]
  tunnel: {protocol: CONNECT, targetHost: reviews, targetPort: 8080}
  proxyProtocol: {version: V1}
subsets:
- {name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {consistentHash: {maglev: {tableSize: 65537}, useSourceIp: true}}}}`,
        '  namespace: default\n',
      ),
      doc(
        'Sidecar',
        `
workloadSelector: {labels: {app: reviews}}
ingress:
- port: {number: 9080, protocol: HTTP, name: http}
  defaultEndpoint: 127.0.0.1:8080
  captureMode: DEFAULT
  connectionPool: {http: {http1MaxPendingRequests: 10}}
egress:
- hosts: ["./*"]
  captureMode: DEFAULT
inboundConnectionPool: {tcp: {maxConnections: 10}}
outboundTrafficPolicy: {mode: REGISTRY_ONLY}`,
      ),
    ].join('---\n'),
  });
  t.same(r.errors, []);
  t.equal(r.resources.length, 3);
  t.same(unknown(r.warnings), []);
});

// ---------------------------------------------------------------- typos

const cases: [name: string, yaml: string, paths: string[]][] = [
  [
    'VirtualService',
    doc(
      'VirtualService',
      `
hosts: [reviews]
exportto: ["."]
http:
- rout: [{destination: {host: reviews}}]
  route: [{destination: {host: reviews, subst: v1, port: {numbr: 9080}}}]
  retries: {attempts: 2, perTryTimout: 1s}
  fault: {delay: {fixedDelay: 1s, percentage: {valeu: 10}}}
  match:
  - uri: {prefix: /}
    header: {end-user: {exact: jason}}
tcp:
- match: [{port: 3306, sourceSubnett: 10.0.0.1}]
  route: [{destination: {host: db}}]`,
      '  lables: {app: reviews}\n',
    ),
    [
      'metadata.lables: unknown field "lables" (did you mean "labels"?)',
      'spec.exportto: unknown field "exportto" (did you mean "exportTo"?)',
      'spec.http[0].rout: unknown field "rout" (did you mean "route"?)',
      'spec.http[0].route[0].destination.subst: unknown field "subst" (did you mean "subset"?)',
      'spec.http[0].route[0].destination.port.numbr: unknown field "numbr" (did you mean "number"?)',
      'spec.http[0].retries.perTryTimout: unknown field "perTryTimout" (did you mean "perTryTimeout"?)',
      'spec.http[0].fault.delay.percentage.valeu: unknown field "valeu" (did you mean "value"?)',
      'spec.http[0].match[0].header: unknown field "header" (did you mean "headers"?)',
      'spec.tcp[0].match[0].sourceSubnett: unknown field "sourceSubnett" (did you mean "sourceSubnet"?)',
    ],
  ],
  [
    'DestinationRule',
    doc(
      'DestinationRule',
      `
host: reviews
trafficPolicy:
  connection_pool: {tcp: {maxConnections: 1}}
  connectionPool: {tcp: {maxConnection: 10}}
  portLevelSettings: [{port: {number: 80}, loadBalancer: {consistentHash: {httpCookie: {nam: u, name: u, ttl: 1s}}}}]
subsets:
- {name: v1, lables: {version: v1}}
- name: v2
  labels: {version: v2}
  trafficPolicy: {tls: {mode: SIMPLE, sniHost: reviews}}
  foo: bar`,
    ),
    [
      'spec.trafficPolicy.connection_pool: unknown field "connection_pool" (did you mean "connectionPool"?)',
      'spec.trafficPolicy.connectionPool.tcp.maxConnection: unknown field "maxConnection" (did you mean "maxConnections"?)',
      'spec.trafficPolicy.portLevelSettings[0].loadBalancer.consistentHash.httpCookie.nam: unknown field "nam" (did you mean "name"?)',
      'spec.subsets[0].lables: unknown field "lables" (did you mean "labels"?)',
      'spec.subsets[1].trafficPolicy.tls.sniHost: unknown field "sniHost"',
      'spec.subsets[1].foo: unknown field "foo"',
    ],
  ],
  [
    'Gateway',
    doc(
      'Gateway',
      `
selector: {istio: ingressgateway}
servers:
- port: {number: 443, name: https, protocol: HTTPS, nmae: x}
  hosts: ["*"]
  tls: {mode: SIMPLE, credentialName: cert, minProtocolVerison: TLSV1_2}
  defaultEndpoints: 127.0.0.1:8080
serverss: []`,
    ),
    [
      'spec.servers[0].port.nmae: unknown field "nmae" (did you mean "name"?)',
      'spec.servers[0].tls.minProtocolVerison: unknown field "minProtocolVerison" (did you mean "minProtocolVersion"?)',
      'spec.servers[0].defaultEndpoints: unknown field "defaultEndpoints" (did you mean "defaultEndpoint"?)',
      'spec.serverss: unknown field "serverss" (did you mean "servers"?)',
    ],
  ],
  [
    'ServiceEntry',
    doc(
      'ServiceEntry',
      `
hosts: [api.example.com]
ports: [{number: 443, name: tls, protocol: TLS, target_port: 8443}]
resolution: STATIC
endpoints: [{address: 10.0.0.1, lables: {a: b}, weigth: 1}]
constructor: x`,
    ),
    [
      'spec.ports[0].target_port: unknown field "target_port" (did you mean "targetPort"?)',
      'spec.endpoints[0].lables: unknown field "lables" (did you mean "labels"?)',
      'spec.endpoints[0].weigth: unknown field "weigth" (did you mean "weight"?)',
      'spec.constructor: unknown field "constructor"',
    ],
  ],
  [
    'ServiceEntry with a DestinationRule-style selector',
    doc(
      'ServiceEntry',
      `
hosts: [reviews.internal]
ports: [{number: 80, name: http, protocol: HTTP}]
resolution: STATIC
workloadSelector: {matchLabels: {app: reviews}}`,
    ),
    ['spec.workloadSelector.matchLabels: unknown field "matchLabels"'],
  ],
  [
    'WorkloadEntry',
    doc(
      'WorkloadEntry',
      'address: 10.0.0.2\nlabels: {app: reviews}\nserviceAcount: reviews\nports: {http: 9080}',
    ),
    ['spec.serviceAcount: unknown field "serviceAcount" (did you mean "serviceAccount"?)'],
  ],
  [
    'Sidecar',
    doc(
      'Sidecar',
      `
workloadSelector: {labels: {app: reviews}}
egress:
- hosts: ["./*"]
  captureMod: DEFAULT
ingress:
- port: {number: 9080, protocol: HTTP, name: http}
  defaultEndpoint: 127.0.0.1:8080
  connectionPool: {http: {http2MaxRequest: 10}}
outboundTrafficPolicy: {mode: REGISTRY_ONLY, egressProxy: {host: egress, subsett: v1}}`,
    ),
    [
      'spec.egress[0].captureMod: unknown field "captureMod" (did you mean "captureMode"?)',
      'spec.ingress[0].connectionPool.http.http2MaxRequest: unknown field "http2MaxRequest" (did you mean "http2MaxRequests"?)',
      'spec.outboundTrafficPolicy.egressProxy.subsett: unknown field "subsett" (did you mean "subset"?)',
    ],
  ],
  [
    'top level and metadata',
    `apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata: {name: r, namespace: shop, annotation: {a: b}}
spec: {address: 10.0.0.3}
data: {x: y}
`,
    [
      'metadata.annotation: unknown field "annotation" (did you mean "annotations"?)',
      'data: unknown field "data"',
    ],
  ],
];

t.test('typos at every depth are warnings with the exact field path', async (t) => {
  for (const [name, yaml, paths] of cases) {
    t.test(name, async (t) => {
      const r = load(t, { 'doc.yaml': yaml });
      t.same(r.errors, [], 'no errors');
      t.equal(r.resources.length, 1, 'the resource still loads');
      const res = r.resources[0]!;
      const prefix = `doc.yaml[0] ${res.kind}/${res.namespace}/${res.name}: `;
      t.same(unknown(r.warnings).sort(), paths.map((p) => prefix + p).sort());
    });
  }
});

t.test('a document with an unknown field is still valid and keeps its known fields', async (t) => {
  const r = load(t, {
    'vs.yaml': doc(
      'VirtualService',
      'hosts: [reviews]\nhttp:\n- rout: x\n  route: [{destination: {host: reviews}}]',
    ),
  });
  t.same(r.errors, []);
  t.same(r.warnings, [
    'vs.yaml[0] VirtualService/default/r: spec.http[0].rout: unknown field "rout" (did you mean "route"?)',
  ]);
  t.equal(r.resources.length, 1);
  t.match(r.resources[0], {
    kind: 'VirtualService',
    spec: { http: [{ route: [{ destination: { host: 'reviews' } }] }] },
  });
});

t.test('a field the validator already rejects is not warned about again', async (t) => {
  const r = load(t, {
    'vs.yaml': doc(
      'VirtualService',
      'hosts: [reviews]\nhttp:\n- match: [{uri: {prefix: /, exatc: /a}}]\n  route: [{destination: {host: reviews}}]',
    ),
  });
  t.same(r.errors, [
    'vs.yaml[0] VirtualService/default/r: spec.http[0].match[0].uri.exatc: unknown field in string match',
  ]);
  t.same(unknown(r.warnings), []);
});

// ---------------------------------------------------------------- map-typed fields

t.test('keys of map-typed fields are data, never unknown fields', async (t) => {
  const r = load(t, {
    'doc.yaml': [
      doc(
        'VirtualService',
        `
hosts: [reviews]
http:
- match:
  - headers: {rout: {exact: a}, x-Any_Header: {prefix: b}, constructor: {}}
    queryParams: {Weird Key: {exact: c}, route: {regex: "d.*"}}
    withoutHeaders: {subst: {exact: e}}
    sourceLabels: {"example.com/any": x, lables: y}
  route:
  - destination: {host: reviews}
    headers:
      request: {set: {Rout: a, "X-Foo.Bar": b}, add: {lables: c}}
      response: {set: {toString: d}}`,
        '  annotations: {"kubectl.kubernetes.io/last-applied-configuration": "{}", rout: x}\n  labels: {rout: x}\n',
      ),
      doc(
        'DestinationRule',
        `
host: reviews
workloadSelector: {matchLabels: {any-key: x}}
trafficPolicy:
  loadBalancer: {localityLbSetting: {distribute: [{from: "a/*", to: {"b/*": 100}}]}}
subsets: [{name: v1, labels: {version: v1, lables: x}}]`,
        '  namespace: default\n',
      ),
      doc(
        'Gateway',
        'selector: {istioo: x, app.kubernetes.io/name: y}\nservers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]',
      ),
      doc(
        'ServiceEntry',
        'hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}, {number: 81, name: route, protocol: HTTP}]\nresolution: STATIC\nendpoints: [{address: 10.0.0.1, ports: {http: 8080, route: 81}, labels: {rout: x}}]',
        '  namespace: se\n',
      ),
      doc(
        'WorkloadEntry',
        'address: 10.0.0.2\nports: {http: 9080, grpc-x: 9090}\nlabels: {lables: x}',
        '  namespace: we\n',
      ),
      doc('Sidecar', 'workloadSelector: {labels: {anything: x}}\negress: [{hosts: ["./*"]}]'),
    ].join('---\n'),
  });
  t.same(r.errors, []);
  t.equal(r.resources.length, 6);
  t.same(r.warnings, []);
});

t.test('status and the API server metadata are not checked inside', async (t) => {
  const r = load(t, {
    'doc.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: r
  namespace: default
  uid: 0b6f7b8e-1
  resourceVersion: "42"
  generation: 3
  creationTimestamp: "2024-01-01T00:00:00Z"
  generateName: r-
  finalizers: [x]
  selfLink: /apis/x
  ownerReferences: [{apiVersion: v1, kind: X, name: y, uid: z, anything: 1}]
  managedFields: [{manager: kubectl, operation: Apply, fieldsV1: {"f:spec": {}}}]
spec:
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
status:
  conditions: [{type: Reconciled, status: "True"}]
  anythingElse: {deep: 1}
`,
  });
  t.same(r.errors, []);
  t.same(r.warnings, []);
});
