// `npm run bench` as a user runs it, shortened: the harness starts the real pilot-agent, the
// http-proxy baseline and the upstream, drives them with autocannon, and writes its results. The
// numbers are not judged here (shared machines are noisy); what is: the run completes, courier
// answered the preflight with the upstream's body and every measured request with a 2xx (no error or timeout), the
// 90/10 split holds, courier's metrics add up to what the clients saw, and no process is left.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/procs.js';

t.test('a short bench run: zero courier failures, the split, consistent metrics', async (t) => {
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, 'bench', 'run.mjs'),
      '--rounds',
      '1',
      '--duration',
      '2',
      '--warmup',
      '1',
      '--latency-duration',
      '1',
      '--no-nginx',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  t.equal(r.status, 0, 'exit 0 (2 would mean courier failed requests)', {
    output: `${r.stdout.slice(-3000)}${r.stderr}`,
  });
  const file = /results: (\S+\.json)/.exec(r.stdout)?.[1];
  t.ok(file, 'results written');
  const res = JSON.parse(readFileSync(file as string, 'utf8'));
  const courier = res.summary.courier;
  t.ok(courier.rps > 0, `courier measured (${Math.round(courier.rps)} req/s)`);
  t.equal(courier.failures, 0, 'no error, timeout or non-2xx from courier');
  t.ok(res.summary['http-proxy'].rps > 0 && res.summary.direct.rps > 0, 'baselines measured');
  t.ok(
    res.courierSplit.v2Share > 0.05 && res.courierSplit.v2Share < 0.15,
    `90/10 split (${(res.courierSplit.v2Share * 100).toFixed(1)}% to v2)`,
  );
  t.ok(res.courierMetrics?.consistent, 'istio_requests_total adds up to what the clients completed');
  t.notMatch(r.stdout, /leftover process/, 'every child was stopped');
});
