import t from 'tap';
import { RandomLoadBalancer } from '../../../dist/proxy/lb/load-balancer-random.js';
import { endpoints, scripted } from './fixtures/helpers.js';

t.test('equal weights: index floor(r * n), one draw per pick', async (t) => {
  const eps = endpoints(4);
  const random = scripted([0, 0.26, 0.5, 0.99]);
  const lb = new RandomLoadBalancer(eps, { random });
  t.same([lb.pick({}), lb.pick({}), lb.pick({}), lb.pick({})], [eps[0], eps[1], eps[2], eps[3]]);
  t.equal(random.used(), 4);
});

t.test('weighted: r * totalWeight falls in the endpoint cumulative range', async (t) => {
  // Weights 1:9 -> A covers [0, 0.1), B [0.1, 1).
  const eps = endpoints(2, [1, 9]);
  const lb = new RandomLoadBalancer(eps, { random: scripted([0.05, 0.0999, 0.1, 0.99]) });
  t.same([lb.pick({}), lb.pick({}), lb.pick({}), lb.pick({})], [eps[0], eps[0], eps[1], eps[1]]);
});

t.test('an ejected draw is redrawn', async (t) => {
  const eps = endpoints(4);
  eps[1]!.ejected = true;
  const random = scripted([0.3, 0.3, 0.8]);
  t.equal(new RandomLoadBalancer(eps, { random }).pick({}), eps[3]);
  t.equal(random.used(), 3);
});

t.test('after 8 ejected draws it draws once among live endpoints only', async (t) => {
  const eps = endpoints(4, [1, 1, 2, 6]);
  eps[3]!.ejected = true;
  // 8 draws landing on D (r >= 0.4), then one draw over live weight 4: 0.6 * 4 = 2.4 -> C.
  const random = scripted([0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.6]);
  t.equal(new RandomLoadBalancer(eps, { random }).pick({}), eps[2]);
  t.equal(random.used(), 9);
});

t.test('a retry re-draws while it hits an attempted endpoint', async (t) => {
  const eps = endpoints(4);
  const random = scripted([0.1, 0.1, 0.6]);
  t.equal(new RandomLoadBalancer(eps, { random }).pick({ attempted: new Set([eps[0]!]) }), eps[2]);
  t.equal(random.used(), 3);
});
