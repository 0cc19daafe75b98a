// MAGLEV (Istio ConsistentHashLB.maglev): the lookup table of Eisenbud et al., "Maglev: A Fast and
// Reliable Software Network Load Balancer" (NSDI 2016), listing 1, with Envoy's weighting.
//   - endpoint e gets offset = hash(key, seed 0) % M and skip = hash(key, seed 1) % (M - 1) + 1; its
//     preference list is offset, offset + skip, offset + 2*skip, ... (mod M), a permutation as M is prime;
//   - in rounds, each endpoint claims its next free preferred slot until all M slots are taken; with
//     weights an endpoint takes part only in rounds where iteration * weight >= claims * maxWeight, so
//     it claims ~M * weight / totalWeight slots;
//   - a pick is table[hash(hashKey) % M]: one hash and one array read.
// As with the ring, endpoints are laid out in key order so the table depends only on the endpoint set.
// An ejected endpoint keeps its slots; a pick that lands on one probes the following slots, which
// belong to endpoints in Maglev's interleaved order, so the displaced keys spread over the others.
// No hash key -> a random slot. Retries ignore `attempted` (consistent hashing).
import { hashString } from './hash.js';
import { effectiveWeight, keyOrder, nextAvailable } from './host-selection.js';
import type { Endpoint, LbDeps, LoadBalancer, PickContext } from './types.js';

export const DEFAULT_TABLE_SIZE = 65537;
/** Largest table built (Envoy's bound; Istio validation wants a prime below it). A 65537 table over
 * 10 endpoints builds in ~35 ms; 5000011 over 100 weighted endpoints in ~1.1 s. */
export const MAX_TABLE_SIZE = 5000011;

export class MaglevLoadBalancer implements LoadBalancer {
  private readonly endpoints: readonly Endpoint[];
  private readonly random: () => number;
  /** Slot -> endpoint index; empty when there are no endpoints. */
  private readonly table: Int32Array;

  /** `tableSize` <= 0 means the default 65537; a non-prime is raised to the next prime (the build
   * loop would not terminate otherwise); above MAX_TABLE_SIZE it is clamped. */
  constructor(endpoints: readonly Endpoint[], deps: LbDeps, tableSize = DEFAULT_TABLE_SIZE) {
    const eps = endpoints.slice();
    this.endpoints = eps;
    this.random = deps.random;
    const n = eps.length;
    if (n === 0) {
      this.table = new Int32Array(0);
      return;
    }
    const m = nextPrime(Math.min(tableSize > 0 ? Math.ceil(tableSize) : DEFAULT_TABLE_SIZE, MAX_TABLE_SIZE));
    const order = keyOrder(eps);
    const next = new Int32Array(n); // the next preferred slot to try, per rank
    const skip = new Int32Array(n);
    const weight = new Float64Array(n);
    const target = new Float64Array(n); // claims so far * maxWeight
    let maxWeight = 0;
    for (let r = 0; r < n; r++) {
      const e = eps[order[r]!]!;
      next[r] = hashString(e.key, 0) % m;
      skip[r] = (hashString(e.key, 1) % (m - 1)) + 1;
      weight[r] = effectiveWeight(e);
      maxWeight = Math.max(maxWeight, weight[r]!);
    }

    const table = new Int32Array(m).fill(-1);
    let filled = 0;
    for (let iteration = 1; filled < m; iteration++) {
      for (let r = 0; r < n && filled < m; r++) {
        if (iteration * weight[r]! < target[r]!) continue;
        target[r] = target[r]! + maxWeight;
        const step = skip[r]!;
        let c = next[r]!;
        while (table[c] !== -1) {
          c += step;
          if (c >= m) c -= m;
        }
        table[c] = order[r]!;
        c += step;
        next[r] = c >= m ? c - m : c;
        filled++;
      }
    }
    this.table = table;
  }

  /** Number of slots in the lookup table (0 with no endpoints). */
  get tableSize(): number {
    return this.table.length;
  }

  pick(ctx: PickContext): Endpoint | undefined {
    const key = ctx.hashKey;
    return this.pickHash(key === undefined ? (this.random() * 4294967296) >>> 0 : hashString(key));
  }

  /** The endpoint owning the slot of `h` (an unsigned 32-bit hash). */
  pickHash(h: number): Endpoint | undefined {
    const table = this.table;
    const m = table.length;
    if (m === 0) return undefined;
    const slot = h % m;
    const e = this.endpoints[table[slot]!]!;
    if (!e.ejected) return e;
    const live = nextAvailable(this.endpoints, 0);
    if (live < 0) return undefined;
    for (let k = slot + 1; k < slot + m; k++) {
      const other = this.endpoints[table[k % m]!]!;
      if (!other.ejected) return other;
    }
    // Only reachable when the live endpoints own no slot (more endpoints than slots).
    return this.endpoints[live];
  }
}

export function isPrime(x: number): boolean {
  if (x < 2) return false;
  if (x % 2 === 0) return x === 2;
  for (let d = 3; d * d <= x; d += 2) if (x % d === 0) return false;
  return true;
}

function nextPrime(x: number): number {
  let p = Math.max(2, x);
  while (!isPrime(p)) p++;
  return p;
}
