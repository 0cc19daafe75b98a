// ROUND_ROBIN, as Envoy does it: plain rotation when all weights are equal, otherwise an earliest-
// deadline-first (EDF) schedule where endpoint i's k-th turn falls at time k / weight_i (ties go to the
// entry queued first). Both start at a random point (one deps.random() at build), so workers built
// from the same snapshot do not all send their first request to endpoint 0.
import { allWeightsEqual, effectiveWeight, nextAvailable, pickAvoiding } from './host-selection.js';
import type { Endpoint, LbDeps, LoadBalancer, PickContext } from './types.js';

/**
 * EDF schedule over endpoint indices as a binary min-heap in typed arrays: a pick re-keys the top
 * entry and sifts it down (O(log n), no allocation).
 */
class EdfSchedule {
  private readonly heap: Int32Array;
  private readonly weight: Float64Array;
  /** Turns taken (or skipped) so far; the next deadline is (turns + 1) / weight, computed without
   * accumulating rounding error. */
  private readonly turns: Float64Array;
  private readonly deadline: Float64Array;
  /** Tie-breaker: the order in which entries were (re)queued. */
  private readonly seq: Float64Array;
  private nextSeq: number;
  private readonly minWeight: number;

  /** `phase` in [0, 1): start the schedule as if it had already run to time `phase` (with integer
   * weights the whole schedule repeats every 1 time unit). */
  constructor(weights: readonly number[], phase: number) {
    const n = weights.length;
    this.heap = new Int32Array(n);
    this.weight = Float64Array.from(weights);
    this.turns = new Float64Array(n);
    this.deadline = new Float64Array(n);
    this.seq = new Float64Array(n);
    let minWeight = Number.POSITIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const w = weights[i]!;
      minWeight = Math.min(minWeight, w);
      this.turns[i] = Math.floor(phase * w);
      this.deadline[i] = (this.turns[i]! + 1) / w;
      this.seq[i] = i;
      this.heap[i] = i;
    }
    this.minWeight = minWeight;
    this.nextSeq = n;
    for (let k = (n >> 1) - 1; k >= 0; k--) this.siftDown(k);
  }

  /** The index whose turn it is (the heap top), without advancing. */
  peek(): number {
    return this.heap[0]!;
  }

  /** Advances the top entry to its next turn. */
  advance(): void {
    const i = this.heap[0]!;
    const w = this.weight[i]!;
    this.turns[i] = this.turns[i]! + 1;
    this.deadline[i] = (this.turns[i]! + 1) / w;
    this.seq[i] = this.nextSeq++;
    this.siftDown(0);
  }

  /** Skips an ejected top entry past every live entry's next turn: at least 1/minWeight ahead of
   * now. Each live entry's deadline is within 1/minWeight of now, so an ejected entry cannot come up
   * twice before every live entry has had a turn, and the live entries keep their exact ratios. */
  skip(): void {
    const i = this.heap[0]!;
    const w = this.weight[i]!;
    const now = this.deadline[i]!;
    this.turns[i] = Math.max(this.turns[i]! + 1, Math.ceil((now + 1 / this.minWeight) * w) - 1);
    this.deadline[i] = (this.turns[i]! + 1) / w;
    this.seq[i] = this.nextSeq++;
    this.siftDown(0);
  }

  private less(a: number, b: number): boolean {
    const da = this.deadline[a]!;
    const db = this.deadline[b]!;
    return da < db || (da === db && this.seq[a]! < this.seq[b]!);
  }

  private siftDown(k: number): void {
    const heap = this.heap;
    const n = heap.length;
    const item = heap[k]!;
    for (;;) {
      let child = 2 * k + 1;
      if (child >= n) break;
      if (child + 1 < n && this.less(heap[child + 1]!, heap[child]!)) child++;
      if (!this.less(heap[child]!, item)) break;
      heap[k] = heap[child]!;
      k = child;
    }
    heap[k] = item;
  }
}

export class RoundRobinLoadBalancer implements LoadBalancer {
  private readonly endpoints: readonly Endpoint[];
  /** Unweighted: the next index to hand out. */
  private cursor = 0;
  /** Weighted: the EDF schedule; undefined when all weights are equal. */
  private readonly edf: EdfSchedule | undefined;

  constructor(endpoints: readonly Endpoint[], deps: LbDeps) {
    this.endpoints = endpoints.slice();
    const n = this.endpoints.length;
    const r = deps.random();
    if (allWeightsEqual(this.endpoints)) {
      this.edf = undefined;
      this.cursor = n === 0 ? 0 : Math.min(n - 1, Math.floor(r * n));
    } else {
      this.edf = new EdfSchedule(this.endpoints.map(effectiveWeight), r);
    }
  }

  pick(ctx: PickContext): Endpoint | undefined {
    return pickAvoiding(this, ctx.attempted);
  }

  pickOnce(): Endpoint | undefined {
    const eps = this.endpoints;
    const n = eps.length;
    const edf = this.edf;
    if (edf === undefined) {
      for (let k = 0; k < n; k++) {
        const e = eps[this.cursor]!;
        this.cursor = this.cursor + 1 === n ? 0 : this.cursor + 1;
        if (!e.ejected) return e;
      }
      return undefined;
    }
    // See EdfSchedule.skip: within n heap pops a live endpoint comes up unless all are ejected. The
    // extra rounds and the scan only guard endpoints that came back from ejection mid-schedule.
    for (let k = 0; k < 2 * n; k++) {
      const e = eps[edf.peek()]!;
      if (!e.ejected) {
        edf.advance();
        return e;
      }
      edf.skip();
    }
    const i = nextAvailable(eps, 0);
    return i < 0 ? undefined : eps[i];
  }
}
