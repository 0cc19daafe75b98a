// Clusters: one per service host × port × (no subset + each DestinationRule subset), named as
// Istio names them (`outbound|9080|v1|reviews.default.svc.cluster.local`), each with its
// endpoints and its effective traffic policy.

import type { CredentialStore } from '../credentials.js';
import { labelsMatch } from '../names.js';
import type { Cluster, ClusterEndpoint, Discovery, ProxyIdentity } from '../snapshot.js';
import type { Subset } from '../types.js';
import { endpointPort, type Registry, type Service, type ServicePortInfo } from './registry.js';
import { compileClientTls } from './tls-settings.js';
import {
  connectionPool,
  effectivePolicy,
  lbPolicy,
  type MergedRule,
  outlierDetection,
} from './traffic-policy.js';

export function clusterName(port: number, subset: string, host: string): string {
  return `outbound|${port}|${subset}|${host}`;
}

interface ClusterCredentials {
  store: CredentialStore;
  namespace: string;
}

function discovery(svc: Service): Discovery {
  if (svc.resolution === 'NONE') return 'original_dst';
  if (svc.resolution === 'STATIC') return 'static';
  return 'dns';
}

function buildCluster(
  svc: Service,
  port: ServicePortInfo,
  subset: Subset | undefined,
  rule: MergedRule | undefined,
  creds: ClusterCredentials,
): Cluster {
  const disc = discovery(svc);
  let endpoints: ClusterEndpoint[];
  if (disc === 'dns' && svc.endpoints.length === 0 && !svc.host.startsWith('*')) {
    endpoints = [{ address: svc.host, port: port.targetPort ?? port.number, labels: {}, weight: 1 }];
  } else {
    endpoints = svc.endpoints
      .filter((e) => labelsMatch(subset?.labels, e.labels))
      .map((e) => ({ address: e.address, port: endpointPort(e, port), labels: e.labels, weight: e.weight }));
  }
  const pol = effectivePolicy(rule, subset, port.number);
  const { lb, hashPolicy } = lbPolicy(pol.loadBalancer);
  const od = outlierDetection(pol.outlierDetection);
  return Object.freeze({
    name: clusterName(port.number, subset?.name ?? '', svc.host),
    host: svc.host,
    port: port.number,
    subset: subset?.name ?? '',
    serviceName: svc.name,
    serviceNamespace: svc.namespace,
    discovery: disc,
    meshExternal: svc.location === 'MESH_EXTERNAL',
    endpoints: Object.freeze(endpoints),
    lb,
    connectionPool: connectionPool(pol.connectionPool),
    tls: compileClientTls(pol.tls, creds.store, creds.namespace, svc.subjectAltNames),
    ...(hashPolicy ? { hashPolicy } : {}),
    ...(od ? { outlierDetection: od } : {}),
    ...(rule ? { destinationRule: rule.ref } : {}),
  });
}

export function buildClusters(
  registry: Registry,
  ruleFor: (host: string, serviceNamespace: string) => MergedRule | undefined,
  identity: ProxyIdentity,
  store: CredentialStore = {},
): Map<string, Cluster> {
  const creds: ClusterCredentials = { store, namespace: identity.namespace };
  const out = new Map<string, Cluster>();
  for (const svc of registry.services.values()) {
    const rule = ruleFor(svc.host, svc.namespace);
    for (const port of svc.ports) {
      const base = buildCluster(svc, port, undefined, rule, creds);
      out.set(base.name, base);
      for (const s of rule?.subsets ?? []) {
        const c = buildCluster(svc, port, s, rule, creds);
        out.set(c.name, c);
      }
    }
  }
  const appPort = identity.mode === 'sidecar' ? identity.appPort : undefined;
  if (appPort) out.set(inboundClusterName(appPort), inboundCluster(appPort, identity));
  return out;
}

export function inboundClusterName(port: number): string {
  return `inbound|${port}||`;
}

export function inboundCluster(port: number, identity: ProxyIdentity, address = '127.0.0.1'): Cluster {
  return Object.freeze({
    name: inboundClusterName(port),
    host: address,
    port,
    subset: '',
    serviceName: identity.labels.app ?? 'unknown',
    serviceNamespace: identity.namespace,
    discovery: 'static' as const,
    meshExternal: false,
    endpoints: Object.freeze([{ address, port, labels: identity.labels, weight: 1 }]),
    lb: { kind: 'LEAST_REQUEST' } as const,
    connectionPool: connectionPool(undefined),
    tls: compileClientTls(undefined, {}, identity.namespace),
  });
}
