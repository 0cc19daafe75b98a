import t from 'tap';
import { LeastRequestLoadBalancer } from '../../../dist/proxy/lb/load-balancer-least-request.js';
import { MaglevLoadBalancer } from '../../../dist/proxy/lb/load-balancer-maglev.js';
import { PassthroughLoadBalancer } from '../../../dist/proxy/lb/load-balancer-passthrough.js';
import { RandomLoadBalancer } from '../../../dist/proxy/lb/load-balancer-random.js';
import { RingHashLoadBalancer } from '../../../dist/proxy/lb/load-balancer-ring-hash.js';
import { RoundRobinLoadBalancer } from '../../../dist/proxy/lb/load-balancer-round-robin.js';
import {
  createLoadBalancer,
  DEFAULT_LB_POLICY,
  isHashPolicy,
  LB_FACTORIES,
} from '../../../dist/proxy/lb/registry.js';
import type { LbPolicy } from '../../../dist/proxy/lb/types.js';
import { endpoints, scripted } from './fixtures/helpers.js';

const deps = { random: () => 0.5 };

t.test('each policy kind builds its implementation', async (t) => {
  const cases: [LbPolicy, new (...args: never[]) => unknown][] = [
    [{ kind: 'ROUND_ROBIN' }, RoundRobinLoadBalancer],
    [{ kind: 'LEAST_REQUEST' }, LeastRequestLoadBalancer],
    [{ kind: 'RANDOM' }, RandomLoadBalancer],
    [{ kind: 'PASSTHROUGH' }, PassthroughLoadBalancer],
    [{ kind: 'RING_HASH', minimumRingSize: 1024 }, RingHashLoadBalancer],
    [{ kind: 'MAGLEV', tableSize: 65537 }, MaglevLoadBalancer],
  ];
  for (const [policy, cls] of cases)
    t.ok(createLoadBalancer(endpoints(3), policy, deps) instanceof cls, policy.kind);
  t.same(Object.keys(LB_FACTORIES).sort(), cases.map(([p]) => p.kind).sort());
});

t.test('policy options reach the implementation', async (t) => {
  const ring = createLoadBalancer(endpoints(2), { kind: 'RING_HASH', minimumRingSize: 4096 }, deps);
  t.equal((ring as RingHashLoadBalancer).ringSize, 4096);
  const maglev = createLoadBalancer(endpoints(2), { kind: 'MAGLEV', tableSize: 251 }, deps);
  t.equal((maglev as MaglevLoadBalancer).tableSize, 251);
  const random = scripted([0, 0.3, 0.6]);
  createLoadBalancer(endpoints(4), { kind: 'LEAST_REQUEST', choiceCount: 3 }, { random }).pick({});
  t.equal(random.used(), 3, 'choiceCount 3 -> three draws');
});

t.test('Istio defaults: LEAST_REQUEST; hash policies are RING_HASH and MAGLEV', async (t) => {
  t.same(DEFAULT_LB_POLICY, { kind: 'LEAST_REQUEST' });
  t.ok(Object.isFrozen(DEFAULT_LB_POLICY));
  t.ok(isHashPolicy({ kind: 'RING_HASH', minimumRingSize: 1024 }));
  t.ok(isHashPolicy({ kind: 'MAGLEV', tableSize: 65537 }));
  t.notOk(isHashPolicy({ kind: 'ROUND_ROBIN' }));
  t.notOk(isHashPolicy(DEFAULT_LB_POLICY));
});

t.test('PASSTHROUGH: the first live endpoint; a retry takes the first live one not yet tried', async (t) => {
  const eps = endpoints(3, [1, 5, 1]);
  const lb = createLoadBalancer(eps, { kind: 'PASSTHROUGH' }, { random: scripted([]) });
  t.equal(lb.pick({}), eps[0]);
  t.equal(lb.pick({ hashKey: 'ignored' }), eps[0]);
  eps[0]!.ejected = true;
  t.equal(lb.pick({}), eps[1]);
  t.equal(lb.pick({ attempted: new Set([eps[1]!]) }), eps[2]);
  t.equal(lb.pick({ attempted: new Set(eps) }), eps[1], 'everything tried: the first live one');
});
