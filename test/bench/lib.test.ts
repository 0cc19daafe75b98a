// The benchmark's pure parts, without running a benchmark: wrk's report parsed into the shape
// autocannon's runs have, the auto CPU quota, the headroom verdict that withholds ratios, and
// the options.

import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { ROOT } from '../helpers/procs.js';

// Computed paths: the bench modules are plain .mjs without type declarations.
const load = (file: string) => import(pathToFileURL(join(ROOT, 'bench', 'lib', file)).href);
const { parseWrk } = await load('drivers.mjs');
const { autoQuota } = await load('cpu-quota.mjs');
const { headroom, summarize } = await load('report.mjs');
const { parseArgs } = await load('options.mjs');

const WRK = `Running 6s test @ http://127.0.0.1:35223/api/v1/items
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.85ms    5.05ms  55.02ms   94.54%
    Req/Sec    16.48k     8.63k   30.24k    60.00%
  Latency Distribution
     50%  239.00us
     75%    1.55ms
     90%    3.97ms
     99%    1.07s
  98670 requests in 6.01s, 9.60MB read
  Socket errors: connect 0, read 2, write 1, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:  16417.64
Transfer/sec:      1.59MB
`;

t.test('parseWrk: totals, errors, non-2xx and µs-resolution percentiles in ms', async (t) => {
  const r = parseWrk(WRK);
  t.equal(r.total, 98670);
  t.equal(r.duration, 6.01);
  t.ok(Math.abs(r.rps - 98670 / 6.01) < 1e-6);
  t.equal(r.errors, 3, 'connect + read + write');
  t.equal(r.timeouts, 3);
  t.equal(r.non2xx, 7);
  t.same(r.latency, { p50: 0.239, p90: 3.97, p99: 1070 });
  const clean = parseWrk(WRK.replace(/ {2}Socket errors.*\n {2}Non-2xx.*\n/, ''));
  t.equal(clean.errors + clean.timeouts + clean.non2xx, 0, 'no error lines: zero errors');
  t.equal(parseWrk('unable to connect to 127.0.0.1:1 Connection refused'), undefined);
});

t.test('autoQuota: the fastest target at direct ÷ headroom, in 0.05-core steps', async (t) => {
  // direct 120k req/s, nginx 9.3 µs/req (107k req/s per core): 0.55 core serves ~59k = direct ÷ 2.
  t.equal(autoQuota(120_000, 9.3, 2), 0.55);
  t.equal(autoQuota(25_000, 30, 2), 0.35);
  t.equal(autoQuota(500_000, 50, 2), 1, 'never more than a core');
  t.equal(autoQuota(1000, 1, 2), 0.05, 'never less than 0.05');
  t.equal(autoQuota(0, 10, 2), 0.25, 'no warm-up numbers: a fixed guess');
});

t.test('headroom: ratios are withheld when direct is not 1.5× the fastest target', async (t) => {
  const run = (rps: number) => ({ rps, total: rps, errors: 0, timeouts: 0, non2xx: 0, failures: 0 });
  const summary = (direct: number, fastest: number) => ({
    courier: summarize('courier', [run(fastest / 2)]),
    nginx: summarize('nginx', [run(fastest)]),
    direct: summarize('direct', [run(direct)]),
  });
  const ok = headroom(summary(120_000, 60_000), 1.5);
  t.equal(ok.fastest, 'nginx');
  t.equal(ok.ratio, 2);
  t.ok(ok.ok);
  const bound = headroom(summary(25_000, 20_000), 1.5);
  t.equal(bound.ratio, 1.25);
  t.notOk(bound.ok, 'autocannon-era runs: direct barely above the fastest target');
});

t.test('options: defaults, targets, quota', async (t) => {
  const d = parseArgs([]);
  t.equal(d.driver, 'auto');
  t.equal(d.cpuQuota, 'auto');
  t.equal(d.headroom, 1.5);
  t.same(d.targets, ['courier', 'http-proxy', 'http-proxy-3', 'fastify', 'nginx']);
  t.same(parseArgs(['--targets', 'http-proxy', '--no-nginx']).targets, ['courier', 'http-proxy']);
  t.same(parseArgs(['--calibrate']).targets.at(-1), 'bare');
  t.equal(parseArgs(['--cpu-quota=0.3']).cpuQuota, 0.3);
  t.equal(parseArgs(['--cpu-quota', 'off']).cpuQuota, 'off');
  t.throws(() => parseArgs(['--driver', 'ab']), /--driver/);
  t.throws(() => parseArgs(['--targets', 'envoy']), /--targets/);
});
