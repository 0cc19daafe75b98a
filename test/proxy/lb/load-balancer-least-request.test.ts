// Least request with a scripted random source: each pick draws choiceCount candidates, so outcomes are
// exact. One closed-loop simulation shows the policy steering away from a slow endpoint.
import t from 'tap';
import { LeastRequestLoadBalancer } from '../../../dist/proxy/lb/load-balancer-least-request.js';
import { RoundRobinLoadBalancer } from '../../../dist/proxy/lb/load-balancer-round-robin.js';
import type { LoadBalancer } from '../../../dist/proxy/lb/types.js';
import { endpoints, scripted, seeded } from './fixtures/helpers.js';

// With 4 equal endpoints a draw r maps to index floor(4r): 0 -> A, 0.25 -> B, 0.5 -> C, 0.75 -> D.

t.test('two choices: the less active candidate wins', async (t) => {
  const eps = endpoints(4);
  eps[0]!.active = 5;
  eps[2]!.active = 2;
  eps[3]!.active = 1;
  const random = scripted([0.0, 0.5, 0.3, 0.9, 0.5, 0.0]);
  const lb = new LeastRequestLoadBalancer(eps, { random });
  t.equal(lb.pick({}), eps[2], 'A(5) vs C(2) -> C');
  t.equal(lb.pick({}), eps[1], 'B(0) vs D(1) -> B');
  t.equal(lb.pick({}), eps[2], 'C(2) vs A(5) -> C');
  t.equal(random.used(), 6, 'exactly two draws per pick');
});

t.test('a tie goes to the first candidate (Envoy compares with <)', async (t) => {
  const eps = endpoints(4);
  eps[1]!.active = 3;
  eps[3]!.active = 3;
  const lb = new LeastRequestLoadBalancer(eps, { random: scripted([0.75, 0.25, 0.25, 0.75]) });
  t.equal(lb.pick({}), eps[3]);
  t.equal(lb.pick({}), eps[1]);
});

t.test('the same endpoint may be drawn twice (sampling with replacement)', async (t) => {
  const eps = endpoints(4);
  eps[0]!.active = 9;
  const lb = new LeastRequestLoadBalancer(eps, { random: scripted([0.1, 0.2]) });
  t.equal(lb.pick({}), eps[0]);
});

t.test('choiceCount 3 draws three candidates', async (t) => {
  const eps = endpoints(4);
  eps[0]!.active = 5;
  eps[2]!.active = 2;
  const random = scripted([0.0, 0.5, 0.3]);
  const lb = new LeastRequestLoadBalancer(eps, { random }, 3);
  t.equal(lb.pick({}), eps[1], 'A(5), C(2), B(0) -> B');
  t.equal(random.used(), 3);
});

t.test('choiceCount below 2 or fractional falls back to 2', async (t) => {
  for (const c of [1, 0, 2.5, Number.NaN]) {
    const random = scripted([0.0, 0.5]);
    new LeastRequestLoadBalancer(endpoints(4), { random }, c).pick({});
    t.equal(random.used(), 2, `choiceCount ${c}`);
  }
});

t.test('an ejected draw is redrawn', async (t) => {
  const eps = endpoints(4);
  eps[0]!.ejected = true;
  eps[3]!.active = 4;
  const random = scripted([0.1, 0.8, 0.0, 0.6]);
  const lb = new LeastRequestLoadBalancer(eps, { random });
  // A (ejected) -> redraw D(4); second candidate: A (ejected) -> redraw C(0) -> C.
  t.equal(lb.pick({}), eps[2]);
  t.equal(random.used(), 4);
});

t.test('with unequal weights candidates are drawn by weight and compared by active / weight', async (t) => {
  // Weights 1:3, cumulative [1, 4]: r < 0.25 -> A, otherwise B.
  const eps = endpoints(2, [1, 3]);
  eps[0]!.active = 1;
  eps[1]!.active = 2;
  const lb = new LeastRequestLoadBalancer(eps, { random: scripted([0.2, 0.3, 0.2, 0.3, 0.9, 0.1]) });
  t.equal(lb.pick({}), eps[1], 'A 1/1 vs B 2/3 -> B, although B has more in flight');
  eps[1]!.active = 3;
  t.equal(lb.pick({}), eps[0], 'A 1/1 vs B 3/3: tie -> first candidate');
  eps[1]!.active = 4;
  t.equal(lb.pick({}), eps[0], 'B 4/3 vs A 1/1 -> A');
});

t.test('statistically prefers idle endpoints (equal weights)', async (t) => {
  // A busy endpoint wins only when drawn twice: (1/4)^2 = 6.25% of 20,000 picks = 1,250. Allow 1,500.
  const eps = endpoints(4);
  eps[0]!.active = 10;
  const lb = new LeastRequestLoadBalancer(eps, { random: seeded(7) });
  let busy = 0;
  for (let i = 0; i < 20_000; i++) if (lb.pick({}) === eps[0]) busy++;
  t.ok(busy <= 1500, `busy endpoint picked ${busy} times`);
});

t.test('closed loop: a slow endpoint gets far less than its fair share', async (t) => {
  // 4 endpoints, one 10x slower; one request per tick, each pick increments `active` until its
  // completion tick. Round robin gives the slow endpoint 25% of requests; least request, much less.
  const simulate = (make: (eps: ReturnType<typeof endpoints>) => LoadBalancer) => {
    const eps = endpoints(4);
    const lb = make(eps);
    const done: [number, number][] = [];
    let slow = 0;
    for (let tick = 0; tick < 20_000; tick++) {
      for (let k = done.length - 1; k >= 0; k--) {
        if (done[k]![0] <= tick) {
          eps[done[k]![1]]!.active--;
          done.splice(k, 1);
        }
      }
      const e = lb.pick({})!;
      const i = eps.indexOf(e);
      e.active++;
      done.push([tick + (i === 0 ? 40 : 4), i]);
      if (i === 0) slow++;
    }
    return slow / 20_000;
  };
  const rr = simulate((eps) => new RoundRobinLoadBalancer(eps, { random: () => 0 }));
  const lr = simulate((eps) => new LeastRequestLoadBalancer(eps, { random: seeded(3) }));
  t.equal(rr, 0.25);
  t.ok(lr < 0.1, `least request sends ${(lr * 100).toFixed(1)}% to the slow endpoint`);
});
