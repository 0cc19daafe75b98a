// The benchmark harness (`npm run bench`; see bench/README.md and the README's Benchmarks section).
//
// Starts an upstream (its own process), then the targets -- courier in router mode with a
// realistic Istio config, node http-proxy@1.18.1 with a keep-alive agent, nginx (when installed)
// and a direct (no proxy) baseline -- and drives each with autocannon (64 connections,
// pipelining 1) in interleaved rounds after a warm-up. The proxy under test is pinned to one core
// and the load generator and upstream to another (taskset). Then a fixed-rate latency run and,
// with --scaling, courier with --concurrency 1 vs 2. Prints tables and writes
// bench/results/<timestamp>.json. Every child is started in its own process group and killed at
// the end, on error and on Ctrl-C.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const BENCH = join(ROOT, 'bench');
const PILOT_AGENT = join(ROOT, 'dist', 'pilot-agent', 'main.js');
const COURIER_CLI = join(ROOT, 'dist', 'pilot-agent', 'courier.js');
const EXPECTED_BODY = 'hello world\n';
const PATH = '/api/v1/items';
// Sent to every target; they make courier evaluate (and reject) the header matches.
const HEADERS = { 'end-user': 'bench-user', 'x-tenant': 'acme' };

// ---------------------------------------------------------------------------------------------
// Options

const HELP = `usage: npm run bench -- [options]
  --duration S          seconds per measured run (default 6)
  --rounds N            interleaved rounds (default 3)
  --warmup S            warm-up seconds per target, discarded (default 3)
  --connections N       autocannon connections (default 64)
  --rate R              request rate of the latency run (default 2000 req/s)
  --latency-duration S  seconds per target in the latency run (default 5; 0 skips it)
  --scaling             also run courier --concurrency 1 vs 2
  --calibrate           also run the ~40-line bare forwarder (node:http + undici), the issue's calibration point
  --no-nginx            skip nginx even when installed
  --profile             run courier under node --cpu-prof; profiles land in bench/results/profiles/
  --quick               1 s warm-up, 1 round of 3 s, 3 s latency runs (under a minute)`;

function parseArgs(argv) {
  const o = {
    duration: 6,
    rounds: 3,
    warmup: 3,
    connections: 64,
    rate: 2000,
    latencyDuration: 5,
    scaling: false,
    calibrate: false,
    nginx: true,
    profile: false,
  };
  const num = (name, v) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) throw new Error(`--${name}: expected a number`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split('=', 2);
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--duration':
        o.duration = num('duration', value());
        break;
      case '--rounds':
        o.rounds = Math.max(1, Math.round(num('rounds', value())));
        break;
      case '--warmup':
        o.warmup = num('warmup', value());
        break;
      case '--connections':
        o.connections = Math.max(1, Math.round(num('connections', value())));
        break;
      case '--rate':
        o.rate = num('rate', value());
        break;
      case '--latency-duration':
        o.latencyDuration = num('latency-duration', value());
        break;
      case '--scaling':
        o.scaling = true;
        break;
      case '--calibrate':
        o.calibrate = true;
        break;
      case '--no-nginx':
        o.nginx = false;
        break;
      case '--profile':
        o.profile = true;
        break;
      case '--quick':
        Object.assign(o, { warmup: 1, duration: 3, rounds: 1, latencyDuration: 3 });
        break;
      case '--help':
      case '-h':
        console.log(HELP);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${argv[i]}\n${HELP}`);
    }
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Children: each in its own process group, so a kill reaches courier's workers and nginx's
// worker too; all killed at exit, on error and on Ctrl-C.

const children = new Set();
const tempDirs = new Set();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function canRun(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return !r.error;
}

const TASKSET = canRun('taskset', ['-V']);

/** The CPUs this process may run on, from `taskset -pc` (falls back to 0..n-1). */
function allowedCpus() {
  if (TASKSET) {
    const r = spawnSync('taskset', ['-pc', String(process.pid)], { encoding: 'utf8' });
    const list = r.stdout?.split(':').pop()?.trim();
    if (list) {
      const out = [];
      for (const part of list.split(',')) {
        const [a, b] = part.split('-').map(Number);
        for (let c = a; c <= (b ?? a); c++) out.push(c);
      }
      if (out.length) return out;
    }
  }
  return cpus().map((_, i) => i);
}

function launch(name, cmd, args, { cpu, cwd } = {}) {
  const [file, argv] = cpu !== undefined && TASKSET ? ['taskset', ['-c', cpu, cmd, ...args]] : [cmd, args];
  const proc = spawn(file, argv, { detached: true, stdio: ['pipe', 'pipe', 'pipe'], cwd: cwd ?? ROOT });
  const h = { name, proc, pgid: proc.pid, out: '', outBytes: 0, exited: false, code: null };
  const collect = (d) => {
    h.outBytes += d.length;
    h.out = (h.out + d).slice(-65536);
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  proc.stdin.on('error', () => {});
  h.done = new Promise((r) => {
    proc.once('exit', (code, signal) => {
      h.exited = true;
      h.code = code ?? signal;
      r();
    });
    proc.once('error', (err) => {
      h.exited = true;
      h.code = err.message;
      r();
    });
  });
  children.add(h);
  return h;
}

function killGroup(h, signal) {
  try {
    process.kill(-h.pgid, signal);
  } catch {}
}

async function stop(h, graceMs = 3000) {
  if (!h.exited) {
    h.proc.stdin.end();
    killGroup(h, 'SIGTERM');
    await Promise.race([h.done, sleep(graceMs)]);
  }
  killGroup(h, 'SIGKILL'); // the leader may be gone while its workers linger
  await Promise.race([h.done, sleep(1000)]);
  children.delete(h);
}

async function stopAll() {
  await Promise.all([...children].map((h) => stop(h)));
}

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, async () => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${sig}: stopping every benchmark process...`);
    await stopAll();
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
    process.exit(130);
  });
}
process.on('exit', () => {
  for (const h of children) killGroup(h, 'SIGKILL');
});

/** Wait until a child prints a JSON line (its listening port). */
async function waitJson(h, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const line = h.out.split('\n').find((l) => l.startsWith('{'));
    if (line) return JSON.parse(line);
    if (h.exited) break;
    await sleep(20);
  }
  throw new Error(`${h.name} did not start (exit ${h.code}):\n${h.out}`);
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// /proc: RSS and CPU time of a whole process group (courier's agent + workers, nginx's master +
// worker).

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

function groupPids(pgid) {
  const out = [];
  let entries = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid) out.push({ pid: Number(e), cpuTicks: Number(f[11]) + Number(f[12]) });
    } catch {}
  }
  return out;
}

function groupUsage(pgid) {
  let rssKb = 0;
  let cpuTicks = 0;
  const pids = groupPids(pgid);
  const perProcessMb = [];
  for (const p of pids) {
    cpuTicks += p.cpuTicks;
    try {
      const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'));
      if (m) {
        rssKb += Number(m[1]);
        perProcessMb.push(Math.round(Number(m[1]) / 102.4) / 10);
      }
    } catch {}
  }
  return { rssMb: rssKb / 1024, cpuMs: (cpuTicks * 1000) / CLK_TCK, processes: pids.length, perProcessMb };
}

// ---------------------------------------------------------------------------------------------
// Targets

function courierConfig(gatewayPort, v1Port, v2Port) {
  const rules = [];
  for (let i = 0; i < 10; i++) {
    // Half the rules match the URI and fail on a header the request carries with another value,
    // so the header matchers are really evaluated; none matches.
    const uri = [
      '{prefix: /api/v1/}',
      `{exact: /api/v1/items/${i}}`,
      `{regex: "/api/v[0-9]+/orders/[0-9]+/${i}"}`,
    ][i % 3];
    const header = [
      `end-user: {exact: user-${i}}`,
      `x-tenant: {prefix: tenant-${i}-}`,
      `x-canary: {regex: "beta-[a-z]+-${i}"}`,
      `end-user: {exact: vip-${i}}`,
    ][i % 4];
    rules.push(`  - name: rule-${i}
    match:
    - uri: ${uri}
      headers: {${header}}
    route:
    - destination: {host: bench, subset: v2}`);
  }
  return {
    'gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${gatewayPort}, name: http, protocol: HTTP}
    hosts: ["*"]
`,
    'service-entry.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench, namespace: default}
spec:
  hosts: [bench.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: ${v1Port}}
    labels: {version: v1}
  - address: 127.0.0.1
    ports: {http: ${v2Port}}
    labels: {version: v2}
`,
    'destination-rule.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bench, namespace: default}
spec:
  host: bench
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`,
    'virtual-service.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench, namespace: default}
spec:
  hosts: ["*"]
  gateways: [bench-gateway]
  http:
${rules.join('\n')}
  - name: split
    route:
    - destination: {host: bench, subset: v1}
      weight: 90
    - destination: {host: bench, subset: v2}
      weight: 10
`,
  };
}

async function startCourier(tmp, upstream, { concurrency, cpu, label, profile }) {
  const dir = join(tmp, `courier-c${concurrency}-${label}`);
  mkdirSync(dir);
  const port = await freePort();
  for (const [name, text] of Object.entries(courierConfig(port, upstream.ports[0], upstream.ports[1])))
    writeFileSync(join(dir, name), text);
  const check = spawnSync(process.execPath, [COURIER_CLI, 'validate', dir], { encoding: 'utf8' });
  if (check.status !== 0)
    throw new Error(`courier validate rejected the bench config:\n${check.stdout}${check.stderr}`);
  const [admin, status, health, stats] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  // Workers inherit the agent's node flags, so each writes its own .cpuprofile when it exits.
  const profiling = profile ? ['--cpu-prof', `--cpu-prof-dir=${join(BENCH, 'results', 'profiles')}`] : [];
  const args = [
    ...profiling,
    PILOT_AGENT,
    'proxy',
    'router',
    '--config-dir',
    dir,
    '--concurrency',
    String(concurrency),
    '--admin-port',
    String(admin),
    '--status-port',
    String(status),
    '--health-port',
    String(health),
    '--stats-port',
    String(stats),
    '--drain-duration',
    '1s',
  ];
  const h = launch(`courier c${concurrency}`, process.execPath, args, { cpu });
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (h.exited) throw new Error(`courier exited ${h.code}:\n${h.out}`);
    try {
      const r = await fetch(`http://127.0.0.1:${health}/healthz/ready`);
      if (r.status === 200) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`courier not ready after 20 s:\n${h.out}`);
    await sleep(50);
  }
  return {
    name: `courier${concurrency > 1 ? ` c${concurrency}` : ''}`,
    kind: 'courier',
    h,
    port,
    status,
    dir,
  };
}

async function startBare(upstream, cpu) {
  const h = launch(
    'bare forwarder',
    process.execPath,
    [join(BENCH, 'bare-forwarder.mjs'), String(await freePort()), `http://127.0.0.1:${upstream.ports[0]}`],
    { cpu },
  );
  const { port } = await waitJson(h);
  return { name: 'bare forwarder', kind: 'bare', h, port };
}

async function startHttpProxy(upstream, cpu) {
  const h = launch(
    'http-proxy',
    process.execPath,
    [join(BENCH, 'http-proxy.mjs'), String(await freePort()), `http://127.0.0.1:${upstream.ports[0]}`],
    { cpu },
  );
  const { port } = await waitJson(h);
  return { name: 'http-proxy', kind: 'http-proxy', h, port };
}

function nginxBinary() {
  for (const bin of ['nginx', '/usr/sbin/nginx']) {
    const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
    if (!r.error) return { bin, version: (r.stderr || r.stdout).trim().replace(/^nginx version: /, '') };
  }
  return undefined;
}

async function startNginx(bin, tmp, upstream, cpu) {
  const dir = join(tmp, 'nginx');
  mkdirSync(dir);
  chmodSync(tmp, 0o755); // the worker runs as an unprivileged user when we are root
  chmodSync(dir, 0o755);
  const port = await freePort();
  const conf = `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream bench {
    server 127.0.0.1:${upstream.ports[0]} weight=9;
    server 127.0.0.1:${upstream.ports[1]} weight=1;
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const h = launch(
    'nginx',
    bin,
    ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'],
    {
      cpu,
    },
  );
  await waitHttp(h, port);
  return { name: 'nginx', kind: 'nginx', h, port };
}

async function waitHttp(h, port, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (h.exited) break;
    try {
      const r = await fetch(`http://127.0.0.1:${port}${PATH}`, { headers: HEADERS });
      await r.text();
      if (r.status === 200) return;
    } catch {}
    await sleep(50);
  }
  throw new Error(`${h.name} not serving on ${port} (exit ${h.code}):\n${h.out}`);
}

/** One request through the target: must be a 200 with the upstream's body. */
async function preflight(t) {
  const r = await fetch(`http://127.0.0.1:${t.port}${PATH}`, { headers: HEADERS });
  const body = await r.text();
  if (r.status !== 200 || body !== EXPECTED_BODY)
    throw new Error(`${t.name}: preflight got ${r.status} ${JSON.stringify(body.slice(0, 200))}`);
}

async function upstreamCounts(upstream) {
  const r = await fetch(`http://127.0.0.1:${upstream.ports[0]}/__counts`);
  return r.json();
}

/** Sum of courier's istio_requests_total by response code, from the agent's merged stats. */
async function courierRequestsByCode(t) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${t.status}/stats/prometheus`)).text();
    const byCode = {};
    for (const line of text.split('\n')) {
      if (!line.startsWith('istio_requests_total{')) continue;
      const code = /response_code="(\d+)"/.exec(line)?.[1] ?? '?';
      byCode[code] = (byCode[code] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return byCode;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Load

async function load(opts, cpu) {
  const h = launch('autocannon', process.execPath, [join(BENCH, 'load.mjs'), JSON.stringify(opts)], { cpu });
  const timer = setTimeout(() => killGroup(h, 'SIGKILL'), (opts.duration + 60) * 1000);
  await h.done;
  clearTimeout(timer);
  children.delete(h);
  const line = h.out.split('\n').find((l) => l.startsWith('{"url"'));
  if (!line) throw new Error(`load generator failed (exit ${h.code}):\n${h.out}`);
  return JSON.parse(line);
}

/** One autocannon run against a target, with the target's RSS and CPU sampled around it. */
async function measure(t, opts, cpu) {
  if (t.h?.exited) return { crashed: true, exit: t.h.code };
  const before = t.h ? groupUsage(t.h.pgid) : undefined;
  const logBefore = t.h?.outBytes ?? 0;
  const countsBefore = t.kind === 'courier' ? await upstreamCounts(t.upstream) : undefined;
  let rssMax = before?.rssMb ?? 0;
  const sampler = t.h
    ? setInterval(() => {
        rssMax = Math.max(rssMax, groupUsage(t.h.pgid).rssMb);
      }, 500)
    : undefined;
  const r = await load({ url: `http://127.0.0.1:${t.port}${PATH}`, headers: HEADERS, ...opts }, cpu);
  clearInterval(sampler);
  if (t.h) {
    const after = groupUsage(t.h.pgid);
    rssMax = Math.max(rssMax, after.rssMb);
    r.rssMb = after.rssMb;
    r.rssMaxMb = rssMax;
    r.processes = after.processes;
    r.rssPerProcessMb = after.perProcessMb;
    r.cpuUsPerReq = r.total > 0 ? ((after.cpuMs - before.cpuMs) * 1000) / r.total : null;
    r.logBytes = t.h.outBytes - logBefore;
    if (t.h.exited) r.crashed = true;
  }
  if (countsBefore) {
    const after = await upstreamCounts(t.upstream);
    r.upstreamHits = after.map((n, i) => n - countsBefore[i]);
  }
  r.failures = r.errors + r.timeouts + r.non2xx + r.mismatches + (r.crashed ? 1 : 0);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Reporting

const median = (xs) => {
  const s = xs.filter((x) => x !== null && x !== undefined).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sum = (xs) => xs.reduce((a, b) => a + (b ?? 0), 0);
const fmtInt = (n) => (n === null || n === undefined ? '-' : Math.round(n).toLocaleString('en-US'));
const fmtMs = (n) => (n === null || n === undefined ? '-' : n.toFixed(2));
const fmtMb = (n) => (n === null || n === undefined ? '-' : n.toFixed(0));
const fmtRatio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '-');
const fmtSigned = (n) => (n === null || n === undefined ? '-' : `${n >= 0 ? '+' : ''}${n.toFixed(2)}`);

function table(header, rows) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

function summarize(name, runs) {
  const ok = runs.filter((r) => !r.crashed || r.total);
  return {
    name,
    rounds: runs.length,
    rpsPerRound: runs.map((r) => Math.round(r.rps ?? 0)),
    rps: median(ok.map((r) => r.rps)),
    p50: median(ok.map((r) => r.latency?.p50)),
    p99: median(ok.map((r) => r.latency?.p99)),
    errors: sum(runs.map((r) => (r.errors ?? 0) + (r.timeouts ?? 0))),
    non2xx: sum(runs.map((r) => r.non2xx)),
    crashed: runs.some((r) => r.crashed),
    failures: sum(runs.map((r) => r.failures ?? 1)),
    rssMb: runs.length && runs[0].rssMb !== undefined ? Math.max(...runs.map((r) => r.rssMaxMb ?? 0)) : null,
    rssFirstMb: runs[0]?.rssMb ?? null,
    rssPerProcessMb: runs.at(-1)?.rssPerProcessMb ?? null,
    rssLastMb: runs.at(-1)?.rssMb ?? null,
    cpuUsPerReq: median(runs.map((r) => r.cpuUsPerReq)),
    logBytes: sum(runs.map((r) => r.logBytes)),
  };
}

function loudFlag(lines) {
  const bar = '!'.repeat(100);
  console.log(`\n${bar}\n${lines.map((l) => `!!! ${l}`).join('\n')}\n${bar}\n`);
}

// ---------------------------------------------------------------------------------------------
// Main

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const started = new Date();
  const cpuList = allowedCpus();
  const pin = TASKSET && cpuList.length >= 2;
  const proxyCpu = pin ? String(cpuList[0]) : undefined;
  const loadCpu = pin ? String(cpuList[1]) : undefined;
  const nginx = o.nginx ? nginxBinary() : undefined;
  const machine = {
    cpus: cpuList.length,
    cpuModel: cpus()[0]?.model,
    memGb: Math.round(totalmem() / 2 ** 30),
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    node: process.version,
    nginx: nginx?.version ?? null,
    taskset: TASKSET,
  };
  const pinning = pin
    ? `proxy on CPU ${proxyCpu}; load generator + upstream on CPU ${loadCpu}`
    : 'no pinning (taskset missing or < 2 CPUs)';
  console.log(
    `courier bench: ${o.rounds} round(s) × ${o.duration}s, warm-up ${o.warmup}s, ${o.connections} connections, pipelining 1`,
  );
  console.log(`machine: ${machine.cpus} CPU(s) ${machine.cpuModel ?? ''}, node ${machine.node}; ${pinning}`);
  console.log(
    `nginx: ${nginx ? nginx.version : o.nginx ? 'not installed, skipped' : 'skipped (--no-nginx)'}`,
  );
  if (machine.loadavg[0] > machine.cpus * 0.5)
    console.log(`warning: load average ${machine.loadavg.join(' ')} -- the machine is busy, expect noise`);

  const tmp = mkdtempSync(join(tmpdir(), 'courier-bench-'));
  tempDirs.add(tmp);
  const results = { date: started.toISOString(), machine, options: o, pinning, path: PATH, headers: HEADERS };
  let exitCode = 0;
  try {
    const upstreamH = launch('upstream', process.execPath, [join(BENCH, 'upstream.mjs'), '0', '0'], {
      cpu: loadCpu,
    });
    const upstream = await waitJson(upstreamH);

    const targets = [];
    const courier = await startCourier(tmp, upstream, {
      concurrency: 1,
      cpu: proxyCpu,
      label: 'main',
      profile: o.profile,
    });
    courier.upstream = upstream;
    targets.push(courier);
    targets.push(await startHttpProxy(upstream, proxyCpu));
    if (o.calibrate) targets.push(await startBare(upstream, proxyCpu));
    if (nginx) targets.push(await startNginx(nginx.bin, tmp, upstream, proxyCpu));
    targets.push({ name: 'direct', kind: 'direct', port: upstream.ports[0] });
    for (const t of targets) await preflight(t);

    const base = { connections: o.connections, pipelining: 1 };
    console.log(`\nwarm-up: ${targets.map((t) => t.name).join(', ')}`);
    const warmup = {};
    for (const t of targets) warmup[t.name] = await measure(t, { ...base, duration: o.warmup }, loadCpu);

    const runs = Object.fromEntries(targets.map((t) => [t.name, []]));
    for (let round = 1; round <= o.rounds; round++) {
      const line = [];
      for (const t of targets) {
        const r = await measure(t, { ...base, duration: o.duration }, loadCpu);
        runs[t.name].push(r);
        line.push(`${t.name} ${fmtInt(r.rps)}${r.failures ? ` (${r.failures} FAILED)` : ''}`);
      }
      console.log(`round ${round}/${o.rounds}: ${line.join(' | ')}`);
    }

    const summary = Object.fromEntries(targets.map((t) => [t.name, summarize(t.name, runs[t.name])]));
    const hp = summary['http-proxy']?.rps;
    const ng = summary.nginx?.rps;
    const direct = summary.direct?.rps;
    const rows = targets.map((t) => {
      const s = summary[t.name];
      return [
        t.name,
        fmtInt(s.rps),
        s.rpsPerRound.map((x) => fmtInt(x)).join(' / '),
        fmtRatio(s.rps, hp),
        fmtRatio(s.rps, ng),
        fmtRatio(s.rps, direct),
        fmtMs(s.p50),
        fmtMs(s.p99),
        `${s.errors} / ${s.non2xx}${s.crashed ? ' CRASHED' : ''}`,
        s.rssMb === null
          ? '-'
          : `${fmtMb(s.rssFirstMb)} → ${fmtMb(s.rssLastMb)} (max ${fmtMb(s.rssMb)})` +
            (s.rssPerProcessMb?.length > 1 ? ` = ${s.rssPerProcessMb.map(fmtMb).join(' + ')}` : ''),
        s.cpuUsPerReq === null ? '-' : s.cpuUsPerReq.toFixed(1),
      ];
    });
    console.log(
      `\nthroughput: median of ${o.rounds} interleaved round(s) × ${o.duration}s, ${o.connections} connections, pipelining 1 (${pinning})\n`,
    );
    console.log(
      table(
        [
          'target',
          'req/s',
          'per round',
          '× http-proxy',
          '× nginx',
          '× direct',
          'p50 ms',
          'p99 ms',
          'errors / non-2xx',
          'RSS MB (round 1 → last)',
          'CPU µs/req',
        ],
        rows,
      ),
    );
    const hits = runs[courier.name].reduce(
      (acc, r) => acc.map((n, i) => n + (r.upstreamHits?.[i] ?? 0)),
      [0, 0],
    );
    const v2Share = hits[0] + hits[1] ? hits[1] / (hits[0] + hits[1]) : null;
    console.log(
      `\ncourier / http-proxy: ${fmtRatio(summary.courier.rps, hp)}   courier / nginx: ${fmtRatio(summary.courier.rps, ng)}   ` +
        `courier 90/10 split: ${v2Share === null ? '-' : `${(v2Share * 100).toFixed(1)}% to v2`}`,
    );
    results.warmup = warmup;
    results.runs = runs;
    results.summary = summary;
    results.courierSplit = { hits, v2Share };

    // Latency at a fixed rate, below saturation.
    if (o.latencyDuration > 0 && o.rate > 0) {
      const order = [targets.at(-1), ...targets.slice(0, -1)]; // direct first
      const lat = {};
      for (const t of order)
        lat[t.name] = await measure(
          t,
          { ...base, duration: o.latencyDuration, overallRate: o.rate },
          loadCpu,
        );
      const d = lat.direct;
      console.log(
        `\nlatency at a fixed ${o.rate} req/s (${o.connections} connections, ${o.latencyDuration}s each; added = minus direct)\n`,
      );
      console.log(
        table(
          [
            'target',
            'achieved req/s',
            'p50 ms',
            'p99 ms',
            'p50 added',
            'p99 added',
            'errors / non-2xx',
            'note',
          ],
          order.map((t) => {
            const r = lat[t.name];
            return [
              t.name,
              fmtInt(r.rps),
              fmtMs(r.latency?.p50),
              fmtMs(r.latency?.p99),
              t === order[0] ? '-' : fmtSigned(r.latency?.p50 - d.latency?.p50),
              t === order[0] ? '-' : fmtSigned(r.latency?.p99 - d.latency?.p99),
              `${(r.errors ?? 0) + (r.timeouts ?? 0)} / ${r.non2xx ?? 0}${r.crashed ? ' CRASHED' : ''}`,
              r.rps < Math.min(o.rate, d.rps) * 0.9
                ? 'SATURATED: below the target rate, latency is queueing'
                : '',
            ];
          }),
        ),
      );
      results.latency = lat;
    }

    const metrics = await courierRequestsByCode(courier);
    if (metrics) {
      const counted = Object.values(metrics).reduce((a, b) => a + b, 0);
      const courierRuns = [warmup.courier, ...runs.courier, results.latency?.courier].filter(Boolean);
      const completed = courierRuns.reduce((a, r) => a + r.total, 1); // + the preflight request
      // Requests in flight when a run stops complete at courier (or count as code 0, client gone)
      // but not at the client: at most one per connection per run.
      const inFlight = courierRuns.length * o.connections;
      const consistent = counted >= completed && counted <= completed + inFlight;
      results.courierMetrics = {
        byCode: metrics,
        counted,
        completedByClients: completed,
        inFlight,
        consistent,
      };
      console.log(
        `\ncourier istio_requests_total by code: ${JSON.stringify(metrics)}; ${fmtInt(counted)} counted, ` +
          `clients completed ${fmtInt(completed)} (+ up to ${inFlight} cut off in flight)` +
          `${consistent ? '' : '  <-- MISMATCH: metrics do not add up'}`,
      );
    }

    const courierSummary = summary.courier;
    const courierLat = results.latency?.courier;
    const courierFailures =
      courierSummary.failures + (courierLat?.failures ?? 0) + (warmup.courier?.failures ?? 0);
    for (const t of targets) if (t.h) await stop(t.h);

    // Scaling: courier --concurrency 1 vs 2 under the same pinning.
    if (o.scaling) {
      const many = cpuList.length >= 4;
      const proxyCpus = many ? `${cpuList[0]},${cpuList[1]}` : undefined;
      const loadCpus = many ? cpuList.slice(2).join(',') : undefined;
      const note = many
        ? `courier on CPUs ${proxyCpus}; load generator + upstream on ${loadCpus}`
        : `unpinned: only ${cpuList.length} CPU(s), so courier, the load generator and the upstream share them`;
      await stop(upstreamH);
      const up2H = launch('upstream', process.execPath, [join(BENCH, 'upstream.mjs'), '0', '0'], {
        cpu: loadCpus,
      });
      const up2 = await waitJson(up2H);
      const c1 = await startCourier(tmp, up2, { concurrency: 1, cpu: proxyCpus, label: 'scaling' });
      const c2 = await startCourier(tmp, up2, { concurrency: 2, cpu: proxyCpus, label: 'scaling' });
      c1.name = 'courier c1';
      for (const t of [c1, c2]) {
        t.upstream = up2;
        await preflight(t);
        await measure(t, { ...base, duration: o.warmup }, loadCpus);
      }
      const sRuns = { [c1.name]: [], [c2.name]: [] };
      for (let round = 1; round <= o.rounds; round++)
        for (const t of [c1, c2])
          sRuns[t.name].push(await measure(t, { ...base, duration: o.duration }, loadCpus));
      const s1 = summarize(c1.name, sRuns[c1.name]);
      const s2 = summarize(c2.name, sRuns[c2.name]);
      console.log(`\nscaling: courier --concurrency 1 vs 2 (${note})\n`);
      console.log(
        table(
          ['target', 'req/s', 'per round', '× c1', 'p50 ms', 'p99 ms', 'errors / non-2xx', 'RSS MB (max)'],
          [s1, s2].map((s) => [
            s.name,
            fmtInt(s.rps),
            s.rpsPerRound.map((x) => fmtInt(x)).join(' / '),
            fmtRatio(s.rps, s1.rps),
            fmtMs(s.p50),
            fmtMs(s.p99),
            `${s.errors} / ${s.non2xx}${s.crashed ? ' CRASHED' : ''}`,
            fmtMb(s.rssMb),
          ]),
        ),
      );
      results.scaling = { note, runs: sRuns, summary: { c1: s1, c2: s2 } };
      if (s1.failures + s2.failures > 0) exitCode = 2;
    }

    if (courierFailures > 0) {
      exitCode = 2;
      const r = courierSummary;
      loudFlag([
        `COURIER FAILED REQUESTS UNDER LOAD: ${r.errors} socket errors/timeouts, ${r.non2xx} non-2xx` +
          `${courierLat?.failures ? `, ${courierLat.failures} in the latency run` : ''}${r.crashed ? ', PROCESS CRASHED' : ''}.`,
        'Its req/s is NOT a valid result. Status codes per round:',
        ...runs.courier.map((x, i) => `  round ${i + 1}: ${JSON.stringify(x.statusCodeStats)}`),
      ]);
    }
    const others = Object.values(summary).filter((s) => s.name !== 'courier' && s.failures > 0);
    if (others.length)
      console.log(`\nwarning: baseline failures: ${others.map((s) => `${s.name} ${s.failures}`).join(', ')}`);
    if (courierSummary.logBytes > 0)
      console.log(`\nnote: courier wrote ${courierSummary.logBytes} bytes of logs during the measured runs`);
  } finally {
    await stopAll();
    const leftovers = [];
    for (const e of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
      try {
        if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(tmp)) leftovers.push(Number(e));
      } catch {}
    }
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    if (leftovers.length)
      console.log(`warning: killed ${leftovers.length} leftover process(es): ${leftovers}`);
    rmSync(tmp, { recursive: true, force: true });
  }

  mkdirSync(join(BENCH, 'results'), { recursive: true });
  const file = join(BENCH, 'results', `${started.toISOString().replace(/[:.]/g, '-')}.json`);
  results.finished = new Date().toISOString();
  results.machine.loadavgEnd = loadavg().map((x) => Math.round(x * 100) / 100);
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  // biome.json covers bench/**, so format the file the way `npm run lint` wants it; otherwise a
  // local results file would fail everyone's lint.
  const biome = join(ROOT, 'node_modules', '@biomejs', 'biome', 'bin', 'biome');
  spawnSync(process.execPath, [biome, 'format', '--write', file], { stdio: 'ignore', cwd: ROOT });
  console.log(`\nresults: ${file}`);
  process.exitCode = exitCode;
}

main().catch(async (err) => {
  if (stopping) return; // interrupted: the signal handler cleans up and exits
  console.error(err?.stack ?? err);
  await stopAll();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  process.exit(1);
});
