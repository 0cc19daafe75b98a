// Circuit breakers belong to the cluster: reloads while requests are in flight leave the limits
// exactly as they were, and tcp.maxConnections caps the whole cluster's upstream connections,
// whichever path (raw pool, undici for streamed bodies, mirrors, upgrades) a request takes.

import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import {
  freePort,
  gatewayYaml,
  request,
  serviceEntryYaml,
  sleep,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const OVERFLOW = 'upstream connect error or disconnect/reset before headers. reset reason: overflow';

/** Answers a request only when the test says so. */
const held: (() => void)[] = [];
const hold = await startUpstream('hold', (_req, res) => {
  held.push(() => {
    res.writeHead(200, { 'content-length': '4' });
    res.end('held');
  });
  return true;
});

/** Two endpoints that count the connections open to them, together. */
const open = { now: 0, max: 0 };
function countConnections(u: Awaited<ReturnType<typeof startUpstream>>): void {
  u.server.on('connection', (s: Socket) => {
    open.now++;
    open.max = Math.max(open.max, open.now);
    // Closed once the proxy's FIN arrives ('end'), not when this side finishes closing: the
    // proxy may reuse the slot as soon as it has closed its end.
    let gone = false;
    const down = () => {
      if (!gone) open.now--;
      gone = true;
    };
    s.once('end', down);
    s.once('close', down);
  });
  // WebSocket-style upgrades: answer 101, hold the tunnel briefly, close it.
  u.server.on('upgrade', (_req, sock: Socket) => {
    sock.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
    setTimeout(() => sock.end(), 30);
  });
}
const slowly = (_req: unknown, res: import('node:http').ServerResponse) => {
  setTimeout(() => {
    res.writeHead(200, { 'content-length': '2' });
    res.end('ok');
  }, 15);
  return true;
};
const a = await startUpstream('a', slowly);
const b = await startUpstream('b', slowly);
countConnections(a);
countConnections(b);

/** An upstream that upgrades and keeps each tunnel open until the client closes it. */
const ws = await startUpstream('ws');
ws.server.on('upgrade', (_req, sock: Socket) => {
  sock.write('HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n');
  sock.on('end', () => sock.end());
  sock.on('error', () => {});
});

const gw = await freePort();
const base = `${gatewayYaml(gw)}
---
${serviceEntryYaml('held.default.svc.cluster.local', [{ port: hold.port }])}
---
${serviceEntryYaml('pair.default.svc.cluster.local', [{ port: a.port }, { port: b.port }])}
---
${serviceEntryYaml('ws.default.svc.cluster.local', [{ port: ws.port }])}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ws}
spec:
  host: ws
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: held}
spec:
  host: held
  trafficPolicy:
    connectionPool:
      http: {http2MaxRequests: 1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pair}
spec:
  host: pair
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 2}
      http: {http1MaxPendingRequests: 10000}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /held}}]
    route: [{destination: {host: held}}]
  - match: [{uri: {prefix: /ws}}]
    route: [{destination: {host: ws}}]
  - match: [{uri: {prefix: /mirrored}}]
    route: [{destination: {host: pair}}]
    mirror: {host: pair}
    mirrorPercentage: {value: 100}
  - match: [{uri: {prefix: /buffered}}]
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: pair}}]
  - match: [{uri: {prefix: /pair}}]
    retries: {attempts: 0}
    route: [{destination: {host: pair}}]
`;
const dir = writeConfigDir({ 'c.yaml': base });
const agent = await startAgent({ configDir: dir, concurrency: 1 });
t.teardown(async () => {
  for (const release of held.splice(0)) release();
  await agent.stop();
  await Promise.all([hold, a, b, ws].map((u) => u.close()));
});

async function version(): Promise<string> {
  const d = (await (await fetch(`http://127.0.0.1:${agent.admin}/config_dump`)).json()) as {
    version: string;
  };
  return d.version;
}

/** Rewrite the config (a change that does not touch the cluster) and wait until it is served. */
let reloads = 0;
async function reload(): Promise<void> {
  const before = await version();
  reloads++;
  writeFileSync(join(dir, 'c.yaml'), `${base}\n# reload ${reloads}\n---\n${extraVs(reloads)}`);
  for (let i = 0; i < 100 && (await version()) === before; i++) await sleep(50);
  t.not(await version(), before, `reload ${reloads} served`);
  await sleep(100); // the workers take it after the agent
}
const extraVs = (n: number) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: extra}
spec:
  hosts: [extra-${n}.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: held}}]
`;

async function waitHeld(n: number): Promise<void> {
  for (let i = 0; i < 200 && held.length < n; i++) await sleep(10);
  if (held.length < n) throw new Error(`upstream holds ${held.length} of ${n} requests`);
}

t.test('http2MaxRequests: 1 holds exactly across reloads with a request in flight', async (t) => {
  const first = request(gw, '/held');
  await waitHeld(1);
  const second = await request(gw, '/held');
  t.equal(second.status, 503, 'a second concurrent request overflows before any reload');
  t.equal(second.body, OVERFLOW);
  await reload();
  await reload();
  const during = await request(gw, '/held');
  t.equal(during.status, 503, 'still one in flight after two reloads: the limit still holds');
  (held.shift() as () => void)();
  t.equal((await first).status, 200, 'the request from before the reloads completes');
  for (let i = 0; i < 5; i++) {
    const one = request(gw, '/held');
    await waitHeld(1);
    (held.shift() as () => void)();
    t.equal((await one).status, 200, `one at a time after the reloads: request ${i + 1} served`);
  }
  const again = request(gw, '/held');
  await waitHeld(1);
  t.equal((await request(gw, '/held')).status, 503, 'and the limit still trips at exactly two');
  (held.shift() as () => void)();
  t.equal((await again).status, 200);
});

/** A POST whose body is chunked (streamed: it takes undici, not the raw pool). */
function streamedPost(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: gw, path, method: 'POST', headers: { host: 'example.com' }, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.write('part one,');
    setTimeout(() => req.end('part two'), 5);
  });
}

/** A WebSocket-style upgrade through the gateway: resolves with the status line's code. */
function upgrade(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(gw, '127.0.0.1', () =>
      s.write(
        `GET ${path} HTTP/1.1\r\nhost: example.com\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n`,
      ),
    );
    let head = '';
    s.on('data', (d) => {
      head += d.toString('latin1');
    });
    s.on('error', reject);
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)));
  });
}

t.test('maxConnections: 2 over two endpoints never opens a third connection, on any path', async (t) => {
  open.max = 0;
  const jobs: Promise<number>[] = [];
  for (let i = 0; i < 12; i++) {
    jobs.push(request(gw, `/pair/${i}`).then((r) => r.status));
    jobs.push(streamedPost(`/pair/post/${i}`));
    jobs.push(request(gw, `/buffered/${i}`, { method: 'POST', body: 'small body' }).then((r) => r.status));
    jobs.push(request(gw, `/mirrored/${i}`).then((r) => r.status));
    if (i % 3 === 0) jobs.push(upgrade(`/pair/ws/${i}`));
  }
  const statuses = await Promise.all(jobs);
  const expected = statuses.map((s) => (s === 101 ? 101 : 200));
  t.same(statuses, expected, 'every request answered (queued, none overflowed, none lost)');
  t.ok(statuses.includes(101), 'upgrades went through');
  t.ok(open.max >= 1 && open.max <= 2, `at most 2 upstream connections at once (saw ${open.max})`);
  t.ok(a.hits + b.hits >= 48, `both paths reached the endpoints (${a.hits} + ${b.hits})`);
});

/** Open a WebSocket-style tunnel through the gateway: the status and the socket (left open). */
function openTunnel(path: string): Promise<{ status: number; head: string; sock: Socket }> {
  return new Promise((resolve, reject) => {
    const sock = connect(gw, '127.0.0.1', () =>
      sock.write(
        `GET ${path} HTTP/1.1\r\nhost: example.com\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n`,
      ),
    );
    let head = '';
    const done = () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), head, sock });
    sock.on('data', (d) => {
      head += d.toString('latin1');
      // A 101 leaves the tunnel open; any other answer closes the connection after its body.
      if (/^HTTP\/1\.1 101 [\s\S]*\r\n\r\n/.test(head)) done();
    });
    sock.on('error', reject);
    sock.on('close', done);
  });
}

t.test('an open tunnel holds a request slot: the breakers answer 503 UO until it closes', async (t) => {
  const first = await openTunnel('/ws/1');
  t.equal(first.status, 101, 'the first upgrade opens');
  const second = await openTunnel('/ws/2');
  t.equal(second.status, 503, 'a second upgrade overflows while the first tunnel is open');
  t.match(second.head, /x-envoy-overloaded: true/);
  t.match(second.head, /reset reason: overflow$/);
  second.sock.destroy();
  const plain = await request(gw, '/ws/plain');
  t.equal(plain.status, 503, 'so does an ordinary request to the cluster');
  first.sock.end();
  for (let i = 0; i < 100; i++) {
    const again = await openTunnel('/ws/3');
    again.sock.destroy();
    if (again.status === 101) return t.pass('the slot is free once the tunnel closed');
    await sleep(20);
  }
  t.fail('the slot never came back after the tunnel closed');
});
