// Validation of Istio networking documents: every invalid document below must be rejected with the
// exact field path and a clear message, rendered the way `courier validate` prints it
// (`file[index] Kind/namespace/name: field.path: message`), and valid Istio config must pass.

import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { loadConfig } from '../../dist/config/load.js';
import { formatError } from '../../dist/config/types.js';
import { validateCommand } from '../../dist/pilot-agent/courier-cli.js';

/** Istio-shaped config written for these tests (bookinfo, httpbin, helloworld, egress, mesh kinds). */
const SAMPLES = fileURLToPath(new URL('../fixtures/istio', import.meta.url));

/** Remove the common indentation of a template literal and its first and last blank lines. */
function dedent(s: string): string {
  const lines = s
    .replace(/^\n/, '')
    .replace(/\n\s*$/, '')
    .split('\n');
  const pad = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => /^ */.exec(l)?.[0].length ?? 0));
  return lines.map((l) => l.slice(pad)).join('\n');
}

/** One Istio document: header plus a `spec:` body written as YAML. */
function doc(
  kind: string,
  spec: string,
  opts: { name?: string; ns?: string; version?: string } = {},
): string {
  const meta = [`  name: ${opts.name ?? 'r'}`, ...(opts.ns ? [`  namespace: ${opts.ns}`] : [])].join('\n');
  const body = dedent(spec)
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  return `apiVersion: networking.istio.io/${opts.version ?? 'v1'}\nkind: ${kind}\nmetadata:\n${meta}\nspec:\n${body}\n`;
}

interface Loaded {
  errors: string[];
  warnings: string[];
  notes: string[];
  resources: number;
}

/** Write `files` into a fresh directory and load it; messages name files relative to it. */
function load(t: Test, files: NonNullable<Parameters<Test['testdir']>[0]>): Loaded {
  const dir = t.testdir(files);
  const r = loadConfig([dir], { displayBase: dir });
  return {
    errors: r.errors.map(formatError),
    warnings: r.warnings.map(formatError),
    notes: r.notes,
    resources: r.resources.length,
  };
}

/** `where` is `[index] Kind/ns/name: field.path`; the rendered line must start with it and contain `fragment`. */
type Expect = [where: string, fragment: string];

function assertLines(t: Test, lines: string[], expected: Expect[], file = 'doc.yaml'): void {
  for (const [where, fragment] of expected) {
    const prefix = `${file}${where}: `;
    const hit = lines.find((l) => l.startsWith(prefix) && l.slice(prefix.length).includes(fragment));
    t.ok(hit, `${prefix}…${fragment}`, { found: lines });
  }
  t.equal(lines.length, expected.length, 'no other messages', { found: lines });
}

interface Case {
  name: string;
  yaml: string;
  errors: Expect[];
}

const VS = '[0] VirtualService/default/r';
const DR = '[0] DestinationRule/default/r';
const GW = '[0] Gateway/default/r';
const SE = '[0] ServiceEntry/default/r';
const WE = '[0] WorkloadEntry/default/r';
const SC = '[0] Sidecar/default/r';

/** A VirtualService with one http route whose body is `route` (indented under `- `). */
function vsRoute(route: string, extra = ''): string {
  const body = dedent(route)
    .split('\n')
    .map((l, i) => (i === 0 ? `- ${l}` : `  ${l}`))
    .join('\n');
  return doc('VirtualService', `hosts: [reviews]\n${extra}http:\n${body}`);
}

const invalid: Case[] = [
  // ---- VirtualService: the action oneof
  {
    name: 'route and redirect together',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      redirect: {uri: /new}`),
    errors: [[`${VS}: spec.http[0]`, 'HTTP route cannot contain both "route" and "redirect"']],
  },
  {
    name: 'redirect and directResponse together',
    yaml: vsRoute(`
      redirect: {uri: /new}
      directResponse: {status: 200}`),
    errors: [[`${VS}: spec.http[0]`, 'HTTP route cannot contain both "directResponse" and "redirect"']],
  },
  {
    name: 'directResponse and route together',
    yaml: vsRoute(`
      directResponse: {status: 503}
      route: [{destination: {host: reviews}}]`),
    errors: [[`${VS}: spec.http[0]`, 'HTTP route cannot contain both "route" and "directResponse"']],
  },
  {
    name: 'redirect with rewrite and fault',
    yaml: vsRoute(`
      redirect: {uri: /new}
      rewrite: {uri: /x}
      fault: {abort: {httpStatus: 500, percentage: {value: 1}}}`),
    errors: [
      [`${VS}: spec.http[0]`, 'HTTP route cannot contain both "fault" and "redirect"'],
      [`${VS}: spec.http[0]`, 'HTTP route cannot contain both "rewrite" and "redirect"'],
    ],
  },
  {
    name: 'no action at all',
    yaml: vsRoute(`
      match: [{uri: {prefix: /api}}]`),
    errors: [[`${VS}: spec.http[0]`, 'HTTP route, redirect or directResponse is required']],
  },
  {
    name: 'mirror and mirrors together',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      mirror: {host: shadow}
      mirrors: [{destination: {host: shadow2}}]`),
    errors: [[`${VS}: spec.http[0]`, '"mirror" and "mirrors" cannot both be set']],
  },
  {
    name: 'rewrite uri with uriRegexRewrite',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      rewrite: {uri: /v2, uriRegexRewrite: {match: "^/v1(.*)", rewrite: "/v2\\\\1"}}`),
    errors: [[`${VS}: spec.http[0].rewrite`, 'only one of "uri" and "uriRegexRewrite" may be set']],
  },
  {
    name: 'uriRegexRewrite whose regex does not compile',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      rewrite: {uriRegexRewrite: {match: "^/(v1", rewrite: /x}}`),
    errors: [[`${VS}: spec.http[0].rewrite.uriRegexRewrite.match`, 'invalid regex "^/(v1"']],
  },
  {
    name: 'uriRegexRewrite that refers to a capture group the regex lacks',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      rewrite: {uriRegexRewrite: {match: "^/v1/(.*)$", rewrite: "/v2/\\\\2"}}`),
    errors: [
      [
        `${VS}: spec.http[0].rewrite.uriRegexRewrite.rewrite`,
        'rewrite refers to \\2 but the regex has 1 capture group(s)',
      ],
    ],
  },
  {
    name: 'redirect prefixRewrite with an exact uri match',
    yaml: vsRoute(`
      match: [{uri: {exact: /old}}]
      redirect: {prefixRewrite: /new}`),
    errors: [
      [
        `${VS}: spec.http[0].match[0].uri`,
        'redirect.prefixRewrite requires every uri match to be a prefix match',
      ],
    ],
  },
  {
    name: 'redirect with nothing to change',
    yaml: vsRoute(`
      redirect: {redirectCode: 302}`),
    errors: [
      [
        `${VS}: spec.http[0].redirect`,
        'redirect must specify uri, prefixRewrite, authority, scheme, or port',
      ],
    ],
  },
  // ---- hosts and gateways
  {
    name: 'hosts "*" on a mesh virtual service',
    yaml: doc('VirtualService', 'hosts: ["*"]\nhttp:\n- route: [{destination: {host: reviews}}]'),
    errors: [
      [
        `${VS}: spec.hosts[0]`,
        'wildcard host * is not allowed for virtual services bound to the mesh gateway',
      ],
    ],
  },
  {
    name: 'hosts "*" when the gateways list includes mesh',
    yaml: doc(
      'VirtualService',
      'hosts: ["*"]\ngateways: [gw, mesh]\nhttp:\n- route: [{destination: {host: reviews}}]',
    ),
    errors: [
      [
        `${VS}: spec.hosts[0]`,
        'wildcard host * is not allowed for virtual services bound to the mesh gateway',
      ],
    ],
  },
  {
    name: 'overlapping wildcard hosts',
    yaml: doc(
      'VirtualService',
      'hosts: ["*.foo.com", "*.com"]\ngateways: [gw]\nhttp:\n- route: [{destination: {host: a}}]',
    ),
    errors: [
      [`${VS}: spec.hosts[1]`, 'duplicate hosts in virtual service: "*.foo.com" (spec.hosts[0]) & "*.com"'],
    ],
  },
  {
    name: 'a host covered by a wildcard host of the same virtual service',
    yaml: doc(
      'VirtualService',
      'hosts: ["*.example.com", api.example.com]\nhttp:\n- route: [{destination: {host: a}}]',
    ),
    errors: [[`${VS}: spec.hosts[1]`, 'duplicate hosts in virtual service']],
  },
  {
    name: 'TLS route SNI host outside the virtual service hosts',
    yaml: doc(
      'VirtualService',
      'hosts: ["*.example.com"]\ngateways: [gw]\ntls:\n- match: [{sniHosts: [a.example.com, b.example.org], port: 443}]\n  route: [{destination: {host: a.example.com}}]',
    ),
    errors: [
      [`${VS}: spec.tls[0].match[0].sniHosts[1]`, 'SNI host "b.example.org" is not a compatible subset'],
    ],
  },
  {
    name: 'bad gateway reference',
    yaml: doc(
      'VirtualService',
      'hosts: [a.com]\ngateways: [a/b/c]\nhttp:\n- route: [{destination: {host: a}}]',
    ),
    errors: [[`${VS}: spec.gateways[0]`, 'invalid gateway name "a/b/c"']],
  },
  {
    name: 'delegate virtual service with tcp routes',
    yaml: doc('VirtualService', 'tcp:\n- route: [{destination: {host: a}}]'),
    errors: [[`${VS}: spec.tcp`, 'delegate virtual service (no hosts) must have no tcp route specified']],
  },
  {
    name: 'no routes of any kind',
    yaml: doc('VirtualService', 'hosts: [a]'),
    errors: [[`${VS}: spec`, 'http, tcp or tls must be provided in virtual service']],
  },
  // ---- header names
  {
    name: 'invalid header name in match headers',
    yaml: vsRoute(`
      match: [{headers: {"x user": {exact: jason}}}]
      route: [{destination: {host: reviews}}]`),
    errors: [[`${VS}: spec.http[0].match[0].headers["x user"]`, 'invalid header name "x user"']],
  },
  {
    name: 'unknown pseudo-header in match headers',
    yaml: vsRoute(`
      match: [{headers: {":tenant": {exact: a}}}]
      route: [{destination: {host: reviews}}]`),
    errors: [[`${VS}: spec.http[0].match[0].headers[":tenant"]`, 'invalid header name ":tenant"']],
  },
  {
    name: 'invalid header name in a request header operation',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      headers: {request: {set: {"x(bad)": "1"}}}`),
    errors: [[`${VS}: spec.http[0].headers.request.set["x(bad)"]`, 'invalid header name "x(bad)"']],
  },
  {
    name: 'pseudo-header in a response header operation',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}, headers: {response: {set: {":status": "200"}}}}]`),
    errors: [
      [`${VS}: spec.http[0].route[0].headers.response.set[":status"]`, 'pseudo-headers cannot be modified'],
    ],
  },
  {
    name: 'removing the Host header',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      headers: {request: {remove: [host]}}`),
    errors: [[`${VS}: spec.http[0].headers.request.remove[0]`, 'the Host header cannot be modified here']],
  },
  {
    name: 'JWT claim routing on a mesh virtual service',
    yaml: vsRoute(`
      match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]
      route: [{destination: {host: reviews}}]`),
    errors: [
      [
        `${VS}: spec.http[0].match[0].headers["@request.auth.claims.group"]`,
        'JWT claim based routing is only supported for virtual services bound to a gateway',
      ],
    ],
  },
  // ---- weights and statuses
  {
    name: 'negative weight',
    yaml: vsRoute(`
      route:
      - {destination: {host: reviews, subset: v1}, weight: 100}
      - {destination: {host: reviews, subset: v2}, weight: -5}`),
    errors: [[`${VS}: spec.http[0].route[1].weight`, 'must be >= 0']],
  },
  {
    name: 'all-zero weights',
    yaml: vsRoute(`
      route:
      - {destination: {host: reviews, subset: v1}, weight: 0}
      - {destination: {host: reviews, subset: v2}, weight: 0}`),
    errors: [[`${VS}: spec.http[0].route`, 'total destination weight = 0']],
  },
  {
    name: 'several destinations without any weight (Istio: weights default to 0)',
    yaml: vsRoute(`
      route:
      - destination: {host: reviews, subset: v1}
      - destination: {host: reviews, subset: v2}`),
    errors: [[`${VS}: spec.http[0].route`, 'total destination weight = 0']],
  },
  {
    name: 'TCP route with all-zero weights',
    yaml: doc(
      'VirtualService',
      'hosts: [db]\ntcp:\n- route:\n  - {destination: {host: db, subset: a}, weight: 0}\n  - {destination: {host: db, subset: b}, weight: 0}',
    ),
    errors: [[`${VS}: spec.tcp[0].route`, 'total destination weight = 0']],
  },
  {
    name: 'directResponse status above the range',
    yaml: vsRoute('directResponse: {status: 700}'),
    errors: [[`${VS}: spec.http[0].directResponse.status`, 'HTTP status 700 is not in range 200-599']],
  },
  {
    name: 'directResponse status below the range',
    yaml: vsRoute('directResponse: {status: 101}'),
    errors: [[`${VS}: spec.http[0].directResponse.status`, 'HTTP status 101 is not in range 200-599']],
  },
  {
    name: 'fault abort status out of range',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      fault: {abort: {httpStatus: 99, percentage: {value: 100}}}`),
    errors: [[`${VS}: spec.http[0].fault.abort.httpStatus`, 'HTTP status 99 is not in range 200-599']],
  },
  {
    name: 'fault abort with an unknown gRPC status',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      fault: {abort: {grpcStatus: NOPE, percentage: {value: 100}}}`),
    errors: [[`${VS}: spec.http[0].fault.abort.grpcStatus`, 'unsupported value "NOPE"']],
  },
  {
    name: 'CRLF in a rewrite uri (request-line injection)',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      rewrite: {uri: "/a\\r\\nx-evil: 1"}`),
    errors: [[`${VS}: spec.http[0].rewrite.uri`, 'must not contain spaces or control characters']],
  },
  {
    name: 'space in a redirect authority',
    yaml: vsRoute('redirect: {authority: "a b"}'),
    errors: [[`${VS}: spec.http[0].redirect.authority`, 'must not contain spaces or control characters']],
  },
  {
    name: 'redirectCode that is not 3xx',
    yaml: vsRoute('redirect: {uri: /new, redirectCode: 200}'),
    errors: [[`${VS}: spec.http[0].redirect.redirectCode`, '200 is not a valid redirect code, must be 3xx']],
  },
  {
    name: 'fault delay percentage above 100',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      fault: {delay: {fixedDelay: 5s, percentage: {value: 150}}}`),
    errors: [[`${VS}: spec.http[0].fault.delay.percentage.value`, 'must be <= 100']],
  },
  {
    name: 'mirrorPercentage above 100',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      mirror: {host: shadow}
      mirrorPercentage: {value: 100.5}`),
    errors: [[`${VS}: spec.http[0].mirrorPercentage.value`, 'must be <= 100']],
  },
  // ---- durations
  {
    name: 'duration with an unknown unit',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      timeout: 1x`),
    errors: [[`${VS}: spec.http[0].timeout`, 'invalid duration "1x"']],
  },
  {
    name: 'negative duration',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      timeout: -1s`),
    errors: [[`${VS}: spec.http[0].timeout`, 'invalid duration "-1s"']],
  },
  {
    name: 'duration below one millisecond',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      retries: {attempts: 3, perTryTimeout: 0.1ms}`),
    errors: [[`${VS}: spec.http[0].retries.perTryTimeout`, 'duration must be greater than 1ms']],
  },
  {
    name: 'duration finer than a millisecond',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      fault: {delay: {fixedDelay: 1.5ms, percentage: {value: 10}}}`),
    errors: [[`${VS}: spec.http[0].fault.delay.fixedDelay`, 'only durations to ms precision are supported']],
  },
  {
    name: 'duration beyond what Go can represent',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      timeout: 3000000h`),
    errors: [[`${VS}: spec.http[0].timeout`, 'invalid duration "3000000h" (out of range)']],
  },
  {
    name: 'a zero route timeout (the CRD requires at least 1ms)',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      timeout: 0s`),
    errors: [[`${VS}: spec.http[0].timeout`, 'duration must be greater than 1ms']],
  },
  {
    name: 'CORS maxAge below a second of precision',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      corsPolicy: {allowOrigins: [{exact: "https://a.com"}], maxAge: 1500ms}`),
    errors: [[`${VS}: spec.http[0].corsPolicy.maxAge`, 'accurate only to seconds precision']],
  },
  // ---- regexes
  {
    name: 'regex that does not compile',
    yaml: vsRoute(`
      match: [{uri: {regex: "/api/[a-z"}}]
      route: [{destination: {host: reviews}}]`),
    errors: [[`${VS}: spec.http[0].match[0].uri.regex`, 'invalid regex "/api/[a-z"']],
  },
  {
    name: 'negative look-ahead (not RE2)',
    yaml: vsRoute(`
      match: [{uri: {regex: "/api/(?!internal).*"}}]
      route: [{destination: {host: reviews}}]`),
    errors: [[`${VS}: spec.http[0].match[0].uri.regex`, 'look-around assertions are not supported by RE2']],
  },
  {
    name: 'look-behind in a header regex',
    yaml: vsRoute(`
      match: [{headers: {cookie: {regex: "(?<=user=)jason"}}}]
      route: [{destination: {host: reviews}}]`),
    errors: [
      [
        `${VS}: spec.http[0].match[0].headers.cookie.regex`,
        'look-around assertions are not supported by RE2',
      ],
    ],
  },
  {
    name: 'back-reference (not RE2)',
    yaml: vsRoute(`
      match: [{authority: {regex: "(a+)\\\\1"}}]
      route: [{destination: {host: reviews}}]`),
    errors: [[`${VS}: spec.http[0].match[0].authority.regex`, 'back-references are not supported by RE2']],
  },
  {
    name: 'empty prefix match on a header',
    yaml: vsRoute(`
      match: [{headers: {x-env: {prefix: ""}}}]
      route: [{destination: {host: reviews}}]`),
    errors: [
      [`${VS}: spec.http[0].match[0].headers.x-env.prefix`, 'prefix string match should not be empty'],
    ],
  },
  // ---- retries and CORS
  {
    name: 'retryOn with an unknown policy',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      retries: {attempts: 3, retryOn: "5xx,connect-failure,gateway-eror"}`),
    errors: [[`${VS}: spec.http[0].retries.retryOn`, '"gateway-eror" is not a valid retryOn policy']],
  },
  {
    name: 'retry policy tuned while attempts is 0',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      retries: {retryOn: 5xx, perTryTimeout: 2s}`),
    errors: [[`${VS}: spec.http[0].retries`, 'retry policy configured while attempts is 0']],
  },
  {
    name: 'CORS method that is not an HTTP method',
    yaml: vsRoute(`
      route: [{destination: {host: reviews}}]
      corsPolicy: {allowOrigins: [{exact: "https://a.com"}], allowMethods: [GET, FETCH]}`),
    errors: [[`${VS}: spec.http[0].corsPolicy.allowMethods[1]`, '"FETCH" is not a supported HTTP method']],
  },
  // ---- DestinationRule
  {
    name: 'more than one consistent-hash key',
    yaml: doc(
      'DestinationRule',
      'host: reviews\ntrafficPolicy:\n  loadBalancer:\n    consistentHash: {httpHeaderName: x-user, useSourceIp: true}',
    ),
    errors: [
      [
        `${DR}: spec.trafficPolicy.loadBalancer.consistentHash`,
        'only one of "httpHeaderName" and "useSourceIp" may be set',
      ],
    ],
  },
  {
    name: 'simple and consistentHash together',
    yaml: doc(
      'DestinationRule',
      'host: reviews\ntrafficPolicy:\n  loadBalancer: {simple: ROUND_ROBIN, consistentHash: {useSourceIp: true}}',
    ),
    errors: [
      [`${DR}: spec.trafficPolicy.loadBalancer`, 'only one of "simple" and "consistentHash" may be set'],
    ],
  },
  {
    name: 'unknown SimpleLB',
    yaml: doc('DestinationRule', 'host: reviews\ntrafficPolicy: {loadBalancer: {simple: FASTEST}}'),
    errors: [[`${DR}: spec.trafficPolicy.loadBalancer.simple`, 'unsupported value "FASTEST"']],
  },
  {
    name: 'maglev table size that is not prime',
    yaml: doc(
      'DestinationRule',
      'host: reviews\ntrafficPolicy:\n  loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65536}}}',
    ),
    errors: [
      [
        `${DR}: spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize`,
        'table size 65536 must be a prime number',
      ],
    ],
  },
  {
    name: 'maglev without a table size',
    yaml: doc(
      'DestinationRule',
      'host: reviews\ntrafficPolicy:\n  loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {}}}',
    ),
    errors: [
      [`${DR}: spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize`, 'tableSize must be set'],
    ],
  },
  {
    name: 'unknown client TLS mode',
    yaml: doc('DestinationRule', 'host: reviews\ntrafficPolicy: {tls: {mode: STRICT}}'),
    errors: [[`${DR}: spec.trafficPolicy.tls.mode`, 'unsupported value "STRICT"']],
  },
  {
    name: 'client MUTUAL TLS without certificates',
    yaml: doc(
      'DestinationRule',
      'host: reviews\ntrafficPolicy: {portLevelSettings: [{port: {number: 443}, tls: {mode: MUTUAL}}]}',
    ),
    errors: [
      [
        `${DR}: spec.trafficPolicy.portLevelSettings[0].tls.clientCertificate`,
        'client certificate required for mutual tls',
      ],
      [
        `${DR}: spec.trafficPolicy.portLevelSettings[0].tls.privateKey`,
        'private key required for mutual tls',
      ],
    ],
  },
  {
    name: 'client TLS credentialName together with file certificates',
    yaml: doc(
      'DestinationRule',
      'host: reviews\ntrafficPolicy: {tls: {mode: SIMPLE, credentialName: creds, caCertificates: /etc/ca.pem}}',
    ),
    errors: [
      [
        `${DR}: spec.trafficPolicy.tls`,
        'cannot specify client certificates or CA certificate or CA CRL If credentialName is set',
      ],
    ],
  },
  {
    name: 'duplicate subset names',
    yaml: doc(
      'DestinationRule',
      'host: reviews\nsubsets:\n- {name: v1, labels: {version: v1}}\n- {name: v1, labels: {version: v2}}',
    ),
    errors: [[`${DR}: spec.subsets[1].name`, 'duplicate subset name "v1" (also spec.subsets[0])']],
  },
  {
    name: 'subset name that is not a DNS label',
    yaml: doc('DestinationRule', 'host: reviews\nsubsets:\n- {name: v1_beta, labels: {version: v1}}'),
    errors: [[`${DR}: spec.subsets[0].name`, 'invalid subset name "v1_beta"']],
  },
  {
    name: 'empty traffic policy',
    yaml: doc('DestinationRule', 'host: reviews\ntrafficPolicy: {}'),
    errors: [[`${DR}: spec.trafficPolicy`, 'traffic policy must have at least one field']],
  },
  {
    name: 'outlier detection percentages and local-origin failures',
    yaml: doc(
      'DestinationRule',
      'host: reviews\ntrafficPolicy:\n  outlierDetection: {maxEjectionPercent: 150, consecutiveLocalOriginFailures: 3, interval: 10x}',
    ),
    errors: [
      [`${DR}: spec.trafficPolicy.outlierDetection.interval`, 'invalid duration "10x"'],
      [`${DR}: spec.trafficPolicy.outlierDetection.maxEjectionPercent`, 'must be <= 100'],
      [
        `${DR}: spec.trafficPolicy.outlierDetection.consecutiveLocalOriginFailures`,
        'splitExternalLocalOriginErrors is false',
      ],
    ],
  },
  {
    name: 'connection pool UPGRADE with useClientProtocol',
    yaml: doc(
      'DestinationRule',
      'host: reviews\ntrafficPolicy:\n  connectionPool: {http: {h2UpgradePolicy: UPGRADE, useClientProtocol: true}}',
    ),
    errors: [
      [
        `${DR}: spec.trafficPolicy.connectionPool.http.useClientProtocol`,
        'must not be true when h2UpgradePolicy is UPGRADE',
      ],
    ],
  },
  {
    name: 'locality distribute weights not adding to 100',
    yaml: doc(
      'DestinationRule',
      'host: reviews\ntrafficPolicy:\n  loadBalancer:\n    localityLbSetting:\n      distribute: [{from: us-west/*, to: {"us-west/*": 60, "us-east/*": 20}}]',
    ),
    errors: [
      [
        `${DR}: spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to`,
        'total locality weight 80 != 100',
      ],
    ],
  },
  // ---- Gateway
  {
    name: 'server without a port',
    yaml: doc('Gateway', 'servers:\n- hosts: ["*"]'),
    errors: [[`${GW}: spec.servers[0].port`, 'is required']],
  },
  {
    name: 'server without hosts',
    yaml: doc('Gateway', 'servers:\n- port: {number: 80, name: http, protocol: HTTP}'),
    errors: [[`${GW}: spec.servers[0].hosts`, 'is required']],
  },
  {
    name: 'server with an empty hosts list',
    yaml: doc('Gateway', 'servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: []'),
    errors: [[`${GW}: spec.servers[0].hosts`, 'must not be empty']],
  },
  {
    name: 'server with an unknown protocol',
    yaml: doc('Gateway', 'servers:\n- port: {number: 80, name: http, protocol: SPDY}\n  hosts: ["*"]'),
    errors: [[`${GW}: spec.servers[0].port.protocol`, 'unsupported protocol "SPDY"']],
  },
  {
    name: 'server port without a name',
    yaml: doc('Gateway', 'servers:\n- port: {number: 80, protocol: HTTP}\n  hosts: ["*"]'),
    errors: [[`${GW}: spec.servers[0].port.name`, 'is required']],
  },
  {
    name: 'server port out of range',
    yaml: doc('Gateway', 'servers:\n- port: {number: 70000, name: http, protocol: HTTP}\n  hosts: ["*"]'),
    errors: [[`${GW}: spec.servers[0].port.number`, 'port number 70000 must be in the range 1..65535']],
  },
  {
    name: 'HTTPS server without tls',
    yaml: doc('Gateway', 'servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ["*"]'),
    errors: [[`${GW}: spec.servers[0].tls`, 'server must have TLS settings for HTTPS/TLS protocols']],
  },
  {
    name: 'server TLS mode that does not exist',
    yaml: doc(
      'Gateway',
      'servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ["*"]\n  tls: {mode: STRICT, credentialName: c}',
    ),
    errors: [[`${GW}: spec.servers[0].tls.mode`, 'unsupported value "STRICT"']],
  },
  {
    name: 'SIMPLE TLS server without certificates',
    yaml: doc(
      'Gateway',
      'servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ["*"]\n  tls: {mode: SIMPLE}',
    ),
    errors: [
      [`${GW}: spec.servers[0].tls.serverCertificate`, 'SIMPLE TLS requires a server certificate'],
      [`${GW}: spec.servers[0].tls.privateKey`, 'SIMPLE TLS requires a private key'],
    ],
  },
  {
    name: 'MUTUAL TLS server without a CA bundle',
    yaml: doc(
      'Gateway',
      'servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ["*"]\n  tls: {mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}',
    ),
    errors: [[`${GW}: spec.servers[0].tls.caCertificates`, 'MUTUAL TLS requires a client CA bundle']],
  },
  {
    name: 'TLS termination settings on a plain HTTP server',
    yaml: doc(
      'Gateway',
      'servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ["*"]\n  tls: {mode: SIMPLE, credentialName: c}',
    ),
    errors: [[`${GW}: spec.servers[0].tls`, 'server cannot have TLS settings for plain text HTTP ports']],
  },
  {
    name: 'short name and partial wildcard in gateway hosts',
    yaml: doc(
      'Gateway',
      'servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [prod/foo, "*bar.com"]',
    ),
    errors: [
      [`${GW}: spec.servers[0].hosts[0]`, 'short name "foo" is not allowed'],
      [`${GW}: spec.servers[0].hosts[1]`, 'partial wildcard "*bar.com" is not allowed'],
    ],
  },
  {
    name: 'duplicate server port names',
    yaml: doc(
      'Gateway',
      'servers:\n- port: {number: 80, name: web, protocol: HTTP}\n  hosts: ["*"]\n- port: {number: 8080, name: web, protocol: HTTP}\n  hosts: ["*"]',
    ),
    errors: [[`${GW}: spec.servers[1].port.name`, 'port names in servers must be unique']],
  },
  {
    name: 'gateway name with a dot',
    yaml: doc('Gateway', 'servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ["*"]', {
      name: 'gw.v1',
    }),
    errors: [
      [
        '[0] Gateway/default/gw.v1: metadata.name',
        'invalid gateway name "gw.v1" (must be a DNS label: no dots)',
      ],
    ],
  },
  // ---- ServiceEntry
  {
    name: 'service entry host "*"',
    yaml: doc('ServiceEntry', 'hosts: ["*"]\nports: [{number: 80, name: http, protocol: HTTP}]'),
    errors: [[`${SE}: spec.hosts[0]`, 'invalid host *']],
  },
  {
    name: 'unknown resolution and location',
    yaml: doc(
      'ServiceEntry',
      'hosts: [api.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: ROUND_ROBIN\nlocation: MESH_OUTSIDE',
    ),
    errors: [
      [
        `${SE}: spec.resolution`,
        'unsupported value "ROUND_ROBIN" (expected one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS)',
      ],
      [`${SE}: spec.location`, 'unsupported value "MESH_OUTSIDE"'],
    ],
  },
  {
    name: 'resolution NONE with endpoints',
    yaml: doc(
      'ServiceEntry',
      'hosts: [api.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: NONE\nendpoints: [{address: 10.0.0.1}]',
    ),
    errors: [[`${SE}: spec.endpoints`, 'no endpoints should be provided for resolution type NONE']],
  },
  {
    name: 'duplicate port numbers',
    yaml: doc(
      'ServiceEntry',
      'hosts: [api.example.com]\nports:\n- {number: 80, name: http, protocol: HTTP}\n- {number: 80, name: http-alt, protocol: HTTP}\nresolution: DNS',
    ),
    errors: [[`${SE}: spec.ports[1].number`, 'service entry port 80 already defined']],
  },
  {
    name: 'endpoint port name the service entry does not declare',
    yaml: doc(
      'ServiceEntry',
      'hosts: [api.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\nendpoints: [{address: 10.0.0.1, ports: {https: 8443}}]',
    ),
    errors: [
      [`${SE}: spec.endpoints[0].ports.https`, 'endpoint port https is not defined by the service entry'],
    ],
  },
  {
    name: 'STATIC endpoint that is a host name',
    yaml: doc(
      'ServiceEntry',
      'hosts: [api.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\nendpoints: [{address: api.internal}]',
    ),
    errors: [
      [`${SE}: spec.endpoints[0].address`, 'endpoint address "api.internal" is not a valid IP address'],
    ],
  },
  {
    name: 'DNS resolution of a wildcard host without endpoints',
    yaml: doc(
      'ServiceEntry',
      'hosts: ["*.example.com"]\nports: [{number: 443, name: tls, protocol: TLS}]\nresolution: DNS',
    ),
    errors: [
      [
        `${SE}: spec.hosts[0]`,
        'wildcard host *.example.com is not allowed with resolution DNS and no endpoints',
      ],
    ],
  },
  {
    name: 'several hosts on a TCP port with DNS resolution',
    yaml: doc(
      'ServiceEntry',
      'hosts: [a.example.com, b.example.com]\nports: [{number: 5432, name: pg, protocol: TCP}]\nresolution: DNS',
    ),
    errors: [[`${SE}: spec.ports`, 'multiple hosts provided with non-HTTP, non-TLS ports']],
  },
  {
    name: 'workload entry without an address',
    yaml: doc('WorkloadEntry', 'labels: {app: vm}'),
    errors: [[`${WE}: spec.address`, 'is required']],
  },
  // ---- Sidecar
  {
    name: 'sidecar egress host without a namespace',
    yaml: doc('Sidecar', 'egress:\n- hosts: [istio-system/*, reviews.default.svc.cluster.local]'),
    errors: [[`${SC}: spec.egress[0].hosts[1]`, 'must be of form namespace/dnsName']],
  },
  {
    name: 'sidecar egress host with a short name',
    yaml: doc('Sidecar', 'egress:\n- hosts: [./reviews]'),
    errors: [[`${SC}: spec.egress[0].hosts[0]`, 'short name "reviews" is not allowed']],
  },
  {
    name: 'sidecar with nothing configured',
    yaml: doc('Sidecar', 'workloadSelector: {labels: {app: a}}'),
    errors: [[`${SC}: spec`, 'sidecar: empty configuration provided']],
  },
  {
    name: 'sidecar catch-all egress listener that is not last',
    yaml: doc(
      'Sidecar',
      'egress:\n- hosts: ["./*"]\n- port: {number: 9080, name: http, protocol: HTTP}\n  hosts: ["./*"]',
    ),
    errors: [
      [`${SC}: spec.egress[0].port`, 'the egress listener with empty port should be the last listener'],
    ],
  },
  // ---- metadata and document level
  {
    name: 'missing metadata.name',
    yaml: 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {namespace: prod}\nspec:\n  hosts: [a]\n  http:\n  - route: [{destination: {host: a}}]\n',
    errors: [['[0] VirtualService/prod/?: metadata.name', 'is required']],
  },
  {
    name: 'metadata.name with upper case',
    yaml: doc('DestinationRule', 'host: reviews', { name: 'Reviews' }),
    errors: [['[0] DestinationRule/default/Reviews: metadata.name', 'invalid name "Reviews"']],
  },
  {
    name: 'missing spec',
    yaml: 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\n',
    errors: [[`${DR}: spec`, 'is required']],
  },
  {
    name: 'unsupported API version',
    yaml: doc('DestinationRule', 'host: reviews', { version: 'v2' }),
    errors: [[`${DR}: apiVersion`, 'unsupported version "networking.istio.io/v2"']],
  },
  {
    name: 'misspelt networking kind',
    yaml: 'apiVersion: networking.istio.io/v1\nkind: VirtualServce\nmetadata: {name: r}\nspec: {}\n',
    errors: [['[0] VirtualServce/default/r: kind', 'unknown networking.istio.io kind "VirtualServce"']],
  },
];

t.test('invalid documents are rejected with field path and message', async (t) => {
  t.ok(invalid.length >= 45, `${invalid.length} invalid documents`);
  for (const c of invalid) {
    t.test(c.name, async (t) => {
      const r = load(t, { 'doc.yaml': c.yaml });
      assertLines(t, r.errors, c.errors);
      t.equal(r.resources, 0, 'an invalid document yields no resource');
    });
  }
});

t.test('the rendered line is exactly file[index] Kind/namespace/name: path: message', async (t) => {
  const ok = doc('VirtualService', 'hosts: [ratings]\nhttp:\n- route: [{destination: {host: ratings}}]', {
    name: 'ratings',
  });
  const bad = doc(
    'VirtualService',
    'hosts: [reviews]\nhttp:\n- route:\n  - {destination: {host: reviews, subset: v1}, weight: 80}\n  - {destination: {host: reviews, subset: v2}, weight: -20}',
    { name: 'reviews' },
  );
  const r = load(t, { 'vs.yaml': `${ok}---\n${ok.replace('ratings', 'details')}---\n${bad}` });
  t.same(r.errors, ['vs.yaml[2] VirtualService/default/reviews: spec.http[0].route[1].weight: must be >= 0']);
});

t.test('every error in one document is reported', async (t) => {
  const yaml = doc(
    'VirtualService',
    `
    hosts: ["*"]
    http:
    - match: [{uri: {regex: "(?!x)"}, headers: {"bad name": {exact: a}}}]
      route:
      - {destination: {host: reviews, subset: v1}, weight: -1}
      - {destination: {host: reviews, subset: v2}, weight: 1}
      timeout: 1x
      retries: {attempts: 2, retryOn: nonsense}
    - redirect: {uri: /x, redirectCode: 404}
    - directResponse: {status: 1000}
      fault: {abort: {httpStatus: 42}}`,
    { name: 'many' },
  );
  const r = load(t, { 'doc.yaml': yaml });
  const V = '[0] VirtualService/default/many';
  assertLines(t, r.errors, [
    [`${V}: spec.hosts[0]`, 'wildcard host * is not allowed'],
    [`${V}: spec.http[0].match[0].uri.regex`, 'look-around'],
    [`${V}: spec.http[0].match[0].headers["bad name"]`, 'invalid header name'],
    [`${V}: spec.http[0].route[0].weight`, 'must be >= 0'],
    [`${V}: spec.http[0].timeout`, 'invalid duration "1x"'],
    [`${V}: spec.http[0].retries.retryOn`, '"nonsense" is not a valid retryOn policy'],
    [`${V}: spec.http[1].redirect.redirectCode`, '404 is not a valid redirect code'],
    [`${V}: spec.http[2]`, 'HTTP route cannot contain both "fault" and "directResponse"'],
    [`${V}: spec.http[2].directResponse.status`, 'HTTP status 1000 is not in range 200-599'],
    [`${V}: spec.http[2].fault.abort.httpStatus`, 'HTTP status 42 is not in range 200-599'],
  ]);
});

t.test('errors from several documents of one file carry their document index', async (t) => {
  const good = doc('VirtualService', 'hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]', {
    name: 'good',
  });
  const badDr = doc('DestinationRule', 'host: reviews\nsubsets:\n- {name: v1}\n- {name: v1}', {
    name: 'dr',
    ns: 'shop',
  });
  const badGw = doc('Gateway', 'servers:\n- port: {number: 80, name: http, protocol: HTTP}', { name: 'gw' });
  const skipped = 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n';
  const r = load(t, { 'multi.yaml': `${good}---\n${badDr}---\n---\n${skipped}---\n${badGw}` });
  assertLines(
    t,
    r.errors,
    [
      ['[1] DestinationRule/shop/dr: spec.subsets[1].name', 'duplicate subset name "v1"'],
      ['[4] Gateway/default/gw: spec.servers[0].hosts', 'is required'],
    ],
    'multi.yaml',
  );
  t.equal(r.resources, 1, 'the valid document still loads');
  t.same(r.notes, [
    'multi.yaml[3]: skipped ConfigMap (v1): not a networking.istio.io kind courier validates',
  ]);
});

t.test('errors across several files name each file', async (t) => {
  const r = load(t, {
    'a.yaml': doc('DestinationRule', 'host: reviews\ntrafficPolicy: {loadBalancer: {simple: FAST}}'),
    nested: { 'b.yml': doc('ServiceEntry', 'hosts: ["*"]', { name: 'se' }) },
  });
  t.same(r.errors.sort(), [
    'a.yaml[0] DestinationRule/default/r: spec.trafficPolicy.loadBalancer.simple: unsupported value "FAST" (expected one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST)',
    'nested/b.yml[0] ServiceEntry/default/se: spec.hosts[0]: invalid host * (a service entry cannot match every host)',
  ]);
});

// ---------------------------------------------------------------- valid configuration

t.test('every Istio fixture validates with exit code 0', async (t) => {
  const files = (readdirSync(SAMPLES, { recursive: true }) as string[])
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  t.ok(files.length >= 15, `${files.length} fixture files`);
  for (const f of files) {
    const out: string[] = [];
    const err: string[] = [];
    const code = validateCommand([`${SAMPLES}/${f}`], { out: (l) => out.push(l), err: (l) => err.push(l) });
    t.equal(code, 0, f, { out, err });
    t.same(out, [], `${f}: no errors printed`);
    t.same(
      err.filter((l) => l.includes('unknown field')),
      [],
      `${f}: no unknown fields`,
    );
  }
  const out: string[] = [];
  const err: string[] = [];
  const code = validateCommand([SAMPLES], { out: (l) => out.push(l), err: (l) => err.push(l) });
  t.equal(code, 0, 'the whole directory at once', { out });
  t.match(err[err.length - 1], /^\d+ resource\(s\) in \d+ file\(s\) valid$/);
  t.ok(
    err.some((l) => l.includes('duplicate resource')),
    'files that are alternatives repeat names: warnings here, not errors',
  );
});

t.test('the fixtures cover every kind and API version, and skip Kubernetes kinds with a note', async (t) => {
  const r = loadConfig([SAMPLES], { duplicates: 'warning', displayBase: SAMPLES });
  t.same(r.errors.map(formatError), []);
  const kinds = new Set(r.resources.map((x) => x.kind));
  t.same(
    [...kinds].sort(),
    ['DestinationRule', 'Gateway', 'ServiceEntry', 'Sidecar', 'VirtualService', 'WorkloadEntry'],
    'every networking kind',
  );
  t.same(
    [...new Set(r.resources.map((x) => x.apiVersion))].sort(),
    ['networking.istio.io/v1', 'networking.istio.io/v1alpha3', 'networking.istio.io/v1beta1'],
    'every API version',
  );
  const skipped = r.notes.map((n) => /skipped (\w+) \(/.exec(n)?.[1]);
  for (const k of ['Deployment', 'Service', 'ServiceAccount'])
    t.ok(skipped.includes(k), `${k} skipped with a note`);
  t.ok(
    r.notes.every((n) => n.endsWith('not a networking.istio.io kind courier validates')),
    'each note says why',
    { notes: r.notes },
  );
});

t.test('validateCommand exits 1 on errors and prints one line per error', async (t) => {
  const dir = t.testdir({ 'bad.yaml': vsRoute('directResponse: {status: 42}') });
  const out: string[] = [];
  const err: string[] = [];
  const code = validateCommand([dir], { out: (l) => out.push(l), err: (l) => err.push(l) });
  t.equal(code, 1);
  t.equal(out.length, 1);
  t.match(
    out[0],
    /bad\.yaml\[0\] VirtualService\/default\/r: spec\.http\[0\]\.directResponse\.status: HTTP status 42/,
  );
  t.same(err, ['1 error(s) in 1 file(s)']);
  t.equal(validateCommand([], { out: () => {}, err: () => {} }), 2, 'no path is a usage error');
});

t.test('v1, v1beta1 and v1alpha3 are all accepted', async (t) => {
  for (const version of ['v1', 'v1beta1', 'v1alpha3']) {
    const r = load(t, {
      'doc.yaml': [
        doc('VirtualService', 'hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]', { version }),
        doc('DestinationRule', 'host: a\nsubsets: [{name: v1, labels: {version: v1}}]', { version }),
        doc('Gateway', 'servers:\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: ["*"]', {
          version,
        }),
        doc(
          'ServiceEntry',
          'hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: DNS',
          {
            version,
          },
        ),
        doc('WorkloadEntry', 'address: 10.0.0.1', { version }),
        doc('Sidecar', 'egress: [{hosts: ["./*"]}]', { version }),
      ].join('---\n'),
    });
    t.same(r.errors, [], version);
    t.equal(r.resources, 6, `${version}: six resources`);
  }
});

t.test(
  'unknown kinds are skipped with a note, not an error; kinds that change traffic are warnings',
  async (t) => {
    const k8s = dedent(`
    apiVersion: v1
    kind: ServiceAccount
    metadata: {name: httpbin}
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: httpbin}
    spec: {ports: [{port: 8000}]}
    ---
    apiVersion: apps/v1
    kind: Deployment
    metadata: {name: httpbin}
    spec: {replicas: 1}
    ---
    apiVersion: networking.istio.io/v1alpha3
    kind: EnvoyFilter
    metadata: {name: ef}
    spec: {}
    ---
    apiVersion: security.istio.io/v1
    kind: AuthorizationPolicy
    metadata: {name: deny}
    spec: {}
  `);
    const r = load(t, { 'k8s.yaml': k8s });
    t.same(r.errors, []);
    t.equal(r.resources, 1, 'the AuthorizationPolicy is loaded (to be listed as not enforced)');
    t.equal(r.notes.length, 3);
    t.match(r.notes[0], /^k8s\.yaml\[0\]: skipped ServiceAccount \(v1\)/);
    t.match(r.notes[2], /^k8s\.yaml\[2\]: skipped Deployment \(apps\/v1\)/);

    const dir = t.testdir({ 'k8s.yaml': k8s });
    const err: string[] = [];
    const code = validateCommand([dir], { out: () => {}, err: (l) => err.push(l) });
    t.equal(code, 0, 'courier validate exits 0');
    t.equal(err.filter((l) => l.startsWith('note: ')).length, 3, 'each skip is a note on stderr');
    t.match(
      err.filter((l) => l.startsWith('warning: ')),
      [
        /k8s\.yaml\[3\] EnvoyFilter\/default\/ef: EnvoyFilter is not applied/,
        /k8s\.yaml\[4\] AuthorizationPolicy\/default\/deny: spec: AuthorizationPolicy is not enforced/,
      ],
      'EnvoyFilter and AuthorizationPolicy are warnings',
    );
  },
);

t.test('durations in Go and protobuf forms are accepted', async (t) => {
  for (const d of ['1.5s', '500ms', '24h', '1h30m', '2m', '1s500ms', '0.5s']) {
    const r = load(t, {
      'doc.yaml': vsRoute(`
        route: [{destination: {host: reviews}}]
        timeout: ${d}
        retries: {attempts: 2, perTryTimeout: ${d}}
        fault: {delay: {fixedDelay: ${d}, percentage: {value: 0.5}}}`),
    });
    t.same(r.errors, [], d);
  }
  const r = load(t, {
    'doc.yaml': doc(
      'DestinationRule',
      'host: a\ntrafficPolicy:\n  connectionPool: {tcp: {connectTimeout: 250ms, idleTimeout: 0s}, http: {idleTimeout: 1h}}\n  outlierDetection: {interval: 1.5s, baseEjectionTime: 3m}\n  loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 0s}}}',
    ),
  });
  t.same(r.errors, [], 'zero is allowed where Istio allows it (tcp idleTimeout, cookie ttl)');
});

t.test('presence header matches are accepted', async (t) => {
  const r = load(t, {
    'doc.yaml': vsRoute(`
      match:
      - headers: {x-canary: {regex: "*"}, x-debug: {}}
        withoutHeaders: {x-skip: {regex: "*"}, x-other: }
        queryParams: {preview: {}, "v": {regex: "*"}}
        uri: {prefix: ""}
      route: [{destination: {host: reviews}}]`),
  });
  t.same(r.errors, []);
  t.equal(r.resources, 1);
});

t.test('hosts "*" is accepted on a gateway-only virtual service', async (t) => {
  const r = load(t, {
    'doc.yaml': doc(
      'VirtualService',
      'hosts: ["*"]\ngateways: [bookinfo-gateway, istio-system/other]\nhttp:\n- route: [{destination: {host: productpage, port: {number: 9080}}}]',
    ),
  });
  t.same(r.errors, []);
});

t.test('valid Istio config that an over-strict validator used to reject', async (t) => {
  const cases: [string, string][] = [
    [
      'ISTIO_MUTUAL with sni (egress gateway TLS origination)',
      doc(
        'DestinationRule',
        'host: istio-egressgateway.istio-system.svc.cluster.local\nsubsets:\n- name: cnn\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: ISTIO_MUTUAL, sni: edition.cnn.com}',
      ),
    ],
    [
      'redirect prefixRewrite with a match that has no uri',
      vsRoute(`
        match: [{headers: {x-old: {exact: "1"}}}]
        redirect: {prefixRewrite: /v2}`),
    ],
    [
      'redirect prefixRewrite without any match',
      vsRoute('redirect: {prefixRewrite: /v2, authority: new.example.com}'),
    ],
    [
      'CORS allowMethods "*" and allowHeaders "*"',
      vsRoute(`
        route: [{destination: {host: reviews}}]
        corsPolicy: {allowOrigins: [{regex: "https://.*\\\\.example\\\\.com"}], allowMethods: ["*"], allowHeaders: ["*"], maxAge: 24h}`),
    ],
    [
      'warmup aggression below 1',
      doc(
        'DestinationRule',
        'host: a\ntrafficPolicy:\n  loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 30s, aggression: 0.5}}',
      ),
    ],
    [
      'wildcard host with a dash prefix',
      doc(
        'VirtualService',
        'hosts: ["*-api.example.com"]\ngateways: [gw]\nhttp:\n- route: [{destination: {host: a}}]',
      ),
    ],
    [
      'root route that delegates',
      doc(
        'VirtualService',
        'hosts: [a.example.com]\ngateways: [gw]\nhttp:\n- match: [{uri: {prefix: /r}}]\n  delegate: {name: reviews, namespace: shop}',
      ),
    ],
    [
      'delegate virtual service (no hosts)',
      doc(
        'VirtualService',
        'http:\n- match: [{uri: {prefix: /r/v1}}]\n  route: [{destination: {host: reviews}}]',
      ),
    ],
    ['a single destination with weight 0', vsRoute('route: [{destination: {host: reviews}, weight: 0}]')],
    [
      'authority rewrite through request headers',
      vsRoute(`
        route: [{destination: {host: reviews}, headers: {request: {set: {":authority": new.example.com}}}}]
        headers: {request: {add: {x-a: "1"}, remove: [x-b]}, response: {set: {x-c: "%HOSTNAME%"}}}`),
    ],
    [
      'gateway TLS with tlsCertificates and httpsRedirect on HTTP',
      doc(
        'Gateway',
        'servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ["*.example.com"]\n  tls:\n    mode: SIMPLE\n    tlsCertificates: [{serverCertificate: /rsa.pem, privateKey: /rsa.key}]\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [./www.example.com, 10.0.0.1]\n  tls: {httpsRedirect: true}',
      ),
    ],
    [
      'service entry: STATIC with a workload selector, unix endpoint, DNS with FQDN endpoints',
      [
        doc(
          'ServiceEntry',
          'hosts: [vm.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\nworkloadSelector: {labels: {app: vm}}',
          { name: 'a' },
        ),
        doc(
          'ServiceEntry',
          'hosts: [uds.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC\nendpoints: [{address: "unix:///var/run/app.sock"}]',
          { name: 'b' },
        ),
        doc(
          'ServiceEntry',
          'hosts: [db.example.com]\nports: [{number: 5432, name: tcp-pg, protocol: TCP}]\nresolution: DNS\nendpoints: [{address: db1.internal, ports: {tcp-pg: 6432}}]',
          { name: 'c' },
        ),
      ].join('---\n'),
    ],
    [
      'sidecar with exclusions and a port-less last listener',
      doc(
        'Sidecar',
        'ingress:\n- port: {number: 9080, name: http, protocol: HTTP}\n  defaultEndpoint: 127.0.0.1:8080\negress:\n- port: {number: 3306, name: mysql, protocol: MYSQL}\n  hosts: [~/*]\n- hosts: ["./*", istio-system/*, "~prod/*.internal.example.com"]\noutboundTrafficPolicy: {mode: REGISTRY_ONLY}',
      ),
    ],
    [
      'a long name without dots (names are DNS subdomains, not labels)',
      doc('VirtualService', 'hosts: [a]\nhttp:\n- route: [{destination: {host: a}}]', {
        name: 'route-outbound-traffic-to-external-app-via-external-forward-proxy-v2',
      }),
    ],
    [
      'IPv6 and CIDR addresses',
      doc(
        'ServiceEntry',
        'hosts: [v6.example.com]\naddresses: ["2001:db8::1", 10.0.0.0/8]\nports: [{number: 443, name: tls, protocol: TLS}]\nresolution: NONE',
      ),
    ],
  ];
  for (const [name, yaml] of cases) {
    const r = load(t, { 'doc.yaml': yaml });
    t.same(r.errors, [], name);
    t.same(
      r.warnings.filter((w) => w.includes('unknown field')),
      [],
      `${name}: no unknown fields`,
    );
  }
});

t.test('questionable but valid Istio config loads with a warning', async (t) => {
  const cases: [string, string, Expect[]][] = [
    [
      'STATIC without endpoints or selector',
      doc(
        'ServiceEntry',
        'hosts: [a.example.com]\nports: [{number: 80, name: http, protocol: HTTP}]\nresolution: STATIC',
      ),
      [[`${SE}: spec.endpoints`, 'resolution STATIC with no endpoints and no workloadSelector']],
    ],
    [
      'consistent hash without a key',
      doc(
        'DestinationRule',
        'host: a\ntrafficPolicy: {loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 2048}}}}',
      ),
      [[`${DR}: spec.trafficPolicy.loadBalancer.consistentHash`, 'no hash key']],
    ],
    [
      'IP address host on a mesh virtual service',
      doc('VirtualService', 'hosts: [10.1.2.3]\nhttp:\n- route: [{destination: {host: a}}]'),
      [
        [
          `${VS}: spec.hosts[0]`,
          'IP address hosts are only meaningful for virtual services bound to gateways',
        ],
      ],
    ],
    [
      'abort without a status',
      vsRoute(`
        route: [{destination: {host: reviews}}]
        fault: {abort: {percentage: {value: 10}}}`),
      [[`${VS}: spec.http[0].fault.abort`, 'abort has no httpStatus or grpcStatus']],
    ],
    [
      'two port-level settings for one port',
      doc(
        'DestinationRule',
        'host: a\ntrafficPolicy:\n  portLevelSettings:\n  - {port: {number: 80}, loadBalancer: {simple: RANDOM}}\n  - {port: {number: 80}, loadBalancer: {simple: ROUND_ROBIN}}',
      ),
      [[`${DR}: spec.trafficPolicy.portLevelSettings[1].port.number`, 'port 80 already has settings']],
    ],
  ];
  for (const [name, yaml, warnings] of cases) {
    t.test(name, async (t) => {
      const r = load(t, { 'doc.yaml': yaml });
      t.same(r.errors, []);
      t.ok(r.resources >= 1, 'the resource loads');
      assertLines(t, r.warnings, warnings);
    });
  }
});
