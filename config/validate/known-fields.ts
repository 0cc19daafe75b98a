// Unknown fields are warnings, as with Kubernetes' default (`Warn`) field validation for CRDs: a
// typo such as `rout:` loads (the field is ignored) but `courier validate` reports
// `spec.http[0].rout: unknown field "rout"`. The field names are those of Istio's CRD schema
// (istio/api kubernetes/customresourcedefinitions.gen.yaml, identical for v1, v1beta1 and
// v1alpha3), which are the JSON names of networking/v1alpha3/*.proto, including fields courier
// does not serve. Proto (snake_case) spellings are not in that schema (except the deprecated
// `mirror_percent`) and courier reads only the JSON names, so they are reported with the JSON name.

import type { IstioKind } from '../types.js';
import { type Checker, isObj, keyPath } from './checker.js';

/** A map whose keys are data (labels, header names, port names); its values have `value`'s shape. */
class MapOf {
  constructor(readonly value: Shape) {}
}

/** `S`: a scalar, a list of scalars, or a value whose inside is not checked. */
const S = 0;
/** An object (or a list of objects) with exactly these fields. */
interface Fields {
  readonly [name: string]: Shape;
}
type Shape = typeof S | Fields | MapOf;

const mapOf = (value: Shape): MapOf => new MapOf(value);
/** A map of scalars: keys are not checked. */
const MAP = mapOf(S);

// ---------------------------------------------------------------- shared messages

const PERCENT: Fields = { value: S };
const PORT_SELECTOR: Fields = { number: S };
const DESTINATION: Fields = { host: S, subset: S, port: PORT_SELECTOR };
const PORT: Fields = { number: S, protocol: S, name: S, targetPort: S };
const STRING_MATCH: Fields = { exact: S, prefix: S, regex: S };
const HEADER_OPERATIONS: Fields = { set: MAP, add: MAP, remove: S };
const HEADERS: Fields = { request: HEADER_OPERATIONS, response: HEADER_OPERATIONS };

const CONNECTION_POOL: Fields = {
  tcp: {
    maxConnections: S,
    connectTimeout: S,
    tcpKeepalive: { probes: S, time: S, interval: S },
    maxConnectionDuration: S,
    idleTimeout: S,
  },
  http: {
    http1MaxPendingRequests: S,
    http2MaxRequests: S,
    maxRequestsPerConnection: S,
    maxRetries: S,
    idleTimeout: S,
    h2UpgradePolicy: S,
    useClientProtocol: S,
    maxConcurrentStreams: S,
    http2KeepAlive: { interval: S, timeout: S },
  },
};

const FAILOVER: Fields = { from: S, to: S };
const LOAD_BALANCER: Fields = {
  simple: S,
  consistentHash: {
    httpHeaderName: S,
    httpCookie: { name: S, path: S, ttl: S, attributes: { name: S, value: S } },
    useSourceIp: S,
    httpQueryParameterName: S,
    ringHash: { minimumRingSize: S },
    maglev: { tableSize: S },
    minimumRingSize: S,
  },
  localityLbSetting: {
    distribute: { from: S, to: MAP },
    failover: FAILOVER,
    failoverPriority: S,
    enabled: S,
  },
  zoneAwareLbSetting: { enabled: S, failover: FAILOVER, failoverPriority: S, minClusterSize: S },
  warmupDurationSecs: S,
  warmup: { duration: S, minimumPercent: S, aggression: S },
};

const OUTLIER_DETECTION: Fields = {
  splitExternalLocalOriginErrors: S,
  consecutiveLocalOriginFailures: S,
  consecutiveGatewayErrors: S,
  consecutive5xxErrors: S,
  interval: S,
  baseEjectionTime: S,
  maxEjectionPercent: S,
  minHealthPercent: S,
  consecutiveErrors: S,
  outlierDetectionHttpErrorCodes: S,
};

const CLIENT_TLS: Fields = {
  mode: S,
  clientCertificate: S,
  privateKey: S,
  caCertificates: S,
  credentialName: S,
  subjectAltNames: S,
  sni: S,
  insecureSkipVerify: S,
  caCrl: S,
};

const TRAFFIC_POLICY: Fields = {
  loadBalancer: LOAD_BALANCER,
  connectionPool: CONNECTION_POOL,
  outlierDetection: OUTLIER_DETECTION,
  tls: CLIENT_TLS,
  portLevelSettings: {
    port: PORT_SELECTOR,
    loadBalancer: LOAD_BALANCER,
    connectionPool: CONNECTION_POOL,
    outlierDetection: OUTLIER_DETECTION,
    tls: CLIENT_TLS,
  },
  tunnel: { protocol: S, targetHost: S, targetPort: S },
  proxyProtocol: { version: S },
  retryBudget: { percent: S, minRetryConcurrency: S, budgetInterval: S },
};

const SERVER_TLS: Fields = {
  httpsRedirect: S,
  mode: S,
  serverCertificate: S,
  privateKey: S,
  caCertificates: S,
  caCrl: S,
  credentialName: S,
  credentialNames: S,
  tlsCertificates: { serverCertificate: S, privateKey: S, caCertificates: S },
  subjectAltNames: S,
  verifyCertificateSpki: S,
  verifyCertificateHash: S,
  minProtocolVersion: S,
  maxProtocolVersion: S,
  cipherSuites: S,
  ecdhCurves: S,
  caCertCredentialName: S,
  insecureSkipVerify: S,
};

const WORKLOAD_ENTRY: Fields = {
  address: S,
  ports: MAP,
  labels: MAP,
  network: S,
  locality: S,
  weight: S,
  serviceAccount: S,
};

// ---------------------------------------------------------------- the kinds

const HTTP_MATCH: Fields = {
  name: S,
  uri: STRING_MATCH,
  scheme: STRING_MATCH,
  method: STRING_MATCH,
  authority: STRING_MATCH,
  headers: mapOf(STRING_MATCH),
  port: S,
  sourceLabels: MAP,
  gateways: S,
  queryParams: mapOf(STRING_MATCH),
  ignoreUriCase: S,
  withoutHeaders: mapOf(STRING_MATCH),
  sourceNamespace: S,
  statPrefix: S,
};

const HTTP_ROUTE: Fields = {
  name: S,
  match: HTTP_MATCH,
  route: { destination: DESTINATION, weight: S, headers: HEADERS },
  redirect: {
    uri: S,
    authority: S,
    port: S,
    derivePort: S,
    scheme: S,
    redirectCode: S,
    prefixRewrite: S,
  },
  directResponse: { status: S, body: { string: S, bytes: S } },
  delegate: { name: S, namespace: S },
  rewrite: { uri: S, authority: S, uriRegexRewrite: { match: S, rewrite: S } },
  timeout: S,
  retries: {
    attempts: S,
    perTryTimeout: S,
    retryOn: S,
    retryRemoteLocalities: S,
    retryIgnorePreviousHosts: S,
    backoff: S,
  },
  fault: {
    delay: { fixedDelay: S, exponentialDelay: S, percentage: PERCENT, percent: S },
    abort: { httpStatus: S, grpcStatus: S, http2Error: S, percentage: PERCENT },
  },
  mirror: DESTINATION,
  mirrors: { destination: DESTINATION, percentage: PERCENT },
  mirrorPercent: S,
  mirror_percent: S, // the proto name; the CRD lists it too (kubebuilder altName)
  mirrorPercentage: PERCENT,
  corsPolicy: {
    allowOrigin: S,
    allowOrigins: STRING_MATCH,
    allowMethods: S,
    allowHeaders: S,
    exposeHeaders: S,
    maxAge: S,
    allowCredentials: S,
    unmatchedPreflights: S,
  },
  headers: HEADERS,
};

const L4_ROUTE: Fields = { destination: DESTINATION, weight: S };
const L4_MATCH: Fields = {
  destinationSubnets: S,
  port: S,
  sourceLabels: MAP,
  gateways: S,
  sourceNamespace: S,
};

// security.istio.io (istio/api security/v1beta1/*.proto): the fields that select workloads and say
// what a policy does; the insides of rules and JWT rules are not checked.
const SELECTOR: Fields = { matchLabels: MAP };
const TARGET_REF: Fields = { group: S, kind: S, name: S, namespace: S };

const SPEC: Record<IstioKind, Fields> = {
  VirtualService: {
    hosts: S,
    gateways: S,
    http: HTTP_ROUTE,
    tls: { match: { ...L4_MATCH, sniHosts: S }, route: L4_ROUTE },
    tcp: { match: { ...L4_MATCH, sourceSubnet: S }, route: L4_ROUTE },
    exportTo: S,
  },
  DestinationRule: {
    host: S,
    trafficPolicy: TRAFFIC_POLICY,
    subsets: { name: S, labels: MAP, trafficPolicy: TRAFFIC_POLICY },
    exportTo: S,
    workloadSelector: { matchLabels: MAP },
  },
  Gateway: {
    servers: { port: PORT, bind: S, hosts: S, tls: SERVER_TLS, defaultEndpoint: S, name: S },
    selector: MAP,
  },
  ServiceEntry: {
    hosts: S,
    addresses: S,
    ports: PORT,
    location: S,
    resolution: S,
    endpoints: WORKLOAD_ENTRY,
    workloadSelector: { labels: MAP },
    exportTo: S,
    subjectAltNames: S,
  },
  WorkloadEntry: WORKLOAD_ENTRY,
  Sidecar: {
    workloadSelector: { labels: MAP },
    ingress: {
      port: PORT,
      bind: S,
      captureMode: S,
      defaultEndpoint: S,
      tls: SERVER_TLS,
      connectionPool: CONNECTION_POOL,
    },
    egress: { port: PORT, bind: S, captureMode: S, hosts: S },
    inboundConnectionPool: CONNECTION_POOL,
    outboundTrafficPolicy: { mode: S, egressProxy: DESTINATION },
  },
  AuthorizationPolicy: {
    selector: SELECTOR,
    targetRef: TARGET_REF,
    targetRefs: TARGET_REF,
    rules: S,
    action: S,
    provider: { name: S },
  },
  PeerAuthentication: { selector: SELECTOR, mtls: { mode: S }, portLevelMtls: mapOf({ mode: S }) },
  RequestAuthentication: { selector: SELECTOR, targetRef: TARGET_REF, targetRefs: TARGET_REF, jwtRules: S },
};

/** Kubernetes ObjectMeta; managedFields and ownerReferences are the API server's, not checked inside. */
const METADATA: Fields = {
  name: S,
  generateName: S,
  namespace: S,
  selfLink: S,
  uid: S,
  resourceVersion: S,
  generation: S,
  creationTimestamp: S,
  deletionTimestamp: S,
  deletionGracePeriodSeconds: S,
  labels: MAP,
  annotations: MAP,
  ownerReferences: S,
  finalizers: S,
  managedFields: S,
};

/** The whole document of a kind; `status` is free-form (x-kubernetes-preserve-unknown-fields). */
function documentShape(kind: IstioKind): Fields {
  return { apiVersion: S, kind: S, metadata: METADATA, spec: SPEC[kind], status: S };
}

// ---------------------------------------------------------------- the walker

/** `connection_pool` -> `connectionPool`: how protobuf derives a JSON name from a proto name. */
function jsonName(protoName: string): string {
  return protoName.replace(/_([a-z0-9])/g, (_, ch: string) => ch.toUpperCase());
}

/** Edit distance counting a swap of neighbours as one edit (optimal string alignment). */
function distance(a: string, b: string): number {
  // d[i][j]: the distance between a's first i and b's first j characters.
  const d = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] as number;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) {
      let v = Math.min(
        at(i - 1, j) + 1,
        at(i, j - 1) + 1,
        at(i - 1, j - 1) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  return at(a.length, b.length);
}

/** The known field `name` most likely meant: its JSON spelling, a different case, or a close typo. */
function suggestion(name: string, fields: Fields): string | undefined {
  const camel = jsonName(name);
  if (camel !== name && Object.hasOwn(fields, camel)) return camel;
  const lower = name.toLowerCase();
  const max = name.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestD = max + 1;
  for (const f of Object.keys(fields)) {
    const d =
      f.toLowerCase() === lower ? 0 : Math.abs(f.length - name.length) > max ? max + 1 : distance(name, f);
    if (d < bestD) [best, bestD] = [f, d];
  }
  return best;
}

function walk(c: Checker, v: unknown, shape: Shape, path: string, rejected: Set<string>): void {
  if (shape === S || v === null || v === undefined) return;
  if (Array.isArray(v)) {
    v.forEach((item, i) => {
      walk(c, item, shape, `${path}[${i}]`, rejected);
    });
    return;
  }
  if (!isObj(v)) return; // a wrong type is the kind validator's error
  if (shape instanceof MapOf) {
    for (const [k, item] of Object.entries(v)) walk(c, item, shape.value, keyPath(path, k), rejected);
    return;
  }
  for (const [k, item] of Object.entries(v)) {
    const p = keyPath(path, k).replace(/^\./, '');
    const known = Object.hasOwn(shape, k) ? shape[k] : undefined;
    if (known !== undefined) walk(c, item, known, p, rejected);
    else if (!rejected.has(p)) {
      const hint = suggestion(k, shape);
      c.warn(p, `unknown field ${JSON.stringify(k)}${hint ? ` (did you mean "${hint}"?)` : ''}`);
    }
  }
}

/**
 * Warn about every field of `doc` that its kind's schema does not have, with its path
 * (`spec.http[0].rout`). Keys of map-typed fields (labels, header names, port names) are data, not
 * fields. A field the kind validator already rejected at the same path is not reported again.
 */
export function checkKnownFields(c: Checker, doc: Record<string, unknown>, kind: IstioKind): void {
  const rejected = new Set(c.errors.map((e) => e.path));
  walk(c, doc, documentShape(kind), '', rejected);
}
