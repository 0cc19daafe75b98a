// compile(): validated resources + the proxy's identity → one frozen Snapshot.
// Pure: no sockets, no clock, no randomness. Deterministic, so every worker compiling the same
// documents gets the same snapshot and the same version hash.

import { createHash } from 'node:crypto';
import { type CredentialStore, storeHash } from '../credentials.js';
import { expandHost } from '../names.js';
import type { Cluster, Listener, ProxyIdentity, Snapshot } from '../snapshot.js';
import type { AnyResource, Destination, IstioKind, Resource } from '../types.js';
import { buildClusters, clusterName, inboundCluster } from './clusters.js';
import { buildGatewayListeners } from './gateway-listeners.js';
import { buildRegistry } from './registry.js';
import { buildSidecarListeners } from './sidecar-listeners.js';
import { buildRuleIndex } from './traffic-policy.js';

function ofKind<K extends IstioKind>(resources: AnyResource[], kind: K): Resource<K>[] {
  return resources.filter((r) => r.kind === kind) as unknown as Resource<K>[];
}

/** JSON with sorted object keys, so the hash ignores key order, comments and file layout. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/** Content hash of the config as it affects this proxy: resources (not their files) + identity. */
export function configHash(resources: AnyResource[], identity: ProxyIdentity): string {
  const items = resources
    .map((r) => canonical({ kind: r.kind, ns: r.namespace, name: r.name, labels: r.labels, spec: r.spec }))
    .sort();
  return createHash('sha256')
    .update(canonical(identity))
    .update('\n')
    .update(items.join('\n'))
    .digest('hex')
    .slice(0, 16);
}

/** The config hash, plus the credentials' when there are any (so a config without TLS keeps its hash). */
export function snapshotVersion(
  resources: AnyResource[],
  identity: ProxyIdentity,
  credentials: CredentialStore,
): string {
  const base = configHash(resources, identity);
  if (Object.keys(credentials).length === 0) return base;
  return createHash('sha256').update(base).update(storeHash(credentials)).digest('hex').slice(0, 16);
}

/** Freeze every object and array reachable from `o`, including ones a builder already froze
 *  shallowly and the values of Maps. Maps, Sets, RegExps (a global regex writes lastIndex) and
 *  Buffers stay as they are: the Snapshot types expose them read-only. */
function deepFreeze<T>(o: T, seen: WeakSet<object> = new WeakSet()): T {
  if (!o || typeof o !== 'object' || seen.has(o)) return o;
  seen.add(o);
  if (o instanceof Map) {
    for (const v of o.values()) deepFreeze(v, seen);
    return o;
  }
  if (o instanceof Set || o instanceof RegExp || ArrayBuffer.isView(o)) return o;
  Object.freeze(o);
  for (const v of Object.values(o)) deepFreeze(v, seen);
  return o;
}

/**
 * `credentials`: the TLS material the agent resolved (config/credentials.ts); its hash is part of
 * the version, so new material is a new config for every worker.
 */
export function compile(
  resources: AnyResource[],
  identity: ProxyIdentity,
  credentials: CredentialStore = {},
): Snapshot {
  const registry = buildRegistry(ofKind(resources, 'ServiceEntry'), ofKind(resources, 'WorkloadEntry'));
  const ruleFor = buildRuleIndex(ofKind(resources, 'DestinationRule'), identity.namespace);
  const clusters = buildClusters(registry, ruleFor, identity, credentials);
  const warnings: string[] = [];

  // Istio GetDestinationCluster: the destination's port, else the service's only port, else the
  // listener port (sidecars); gateways fall back to port 80 or the first port.
  const resolve = (d: Destination, vsNamespace: string, listenerPort?: number) => {
    const host = expandHost(d.host, vsNamespace);
    const svc = registry.lookup(host);
    const port =
      d.port?.number ??
      (svc && svc.ports.length === 1 ? svc.ports[0]?.number : undefined) ??
      listenerPort ??
      svc?.ports.find((p) => p.number === 80)?.number ??
      svc?.ports[0]?.number ??
      80;
    const subset = d.subset ?? '';
    const clusterHost = svc?.host ?? host;
    return { cluster: clusterName(port, subset, clusterHost), host, subset, port };
  };

  const virtualServices = ofKind(resources, 'VirtualService');
  let listeners: Listener[];
  if (identity.mode === 'router') {
    listeners = buildGatewayListeners({
      gateways: ofKind(resources, 'Gateway'),
      virtualServices,
      identity,
      resolve,
      warnings,
      credentials,
    });
  } else {
    listeners = buildSidecarListeners({
      registry,
      virtualServices,
      sidecars: ofKind(resources, 'Sidecar'),
      identity,
      resolve,
    });
    for (const l of listeners) {
      if (l.kind !== 'inbound') continue;
      const port = l.routes.virtualHosts[0]?.routes[0]?.action;
      if (port?.kind === 'route' && port.destinations[0] && !clusters.has(port.destinations[0].cluster)) {
        const c: Cluster = inboundCluster(port.destinations[0].port, identity);
        clusters.set(c.name, c);
      }
    }
  }
  const snapshot: Snapshot = {
    version: snapshotVersion(resources, identity, credentials),
    identity: { ...identity, labels: { ...identity.labels } },
    listeners,
    clusters,
    resources: resources.map((r) => `${r.kind}/${r.namespace}/${r.name}`).sort(),
    warnings,
  };
  return deepFreeze(snapshot);
}
