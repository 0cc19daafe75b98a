// LEAST_REQUEST (Istio's default policy; the deprecated LEAST_CONN maps here).
//
// Equal weights: Envoy's power of `choiceCount` (default 2) random choices: draw that many endpoints
// uniformly (with replacement) and keep the one with the fewest requests in flight (`active`); on a
// tie the earlier draw wins, as in Envoy.
//
// Unequal weights: Envoy switches to an EDF schedule over weight / (active + 1)^bias. Courier keeps
// the random-choices shape instead: it draws candidates in proportion to weight and keeps the one with
// the lowest load per unit of weight, active / weight. With no load every comparison ties, so an idle
// cluster gets traffic exactly in proportion to weight; under load, requests steer toward the endpoint
// with the most spare share, which converges on in-flight counts proportional to weight.
import { effectiveWeight, pickAvoiding } from './host-selection.js';
import type { Endpoint, LbDeps, LoadBalancer, PickContext } from './types.js';
import { WeightedSampler } from './weighted-sampler.js';

export const DEFAULT_CHOICE_COUNT = 2;

export class LeastRequestLoadBalancer implements LoadBalancer {
  private readonly endpoints: readonly Endpoint[];
  private readonly sampler: WeightedSampler;
  private readonly random: () => number;
  private readonly choiceCount: number;
  /** 1 / effective weight, precomputed so a comparison is two multiplies. */
  private readonly inverseWeight: Float64Array;

  /** `choiceCount` below 2 (or not an integer) falls back to 2: Envoy requires at least 2. */
  constructor(endpoints: readonly Endpoint[], deps: LbDeps, choiceCount = DEFAULT_CHOICE_COUNT) {
    this.endpoints = endpoints.slice();
    this.sampler = new WeightedSampler(this.endpoints);
    this.random = deps.random;
    this.choiceCount = Number.isInteger(choiceCount) && choiceCount >= 2 ? choiceCount : DEFAULT_CHOICE_COUNT;
    this.inverseWeight = Float64Array.from(this.endpoints, (e) => 1 / effectiveWeight(e));
  }

  pick(ctx: PickContext): Endpoint | undefined {
    return pickAvoiding(this, ctx.attempted);
  }

  /** Consumes `choiceCount` values of `random()` when no drawn endpoint is ejected. */
  pickOnce(): Endpoint | undefined {
    const eps = this.endpoints;
    const inv = this.inverseWeight;
    let best = this.sampler.drawAvailable(this.random);
    if (best < 0) return undefined;
    let bestLoad = eps[best]!.active * inv[best]!;
    for (let c = 1; c < this.choiceCount; c++) {
      const i = this.sampler.drawAvailable(this.random);
      if (i < 0) break;
      const load = eps[i]!.active * inv[i]!;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    return eps[best];
  }
}
