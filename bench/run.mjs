// The benchmark harness (`npm run bench`; see bench/README.md and the README's Benchmarks section).
//
// Starts an upstream, then the targets -- courier in router mode with a realistic Istio config,
// http-proxy, http-proxy-3, fastify + @fastify/reply-from, nginx (when installed) and a direct (no
// proxy) baseline -- each pinned to one core, the load generator and the upstream to the other.
// Throughput: wrk (autocannon when wrk is missing) in interleaved rounds after a warm-up, every
// proxy capped to the same CPU quota (cgroups, as root) so that each saturates below what the load
// side can drive; the run checks that headroom (direct ≥ 1.5× the fastest target) and withholds
// the ratios when it is missing. Then a fixed-rate autocannon run for latency and CPU µs/request
// at one common load, and with --scaling courier --concurrency 1 vs 2. Prints tables, writes
// bench/results/<timestamp>.json, and kills every child at the end, on error and on Ctrl-C.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  canRun,
  groupUsage,
  pidsMentioning,
  ROOT,
  stop,
  stopAll,
  stopChildrenOnSignals,
} from '../scripts/lib/procs.mjs';
import { autoQuota, cpuGroup, detectCgroups, PERIOD_US } from './lib/cpu-quota.mjs';
import { autocannon, wrk, wrkVersion } from './lib/drivers.mjs';
import { parseArgs, TLS_ROWS } from './lib/options.mjs';
import {
  fixedRateTable,
  fmtInt,
  fmtRatio,
  headroom,
  loudFlag,
  summarize,
  table,
  throughputTable,
} from './lib/report.mjs';
import {
  courierRequestsByCode,
  HEADERS,
  nginxBinary,
  PATH,
  preflight,
  startCourier,
  startForwarder,
  startNginx,
  startUpstream,
  upstreamCounts,
} from './lib/targets.mjs';
import { tlsRows } from './lib/tls-rows.mjs';

const BENCH = join(ROOT, 'bench');
const TASKSET = canRun('taskset', ['-V']);
/** --cpu-quota auto sizes the quota so that the fastest target would run at direct ÷ 2. */
const AUTO_HEADROOM = 2;

const tempDirs = new Set();
const groups = new Set();
const cleanupDirs = () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  for (const g of groups) g.remove();
};
const interrupted = stopChildrenOnSignals(cleanupDirs);

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

const pinPrefix = (cpu) => (cpu !== undefined && TASKSET ? ['taskset', '-c', cpu] : []);

/** One load run against a target, with the target's RSS and CPU sampled around it. */
async function measure(t, drive, opts, loadPrefix) {
  if (t.h?.exited) return { crashed: true, exit: t.h.code, failures: 1 };
  const before = t.h ? groupUsage(t.h.pgid) : undefined;
  const throttledBefore = t.group?.throttled();
  const logBefore = t.h?.outBytes ?? 0;
  const countsBefore = t.kind === 'courier' ? await upstreamCounts(t.upstream) : undefined;
  let rssMax = before?.rssMb ?? 0;
  const sampler = t.h
    ? setInterval(() => {
        rssMax = Math.max(rssMax, groupUsage(t.h.pgid).rssMb);
      }, 500)
    : undefined;
  const r = await drive(
    { url: t.url ?? `http://127.0.0.1:${t.port}${PATH}`, headers: HEADERS, ...opts },
    loadPrefix,
  );
  clearInterval(sampler);
  if (t.h) {
    const after = groupUsage(t.h.pgid);
    const cpuMs = after.cpuMs - before.cpuMs;
    Object.assign(r, {
      rssMb: after.rssMb,
      rssMaxMb: Math.max(rssMax, after.rssMb),
      processes: after.processes,
      rssPerProcessMb: after.perProcessMb,
      cpuUsPerReq: r.total > 0 ? (cpuMs * 1000) / r.total : null,
      cores: r.duration > 0 ? cpuMs / 1000 / r.duration : null,
      logBytes: t.h.outBytes - logBefore,
    });
    if (throttledBefore) {
      const th = t.group.throttled();
      const periods = th.periods - throttledBefore.periods;
      r.throttledShare = periods > 0 ? (th.throttled - throttledBefore.throttled) / periods : null;
    }
    if (t.h.exited) r.crashed = true;
  }
  if (countsBefore) {
    const after = await upstreamCounts(t.upstream);
    r.upstreamHits = after.map((n, i) => n - countsBefore[i]);
  }
  r.failures = r.errors + r.timeouts + r.non2xx + r.mismatches + (r.crashed ? 1 : 0);
  return r;
}

/** Start every target on the proxy core (each in its own CPU group when quotas are available). */
async function startTargets(o, tmp, upstream, proxyCpu, cg, nginx) {
  const targets = [];
  for (const kind of o.targets) {
    if (kind === 'nginx' && !nginx) continue;
    const group = cg.ok ? cpuGroup(cg, kind) : undefined;
    if (group) groups.add(group);
    const prefix = [...(group?.prefix ?? []), ...pinPrefix(proxyCpu)];
    let t;
    if (kind === 'courier')
      t = await startCourier(tmp, upstream, { concurrency: 1, prefix, label: 'main', profile: o.profile });
    else if (kind === 'nginx') t = await startNginx(nginx.bin, tmp, upstream, prefix);
    else t = await startForwarder(kind, upstream, prefix);
    t.group = group;
    targets.push(t);
  }
  targets.push({ name: 'direct', kind: 'direct', port: upstream.ports[0] });
  for (const t of targets) await preflight(t);
  return targets;
}

const setQuota = (targets, cores) => {
  for (const t of targets) t.group?.set(cores);
};

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const started = new Date();
  const cpuList = allowedCpus();
  const pin = TASKSET && cpuList.length >= 2;
  const proxyCpu = pin ? String(cpuList[0]) : undefined;
  const loadCpu = pin ? String(cpuList[1]) : undefined;
  const loadPrefix = pinPrefix(loadCpu);
  const nginx = o.targets.includes('nginx') ? nginxBinary() : undefined;
  const wrkV = wrkVersion();
  if (o.driver === 'wrk' && !wrkV)
    throw new Error('--driver wrk: wrk is not installed (apt-get install wrk)');
  const driverName = o.driver === 'auto' ? (wrkV ? 'wrk' : 'autocannon') : o.driver;
  const drive = driverName === 'wrk' ? wrk : autocannon;
  const cg = o.cpuQuota === 'off' ? { ok: false, why: '--cpu-quota off' } : detectCgroups();
  const machine = {
    cpus: cpuList.length,
    cpuModel: cpus()[0]?.model,
    memGb: Math.round(totalmem() / 2 ** 30),
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100),
    node: process.version,
    nginx: nginx?.version ?? null,
    wrk: wrkV ?? null,
    taskset: TASKSET,
    cgroups: cg.ok ? cg.kind : null,
  };
  const pinning = pin
    ? `proxy on CPU ${proxyCpu}; load generator + upstream on CPU ${loadCpu}`
    : 'no pinning (taskset missing or < 2 CPUs)';
  console.log(
    `courier bench: ${o.rounds} round(s) × ${o.duration}s, warm-up ${o.warmup}s, ${o.connections} connections, pipelining 1`,
  );
  const tlsSelected = TLS_ROWS.filter((r) => o.rows.includes(r));
  console.log(
    `rows: ${o.rows.includes('http') ? 'http (plaintext)' : 'no plaintext rows'}${tlsSelected.length ? `, then ${tlsSelected.join(', ')} (${o.tlsRounds} round(s) each)` : ''}`,
  );
  console.log(`machine: ${machine.cpus} CPU(s) ${machine.cpuModel ?? ''}, node ${machine.node}; ${pinning}`);
  console.log(
    `throughput driver: ${driverName}${wrkV ? ` (wrk ${wrkV})` : ''}` +
      (driverName === 'autocannon' && !wrkV
        ? ' -- wrk is not installed (apt-get install wrk): autocannon tops out near 20-25k req/s on one core, so expect the headroom check to withhold the ratios'
        : ''),
  );
  console.log(
    `cpu quota: ${cg.ok ? `cgroup ${cg.kind}, ${o.cpuQuota === 'auto' ? 'auto (sized after the warm-up)' : `${o.cpuQuota} core`}, period ${PERIOD_US / 1000} ms` : `none (${cg.why}): every proxy gets a whole core`}`,
  );
  console.log(
    `nginx: ${nginx ? nginx.version : o.targets.includes('nginx') ? 'not installed, skipped' : 'skipped'}`,
  );
  if (machine.loadavg[0] > machine.cpus * 0.5)
    console.log(`warning: load average ${machine.loadavg.join(' ')} -- the machine is busy, expect noise`);

  const tmp = mkdtempSync(join(tmpdir(), 'courier-bench-'));
  tempDirs.add(tmp);
  const results = {
    date: started.toISOString(),
    machine,
    options: o,
    pinning,
    driver: driverName,
    path: PATH,
    headers: HEADERS,
  };
  let exitCode = 0;
  try {
    const upstream = await startUpstream(loadPrefix);
    const plain = o.rows.includes('http')
      ? await plainRows(o, {
          tmp,
          upstream,
          proxyCpu,
          cg,
          nginx,
          drive,
          driverName,
          loadPrefix,
          pinning,
          results,
        })
      : undefined;
    if (plain?.failed) exitCode = 2;

    if (TLS_ROWS.some((r) => o.rows.includes(r))) {
      results.tls = await tlsRows({
        o,
        tmp,
        cg,
        nginx,
        upstream,
        measure,
        loadPrefix,
        loadCpu,
        pinning,
        proxyPrefix: pinPrefix(proxyCpu),
        addGroup: (g) => groups.add(g),
        plain: plain?.courier,
      });
      if (results.tls.courierFailures > 0) {
        exitCode = 2;
        loudFlag([
          `COURIER FAILED IN THE TLS/TCP ROWS: ${results.tls.courierFailures} errors, timeouts, non-2xx or lost bytes.`,
          'Its figures there are NOT valid results (see the rows above and results.tls).',
        ]);
      }
    }

    if (o.scaling) {
      await stop(upstream.h);
      results.scaling = await scaling(o, tmp, cpuList, drive);
      if (results.scaling.failures > 0) exitCode = 2;
    }
  } finally {
    await stopAll();
    const leftovers = pidsMentioning(tmp);
    for (const pid of leftovers) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    if (leftovers.length)
      console.log(`warning: killed ${leftovers.length} leftover process(es): ${leftovers}`);
    cleanupDirs();
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

/**
 * The plaintext rows: every target and direct, warm-up, quota, interleaved rounds, the headroom
 * and saturation verdicts, the fixed-rate run, courier's split and metrics. Returns whether courier
 * failed requests, and courier's summary and quota (the TLS rows compare against them).
 */
async function plainRows(
  o,
  { tmp, upstream, proxyCpu, cg, nginx, drive, driverName, loadPrefix, pinning, results },
) {
  let failed = false;
  const targets = await startTargets(o, tmp, upstream, proxyCpu, cg, nginx);
  const courier = targets[0];
  const names = targets.map((t) => t.name);

  // Warm-up without a quota (the JIT warms faster); it also measures what the auto quota needs.
  const base = { connections: o.connections };
  console.log(`\nwarm-up: ${names.join(', ')}`);
  const warmup = {};
  for (const t of targets)
    warmup[t.name] = await measure(t, drive, { ...base, duration: o.warmup }, loadPrefix);
  let quota = null;
  if (cg.ok && o.cpuQuota === 'auto') {
    const cheapest = Math.min(...names.map((n) => warmup[n].cpuUsPerReq ?? Number.POSITIVE_INFINITY));
    quota = autoQuota(warmup.direct.rps, cheapest, AUTO_HEADROOM);
    console.log(
      `auto quota: direct ${fmtInt(warmup.direct.rps)} req/s in the warm-up, the cheapest target ` +
        `${cheapest.toFixed(1)} CPU µs/req: ${quota} core, at which it would run at about direct ÷ ${AUTO_HEADROOM}`,
    );
  } else if (cg.ok) quota = Math.min(1, o.cpuQuota);
  setQuota(targets, quota);

  const runs = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 1; round <= o.rounds; round++) {
    const line = [];
    for (const t of targets) {
      const r = await measure(t, drive, { ...base, duration: o.duration }, loadPrefix);
      runs[t.name].push(r);
      line.push(`${t.name} ${fmtInt(r.rps)}${r.failures ? ` (${r.failures} FAILED)` : ''}`);
    }
    console.log(`round ${round}/${o.rounds}: ${line.join(' | ')}`);
  }

  const summary = Object.fromEntries(names.map((n) => [n, summarize(n, runs[n])]));
  const room = headroom(summary, o.headroom);
  // A proxy that did not use its quota (or its core) was held back by something else -- the
  // load side, or neighbours on its core -- so its req/s understates it.
  const notSaturated = names.filter(
    (n) => n !== 'direct' && summary[n].cores !== null && summary[n].cores < (quota ?? 1) * 0.85,
  );
  console.log(
    `\nthroughput (${driverName}): median of ${o.rounds} interleaved round(s) × ${o.duration}s, ${o.connections} connections, pipelining 1; ` +
      `${quota ? `each proxy capped to ${quota} core` : 'no CPU quota'} (${pinning})\n`,
  );
  console.log(throughputTable(names, summary, { ok: room.ok, quota, notSaturated }));
  const headroomLine = `headroom: direct ${fmtInt(room.direct)} req/s = ${room.ratio?.toFixed(2) ?? '-'}× the fastest target (${room.fastest} ${fmtInt(room.fastestRps)}), required ${room.min}×`;
  if (room.ok) console.log(`\n${headroomLine}: the load side was not the wall`);
  else
    loudFlag([
      `LOAD-BOUND RUN: ${headroomLine}.`,
      'The load generator and upstream, not the proxies, set the pace: req/s ratios are withheld.',
      driverName === 'wrk'
        ? 'Lower --cpu-quota (or let --cpu-quota auto size it) or free the load core.'
        : 'Install wrk (apt-get install wrk) and/or run as root so each proxy gets a CPU quota.',
    ]);
  if (notSaturated.length)
    console.log(
      `note: ${notSaturated.join(', ')} used less than 85% of ${quota ? `the ${quota}-core quota` : 'its core'} (cores busy): ` +
        'not CPU-bound in the rounds, so its req/s understates it (load side, or neighbours on its core); ratios against it are marked *',
    );
  const hits = runs[courier.name].reduce(
    (acc, r) => acc.map((n, i) => n + (r.upstreamHits?.[i] ?? 0)),
    [0, 0],
  );
  const v2Share = hits[0] + hits[1] ? hits[1] / (hits[0] + hits[1]) : null;
  const vs = names
    .filter((n) => n !== 'courier' && n !== 'direct')
    .map(
      (n) =>
        `${n} ${room.ok ? fmtRatio(summary.courier.rps, summary[n].rps) : 'withheld'}${notSaturated.includes(n) ? '*' : ''}`,
    );
  console.log(
    `\n${vs.length ? `courier ÷ ${vs.join(', ')}   ` : ''}courier 90/10 split: ${v2Share === null ? '-' : `${(v2Share * 100).toFixed(1)}% to v2`}`,
  );
  Object.assign(results, {
    warmup,
    runs,
    summary,
    quota,
    headroom: room,
    notSaturated,
    courierSplit: { hits, v2Share },
  });

  // Fixed offered load, no quota: latency, and CPU per request at the same rate for everyone.
  if (o.latencyDuration > 0 && o.rate > 0) {
    setQuota(targets, null);
    const order = [targets.at(-1), ...targets.slice(0, -1)]; // direct first
    const lat = {};
    for (const t of order)
      lat[t.name] = await measure(
        t,
        autocannon,
        { ...base, duration: o.latencyDuration, overallRate: o.rate },
        loadPrefix,
      );
    console.log(
      `\nfixed rate: ${o.rate} req/s offered by autocannon (${o.connections} connections, ${o.latencyDuration}s each, no CPU quota; added = minus direct)\n`,
    );
    console.log(
      fixedRateTable(
        order.map((t) => t.name),
        lat,
        o.rate,
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

  if (courierFailures > 0) {
    failed = true;
    const r = courierSummary;
    loudFlag([
      `COURIER FAILED REQUESTS UNDER LOAD: ${r.errors} socket errors/timeouts, ${r.non2xx} non-2xx` +
        `${courierLat?.failures ? `, ${courierLat.failures} in the fixed-rate run` : ''}${r.crashed ? ', PROCESS CRASHED' : ''}.`,
      'Its req/s is NOT a valid result. Status codes per round:',
      ...runs.courier.map((x, i) => `  round ${i + 1}: ${JSON.stringify(x.statusCodeStats)}`),
    ]);
  }
  const others = Object.values(summary).filter((s) => s.name !== 'courier' && s.failures > 0);
  if (others.length)
    console.log(`\nwarning: baseline failures: ${others.map((s) => `${s.name} ${s.failures}`).join(', ')}`);
  if (courierSummary.logBytes > 0)
    console.log(`\nnote: courier wrote ${courierSummary.logBytes} bytes of logs during the measured runs`);
  return { failed, courier: { summary: courierSummary, quota } };
}

/** courier --concurrency 1 vs 2, no quota; pinned to two CPUs only when there are four. */
async function scaling(o, tmp, cpuList, drive) {
  const many = cpuList.length >= 4;
  const proxyPrefix = pinPrefix(many ? `${cpuList[0]},${cpuList[1]}` : undefined);
  const loadPrefix = pinPrefix(many ? cpuList.slice(2).join(',') : undefined);
  const note = many
    ? `courier on CPUs ${cpuList[0]},${cpuList[1]}; load generator + upstream on ${cpuList.slice(2).join(',')}`
    : `unpinned: only ${cpuList.length} CPU(s), so courier, the load generator and the upstream share them`;
  const upstream = await startUpstream(loadPrefix);
  const c1 = await startCourier(tmp, upstream, { concurrency: 1, prefix: proxyPrefix, label: 'scaling' });
  const c2 = await startCourier(tmp, upstream, { concurrency: 2, prefix: proxyPrefix, label: 'scaling' });
  c1.name = 'courier c1';
  const base = { connections: o.connections };
  for (const t of [c1, c2]) {
    await preflight(t);
    await measure(t, drive, { ...base, duration: o.warmup }, loadPrefix);
  }
  const runs = { [c1.name]: [], [c2.name]: [] };
  for (let round = 1; round <= o.rounds; round++)
    for (const t of [c1, c2])
      runs[t.name].push(await measure(t, drive, { ...base, duration: o.duration }, loadPrefix));
  const s1 = summarize(c1.name, runs[c1.name]);
  const s2 = summarize(c2.name, runs[c2.name]);
  console.log(`\nscaling: courier --concurrency 1 vs 2 (${note})\n`);
  console.log(
    table(
      ['target', 'req/s', 'per round', '× c1', 'p50 ms', 'p99 ms', 'errors / non-2xx', 'RSS MB (max)'],
      [s1, s2].map((s) => [
        s.name,
        fmtInt(s.rps),
        s.rpsPerRound.map((x) => fmtInt(x)).join(' / '),
        fmtRatio(s.rps, s1.rps),
        s.p50?.toFixed(2) ?? '-',
        s.p99?.toFixed(2) ?? '-',
        `${s.errors} / ${s.non2xx}${s.crashed ? ' CRASHED' : ''}`,
        s.rssMb?.toFixed(0) ?? '-',
      ]),
    ),
  );
  for (const h of [c1.h, c2.h, upstream.h]) await stop(h);
  return { note, runs, summary: { c1: s1, c2: s2 }, failures: s1.failures + s2.failures };
}

main().catch(async (err) => {
  if (interrupted()) return; // the signal handler cleans up and exits
  console.error(err?.stack ?? err);
  await stopAll();
  cleanupDirs();
  process.exit(1);
});
