// `npm run bench` as a user runs it, shortened: the harness starts the real pilot-agent, the Node
// baselines (http-proxy, http-proxy-3, fastify/reply-from), nginx when installed and the
// upstream, drives them with wrk when installed (autocannon otherwise), and writes its results.
// The numbers are not judged here (shared machines are noisy); what is: the run completes, courier
// answered the preflight with the upstream's body and every measured request with a 2xx (no error
// or timeout), the 90/10 split holds, courier's metrics add up to what the clients saw, the
// headroom verdict and the CPU per request at the fixed rate are recorded, and no process or CPU
// group is left. A second, smaller run forces the autocannon-only mode (no wrk, no quota). A third
// runs only the TLS and TCP rows (--rows https,handshakes,tcp): courier terminates TLS and proxies
// TCP without a failure, the handshake rows' session check saw no resumption, nginx's TCP row runs
// when its stream module is installed and says why not otherwise.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/procs.js';

const hasWrk = !spawnSync('wrk', ['-v']).error;

function bench(args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, 'bench', 'run.mjs'), ...args], {
    encoding: 'utf8',
    timeout: 150_000,
  });
  const file = /results: (\S+\.json)/.exec(r.stdout)?.[1];
  const res = file ? JSON.parse(readFileSync(file, 'utf8')) : undefined;
  return { r, res, output: `${r.stdout.slice(-4000)}${r.stderr}` };
}

/** CPU groups the bench created (cgroup v1 or v2) that are still there. */
function leftoverGroups(): string[] {
  const out: string[] = [];
  for (const base of ['/sys/fs/cgroup', '/sys/fs/cgroup/cpu']) {
    try {
      out.push(...readdirSync(base).filter((d) => d.startsWith('courier-bench-')));
    } catch {}
  }
  return out;
}

t.test('a short bench run: zero courier failures, the split, consistent metrics', async (t) => {
  const groupsBefore = leftoverGroups();
  const { r, res, output } = bench([
    '--rows',
    'http',
    '--rounds',
    '1',
    '--duration',
    '2',
    '--warmup',
    '1',
    '--latency-duration',
    '1',
  ]);
  t.equal(r.status, 0, 'exit 0 (2 would mean courier failed requests)', { output });
  t.ok(res, 'results written');
  t.equal(res.driver, hasWrk ? 'wrk' : 'autocannon', 'wrk drives the throughput rounds when installed');
  const courier = res.summary.courier;
  t.ok(courier.rps > 0, `courier measured (${Math.round(courier.rps)} req/s)`);
  t.equal(courier.failures, 0, 'no error, timeout or non-2xx from courier');
  for (const name of ['http-proxy', 'http-proxy-3', 'fastify/reply-from', 'direct'])
    t.ok(res.summary[name]?.rps > 0, `${name} measured`);
  t.ok(
    res.courierSplit.v2Share > 0.05 && res.courierSplit.v2Share < 0.15,
    `90/10 split (${(res.courierSplit.v2Share * 100).toFixed(1)}% to v2)`,
  );
  t.ok(res.courierMetrics?.consistent, 'istio_requests_total adds up to what the clients completed');
  t.ok(res.headroom.ratio > 0, `headroom recorded (${res.headroom.ratio.toFixed(2)}×)`);
  t.equal(res.headroom.ok, res.headroom.ratio >= 1.5, 'the verdict follows the ratio');
  t.match(r.stdout, res.headroom.ok ? /the load side was not the wall/ : /LOAD-BOUND RUN/);
  t.ok(res.latency.courier.cpuUsPerReq > 0, 'CPU µs per request at the fixed rate');
  t.notMatch(r.stdout, /leftover process/, 'every child was stopped');
  t.same(leftoverGroups(), groupsBefore, 'every CPU group was removed');
});

t.test('autocannon-only mode: no wrk, no CPU quota', async (t) => {
  const { r, res, output } = bench([
    '--driver',
    'autocannon',
    '--cpu-quota',
    'off',
    '--targets',
    'courier,http-proxy',
    '--rounds',
    '1',
    '--duration',
    '1',
    '--warmup',
    '1',
    '--latency-duration',
    '0',
    '--no-tls',
  ]);
  t.equal(r.status, 0, 'exit 0', { output });
  t.equal(res.driver, 'autocannon');
  t.equal(res.quota, null, 'no quota');
  t.equal(res.summary.courier.failures, 0, 'no error, timeout or non-2xx from courier');
  t.ok(res.summary['http-proxy'].rps > 0 && res.summary.direct.rps > 0, 'baselines measured');
  t.ok(res.courierMetrics?.consistent, 'metrics add up');
  t.notMatch(r.stdout, /leftover process/, 'every child was stopped');
});

const hasOpenssl = !spawnSync('openssl', ['version']).error;

t.test('the TLS and TCP rows alone: courier serves all three, no resumption', async (t) => {
  const groupsBefore = leftoverGroups();
  const { r, res, output } = bench([
    '--rows',
    'https,handshakes,tcp',
    '--tls-rounds',
    '1',
    '--duration',
    '1',
    '--warmup',
    '1',
    '--tcp-mib',
    '64',
  ]);
  t.equal(r.status, 0, 'exit 0 (2 would mean courier failed in the TLS rows)', { output });
  t.ok(res, 'results written');
  t.notOk(res.summary, 'no plaintext rows');
  if (!hasWrk || !hasOpenssl) {
    t.match(res.tls.skipped, /missing/, 'skipped, with the reason');
    return;
  }
  const nginx = Boolean(res.machine.nginx);
  const { https, handshakes, tcp } = res.tls;
  t.equal(res.tls.courierFailures, 0, 'no courier failure in any TLS or TCP run');
  for (const name of [
    'courier https',
    'courier plaintext',
    'direct https',
    ...(nginx ? ['nginx https'] : []),
  ])
    t.ok(https.summary[name]?.rps > 0, `https: ${name} measured`);
  t.equal(https.negotiated.courier.protocol, 'TLSv1.3', 'keep-alive rows run TLS 1.3');
  t.ok(handshakes.summary.courier.rps > 0, 'handshakes: courier measured');
  t.equal(handshakes.sessionCheck.courier.resumed, 0, 'courier resumed no session offered as wrk offers it');
  t.ok(handshakes.sessionCheck.courier.connections > 1, 'the session check connected');
  if (nginx) t.equal(handshakes.sessionCheck.nginx.resumed, 0, 'nor did nginx');
  t.ok(tcp.summary['courier tcp'].rps > 0, 'tcp: courier measured');
  t.equal(tcp.summary['courier tcp'].mismatches, 0, 'every byte reached the sink through courier');
  if (nginx)
    t.ok(
      tcp.summary['nginx tcp']?.rps > 0 || res.tls.notes.some((n: string) => /stream module/.test(n)),
      'nginx tcp measured, or skipped for want of the stream module',
    );
  t.notMatch(r.stdout, /leftover process/, 'every child was stopped');
  t.same(leftoverGroups(), groupsBefore, 'every CPU group was removed');
});
