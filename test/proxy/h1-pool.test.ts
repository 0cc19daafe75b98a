// The raw HTTP/1.1 fast path against raw upstream sockets: framing (Content-Length, chunked with
// extensions and trailers, close-delimited), interim 1xx, HEAD/204/304, heads split across reads,
// keep-alive reuse, maxRequestsPerConnection, the idle-socket race (reported, for the forwarder to
// replay) and protocol errors; and the same pool over TLS (upstream-tls.ts options).

import { createServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import t from 'tap';
import { H1Pool, type H1Request } from '../../dist/proxy/h1-pool.js';
import type { UpstreamFailure } from '../../dist/proxy/upstream-pool.js';
import { upstreamTlsOptions } from '../../dist/proxy/upstream-tls.js';
import { makeCa } from '../helpers/certs.js';

type Reply = (sock: Socket, head: string) => void;

async function server(reply: Reply): Promise<{ port: number; conns: () => number; close: () => void }> {
  let conns = 0;
  const socks = new Set<Socket>();
  const s = createServer((sock) => {
    conns++;
    socks.add(sock);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      let end = buf.indexOf('\r\n\r\n');
      while (end >= 0) {
        const head = buf.slice(0, end);
        const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        buf = buf.slice(end + 4 + len);
        reply(sock, head);
        end = buf.indexOf('\r\n\r\n');
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as { port: number }).port,
    conns: () => conns,
    close: () => {
      for (const x of socks) x.destroy();
      s.close();
    },
  };
}

interface Result {
  status: number;
  headers: string[];
  body: string;
  error?: string;
  failure?: UpstreamFailure;
}

function send(pool: H1Pool, req: Partial<H1Request> = {}): Promise<Result> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let headers: string[] = [];
    pool.dispatch(
      { method: 'GET', path: '/', headers: { host: 'x' }, body: null, ...req },
      {
        onConnect() {},
        onHeaders(s, raw) {
          status = s;
          headers = raw as string[];
          return true;
        },
        onData(c) {
          chunks.push(c);
          return true;
        },
        onComplete() {
          resolve({ status, headers, body: Buffer.concat(chunks).toString() });
        },
        onError(err) {
          resolve({
            status,
            headers,
            body: Buffer.concat(chunks).toString(),
            error: err.code ?? err.message,
            failure: err,
          });
        },
      },
    );
  });
}

const opts = { connections: 4, connectTimeoutMs: 1000, keepAliveMs: 2000, maxRequestsPerConnection: 0 };

t.test('content-length, keep-alive reuse and the serialised request head', async (t) => {
  let seen = '';
  const s = await server((sock, head) => {
    seen = head;
    sock.write(
      'HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\nset-cookie: a=1\r\nset-cookie: b=2\r\n\r\nhello',
    );
  });
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, opts);
  const r = await send(pool, {
    method: 'POST',
    path: '/p?q=1',
    headers: { host: 'h', 'x-m': ['1', '2'] },
    body: Buffer.from('abc'),
  });
  t.equal(r.status, 200);
  t.equal(r.body, 'hello');
  t.same(r.headers, ['content-length', '5', 'x-a', '1', 'set-cookie', 'a=1', 'set-cookie', 'b=2']);
  t.match(seen, /^POST \/p\?q=1 HTTP\/1\.1\r\nhost: h\r\nx-m: 1\r\nx-m: 2\r\ncontent-length: 3$/);
  for (let i = 0; i < 5; i++) t.equal((await send(pool)).body, 'hello');
  t.equal(s.conns(), 1, 'one keep-alive socket for sequential requests');
  await pool.close();
});

t.test('chunked bodies with extensions and trailers, split across reads', async (t) => {
  const s = await server((sock) => {
    sock.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhel');
    setTimeout(() => sock.write('lo\r\n6\r\n world\r'), 10);
    setTimeout(() => sock.write('\n0\r\nx-trailer: t\r\n\r\n'), 20);
  });
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, opts);
  const r = await send(pool);
  t.equal(r.body, 'hello world');
  t.equal((await send(pool)).body, 'hello world', 'socket reusable after chunked');
  t.equal(s.conns(), 1);
  await pool.close();
});

t.test('a head split byte by byte; interim 100 and 103 responses are skipped', async (t) => {
  const s = await server((sock) => {
    const text =
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok';
    let i = 0;
    const tick = () => {
      if (i < text.length) {
        sock.write(text[i++] as string);
        setImmediate(tick);
      }
    };
    tick();
  });
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, opts);
  const r = await send(pool);
  t.equal(r.status, 201);
  t.equal(r.body, 'ok');
  await pool.close();
});

t.test('HEAD, 204 and 304 have no body even with a content-length', async (t) => {
  const s = await server((sock, head) => {
    if (head.startsWith('HEAD')) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n');
    else if (head.includes('/204')) sock.write('HTTP/1.1 204 No Content\r\n\r\n');
    else sock.write('HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n');
  });
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, opts);
  t.same(await send(pool, { method: 'HEAD' }), { status: 200, headers: ['content-length', '100'], body: '' });
  t.equal((await send(pool, { path: '/204' })).status, 204);
  t.equal((await send(pool, { path: '/304' })).status, 304);
  t.equal(s.conns(), 1, 'still one socket');
  await pool.close();
});

t.test('close-delimited bodies and Connection: close are not reused', async (t) => {
  const s = await server((sock, head) => {
    if (head.includes('/close')) sock.end('HTTP/1.1 200 OK\r\n\r\nuntil the end');
    else sock.end('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok');
  });
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, opts);
  t.equal((await send(pool, { path: '/close' })).body, 'until the end');
  t.equal((await send(pool)).body, 'ok');
  t.equal((await send(pool)).body, 'ok');
  t.equal(s.conns(), 3);
  await pool.close();
});

t.test('maxRequestsPerConnection closes after N', async (t) => {
  const s = await server((sock) => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, { ...opts, maxRequestsPerConnection: 2 });
  for (let i = 0; i < 4; i++) t.equal((await send(pool)).status, 200);
  t.equal(s.conns(), 2);
  await pool.close();
});

t.test('the idle-socket race is reported as a reset on a reused socket with no byte back', async (t) => {
  // (H1Pool replayed the race itself; the forwarder does now, from what the failure says.)
  let n = 0;
  const s = await server((sock) => {
    n++;
    if (n === 1) {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      setTimeout(() => sock.destroy(), 30); // closes the kept-alive socket
    } else if (n === 2)
      sock.destroy(); // the request met the close
    else sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
  });
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, opts);
  t.equal((await send(pool)).body, 'ok');
  const r = await send(pool); // back to back: the kept-alive socket, before the close
  t.equal(r.error, 'UND_ERR_SOCKET');
  t.match(r.failure, { kind: 'reset', reused: true, gotBytes: false });
  const again = await send(pool, { fresh: true });
  t.equal(again.body, 'ok', 'a fresh dispatch opens a new socket');
  t.equal(s.conns(), 2);
  await pool.close();
});

t.test('fresh dispatches never take an idle socket', async (t) => {
  const s = await server((sock) => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, opts);
  t.equal((await send(pool)).body, 'ok');
  t.equal((await send(pool, { fresh: true })).body, 'ok');
  t.equal(s.conns(), 2, 'the fresh request opened its own socket');
  t.equal((await send(pool)).body, 'ok');
  t.equal(s.conns(), 2, 'and plain ones reuse');
  await pool.close();
});

t.test('errors: refused, reset before headers, body cut short, garbage, conflicting lengths', async (t) => {
  const dead = new H1Pool('127.0.0.1', 1, opts);
  const refused = await send(dead);
  t.equal(refused.error, 'ECONNREFUSED');
  t.match(refused.failure, { kind: 'connect', reused: false, gotBytes: false });
  const s = await server((sock, head) => {
    if (head.includes('/reset')) sock.destroy();
    else if (head.includes('/cut')) {
      sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart');
      setTimeout(() => sock.destroy(), 10);
    } else if (head.includes('/garbage')) sock.write('NOT HTTP AT ALL\r\n\r\n');
    else sock.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok');
  });
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, opts);
  t.equal((await send(pool, { method: 'POST', path: '/reset' })).error, 'UND_ERR_SOCKET');
  const cut = await send(pool, { path: '/cut' });
  t.equal(cut.status, 200);
  t.equal(cut.body, 'part');
  t.equal(cut.error, 'UND_ERR_SOCKET');
  t.match(cut.failure, { kind: 'reset', gotBytes: true });
  const garbage = await send(pool, { path: '/garbage' });
  t.equal(garbage.error, 'HPE_INVALID');
  t.equal(garbage.failure?.kind, 'protocol');
  t.equal((await send(pool, { path: '/lengths' })).error, 'HPE_INVALID');
  await pool.close();
  await dead.close();
});

t.test('connections limit queues requests', async (t) => {
  const s = await server((sock) =>
    setTimeout(() => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'), 20),
  );
  t.teardown(s.close);
  const pool = new H1Pool('127.0.0.1', s.port, { ...opts, connections: 1 });
  const all = Promise.all([send(pool), send(pool), send(pool)]);
  await new Promise((r) => setTimeout(r, 5));
  t.equal(pool.stats.queued + pool.stats.running, 3);
  t.same(
    (await all).map((r) => r.status),
    [200, 200, 200],
  );
  t.equal(s.conns(), 1);
  await pool.close();
});

t.test(
  'maxConnectionDuration retires a connection after its age; keepalive probes can be enabled',
  async (t) => {
    const s = await server((sock) => sock.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
    t.teardown(s.close);
    const pool = new H1Pool('127.0.0.1', s.port, {
      ...opts,
      maxConnectionDurationMs: 100,
      tcpKeepaliveMs: 1000,
    });
    t.equal((await send(pool)).status, 200);
    t.equal((await send(pool)).status, 200);
    t.equal(s.conns(), 1, 'reused while young');
    await new Promise((r) => setTimeout(r, 150));
    t.equal((await send(pool)).status, 200);
    t.equal(s.conns(), 2, 'a new connection once the first expired');
    await pool.close();
  },
);

t.test(
  'over TLS: reads land in the shared buffer, a large body with backpressure, resumed sessions',
  async (t) => {
    const ca = await makeCa('h1-tls-ca');
    const cert = await ca.issue({ cn: 'up.example.com', dns: ['up.example.com'] });
    const body = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    let handshakes = 0;
    let resumed = 0;
    const srv = createTlsServer({ key: cert.key, cert: cert.cert }, (sock) => {
      handshakes++;
      if (sock.isSessionReused()) resumed++;
      sock.on('error', () => {});
      sock.on('data', () => {
        sock.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`);
        sock.write(body);
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.teardown(() => srv.close());
    const port = (srv.address() as { port: number }).port;
    const tls = {
      mode: 'SIMPLE',
      subjectAltNames: [],
      insecureSkipVerify: false,
      material: { source: 'test', ca: ca.cert, hash: 'h1tls' },
      key: 'h1tls',
    } as const;
    const pool = new H1Pool('127.0.0.1', port, {
      ...opts,
      connections: 2,
      tls: upstreamTlsOptions(tls, 'up.example.com'),
    });
    const slow = () =>
      new Promise<{ status: number; body: Buffer; pauses: number }>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let status = 0;
        let pauses = 0;
        let resume: () => void = () => {};
        pool.dispatch(
          { method: 'GET', path: '/', headers: { host: 'up.example.com' }, body: null },
          {
            onConnect() {},
            onHeaders(s, _raw, r) {
              status = s;
              resume = r;
              return true;
            },
            onData(c) {
              chunks.push(c);
              // Pause every 256 KiB for a moment: reading must stop and then carry on intact.
              if (chunks.length % 16 === 0) {
                pauses++;
                setTimeout(resume, 5);
                return false;
              }
              return true;
            },
            onComplete: () => resolve({ status, body: Buffer.concat(chunks), pauses }),
            onError: reject,
          },
        );
      });
    const r = await slow();
    t.equal(r.status, 200);
    t.equal(r.body.length, body.length);
    t.ok(r.body.equals(body), 'the body arrived intact');
    t.ok(r.pauses > 0, 'backpressure was exercised');
    // Two at once: the second connection resumes the first one's TLS session.
    const [a, b] = await Promise.all([slow(), slow()]);
    t.ok(a.body.equals(body) && b.body.equals(body));
    t.equal(handshakes, 2);
    t.equal(resumed, 1, 'the new connection resumed the session');
    await pool.close();
  },
);
