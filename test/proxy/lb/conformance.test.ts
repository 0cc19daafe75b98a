// One conformance suite for the LoadBalancer contract (hono's runTest({ newRouter }) pattern), run
// against every policy in the registry. Policy-specific behaviour lives in the per-policy files.
//
// Statistical checks use a seeded PRNG (repeatable) with the tolerance stated next to each check.
import t from 'tap';
import { createLoadBalancer } from '../../../dist/proxy/lb/registry.js';
import type { Endpoint, LbDeps, LbPolicy, LoadBalancer, PickContext } from '../../../dist/proxy/lb/types.js';
import { endpoints, seeded, tally } from './fixtures/helpers.js';

interface Subject {
  name: string;
  newLb: (eps: readonly Endpoint[], deps: LbDeps) => LoadBalancer;
  /** Consistent-hash policies: picks are driven by `hashKey`, and `attempted` is ignored. */
  hashed: boolean;
  /** False for PASSTHROUGH, which always picks the first live endpoint. */
  spreads: boolean;
  /** Allowed relative error of each endpoint's share against weight / totalWeight. */
  weightTolerance?: number;
}

function runTest(s: Subject): void {
  const deps = (): LbDeps => ({ random: seeded(42) });
  /** Pick i's context: a distinct hash key per pick for hash policies, nothing otherwise. */
  const ctx = (i: number): PickContext => (s.hashed ? { hashKey: `user-${i}` } : {});

  t.test(s.name, async (t) => {
    t.test('empty endpoint list -> undefined', async (t) => {
      const lb = s.newLb([], deps());
      t.equal(lb.pick({}), undefined);
      t.equal(lb.pick({ hashKey: 'k' }), undefined);
      t.equal(lb.pick({ attempted: new Set() }), undefined);
    });

    t.test('every endpoint ejected -> undefined', async (t) => {
      const eps = endpoints(5, [1, 2, 3, 1, 1]);
      const lb = s.newLb(eps, deps());
      for (const e of eps) e.ejected = true;
      for (let i = 0; i < 50; i++) t.equal(lb.pick(ctx(i)), undefined);
      t.equal(lb.pick({ attempted: new Set([eps[0]!]) }), undefined);
    });

    t.test('never picks an ejected endpoint', async (t) => {
      const eps = endpoints(6, [1, 3, 1, 2, 1, 1]);
      const lb = s.newLb(eps, deps());
      eps[0]!.ejected = true;
      eps[1]!.ejected = true;
      eps[4]!.ejected = true;
      const { counts, misses } = tally((i) => lb.pick(ctx(i)), 2000);
      t.equal(misses, 0);
      t.same(
        [...counts.keys()].filter((k) => k === eps[0]!.key || k === eps[1]!.key || k === eps[4]!.key),
        [],
      );
      if (s.spreads) t.equal(counts.size, 3, 'every live endpoint still picked');
    });

    t.test('ejection is live: an endpoint that comes back is picked again', async (t) => {
      const eps = endpoints(3);
      const lb = s.newLb(eps, deps());
      for (const e of eps) e.ejected = true;
      t.equal(lb.pick(ctx(0)), undefined);
      eps[2]!.ejected = false;
      for (let i = 0; i < 20; i++) t.equal(lb.pick(ctx(i)), eps[2]);
      eps[0]!.ejected = false;
      eps[1]!.ejected = false;
      const { counts } = tally((i) => lb.pick(ctx(i)), 600);
      t.equal(counts.size, s.spreads ? 3 : 1);
    });

    t.test('a single endpoint is always picked', async (t) => {
      const eps = endpoints(1, [7]);
      const lb = s.newLb(eps, deps());
      for (let i = 0; i < 100; i++) t.equal(lb.pick(ctx(i)), eps[0]);
      t.equal(lb.pick({}), eps[0], 'also without a hash key');
      t.equal(lb.pick({ attempted: new Set(eps) }), eps[0], 'a retry accepts the only host');
    });

    t.test(s.spreads ? 'every endpoint is eventually picked' : 'one endpoint takes every pick', async (t) => {
      // 10 equal endpoints, 1000 picks: a uniform picker misses one with probability < 10 * 0.9^1000.
      const eps = endpoints(10);
      const lb = s.newLb(eps, deps());
      const { counts } = tally((i) => lb.pick(ctx(i)), 1000);
      if (!s.spreads) {
        // A policy that does not spread (PASSTHROUGH: the original destination) keeps one target.
        t.equal(counts.size, 1);
        return;
      }
      t.equal(counts.size, 10);
      for (const e of eps) t.ok((counts.get(e.key) ?? 0) >= 50, `${e.key} picked at least 5% of 1000`);
    });

    t.test(s.weightTolerance === undefined ? 'weights are ignored' : 'weights are respected', async (t) => {
      const weights = [1, 2, 3, 4, 10];
      const total = 20;
      const eps = endpoints(weights.length, weights);
      const lb = s.newLb(eps, deps());
      const n = 40_000;
      const { counts } = tally((i) => lb.pick(ctx(i)), n);
      if (s.weightTolerance === undefined) {
        // PASSTHROUGH: the original destination, whatever the weights (the first endpoint here).
        t.equal(counts.get(eps[0]!.key), n, 'every pick goes to the first endpoint');
        return;
      }
      eps.forEach((e, i) => {
        const expected = (n * weights[i]!) / total;
        const got = counts.get(e.key) ?? 0;
        t.ok(
          Math.abs(got - expected) <= expected * s.weightTolerance!,
          `${e.key} weight ${weights[i]}: ${got} picks, expected ${expected} ± ${s.weightTolerance! * 100}%`,
        );
      });
    });

    t.test('does not change endpoint state', async (t) => {
      const eps = endpoints(4, [1, 2, 1, 1]);
      eps[1]!.active = 3;
      const lb = s.newLb(eps, deps());
      for (let i = 0; i < 100; i++) lb.pick(ctx(i));
      t.same(
        eps.map((e) => [e.active, e.ejected]),
        [
          [0, false],
          [3, false],
          [0, false],
          [0, false],
        ],
      );
    });

    t.test('the list is copied at build: later changes to the array do not affect picks', async (t) => {
      const eps = endpoints(3);
      const lb = s.newLb(eps, deps());
      eps.length = 0;
      const { counts, misses } = tally((i) => lb.pick(ctx(i)), 300);
      t.equal(misses, 0);
      t.equal(counts.size, s.spreads ? 3 : 1);
    });

    if (s.hashed) {
      t.test('same hash key -> same endpoint; retries ignore attempted', async (t) => {
        const eps = endpoints(8);
        const lb = s.newLb(eps, deps());
        for (let i = 0; i < 200; i++) {
          const first = lb.pick({ hashKey: `session-${i}` })!;
          t.equal(lb.pick({ hashKey: `session-${i}` }), first);
          t.equal(lb.pick({ hashKey: `session-${i}`, attempted: new Set([first]) }), first);
        }
      });
    } else {
      t.test('a retry avoids endpoints already attempted', async (t) => {
        // One of 4 endpoints already tried: every policy here finds another one on its first re-pick
        // at least 3/4 of the time, so after 5 picks a repeat has probability <= (1/4)^5 ~ 0.1%.
        // Allow 1% of 2000 retries.
        const eps = endpoints(4);
        const lb = s.newLb(eps, deps());
        const attempted = new Set([eps[1]!]);
        const { counts, misses } = tally(() => lb.pick({ attempted }), 2000);
        t.equal(misses, 0);
        t.ok((counts.get(eps[1]!.key) ?? 0) <= 20, `repeats: ${counts.get(eps[1]!.key) ?? 0}`);
      });

      t.test('a retry with every endpoint attempted still gets one', async (t) => {
        const eps = endpoints(3);
        const lb = s.newLb(eps, deps());
        const attempted = new Set(eps);
        for (let i = 0; i < 30; i++) t.ok(eps.includes(lb.pick({ attempted })!));
      });

      t.test('a retry avoids attempted endpoints with others ejected', async (t) => {
        const eps = endpoints(4);
        const lb = s.newLb(eps, deps());
        eps[0]!.ejected = true;
        eps[3]!.ejected = true;
        const attempted = new Set([eps[1]!]);
        const { counts } = tally(() => lb.pick({ attempted }), 1000);
        // Two live endpoints, one attempted: a repeat needs 5 misses in a row, (1/2)^5 ~ 3%. Allow 6%.
        t.ok((counts.get(eps[1]!.key) ?? 0) <= 60, `repeats: ${counts.get(eps[1]!.key) ?? 0}`);
        t.ok((counts.get(eps[2]!.key) ?? 0) >= 940);
      });
    }
  });
}

const policy = (p: LbPolicy) => (eps: readonly Endpoint[], deps: LbDeps) => createLoadBalancer(eps, p, deps);

// Tolerances: per-pick randomness over 40,000 picks has a relative standard deviation of at most
// ~5% for the lightest endpoint (2,000 expected picks) -> 20% is 4 sigma. Ring hash adds the spread
// of ~100 virtual nodes per unit of weight (~10% relative) -> 30%. Maglev assigns slots almost
// exactly by weight, leaving only key-sampling noise -> 20%.
runTest({
  name: 'ROUND_ROBIN',
  newLb: policy({ kind: 'ROUND_ROBIN' }),
  hashed: false,
  spreads: true,
  weightTolerance: 0.01,
});
runTest({
  name: 'LEAST_REQUEST',
  newLb: policy({ kind: 'LEAST_REQUEST' }),
  hashed: false,
  spreads: true,
  weightTolerance: 0.2,
});
runTest({
  name: 'LEAST_REQUEST choiceCount 3',
  newLb: policy({ kind: 'LEAST_REQUEST', choiceCount: 3 }),
  hashed: false,
  spreads: true,
  weightTolerance: 0.2,
});
runTest({
  name: 'RANDOM',
  newLb: policy({ kind: 'RANDOM' }),
  hashed: false,
  spreads: true,
  weightTolerance: 0.2,
});
runTest({ name: 'PASSTHROUGH', newLb: policy({ kind: 'PASSTHROUGH' }), hashed: false, spreads: false });
runTest({
  name: 'RING_HASH',
  newLb: policy({ kind: 'RING_HASH', minimumRingSize: 1024 }),
  hashed: true,
  spreads: true,
  weightTolerance: 0.3,
});
runTest({
  name: 'MAGLEV',
  newLb: policy({ kind: 'MAGLEV', tableSize: 65537 }),
  hashed: true,
  spreads: true,
  weightTolerance: 0.2,
});
