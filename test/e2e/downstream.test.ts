// The downstream fast path (proxy/downstream.ts) against node:http: the same raw bytes through the
// real pilot-agent with the fast path on (default) and off (COURIER_FAST_DOWNSTREAM=0) give the
// same answers -- keep-alive, pipelining, a handoff to node:http in the middle of a connection,
// codec errors, framing of chunked/HEAD/204 responses, Connection: close, a client that goes away
// -- and the fast path's own counters show which requests it served and which it handed over.

import { connect } from 'node:net';
import t, { type Test } from 'tap';
import {
  freePort,
  gatewayYaml,
  serviceEntryYaml,
  sleep,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';
import { exchange } from '../helpers/raw-http.js';

const get = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: shop.example.com\r\n${extra}\r\n`;

// Upstreams: an echo, one answering chunked, one answering 204, one slow.
const echo = await startUpstream('echo', (req, res) => {
  if (req.url === '/chunked') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first,');
    setTimeout(() => res.end('second'), 20);
    return true;
  }
  if (req.url === '/empty') {
    res.writeHead(204, { 'x-empty': 'yes' });
    res.end();
    return true;
  }
  if (req.url?.startsWith('/raw/hop')) {
    // Hop-by-hop headers, one named by Connection, and a repeated header.
    res.writeHead(
      200,
      [
        ['content-type', 'text/plain'],
        ['connection', 'keep-alive, x-secret'],
        ['x-secret', 'hidden'],
        ['keep-alive', 'timeout=5'],
        ['x-multi', 'a'],
        ['x-multi', 'b'],
        ['content-length', '2'],
      ].flat(),
    );
    res.end('ok');
    return true;
  }
  if (req.url === '/slow') {
    setTimeout(() => {
      if (!res.destroyed) res.end('late');
    }, 500);
    return true;
  }
  return false;
});
t.teardown(() => echo.close());

const port = await freePort();
const configDir = writeConfigDir({
  'gw.yaml': gatewayYaml(port),
  'se.yaml': serviceEntryYaml('shop.default.svc.cluster.local', [{ port: echo.port }]),
  'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {exact: /big}}]
    directResponse: {status: 200, body: {string: "${'b'.repeat(256 * 1024)}"}}
  - match: [{uri: {prefix: /raw/}}]
    route:
    - destination: {host: shop.default.svc.cluster.local}
  - route:
    - destination: {host: shop.default.svc.cluster.local}
    headers:
      response:
        add: {x-route: shop}
`,
});

/** istio_requests_total with response_code 200, summed over every label set. */
async function ok200(statusPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${statusPort}/stats/prometheus`)).text();
  let n = 0;
  for (const m of text.matchAll(/^istio_requests_total\{[^}]*response_code="200"[^}]*\} (\d+)$/gm))
    n += Number(m[1]);
  return n;
}

async function fastCounters(statusPort: number): Promise<{ request: number; handoff: number }> {
  const text = await (await fetch(`http://127.0.0.1:${statusPort}/stats/prometheus`)).text();
  const read = (ev: string) =>
    Number(new RegExp(`courier_downstream_fast_path_total\\{event="${ev}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  return { request: read('request'), handoff: read('handoff') };
}

for (const fast of [true, false]) {
  t.test(fast ? 'fast path on' : 'fast path off (node:http only)', async (t) => {
    const agent = await startAgent({ configDir, env: { COURIER_FAST_DOWNSTREAM: fast ? '1' : '0' } });
    t.teardown(() => agent.stop());
    let before = await fastCounters(agent.status);
    /** Counter deltas since the last call: what the fast path served and handed over. */
    const delta = async () => {
      const now = await fastCounters(agent.status);
      const d = { request: now.request - before.request, handoff: now.handoff - before.handoff };
      before = now;
      return d;
    };
    const expectDelta = async (t: Test, request: number, handoff: number) =>
      t.same(await delta(), fast ? { request, handoff } : { request: 0, handoff: 0 }, 'fast-path counters');

    await t.test('keep-alive: five requests on one connection', async (t) => {
      const writes = [1, 2, 3, 4, 5].map((i) => get(`/item/${i}`));
      const { responses, closed } = await exchange(port, writes, 5);
      t.equal(responses.length, 5);
      t.notOk(closed, 'connection kept open');
      for (const [i, r] of responses.entries()) {
        t.equal(r.status, 200);
        t.equal(JSON.parse(r.body).url, `/item/${i + 1}`, 'answers in order');
        t.equal(r.headers['x-route'], 'shop', 'route response header op');
        t.equal(r.headers.connection, 'keep-alive');
        t.equal(r.headers['keep-alive'], 'timeout=65');
        t.match(r.headers.date, /GMT$/);
        t.ok(r.headers['x-envoy-upstream-service-time'] !== undefined);
      }
      await expectDelta(t, 5, 0);
    });

    await t.test('pipelined: three requests in one write answer in order', async (t) => {
      const { responses } = await exchange(port, [get('/p/1') + get('/p/2') + get('/p/3')], 3);
      t.same(
        responses.map((r) => JSON.parse(r.body).url),
        ['/p/1', '/p/2', '/p/3'],
      );
      await expectDelta(t, 3, 0);
    });

    await t.test('a body mid-connection hands the connection to node:http', async (t) => {
      const post = 'POST /orders HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 11\r\n\r\nhello world';
      const { responses, closed } = await exchange(port, [get('/a'), get('/b'), post, get('/c')], 4);
      t.same(
        responses.map((r) => r.status),
        [200, 200, 200, 200],
      );
      const bodies = responses.map((r) => JSON.parse(r.body));
      t.same(
        bodies.map((b) => b.url),
        ['/a', '/b', '/orders', '/c'],
      );
      t.equal(bodies[2].body, 'hello world', 'the body reached the upstream');
      t.notOk(closed);
      await expectDelta(t, 2, 1);
    });

    await t.test('pipelined across a handoff: GET, POST, GET in one write', async (t) => {
      const post = 'POST /x HTTP/1.1\r\nHost: shop.example.com\r\nContent-Length: 3\r\n\r\nabc';
      const { responses } = await exchange(port, [get('/one') + post + get('/three')], 3);
      t.same(
        responses.map((r) => JSON.parse(r.body).url),
        ['/one', '/x', '/three'],
      );
      t.equal(JSON.parse(responses[1]?.body ?? '{}').body, 'abc');
      await expectDelta(t, 1, 1);
    });

    await t.test('a head split across two writes is served (by node:http)', async (t) => {
      const whole = get('/split', 'X-Thing: 1\r\n');
      const { responses } = await exchange(port, [whole.slice(0, 20), whole.slice(20)], 1);
      t.equal(responses[0]?.status, 200);
      t.equal(JSON.parse(responses[0]?.body ?? '{}').headers['x-thing'], '1');
      await expectDelta(t, 0, 1);
    });

    await t.test("a repeated header reaches the upstream with node:http's merge", async (t) => {
      const { responses } = await exchange(port, [get('/dup', 'X-Dup: a\r\nX-Dup: b\r\n')], 1);
      t.equal(JSON.parse(responses[0]?.body ?? '{}').headers['x-dup'], 'a, b');
      await expectDelta(t, 0, 1);
    });

    await t.test('HTTP/1.0 is served and the connection closes', async (t) => {
      const { responses, closed } = await exchange(
        port,
        ['GET /old HTTP/1.0\r\nHost: shop.example.com\r\n\r\n'],
        1,
      );
      t.equal(responses[0]?.status, 200);
      t.ok(closed);
      await expectDelta(t, 0, 1);
    });

    await t.test('Connection: close is honoured', async (t) => {
      const { responses, closed } = await exchange(port, [get('/bye', 'Connection: close\r\n')], 1);
      t.equal(responses[0]?.status, 200);
      t.equal(responses[0]?.headers.connection, 'close');
      t.ok(closed, 'the proxy closed the connection');
      await expectDelta(t, 1, 0);
    });

    await t.test('a client that stops reading stops being served, then catches up', async (t) => {
      const n = 400; // 400 × 256 KiB = 100 MiB if the proxy kept answering into memory
      const sock = connect(port, '127.0.0.1');
      sock.on('error', () => {});
      sock.pause();
      sock.write(get('/big').repeat(n));
      await sleep(1500);
      const served = await ok200(agent.status);
      let bytes = 0;
      const all = new Promise<void>((resolve) => {
        sock.on('data', (d: Buffer) => {
          bytes += d.length;
          if (bytes >= n * 256 * 1024) resolve();
        });
        sock.on('close', () => resolve());
      });
      sock.resume();
      await all;
      sock.destroy();
      t.ok(bytes >= n * 256 * 1024, `all ${n} responses arrived once read (${bytes} bytes)`);
      const total = await ok200(agent.status);
      t.ok(
        total - served >= n / 2,
        `most were served only after the client read (${total - served} of ${n})`,
      );
      await delta();
    });

    await t.test('nothing is served after Connection: close, pipelined or not', async (t) => {
      const { responses, closed } = await exchange(
        port,
        [get('/first', 'Connection: close\r\n') + get('/second')],
        1,
      );
      t.equal(responses.length, 1);
      t.equal(JSON.parse(responses[0]?.body ?? '{}').url, '/first');
      t.ok(closed);
      await delta();
    });

    await t.test('codec errors keep node:http answers', async (t) => {
      const ctl = await exchange(port, [get('/ctl', 'X-Bad: a\x01b\r\n')], 1);
      t.equal(ctl.responses[0]?.status, 400, 'control character in a value');
      t.ok(ctl.closed);
      const fold = await exchange(port, [get('/fold', 'X-Fold: a\r\n  b\r\n')], 1);
      t.equal(fold.responses[0]?.status, 400, 'obs-fold');
      const big = await exchange(port, [get('/big', `X-Big: ${'x'.repeat(70 * 1024)}\r\n`)], 1);
      t.equal(big.responses[0]?.status, 431, 'head over 60 KiB');
      const te = await exchange(
        port,
        ['POST /te HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
        1,
      );
      t.equal(te.responses[0]?.status, 400, 'Content-Length with Transfer-Encoding');
      const nohost = await exchange(port, ['GET / HTTP/1.1\r\n\r\n'], 1);
      t.equal(nohost.responses[0]?.status, 400, 'no Host');
      const method = await exchange(port, ['FOO / HTTP/1.1\r\nHost: a\r\n\r\n'], 1);
      t.equal(method.responses[0]?.status, 400, 'a method llhttp does not know');
      // After good requests on the fast path, a bad one still gets node:http's 400.
      const later = await exchange(port, [get('/ok'), get('/bad', 'Bad Name: x\r\n')], 2);
      t.same(
        later.responses.map((r) => r.status),
        [200, 400],
      );
      await expectDelta(t, 1, 7);
    });

    await t.test('chunked, HEAD and 204 responses are framed right', async (t) => {
      const { responses } = await exchange(
        port,
        [get('/chunked') + get('/chunked').replace('GET', 'HEAD') + get('/empty') + get('/after')],
        4,
        [false, true, false, false],
      );
      t.equal(responses[0]?.body, 'first,second');
      t.ok(responses[0]?.chunked, 'no length from the upstream: chunked downstream');
      t.equal(responses[1]?.status, 200);
      t.equal(responses[1]?.body, '', 'HEAD: no body');
      t.equal(responses[2]?.status, 204);
      t.equal(responses[2]?.headers['x-empty'], 'yes');
      t.equal(responses[2]?.headers['transfer-encoding'], undefined, '204: no framing');
      t.equal(JSON.parse(responses[3]?.body ?? '{}').url, '/after', 'the connection is still in sync');
      await expectDelta(t, 4, 0);
    });

    await t.test(
      'upstream heads without header operations: hop-by-hop dropped, the rest as sent',
      async (t) => {
        const { responses } = await exchange(port, [get('/raw/hop') + get('/raw/plain')], 2);
        const [hop, plain] = responses;
        t.equal(hop?.status, 200);
        t.equal(hop?.body, 'ok');
        t.equal(hop?.headers['x-secret'], undefined, 'a header named by Connection is dropped');
        t.not(hop?.headers['keep-alive'], 'timeout=5', "the upstream's Keep-Alive is not passed on");
        t.equal(hop?.headers.connection, 'keep-alive', "the proxy's own Connection");
        t.equal(hop?.headers['x-multi'], 'a, b');
        t.ok(Number(hop?.headers['x-envoy-upstream-service-time']) >= 0);
        t.equal(plain?.headers['content-type'], 'application/json');
        t.equal(JSON.parse(plain?.body ?? '{}').url, '/raw/plain');
        await expectDelta(t, 2, 0);
      },
    );

    await t.test('a client that goes away mid-request: counted, and the worker serves on', async (t) => {
      const sock = connect(port, '127.0.0.1');
      sock.on('error', () => {});
      sock.write(get('/slow'));
      await sleep(100);
      sock.destroy();
      await sleep(600);
      const { responses } = await exchange(port, [get('/next')], 1);
      t.equal(responses[0]?.status, 200);
      const text = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
      t.match(
        text,
        /istio_requests_total\{[^}]*response_code="0"[^}]*\} 1/,
        'the abandoned request is counted',
      );
      await expectDelta(t, 2, 0);
    });
  });
}
