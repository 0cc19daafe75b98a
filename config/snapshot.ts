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

export interface Listener {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly protocol: string;
  readonly kind: ListenerKind;
  readonly routes: RouteTable;
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
  readonly tls: { readonly mode: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL'; readonly sni?: string };
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
