// Load balancing: a tiny interface, one file per policy, a registry from Istio's names to factories.
// An LB knows nothing of HTTP: it picks from a read-only endpoint list it was built over.

/** One upstream endpoint of a cluster. `address`/`port` are fixed; the counters are live state
 * shared with the upstream I/O and outlier detection. */
export interface Endpoint {
  readonly address: string;
  readonly port: number;
  /** `address:port` (IPv6 in brackets), used as the stable identity for hashing and stats. */
  readonly key: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Relative weight (WorkloadEntry.weight, default 1). */
  readonly weight: number;
  /** Requests in flight to this endpoint (LEAST_REQUEST reads it; upstream I/O maintains it). */
  active: number;
  /** Ejected by outlier detection; LBs skip ejected endpoints. */
  ejected: boolean;
}

export interface PickContext {
  /** The request's hash input for consistent hashing (header value, cookie, source IP, query param).
   * Undefined when the policy has no key for this request; a hash LB then picks at random. */
  hashKey?: string | undefined;
  /** Endpoints already tried by this request (retries prefer another host, except with hashing). */
  attempted?: ReadonlySet<Endpoint> | undefined;
}

export interface LoadBalancer {
  /** Undefined when no endpoint is available (empty list or all ejected) -> 503 UH. */
  pick(ctx: PickContext): Endpoint | undefined;
}

export interface LbDeps {
  /** Uniform in [0, 1). Injected so tests can be exact. */
  random: () => number;
}

export type LbPolicy =
  | { kind: 'ROUND_ROBIN' }
  | { kind: 'LEAST_REQUEST'; choiceCount?: number }
  | { kind: 'RANDOM' }
  | { kind: 'PASSTHROUGH' }
  | { kind: 'RING_HASH'; minimumRingSize: number }
  | { kind: 'MAGLEV'; tableSize: number };

export type LbFactory = (endpoints: readonly Endpoint[], policy: LbPolicy, deps: LbDeps) => LoadBalancer;

export function endpointKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function makeEndpoint(
  address: string,
  port: number,
  labels: Record<string, string> = {},
  weight = 1,
): Endpoint {
  return { address, port, key: endpointKey(address, port), labels, weight, active: 0, ejected: false };
}
