// The compiled, frozen Snapshot: everything the data path needs, with matchers, regexes,
// weight tables and header operations built once. proxy/ reads it once per request and never
// looks anything up in the raw Istio resources.

import type { StringMap } from './types.js';

export type ProxyMode = 'router' | 'sidecar';

export interface ProxyIdentity {
  mode: ProxyMode;
  labels: StringMap;
  namespace: string;
  /** Sidecar only. */
  outboundPort?: number;
  inboundPort?: number;
  appPort?: number;
}

/** What a route matcher sees of a request. Header names are lowercase. */
export interface RequestView {
  readonly method: string;
  /** Path without the query string, normalised. */
  readonly path: string;
  /** Raw query string without `?`, or '' */
  readonly query: string;
  readonly authority: string;
  readonly scheme: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export type Matcher = (req: RequestView) => boolean;

export interface HeaderOps {
  /** [lowercase name, value] pairs. */
  readonly set: readonly (readonly [string, string])[];
  readonly add: readonly (readonly [string, string])[];
  readonly remove: readonly string[];
}

export interface CompiledHeaders {
  readonly request: HeaderOps;
  readonly response: HeaderOps;
  /** `:authority`/`host` set/add in request ops: a host rewrite (set wins over add). */
  readonly authority?: string;
}

export interface WeightedDestination {
  readonly cluster: string;
  /** Service FQDN, subset and port, for metrics and logs. */
  readonly host: string;
  readonly subset: string;
  readonly port: number;
  readonly weight: number;
  readonly headers: CompiledHeaders;
}

export interface RetryPolicy {
  /** Retries after the first attempt (0 = none). */
  readonly numRetries: number;
  readonly perTryTimeoutMs: number;
  readonly retryOn: ReadonlySet<string>;
  readonly retriableStatusCodes: ReadonlySet<number>;
  readonly backoffBaseMs: number;
  /** Prefer another host on retry (off with consistent hashing). */
  readonly retryOtherHosts: boolean;
}

export interface FaultPolicy {
  readonly delay?: { readonly ms: number; readonly percent: number };
  readonly abort?: { readonly status: number; readonly grpcStatus?: string; readonly percent: number };
}

export interface MirrorPolicy {
  readonly cluster: string;
  readonly host: string;
  readonly percent: number;
}

export interface CorsConfig {
  readonly allowOrigin: (origin: string) => boolean;
  readonly allowMethods: string;
  readonly allowHeaders: string;
  readonly exposeHeaders: string;
  readonly maxAge: string;
  readonly allowCredentials: boolean;
  readonly forwardUnmatchedPreflights: boolean;
}

export interface RewritePolicy {
  /** Replace the matched prefix (prefix match) or the whole path. */
  readonly uri?: string;
  readonly regex?: { readonly pattern: RegExp; readonly replacement: string };
  readonly authority?: string;
}

export interface RouteActionRoute {
  readonly kind: 'route';
  readonly destinations: readonly WeightedDestination[];
  readonly totalWeight: number;
}

export interface RouteActionRedirect {
  readonly kind: 'redirect';
  readonly uri?: string;
  readonly prefixRewrite?: string;
  readonly authority?: string;
  readonly scheme?: string;
  readonly port?: number;
  readonly deriveFromRequestPort: boolean;
  readonly code: number;
}

export interface RouteActionDirect {
  readonly kind: 'direct_response';
  readonly status: number;
  readonly body?: Buffer;
}

export type RouteAction = RouteActionRoute | RouteActionRedirect | RouteActionDirect;

export interface CompiledRoute {
  /** `<route.name>` (Istio's %ROUTE_NAME%), or `<vs ns>.<vs name>.<index>`. */
  readonly name: string;
  readonly virtualService: string;
  /** Match blocks, OR-ed; each is the AND of its conditions. Empty = catch-all. */
  readonly matchers: readonly Matcher[];
  /** For each match block: the uri prefix it matched on (for prefix rewrites), if a prefix match. */
  readonly matchPrefixes: readonly (string | undefined)[];
  readonly action: RouteAction;
  readonly rewrite?: RewritePolicy;
  /** 0 = no timeout. */
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  readonly fault?: FaultPolicy;
  readonly mirrors: readonly MirrorPolicy[];
  readonly cors?: CorsConfig;
  readonly headers: CompiledHeaders;
}

export interface VirtualHost {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly CompiledRoute[];
  /** Gateway `tls.httpsRedirect`: answer every request with a 301 to https. */
  readonly httpsRedirect?: boolean;
  /** Sidecar catch-all: ALLOW_ANY passthrough, or REGISTRY_ONLY 502. */
  readonly fallback?: 'passthrough' | 'block';
}

export interface RouteTable {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHost[];
  /** Envoy's domain match: exact, then suffix wildcards (longest first), prefix wildcards, `*`. */
  readonly lookup: (host: string) => VirtualHost | undefined;
}

export type ListenerKind = 'gateway' | 'outbound' | 'inbound';

/**
 * How a connection's first bytes pick a filter chain (Envoy's `filter_chain_match`): the
 * transport they show (a TLS ClientHello, or anything else) and, for TLS, the SNI.
 */
export interface FilterChainMatch {
  /** `tls`: the connection opens with a TLS ClientHello; `raw_buffer`: anything else. */
  readonly transportProtocol: 'raw_buffer' | 'tls';
  /**
   * SNI names, lowercase: exact (`a.example.com`) or wildcard (`*.example.com`, any depth, not
   * the bare parent). Empty: no SNI condition (also taken by a hello without SNI).
   */
  readonly serverNames: readonly string[];
}

/**
 * PEM material a TLS context is built from, resolved by the agent (config/credentials.ts) from a
 * Secret document, a `--credentials-dir` entry or files, and validated there: a context built
 * from it does not throw. `error` set: unusable (a server chain refuses its connections, a
 * cluster answers 503), with the reason that was reported.
 */
export interface TlsMaterial {
  /** Where it came from: `kubernetes://ns/name`, `file:<cert>~<key>`, ... */
  readonly source: string;
  readonly cert?: string;
  readonly key?: string;
  /** CA bundle (client certificates for a server; upstream certificates for a cluster). */
  readonly ca?: string;
  readonly crl?: string;
  readonly error?: string;
  /** Short hash of the contents: contexts and pools are keyed by it. */
  readonly hash: string;
}

/** Server-side TLS of a terminating chain: a Gateway server's `tls`, with its material. */
export interface ServerTls {
  readonly mode: 'SIMPLE' | 'MUTUAL' | 'OPTIONAL_MUTUAL' | 'ISTIO_MUTUAL';
  readonly credentialName?: string;
  readonly serverCertificate?: string;
  readonly privateKey?: string;
  readonly caCertificates?: string;
  /** Node's names: `TLSv1`, `TLSv1.1`, `TLSv1.2`, `TLSv1.3`; undefined = Node/Istio default. */
  readonly minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  readonly maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list (TLS ≤ 1.2 suites, `:`-joined; unknown names dropped), if set. */
  readonly ciphers?: string;
  /** A client certificate must carry one of these SANs (exact). */
  readonly subjectAltNames: readonly string[];
  /** base64 SHA-256 of the client certificate's SPKI. */
  readonly verifyCertificateSpki: readonly string[];
  /** lowercase hex SHA-256 of the client certificate's DER, without colons. */
  readonly verifyCertificateHash: readonly string[];
  /** Undefined only for ISTIO_MUTUAL (the workload identity, not served yet). */
  readonly material?: TlsMaterial;
}

/** Upstream TLS of a cluster (DestinationRule `tls`): origination. */
export interface ClientTls {
  readonly mode: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  /** Explicit SNI; undefined: the request's authority without port (none for an IP). */
  readonly sni?: string;
  /** Exact SANs the upstream certificate must carry; empty: see `verifyHostname`. */
  readonly subjectAltNames: readonly string[];
  readonly insecureSkipVerify: boolean;
  readonly credentialName?: string;
  /** CA (absent: the system roots), and cert/key for MUTUAL. Undefined for DISABLE. */
  readonly material?: TlsMaterial;
  /** Identical settings share upstream connections: pools are keyed by this. */
  readonly key: string;
}

/** An L4 route: where a TCP or passed-through TLS connection goes (VirtualService `tcp:`/`tls:`). */
export interface L4Route {
  /** `<vs ns>.<vs name>.<tcp|tls>.<index>`. */
  readonly name: string;
  readonly virtualService: string;
  readonly destinations: readonly Omit<WeightedDestination, 'headers'>[];
  readonly totalWeight: number;
}

/** Plaintext HTTP (HTTP/1.1 today; h2c later), routed by the listener's route table. */
export interface HttpFilterChain {
  readonly transport: 'http';
  readonly name: string;
  readonly match: FilterChainMatch & { readonly transportProtocol: 'raw_buffer' };
  readonly routes: RouteTable;
}

/** TLS terminated here (a Gateway HTTPS server, chosen by SNI), then HTTP by its own route table. */
export interface HttpsFilterChain {
  readonly transport: 'https';
  readonly name: string;
  readonly match: FilterChainMatch & { readonly transportProtocol: 'tls' };
  readonly tls: ServerTls;
  readonly routes: RouteTable;
}

/** TLS passed through untouched, chosen by SNI (a VirtualService `tls:` match block). */
export interface TlsPassthroughFilterChain {
  readonly transport: 'tls_passthrough';
  readonly name: string;
  readonly match: FilterChainMatch & { readonly transportProtocol: 'tls' };
  readonly route: L4Route;
}

/**
 * A TCP proxy (a Gateway TCP server, or a TLS server that terminates first: `tls` set, chosen by
 * SNI) to the first matching VirtualService `tcp:` route.
 */
export interface TcpFilterChain {
  readonly transport: 'tcp';
  readonly name: string;
  readonly match: FilterChainMatch;
  readonly tls?: ServerTls;
  readonly route: L4Route;
}

export type FilterChain = HttpFilterChain | HttpsFilterChain | TlsPassthroughFilterChain | TcpFilterChain;
export type ChainTransport = FilterChain['transport'];

export interface Listener {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: string;
  readonly kind: ListenerKind;
  /**
   * The route table of the plaintext HTTP chain (`filterChains` holds the same table in its
   * `http` chain): what the request path reads. Empty for a listener with no `http` chain.
   */
  readonly routes: RouteTable;
  /**
   * What this port serves, one chain per transport/SNI: a connection's first bytes pick one
   * (proxy/listener-dispatch.ts); none matching closes it. Every listener compiled into a
   * snapshot today has exactly one `http` chain.
   */
  readonly filterChains: readonly FilterChain[];
  /** Gateway resources that contributed servers, as `ns/name`. */
  readonly gateways: readonly string[];
}

export type HashPolicy =
  | { readonly kind: 'header'; readonly name: string }
  | {
      readonly kind: 'cookie';
      readonly name: string;
      readonly path?: string;
      /** Undefined: hash only, never generate. 0: session cookie. */
      readonly ttlMs?: number;
    }
  | { readonly kind: 'source_ip' }
  | { readonly kind: 'query'; readonly name: string };

export type LbPolicyConfig =
  | { readonly kind: 'ROUND_ROBIN' }
  | { readonly kind: 'LEAST_REQUEST' }
  | { readonly kind: 'RANDOM' }
  | { readonly kind: 'PASSTHROUGH' }
  | { readonly kind: 'RING_HASH'; readonly minimumRingSize: number }
  | { readonly kind: 'MAGLEV'; readonly tableSize: number };

export interface ConnectionPoolConfig {
  readonly maxConnections: number;
  readonly connectTimeoutMs: number;
  readonly maxPendingRequests: number;
  readonly maxRequests: number;
  readonly maxRequestsPerConnection: number;
  readonly maxRetries: number;
  readonly idleTimeoutMs: number;
  readonly maxConnectionDurationMs: number;
  /** TCP keepalive probe idle time (tcpKeepalive.time); 0 = leave the socket at the OS default (off). */
  readonly tcpKeepaliveMs: number;
  /** TCP proxying: DestinationRule `tcp.idleTimeout` (default 1 h; 0 = none). HTTP pools use idleTimeoutMs. */
  readonly tcpIdleTimeoutMs: number;
}

export interface OutlierDetectionConfig {
  readonly consecutive5xxErrors: number;
  readonly consecutiveGatewayErrors: number;
  readonly consecutiveLocalOriginFailures: number;
  readonly splitExternalLocalOriginErrors: boolean;
  readonly intervalMs: number;
  readonly baseEjectionTimeMs: number;
  readonly maxEjectionPercent: number;
  readonly minHealthPercent: number;
}

export interface ClusterEndpoint {
  /** IP, hostname (DNS resolution) or unix:// path. */
  readonly address: string;
  readonly port: number;
  readonly labels: StringMap;
  readonly weight: number;
}

export type Discovery = 'static' | 'dns' | 'original_dst';

export interface Cluster {
  /** Envoy/Istio name: `outbound|<port>|<subset>|<host>` or `inbound|<port>||`. */
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly subset: string;
  readonly serviceName: string;
  readonly serviceNamespace: string;
  readonly discovery: Discovery;
  readonly meshExternal: boolean;
  readonly endpoints: readonly ClusterEndpoint[];
  readonly lb: LbPolicyConfig;
  readonly hashPolicy?: HashPolicy;
  readonly connectionPool: ConnectionPoolConfig;
  readonly outlierDetection?: OutlierDetectionConfig;
  readonly tls: ClientTls;
  /** DestinationRule that shaped this cluster, `ns/name`, if any. */
  readonly destinationRule?: string;
}

export interface Snapshot {
  /** Content hash of the validated config and the proxy identity. */
  readonly version: string;
  readonly identity: ProxyIdentity;
  readonly listeners: readonly Listener[];
  readonly clusters: ReadonlyMap<string, Cluster>;
  /** `Kind/ns/name` of every resource compiled in. */
  readonly resources: readonly string[];
  /** Compile-time notes (e.g. a server protocol not served yet). */
  readonly warnings: readonly string[];
}
