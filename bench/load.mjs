// The load generator, run as its own process so the harness can pin it (taskset) to the core the
// proxy under test is not using. Usage: node bench/load.mjs '<json options>'; prints one JSON
// result line on stdout. Options: url, connections, pipelining, duration (s), overallRate,
// headers. Exits when its stdin closes, so it cannot outlive the harness.

import autocannon from 'autocannon';
import { exitWithParent } from './lib/child.mjs';

const opts = JSON.parse(process.argv[2] ?? '{}');

// autocannon's own latency histogram has 1 ms resolution, too coarse for a proxy that adds
// tens of microseconds, so record every response time (a float in ms) at 10 µs resolution too.
const BUCKET_MS = 0.01;
const MAX_BUCKET = 1_000_000; // 10 s
const hist = new Uint32Array(MAX_BUCKET + 1);
let recorded = 0;
let sumMs = 0;

function percentile(p) {
  if (recorded === 0) return null;
  const rank = Math.ceil((p / 100) * recorded);
  let seen = 0;
  for (let i = 0; i <= MAX_BUCKET; i++) {
    seen += hist[i];
    if (seen >= rank) return Math.round(i * BUCKET_MS * 1000) / 1000;
  }
  return MAX_BUCKET * BUCKET_MS;
}

const instance = autocannon({
  url: opts.url,
  connections: opts.connections ?? 64,
  pipelining: opts.pipelining ?? 1,
  duration: opts.duration ?? 10,
  headers: opts.headers ?? {},
  timeout: opts.timeout ?? 10,
  ...(opts.overallRate ? { overallRate: opts.overallRate } : {}),
});

instance.on('response', (_client, _status, _bytes, ms) => {
  const b = Math.round(ms / BUCKET_MS);
  hist[Math.min(b, MAX_BUCKET)]++;
  recorded++;
  sumMs += ms;
});

exitWithParent(() => instance.stop());

const r = await instance;
const out = {
  url: opts.url,
  duration: r.duration,
  total: r.requests.total,
  sent: r.requests.sent,
  rps: r.duration > 0 ? r.requests.total / r.duration : 0,
  rpsAverage: r.requests.average,
  errors: r.errors,
  timeouts: r.timeouts,
  non2xx: r.non2xx,
  mismatches: r.mismatches ?? 0,
  resets: r.resets ?? 0,
  statusCodeStats: r.statusCodeStats,
  latency: {
    p50: percentile(50),
    p90: percentile(90),
    p99: percentile(99),
    p999: percentile(99.9),
    max: percentile(100),
    mean: recorded ? sumMs / recorded : null,
    samples: recorded,
  },
  autocannonLatency: { p50: r.latency.p50, p99: r.latency.p99, average: r.latency.average },
};
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
