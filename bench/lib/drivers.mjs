// Load drivers. Both run as their own (pinnable) process and return the same shape:
// { driver, total, duration, rps, errors, timeouts, non2xx, mismatches, statusCodeStats,
//   latency: { p50, p90, p99 } (ms) }.
// (bench/tcp-load.mjs returns it too, in MiB: `total` MiB moved, `rps` MiB/s.)
//
// - wrk (C, epoll) for throughput: on one core it drives several times what autocannon can, so
//   the load side stops being the wall; its latency percentiles have µs resolution.
// - autocannon (bench/load.mjs) for the fixed-rate run (`overallRate`; wrk has no fixed rate) and
//   for throughput when wrk is not installed.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { forget, killGroup, launch } from '../../scripts/lib/procs.mjs';

const BENCH = join(import.meta.dirname, '..');

/** wrk's version line, or undefined when it is not installed. */
export function wrkVersion() {
  const r = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
  if (r.error) return undefined;
  return /wrk\s+(\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? 'unknown';
}

async function runChild(name, cmd, args, prefix, seconds, env) {
  const h = launch(name, cmd, args, { prefix, env: env ? { ...process.env, ...env } : undefined });
  const timer = setTimeout(() => killGroup(h, 'SIGKILL'), (seconds + 60) * 1000);
  await h.done;
  clearTimeout(timer);
  forget(h);
  return h;
}

/** One autocannon run (bench/load.mjs). opts: url, headers, connections, duration, overallRate. */
export async function autocannon(opts, prefix = []) {
  const h = await runChild(
    'autocannon',
    process.execPath,
    [join(BENCH, 'load.mjs'), JSON.stringify({ pipelining: 1, ...opts })],
    prefix,
    opts.duration,
  );
  const line = h.out.split('\n').find((l) => l.startsWith('{"url"'));
  if (!line) throw new Error(`autocannon failed (exit ${h.code}):\n${h.out}`);
  return { driver: 'autocannon', ...JSON.parse(line) };
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const toMs = (v, unit) => (unit === 'us' ? Number(v) / 1000 : Number(v) * UNIT_MS[unit]);

/** Parse wrk's text report (with --latency). Exported for the tests. */
export function parseWrk(text) {
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(text);
  if (!total) return undefined;
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m|h)`, 'm').exec(text);
    return m ? toMs(m[1], m[2]) : null;
  };
  const duration = toMs(total[2], total[3]) / 1000;
  const n = Number(total[1]);
  return {
    total: n,
    duration,
    rps: duration > 0 ? n / duration : 0,
    // read errors include the resets of connections closed when the run stops; counted as errors
    // like autocannon's, so a proxy that drops connections shows up.
    errors: sock ? Number(sock[1]) + Number(sock[2]) + Number(sock[3]) : 0,
    timeouts: sock ? Number(sock[4]) : 0,
    non2xx,
    mismatches: 0,
    statusCodeStats: { '2xx': n - non2xx, 'non-2xx': non2xx },
    latency: { p50: pct(50), p90: pct(90), p99: pct(99) },
  };
}

/**
 * One wrk run: one thread, `connections` connections, whole seconds. `env` adds to wrk's
 * environment (OPENSSL_CONF for the handshake rows: bench/lib/tls-rows.mjs).
 */
export async function wrk(opts, prefix = []) {
  const seconds = Math.max(1, Math.round(opts.duration));
  const args = ['-t1', `-c${opts.connections}`, `-d${seconds}s`, '--latency', '--timeout', '10s'];
  for (const [k, v] of Object.entries(opts.headers ?? {})) args.push('-H', `${k}: ${v}`);
  args.push(opts.url);
  const h = await runChild('wrk', 'wrk', args, prefix, seconds, opts.env);
  const r = parseWrk(h.out);
  if (!r) throw new Error(`wrk failed (exit ${h.code}):\n${h.out}`);
  return { driver: 'wrk', url: opts.url, ...r };
}

/**
 * One bench/tcp-load.mjs run: `mib` MiB over `connections` connections to `port`, each
 * acknowledged by the sink (bench/tcp-sink.mjs). Returns the common shape in MiB.
 */
export async function tcpLoad(opts, prefix = []) {
  const { port, mib, connections } = opts;
  const timeoutS = opts.timeoutS ?? 120;
  const h = await runChild(
    'tcp-load',
    process.execPath,
    [
      join(BENCH, 'tcp-load.mjs'),
      JSON.stringify({ port, bytes: Math.round(mib * 2 ** 20), connections, timeoutS }),
    ],
    prefix,
    timeoutS,
  );
  const line = h.out.split('\n').find((l) => l.startsWith('{"bytes"'));
  if (!line) throw new Error(`tcp-load failed (exit ${h.code}):\n${h.out}`);
  const r = JSON.parse(line);
  const total = r.acked / 2 ** 20;
  return {
    driver: 'tcp-load',
    port,
    total,
    duration: r.seconds,
    rps: r.seconds > 0 ? total / r.seconds : 0,
    errors: r.errors,
    timeouts: r.timedOut ? 1 : 0,
    non2xx: 0,
    // Bytes sent that the sink did not count: lost or cut off on the way.
    mismatches: r.acked === r.bytes ? 0 : 1,
    statusCodeStats: {},
    latency: { p50: null, p90: null, p99: null },
  };
}
