// Summaries and tables of bench/run.mjs.

export const median = (xs) => {
  const s = xs.filter((x) => x !== null && x !== undefined && !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sum = (xs) => xs.reduce((a, b) => a + (b ?? 0), 0);
const missing = (n) => n === null || n === undefined || Number.isNaN(n);
export const fmtInt = (n) => (missing(n) ? '-' : Math.round(n).toLocaleString('en-US'));
export const fmtMs = (n) => (missing(n) ? '-' : n.toFixed(2));
export const fmtMb = (n) => (missing(n) ? '-' : n.toFixed(0));
export const fmtRatio = (a, b) => (a && b ? `${(a / b).toFixed(2)}×` : '-');
export const fmtSigned = (n) => (missing(n) ? '-' : `${n >= 0 ? '+' : ''}${n.toFixed(2)}`);
const fmt1 = (n) => (missing(n) ? '-' : n.toFixed(1));
const fmtErrors = (r) =>
  `${(r.errors ?? 0) + (r.timeouts ?? 0)} / ${r.non2xx ?? 0}${r.crashed ? ' CRASHED' : ''}`;

export function table(header, rows) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

export function loudFlag(lines) {
  const bar = '!'.repeat(100);
  console.log(`\n${bar}\n${lines.map((l) => `!!! ${l}`).join('\n')}\n${bar}\n`);
}

/** Medians over rounds, summed failures, RSS first/last/max, CPU per request and cores busy. */
export function summarize(name, runs) {
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
    mismatches: sum(runs.map((r) => r.mismatches)),
    crashed: runs.some((r) => r.crashed),
    failures: sum(runs.map((r) => r.failures ?? 1)),
    rssMb: runs.length && runs[0].rssMb !== undefined ? Math.max(...runs.map((r) => r.rssMaxMb ?? 0)) : null,
    rssFirstMb: runs[0]?.rssMb ?? null,
    rssPerProcessMb: runs.at(-1)?.rssPerProcessMb ?? null,
    rssLastMb: runs.at(-1)?.rssMb ?? null,
    cpuUsPerReq: median(runs.map((r) => r.cpuUsPerReq)),
    cores: median(runs.map((r) => r.cores)),
    throttledShare: median(runs.map((r) => r.throttledShare)),
    logBytes: sum(runs.map((r) => r.logBytes)),
  };
}

/**
 * Headroom: direct ÷ the fastest proxy. Below `min` the load side (load generator + upstream) was
 * the wall for at least the fastest target, so req/s ratios between targets are not theirs.
 */
export function headroom(summary, min, directName = 'direct') {
  const proxies = Object.values(summary).filter((s) => s.name !== directName && s.rps);
  const fastest = proxies.reduce((a, s) => (a && a.rps >= s.rps ? a : s), undefined);
  const direct = summary[directName]?.rps ?? null;
  const ratio = fastest && direct ? direct / fastest.rps : null;
  return {
    direct,
    fastest: fastest?.name ?? null,
    fastestRps: fastest?.rps ?? null,
    ratio,
    min,
    ok: ratio >= min,
  };
}

const rssCell = (s) =>
  s.rssMb === null
    ? '-'
    : `${fmtMb(s.rssFirstMb)} → ${fmtMb(s.rssLastMb)} (max ${fmtMb(s.rssMb)})` +
      (s.rssPerProcessMb?.length > 1 ? ` = ${s.rssPerProcessMb.map(fmtMb).join(' + ')}` : '');

/** The throughput table; ratio columns read "withheld" when the run was load-bound. */
export function throughputTable(names, summary, { ok, quota, notSaturated = [] }) {
  const ref = (n) => summary[n]?.rps;
  const ratio = (a, b) => (ok ? fmtRatio(a, b) : 'withheld');
  const header = ['target', 'req/s', 'per round'];
  if (quota) header.push('req/s per core');
  header.push('courier ÷ it', '× http-proxy', '× nginx', '× direct', 'p50 ms', 'p99 ms', 'errors / non-2xx');
  header.push('cores busy', 'CPU µs/req', 'RSS MB (round 1 → last)');
  const rows = names.map((name) => {
    const s = summary[name];
    const row = [name, fmtInt(s.rps), s.rpsPerRound.map((x) => fmtInt(x)).join(' / ')];
    if (quota) row.push(name === 'direct' ? '-' : fmtInt(s.rps / quota));
    row.push(
      name === 'courier' || name === 'direct'
        ? '-'
        : `${ratio(ref('courier'), s.rps)}${ok && notSaturated.includes(name) ? '*' : ''}`,
      ratio(s.rps, ref('http-proxy')),
      ratio(s.rps, ref('nginx')),
      fmtRatio(s.rps, ref('direct')),
      fmtMs(s.p50),
      fmtMs(s.p99),
      fmtErrors(s),
      s.cores === null ? '-' : `${s.cores.toFixed(2)}${notSaturated.includes(name) ? ' *' : ''}`,
      fmt1(s.cpuUsPerReq),
      rssCell(s),
    );
    return row;
  });
  return table(header, rows);
}

/** Why a target fell below the offered rate: its own CPU, or a load side that fell behind. */
function fixedRateNote(r, offered) {
  if (!(r.rps < offered * 0.9)) return '';
  if (r.cores !== undefined && r.cores !== null && r.cores < 0.8)
    return `below the offered rate at ${r.cores.toFixed(2)} cores busy: the load side fell behind (busy machine?)`;
  return 'SATURATED: below the offered rate, latency is queueing';
}

/** The fixed-rate table: latency added over direct and CPU µs per request at the same load. */
export function fixedRateTable(order, lat, rate) {
  const d = lat.direct;
  const header = ['target', 'achieved req/s', 'p50 ms', 'p99 ms', 'p50 added', 'p99 added'];
  header.push('CPU µs/req', "CPU ÷ courier's", 'errors / non-2xx', 'note');
  const courierCpu = lat.courier?.cpuUsPerReq;
  return table(
    header,
    order.map((name) => {
      const r = lat[name];
      const isDirect = name === 'direct';
      return [
        name,
        fmtInt(r.rps),
        fmtMs(r.latency?.p50),
        fmtMs(r.latency?.p99),
        isDirect ? '-' : fmtSigned(r.latency?.p50 - d.latency?.p50),
        isDirect ? '-' : fmtSigned(r.latency?.p99 - d.latency?.p99),
        fmt1(r.cpuUsPerReq),
        isDirect || name === 'courier' ? '-' : fmtRatio(r.cpuUsPerReq, courierCpu),
        fmtErrors(r),
        fixedRateNote(r, Math.min(rate, d.rps)),
      ];
    }),
  );
}

/**
 * A table of the TLS and TCP rows (bench/lib/tls-rows.mjs): `unit` names what is counted (req/s,
 * handshakes/s, MiB/s); `courier` and `nginx` name the rows the ratio columns divide by; `direct`
 * (optional) the load side's own ceiling. Ratio columns read "withheld" when `ok` is false.
 */
export function rowsTable(
  names,
  summary,
  { unit, per, quota, ok, notSaturated = [], courier, nginx, direct },
) {
  const ratio = (a, b) => (ok ? fmtRatio(a, b) : 'withheld');
  const header = ['target', unit, 'per round'];
  if (quota) header.push(`${unit} per core`);
  header.push('courier ÷ it', '× nginx');
  if (direct) header.push('× direct');
  header.push('p50 ms', 'p99 ms', 'errors', 'cores busy', `CPU µs/${per}`, 'RSS MB (max)');
  const rows = names.map((name) => {
    const s = summary[name];
    const isDirect = name === direct;
    const row = [name, fmtInt(s.rps), s.rpsPerRound.map((x) => fmtInt(x)).join(' / ')];
    if (quota) row.push(isDirect ? '-' : fmtInt(s.rps / quota));
    row.push(
      name === courier || isDirect
        ? '-'
        : `${ratio(summary[courier]?.rps, s.rps)}${ok && notSaturated.includes(name) ? '*' : ''}`,
      isDirect ? '-' : ratio(s.rps, summary[nginx]?.rps),
    );
    if (direct) row.push(fmtRatio(s.rps, summary[direct]?.rps));
    row.push(
      fmtMs(s.p50),
      fmtMs(s.p99),
      `${s.errors + s.non2xx + (s.mismatches ?? 0)}${s.crashed ? ' CRASHED' : ''}`,
      s.cores === null ? '-' : `${s.cores.toFixed(2)}${notSaturated.includes(name) ? ' *' : ''}`,
      fmt1(s.cpuUsPerReq),
      fmtMb(s.rssMb),
    );
    return row;
  });
  return table(header, rows);
}
