// The service registry: ServiceEntries (+ WorkloadEntries picked by workloadSelector).
// One Service per (FQDN host); ports by number; endpoints carry their own port per service port.

import { expandHost, labelsMatch } from '../names.js';
import type {
  Location,
  Resolution,
  Resource,
  ServiceEntrySpec,
  StringMap,
  WorkloadEntrySpec,
} from '../types.js';

export interface ServicePortInfo {
  number: number;
  name: string;
  protocol: string;
  targetPort?: number;
}

export interface RegistryEndpoint {
  address: string;
  /** Port by service port name. */
  ports: Record<string, number>;
  labels: StringMap;
  weight: number;
}

export interface Service {
  host: string;
  namespace: string;
  /** Short name (first label), for metrics' destination_service_name. */
  name: string;
  ports: ServicePortInfo[];
  resolution: Resolution;
  location: Location;
  addresses: string[];
  endpoints: RegistryEndpoint[];
  /** The ServiceEntry that defined it, `ns/name`. */
  source: string;
  /** ServiceEntry `subjectAltNames`: the upstream SANs when a DestinationRule names none. */
  subjectAltNames: string[];
}

export interface Registry {
  services: Map<string, Service>;
  /** Find by exact FQDN, then by wildcard ServiceEntry host. */
  lookup(host: string): Service | undefined;
}

function fromWorkloadEntry(we: WorkloadEntrySpec, extraLabels: StringMap = {}): RegistryEndpoint | undefined {
  if (!we.address) return undefined;
  return {
    address: we.address,
    ports: { ...(we.ports ?? {}) },
    labels: { ...extraLabels, ...(we.labels ?? {}) },
    weight: we.weight && we.weight > 0 ? we.weight : 1,
  };
}

export function buildRegistry(
  serviceEntries: Resource<'ServiceEntry'>[],
  workloadEntries: Resource<'WorkloadEntry'>[],
): Registry {
  const services = new Map<string, Service>();
  for (const se of serviceEntries) {
    const spec: ServiceEntrySpec = se.spec;
    const ports: ServicePortInfo[] = (spec.ports ?? []).map((p) => ({
      number: p.number,
      name: p.name,
      protocol: (p.protocol ?? 'TCP').toUpperCase(),
      ...(p.targetPort ? { targetPort: p.targetPort } : {}),
    }));
    let endpoints: RegistryEndpoint[];
    if (spec.workloadSelector?.labels) {
      const sel = spec.workloadSelector.labels;
      endpoints = workloadEntries
        .filter(
          (we) =>
            we.namespace === se.namespace && labelsMatch(sel, { ...we.labels, ...(we.spec.labels ?? {}) }),
        )
        .map((we) => fromWorkloadEntry(we.spec, we.labels))
        .filter((e): e is RegistryEndpoint => e !== undefined);
    } else {
      endpoints = (spec.endpoints ?? [])
        .map((e) => fromWorkloadEntry(e))
        .filter((e): e is RegistryEndpoint => e !== undefined);
    }
    for (const rawHost of spec.hosts) {
      const host = expandHost(rawHost, se.namespace);
      if (services.has(host)) continue; // first definition wins (stable: file order)
      services.set(host, {
        host,
        namespace: se.namespace,
        name: host.split('.')[0] ?? host,
        ports,
        resolution: spec.resolution ?? 'NONE',
        location: spec.location ?? 'MESH_EXTERNAL',
        addresses: spec.addresses ?? [],
        endpoints,
        source: `${se.namespace}/${se.name}`,
        subjectAltNames: spec.subjectAltNames ?? [],
      });
    }
  }
  const wildcards = [...services.values()]
    .filter((s) => s.host.startsWith('*'))
    .sort((a, b) => b.host.length - a.host.length);
  return {
    services,
    lookup(host: string) {
      const exact = services.get(host);
      if (exact) return exact;
      for (const w of wildcards)
        if (host.endsWith(w.host.slice(1)) && host.length > w.host.length - 1) return w;
      return undefined;
    },
  };
}

/** The port an endpoint serves a service port on: its own port by name, else targetPort, else the number. */
export function endpointPort(ep: RegistryEndpoint, port: ServicePortInfo): number {
  return ep.ports[port.name] ?? port.targetPort ?? port.number;
}
