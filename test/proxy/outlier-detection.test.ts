// Outlier detection with an injected clock: consecutive thresholds, ejection time × count,
// maxEjectionPercent, the interval sweep, and minHealthPercent's panic mode.

import t from 'tap';
import type { OutlierDetectionConfig } from '../../dist/config/snapshot.js';
import { makeEndpoint } from '../../dist/proxy/lb/types.js';
import { OutlierDetector } from '../../dist/proxy/outlier-detection.js';

const base: OutlierDetectionConfig = {
  consecutive5xxErrors: 3,
  consecutiveGatewayErrors: 0,
  consecutiveLocalOriginFailures: 5,
  splitExternalLocalOriginErrors: false,
  intervalMs: 1000,
  baseEjectionTimeMs: 10_000,
  maxEjectionPercent: 100,
  minHealthPercent: 0,
};

function setup(cfg: Partial<OutlierDetectionConfig> = {}, n = 4) {
  let now = 0;
  const od = new OutlierDetector(() => now);
  const eps = Array.from({ length: n }, (_, i) => makeEndpoint('10.0.0.1', 8000 + i));
  return { od, eps, cfg: { ...base, ...cfg }, tick: (ms: number) => (now += ms) };
}

t.test('ejects after N consecutive 5xx; a success resets the count', async (t) => {
  const { od, eps, cfg } = setup();
  const [a] = eps as [ReturnType<typeof makeEndpoint>];
  od.record(cfg, eps, a, 500);
  od.record(cfg, eps, a, 503);
  od.record(cfg, eps, a, 200);
  od.record(cfg, eps, a, 500);
  od.record(cfg, eps, a, 500);
  t.notOk(a.ejected, 'the 200 reset the streak');
  od.record(cfg, eps, a, 502);
  t.ok(a.ejected);
  t.equal(od.ejectionsTotal, 1);
});

t.test('gateway errors count separately; local-origin failures count as 503 unless split', async (t) => {
  const { od, eps, cfg } = setup({ consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 });
  const [a, b] = eps as [ReturnType<typeof makeEndpoint>, ReturnType<typeof makeEndpoint>];
  od.record(cfg, eps, a, 500);
  od.record(cfg, eps, a, 500);
  t.notOk(a.ejected, '500 is not a gateway error');
  od.record(cfg, eps, a, 'local');
  od.record(cfg, eps, a, 504);
  t.ok(a.ejected);
  const split = { ...cfg, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2 };
  od.record(split, eps, b, 'local');
  t.notOk(b.ejected);
  od.record(split, eps, b, 'local');
  t.ok(b.ejected, 'local-origin threshold when split');
});

t.test('ejection lasts baseEjectionTime × ejections; the sweep returns the endpoint', async (t) => {
  const { od, eps, cfg, tick } = setup();
  const a = eps[0] as ReturnType<typeof makeEndpoint>;
  const fail = () => {
    for (let i = 0; i < 3; i++) od.record(cfg, eps, a, 500);
  };
  fail();
  tick(9_999);
  od.sweep(eps, cfg);
  t.ok(a.ejected, 'still out before baseEjectionTime');
  tick(1);
  od.sweep(eps, cfg);
  t.notOk(a.ejected, 'back after baseEjectionTime');
  fail();
  tick(10_000);
  od.sweep(eps, cfg);
  t.ok(a.ejected, 'second ejection lasts twice as long');
  tick(10_000);
  od.sweep(eps, cfg);
  t.notOk(a.ejected);
});

t.test('maxEjectionPercent bounds how many endpoints are out (but one may always go)', async (t) => {
  const { od, eps, cfg } = setup({ maxEjectionPercent: 50 });
  for (const e of eps) for (let i = 0; i < 3; i++) od.record(cfg, eps, e, 500);
  t.equal(eps.filter((e) => e.ejected).length, 2);
  const one = setup({ maxEjectionPercent: 10 });
  for (const e of one.eps) for (let i = 0; i < 3; i++) one.od.record(one.cfg, one.eps, e, 500);
  t.equal(one.eps.filter((e) => e.ejected).length, 1, 'the first ejection is always allowed');
});

t.test(
  'minHealthPercent: below it every endpoint takes traffic again (panic), above it ejection holds',
  async (t) => {
    const { od, eps, cfg, tick } = setup({ minHealthPercent: 60 });
    const [a, b] = eps as [ReturnType<typeof makeEndpoint>, ReturnType<typeof makeEndpoint>];
    for (let i = 0; i < 3; i++) od.record(cfg, eps, a, 500);
    t.ok(a.ejected, '75% healthy >= 60%: ejected');
    for (let i = 0; i < 3; i++) od.record(cfg, eps, b, 500);
    t.same(
      eps.map((e) => e.ejected),
      [false, false, false, false],
      '50% healthy < 60%: panic, all endpoints in play',
    );
    tick(10_000);
    od.sweep(eps, cfg);
    t.same(
      eps.map((e) => e.ejected),
      [false, false, false, false],
      'both returned after their time',
    );
  },
);
