// Every upstream failure path through the real pilot-agent (one worker) against hostile upstreams
// on raw sockets: the client gets Envoy's answer, and the same worker process is still alive,
// never restarted, and still serving afterwards.

import { connect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import t, { type Test } from 'tap';
import {
  childPids,
  freePort,
  gatewayYaml,
  request,
  serviceEntryYaml,
  sleep,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const RESET = 'upstream connect error or disconnect/reset before headers. reset reason: ';
const REFUSED =
  'remote connection failure, transport failure reason: delayed connect error: Connection refused';
/** Istio's default retry policy retries a refused connection twice before answering. */
const RETRIED =
  'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: ';

interface RawUpstream {
  port: number;
  server: Server;
  /** Requests seen (a request is counted when its head is complete). */
  requests: number;
  connections: number;
}

/** A raw TCP upstream: `onRequest` runs for each complete request head on a connection. */
async function rawUpstream(
  onRequest: (sock: Socket, nth: number, u: RawUpstream) => void,
): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const server = createServer((sock) => {
    sockets.add(sock);
    u.connections++;
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    let buf = '';
    let nth = 0;
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        const len = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        buf = buf.slice(end + 4 + len);
        u.requests++;
        onRequest(sock, ++nth, u);
        if (sock.destroyed) return;
      }
    });
  });
  const u: RawUpstream = { port: 0, server, requests: 0, connections: 0 };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as { port: number }).port;
  server.on('close', () => {
    for (const s of sockets) s.destroy();
  });
  return u;
}

const refusedPort = await freePort();
const resetHeaders = await rawUpstream((sock) => {
  sock.write('HTTP/1.1 20');
  setTimeout(() => sock.destroy(), 20);
});
const resetBody = await rawUpstream((sock) => {
  sock.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000\r\n\r\n0123456789');
  setTimeout(() => sock.destroy(), 20);
});
const garbage = await rawUpstream((sock) => {
  sock.end('NOT HTTP\r\n\r\n');
});
// A bare LF inside a header value: written on as is, it would inject a header downstream.
const badHeader = await rawUpstream((sock) => {
  sock.end('HTTP/1.1 200 OK\r\nx-a: foo\nInjected: yes\r\ncontent-length: 2\r\n\r\nok');
});
// Both framings in one response: a response-splitting attempt.
const bothFramings = await rawUpstream((sock) => {
  sock.end(
    'HTTP/1.1 200 OK\r\ncontent-length: 100\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  );
});
const slowHeaders = await rawUpstream(() => {});
const slowBody = await rawUpstream((sock) => {
  sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst bytes ');
});
// The idle-socket race: each connection answers its first request with keep-alive and closes
// RACE_MS later; a request that arrives on it before then is met by the close (as when the
// upstream's idle timer fires just as the proxy reuses the socket), never by an answer.
const RACE_MS = 40;
let racedHits = 0;
const racy = await rawUpstream((sock, nth) => {
  if (nth > 1) {
    racedHits++;
    sock.destroy();
    return;
  }
  sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
  setTimeout(() => sock.destroy(), RACE_MS);
});
const good = await startUpstream('good');
const hosts: [string, number, string?][] = [
  ['refused', refusedPort],
  ['resetheaders', resetHeaders.port],
  ['resetbody', resetBody.port],
  ['garbage', garbage.port],
  ['badheader', badHeader.port],
  ['clte', bothFramings.port],
  ['slowheaders', slowHeaders.port, '500ms'],
  ['slowbody', slowBody.port, '500ms'],
  ['racy', racy.port],
  ['good', good.port],
];
const configFor = (gw: number) =>
  [
    gatewayYaml(gw),
    ...hosts.map(([h, port]) => serviceEntryYaml(`${h}.default.svc.cluster.local`, [{ port }])),
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
${hosts
  .map(
    ([h, , timeout]) =>
      `  - match: [{uri: {prefix: /${h}}}]\n    route: [{destination: {host: ${h}}}]${timeout ? `\n    timeout: ${timeout}` : ''}`,
  )
  .join('\n')}
`,
  ].join('\n---\n');

t.teardown(async () => {
  for (const u of [resetHeaders, resetBody, garbage, badHeader, bothFramings, slowHeaders, slowBody, racy])
    await new Promise((r) => u.server.close(r));
  await good.close();
});

// Both upstream pools: the raw HTTP/1.1 fast path (bodyless and buffered requests, the default)
// and undici (streamed bodies, passthrough, unix sockets; all requests with COURIER_FAST_PATH=0).
const MODES: [string, NodeJS.ProcessEnv][] = [
  ['the raw HTTP/1.1 pool (default)', {}],
  ['undici pools (COURIER_FAST_PATH=0)', { COURIER_FAST_PATH: '0' }],
];

for (const [mode, env] of MODES)
  t.test(`upstream through ${mode}`, async (t) => {
    const gw = await freePort();
    const agent = await startAgent({
      configDir: writeConfigDir({ 'c.yaml': configFor(gw) }),
      concurrency: 1,
      env,
    });
    t.teardown(() => agent.stop());

    const workerPids = () => childPids(agent.proc.pid as number);

    async function metrics(): Promise<string> {
      return (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
    }

    const pids = workerPids();
    t.equal(pids.length, 1, 'one worker process');
    const workerPid = pids[0] as number;

    /** After each failure path: the same worker, never restarted, serves a normal request. */
    async function workerSurvived(t: Test): Promise<void> {
      await sleep(100);
      t.same(workerPids(), [workerPid], `worker ${workerPid} is still the one worker`);
      t.doesNotThrow(() => process.kill(workerPid, 0), 'worker process alive');
      const m = await metrics();
      t.match(m, /^courier_worker_restarts_total 0$/m, 'courier_worker_restarts_total 0');
      // Every failure was handled where it happened: none reached the process-level safety net.
      t.match(m, /^courier_worker_unhandled_errors_total\{kind="exception"\} 0$/m, 'no unheard error event');
      t.match(m, /^courier_worker_unhandled_errors_total\{kind="rejection"\} 0$/m, 'no unhandled rejection');
      const r = await request(gw, '/good');
      t.equal(r.status, 200, 'a normal request is served afterwards');
      t.equal(r.headers['x-upstream'], 'good');
    }

    /** A request whose response is cut: resolves with how far it got instead of rejecting. */
    async function aborted(path: string): Promise<{ status: number; error: string; received: string }> {
      const http = await import('node:http');
      return new Promise((res) => {
        let status = 0;
        let received = '';
        const req = http.request(
          { host: '127.0.0.1', port: gw, path, headers: { host: 'x' }, agent: false },
          (r) => {
            status = r.statusCode ?? 0;
            r.on('data', (d: Buffer) => {
              received += d.toString();
            });
            r.on('end', () => res({ status, error: '', received }));
            r.on('error', (e) =>
              res({ status, error: (e as Error & { code?: string }).code ?? e.message, received }),
            );
          },
        );
        req.on('error', (e) =>
          res({ status, error: (e as Error & { code?: string }).code ?? e.message, received }),
        );
        req.end();
      });
    }

    t.test('connection refused: 503 remote connection failure, after the default retries', async (t) => {
      const r = await request(gw, '/refused');
      t.equal(r.status, 503);
      t.equal(r.body, `${RETRIED}${REFUSED}`);
      await workerSurvived(t);
    });

    t.test('reset mid-headers: 503 connection termination', async (t) => {
      const r = await request(gw, '/resetheaders');
      t.equal(r.status, 503);
      t.equal(r.body, `${RESET}connection termination`);
      await workerSurvived(t);
    });

    t.test('reset mid-body: headers already sent, so the response is aborted', async (t) => {
      const r = await aborted('/resetbody');
      t.equal(r.status, 200, 'the upstream status was passed on');
      t.equal(r.received, '0123456789', 'the bytes that came were passed on');
      t.equal(r.error, 'ECONNRESET', 'then the client sees the response cut, not a short success');
      await workerSurvived(t);
    });

    t.test('garbage response: 503 protocol error', async (t) => {
      const r = await request(gw, '/garbage');
      t.equal(r.status, 503);
      t.equal(r.body, `${RESET}protocol error`);
      await workerSurvived(t);
    });

    t.test('a header value with a bare LF: 503 protocol error, nothing injected', async (t) => {
      const r = await request(gw, '/badheader');
      t.equal(r.status, 503);
      t.equal(r.body, `${RESET}protocol error`);
      t.equal(r.headers.injected, undefined);
      await workerSurvived(t);
    });

    t.test('Content-Length with Transfer-Encoding from the upstream: 503 protocol error', async (t) => {
      const r = await request(gw, '/clte');
      t.equal(r.status, 503);
      t.equal(r.body, `${RESET}protocol error`);
      await workerSurvived(t);
    });

    t.test('slow headers: 504 upstream request timeout after the route timeout', async (t) => {
      const start = Date.now();
      const r = await request(gw, '/slowheaders');
      const took = Date.now() - start;
      t.equal(r.status, 504);
      t.equal(r.body, 'upstream request timeout');
      t.ok(took >= 450 && took < 2000, `answered at the 500ms timeout (${took}ms)`);
      await workerSurvived(t);
    });

    t.test('slow body: the route timeout aborts a response already started', async (t) => {
      const start = Date.now();
      const r = await aborted('/slowbody');
      const took = Date.now() - start;
      t.equal(r.status, 200);
      t.equal(r.received, 'first bytes ');
      t.equal(r.error, 'ECONNRESET');
      t.ok(took >= 450 && took < 2000, `cut at the 500ms timeout (${took}ms)`);
      await workerSurvived(t);
    });

    t.test('a TLS client hello on the plain listener is refused, nothing crashes', async (t) => {
      const outcome = await new Promise<string>((res) => {
        const s = tlsConnect({
          host: '127.0.0.1',
          port: gw,
          servername: 'example.com',
          rejectUnauthorized: false,
        });
        s.once('secureConnect', () => res('handshake completed?!'));
        s.once('error', (e: Error & { code?: string }) => res(e.code ?? e.message));
        s.once('close', () => res('closed'));
        setTimeout(() => {
          s.destroy();
          res('timeout');
        }, 3000);
      });
      t.not(outcome, 'handshake completed?!');
      t.not(outcome, 'timeout', `the proxy answered and closed (${outcome})`);
      // A burst of them, concurrently, with half-sent hellos.
      await Promise.all(
        Array.from(
          { length: 20 },
          (_, i) =>
            new Promise<void>((res) => {
              const s = tlsConnect({ host: '127.0.0.1', port: gw, rejectUnauthorized: false });
              s.on('error', () => res());
              s.on('close', () => res());
              if (i % 2) setTimeout(() => s.destroy(), 1);
            }),
        ),
      );
      await workerSurvived(t);
    });

    t.test('idle-socket race: an idempotent request is re-sent transparently', async (t) => {
      const hitsBefore = racedHits;
      const statuses = new Map<number, number>();
      for (let i = 0; i < 40; i++) {
        const r = await request(gw, '/racy');
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        // Back to back (the socket is reused well before its close: the race, for certain), or
        // spaced around the close (the race, by timing).
        if (i % 2) await sleep(RACE_MS - 10 + (i % 20));
      }
      t.same(Object.fromEntries(statuses), { 200: 40 }, 'every GET answered 200');
      const raced = racedHits - hitsBefore;
      t.ok(raced > 0, `the race was hit: ${raced} requests met a closing socket and were re-sent`);
      await workerSurvived(t);
    });

    t.test(
      'idle-socket race: a POST is not re-sent (not idempotent), 503 connection termination',
      async (t) => {
        await request(gw, '/racy');
        const before = racy.requests;
        const r = await request(gw, '/racy', { method: 'POST', body: 'once' });
        if (racy.requests - before === 1 && r.status === 200) {
          t.pass('the POST went to a fresh connection; nothing to check');
        } else {
          t.equal(r.status, 503);
          t.equal(r.body, `${RESET}connection termination`);
          // Once when the POST reached the upstream before it closed; zero when the close won
          // the race outright (its kernel reset the connection). Never twice: it is not re-sent.
          t.ok(racy.requests - before <= 1, 'the upstream saw the POST at most once');
        }
        await workerSurvived(t);
      },
    );

    /** Raw bytes to the gateway port; resolves with everything read until the proxy closes. */
    function raw(text: string, ms = 3000): Promise<string> {
      return new Promise((res) => {
        const sock = connect(gw, '127.0.0.1', () => sock.write(text));
        let buf = '';
        sock.on('data', (d) => {
          buf += d.toString('latin1');
        });
        sock.on('close', () => res(buf));
        sock.on('error', () => res(buf));
        setTimeout(() => {
          sock.destroy();
          res(buf);
        }, ms);
      });
    }

    t.test('streamed (chunked) request bodies: the same answers', async (t) => {
      const post = (p: string) =>
        raw(
          `POST ${p} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
        );
      const want: Record<string, string> = {
        '/refused': `${RESET}${REFUSED}`, // a streamed body is never retried
        '/resetheaders': `${RESET}connection termination`,
        '/garbage': `${RESET}protocol error`,
      };
      for (const [p, body] of Object.entries(want)) {
        const got = await post(p);
        t.match(got, /^HTTP\/1\.1 503 /, `${p}: ${got.split('\r\n')[0]}`);
        t.ok(got.endsWith(`\r\n\r\n${body}`), `${p}: ${body}`);
      }
      const slow = await post('/slowheaders');
      t.match(slow, /^HTTP\/1\.1 504 [\s\S]*upstream request timeout$/);
      await workerSurvived(t);
    });

    t.test('Upgrade requests to each hostile upstream: a status, never a hang or a crash', async (t) => {
      // An upstream that answers without upgrading has its response passed on (as Envoy does);
      // one cut short stays cut short.
      const expected: Record<string, RegExp> = {
        '/refused':
          /^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused$/,
        '/resetheaders': /^HTTP\/1\.1 503 /,
        '/resetbody': /^HTTP\/1\.1 200 OK\r\n[\s\S]*content-length: 1000\r\n[\s\S]*\r\n\r\n0123456789$/,
        '/garbage': /^HTTP\/1\.1 503 /,
        '/slowheaders': /^HTTP\/1\.1 504 Gateway Timeout\r\n[\s\S]*upstream request timeout$/,
        '/slowbody': /^HTTP\/1\.1 200 OK\r\n[\s\S]*content-length: 100\r\n[\s\S]*\r\n\r\nfirst bytes $/,
        '/racy': /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nok$/,
      };
      for (const [p, want] of Object.entries(expected)) {
        const got = await raw(
          `GET ${p} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n`,
        );
        t.match(got, want, `${p}: ${got.split('\r\n')[0]}`);
      }
      await workerSurvived(t);
    });

    t.test('all paths at once, repeatedly: the same worker survives', async (t) => {
      const paths = [
        '/refused',
        '/resetheaders',
        '/resetbody',
        '/garbage',
        '/slowheaders',
        '/slowbody',
        '/racy',
      ];
      const all: Promise<unknown>[] = [];
      for (let i = 0; i < 5; i++) for (const p of paths) all.push(aborted(p));
      await Promise.all(all);
      await workerSurvived(t);
      t.notMatch(agent.logs(), /uncaught|exited/, 'no worker error or exit in the agent log');
    });
  });
