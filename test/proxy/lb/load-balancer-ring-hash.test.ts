import t from 'tap';
import { hashString } from '../../../dist/proxy/lb/hash.js';
import {
  DEFAULT_MIN_RING_SIZE,
  MAX_RING_SIZE,
  RingHashLoadBalancer,
  virtualNodeCounts,
} from '../../../dist/proxy/lb/load-balancer-ring-hash.js';
import { assignment, KEYS, moved, otherWorkersCopy, share } from './fixtures/consistent-hash.js';
import { endpoints, scripted } from './fixtures/helpers.js';

const noRandom = { random: scripted([]) }; // throws if a keyed pick ever draws a random number
const N = 10;

t.test("virtual nodes per endpoint follow Envoy's scale formula", async (t) => {
  // 10 equal: ceil(0.1 * 1024) / 0.1 = 1030 -> 103 each.
  t.same(virtualNodeCounts(new Array(10).fill(1), 1024), new Array(10).fill(103));
  // 1:2:3:4:10 (min 0.05): ceil(51.2) / 0.05 = 1040 -> 52, 104, 156, 208, 520.
  t.same(virtualNodeCounts([1, 2, 3, 4, 10], 1024), [52, 104, 156, 208, 520]);
  t.same(virtualNodeCounts([1], 0), [DEFAULT_MIN_RING_SIZE], 'minimumRingSize 0 -> 1024');
  t.same(virtualNodeCounts([1], -5), [DEFAULT_MIN_RING_SIZE]);
  t.same(virtualNodeCounts([1, 1], 1e12), [MAX_RING_SIZE / 2, MAX_RING_SIZE / 2], 'clamped to 8M');
  // 1:1e6 -> the light endpoint gets ceil(1e-6 * 1024) = 1 node, the ring 1e6 + 1.
  t.same(virtualNodeCounts([1, 1_000_000], 1024), [1, 1_000_000]);
  // 1:1e7 would need 1e7 + 1 nodes: the ring is clamped to 8M and the light endpoint keeps its 1.
  t.same(virtualNodeCounts([1, 10_000_000], 1024), [1, MAX_RING_SIZE - 1]);
  t.same(virtualNodeCounts([], 1024), []);
});

t.test('ring size', async (t) => {
  t.equal(new RingHashLoadBalancer(endpoints(N), noRandom).ringSize, 1030);
  t.equal(new RingHashLoadBalancer(endpoints(N), noRandom, 0).ringSize, 1030);
  t.equal(new RingHashLoadBalancer(endpoints(3), noRandom, 4096).ringSize, 4098);
  t.equal(new RingHashLoadBalancer([], noRandom).ringSize, 0);
});

t.test('a pick is the first virtual node at or after hash(key), wrapping (reference ring)', async (t) => {
  // Rebuild the ring independently: 103 nodes per endpoint at hash(`${key}_${i}`), sorted.
  const eps = endpoints(N);
  const ring = eps
    .flatMap((e) => Array.from({ length: 103 }, (_, i) => ({ pos: hashString(`${e.key}_${i}`), e })))
    .sort((a, b) => a.pos - b.pos);
  const expected = (h: number) => (ring.find((v) => v.pos >= h) ?? ring[0]!).e;
  const lb = new RingHashLoadBalancer(eps, noRandom);
  let mismatches = 0;
  for (const key of KEYS.slice(0, 2000))
    if (lb.pick({ hashKey: key }) !== expected(hashString(key))) mismatches++;
  t.equal(mismatches, 0);
  t.equal(lb.pickHash(0), ring[0]!.e, 'hash 0 -> first node');
  t.equal(lb.pickHash(ring[5]!.pos), ring[5]!.e, 'exactly on a node -> that node');
  t.equal(lb.pickHash(ring[5]!.pos + 1), ring[6]!.e, 'just after a node -> the next one');
  t.equal(lb.pickHash(0xffffffff), ring[ring.length - 1]!.pos === 0xffffffff ? ring.at(-1)!.e : ring[0]!.e);
});

t.test('same key -> same endpoint in independently built instances (workers, restarts)', async (t) => {
  const eps = endpoints(N, [1, 1, 2, 1, 3, 1, 1, 1, 2, 1]);
  const a = assignment(new RingHashLoadBalancer(eps, { random: Math.random }));
  const b = assignment(new RingHashLoadBalancer(otherWorkersCopy(eps), { random: Math.random }));
  t.equal(moved(a, b), 0, 'identical for 10,000 keys, endpoint order notwithstanding');
});

t.test(`removing or adding one of ${N} endpoints remaps < 2/N of 10,000 keys`, async (t) => {
  // Ideal is 1/N. Envoy's construction gives more: 1024 / N virtual nodes per endpoint, so with 9
  // endpoints every survivor gains 11 nodes (103 -> 114) that take keys from the others as well.
  // Tolerance 2/N; keys that move between survivors are held under 1/N.
  const eps = endpoints(N + 1);
  const base = eps.slice(0, N);
  const before = assignment(new RingHashLoadBalancer(base, noRandom));
  const removedOne = base.filter((_, i) => i !== 3);
  const afterRemove = assignment(new RingHashLoadBalancer(removedOne, noRandom));
  const afterAdd = assignment(new RingHashLoadBalancer(eps, noRandom));

  const removedRatio = moved(before, afterRemove);
  const onRemoved = share(before, eps[3]!);
  t.comment(`remove: ${removedRatio} remapped (${onRemoved} were on the removed endpoint)`);
  t.ok(removedRatio < 2 / N, `remove remaps ${removedRatio}`);
  t.ok(removedRatio - onRemoved < 1 / N, `survivor-to-survivor moves ${removedRatio - onRemoved}`);
  t.ok(removedRatio >= onRemoved, 'every key of the removed endpoint moved');

  const addedRatio = moved(before, afterAdd);
  const toNew = share(afterAdd, eps[N]!);
  t.comment(`add: ${addedRatio} remapped (${toNew} to the new endpoint)`);
  t.ok(addedRatio < 2 / N, `add remaps ${addedRatio}`);
  t.ok(toNew > 0.5 / (N + 1) && toNew < 1.5 / (N + 1), `new endpoint takes ${toNew}`);
});

t.test('keys spread evenly: every endpoint within ±30% of 1/N', async (t) => {
  // ~103 virtual nodes per endpoint: an endpoint's arc varies by ~1/sqrt(103) ~ 10%; 30% is 3 sigma.
  const eps = endpoints(N);
  const a = assignment(new RingHashLoadBalancer(eps, noRandom));
  for (const e of eps) {
    const s = share(a, e);
    t.ok(Math.abs(s - 1 / N) <= 0.3 / N, `${e.key}: ${s}`);
  }
});

t.test('no hash key -> a random ring position, one draw per pick', async (t) => {
  const eps = endpoints(N);
  const random = scripted([0, 0.5, 0.999999]);
  const lb = new RingHashLoadBalancer(eps, { random });
  t.equal(lb.pick({}), lb.pickHash(0));
  t.equal(lb.pick({}), lb.pickHash(0x80000000));
  t.equal(lb.pick({}), lb.pickHash(Math.floor(0.999999 * 2 ** 32)));
  t.equal(random.used(), 3);
});

t.test('an ejected endpoint hands its keys to ring successors; no other key moves', async (t) => {
  const eps = endpoints(N);
  const lb = new RingHashLoadBalancer(eps, noRandom);
  const other = otherWorkersCopy(eps);
  const lb2 = new RingHashLoadBalancer(other, noRandom);
  const before = assignment(lb);
  eps[4]!.ejected = true;
  other.find((e) => e.key === eps[4]!.key)!.ejected = true;
  const during = assignment(lb);
  t.equal(moved(before, during), share(before, eps[4]!), "only the ejected endpoint's keys moved");
  t.equal(share(during, eps[4]!), 0);
  t.equal(moved(during, assignment(lb2)), 0, 'and they moved the same way in another worker');
  const successors = new Set(during.filter((_, i) => before[i] === eps[4]!.key));
  t.ok(successors.size > 3, `spread over ${successors.size} endpoints`);
  eps[4]!.ejected = false;
  t.equal(moved(before, assignment(lb)), 0, 'restored when it comes back');
});

t.test('a hash key costs no random draw and ignores attempted', async (t) => {
  const eps = endpoints(3);
  const lb = new RingHashLoadBalancer(eps, noRandom);
  const first = lb.pick({ hashKey: 'abc' })!;
  t.equal(lb.pick({ hashKey: 'abc', attempted: new Set(eps) }), first);
});
