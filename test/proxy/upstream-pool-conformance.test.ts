// One conformance suite for the upstream pool contract (proxy/upstream-pool.ts; hono's
// runTest({ newRouter }) pattern, as test/proxy/lb/conformance.test.ts), run against every
// implementation the cluster manager hands out: the raw HTTP/1.1 pool and the undici adapter,
// each in plaintext and originating TLS (a cluster with DestinationRule tls SIMPLE): the contract
// is the same over TLS. Real upstream sockets on port 0; each case states the contract it pins.

import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import type { Cluster } from '../../dist/config/snapshot.js';
import type { ConnectionBudget } from '../../dist/proxy/cluster-circuit.js';
import { ClusterManager, type PoolNeed } from '../../dist/proxy/cluster-manager.js';
import { makeEndpoint } from '../../dist/proxy/lb/types.js';
import type { PoolRequest, UpstreamFailure, UpstreamPool } from '../../dist/proxy/upstream-pool.js';
import { makeCa, type Pem } from '../helpers/certs.js';

const ca = await makeCa('conformance-ca');
const leaf = await ca.issue({ cn: 'upstream.example.com', dns: ['upstream.example.com'] });
/** Signed by a CA the clusters do not trust. */
const stranger = await (await makeCa('stranger-ca')).issue({
  cn: 'upstream.example.com',
  dns: ['upstream.example.com'],
});

interface Upstream {
  port: number;
  /** Connections accepted so far. */
  conns: () => number;
  /** Most connections open at once. */
  peak: () => number;
  /** Requests seen: head text and body. */
  seen: { head: string; body: string }[];
  /** TLS: the SNI of each connection ('-' for none). */
  names: string[];
  close: () => void;
}

/**
 * A raw HTTP/1.1 upstream: `reply` gets each complete request (Content-Length or chunked body).
 * `tls`: behind TLS (a certificate for upstream.example.com from `ca`), counted per handshake.
 */
async function rawUpstream(
  reply: (sock: Socket, head: string, nth: number) => void,
  unixPath?: string,
  tls: boolean | Pem = false,
): Promise<Upstream> {
  let conns = 0;
  let open = 0;
  let peak = 0;
  const seen: { head: string; body: string }[] = [];
  const names: string[] = [];
  const socks = new Set<Socket>();
  const onConnection = (sock: Socket) => {
    conns++;
    if (tls) names.push((sock as TLSSocket).servername || '-');
    open++;
    peak = Math.max(peak, open);
    socks.add(sock);
    sock.once('close', () => {
      open--;
      socks.delete(sock);
    });
    let nth = 0;
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.slice(0, end);
        let body = '';
        let rest: string;
        if (/transfer-encoding: chunked/i.test(head)) {
          const term = buf.indexOf('\r\n0\r\n\r\n', end);
          if (term < 0) return;
          let p = end + 4;
          while (p < term + 2) {
            const nl = buf.indexOf('\r\n', p);
            const size = Number.parseInt(buf.slice(p, nl), 16);
            body += buf.slice(nl + 2, nl + 2 + size);
            p = nl + 2 + size + 2;
          }
          rest = buf.slice(term + 7);
        } else {
          const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
          if (buf.length < end + 4 + len) return;
          body = buf.slice(end + 4, end + 4 + len);
          rest = buf.slice(end + 4 + len);
        }
        buf = rest;
        seen.push({ head, body });
        reply(sock, head, ++nth);
      }
    });
    sock.on('error', () => {});
  };
  const cert = tls === true ? leaf : tls;
  const s: Server = cert
    ? createTlsServer({ key: cert.key, cert: cert.cert }, onConnection)
    : createServer(onConnection);
  if (tls) s.on('tlsClientError', () => {});
  await new Promise<void>((r) => (unixPath ? s.listen(unixPath, r) : s.listen(0, '127.0.0.1', r)));
  return {
    port: unixPath ? 0 : (s.address() as { port: number }).port,
    conns: () => conns,
    peak: () => peak,
    seen,
    names,
    close: () => {
      for (const x of socks) x.destroy();
      s.close();
    },
  };
}

async function refusedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

interface Result {
  status: number;
  headers: Record<string, string>;
  body: string;
  failure?: UpstreamFailure;
}

/** Dispatch and collect; `onConnect` may keep the abort function. */
function send(
  pool: UpstreamPool,
  req: Partial<PoolRequest> = {},
  onConnect?: (abort: (err?: Error) => void) => void,
): Promise<Result> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    const headers: Record<string, string> = {};
    pool.dispatch(
      { method: 'GET', path: '/', headers: { host: 'x' }, body: null, ...req },
      {
        onConnect(abort) {
          onConnect?.(abort);
        },
        onHeaders(s, raw) {
          status = s;
          for (let i = 0; i < raw.length; i += 2) headers[String(raw[i]).toLowerCase()] = String(raw[i + 1]);
          return true;
        },
        onData(c) {
          chunks.push(c);
          return true;
        },
        // Resolved a little later, as the next downstream request would come: undici frees a
        // connection for the next request only some ticks after onComplete (sooner, it opens one).
        onComplete() {
          setTimeout(() => resolve({ status, headers, body: Buffer.concat(chunks).toString() }), 2);
        },
        onError(err) {
          setTimeout(
            () => resolve({ status, headers, body: Buffer.concat(chunks).toString(), failure: err }),
            2,
          );
        },
      },
    );
  });
}

/** DestinationRule tls SIMPLE with the test CA, as compileClientTls builds it. */
function simpleTls(extra: { sni?: string; subjectAltNames?: string[] } = { sni: 'upstream.example.com' }) {
  const material = { source: 'file:ca.crt', ca: ca.cert, hash: ca.sha256.slice(0, 16) };
  const sans = extra.subjectAltNames ?? [];
  return {
    mode: 'SIMPLE',
    ...(extra.sni ? { sni: extra.sni } : {}),
    subjectAltNames: sans,
    insecureSkipVerify: false,
    material,
    key: JSON.stringify(['SIMPLE', extra.sni ?? '', sans, false, material.hash]),
  };
}

let clusterSeq = 0;
function clusterOf(maxConnections = 2 ** 32 - 1, tls?: object): Cluster {
  return {
    name: `outbound|80||conformance-${++clusterSeq}`,
    host: 'conformance',
    port: 80,
    subset: '',
    serviceName: 'conformance',
    serviceNamespace: 'default',
    discovery: 'static',
    meshExternal: false,
    endpoints: [],
    lb: { kind: 'ROUND_ROBIN' },
    connectionPool: {
      maxConnections,
      connectTimeoutMs: 1000,
      maxPendingRequests: 2 ** 32 - 1,
      maxRequests: 2 ** 32 - 1,
      maxRequestsPerConnection: 0,
      maxRetries: 2 ** 32 - 1,
      idleTimeoutMs: 60_000,
      maxConnectionDurationMs: 0,
      tcpKeepaliveMs: 0,
    },
    tls: { subjectAltNames: [], insecureSkipVerify: false, ...(tls ?? { mode: 'DISABLE', key: '' }) },
  } as unknown as Cluster;
}

/** A plaintext upstream and cluster (outside the per-implementation suites). */
const upstream = (reply: Parameters<typeof rawUpstream>[0]) => rawUpstream(reply);
const cluster = (maxConnections?: number) => clusterOf(maxConnections);

interface Subject {
  name: string;
  /** What the cluster manager is asked for: it picks the implementation. */
  need: PoolNeed;
  validatedHeads: boolean;
  /** Clusters originate TLS (SIMPLE, SNI upstream.example.com) to TLS upstreams. */
  tls?: boolean;
}

const OK = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

function runTest(s: Subject): void {
  t.test(s.name, async (t) => {
    const m = new ClusterManager({ random: () => 0.5 });
    t.teardown(() => m.close());
    const tls = s.tls === true;
    const cluster = (maxConnections?: number) => clusterOf(maxConnections, tls ? simpleTls() : undefined);
    const upstream = (reply: Parameters<typeof rawUpstream>[0], unixPath?: string) =>
      rawUpstream(reply, unixPath, tls);
    /** A pool for an upstream, from the cluster manager, as the request path gets one. */
    const poolOf = (port: number, maxConnections?: number): UpstreamPool =>
      m.poolFor(cluster(maxConnections), makeEndpoint('127.0.0.1', port), s.need);

    t.test('the cluster manager hands out this implementation', async (t) => {
      t.equal(poolOf(1).validatedHeads, s.validatedHeads);
    });

    t.test('a unix-socket endpoint, kept alive', async (t) => {
      const path = join(tmpdir(), `courier-pool-${process.pid}-${++clusterSeq}.sock`);
      const u = await upstream((sock) => sock.write(OK), path);
      t.teardown(u.close);
      const pool = m.poolFor(cluster(), makeEndpoint(`unix://${path}`, 80), s.need);
      t.equal(pool.validatedHeads, s.validatedHeads, 'the same implementation as over TCP');
      for (let i = 0; i < 3; i++) t.equal((await send(pool)).body, 'ok');
      t.equal(u.conns(), 1);
    });

    t.test('a GET: status, headers, body', async (t) => {
      const u = await upstream((sock) =>
        sock.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: 1\r\n\r\nhello'),
      );
      t.teardown(u.close);
      const r = await send(poolOf(u.port), { path: '/p?q=1', headers: { host: 'h', 'x-m': ['1', '2'] } });
      t.equal(r.status, 200);
      t.equal(r.body, 'hello');
      t.equal(r.headers['x-a'], '1');
      t.notOk(r.failure);
      t.match(u.seen[0]?.head, /^GET \/p\?q=1 HTTP\/1\.1\r\n/);
      t.match(u.seen[0]?.head, /\r\nx-m: 1\r\nx-m: 2(\r\n|$)/i);
    });

    t.test('a POST with a buffered body is sent with its length', async (t) => {
      const u = await upstream((sock) => sock.write(OK));
      t.teardown(u.close);
      const r = await send(poolOf(u.port), { method: 'POST', body: Buffer.from('abc') });
      t.equal(r.status, 200);
      t.match(u.seen[0]?.head, /content-length: 3/i);
      t.equal(u.seen[0]?.body, 'abc');
    });

    t.test('keep-alive: sequential requests share one connection', async (t) => {
      const u = await upstream((sock) => sock.write(OK));
      t.teardown(u.close);
      const pool = poolOf(u.port);
      for (let i = 0; i < 5; i++) t.equal((await send(pool)).body, 'ok');
      t.equal(u.conns(), 1);
    });

    t.test('chunked and content-length responses, then the socket is reused', async (t) => {
      const u = await upstream((sock, head) => {
        if (head.includes('/chunked'))
          sock.write(
            'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
          );
        else sock.write('HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nhello world');
      });
      t.teardown(u.close);
      const pool = poolOf(u.port);
      t.equal((await send(pool, { path: '/chunked' })).body, 'hello world');
      t.equal((await send(pool, { path: '/length' })).body, 'hello world');
      t.equal((await send(pool, { path: '/chunked' })).body, 'hello world');
      t.equal(u.conns(), 1);
    });

    t.test('HEAD, 204 and 304 have no body, and keep the connection', async (t) => {
      const u = await upstream((sock, head) => {
        if (head.startsWith('HEAD')) sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n');
        else if (head.includes('/204')) sock.write('HTTP/1.1 204 No Content\r\n\r\n');
        else sock.write('HTTP/1.1 304 Not Modified\r\netag: "a"\r\n\r\n');
      });
      t.teardown(u.close);
      const pool = poolOf(u.port);
      for (const req of [{ path: '/204' }, { path: '/304' }, { path: '/204' }, { path: '/304' }]) {
        const r = await send(pool, req);
        t.same([r.status, r.body, r.failure], [req.path === '/204' ? 204 : 304, '', undefined]);
      }
      t.equal(u.conns(), 1, 'one connection for the 204s and 304s');
      const head = await send(pool, { method: 'HEAD' });
      t.same(
        [head.status, head.headers['content-length'], head.body, head.failure],
        [200, '100', '', undefined],
      );
      // undici closes a connection after a HEAD (and rejects a 304 that carries a Content-Length,
      // which the raw pool accepts: test/proxy/h1-pool.test.ts); the raw pool keeps it.
      if (s.validatedHeads) {
        t.equal((await send(pool, { method: 'HEAD' })).status, 200);
        t.equal(u.conns(), 1, 'and the HEADs');
      }
    });

    t.test('an upstream that closes a reused idle socket: reset, reused, no bytes', async (t) => {
      // Each connection answers its first request; a second one on it meets the close.
      const u = await upstream((sock, _head, nth) => {
        if (nth > 1) sock.destroy();
        else sock.write(OK);
      });
      t.teardown(u.close);
      const pool = poolOf(u.port);
      t.equal((await send(pool)).body, 'ok');
      const r = await send(pool);
      t.equal(r.status, 0, 'no response head');
      t.match(r.failure, { kind: 'reset', reused: true, gotBytes: false });
      t.equal(u.conns(), 1, 'it went out on the kept-alive connection');
    });

    t.test('a refused connection: connect failure, not reused', async (t) => {
      const r = await send(poolOf(await refusedPort()));
      t.match(r.failure, { kind: 'connect', reused: false, gotBytes: false, code: 'ECONNREFUSED' });
    });

    t.test('a reset mid-body: the head arrived, then a reset with bytes', async (t) => {
      const u = await upstream((sock) => {
        sock.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart');
        setTimeout(() => sock.destroy(), 20);
      });
      t.teardown(u.close);
      const r = await send(poolOf(u.port));
      t.equal(r.status, 200);
      t.equal(r.body, 'part');
      t.match(r.failure, { kind: 'reset', gotBytes: true, reused: false });
    });

    t.test('abort from the caller ends the exchange with an error; the pool carries on', async (t) => {
      const u = await upstream((sock, head) => {
        if (!head.includes('/hang')) sock.write(OK);
      });
      t.teardown(u.close);
      const pool = poolOf(u.port);
      const r = await send(pool, { path: '/hang' }, (abort) => setTimeout(() => abort(), 30));
      t.ok(r.failure, 'onError after abort');
      t.equal(r.status, 0);
      t.equal((await send(pool)).body, 'ok', 'the next request is served');
    });

    t.test('the connection budget bounds concurrent connections', async (t) => {
      const u = await upstream((sock) => setTimeout(() => sock.write(OK), 20));
      t.teardown(u.close);
      const pool = poolOf(u.port, 1);
      const all = await Promise.all([send(pool), send(pool), send(pool), send(pool)]);
      t.same(
        all.map((r) => r.body),
        ['ok', 'ok', 'ok', 'ok'],
      );
      t.equal(u.peak(), 1, 'never more than maxConnections open');
    });

    if (tls) tlsCases(t, m, s);

    t.test('fresh: a dispatch marked fresh does not go out on an idle connection', async (t) => {
      const u = await upstream((sock) => sock.write(OK));
      t.teardown(u.close);
      const pool = poolOf(u.port);
      t.equal((await send(pool)).body, 'ok');
      // undici cannot be told to skip an idle socket: its replay goes where undici sends it.
      if (!s.validatedHeads) return;
      t.equal((await send(pool, { fresh: true })).body, 'ok');
      t.equal(u.conns(), 2);
    });
  });
}

/** What only a TLS pool does: verification, handshake failures, and SNI-keyed pools. */
function tlsCases(t: Test, m: ClusterManager, s: Subject): void {
  const ep = (port: number) => makeEndpoint('127.0.0.1', port);

  t.test('a certificate from an untrusted CA: a connect failure before anything is sent', async (t) => {
    const u = await rawUpstream((sock) => sock.write(OK), undefined, stranger);
    t.teardown(u.close);
    const r = await send(m.poolFor(clusterOf(undefined, simpleTls()), ep(u.port), s.need));
    t.match(r.failure, {
      kind: 'connect',
      reused: false,
      gotBytes: false,
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    t.equal(u.seen.length, 0);
  });

  t.test('a plaintext upstream: WRONG_VERSION_NUMBER, a connect failure', async (t) => {
    // An HTTP server answers the ClientHello with a 400, which is no TLS record.
    const plain = createServer((sock) => {
      sock.on('error', () => {});
      sock.once('data', () => sock.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n'));
    });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    t.teardown(() => plain.close());
    const port = (plain.address() as { port: number }).port;
    const r = await send(m.poolFor(clusterOf(undefined, simpleTls()), ep(port), s.need));
    t.match(r.failure, { kind: 'connect', code: 'ERR_SSL_WRONG_VERSION_NUMBER' });
  });

  t.test('no answer to the ClientHello: the connect timeout covers the handshake', async (t) => {
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    t.teardown(() => silent.close());
    const c = clusterOf(undefined, simpleTls()) as Cluster & { connectionPool: { connectTimeoutMs: number } };
    c.connectionPool.connectTimeoutMs = 200;
    const started = Date.now();
    const r = await send(m.poolFor(c, ep((silent.address() as { port: number }).port), s.need));
    t.match(r.failure, { kind: 'connect', code: 'UND_ERR_CONNECT_TIMEOUT' });
    t.ok(Date.now() - started < 2000, 'within the connect timeout');
  });

  t.test('auto SNI: the request host, one pool (connection) per host', async (t) => {
    const u = await rawUpstream((sock) => sock.write(OK), undefined, true);
    t.teardown(u.close);
    // subjectAltNames: the certificate is checked against them, not against the SNI host.
    const c = clusterOf(undefined, simpleTls({ subjectAltNames: ['upstream.example.com'] }));
    const a = m.poolFor(c, ep(u.port), s.need, 'a.example.com:8080');
    t.equal(m.poolFor(c, ep(u.port), s.need, 'a.example.com'), a, 'the port does not matter');
    const b = m.poolFor(c, ep(u.port), s.need, 'b.example.com');
    t.not(b, a);
    const ip = m.poolFor(c, ep(u.port), s.need, '127.0.0.1:80');
    for (const p of [a, b, a, ip]) t.equal((await send(p)).body, 'ok');
    t.same(u.names, ['a.example.com', 'b.example.com', '-'], 'no SNI for an IP; a reused');
  });

  t.test('an explicit sni: one pool whatever the host', async (t) => {
    const u = await rawUpstream((sock) => sock.write(OK), undefined, true);
    t.teardown(u.close);
    const c = clusterOf(undefined, simpleTls());
    const a = m.poolFor(c, ep(u.port), s.need, 'a.example.com');
    t.equal(m.poolFor(c, ep(u.port), s.need, 'b.example.com'), a);
    t.equal((await send(a, { headers: { host: 'a.example.com' } })).body, 'ok');
    t.equal((await send(a, { headers: { host: 'b.example.com' } })).body, 'ok');
    t.same(u.names, ['upstream.example.com'], 'one connection, the DR sni');
  });

  t.test('auto SAN validation: the certificate must name the request host', async (t) => {
    const u = await rawUpstream((sock) => sock.write(OK), undefined, true);
    t.teardown(u.close);
    const c = clusterOf(undefined, simpleTls({}));
    const good = await send(m.poolFor(c, ep(u.port), s.need, 'upstream.example.com'));
    t.equal(good.body, 'ok');
    const bad = await send(m.poolFor(c, ep(u.port), s.need, 'other.example.com'));
    t.match(bad.failure, { kind: 'connect', code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });
}

runTest({
  name: 'raw HTTP/1.1 pool (buffered and bodyless requests)',
  need: 'buffered',
  validatedHeads: true,
});
runTest({ name: 'undici adapter (streamed bodies, unix sockets)', need: 'streamed', validatedHeads: false });
runTest({ name: 'raw HTTP/1.1 pool over TLS', need: 'buffered', validatedHeads: true, tls: true });
runTest({ name: 'undici adapter over TLS', need: 'streamed', validatedHeads: false, tls: true });

t.test('undici adapter: a streamed body and an upgrade', async (t) => {
  const m = new ClusterManager({ random: () => 0.5 });
  t.teardown(() => m.close());
  const u = await upstream((sock, head) => {
    if (/upgrade: websocket/i.test(head)) {
      sock.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n');
      sock.on('data', (d) => sock.write(d));
    } else sock.write(OK);
  });
  t.teardown(u.close);
  const ep = makeEndpoint('127.0.0.1', u.port);
  const c = cluster();
  const streamed = await send(m.poolFor(c, ep, 'streamed'), {
    method: 'POST',
    headers: { host: 'x' },
    body: Readable.from([Buffer.from('ab'), Buffer.from('cd')]),
  });
  t.equal(streamed.body, 'ok');
  t.equal(u.seen[0]?.body, 'abcd');
  const echoed = await new Promise<string>((resolve, reject) => {
    m.poolFor(c, ep, 'upgrade').dispatch(
      { method: 'GET', path: '/ws', headers: { host: 'x' }, body: null, upgrade: 'websocket' },
      {
        onConnect() {},
        onHeaders: () => true,
        onData: () => true,
        onComplete: () => reject(new Error('no upgrade')),
        onUpgrade(status, _raw, sock) {
          t.equal(status, 101);
          sock.once('data', (d) => {
            resolve(d.toString());
            sock.destroy();
          });
          sock.write('ping');
        },
        onError: reject,
      },
    );
  });
  t.equal(echoed, 'ping');
});

t.test('the raw pool refuses what it cannot send (the manager never hands it those)', async (t) => {
  const m = new ClusterManager({ random: () => 0.5 });
  t.teardown(() => m.close());
  const pool = m.poolFor(cluster(), makeEndpoint('127.0.0.1', 1));
  const r = await send(pool, { method: 'POST', body: Readable.from([Buffer.from('x')]) });
  t.equal(r.failure?.kind, 'protocol');
  const up = await send(pool, { upgrade: 'websocket' });
  t.equal(up.failure?.kind, 'protocol');
});

t.test('one budget across the pools of a cluster: the raw pool and undici', async (t) => {
  const m = new ClusterManager({ random: () => 0.5 });
  t.teardown(() => m.close());
  const u = await upstream((sock) => sock.write(OK));
  t.teardown(u.close);
  const c = cluster(1);
  const ep = makeEndpoint('127.0.0.1', u.port);
  const raw = m.poolFor(c, ep, 'buffered');
  // The cluster's budget, as the pools see it: the most connections it ever let be open.
  const budget = (m as unknown as { circuits: Map<string, { connections: ConnectionBudget }> }).circuits.get(
    c.name,
  )?.connections as ConnectionBudget;
  let peak = 0;
  const acquire = budget.tryAcquire.bind(budget);
  budget.tryAcquire = () => {
    const ok = acquire();
    peak = Math.max(peak, budget.open);
    return ok;
  };
  t.equal((await send(raw)).body, 'ok');
  // The raw pool holds the one connection idle; undici's request needs it closed first.
  t.equal((await send(m.poolFor(c, ep, 'streamed'))).body, 'ok');
  t.equal((await send(m.poolFor(c, ep, 'buffered'))).body, 'ok');
  t.equal(peak, 1, 'never two connections open at once');
  t.ok(u.conns() >= 2, 'the idle connection of one pool was closed for the other');
});
