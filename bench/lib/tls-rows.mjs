// The TLS and TCP rows of `npm run bench` (`--rows https,handshakes,tcp`), after the plaintext
// rows and with the same method: every proxy pinned to the proxy core and capped to the same CPU
// quota (sized per row from an uncapped warm-up so the fastest target runs at about half of what
// the load side can drive), interleaved rounds, medians, and checks that withhold a ratio the load
// side could have set.
//
// One courier (pilot-agent router, one worker) serves the plaintext bench config plus an HTTPS
// server (SIMPLE, credentialName -> a `kind: Secret` document) and a TCP server; one nginx serves
// the same upstream over `listen ... ssl` and a `stream` proxy. Certificates: one ECDSA P-256
// self-signed certificate made with the openssl CLI for the run.
//
// - https: wrk over https, keep-alive, --connections, --duration: courier https, nginx https,
//   courier's own plaintext server (same process, same rounds: the HTTPS ÷ plaintext ratio) and
//   "direct https" (bench/upstream.mjs --tls): the load side's ceiling with wrk's TLS work, a
//   conservative one (there the upstream terminates TLS too, on the load core).
// - handshakes: wrk with `Connection: close`, so every request is a new connection, under an
//   OPENSSL_CONF that caps wrk at TLS 1.2 without the session ticket extension. wrk keeps each
//   connection's session across reconnects (SSL_clear) and resumes whenever the server lets it
//   (measured with TLS 1.3 tickets: 5,305 of nginx's 5,321 handshakes resumed, at twice the rate,
//   and half of a node:tls server's), and courier's tickets cannot be turned off from Istio
//   config; a client config cannot stop TLS 1.3 resumption either. Without tickets, a TLS 1.2
//   server resumes only from a session cache, which neither server keeps (nginx's
//   ssl_session_cache defaults to none, Node's server has no resumeSession listener). So every
//   handshake is a full one (ECDHE + ECDSA signature); `openssl s_client -reconnect` under the
//   same OPENSSL_CONF checks it against both servers before the rows run.
// - tcp: bench/tcp-load.mjs streams over 8 connections into bench/tcp-sink.mjs, through courier's
//   Gateway TCP server, nginx's stream proxy, or directly (the load side's ceiling); MiB/s.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { freePort, launch, stop, waitJson } from '../../scripts/lib/procs.mjs';
import { autoQuota, cpuGroup } from './cpu-quota.mjs';
import { tcpLoad, wrk, wrkVersion } from './drivers.mjs';
import { TLS_ROWS } from './options.mjs';
import { fmtInt, headroom, loudFlag, median, rowsTable, summarize } from './report.mjs';
import { EXPECTED_BODY, HEADERS, PATH, startCourier, startNginx } from './targets.mjs';

const BENCH = join(import.meta.dirname, '..');
/** Connections of the tcp rows (each streams its share of the round's bytes). */
export const TCP_CONNECTIONS = 8;
const SERVER_NAME = 'bench.local';

// ---------------------------------------------------------------------------------------------
// Pure helpers (test/bench/lib.test.ts)

/**
 * What `openssl s_client -reconnect` printed: one `New, TLSv1.2, Cipher is X` or `Reused, ...`
 * line per connection (the first is always New).
 */
export function parseSessionCheck(text) {
  const lines = [...text.matchAll(/^(New|Reused), (\S+), Cipher is (\S+)/gm)];
  return {
    connections: lines.length,
    resumed: lines.filter((m) => m[1] === 'Reused').length,
    protocol: lines[0]?.[2] ?? null,
    cipher: lines[0]?.[3] ?? null,
  };
}

/**
 * Whether nginx has the stream module, from `nginx -V`: built in (`--with-stream`), or a dynamic
 * module (`--with-stream=dynamic`) whose .so must exist under the modules path (Debian:
 * libnginx-mod-stream) and be loaded with `load_module`. `exists` is fs.existsSync (injected).
 */
export function nginxStream(versionText, exists) {
  const mode = /--with-stream(=dynamic)?(\s|$)/.exec(versionText);
  if (!mode) return { ok: false, why: 'nginx was built without the stream module' };
  if (!mode[1]) return { ok: true, load: null };
  const modulesPath = /--modules-path=(\S+)/.exec(versionText)?.[1];
  const dirs = [modulesPath, '/usr/lib/nginx/modules', '/usr/share/nginx/modules'].filter(Boolean);
  for (const dir of dirs) {
    const file = join(dir, 'ngx_stream_module.so');
    if (exists(file)) return { ok: true, load: file };
  }
  return {
    ok: false,
    why: `nginx's stream module is dynamic and not installed (no ngx_stream_module.so in ${dirs.join(', ')}; apt-get install libnginx-mod-stream)`,
  };
}

/** Busy and total jiffies of `cpu` (a number) from /proc/stat text. */
export function cpuJiffies(procStat, cpu) {
  const line = procStat.split('\n').find((l) => l.startsWith(`cpu${cpu} `));
  if (!line) return undefined;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0); // guest time is already in user
  const idle = f[3] + (f[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

/**
 * MiB a tcp round streams through one target so that it lasts about `seconds`: its warm-up rate,
 * or under a quota what the quota buys at its warm-up CPU per MiB, whichever is lower; between 16
 * MiB and 8 GiB.
 */
export function tcpRoundMib({ warmupMibps, cpuUsPerMib, quota, seconds }) {
  let rate = warmupMibps;
  if (quota && cpuUsPerMib) rate = Math.min(rate, (quota * 1e6) / cpuUsPerMib);
  return Math.round(Math.min(8192, Math.max(16, rate * seconds)));
}

// ---------------------------------------------------------------------------------------------
// Processes

function makeCertificate(dir) {
  const cert = join(dir, 'bench.crt');
  const key = join(dir, 'bench.key');
  const r = spawnSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${SERVER_NAME}`,
      '-addext',
      `subjectAltName=DNS:${SERVER_NAME},IP:127.0.0.1`,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`openssl req failed: ${r.stderr}`);
  chmodSync(key, 0o644); // nginx's master reads it as root; nothing secret in a bench key
  return { cert, key, certPem: readFileSync(cert, 'utf8'), keyPem: readFileSync(key, 'utf8') };
}

/** The OPENSSL_CONF of the handshake rows: TLS 1.2 at most, no session ticket extension. */
function writeHandshakeConf(dir) {
  const file = join(dir, 'full-handshakes.cnf');
  writeFileSync(
    file,
    `openssl_conf = conf
[conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = client
[client]
MaxProtocol = TLSv1.2
Options = -SessionTicket
`,
  );
  return file;
}

/** `openssl s_client -reconnect` (six connections, each offering the previous session). */
function sessionCheck(port, conf) {
  const r = spawnSync(
    'openssl',
    ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', SERVER_NAME, '-reconnect'],
    {
      input: '',
      encoding: 'utf8',
      timeout: 20_000,
      env: conf ? { ...process.env, OPENSSL_CONF: conf } : process.env,
    },
  );
  return parseSessionCheck(`${r.stdout}`);
}

/**
 * What courier's bench config gets for one row: an HTTPS server (SIMPLE, credentialName ->
 * a `kind: Secret` document) when `https` is a port, a TCP server routed to the sink when `tcp` is.
 */
function courierExtra({ https, tcp, sinkPort, cert }) {
  const b64 = (s) => Buffer.from(s).toString('base64');
  const servers = [];
  const files = {};
  if (https) {
    servers.push(`  - port: {number: ${https}, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: bench-cred}
`);
    files['secret.yaml'] = `apiVersion: v1
kind: Secret
metadata: {name: bench-cred, namespace: default}
type: kubernetes.io/tls
data:
  tls.crt: ${b64(cert.certPem)}
  tls.key: ${b64(cert.keyPem)}
`;
  }
  if (tcp) {
    servers.push(`  - port: {number: ${tcp}, name: tcp, protocol: TCP}
    hosts: ["*"]
`);
    files['tcp-sink.yaml'] = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sink, namespace: default}
spec:
  hosts: [sink.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {tcp: ${sinkPort}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: sink, namespace: default}
spec:
  hosts: ["*"]
  gateways: [bench-gateway]
  tcp:
  - match: [{port: ${tcp}}]
    route:
    - destination: {host: sink.default.svc.cluster.local, port: {number: 9000}}
`;
  }
  return { servers: servers.join(''), files };
}

/** The same for nginx: `listen ... ssl` in front of the bench upstream, or a stream proxy. */
function nginxExtra({ row, https, tcp, sinkPort, cert, stream }) {
  return {
    dirName: `nginx-${row}`,
    main: tcp && stream.load ? `load_module ${stream.load};\n` : '',
    // nginx 1.22 enables TLS 1.0-1.2 by default; courier (like Envoy at a gateway) 1.2-1.3.
    http: https
      ? `  server {
    listen 127.0.0.1:${https} ssl;
    ssl_certificate ${cert.cert};
    ssl_certificate_key ${cert.key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
`
      : '',
    top: tcp
      ? `stream {
  server {
    listen 127.0.0.1:${tcp};
    proxy_pass 127.0.0.1:${sinkPort};
  }
}
`
      : '',
  };
}

/** One HTTPS request (certificate not verified): must be a 200 with the upstream's body. */
function httpsPreflight(name, url) {
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, headers: HEADERS, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () =>
        res.statusCode === 200 && body === EXPECTED_BODY
          ? resolve()
          : reject(
              new Error(`${name}: preflight got ${res.statusCode} ${JSON.stringify(body.slice(0, 200))}`),
            ),
      );
    });
    req.on('error', (e) => reject(new Error(`${name}: preflight: ${e.message}`)));
    req.end();
  });
}

async function tcpPreflight(t, loadPrefix) {
  const r = await tcpLoad({ port: t.port, mib: 1, connections: 2, timeoutS: 20 }, loadPrefix);
  if (r.errors || r.mismatches || r.timeouts)
    throw new Error(`${t.name}: 1 MiB did not reach the sink (${JSON.stringify(r)})`);
}

// ---------------------------------------------------------------------------------------------
// The rows

function quotaFor(o, cg, ceiling, cheapestCpu) {
  if (!cg.ok || o.cpuQuota === 'off') return null;
  if (o.cpuQuota !== 'auto') return Math.min(1, o.cpuQuota);
  return autoQuota(ceiling, cheapestCpu, 2);
}

/** measure() plus how busy the load core was (all its processes, /proc/stat). */
async function run(ctx, t, drive, opts) {
  const read = () => {
    try {
      return ctx.loadCpu === undefined
        ? undefined
        : cpuJiffies(readFileSync('/proc/stat', 'utf8'), ctx.loadCpu);
    } catch {
      return undefined;
    }
  };
  const before = read();
  const r = await ctx.measure(t, drive, opts, ctx.loadPrefix);
  const after = read();
  if (before && after && after.total > before.total)
    r.loadCoreBusy = (after.busy - before.busy) / (after.total - before.total);
  return r;
}

/**
 * Warm-up (uncapped), the quota, interleaved rounds, medians and the verdict of one row. With a
 * `direct` target the verdict is the headroom check; without one (handshakes), the fastest target
 * must have used its quota, or the load side set its pace.
 */
async function section(ctx, spec) {
  const { o } = ctx;
  const { targets, drive, warmOpts, roundOpts, quotaFrom, direct } = spec;
  const names = targets.map((t) => t.name);
  const setQuota = (q) => {
    for (const t of targets) t.group?.set(q);
  };
  console.log(`\n${spec.title}: warm-up ${names.join(', ')}`);
  const warmup = {};
  // courier and the direct baselines start fresh for each row and warm up twice (every tcp
  // target too): the warm-up figures size the quota and the tcp rounds, and cold ones read at a
  // half to two thirds of the later rates (courier's first handshake round under the quota at
  // half its third).
  const pre = {};
  for (const t of targets) if (t.prewarm) pre[t.name] = await run(ctx, t, drive, warmOpts(t));
  for (const t of targets) warmup[t.name] = await run(ctx, t, drive, warmOpts(t, pre[t.name]));
  const quota = quotaFrom(warmup);
  if (quota && o.cpuQuota === 'auto') console.log(`auto quota: ${quota} core (${spec.quotaWhy(warmup)})`);
  setQuota(quota);
  const runs = Object.fromEntries(names.map((nm) => [nm, []]));
  try {
    for (let round = 1; round <= o.tlsRounds; round++) {
      const line = [];
      for (const t of targets) {
        const r = await run(ctx, t, drive, roundOpts(t, warmup, quota));
        runs[t.name].push(r);
        line.push(`${t.name} ${fmtInt(r.rps)}${r.failures ? ` (${r.failures} FAILED)` : ''}`);
      }
      console.log(`round ${round}/${o.tlsRounds}: ${line.join(' | ')}`);
    }
  } finally {
    setQuota(null);
  }
  const summary = {};
  for (const nm of names) {
    summary[nm] = summarize(nm, runs[nm]);
    summary[nm].loadCoreBusy = median(runs[nm].map((r) => r.loadCoreBusy));
  }
  const notSaturated = names.filter(
    (nm) => nm !== direct && summary[nm].cores !== null && summary[nm].cores < (quota ?? 1) * 0.85,
  );
  let room;
  if (direct) room = headroom(summary, o.headroom, direct);
  else {
    const fastest = names.reduce((a, nm) => (a && summary[a].rps >= summary[nm].rps ? a : nm), undefined);
    room = { fastest, fastestRps: summary[fastest]?.rps ?? null, ok: !notSaturated.includes(fastest) };
  }
  if (spec.withhold) room.ok = false;
  console.log(
    `\n${spec.title}: median of ${o.tlsRounds} interleaved round(s); ${spec.how}; ` +
      `${quota ? `each proxy capped to ${quota} core` : 'no CPU quota'} (${ctx.pinning})\n`,
  );
  console.log(
    rowsTable(names, summary, {
      unit: spec.unit,
      per: spec.per,
      quota,
      ok: room.ok,
      notSaturated,
      courier: spec.courier,
      nginx: spec.nginx,
      direct,
    }),
  );
  const busy = median(names.map((nm) => summary[nm].loadCoreBusy));
  if (direct) {
    const line = `headroom: ${direct} ${fmtInt(room.direct)} ${spec.unit} = ${room.ratio?.toFixed(2) ?? '-'}× the fastest target (${room.fastest} ${fmtInt(room.fastestRps)}), required ${room.min}×`;
    if (room.ok) console.log(`\n${line}: the load side was not the wall`);
    else loudFlag([`LOAD-BOUND ROWS: ${line}.`, 'The load side set the pace: ratios are withheld.']);
  } else if (!room.ok)
    loudFlag([
      `LOAD-BOUND ROWS: the fastest target (${room.fastest}) used less than 85% of its quota (load core ${busy === null ? '?' : `${(busy * 100).toFixed(0)}%`} busy).`,
      'The load side set the pace: ratios are withheld.',
    ]);
  if (notSaturated.length)
    console.log(
      `note: ${notSaturated.join(', ')} used less than 85% of ${quota ? `the ${quota}-core quota` : 'its core'}: its figure understates it; ratios against it are marked *`,
    );
  if (busy !== null) console.log(`load core: ${(busy * 100).toFixed(0)}% busy (median over the rounds)`);
  return { warmup, runs, summary, quota, headroom: room, notSaturated, loadCoreBusy: busy };
}

const ratioOf = (res, a, b) =>
  res.headroom.ok && res.summary[a]?.rps && res.summary[b]?.rps
    ? res.summary[a].rps / res.summary[b].rps
    : null;
const fmtR = (x, star = '') => (x === null ? 'withheld' : `${x.toFixed(2)}×${star}`);

/**
 * Everything the TLS rows need from bench/run.mjs: `measure` (one load run with the target's CPU
 * and RSS), the CPU groups (`addGroup` for the cleanup), pinning and the plaintext upstream;
 * `plain` is the plaintext rows' courier summary and quota, when they ran. Returns the results,
 * with `courierFailures` (errors, timeouts, non-2xx or bytes lost through courier).
 */
export async function tlsRows(ctx) {
  const { o, tmp, cg, nginx, upstream, loadPrefix } = ctx;
  const rows = TLS_ROWS.filter((r) => o.rows.includes(r));
  const missing = [];
  if (!wrkVersion()) missing.push('wrk (apt-get install wrk)');
  if (spawnSync('openssl', ['version']).error) missing.push('openssl (apt-get install openssl)');
  if (missing.length) {
    console.log(`\nTLS rows skipped: ${missing.join(', ')} not installed`);
    return { skipped: `missing ${missing.join(', ')}`, courierFailures: 0 };
  }
  const dir = join(tmp, 'tls');
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  const cert = makeCertificate(dir);
  const handshakeConf = writeHandshakeConf(dir);
  const out = { rows, courierFailures: 0, notes: [] };
  const handles = [];
  try {
    // The load side: the TLS upstream (direct https) and the sink, on the load core.
    const start = async (name, args) => {
      const h = launch(name, process.execPath, args, { prefix: loadPrefix });
      handles.push(h);
      return waitJson(h);
    };
    const tlsUpPort = rows.includes('https')
      ? (await start('upstream tls', [join(BENCH, 'upstream.mjs'), '--tls', cert.cert, cert.key, '0']))
          .ports[0]
      : undefined;
    const sinkPort = rows.includes('tcp')
      ? (await start('tcp sink', [join(BENCH, 'tcp-sink.mjs'), '0'])).port
      : undefined;

    let stream = { ok: false, why: 'nginx skipped' };
    if (nginx && sinkPort) {
      const v = spawnSync(nginx.bin, ['-V'], { encoding: 'utf8' });
      stream = nginxStream(`${v.stdout}${v.stderr}`, existsSync);
      if (!stream.ok) out.notes.push(`nginx tcp row skipped: ${stream.why}`);
    }

    // Fresh courier and nginx processes for each row, so that a row does not measure what the
    // previous one left behind: courier's TCP proxy moved from ~1,100 to ~4,000 CPU µs/MiB (20×
    // the page faults) when it ran in a process that had just served the HTTPS rows.
    const url = (port) => `https://127.0.0.1:${port}${PATH}`;
    const startProxies = async (row) => {
      const group = (name) => {
        const g = cg.ok ? cpuGroup(cg, name) : undefined;
        if (g) ctx.addGroup(g);
        return g;
      };
      const isTcp = row === 'tcp';
      const cPorts = {
        https: isTcp ? undefined : await freePort(),
        tcp: isTcp ? await freePort() : undefined,
      };
      const cGroup = group(`courier-${row}`);
      const courier = await startCourier(tmp, upstream, {
        concurrency: 1,
        prefix: [...(cGroup?.prefix ?? []), ...ctx.proxyPrefix],
        label: row,
        profile: o.profile,
        extra: courierExtra({ ...cPorts, sinkPort, cert }),
      });
      handles.push(courier.h);
      const withNginx = nginx && (!isTcp || stream.ok);
      const nPorts = {
        https: isTcp ? undefined : await freePort(),
        tcp: isTcp ? await freePort() : undefined,
      };
      const nGroup = withNginx ? group(`nginx-${row}`) : undefined;
      const ng = withNginx
        ? await startNginx(
            nginx.bin,
            tmp,
            upstream,
            [...(nGroup?.prefix ?? []), ...ctx.proxyPrefix],
            nginxExtra({ row, ...nPorts, sinkPort, cert, stream }),
          )
        : undefined;
      if (ng) handles.push(ng.h);
      if (!isTcp) {
        await httpsPreflight('courier https', url(cPorts.https));
        if (ng) await httpsPreflight('nginx https', url(nPorts.https));
      }
      return {
        courier,
        cPorts,
        nPorts,
        C: { h: courier.h, group: cGroup, kind: 'courier-tls' },
        N: ng ? { h: ng.h, group: nGroup, kind: 'nginx-tls' } : undefined,
        stop: async () => {
          for (const h of [courier.h, ng?.h].filter(Boolean)) {
            await stop(h);
            handles.splice(handles.indexOf(h), 1);
          }
        },
      };
    };
    if (tlsUpPort) await httpsPreflight('direct https', url(tlsUpPort));

    if (rows.includes('https')) {
      const { courier, cPorts, nPorts, C, N, stop: stopRow } = await startProxies('https');
      const targets = [
        { ...C, name: 'courier https', url: url(cPorts.https), prewarm: true },
        ...(N ? [{ ...N, name: 'nginx https', url: url(nPorts.https) }] : []),
        { ...C, name: 'courier plaintext', url: `http://127.0.0.1:${courier.port}${PATH}` },
        { name: 'direct https', kind: 'direct', url: url(tlsUpPort), prewarm: true },
      ];
      const negotiated = {
        courier: sessionCheck(cPorts.https),
        nginx: N ? sessionCheck(nPorts.https) : null,
      };
      const base = { connections: o.connections };
      const proxies = targets.filter((t) => t.name !== 'direct https' && t.name !== 'courier plaintext');
      const res = await section(ctx, {
        title: 'https keep-alive',
        how: `wrk over https (${negotiated.courier.protocol ?? '?'} ${negotiated.courier.cipher ?? '?'}), keep-alive, ${o.connections} connections, ${o.duration}s; courier plaintext is the same courier process's HTTP server`,
        unit: 'req/s',
        per: 'req',
        courier: 'courier https',
        nginx: 'nginx https',
        direct: 'direct https',
        targets,
        drive: wrk,
        warmOpts: () => ({ ...base, duration: o.warmup }),
        roundOpts: () => ({ ...base, duration: o.duration }),
        quotaFrom: (w) =>
          quotaFor(
            o,
            cg,
            w['direct https'].rps,
            Math.min(...proxies.map((t) => w[t.name].cpuUsPerReq ?? Infinity)),
          ),
        quotaWhy: (w) =>
          `direct https ${fmtInt(w['direct https'].rps)} req/s in the warm-up, the cheapest target at about half of it`,
      });
      const ns = res.notSaturated;
      const vsNginx = ratioOf(res, 'courier https', 'nginx https');
      const vsPlain = res.summary['courier plaintext']?.rps
        ? res.summary['courier https'].rps / res.summary['courier plaintext'].rps
        : null;
      let vsPlainTable = null;
      if (ctx.plain?.summary?.rps && res.quota && ctx.plain.quota)
        vsPlainTable =
          res.summary['courier https'].rps / res.quota / (ctx.plain.summary.rps / ctx.plain.quota);
      console.log(
        `\ncourier https ÷ nginx https ${fmtR(vsNginx, ns.includes('nginx https') ? '*' : '')}   ` +
          `courier https ÷ courier plaintext (same rounds, same quota) ${vsPlain === null ? '-' : `${vsPlain.toFixed(2)}×`} (aim ≥ 0.8)` +
          (vsPlainTable === null
            ? ''
            : `   per core ÷ the plaintext table's courier ${vsPlainTable.toFixed(2)}×`),
      );
      out.https = { ...res, negotiated, ratios: { vsNginx, vsPlain, vsPlainTable } };
      await stopRow();
    }

    if (rows.includes('handshakes')) {
      const { cPorts, nPorts, C, N, stop: stopRow } = await startProxies('handshakes');
      const check = {
        courier: sessionCheck(cPorts.https, handshakeConf),
        nginx: N ? sessionCheck(nPorts.https, handshakeConf) : null,
      };
      const checked = Object.entries(check).filter(([, v]) => v);
      const resumed = checked.filter(([, v]) => v.resumed > 0 || v.connections === 0);
      const targets = [
        { ...C, name: 'courier', url: url(cPorts.https), prewarm: true },
        ...(N ? [{ ...N, name: 'nginx', url: url(nPorts.https) }] : []),
      ];
      const base = {
        connections: o.connections,
        headers: { ...HEADERS, Connection: 'close' },
        env: { OPENSSL_CONF: handshakeConf },
      };
      if (resumed.length)
        loudFlag([
          `SESSIONS RESUMED: ${resumed.map(([k]) => k).join(', ')} resumed a session offered as wrk offers it (or the check failed).`,
          'The handshake rows would not be full handshakes: ratios are withheld.',
        ]);
      const res = await section(ctx, {
        withhold: resumed.length > 0,
        title: 'new TLS handshakes',
        how: `wrk over https with Connection: close (one request per connection), ${o.connections} connections, ${o.duration}s; full ${check.courier.protocol ?? '?'} handshakes (${check.courier.cipher ?? '?'}), no ticket, no session cache`,
        unit: 'handshakes/s',
        per: 'handshake',
        courier: 'courier',
        nginx: 'nginx',
        targets,
        drive: wrk,
        warmOpts: () => ({ ...base, duration: o.warmup }),
        roundOpts: () => ({ ...base, duration: o.duration }),
        quotaFrom: (w) =>
          quotaFor(
            o,
            cg,
            Math.max(...targets.map((t) => w[t.name].rps ?? 0)),
            Math.min(...targets.map((t) => w[t.name].cpuUsPerReq ?? Infinity)),
          ),
        quotaWhy: (w) =>
          `the fastest warm-up, ${fmtInt(Math.max(...targets.map((t) => w[t.name].rps ?? 0)))} handshakes/s uncapped, stands for the load side's ceiling`,
      });
      console.log(
        `session check (openssl s_client -reconnect, same OPENSSL_CONF as wrk): ${checked
          .map(([k, v]) => `${k} ${v.resumed} of ${v.connections} resumed`)
          .join(', ')}`,
      );
      const vsNginx = ratioOf(res, 'courier', 'nginx');
      console.log(
        `\ncourier ÷ nginx, new TLS handshakes/s: ${fmtR(vsNginx, res.notSaturated.includes('nginx') ? '*' : '')} (aim ≥ 0.5)`,
      );
      out.handshakes = { ...res, sessionCheck: check, ratios: { vsNginx } };
      await stopRow();
    }

    if (rows.includes('tcp')) {
      const { cPorts, nPorts, C, N, stop: stopRow } = await startProxies('tcp');
      const targets = [
        { ...C, name: 'courier tcp', port: cPorts.tcp, prewarm: true },
        ...(N ? [{ ...N, name: 'nginx tcp', port: nPorts.tcp, prewarm: true }] : []),
        { name: 'direct tcp', kind: 'direct', port: sinkPort, prewarm: true },
      ];
      for (const t of targets) await tcpPreflight(t, loadPrefix);
      const proxies = targets.filter((t) => t.kind !== 'direct');
      const opts = (t, mib) => ({
        port: t.port,
        mib,
        connections: TCP_CONNECTIONS,
        timeoutS: Math.max(60, o.duration * 15),
      });
      const res = await section(ctx, {
        title: 'tcp proxy',
        how: `bench/tcp-load.mjs, ${TCP_CONNECTIONS} connections streaming into bench/tcp-sink.mjs, about ${o.duration}s of bytes per round (the MiB moved per round are in the results)`,
        unit: 'MiB/s',
        per: 'MiB',
        courier: 'courier tcp',
        nginx: 'nginx tcp',
        direct: 'direct tcp',
        targets,
        drive: tcpLoad,
        // The second warm-up streams what the first one's rate moves in --warmup seconds: a
        // fixed 512 MiB took direct 0.3 s and read at 600 of its 1,500 MiB/s.
        warmOpts: (t, pre) =>
          opts(t, pre ? tcpRoundMib({ warmupMibps: pre.rps, seconds: o.warmup }) : o.tcpMib),
        roundOpts: (t, w, quota) =>
          opts(
            t,
            tcpRoundMib({
              warmupMibps: w[t.name].rps,
              cpuUsPerMib: t.kind === 'direct' ? undefined : w[t.name].cpuUsPerReq,
              quota,
              seconds: o.duration,
            }),
          ),
        quotaFrom: (w) =>
          quotaFor(
            o,
            cg,
            w['direct tcp'].rps,
            Math.min(...proxies.map((t) => w[t.name].cpuUsPerReq ?? Infinity)),
          ),
        quotaWhy: (w) =>
          `direct ${fmtInt(w['direct tcp'].rps)} MiB/s in the warm-up, the cheapest target at about half of it`,
      });
      const vsNginx = ratioOf(res, 'courier tcp', 'nginx tcp');
      console.log(
        `\ncourier ÷ nginx, TCP proxy MiB/s: ${stream.ok ? fmtR(vsNginx, res.notSaturated.includes('nginx tcp') ? '*' : '') : `- (${stream.why})`}`,
      );
      out.tcp = { ...res, ratios: { vsNginx } };
      await stopRow();
    }

    for (const r of [out.https, out.handshakes, out.tcp].filter(Boolean)) {
      for (const [name, s] of Object.entries(r.summary))
        if (name.startsWith('courier')) out.courierFailures += s.failures;
      for (const [name, w] of Object.entries(r.warmup))
        if (name.startsWith('courier')) out.courierFailures += w.failures ?? 0;
    }
    for (const note of out.notes) console.log(`note: ${note}`);
  } finally {
    for (const h of handles) await stop(h);
  }
  return out;
}
