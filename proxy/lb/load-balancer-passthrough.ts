// PASSTHROUGH (Istio SimpleLB 3; Envoy ORIGINAL_DST with CLUSTER_PROVIDED). Envoy forwards to the
// connection's original destination address, which the LB contract does not carry: courier builds a
// passthrough cluster over the address(es) it should reach (typically one, e.g. a ServiceEntry with
// `resolution: NONE`) and picks the first non-ejected endpoint in list order. A retry prefers the first
// non-ejected endpoint it has not tried, falling back to the first non-ejected one. Weights are ignored.
import type { Endpoint, LoadBalancer, PickContext } from './types.js';

export class PassthroughLoadBalancer implements LoadBalancer {
  private readonly endpoints: readonly Endpoint[];

  constructor(endpoints: readonly Endpoint[]) {
    this.endpoints = endpoints.slice();
  }

  pick(ctx: PickContext): Endpoint | undefined {
    const attempted = ctx.attempted;
    let first: Endpoint | undefined;
    for (const e of this.endpoints) {
      if (e.ejected) continue;
      if (attempted === undefined || !attempted.has(e)) return e;
      first ??= e;
    }
    return first;
  }
}
