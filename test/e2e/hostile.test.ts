// Hostile input at the codec edge of the real pilot-agent: answered 400/431, never forwarded;
// slow clients do not starve others; paths are normalised before routing.

import { connect, type Socket } from 'node:net';
import t from 'tap';
import {
  freePort,
  gatewayYaml,
  request,
  serviceEntryYaml,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const up = await startUpstream('up');
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
  - match: [{uri: {prefix: /admin}}]
    directResponse: {status: 403, body: {string: admin}}
  - route: [{destination: {host: up}}]
`;
const agent = await startAgent({ configDir: writeConfigDir({ 'c.yaml': config }), concurrency: 2 });
const open: Socket[] = [];
t.teardown(async () => {
  for (const s of open) s.destroy();
  await agent.stop();
  await up.close();
});

function raw(text: string): Promise<string> {
  return new Promise((res) => {
    const sock = connect(gw, '127.0.0.1', () => sock.write(text));
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
    });
    sock.on('close', () => res(buf));
    sock.on('error', () => res(buf));
    setTimeout(() => {
      sock.destroy();
      res(buf);
    }, 2000);
  });
}

const cases: Record<string, [string, RegExp]> = {
  'Content-Length with Transfer-Encoding': [
    'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
    /^HTTP\/1\.1 400/,
  ],
  'obfuscated Transfer-Encoding list': [
    'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked, identity\r\n\r\n0\r\n\r\n',
    /^HTTP\/1\.1 400/,
  ],
  'Transfer-Encoding identity, chunked': [
    'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: identity, chunked\r\n\r\n0\r\n\r\n',
    /^HTTP\/1\.1 400/,
  ],
  'unknown Transfer-Encoding': [
    'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: xchunked\r\n\r\n0\r\n\r\n',
    /^HTTP\/1\.1 400/,
  ],
  'space before the colon': [
    'POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding : chunked\r\n\r\n0\r\n\r\n',
    /^HTTP\/1\.1 400/,
  ],
  'duplicate differing Content-Length': [
    'POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd',
    /^HTTP\/1\.1 400/,
  ],
  'invalid header name': ['GET / HTTP/1.1\r\nhost: x\r\nba(d: y\r\n\r\n', /^HTTP\/1\.1 400/],
  'control character in a header value': [
    'GET / HTTP/1.1\r\nhost: x\r\nx-a: a\x01b\r\n\r\n',
    /^HTTP\/1\.1 400/,
  ],
  'missing Host': ['GET / HTTP/1.1\r\n\r\n', /^HTTP\/1\.1 400/],
  'request head over 60 KiB': [
    `GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(61 * 1024)}\r\n\r\n`,
    /^HTTP\/1\.1 431/,
  ],
};

for (const [name, [text, want]] of Object.entries(cases)) {
  t.test(name, async (t) => {
    const before = up.hits;
    t.match(await raw(text), want);
    t.equal(up.hits, before, 'never forwarded');
  });
}

t.test('a head just under 60 KiB is served', async (t) => {
  const r = await request(gw, '/', { headers: { 'x-big': 'a'.repeat(50 * 1024) } });
  t.equal(r.status, 200);
});

t.test('dot segments are removed before routing: /public/../admin routes as /admin', async (t) => {
  const r = await request(gw, '/public/../admin');
  t.equal(r.status, 403);
  t.equal(r.body, 'admin');
});

t.test('slow clients dribbling headers do not starve others', async (t) => {
  for (let i = 0; i < 50; i++) {
    const s = connect(gw, '127.0.0.1');
    s.on('error', () => {});
    s.write('GET / HTTP/1.1\r\nhost: x\r\nx-slow: ');
    open.push(s);
  }
  const start = Date.now();
  for (let i = 0; i < 10; i++) t.equal((await request(gw, '/')).status, 200);
  t.ok(Date.now() - start < 3000, 'others are served promptly');
});
