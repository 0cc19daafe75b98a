// One conformance suite for every downstream response implementation the request path writes
// through (hono's runTest pattern): node:http's ServerResponse, the fast path's raw-socket
// response (proxy/downstream.ts) and the upgrade path's socket response (proxy/tunnel.ts). Each
// runs behind a real listening socket and is driven by raw HTTP/1.1 bytes from a real client.

import { createServer as httpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as netServer, type Server, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { FastServer } from '../../dist/proxy/downstream.js';
import type { DownstreamRequest, DownstreamResponse } from '../../dist/proxy/exchange.js';
import { SocketResponse } from '../../dist/proxy/tunnel.js';
import { exchange } from '../helpers/raw-http.js';

type Handler = (res: DownstreamResponse, req: { method: string; url: string }) => void;

interface Impl {
  name: string;
  /** Listen on port 0 and serve every request with `handler`. */
  start(handler: Handler): Promise<{ port: number; close: () => Promise<void> }>;
}

function listen(server: Server | ReturnType<typeof httpServer>): Promise<number> {
  return new Promise((r) =>
    server.listen(0, '127.0.0.1', () => r((server.address() as { port: number }).port)),
  );
}

const closer = (server: Server | ReturnType<typeof httpServer>, socks: Set<Socket>) => () =>
  new Promise<void>((r) => {
    for (const s of socks) s.destroy();
    server.close(() => r());
  });

function tracked(server: Server | ReturnType<typeof httpServer>): Set<Socket> {
  const socks = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    socks.add(s);
    s.once('close', () => socks.delete(s));
  });
  return socks;
}

const IMPLS: Impl[] = [
  {
    name: 'node:http ServerResponse',
    async start(handler) {
      const server = httpServer((req: IncomingMessage, res: ServerResponse) =>
        handler(res as unknown as DownstreamResponse, { method: req.method ?? '', url: req.url ?? '' }),
      );
      const socks = tracked(server);
      return { port: await listen(server), close: closer(server, socks) };
    },
  },
  {
    name: 'fast path response',
    async start(handler) {
      const fast = new FastServer({
        onRequest: (req: DownstreamRequest, res: DownstreamResponse) =>
          handler(res, { method: req.method ?? '', url: req.url ?? '' }),
        handoff: (sock: Socket) => sock.destroy(),
        keepAliveTimeoutMs: 5000,
        counters: { fastRequests: 0, handoffs: 0 },
      });
      const server = netServer((sock) => fast.accept(sock));
      const socks = tracked(server);
      return { port: await listen(server), close: closer(server, socks) };
    },
  },
  {
    name: 'upgrade socket response',
    async start(handler) {
      // The upgrade path answers on the raw socket after node:http parsed the head.
      const server = netServer((sock) => {
        let head = '';
        const onData = (d: Buffer) => {
          head += d.toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end < 0) return;
          sock.off('data', onData);
          const [method = '', url = ''] = head.slice(0, head.indexOf('\r\n')).split(' ');
          handler(new SocketResponse(sock), { method, url });
        };
        sock.on('data', onData);
        sock.on('error', () => {});
      });
      const socks = tracked(server);
      return { port: await listen(server), close: closer(server, socks) };
    },
  },
];

const GET = (path: string, method = 'GET') => `${method} ${path} HTTP/1.1\r\nhost: x\r\n\r\n`;

function suite(t: Test, impl: Impl): void {
  const serve = async (t: Test, handler: Handler) => {
    const s = await impl.start(handler);
    t.teardown(s.close);
    return s.port;
  };

  t.test('status, headers from setHeader and writeHead, a body with its length', async (t) => {
    const port = await serve(t, (res) => {
      res.setHeader('x-early', 'a');
      t.equal(res.headersSent, false);
      res.writeHead(201, { 'content-length': '5', 'x-late': 'b' });
      t.equal(res.headersSent, true);
      res.end(Buffer.from('hello'));
    });
    const { responses } = await exchange(port, [GET('/')], 1);
    const r = responses[0];
    t.equal(r?.status, 201);
    t.equal(r?.headers['x-early'], 'a');
    t.equal(r?.headers['x-late'], 'b');
    t.equal(r?.body, 'hello');
  });

  t.test('a body written in pieces arrives whole', async (t) => {
    const port = await serve(t, (res) => {
      res.writeHead(200, { 'content-length': '6' });
      res.write(Buffer.from('abc'));
      setTimeout(() => res.end(Buffer.from('def')), 10);
    });
    const { responses } = await exchange(port, [GET('/')], 1);
    t.equal(responses[0]?.body, 'abcdef');
  });

  t.test('HEAD: the head only', async (t) => {
    const port = await serve(t, (res, req) => {
      res.writeHead(200, { 'content-length': '5' });
      res.end(req.method === 'HEAD' ? undefined : Buffer.from('hello'));
    });
    const { responses } = await exchange(port, [GET('/', 'HEAD')], 1, [true]);
    t.equal(responses[0]?.status, 200);
    t.equal(responses[0]?.headers['content-length'], '5');
    t.equal(responses[0]?.body, '');
  });

  t.test('end() finishes the response: writableEnded, then writableFinished', async (t) => {
    let seen: DownstreamResponse | undefined;
    const port = await serve(t, (res) => {
      seen = res;
      res.writeHead(204, {});
      res.end();
      t.equal(res.writableEnded, true);
    });
    const { responses } = await exchange(port, [GET('/')], 1);
    t.equal(responses[0]?.status, 204);
    for (let i = 0; i < 50 && !seen?.writableFinished; i++) await new Promise((r) => setTimeout(r, 10));
    t.equal(seen?.writableFinished, true);
  });

  t.test("a client that goes away: 'close' fires, the response is not finished", async (t) => {
    let closed: () => void = () => {};
    const gone = new Promise<void>((r) => {
      closed = r;
    });
    let seen: DownstreamResponse | undefined;
    const port = await serve(t, (res) => {
      seen = res;
      res.on('close', () => closed());
      res.writeHead(200, { 'content-length': '100' });
      res.write(Buffer.from('part'));
    });
    const { connect } = await import('node:net');
    const sock = connect(port, '127.0.0.1', () => sock.write(GET('/')));
    sock.on('error', () => {});
    sock.once('data', () => sock.destroy());
    await gone;
    t.equal(seen?.writableFinished, false);
  });

  t.test('destroy() closes the connection', async (t) => {
    const port = await serve(t, (res) => {
      res.writeHead(200, { 'content-length': '10' });
      res.write(Buffer.from('12345'));
      setTimeout(() => res.destroy(), 10);
    });
    const r = await exchange(port, [GET('/')], 1);
    t.equal(r.closed, true, 'closed');
    t.equal(r.responses.length, 0, 'never a short success');
  });
}

for (const impl of IMPLS) t.test(impl.name, async (t) => suite(t, impl));
