// DestinationRule → effective per-cluster traffic policy. Istio replaces whole components
// (loadBalancer, connectionPool, outlierDetection, tls) from DR → port level → subset → subset
// port level; it never merges field by field (ISTIO pilot/pkg/model/destination_rule.go MergeTrafficPolicy).

import { parseDuration } from '../duration.js';
import { expandHost, hostCovers } from '../names.js';
import type {
  ConnectionPoolConfig,
  HashPolicy,
  LbPolicyConfig,
  OutlierDetectionConfig,
} from '../snapshot.js';
import type {
  ClientTLSSettings,
  ConnectionPoolSettings,
  DestinationRuleSpec,
  LoadBalancerSettings,
  OutlierDetection,
  Resource,
  Subset,
  TrafficPolicy,
} from '../types.js';

const MAX = 2 ** 32 - 1;

/** The DestinationRules for one host in one namespace, merged as Istio does (first subset name,
 *  first top-level policy win). */
export interface MergedRule {
  ref: string;
  trafficPolicy?: TrafficPolicy;
  subsets: Subset[];
}

const ROOT_NAMESPACE = 'istio-system';

/**
 * DestinationRule lookup as Istio's PushContext.destinationRule: the proxy's namespace, then the
 * service's namespace, then the root namespace (a proxy in the root namespace starts with the
 * service's). The first namespace with a rule for the host (exact, else the longest wildcard)
 * wins; rules of different namespaces are never merged, and other namespaces are not consulted.
 */
export function buildRuleIndex(
  rules: Resource<'DestinationRule'>[],
  proxyNamespace: string,
): (host: string, serviceNamespace: string) => MergedRule | undefined {
  const byNs = new Map<string, Map<string, Resource<'DestinationRule'>[]>>();
  for (const r of rules) {
    const h = expandHost(r.spec.host, r.namespace);
    const hosts = byNs.get(r.namespace) ?? new Map<string, Resource<'DestinationRule'>[]>();
    byNs.set(r.namespace, hosts);
    hosts.set(h, [...(hosts.get(h) ?? []), r]);
  }
  const index = new Map<string, { exact: Map<string, MergedRule>; wildcards: [string, MergedRule][] }>();
  for (const [ns, hosts] of byNs) {
    const exact = new Map<string, MergedRule>();
    for (const [h, list] of hosts) {
      const subsets: Subset[] = [];
      const seen = new Set<string>();
      let tp: TrafficPolicy | undefined;
      for (const r of list) {
        const spec: DestinationRuleSpec = r.spec;
        if (!tp && spec.trafficPolicy) tp = spec.trafficPolicy;
        for (const s of spec.subsets ?? [])
          if (!seen.has(s.name)) {
            seen.add(s.name);
            subsets.push(s);
          }
      }
      const first = list[0] as Resource<'DestinationRule'>;
      exact.set(h, {
        ref: `${first.namespace}/${first.name}`,
        subsets,
        ...(tp ? { trafficPolicy: tp } : {}),
      });
    }
    const wildcards = [...exact].filter(([h]) => h.startsWith('*')).sort(([a], [b]) => b.length - a.length);
    index.set(ns, { exact, wildcards });
  }
  return (host: string, serviceNamespace: string) => {
    const order =
      proxyNamespace === ROOT_NAMESPACE
        ? [serviceNamespace, ROOT_NAMESPACE]
        : [proxyNamespace, serviceNamespace, ROOT_NAMESPACE];
    for (const ns of order) {
      const i = index.get(ns);
      if (!i) continue;
      const exact = i.exact.get(host);
      if (exact) return exact;
      for (const [w, rule] of i.wildcards) if (hostCovers(w, host)) return rule;
    }
    return undefined;
  };
}

interface Components {
  loadBalancer?: LoadBalancerSettings | undefined;
  connectionPool?: ConnectionPoolSettings | undefined;
  outlierDetection?: OutlierDetection | undefined;
  tls?: ClientTLSSettings | undefined;
}

function applyPortLevel(base: Components, tp: TrafficPolicy | undefined, port: number): Components {
  const pl = tp?.portLevelSettings?.find((p) => p.port?.number === port);
  if (!pl) return base;
  // Port-level settings replace all four components; unset ones fall back to defaults.
  return {
    loadBalancer: pl.loadBalancer,
    connectionPool: pl.connectionPool,
    outlierDetection: pl.outlierDetection,
    tls: pl.tls,
  };
}

/** The effective components for (rule, subset, port). */
export function effectivePolicy(
  rule: MergedRule | undefined,
  subset: Subset | undefined,
  port: number,
): Components {
  const tp = rule?.trafficPolicy;
  let c: Components = applyPortLevel(
    {
      loadBalancer: tp?.loadBalancer,
      connectionPool: tp?.connectionPool,
      outlierDetection: tp?.outlierDetection,
      tls: tp?.tls,
    },
    tp,
    port,
  );
  const stp = subset?.trafficPolicy;
  if (stp) {
    c = {
      loadBalancer: stp.loadBalancer ?? c.loadBalancer,
      connectionPool: stp.connectionPool ?? c.connectionPool,
      outlierDetection: stp.outlierDetection ?? c.outlierDetection,
      tls: stp.tls ?? c.tls,
    };
    c = applyPortLevel(c, stp, port);
  }
  return c;
}

export function lbPolicy(lb: LoadBalancerSettings | undefined): {
  lb: LbPolicyConfig;
  hashPolicy?: HashPolicy;
} {
  const ch = lb?.consistentHash;
  if (ch) {
    let hashPolicy: HashPolicy | undefined;
    if (ch.httpHeaderName) hashPolicy = { kind: 'header', name: ch.httpHeaderName.toLowerCase() };
    else if (ch.httpCookie) {
      const ttl = ch.httpCookie.ttl === undefined ? undefined : parseDuration(ch.httpCookie.ttl);
      hashPolicy = {
        kind: 'cookie',
        name: ch.httpCookie.name,
        ...(ch.httpCookie.path ? { path: ch.httpCookie.path } : {}),
        ...(ttl !== undefined ? { ttlMs: ttl } : {}),
      };
    } else if (ch.useSourceIp) hashPolicy = { kind: 'source_ip' };
    else if (ch.httpQueryParameterName) hashPolicy = { kind: 'query', name: ch.httpQueryParameterName };
    const lbc: LbPolicyConfig = ch.maglev
      ? { kind: 'MAGLEV', tableSize: ch.maglev.tableSize || 65537 }
      : { kind: 'RING_HASH', minimumRingSize: ch.ringHash?.minimumRingSize || ch.minimumRingSize || 1024 };
    return hashPolicy ? { lb: lbc, hashPolicy } : { lb: lbc };
  }
  switch (lb?.simple) {
    case 'ROUND_ROBIN':
      return { lb: { kind: 'ROUND_ROBIN' } };
    case 'RANDOM':
      return { lb: { kind: 'RANDOM' } };
    case 'PASSTHROUGH':
      return { lb: { kind: 'PASSTHROUGH' } };
    default:
      // UNSPECIFIED, LEAST_CONN (deprecated alias) and LEAST_REQUEST: Istio's default since 1.14.
      return { lb: { kind: 'LEAST_REQUEST' } };
  }
}

const ms = (d: string | undefined, dflt: number) => (d === undefined ? dflt : (parseDuration(d) ?? dflt));
const n = (v: number | undefined) => (v === undefined || v <= 0 ? MAX : v);

/** Istio's defaults: every threshold 2^32-1, connect timeout 10s, idle 1h. Zero means unset. */
export function connectionPool(cp: ConnectionPoolSettings | undefined): ConnectionPoolConfig {
  return {
    maxConnections: n(cp?.tcp?.maxConnections),
    connectTimeoutMs: ms(cp?.tcp?.connectTimeout, 10_000),
    maxPendingRequests: n(cp?.http?.http1MaxPendingRequests),
    maxRequests: n(cp?.http?.http2MaxRequests),
    maxRequestsPerConnection: cp?.http?.maxRequestsPerConnection ?? 0,
    maxRetries: n(cp?.http?.maxRetries),
    idleTimeoutMs: ms(cp?.http?.idleTimeout ?? cp?.tcp?.idleTimeout, 3_600_000),
    maxConnectionDurationMs: ms(cp?.tcp?.maxConnectionDuration, 0),
    tcpKeepaliveMs: cp?.tcp?.tcpKeepalive ? ms(cp.tcp.tcpKeepalive.time, 7_200_000) : 0,
    tcpIdleTimeoutMs: ms(cp?.tcp?.idleTimeout, 3_600_000),
  };
}

export function outlierDetection(od: OutlierDetection | undefined): OutlierDetectionConfig | undefined {
  if (!od) return undefined;
  return {
    consecutive5xxErrors: od.consecutive5xxErrors ?? od.consecutiveErrors ?? 5,
    consecutiveGatewayErrors: od.consecutiveGatewayErrors ?? 0,
    consecutiveLocalOriginFailures: od.consecutiveLocalOriginFailures ?? 5,
    splitExternalLocalOriginErrors: od.splitExternalLocalOriginErrors ?? false,
    intervalMs: ms(od.interval, 10_000),
    baseEjectionTimeMs: ms(od.baseEjectionTime, 30_000),
    maxEjectionPercent: od.maxEjectionPercent ?? 10,
    minHealthPercent: od.minHealthPercent ?? 0,
  };
}
