// The benchmark's pure parts, without running a benchmark: wrk's report parsed into the shape
// autocannon's runs have, the auto CPU quota, the headroom verdict that withholds ratios, the
// options, and the TLS rows' helpers (the s_client session check, nginx's stream module, the load
// core's busy share, the bytes of a tcp round).

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
const { parseSessionCheck, nginxStream, cpuJiffies, tcpRoundMib } = await load('tls-rows.mjs');

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
  const tls = {
    'courier https': summarize('courier https', [run(4000)]),
    'nginx https': summarize('nginx https', [run(8000)]),
    'direct https': summarize('direct https', [run(26_000)]),
  };
  const named = headroom(tls, 1.5, 'direct https');
  t.equal(named.fastest, 'nginx https', 'another direct row: the TLS rows');
  t.equal(named.ratio, 3.25);
  t.ok(named.ok);
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

t.test('options: rows (plaintext and TLS), TLS rounds, tcp warm-up size', async (t) => {
  const d = parseArgs([]);
  t.same(d.rows, ['http', 'https', 'handshakes', 'tcp'], 'every row by default');
  t.equal(d.tlsRounds, 3);
  t.equal(d.tcpMib, 512);
  t.same(parseArgs(['--rows', 'https,handshakes,tcp']).rows, ['https', 'handshakes', 'tcp'], 'TLS rows only');
  t.same(parseArgs(['--no-tls']).rows, ['http']);
  t.equal(parseArgs(['--tls-rounds=5']).tlsRounds, 5);
  t.equal(parseArgs(['--quick']).tlsRounds, 1);
  t.throws(() => parseArgs(['--rows', 'http3']), /--rows/);
});

t.test('parseSessionCheck: s_client -reconnect lines, resumed ones counted', async (t) => {
  const full = `CONNECTED(00000003)
---
New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256
Server public key is 256 bit
drop connection and then reconnect
CONNECTED(00000003)
New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256
`;
  t.same(parseSessionCheck(full), {
    connections: 2,
    resumed: 0,
    protocol: 'TLSv1.2',
    cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256',
  });
  const resumed = `${full}Reused, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256\n`;
  t.equal(parseSessionCheck(resumed).resumed, 1);
  t.same(parseSessionCheck('connect:errno=111'), {
    connections: 0,
    resumed: 0,
    protocol: null,
    cipher: null,
  });
});

t.test('nginxStream: built in, dynamic (module found or not), absent', async (t) => {
  const debian =
    'nginx version: nginx/1.22.1\nconfigure arguments: --prefix=/usr/share/nginx --modules-path=/usr/lib/nginx/modules --with-stream=dynamic --with-stream_ssl_module';
  const so = '/usr/lib/nginx/modules/ngx_stream_module.so';
  t.same(
    nginxStream(debian, (f: string) => f === so),
    { ok: true, load: so },
  );
  const none = nginxStream(debian, () => false);
  t.notOk(none.ok);
  t.match(none.why, /libnginx-mod-stream/);
  t.same(
    nginxStream('configure arguments: --with-stream --with-http_ssl_module', () => false),
    {
      ok: true,
      load: null,
    },
  );
  t.notOk(
    nginxStream('configure arguments: --with-stream_ssl_module', () => true).ok,
    'stream_ssl alone is not stream',
  );
});

t.test('cpuJiffies: busy and total of one CPU from /proc/stat', async (t) => {
  const stat = `cpu  300 0 100 600 0 0 0 0 0 0
cpu0 100 0 50 400 10 0 0 0 0 0
cpu1 200 5 50 200 0 0 10 0 0 0
intr 1 2 3`;
  t.same(cpuJiffies(stat, 1), { busy: 265, total: 465 });
  t.same(cpuJiffies(stat, 0), { busy: 150, total: 560 }, 'iowait counts as idle');
  t.equal(cpuJiffies(stat, 2), undefined);
});

t.test('tcpRoundMib: about `seconds` of bytes, what the quota buys, within bounds', async (t) => {
  t.equal(tcpRoundMib({ warmupMibps: 1000, seconds: 4 }), 4000, 'direct: its warm-up rate');
  // 0.4 core at 3000 µs/MiB buys 133 MiB/s: below the uncapped warm-up rate.
  t.equal(tcpRoundMib({ warmupMibps: 226, cpuUsPerMib: 3000, quota: 0.4, seconds: 4 }), 533);
  t.equal(tcpRoundMib({ warmupMibps: 1, cpuUsPerMib: 1e6, quota: 0.1, seconds: 1 }), 16, 'at least 16 MiB');
  t.equal(tcpRoundMib({ warmupMibps: 1e6, seconds: 10 }), 8192, 'at most 8 GiB');
});
