// Per-worker downstream connection limit (COURIER_MAX_CONNECTIONS) through the real pilot-agent:
// connections beyond it are closed at accept and counted, the ones already open keep working, and
// a slot freed by a closing connection is usable again.

import { connect, type Socket } from 'node:net';
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

const LIMIT = 3;
const up = await startUpstream('up', (_req, res) => {
  res.writeHead(200, { 'content-length': '2', 'x-upstream': 'up' });
  res.end('ok');
  return true;
});
const gw = await freePort();
const config = `${gatewayYaml(gw)}
---
${serviceEntryYaml('up.default.svc.cluster.local', [{ port: up.port }])}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: up}}]
`;
const agent = await startAgent({
  configDir: writeConfigDir({ 'c.yaml': config }),
  concurrency: 1,
  env: { COURIER_MAX_CONNECTIONS: String(LIMIT) },
});
const open: Socket[] = [];
t.teardown(async () => {
  for (const s of open) s.destroy();
  await agent.stop();
  await up.close();
});

/** A raw keep-alive client connection: `get()` sends one request and reads one response. */
interface Conn {
  sock: Socket;
  closed: Promise<void>;
  get: () => Promise<{ status: number; body: string } | 'closed'>;
}

async function conn(): Promise<Conn> {
  const sock = connect(gw, '127.0.0.1');
  open.push(sock);
  sock.on('error', () => {});
  await new Promise<void>((res, rej) => {
    sock.once('connect', () => res());
    sock.once('error', rej);
  });
  let buf = Buffer.alloc(0);
  let waiter: (() => void) | undefined;
  let ended = false;
  sock.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    waiter?.();
  });
  const closed = new Promise<void>((res) =>
    sock.once('close', () => {
      ended = true;
      waiter?.();
      res();
    }),
  );
  const get = async (): Promise<{ status: number; body: string } | 'closed'> => {
    if (!ended) sock.write('GET /x HTTP/1.1\r\nhost: example.com\r\n\r\n');
    for (;;) {
      const text = buf.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end >= 0) {
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
        if (buf.length >= end + 4 + len) {
          const status = Number(text.slice(9, 12));
          const body = buf.subarray(end + 4, end + 4 + len).toString();
          buf = buf.subarray(end + 4 + len);
          return { status, body };
        }
      }
      if (ended) return 'closed';
      await new Promise<void>((r) => {
        waiter = r;
      });
      waiter = undefined;
    }
  };
  return { sock, closed, get };
}

async function overflowCount(): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`);
  return Number(/^courier_downstream_cx_overflow_total (\d+)$/m.exec(await r.text())?.[1] ?? Number.NaN);
}

t.test('connections beyond the limit are closed; the open ones keep working', async (t) => {
  t.equal(await overflowCount(), 0, 'nothing refused yet');
  const held: Conn[] = [];
  for (let i = 0; i < LIMIT; i++) {
    const c = await conn();
    const r = await c.get();
    t.equal(r === 'closed' ? 'closed' : r.status, 200, `connection ${i + 1} of ${LIMIT} served`);
    held.push(c);
  }

  const extra = await conn();
  const r = await extra.get();
  t.equal(r, 'closed', `connection ${LIMIT + 1} is closed without an answer`);
  await extra.closed;
  t.equal(await overflowCount(), 1, 'counted in courier_downstream_cx_overflow_total');

  for (const [i, c] of held.entries()) {
    const again = await c.get();
    t.equal(again === 'closed' ? 'closed' : again.status, 200, `held connection ${i + 1} still serves`);
  }

  // A burst over the limit: every one closed, the held ones unaffected.
  const burst = await Promise.all(Array.from({ length: 10 }, () => conn().then((c) => c.get())));
  t.same(new Set(burst), new Set(['closed']), 'a burst over the limit is closed');
  t.equal(await overflowCount(), 11);
  const first = held[0] as Conn;
  const stillOk = await first.get();
  t.equal(stillOk === 'closed' ? 'closed' : stillOk.status, 200, 'a held connection still serves');

  // Releasing: close one held connection and its slot serves a new client.
  first.sock.end();
  await first.closed;
  let freed: Awaited<ReturnType<Conn['get']>> = 'closed';
  for (let i = 0; i < 20 && freed === 'closed'; i++) {
    await sleep(50);
    freed = await (await conn()).get();
  }
  t.equal(freed === 'closed' ? 'closed' : freed.status, 200, 'a freed slot serves a new connection');
  for (const c of held) c.sock.destroy();
  await Promise.all(held.map((c) => c.closed));
  await sleep(100);
  const plain = await request(gw, '/after');
  t.equal(plain.status, 200, 'all released: ordinary requests go through');
  const m = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
  t.match(m, /^courier_worker_restarts_total 0$/m, 'the worker never restarted');
});
