// TCP proxying at a gateway, through the real pilot-agent: Istio's tcp-traffic-shifting task (all
// to v1, then 80/20, which is also the reload test), weight 0, half-close, no listener without a
// route, the DestinationRule's tcp settings (connectTimeout, maxConnections, idleTimeout),
// source-IP consistent hashing, the connect failure, the access log lines and the istio_tcp_*
// metrics. Upstreams are node:net echo servers like Istio's tcp-echo: each line `L\n` is answered
// `<prefix> L\n`, and they close after the client's EOF.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { type L4Destination, l4VirtualService } from '../helpers/l4-yaml.js';
import { freePort, sleep, startAgent, writeConfigDir } from '../helpers/procs.js';

interface Echo {
  port: number;
  server: Server;
  accepted: number;
  close: () => Promise<void>;
}

async function echoServer(prefix: string): Promise<Echo> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    e.accepted++;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    let buf = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        sock.write(`${prefix} ${buf.slice(0, i + 1)}`);
        buf = buf.slice(i + 1);
      }
    });
    sock.on('end', () => sock.end());
    sock.on('error', () => {});
  });
  const e: Echo = {
    port: 0,
    server,
    accepted: 0,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  e.port = (server.address() as { port: number }).port;
  return e;
}

interface Talk {
  data: string;
  /** The proxy ended its side cleanly (EOF). */
  eof: boolean;
  /** Error code, if the connection ended with one. */
  error: string | undefined;
  /** Connect to close, ms. */
  ms: number;
}

/** Connect, send `lines`, then (unless `end` is false) shut down writing; collect until closed. */
function talk(
  port: number,
  lines: string,
  opts: { end?: boolean; timeoutMs?: number; onSocket?: (s: Socket) => void } = {},
): Promise<Talk> {
  return new Promise((resolve) => {
    const start = Date.now();
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const r: Talk = { data: '', eof: false, error: undefined, ms: 0 };
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      r.data += d;
    });
    s.on('end', () => {
      r.eof = true;
      s.end(); // as a client without half-close does
    });
    s.on('error', (e: Error & { code?: string }) => {
      r.error = e.code ?? e.message;
    });
    const timer = setTimeout(() => {
      r.error = 'test timeout';
      s.destroy();
    }, opts.timeoutMs ?? 5000);
    s.on('close', () => {
      clearTimeout(timer);
      r.ms = Date.now() - start;
      resolve(r);
    });
    s.on('connect', () => {
      if (lines) s.write(lines);
      if (opts.end !== false) s.end();
    });
    opts.onSocket?.(s);
  });
}

/** Many connections, `batch` at a time. */
async function many(port: number, n: number, batch = 50): Promise<Talk[]> {
  const out: Talk[] = [];
  for (let i = 0; i < n; i += batch) {
    const size = Math.min(batch, n - i);
    out.push(...(await Promise.all(Array.from({ length: size }, (_, k) => talk(port, `c${i + k}\n`)))));
  }
  return out;
}

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
  });
}

/**
 * A listening port that never accepts (a Node process that blocks its event loop for at most a
 * minute, then exits, even when this test dies without its teardown): once its
 * backlog is full the kernel drops further SYNs, so a connect to it hangs. Portable where a
 * "blackhole" IP is not (this sandbox answers every routed address).
 */
async function blackhole(): Promise<{ port: number; fill: Socket[]; proc: ChildProcess }> {
  const proc = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer().listen({port:0,host:'127.0.0.1',backlog:1},()=>{console.log(s.address().port);setTimeout(()=>{const end=Date.now()+60000;while(Date.now()<end);process.exit()},50)})",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((r) =>
    proc.stdout?.once('data', (d) => r(Number(String(d).trim()))),
  );
  await sleep(150);
  const fill: Socket[] = [];
  for (let i = 0; i < 4; i++) {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => {});
    fill.push(s);
    await sleep(30);
  }
  return { port, fill, proc };
}

// --- upstreams ---------------------------------------------------------------------------------

const one = await startEcho('one');
const two = await startEcho('two');
const limited = await startEcho('one');
const idle = await startEcho('one');
const metricsEcho = await startEcho('one');
const hashA = await startEcho('a');
const hashB = await startEcho('b');
const closedPort = await freePort(); // nothing listens there
const hole = await blackhole();
t.teardown(() => {
  for (const s of hole.fill) s.destroy();
  hole.proc.kill('SIGKILL');
});

async function startEcho(prefix: string): Promise<Echo> {
  const e = await echoServer(prefix);
  t.teardown(() => e.close());
  return e;
}

// --- config ------------------------------------------------------------------------------------

const P = {
  echo: await freePort(),
  weight0: await freePort(),
  closed: await freePort(),
  blackhole: await freePort(),
  limited: await freePort(),
  idle: await freePort(),
  metrics: await freePort(),
  hash: await freePort(),
  noVs: await freePort(),
  otherPort: await freePort(),
  outlier: await freePort(),
  duration: await freePort(),
};

function gateway(name: string, port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ${name}, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${port}, name: tcp, protocol: TCP}
    hosts: ["*"]
`;
}

function serviceEntry(name: string, endpoints: { port: number; version?: string }[]): string {
  const eps = endpoints
    .map((e) => `  - {address: 127.0.0.1, ports: {tcp: ${e.port}}, labels: {version: ${e.version ?? 'v1'}}}`)
    .join('\n');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints:
${eps}
`;
}

function virtualService(name: string, gw: string, port: number, routes: L4Destination[]): string {
  return l4VirtualService({
    name,
    gw,
    kind: 'tcp',
    hosts: ['*'],
    match: `{port: ${port}}`,
    port: 9000,
    routes,
  });
}

function destinationRule(host: string, spec: string): string {
  return `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${host}, namespace: default}
spec:
  host: ${host}
${spec}`;
}

const allV1 = virtualService('tcp-echo', 'tcp-echo-gateway', P.echo, [{ host: 'tcp-echo', subset: 'v1' }]);
const split8020 = virtualService('tcp-echo', 'tcp-echo-gateway', P.echo, [
  { host: 'tcp-echo', subset: 'v1', weight: 80 },
  { host: 'tcp-echo', subset: 'v2', weight: 20 },
]);

const files: Record<string, string> = {
  'tcp-echo.yaml': [
    gateway('tcp-echo-gateway', P.echo),
    serviceEntry('tcp-echo', [
      { port: one.port, version: 'v1' },
      { port: two.port, version: 'v2' },
    ]),
    destinationRule(
      'tcp-echo',
      '  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n',
    ),
  ].join('---\n'),
  'vs.yaml': allV1,
  'weight0.yaml': [
    gateway('gw-weight0', P.weight0),
    virtualService('weight0', 'gw-weight0', P.weight0, [
      { host: 'tcp-echo', subset: 'v1', weight: 100 },
      { host: 'tcp-echo', subset: 'v2', weight: 0 },
    ]),
  ].join('---\n'),
  'closed.yaml': [
    gateway('gw-closed', P.closed),
    serviceEntry('closed', [{ port: closedPort }]),
    virtualService('closed', 'gw-closed', P.closed, [{ host: 'closed' }]),
  ].join('---\n'),
  'blackhole.yaml': [
    gateway('gw-blackhole', P.blackhole),
    serviceEntry('blackhole', [{ port: hole.port }]),
    destinationRule(
      'blackhole',
      '  trafficPolicy:\n    connectionPool:\n      tcp: {connectTimeout: 500ms}\n',
    ),
    virtualService('blackhole', 'gw-blackhole', P.blackhole, [{ host: 'blackhole' }]),
  ].join('---\n'),
  'limited.yaml': [
    gateway('gw-limited', P.limited),
    serviceEntry('limited', [{ port: limited.port }]),
    destinationRule('limited', '  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n'),
    virtualService('limited', 'gw-limited', P.limited, [{ host: 'limited' }]),
  ].join('---\n'),
  'idle.yaml': [
    gateway('gw-idle', P.idle),
    serviceEntry('idle', [{ port: idle.port }]),
    destinationRule('idle', '  trafficPolicy:\n    connectionPool:\n      tcp: {idleTimeout: 1s}\n'),
    virtualService('idle', 'gw-idle', P.idle, [{ host: 'idle' }]),
  ].join('---\n'),
  'metrics.yaml': [
    gateway('gw-metrics', P.metrics),
    serviceEntry('metrics-echo', [{ port: metricsEcho.port }]),
    virtualService('metrics-echo', 'gw-metrics', P.metrics, [{ host: 'metrics-echo' }]),
  ].join('---\n'),
  'hash.yaml': [
    gateway('gw-hash', P.hash),
    serviceEntry('hashed', [{ port: hashA.port }, { port: hashB.port }]),
    destinationRule(
      'hashed',
      '  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: true}\n',
    ),
    virtualService('hashed', 'gw-hash', P.hash, [{ host: 'hashed' }]),
  ].join('---\n'),
  // One endpoint refuses connections: a connect failure ejects it (outlier detection).
  'outlier.yaml': [
    gateway('gw-outlier', P.outlier),
    serviceEntry('flaky', [{ port: closedPort }, { port: one.port }]),
    destinationRule(
      'flaky',
      '  trafficPolicy:\n    outlierDetection:\n' +
        '      {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}\n',
    ),
    virtualService('flaky', 'gw-outlier', P.outlier, [{ host: 'flaky' }]),
  ].join('---\n'),
  'duration.yaml': [
    gateway('gw-duration', P.duration),
    serviceEntry('lasting', [{ port: idle.port }]),
    destinationRule(
      'lasting',
      '  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnectionDuration: 1s}\n',
    ),
    virtualService('lasting', 'gw-duration', P.duration, [{ host: 'lasting' }]),
  ].join('---\n'),
  'no-vs.yaml': gateway('gw-novs', P.noVs),
  'other-port.yaml': [
    gateway('gw-other', P.otherPort),
    virtualService('other', 'gw-other', P.otherPort + 1, [{ host: 'tcp-echo', subset: 'v1' }]),
  ].join('---\n'),
};

const dir = writeConfigDir(files);
const logFile = join(dir, '..', `${dir.split('/').pop()}-access.log`);
const agent = await startAgent({ configDir: dir, args: ['--access-log', logFile, '--drain-duration', '1s'] });
t.teardown(() => agent.stop());

const logLines = () => {
  try {
    return readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

/** The first access log line matching `re` (lines are flushed every 50 ms). */
async function logLine(re: RegExp, ms = 3000): Promise<string | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const l = logLines().find((x) => re.test(x));
    if (l) return l;
    await sleep(25);
  }
  return undefined;
}

async function configVersion(): Promise<{ version: string; workers: string[] }> {
  const d = (await (await fetch(`http://127.0.0.1:${agent.admin}/config_dump`)).json()) as {
    version: string;
    workers: { version: string }[];
  };
  return { version: d.version, workers: d.workers.map((w) => w.version) };
}

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// --- tests -------------------------------------------------------------------------------------

t.test('tcp-traffic-shifting: all to v1, then 80/20 after a reload', async (t) => {
  const first = await many(P.echo, 20, 20);
  t.same(
    first.filter((r) => !r.data.startsWith('one ')),
    [],
    'every reply starts with "one "',
  );
  t.ok(
    first.every((r, i) => r.eof && r.error === undefined && r.data.includes(`c${i}\n`)),
    'each answered in full, then EOF',
  );
  t.equal(two.accepted, 0, 'v2 never reached');

  const before = (await configVersion()).version;
  writeFileSync(join(dir, 'vs.yaml'), split8020);
  const deadline = Date.now() + 10_000;
  let now = await configVersion();
  while (Date.now() < deadline && (now.version === before || now.workers.some((w) => w !== now.version))) {
    await sleep(100);
    now = await configVersion();
  }
  t.not(now.version, before, 'the new VirtualService is served');

  const N = 500;
  const replies = await many(P.echo, N);
  const twos = replies.filter((r) => r.data.startsWith('two ')).length;
  const ones = replies.filter((r) => r.data.startsWith('one ')).length;
  t.equal(ones + twos, N, 'every connection answered by v1 or v2');
  t.ok(Math.abs(twos / N - 0.2) <= 0.06, `about 20% to v2 (${twos}/${N})`);
  t.comment(`80/20 split: ${ones} one, ${twos} two of ${N}`);
});

t.test('a weight-0 destination is never chosen', async (t) => {
  const acceptedBefore = two.accepted;
  const replies = await many(P.weight0, 40, 40);
  t.ok(
    replies.every((r) => r.data.startsWith('one ')),
    'every reply from v1',
  );
  t.equal(two.accepted, acceptedBefore, 'v2 never connected');
});

t.test('half-close: the client FIN reaches the upstream, its answer still comes back', async (t) => {
  // The echo answers and closes only once it has seen EOF: the FIN must travel upstream, and the
  // answer must travel back over the half-closed connection.
  const r = await talk(P.weight0, 'hello\n');
  t.equal(r.data, 'one hello\n');
  t.ok(r.eof, 'then EOF');
  t.equal(r.error, undefined);

  // The other way round: the upstream ends first (it closes after its answer to our FIN), and
  // the client can still send... here: a client that keeps its side open gets the upstream's FIN.
  const s = connect({ port: P.weight0, host: '127.0.0.1', allowHalfOpen: true });
  let got = '';
  s.setEncoding('latin1');
  s.on('data', (d: string) => {
    got += d;
  });
  await new Promise((r) => s.once('connect', r));
  s.write('a\n');
  while (!got.includes('\n')) await sleep(10);
  t.equal(got, 'one a\n', 'answered while both sides are open');
  s.write('b\n');
  s.end();
  await new Promise((r) => s.once('end', r));
  t.equal(got, 'one a\none b\n', 'everything sent before the FIN answered');
  s.destroy();
});

t.test('no bound VirtualService, or one for another port: no listener (connection refused)', async (t) => {
  t.equal(await refused(P.noVs), 'ECONNREFUSED');
  t.equal(await refused(P.otherPort), 'ECONNREFUSED');
});

t.test('connect failure: downstream closed with no data, UF,URX and the reason in the log', async (t) => {
  const r = await talk(P.closed, 'hello\n', { end: false });
  t.equal(r.data, '', 'no bytes');
  t.not(r.error, 'test timeout', 'closed by the proxy');
  const line = await logLine(/outbound\|9000\|\|closed\.default\.svc\.cluster\.local/);
  t.ok(line, 'logged');
  t.match(
    line,
    new RegExp(
      `^\\[\\S+\\] "- - -" 0 UF,URX - - "delayed_connect_error:_Connection_refused" 0 0 \\d+ - "-" "-" "-" "-" ` +
        `"127\\.0\\.0\\.1:${closedPort}" outbound\\|9000\\|\\|closed\\.default\\.svc\\.cluster\\.local - ` +
        `127\\.0\\.0\\.1:${P.closed} 127\\.0\\.0\\.1:\\d+ - -$`,
    ),
  );
});

t.test('connectTimeout 500ms to an endpoint that never answers: closed after about 0.5 s', async (t) => {
  const r = await talk(P.blackhole, 'hello\n', { end: false });
  t.equal(r.data, '');
  t.ok(r.ms >= 400 && r.ms < 2000, `closed after ${r.ms} ms`);
  const line = await logLine(/outbound\|9000\|\|blackhole\./);
  t.match(line, /"- - -" 0 UF,URX - - "-" 0 0 (\d+) /);
  const logged = Number(/ 0 0 (\d+) /.exec(line ?? '')?.[1]);
  t.ok(logged >= 450 && logged < 2000, `logged duration ${logged} ms`);
});

t.test('maxConnections 1: a second concurrent connection is closed at once (UO)', async (t) => {
  const first = connect({ port: P.limited, host: '127.0.0.1' });
  let got = '';
  first.setEncoding('latin1');
  first.on('data', (d: string) => {
    got += d;
  });
  first.write('first\n');
  const deadline = Date.now() + 3000;
  while (!got.includes('\n') && Date.now() < deadline) await sleep(10);
  t.equal(got, 'one first\n', 'the first connection is proxied');
  const accepted = limited.accepted;
  const second = await talk(P.limited, 'second\n', { end: false });
  t.equal(second.data, '', 'the second gets no bytes');
  t.ok(second.ms < 1000, `closed at once (${second.ms} ms)`);
  t.equal(limited.accepted, accepted, 'no upstream attempt');
  t.match(await logLine(/ 0 UO - - "-" 0 0 \d+ .*outbound\|9000\|\|limited\./), /"-" outbound/);
  first.end();
  await new Promise((r) => first.once('close', r));
  // The slot is given back when the connection closes.
  let third: Talk | undefined;
  for (let i = 0; i < 20; i++) {
    third = await talk(P.limited, 'third\n');
    if (third.data) break;
    await sleep(50);
  }
  t.equal(third?.data, 'one third\n', 'a connection after the first closed is proxied');
});

t.test('idleTimeout 1s: an idle connection is closed, an active one stays', async (t) => {
  const idleConn = talk(P.idle, 'x\n', { end: false, timeoutMs: 6000 });
  const active = new Promise<{ answers: number; closedEarly: boolean }>((resolve) => {
    const s = connect({ port: P.idle, host: '127.0.0.1', allowHalfOpen: true });
    let data = '';
    let closed = false;
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      data += d;
    });
    s.on('close', () => {
      closed = true;
    });
    s.on('error', () => {});
    s.on('connect', async () => {
      for (let i = 0; i < 8; i++) {
        if (closed) break;
        s.write(`tick${i}\n`);
        await sleep(300);
      }
      const closedEarly = closed;
      s.destroy();
      resolve({ answers: data.split('\n').filter(Boolean).length, closedEarly });
    });
  });
  const [r, a] = await Promise.all([idleConn, active]);
  t.equal(r.data, 'one x\n');
  t.ok(r.ms >= 900 && r.ms < 2500, `idle connection closed after ${r.ms} ms`);
  t.notOk(a.closedEarly, 'the active connection stayed open for 2.4 s');
  t.equal(a.answers, 8, 'and every line was answered');
});

t.test('source-IP consistent hash: one client always reaches the same endpoint', async (t) => {
  const replies = await many(P.hash, 20, 5);
  const prefixes = new Set(replies.map((r) => r.data.split(' ')[0]));
  t.equal(prefixes.size, 1, `one backend (${[...prefixes].join(',')})`);
  t.ok(replies.every((r) => r.data.endsWith('\n')));
});

t.test('istio_tcp_* metrics and the access log line of one echo exchange', async (t) => {
  const scrape = async () => {
    const text = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
    const out: Record<string, { labels: string; value: number }[]> = {};
    for (const line of text.split('\n')) {
      const m = /^(istio_tcp_\w+)\{([^}]*metrics-echo[^}]*)\} (\S+)$/.exec(line);
      if (!m) continue;
      const list = out[m[1] as string] ?? [];
      list.push({ labels: m[2] as string, value: Number(m[3]) });
      out[m[1] as string] = list;
    }
    return out;
  };
  const sum = (m: Record<string, { value: number }[]>, name: string) =>
    (m[name] ?? []).reduce((a, x) => a + x.value, 0);
  t.same(await scrape(), {}, 'nothing before the first connection');

  const s = connect({ port: P.metrics, host: '127.0.0.1', allowHalfOpen: true });
  let got = '';
  s.setEncoding('latin1');
  s.on('data', (d: string) => {
    got += d;
  });
  s.write('ping\n');
  while (!got.includes('\n')) await sleep(10);
  const open = await scrape();
  t.equal(sum(open, 'istio_tcp_connections_opened_total'), 1, 'opened while it is open');
  t.equal(sum(open, 'istio_tcp_connections_closed_total'), 0, 'not closed yet');
  t.equal(sum(open, 'istio_tcp_received_bytes_total'), 5, 'bytes received so far');
  t.equal(sum(open, 'istio_tcp_sent_bytes_total'), 9, 'bytes sent so far');
  const active = async () =>
    Number(
      /^courier_tcp_connections_active (\d+)$/m.exec(
        await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text(),
      )?.[1],
    );
  t.equal(await active(), 1, 'courier_tcp_connections_active while open');
  s.write('pong\n');
  s.end();
  await new Promise((r) => s.once('close', r));
  t.equal(got, 'one ping\none pong\n');
  let m = await scrape();
  for (let i = 0; i < 40 && sum(m, 'istio_tcp_connections_closed_total') === 0; i++) {
    await sleep(25);
    m = await scrape();
  }
  t.equal(sum(m, 'istio_tcp_connections_opened_total'), 1, 'opened +1');
  t.equal(await active(), 0, 'and none once it is over');
  t.equal(sum(m, 'istio_tcp_connections_closed_total'), 1, 'closed +1');
  t.equal(sum(m, 'istio_tcp_received_bytes_total'), 10, 'received = bytes the client wrote');
  t.equal(sum(m, 'istio_tcp_sent_bytes_total'), 18, 'sent = bytes the client read');
  const labels = m.istio_tcp_connections_closed_total?.[0]?.labels ?? '';
  t.match(labels, /reporter="source"/);
  t.match(labels, /request_protocol="tcp"/);
  t.match(labels, /response_flags="-"/);
  t.match(labels, /destination_service="metrics-echo\.default\.svc\.cluster\.local"/);
  t.match(labels, /destination_service_name="metrics-echo"/);
  t.match(labels, /destination_version="v1"/);
  t.match(labels, /connection_security_policy="unknown"/);
  t.notMatch(labels, /response_code/);

  const line = await logLine(/outbound\|9000\|\|metrics-echo\./);
  t.match(
    line,
    new RegExp(
      `^\\[\\S+\\] "- - -" 0 - - - "-" 10 18 \\d+ - "-" "-" "-" "-" "127\\.0\\.0\\.1:${metricsEcho.port}" ` +
        `outbound\\|9000\\|\\|metrics-echo\\.default\\.svc\\.cluster\\.local 127\\.0\\.0\\.1:\\d+ ` +
        `127\\.0\\.0\\.1:${esc(String(P.metrics))} 127\\.0\\.0\\.1:\\d+ - -$`,
    ),
  );

  // The failed connections of the tests before are counted too, with their flags.
  const all = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
  t.match(all, /istio_tcp_connections_closed_total\{[^}]*response_flags="UF,URX"[^}]*\} [1-9]/);
  t.match(all, /istio_tcp_connections_closed_total\{[^}]*response_flags="UO"[^}]*\} [1-9]/);
});

t.test('outlier detection: a connect failure ejects the endpoint, later connections avoid it', async (t) => {
  const replies: Talk[] = [];
  for (let i = 0; i < 16; i++) replies.push(await talk(P.outlier, `o${i}\n`));
  const failed = replies.filter((r) => !r.data.startsWith('one ')).length;
  t.ok(failed <= 1, `at most the first failure (${failed} of 16 failed)`);
  t.ok(
    replies.slice(-8).every((r) => r.data === `one ${r.data.slice(4)}` && r.data.endsWith('\n')),
    'the last 8 all answered',
  );
});

t.test('maxConnectionDuration 1s: an active connection is cut after 1 s (DT)', async (t) => {
  const s = connect({ port: P.duration, host: '127.0.0.1' });
  const start = Date.now();
  let answered = 0;
  let closed = false;
  s.setEncoding('latin1');
  s.on('data', (d: string) => {
    answered += d.split('\n').length - 1;
  });
  s.on('error', () => {});
  const over = new Promise((r) => s.once('close', r)).then(() => {
    closed = true;
  });
  while (!closed && Date.now() - start < 3000) {
    s.write('tick\n');
    await sleep(100);
  }
  await over;
  const ms = Date.now() - start;
  t.ok(ms >= 900 && ms < 2000, `cut after ${ms} ms although active`);
  t.ok(answered >= 5, `answered until then (${answered})`);
  t.match(await logLine(/ 0 DT - - "-" \d+ \d+ \d+ .*outbound\|9000\|\|lasting\./), /"- - -" 0 DT /);
});

t.test('drain: an open TCP connection is cut when the drain period ends, the agent exits 0', async (t) => {
  const s = connect({ port: P.weight0, host: '127.0.0.1' });
  let got = '';
  s.setEncoding('latin1');
  s.on('data', (d: string) => {
    got += d;
  });
  s.on('error', () => {});
  const closed = new Promise((r) => s.once('close', r));
  s.write('before drain\n');
  while (!got.includes('\n')) await sleep(10);
  t.equal(got, 'one before drain\n');
  const start = Date.now();
  const code = agent.stop();
  await closed;
  const ms = Date.now() - start;
  t.ok(ms >= 800 && ms < 4000, `cut after the 1 s drain (${ms} ms)`);
  t.equal(await code, 0);
});
