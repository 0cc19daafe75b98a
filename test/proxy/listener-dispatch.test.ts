// The connection dispatcher: the first-bytes classifier, Envoy's filter chain choice (SNI exact,
// longest wildcard, catch-all; HTTP vs TCP), and the dispatcher over real sockets: the bytes it
// peeked reach the chosen codec first and in order, unmatched connections are closed and counted,
// silent ones time out, a FIN before any byte closes.

import { connect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import t, { type Test } from 'tap';
import type { FilterChain, Listener, RouteTable } from '../../dist/config/snapshot.js';
import {
  ConnectionDispatcher,
  classifyFirstBytes,
  type DispatcherOptions,
  type FirstBytes,
  H2_PREFACE,
  type Served,
  selectFilterChain,
} from '../../dist/proxy/listener-dispatch.js';
import type { ClientHello } from '../../dist/proxy/tls-client-hello.js';

const b = (s: string | number[]) => (typeof s === 'string' ? Buffer.from(s, 'latin1') : Buffer.from(s));

t.test('first bytes', async (t) => {
  const cases: [string | number[], FirstBytes, FirstBytes?][] = [
    // bytes, without sniffing, with sniffing (HTTP and TCP on one port); same when omitted
    ['', 'more'],
    ['G', 'http1', 'more'],
    ['GET / HTTP/1.1\r\n', 'http1'],
    ['M-SEARCH * HTTP/1.1\r\n', 'http1'],
    ['get / HTTP/1.1\r\n', 'http1', 'tcp'],
    [' GET /', 'http1', 'tcp'],
    ['ABCDEFGHIJKLMNOPQRSTUVWXYZ /', 'http1', 'tcp'],
    ['SSH-2.0-OpenSSH_9.6\r\n', 'http1', 'tcp'],
    [[0, 1, 2], 'http1', 'tcp'],
    [[0x16], 'more'],
    [[0x16, 3], 'more'],
    [[0x16, 3, 1], 'tls'],
    [[0x16, 3, 3, 0, 5], 'tls'],
    [[0x16, 3, 9], 'http1', 'tcp'],
    [[0x16, 0x41], 'http1', 'tcp'],
    ['P', 'more'],
    ['PO', 'http1', 'more'],
    ['POST / HTTP/1.1\r\n', 'http1'],
    ['PRI * HTTP/2.0\r\n', 'more'],
    ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r', 'more'],
    [H2_PREFACE.toString('latin1'), 'h2c'],
    [`${H2_PREFACE.toString('latin1')}\x00\x00\x12\x04`, 'h2c'],
    ['PRI * HTTP/1.1\r\n', 'http1'],
    ['PRI / HTTP/1.1\r\n', 'http1'],
    ['PRI * HTTP/2.0\r\n\r\nXX', 'http1'],
  ];
  for (const [bytes, plain, sniffed] of cases) {
    const name = JSON.stringify(typeof bytes === 'string' ? bytes : bytes);
    t.equal(classifyFirstBytes(b(bytes)), plain, name);
    t.equal(classifyFirstBytes(b(bytes), true), sniffed ?? plain, `${name} (sniffing)`);
  }
});

const EMPTY_ROUTES = { name: '', virtualHosts: [], lookup: () => undefined } as unknown as RouteTable;
const RAW = { transportProtocol: 'raw_buffer', serverNames: [] } as const;
const ROUTE = { name: 'r', virtualService: 'ns/vs', destinations: [], totalWeight: 0 };
const httpChain: FilterChain = { transport: 'http', name: 'http', match: RAW, routes: EMPTY_ROUTES };
const tcpChain: FilterChain = { transport: 'tcp', name: 'tcp', match: RAW, route: ROUTE };
const pass = (name: string, ...serverNames: string[]): FilterChain => ({
  transport: 'tls_passthrough',
  name,
  match: { transportProtocol: 'tls', serverNames },
  route: ROUTE,
});
const ALL: Served = { transports: new Set(['http', 'https', 'tls_passthrough', 'tcp']), h2c: false };
const HTTP_ONLY: Served = { transports: new Set(['http']), h2c: false };
const hello = (serverName?: string): ClientHello => ({ serverName, alpn: [], length: 0 });

t.test('TLS chains by SNI: exact, then the longest wildcard, then the catch-all', async (t) => {
  const chains = [
    pass('wild', '*.example.com'),
    pass('deep', '*.a.example.com'),
    pass('exact', 'x.a.example.com'),
    pass('any'),
  ];
  const pick = (sni?: string) => selectFilterChain(chains, 'tls', hello(sni), ALL)?.name;
  t.equal(pick('x.a.example.com'), 'exact');
  t.equal(pick('y.a.example.com'), 'deep', 'longest wildcard');
  t.equal(pick('z.b.example.com'), 'wild', 'a wildcard covers any depth');
  t.equal(pick('example.com'), 'any', 'not the bare parent');
  t.equal(pick(undefined), 'any', 'no SNI: the chain without server names');
  t.equal(pick('other.org'), 'any');
  const named = chains.filter((c) => c.name !== 'any');
  t.equal(selectFilterChain(named, 'tls', hello('other.org'), ALL), undefined, 'no match, no catch-all');
  t.equal(selectFilterChain(named, 'tls', hello(undefined), ALL), undefined, 'no SNI, no catch-all');
  t.equal(selectFilterChain(chains, 'tls', hello('x.a.example.com'), HTTP_ONLY), undefined, 'not served');
  t.equal(selectFilterChain([httpChain], 'tls', undefined, ALL), undefined, 'TLS on a plaintext port');
  t.equal(
    selectFilterChain([...chains, httpChain], 'http1', undefined, ALL),
    httpChain,
    'plaintext beside TLS',
  );
});

t.test('plaintext chains: HTTP/1, h2c, TCP', async (t) => {
  t.equal(selectFilterChain([httpChain], 'http1', undefined, HTTP_ONLY), httpChain);
  t.equal(
    selectFilterChain([httpChain], 'tcp', undefined, HTTP_ONLY),
    httpChain,
    'the HTTP codec answers 400',
  );
  t.equal(selectFilterChain([httpChain], 'h2c', undefined, HTTP_ONLY), undefined, 'h2c is not served yet');
  t.equal(selectFilterChain([httpChain], 'h2c', undefined, { ...HTTP_ONLY, h2c: true }), httpChain);
  t.equal(selectFilterChain([httpChain, tcpChain], 'tcp', undefined, ALL), tcpChain);
  t.equal(selectFilterChain([httpChain, tcpChain], 'http1', undefined, ALL), httpChain);
  t.equal(
    selectFilterChain([httpChain, tcpChain], 'h2c', undefined, ALL),
    tcpChain,
    'bytes for the TCP proxy',
  );
  t.equal(selectFilterChain([tcpChain], 'http1', undefined, ALL), tcpChain);
  t.equal(selectFilterChain([tcpChain], 'http1', undefined, HTTP_ONLY), undefined);
  t.equal(selectFilterChain([], 'http1', undefined, ALL), undefined);
});

interface Harness {
  port: number;
  served: { chain: string; head: string; rest: Promise<string>; hello: ClientHello | undefined }[];
  rejected: FirstBytes[];
  timedOut: number;
  dispatcher: ConnectionDispatcher;
  server: Server;
}

async function harness(
  t: Test,
  chains: FilterChain[],
  served: Served,
  extra: Partial<DispatcherOptions> = {},
): Promise<Harness> {
  const listener = { name: 'l', filterChains: chains } as unknown as Listener;
  const h = { served: [], rejected: [], timedOut: 0 } as unknown as Harness;
  h.dispatcher = new ConnectionDispatcher({
    listener: () => listener,
    served,
    serve: (chain, sock, head, hi) => {
      // The codec: everything after the head, until the client ends.
      const rest = new Promise<string>((resolve) => {
        let s = '';
        sock.on('data', (d: Buffer) => {
          s += d.toString('latin1');
        });
        sock.on('end', () => {
          sock.end('served');
          resolve(s);
        });
      });
      h.served.push({ chain: chain.name, head: head.toString('latin1'), rest, hello: hi });
    },
    noFilterChain: (first) => h.rejected.push(first),
    firstBytesTimeoutMs: 60_000,
    onTimeout: (sock) => {
      h.timedOut++;
      sock.destroy();
    },
    ...extra,
  });
  h.server = createServer((sock) => h.dispatcher.accept(sock));
  await new Promise<void>((r) => h.server.listen(0, '127.0.0.1', r));
  h.port = (h.server.address() as { port: number }).port;
  t.teardown(() => {
    h.dispatcher.close();
    h.server.close();
  });
  return h;
}

/** Send `parts` with a pause between them; resolve with what came back once the server closes. */
function client(port: number, parts: (string | Buffer)[], gapMs = 20, end = true): Promise<string> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    let got = '';
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    s.on('connect', async () => {
      for (const p of parts) {
        s.write(p);
        await new Promise((r) => setTimeout(r, gapMs));
      }
      if (end) s.end();
    });
  });
}

const until = async (ok: () => boolean) => {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
};

t.test('HTTP/1: the peeked bytes come first, then the rest, in order', async (t) => {
  const h = await harness(t, [httpChain], HTTP_ONLY);
  const req = 'GET / HTTP/1.1\r\nHost: a\r\n\r\n';
  t.equal(await client(h.port, [req.slice(0, 10), req.slice(10)]), 'served');
  t.equal(h.served.length, 1);
  const one = h.served[0];
  t.equal(one?.chain, 'http');
  t.equal(one ? one.head + (await one.rest) : '', req, 'nothing lost, nothing reordered');
  // Byte by byte through the ambiguous `P...` prefix.
  const post = 'PRI / HTTP/1.1\r\nHost: a\r\n\r\n';
  t.equal(await client(h.port, [...post.slice(0, 6)].concat(post.slice(6)), 5), 'served');
  const two = h.served[1];
  t.equal(two?.head, 'PRI /', 'held until the h2 preface was ruled out');
  t.equal(two ? two.head + (await two.rest) : '', post);
  t.strictSame(h.rejected, []);
  t.equal(h.dispatcher.pending.size, 0);
});

t.test('h2c and TLS on a plaintext HTTP port: closed and counted', async (t) => {
  const h = await harness(t, [httpChain], HTTP_ONLY);
  t.equal(await client(h.port, [H2_PREFACE.subarray(0, 10), H2_PREFACE.subarray(10)], 20, false), '');
  const tls = await new Promise<string>((resolve) => {
    const s = tlsConnect({
      host: '127.0.0.1',
      port: h.port,
      servername: 'a.example.com',
      rejectUnauthorized: false,
    });
    s.on('secureConnect', () => resolve('handshake?!'));
    s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? 'error'));
    s.on('close', () => resolve('closed'));
  });
  t.not(tls, 'handshake?!');
  await until(() => h.rejected.length === 2);
  t.strictSame(h.rejected, ['h2c', 'tls']);
  t.equal(h.served.length, 0);
  t.equal(h.dispatcher.pending.size, 0);
});

t.test('TLS by SNI when a TLS chain is served: the whole hello is the head', async (t) => {
  const h = await harness(t, [pass('a', 'a.example.com'), httpChain], ALL);
  const go = (servername: string) =>
    new Promise<void>((resolve) => {
      const s = tlsConnect({ host: '127.0.0.1', port: h.port, servername, rejectUnauthorized: false });
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      setTimeout(() => {
        s.destroy();
        resolve();
      }, 500);
    });
  await go('a.example.com');
  await go('b.example.com');
  await until(() => h.served.length + h.rejected.length === 2);
  t.equal(h.served.length, 1);
  t.equal(h.served[0]?.chain, 'a');
  t.equal(h.served[0]?.hello?.serverName, 'a.example.com');
  t.equal(h.served[0]?.head.charCodeAt(0), 0x16, 'the replayed head starts with the record');
  t.strictSame(h.rejected, ['tls'], 'an SNI with no chain is closed');
});

t.test('a hello split across writes is reassembled', async (t) => {
  const h = await harness(t, [pass('a', 'a.example.com')], ALL);
  // Capture a genuine hello first, from the chain-less dispatcher of another harness.
  let hello = Buffer.alloc(0);
  const cap = createServer((sock) => {
    sock.on('data', (d: Buffer) => {
      hello = Buffer.concat([hello, d]);
    });
  });
  await new Promise<void>((r) => cap.listen(0, '127.0.0.1', r));
  const c = tlsConnect({
    host: '127.0.0.1',
    port: (cap.address() as { port: number }).port,
    servername: 'a.example.com',
    rejectUnauthorized: false,
  });
  c.on('error', () => {});
  await until(() => hello.length > 0);
  c.destroy();
  cap.close();
  const parts = [hello.subarray(0, 3), hello.subarray(3, 60), hello.subarray(60)];
  void client(h.port, parts, 30);
  await until(() => h.served.length === 1);
  t.equal(h.served[0]?.head, hello.toString('latin1'), 'every byte of the hello, in order');
});

t.test(
  'a silent connection times out; a FIN before any byte closes; drain closes the undecided',
  async (t) => {
    const h = await harness(t, [httpChain], HTTP_ONLY, { firstBytesTimeoutMs: 100 });
    const start = Date.now();
    await client(h.port, [], 0, false);
    t.equal(h.timedOut, 1);
    t.ok(Date.now() - start >= 90, 'not before the timeout');
    t.equal(await client(h.port, [], 0, true), '', 'FIN with nothing sent: closed');
    t.equal(h.served.length, 0);
    const held = client(h.port, ['P'], 0, false);
    await until(() => h.dispatcher.pending.size === 1);
    h.dispatcher.close();
    await held;
    t.equal(h.dispatcher.pending.size, 0);
    t.equal(h.timedOut, 1, 'the drained one did not time out');
  },
);
