import t from 'tap';
import { hashString } from '../../../dist/proxy/lb/hash.js';
import {
  DEFAULT_TABLE_SIZE,
  isPrime,
  MaglevLoadBalancer,
} from '../../../dist/proxy/lb/load-balancer-maglev.js';
import type { Endpoint } from '../../../dist/proxy/lb/types.js';
import { assignment, moved, otherWorkersCopy, share } from './fixtures/consistent-hash.js';
import { endpoints, scripted } from './fixtures/helpers.js';

const noRandom = { random: scripted([]) };
const N = 10;

/** Maglev paper, listing 1 (unweighted), written independently of the implementation. */
function referenceTable(eps: readonly Endpoint[], m: number): string[] {
  const sorted = [...eps].sort((a, b) => (a.key < b.key ? -1 : 1));
  const perm = sorted.map((e) => ({
    offset: hashString(e.key, 0) % m,
    skip: (hashString(e.key, 1) % (m - 1)) + 1,
    next: 0,
  }));
  const entry = new Array<string | undefined>(m).fill(undefined);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < sorted.length; i++) {
      const p = perm[i]!;
      let c = (p.offset + p.next * p.skip) % m;
      while (entry[c] !== undefined) {
        p.next++;
        c = (p.offset + p.next * p.skip) % m;
      }
      entry[c] = sorted[i]!.key;
      p.next++;
      if (++filled === m) return entry as string[];
    }
  }
}

const slots = (lb: MaglevLoadBalancer) => Array.from({ length: lb.tableSize }, (_, s) => lb.pickHash(s)!.key);

t.test('table size: default 65537, non-primes raised to the next prime', async (t) => {
  t.equal(new MaglevLoadBalancer(endpoints(2), noRandom).tableSize, DEFAULT_TABLE_SIZE);
  t.equal(new MaglevLoadBalancer(endpoints(2), noRandom, 0).tableSize, DEFAULT_TABLE_SIZE);
  t.equal(new MaglevLoadBalancer(endpoints(2), noRandom, 251).tableSize, 251);
  t.equal(new MaglevLoadBalancer(endpoints(2), noRandom, 1000).tableSize, 1009);
  t.equal(new MaglevLoadBalancer([], noRandom).tableSize, 0);
  t.ok(isPrime(65537) && isPrime(5000011) && isPrime(2) && !isPrime(1) && !isPrime(65536) && !isPrime(9));
});

t.test("the table equals the paper's populate() for equal weights", async (t) => {
  for (const m of [13, 251, 65537]) {
    const eps = endpoints(7);
    t.same(slots(new MaglevLoadBalancer(eps, noRandom, m)), referenceTable(eps, m), `M = ${m}`);
  }
});

t.test('weights: slots per endpoint proportional to weight (within 0.1% of M)', async (t) => {
  const weights = [1, 2, 3, 4, 10];
  const eps = endpoints(5, weights);
  const table = slots(new MaglevLoadBalancer(eps, noRandom));
  eps.forEach((e, i) => {
    const got = table.filter((k) => k === e.key).length;
    const expected = (DEFAULT_TABLE_SIZE * weights[i]!) / 20;
    t.ok(
      Math.abs(got - expected) < DEFAULT_TABLE_SIZE * 0.001,
      `${e.key}: ${got} slots, expected ${expected}`,
    );
  });
});

t.test('same key -> same endpoint in independently built instances (workers, restarts)', async (t) => {
  const eps = endpoints(N, [1, 1, 2, 1, 3, 1, 1, 1, 2, 1]);
  const a = assignment(new MaglevLoadBalancer(eps, { random: Math.random }));
  const b = assignment(new MaglevLoadBalancer(otherWorkersCopy(eps), { random: Math.random }));
  t.equal(moved(a, b), 0);
});

t.test(`removing or adding one of ${N} endpoints remaps about 1/N of 10,000 keys`, async (t) => {
  // Maglev's disruption with M >> N is close to minimal. Tolerance: under 1.2/N in all, and
  // survivor-to-survivor moves under 1% of keys.
  const eps = endpoints(N + 1);
  const base = eps.slice(0, N);
  const before = assignment(new MaglevLoadBalancer(base, noRandom));
  const afterRemove = assignment(
    new MaglevLoadBalancer(
      base.filter((_, i) => i !== 3),
      noRandom,
    ),
  );
  const afterAdd = assignment(new MaglevLoadBalancer(eps, noRandom));

  const removedRatio = moved(before, afterRemove);
  const onRemoved = share(before, eps[3]!);
  t.comment(`remove: ${removedRatio} remapped (${onRemoved} were on the removed endpoint)`);
  t.ok(removedRatio < 1.2 / N, `remove remaps ${removedRatio}`);
  t.ok(removedRatio - onRemoved < 0.01, `survivor-to-survivor moves ${removedRatio - onRemoved}`);

  const addedRatio = moved(before, afterAdd);
  const toNew = share(afterAdd, eps[N]!);
  t.comment(`add: ${addedRatio} remapped (${toNew} to the new endpoint)`);
  t.ok(addedRatio < 1.2 / N, `add remaps ${addedRatio}`);
  t.ok(addedRatio - toNew < 0.01, `survivor-to-survivor moves ${addedRatio - toNew}`);
});

t.test('keys spread evenly: every endpoint within ±10% of 1/N', async (t) => {
  // Slots are split almost exactly; what remains is key sampling noise: 1,000 expected keys per
  // endpoint, sigma ~3%, so 10% is 3 sigma.
  const eps = endpoints(N);
  const a = assignment(new MaglevLoadBalancer(eps, noRandom));
  for (const e of eps) {
    const s = share(a, e);
    t.ok(Math.abs(s - 1 / N) <= 0.1 / N, `${e.key}: ${s}`);
  }
});

t.test('a pick is table[hash(key) % M]; no hash key -> a random slot', async (t) => {
  const eps = endpoints(N);
  const random = scripted([0.25]);
  const lb = new MaglevLoadBalancer(eps, { random }, 251);
  const table = slots(lb);
  t.equal(lb.pick({ hashKey: 'user-42' })!.key, table[hashString('user-42') % 251]);
  t.equal(lb.pick({})!.key, table[0x40000000 % 251]);
  t.equal(random.used(), 1);
});

t.test("an ejected endpoint's keys spread over the others; no other key moves", async (t) => {
  const eps = endpoints(N);
  const lb = new MaglevLoadBalancer(eps, noRandom);
  const other = otherWorkersCopy(eps);
  const lb2 = new MaglevLoadBalancer(other, noRandom);
  const before = assignment(lb);
  eps[4]!.ejected = true;
  other.find((e) => e.key === eps[4]!.key)!.ejected = true;
  const during = assignment(lb);
  t.equal(moved(before, during), share(before, eps[4]!));
  t.equal(moved(during, assignment(lb2)), 0, 'the same way in another worker');
  const displaced = during.filter((_, i) => before[i] === eps[4]!.key);
  const spread = new Set(displaced);
  t.equal(spread.size, N - 1, 'to every other endpoint');
  eps[4]!.ejected = false;
  t.equal(moved(before, assignment(lb)), 0);
});

t.test('more endpoints than slots: the table still fills and every pick is live', async (t) => {
  const eps = endpoints(20);
  const lb = new MaglevLoadBalancer(eps, noRandom, 13);
  t.equal(new Set(slots(lb)).size, 13);
  for (const e of eps) e.ejected = true;
  eps[19]!.ejected = false;
  t.equal(lb.pick({ hashKey: 'x' }), eps[19], 'falls back to a live endpoint even without a slot');
});
