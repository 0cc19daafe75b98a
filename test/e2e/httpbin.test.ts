// The seed scenario: an httpbin Gateway + VirtualService as Istio users write them
// (test/fixtures/istio/httpbin/gateway.yaml) in front of the real httpbin (Debian python3-httpbin
// under gunicorn), through the real pilot-agent. Without gunicorn and httpbin the tests are skipped
// with the apt-get line, or fail under COURIER_REQUIRE_SYSTEM_TESTS=1 (CI).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  freePort,
  ROOT,
  request,
  requireHttpbin,
  startAgent,
  startHttpbin,
  writeConfigDir,
} from '../helpers/procs.js';

const sample = readFileSync(join(ROOT, 'test', 'fixtures', 'istio', 'httpbin', 'gateway.yaml'), 'utf8');

// The gateway listens on port 80. As root (CI) and with 80 free we serve it unchanged; otherwise the
// port number is the only edit.
let port = 80;
if (process.getuid?.() !== 0 || !(await portFree(80))) port = await freePort();
const gatewayYaml = port === 80 ? sample : sample.replace(/number: 80$/m, `number: ${port}`);

async function portFree(p: number): Promise<boolean> {
  const net = await import('node:net');
  return new Promise((res) => {
    const s = net.createServer();
    s.once('error', () => res(false));
    s.listen(p, '0.0.0.0', () => s.close(() => res(true)));
  });
}

if (requireHttpbin(t)) {
  const httpbin = await startHttpbin();
  const registry = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: httpbin
spec:
  hosts: [httpbin.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports:
  - {number: 8000, name: http, protocol: HTTP}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: ${httpbin.port}}
`;
  const agent = await startAgent({
    configDir: writeConfigDir({ 'httpbin-gateway.yaml': gatewayYaml, 'registry.yaml': registry }),
    concurrency: 2,
  });
  t.teardown(async () => {
    await agent.stop();
    await httpbin.stop();
  });

  t.test('GET /status/418 comes from httpbin through the gateway', async (t) => {
    const r = await request(port, '/status/418', { host: 'httpbin.example.com' });
    t.equal(r.status, 418);
    t.match(r.body, /teapot/);
    t.match(r.headers['x-envoy-upstream-service-time'], /^\d+$/);
  });

  t.test('httpbin sees the forwarding headers', async (t) => {
    const r = await request(port, '/headers?show_env=1', { host: 'httpbin.example.com' });
    t.equal(r.status, 200);
    const h = (JSON.parse(r.body) as { headers: Record<string, string> }).headers;
    t.equal(h.Host, 'httpbin.example.com');
    t.match(h['X-Request-Id'], /^[0-9a-f-]{36}$/);
    t.equal(h['X-Forwarded-Proto'], 'http');
    t.equal(h['X-Envoy-Attempt-Count'], '1');
  });

  t.test('POST body and query reach httpbin', async (t) => {
    const r = await request(port, '/post?x=1', {
      host: 'httpbin.example.com',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"hello":"courier"}',
    });
    const b = JSON.parse(r.body) as { args: Record<string, string>; json: Record<string, string> };
    t.same(b.args, { x: '1' });
    t.same(b.json, { hello: 'courier' });
  });

  t.test('chunked response and redirects from httpbin pass through unchanged', async (t) => {
    const s = await request(port, '/stream/5', { host: 'httpbin.example.com' });
    t.equal(s.status, 200);
    t.equal(s.body.trim().split('\n').length, 5);
    const red = await request(port, '/redirect-to?url=/get', { host: 'httpbin.example.com' });
    t.equal(red.status, 302);
    t.equal(red.headers.location, '/get');
  });

  t.test('cookies: Set-Cookie from httpbin reaches the client; Cookie reaches httpbin', async (t) => {
    const set = await request(port, '/cookies/set?flavour=oat&kind=chip', { host: 'httpbin.example.com' });
    t.equal(set.status, 302);
    const cookies = ([] as string[]).concat(set.headers['set-cookie'] ?? []);
    t.equal(cookies.length, 2, 'two Set-Cookie headers kept apart');
    t.ok(cookies.some((c) => c.startsWith('flavour=oat')));
    const got = await request(port, '/cookies', {
      host: 'httpbin.example.com',
      headers: { cookie: 'flavour=oat; kind=chip' },
    });
    t.same((JSON.parse(got.body) as { cookies: Record<string, string> }).cookies, {
      flavour: 'oat',
      kind: 'chip',
    });
  });

  t.test('gzip bodies pass through untouched', async (t) => {
    const http = await import('node:http');
    const zlib = await import('node:zlib');
    const body = await new Promise<{ enc: string | undefined; data: Buffer }>((res, rej) => {
      http
        .get(
          {
            host: '127.0.0.1',
            port,
            path: '/gzip',
            headers: { host: 'httpbin.example.com', 'accept-encoding': 'gzip' },
          },
          (r) => {
            const chunks: Buffer[] = [];
            r.on('data', (c: Buffer) => chunks.push(c));
            r.on('end', () => res({ enc: r.headers['content-encoding'], data: Buffer.concat(chunks) }));
          },
        )
        .on('error', rej);
    });
    t.equal(body.enc, 'gzip');
    t.equal((JSON.parse(zlib.gunzipSync(body.data).toString()) as { gzipped: boolean }).gzipped, true);
  });

  t.test('HEAD and 204 have no body', async (t) => {
    const h = await request(port, '/get', { host: 'httpbin.example.com', method: 'HEAD' });
    t.equal(h.status, 200);
    t.equal(h.body, '');
    const n = await request(port, '/status/204', { host: 'httpbin.example.com' });
    t.equal(n.status, 204);
    t.equal(n.body, '');
  });

  t.test('an upstream that dies gives 503 UF after default retries', async (t) => {
    await httpbin.stop();
    const r = await request(port, '/get', { host: 'httpbin.example.com' });
    t.equal(r.status, 503);
    t.equal(
      r.body,
      'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused',
    );
  });
}
