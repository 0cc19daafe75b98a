import t from 'tap';
import { type BudgetedPool, ConnectionBudget } from '../../dist/proxy/cluster-circuit.js';

/** A pool with `idle` idle connections; closing one returns its slot on the next tick. */
function fakePool(budget: ConnectionBudget, idle: number): BudgetedPool & { idle: number } {
  const p = {
    idle,
    load: () => ({ running: 0, queued: 0 }),
    closeIdle: () => {
      if (p.idle === 0) return false;
      p.idle--;
      setImmediate(() => budget.release());
      return true;
    },
  };
  budget.pools.add(p);
  return p;
}

t.test('slots up to the limit, then waiters in order as slots return', async (t) => {
  const b = new ConnectionBudget(2);
  t.ok(b.tryAcquire());
  t.ok(b.tryAcquire());
  t.notOk(b.tryAcquire(), 'the third connection waits');
  const order: string[] = [];
  const first = () => {
    if (b.tryAcquire()) order.push('first');
  };
  const second = () => {
    if (b.tryAcquire()) order.push('second');
  };
  b.wait(first);
  b.wait(second);
  t.ok(b.contended);
  b.release();
  t.same(order, ['first']);
  b.release();
  t.same(order, ['first', 'second']);
  t.notOk(b.contended);
  t.equal(b.open, 2);
});

t.test('a waiter takes the slot of an idle connection in another pool', async (t) => {
  const b = new ConnectionBudget(1);
  fakePool(b, 1);
  t.ok(b.tryAcquire(), 'the idle connection holds the only slot');
  let got = false;
  b.wait(() => {
    got = b.tryAcquire();
  });
  await new Promise((r) => setImmediate(r));
  t.ok(got, 'the idle connection closed and its slot went to the waiter');
});

t.test('a connection that turns idle later is found by the waiting tick', async (t) => {
  const b = new ConnectionBudget(1);
  const p = fakePool(b, 0);
  t.ok(b.tryAcquire());
  let got = false;
  b.wait(() => {
    got = b.tryAcquire();
  });
  p.idle = 1; // a busy connection finished; nobody told the budget
  await new Promise((r) => setTimeout(r, 50));
  t.ok(got);
});

t.test('raising the limit on reload wakes waiters; load sums the pools', async (t) => {
  const b = new ConnectionBudget(0);
  let woke = 0;
  b.wait(() => {
    if (b.tryAcquire()) woke++;
  });
  b.setMax(3);
  t.equal(woke, 1);
  t.equal(b.max, 3);
  b.pools.add({ load: () => ({ running: 2, queued: 1 }), closeIdle: () => false });
  b.pools.add({ load: () => ({ running: 1, queued: 4 }), closeIdle: () => false });
  t.same(b.load(), { running: 3, queued: 5 });
});
