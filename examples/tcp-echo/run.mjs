// Istio's TCP traffic shifting task, by one command: two local tcp-echo servers (v1 answers
// "one ...", v2 "two ..."), a courier ingress gateway with a TCP server on :31400, all traffic to
// v1, then Istio's tcp-echo-20-v2 VirtualService applied (80% v1, 20% v2) and the split counted.
//   node examples/tcp-echo/run.mjs           # runs the task, then keeps serving :31400
//   node examples/tcp-echo/run.mjs --exit    # runs the task and exits
//   (date; sleep 1) | nc localhost 31400     # what the task sends, once per connection
// The files in this directory are applied to a working copy, as `kubectl apply` would apply them.
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const agentBin = join(here, '..', '..', 'dist', 'pilot-agent', 'main.js');
const GATEWAY = 31400;
const ADMIN = 19950;

// Istio's samples/tcp-echo/tcp-echo-20-v2.yaml, unchanged. It is kept here rather than as a file
// of this directory: next to tcp-echo-all-v1.yaml it would define the VirtualService twice.
const TCP_ECHO_20_V2 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - "*"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v1
      weight: 80
    - destination:
        host: tcp-echo
        port:
          number: 9000
        subset: v2
      weight: 20
`;

/** tcp-echo-server: each line `L` is answered `<prefix> L`; closes after the client's EOF. */
function echo(prefix, port) {
  return createServer({ allowHalfOpen: true }, (sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        sock.write(`${prefix} ${buf.slice(0, i + 1)}`);
        buf = buf.slice(i + 1);
      }
    });
    sock.on('end', () => sock.end());
    sock.on('error', () => {});
  }).listen(port, '127.0.0.1');
}
const servers = [echo('one', 19900), echo('two', 19901)];

// The "cluster": a working copy of the config, which courier watches.
const work = mkdtempSync(join(tmpdir(), 'courier-tcp-echo-'));
for (const f of ['tcp-echo-services.yaml', 'tcp-echo-all-v1.yaml'])
  copyFileSync(join(here, f), join(work, f));

const agent = spawn(
  process.execPath,
  [
    agentBin,
    'proxy',
    'router',
    '--config-dir',
    work,
    '--concurrency',
    '1',
    '--admin-port',
    String(ADMIN),
    '--status-port',
    '19951',
    '--health-port',
    '19952',
    '--stats-port',
    '19953',
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);

let stopping = false;
const stop = (code = 0) => {
  if (stopping) return;
  stopping = true;
  agent.kill('SIGTERM');
  for (const s of servers) s.close();
  const done = () => {
    rmSync(work, { recursive: true, force: true });
    process.exit(code);
  };
  if (agent.exitCode !== null) done();
  else agent.once('exit', done);
  setTimeout(done, 6000).unref();
};
process.on('SIGINT', () => stop());
process.on('SIGTERM', () => stop());
agent.on('exit', (code) => {
  if (!stopping) stop(code ?? 1);
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function adminJson(path) {
  return (await fetch(`http://127.0.0.1:${ADMIN}${path}`)).json();
}

async function waitReady() {
  for (let i = 0; i < 300; i++) {
    const ok = await fetch('http://127.0.0.1:19952/healthz/ready').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(100);
  }
  throw new Error('the gateway did not become ready');
}

/** `(date; sleep 1) | nc localhost 31400`, without the sleep: one line, then EOF; the answer. */
function nc(line) {
  return new Promise((resolve) => {
    const s = connect({ port: GATEWAY, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d) => {
      got += d;
    });
    s.on('error', () => {});
    s.on('end', () => s.end());
    s.on('close', () => resolve(got));
    s.on('connect', () => s.end(`${line}\n`));
  });
}

async function connections(n, print) {
  const counts = { one: 0, two: 0, other: 0 };
  for (let i = 0; i < n; i += 20) {
    const replies = await Promise.all(
      Array.from({ length: Math.min(20, n - i) }, () => nc(new Date().toString())),
    );
    for (const r of replies) {
      if (print) process.stdout.write(r || '(no answer)\n');
      const who = r.split(' ')[0];
      if (who === 'one' || who === 'two') counts[who]++;
      else counts.other++;
    }
  }
  return counts;
}

/** `kubectl apply -f tcp-echo-20-v2.yaml`: its VirtualService replaces the all-v1 one. */
async function apply2080() {
  const before = (await adminJson('/config_dump')).version;
  const allV1 = readFileSync(join(work, 'tcp-echo-all-v1.yaml'), 'utf8')
    .split(/^---$/m)
    .filter((doc) => !/^kind: VirtualService$/m.test(doc))
    .join('---');
  writeFileSync(join(work, 'tcp-echo-all-v1.yaml'), allV1);
  writeFileSync(join(work, 'tcp-echo-20-v2.yaml'), TCP_ECHO_20_V2);
  for (let i = 0; i < 100; i++) {
    const d = await adminJson('/config_dump');
    if (d.version !== before && d.workers.every((w) => w.version === d.version)) return;
    await sleep(100);
  }
  throw new Error('the 80/20 VirtualService was not applied');
}

try {
  await waitReady();
  process.stdout.write('tcp-echo: gateway ready on :31400, all traffic to v1 (tcp-echo-all-v1.yaml)\n');
  const first = await connections(20, true);
  process.stdout.write(`all-v1: ${first.one} one, ${first.two} two of 20\n`);
  await apply2080();
  process.stdout.write('applied tcp-echo-20-v2 (80% v1, 20% v2)\n');
  await connections(20, true);
  const N = 200;
  const split = await connections(N, false);
  process.stdout.write(
    `80/20: ${split.one} one, ${split.two} two of ${N} connections (${Math.round((100 * split.two) / N)}% to v2)\n`,
  );
  if (process.argv.includes('--exit')) stop();
  else process.stdout.write('try: (date; sleep 1) | nc localhost 31400   (Ctrl-C to stop)\n');
} catch (e) {
  process.stderr.write(`tcp-echo: ${e.message}\n`);
  stop(1);
}
