// Draws endpoint indices in proportion to weight; shared by RANDOM and LEAST_REQUEST.
import { allWeightsEqual, effectiveWeight } from './host-selection.js';
import type { Endpoint } from './types.js';

/** Draws tried before the O(n) fallback when the drawn endpoints are ejected. */
const REJECTION_DRAWS = 8;

export class WeightedSampler {
  private readonly endpoints: readonly Endpoint[];
  /** cumulative[i] = sum of weights of endpoints 0..i; undefined when all weights are equal. */
  private readonly cumulative: Float64Array | undefined;
  private readonly total: number;

  constructor(endpoints: readonly Endpoint[]) {
    this.endpoints = endpoints;
    if (allWeightsEqual(endpoints)) {
      this.cumulative = undefined;
      this.total = endpoints.length;
    } else {
      const cumulative = new Float64Array(endpoints.length);
      let sum = 0;
      endpoints.forEach((e, i) => {
        sum += effectiveWeight(e);
        cumulative[i] = sum;
      });
      this.cumulative = cumulative;
      this.total = sum;
    }
  }

  /** Index drawn by weight from one uniform `r` in [0, 1), ejected or not. Requires a non-empty list.
   * Equal weights: `floor(r * n)`; otherwise the first i with cumulative[i] > r * total (O(log n)). */
  draw(r: number): number {
    const n = this.endpoints.length;
    const cumulative = this.cumulative;
    if (cumulative === undefined) return Math.min(n - 1, Math.floor(r * n));
    const x = r * this.total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }

  /** Index of a non-ejected endpoint drawn by weight, or -1 when none is available. Uses one
   * `random()` per draw; after REJECTION_DRAWS ejected draws it draws once more among the
   * non-ejected endpoints only (O(n)). */
  drawAvailable(random: () => number): number {
    const eps = this.endpoints;
    if (eps.length === 0) return -1;
    for (let t = 0; t < REJECTION_DRAWS; t++) {
      const i = this.draw(random());
      if (!eps[i]!.ejected) return i;
    }
    let live = 0;
    for (const e of eps) if (!e.ejected) live += effectiveWeight(e);
    if (live === 0) return -1;
    let x = random() * live;
    let last = -1;
    for (let i = 0; i < eps.length; i++) {
      const e = eps[i]!;
      if (e.ejected) continue;
      last = i;
      x -= effectiveWeight(e);
      if (x < 0) return i;
    }
    return last;
  }
}
