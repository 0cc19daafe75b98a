// Istio's LB policy names -> factories. config/ compiles a DestinationRule's LoadBalancerSettings to an
// LbPolicy (SimpleLB UNSPECIFIED -> DEFAULT_LB_POLICY, LEAST_CONN -> LEAST_REQUEST, consistentHash ->
// RING_HASH unless `maglev` is set); a cluster builds one LoadBalancer per endpoint-list version.
import { LeastRequestLoadBalancer } from './load-balancer-least-request.js';
import { MaglevLoadBalancer } from './load-balancer-maglev.js';
import { PassthroughLoadBalancer } from './load-balancer-passthrough.js';
import { RandomLoadBalancer } from './load-balancer-random.js';
import { RingHashLoadBalancer } from './load-balancer-ring-hash.js';
import { RoundRobinLoadBalancer } from './load-balancer-round-robin.js';
import type { Endpoint, LbDeps, LbFactory, LbPolicy, LoadBalancer } from './types.js';

/** Istio's default since 1.14 (`defaultLBAlgorithm()`): LEAST_REQUEST. */
export const DEFAULT_LB_POLICY: LbPolicy = Object.freeze({ kind: 'LEAST_REQUEST' });

/** One factory per policy kind; the mapped type makes a new LbPolicy kind a compile error here. */
export const LB_FACTORIES: { readonly [K in LbPolicy['kind']]: LbFactory } = Object.freeze({
  ROUND_ROBIN: (endpoints, _policy, deps) => new RoundRobinLoadBalancer(endpoints, deps),
  LEAST_REQUEST: (endpoints, policy, deps) =>
    new LeastRequestLoadBalancer(
      endpoints,
      deps,
      policy.kind === 'LEAST_REQUEST' ? policy.choiceCount : undefined,
    ),
  RANDOM: (endpoints, _policy, deps) => new RandomLoadBalancer(endpoints, deps),
  // Envoy's ORIGINAL_DST: courier picks the first non-ejected endpoint (load-balancer-passthrough.ts).
  PASSTHROUGH: (endpoints) => new PassthroughLoadBalancer(endpoints),
  RING_HASH: (endpoints, policy, deps) =>
    new RingHashLoadBalancer(
      endpoints,
      deps,
      policy.kind === 'RING_HASH' ? policy.minimumRingSize : undefined,
    ),
  MAGLEV: (endpoints, policy, deps) =>
    new MaglevLoadBalancer(endpoints, deps, policy.kind === 'MAGLEV' ? policy.tableSize : undefined),
});

/** Builds the load balancer for `policy` over a read-only endpoint list (copied; the endpoints' live
 * `active`/`ejected` fields are read at pick time). */
export function createLoadBalancer(
  endpoints: readonly Endpoint[],
  policy: LbPolicy,
  deps: LbDeps,
): LoadBalancer {
  return LB_FACTORIES[policy.kind](endpoints, policy, deps);
}

/** True for policies that pick by hash key and ignore retry host avoidance. */
export function isHashPolicy(policy: LbPolicy): boolean {
  return policy.kind === 'RING_HASH' || policy.kind === 'MAGLEV';
}
