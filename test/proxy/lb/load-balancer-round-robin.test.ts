// Round robin is deterministic given the build-time random draw: exact orders, no statistics.
import t from 'tap';
import { HOST_SELECTION_MAX_ATTEMPTS } from '../../../dist/proxy/lb/host-selection.js';
import { RoundRobinLoadBalancer } from '../../../dist/proxy/lb/load-balancer-round-robin.js';
import type { Endpoint, PickContext } from '../../../dist/proxy/lb/types.js';
import { endpoints, scripted } from './fixtures/helpers.js';

const names = (
  eps: readonly Endpoint[],
  lb: { pick(ctx: PickContext): Endpoint | undefined },
  n: number,
  ctx = {},
) =>
  Array.from({ length: n }, () => {
    const e = lb.pick(ctx);
    return e === undefined ? '-' : String.fromCharCode(65 + eps.indexOf(e));
  }).join('');

t.test('equal weights: strict rotation from the random start', async (t) => {
  const eps = endpoints(4);
  t.equal(names(eps, new RoundRobinLoadBalancer(eps, { random: () => 0 }), 9), 'ABCDABCDA');
  t.equal(names(eps, new RoundRobinLoadBalancer(eps, { random: () => 0.5 }), 9), 'CDABCDABC');
  t.equal(names(eps, new RoundRobinLoadBalancer(eps, { random: () => 0.999999 }), 5), 'DABCD');
});

t.test('random is drawn once, at build, never per pick', async (t) => {
  const eps = endpoints(3);
  const random = scripted([0.4]);
  const lb = new RoundRobinLoadBalancer(eps, { random });
  t.equal(random.used(), 1);
  names(eps, lb, 100);
  t.equal(random.used(), 1);
  const weighted = endpoints(3, [1, 2, 3]);
  const random2 = scripted([0.4]);
  names(weighted, new RoundRobinLoadBalancer(weighted, { random: random2 }), 100);
  t.equal(random2.used(), 1);
});

t.test('equal weights other than 1 still rotate', async (t) => {
  const eps = endpoints(3, [5, 5, 5]);
  t.equal(names(eps, new RoundRobinLoadBalancer(eps, { random: () => 0 }), 6), 'ABCABC');
});

t.test('unset, negative and non-finite weights count as 1', async (t) => {
  const eps = endpoints(3, [0, -2, Number.NaN]);
  t.equal(names(eps, new RoundRobinLoadBalancer(eps, { random: () => 0 }), 6), 'ABCABC');
});

t.test('weighted: EDF order, ties to the entry queued first (Envoy)', async (t) => {
  // Weights 3:1:2. Turn k of endpoint i is due at k / w_i: A 1/3, C 1/2, A 2/3, then A, B and C are
  // all due at 1 and go in queueing order B (never picked), C, A.
  const eps = endpoints(3, [3, 1, 2]);
  t.equal(names(eps, new RoundRobinLoadBalancer(eps, { random: () => 0 }), 18), 'ACABCA'.repeat(3));
});

t.test('weighted: the random start is a phase of the same schedule', async (t) => {
  const eps = endpoints(3, [3, 1, 2]);
  // Phase 0.5: A has had floor(1.5) = 1 turn, B 0, C 1, so the schedule resumes at A's 2nd turn (2/3).
  const shifted = names(eps, new RoundRobinLoadBalancer(eps, { random: () => 0.5 }), 12);
  t.equal(shifted, 'ABCAACABCAAC'.slice(0, 12));
  t.ok('ACABCA'.repeat(4).includes(shifted), 'a rotation of the phase-0 schedule');
});

t.test('weighted: exact shares over whole periods', async (t) => {
  const eps = endpoints(4, [1, 2, 3, 10]);
  const lb = new RoundRobinLoadBalancer(eps, { random: () => 0.37 });
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 16 * 50; i++) {
    const e = lb.pick({})!;
    const k = eps.indexOf(e);
    counts[k] = counts[k]! + 1;
  }
  t.same(counts, [50, 100, 150, 500]);
});

t.test('equal weights: ejected endpoints are skipped, the rotation continues', async (t) => {
  const eps = endpoints(4);
  const lb = new RoundRobinLoadBalancer(eps, { random: () => 0 });
  t.equal(names(eps, lb, 2), 'AB');
  eps[2]!.ejected = true;
  t.equal(names(eps, lb, 5), 'DABDA');
  eps[2]!.ejected = false;
  t.equal(names(eps, lb, 4), 'BCDA');
});

t.test('weighted: an ejected endpoint is skipped and the others keep their ratio', async (t) => {
  const eps = endpoints(3, [3, 1, 2]);
  const lb = new RoundRobinLoadBalancer(eps, { random: () => 0 });
  eps[0]!.ejected = true;
  t.equal(names(eps, lb, 9), 'CBCCBCCBC');
});

t.test(
  'weighted: an ejected heavy endpoint neither starves the others nor loses its share on return',
  async (t) => {
    // Weight 1000 ejected next to two weight-1 endpoints: without EdfSchedule.skip pushing it past
    // every live turn, each pick would pop it ~500 times. The pick loop gives up after 2n pops and falls
    // back to the first live endpoint (always B), so the B/C alternation shows the schedule stayed
    // within that bound.
    const eps = endpoints(3, [1000, 1, 1]);
    const lb = new RoundRobinLoadBalancer(eps, { random: () => 0 });
    eps[0]!.ejected = true;
    t.equal(names(eps, lb, 8), 'BCBCBCBC');
    eps[0]!.ejected = false;
    const counts = [0, 0, 0];
    for (let i = 0; i < 1002 * 3; i++) {
      const k = eps.indexOf(lb.pick({})!);
      counts[k] = counts[k]! + 1;
    }
    t.same(counts, [3000, 3, 3], 'back to 1000:1:1 once it returns');
  },
);

t.test('a retry skips attempted endpoints in rotation order', async (t) => {
  const eps = endpoints(4);
  const lb = new RoundRobinLoadBalancer(eps, { random: () => 0 });
  t.equal(lb.pick({ attempted: new Set([eps[0]!]) }), eps[1], 'A tried: B');
  t.equal(lb.pick({ attempted: new Set([eps[2]!, eps[3]!]) }), eps[0], 'C and D tried: C, D, then A');
  t.equal(lb.pick({}), eps[1]);
});

t.test(
  `a retry with every endpoint attempted takes pick number ${HOST_SELECTION_MAX_ATTEMPTS}`,
  async (t) => {
    const eps = endpoints(3);
    const lb = new RoundRobinLoadBalancer(eps, { random: () => 0 });
    // Picks A, B, C, A, B: five attempts, then accept the repeat.
    t.equal(lb.pick({ attempted: new Set(eps) }), eps[1]);
    t.equal(lb.pick({}), eps[2]);
  },
);
