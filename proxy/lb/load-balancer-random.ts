// RANDOM: one draw per pick, in proportion to endpoint weight. (Envoy's RANDOM ignores weights; courier
// honours them so that WorkloadEntry weights mean the same thing under every policy.)
import { pickAvoiding } from './host-selection.js';
import type { Endpoint, LbDeps, LoadBalancer, PickContext } from './types.js';
import { WeightedSampler } from './weighted-sampler.js';

export class RandomLoadBalancer implements LoadBalancer {
  private readonly endpoints: readonly Endpoint[];
  private readonly sampler: WeightedSampler;
  private readonly random: () => number;

  constructor(endpoints: readonly Endpoint[], deps: LbDeps) {
    this.endpoints = endpoints.slice();
    this.sampler = new WeightedSampler(this.endpoints);
    this.random = deps.random;
  }

  pick(ctx: PickContext): Endpoint | undefined {
    return pickAvoiding(this, ctx.attempted);
  }

  /** Consumes one value of `random()` when the drawn endpoint is not ejected. */
  pickOnce(): Endpoint | undefined {
    const i = this.sampler.drawAvailable(this.random);
    return i < 0 ? undefined : this.endpoints[i];
  }
}
