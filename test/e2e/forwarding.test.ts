// End to end: load balancing, session affinity, mirroring, upgrades and the codec edge, through
// the real pilot-agent with two workers.

import { connect } from 'node:net';
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

const ups = await Promise.all(['a', 'b', 'c', 'd'].map((n) => startUpstream(n)));
const mirror = await startUpstream('mirror');
const broken = await startUpstream('broken', (req, res) => {
  if (req.url === '/cut') {
    res.writeHead(200, { 'content-length': '100' });
    res.write('only part');
    setTimeout(() => res.socket?.destroy(), 50);
  } else res.socket?.destroy();
  return true;
});
const tunnels: import('node:stream').Duplex[] = [];
broken.server.on('upgrade', (req, sock) => {
  tunnels.push(sock);
  sock.write(
    `HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: Upgrade\r\n\r\n`,
  );
  sock.on('data', (d: Buffer) => sock.write(Buffer.from(d.toString().toUpperCase())));
});
// A second upgrade-capable upstream that says who it is in its 101.
const tunnel2 = await startUpstream('tunnel2');
tunnel2.server.on('upgrade', (req, sock) => {
  tunnels.push(sock);
  sock.on('end', () => sock.end()); // a well-behaved server closes when its client does
  sock.write(
    `HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: Upgrade\r\nx-tunnel: two\r\n` +
      `x-seen-url: ${req.url}\r\nx-seen-op: ${req.headers['x-tunnel-op'] ?? '-'}\r\nx-seen-xff: ${req.headers['x-forwarded-for'] ?? '-'}\r\n\r\n`,
  );
});
const deadPort = await freePort();
const gw = await freePort();
const eps = ups.map((u) => ({ port: u.port }));

const config = `${gatewayYaml(gw)}
---
${serviceEntryYaml('pool.default.svc.cluster.local', eps)}
---
${serviceEntryYaml('rr.default.svc.cluster.local', eps)}
---
${serviceEntryYaml('cookie.default.svc.cluster.local', eps)}
---
${serviceEntryYaml('query.default.svc.cluster.local', eps)}
---
${serviceEntryYaml('mirror.default.svc.cluster.local', [{ port: mirror.port }])}
---
${serviceEntryYaml('broken.default.svc.cluster.local', [{ port: broken.port }])}
---
${serviceEntryYaml('tunnel2.default.svc.cluster.local', [{ port: tunnel2.port }])}
---
${serviceEntryYaml('half.default.svc.cluster.local', [{ port: deadPort }, { port: ups[0]?.port as number }])}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pool}
spec:
  host: pool
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rr}
spec:
  host: rr
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cookie}
spec:
  host: cookie
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: affinity, ttl: 60s, path: /}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: query}
spec:
  host: query
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpQueryParameterName: user
        maglev: {tableSize: 65537}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /hash}}]
    route: [{destination: {host: pool}}]
  - match: [{uri: {prefix: /rr}}]
    route: [{destination: {host: rr}}]
  - match: [{uri: {prefix: /cookie}}]
    route: [{destination: {host: cookie}}]
  - match: [{uri: {prefix: /query}}]
    route: [{destination: {host: query}}]
  - match: [{uri: {prefix: /mirrored}}]
    route: [{destination: {host: rr}}]
    mirror: {host: mirror}
  - match: [{uri: {prefix: /half}}]
    route: [{destination: {host: half}}]
  - match: [{uri: {prefix: /wsrewrite/}}]
    rewrite: {uri: /inner/}
    headers:
      request:
        set: {x-tunnel-op: "yes"}
    route: [{destination: {host: tunnel2}}]
  - match: [{uri: {prefix: /wsredirect}}]
    redirect: {uri: /elsewhere}
  - match: [{uri: {prefix: /wsplit}}]
    route:
    - destination: {host: broken}
      weight: 1
    - destination: {host: tunnel2}
      weight: 99
  - route: [{destination: {host: broken}}]
`;

const agent = await startAgent({ configDir: writeConfigDir({ 'c.yaml': config }), concurrency: 2 });
t.teardown(async () => {
  for (const s of tunnels) s.destroy();
  await agent.stop();
  await Promise.all([...ups, mirror, broken, tunnel2].map((u) => u.close()));
});
const name = (b: string) => (JSON.parse(b) as { name: string }).name;

t.test('consistent hash on a header: same key, same endpoint, across both workers', async (t) => {
  for (const user of ['alice', 'bob', 'carol', 'dave']) {
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++)
      seen.add(name((await request(gw, '/hash', { headers: { 'x-user': user } })).body));
    t.equal(seen.size, 1, `${user} sticks to one endpoint`);
  }
  const spread = new Set<string>();
  for (let i = 0; i < 40; i++)
    spread.add(name((await request(gw, '/hash', { headers: { 'x-user': `u${i}` } })).body));
  t.ok(spread.size >= 3, `different keys spread (${spread.size} endpoints)`);
});

t.test('consistent hash on a query parameter with maglev', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < 10; i++) seen.add(name((await request(gw, `/query?user=zed&i=${i}`)).body));
  t.equal(seen.size, 1);
});

t.test('cookie affinity: generated with ttl and path when absent, then honoured', async (t) => {
  const first = await request(gw, '/cookie');
  const sc = String(first.headers['set-cookie']);
  t.match(sc, /^affinity="[0-9a-f]+"; Max-Age=60; Path=\/; HttpOnly$/);
  const value = /affinity="([^"]+)"/.exec(sc)?.[1] as string;
  const target = name(first.body);
  for (let i = 0; i < 8; i++) {
    const r = await request(gw, '/cookie', { headers: { cookie: `other=1; affinity="${value}"` } });
    t.equal(name(r.body), target);
    t.notOk(r.headers['set-cookie'], 'no new cookie when present');
  }
});

t.test('round robin spreads evenly', async (t) => {
  const counts = new Map<string, number>();
  for (let i = 0; i < 80; i++) {
    const n = name((await request(gw, '/rr')).body);
    counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  t.equal(counts.size, 4);
  for (const [k, v] of counts) t.ok(v >= 10 && v <= 30, `${k}: ${v}`);
});

t.test('mirror gets a copy; the primary answers', async (t) => {
  const before = mirror.hits;
  const r = await request(gw, '/mirrored/x', { method: 'POST', body: 'payload' });
  t.equal(r.status, 200);
  const ok = await (async () => {
    for (let i = 0; i < 50; i++) {
      if (mirror.hits > before) return true;
      await sleep(20);
    }
    return false;
  })();
  t.ok(ok, 'mirror received the request');
  t.equal(mirror.requests.at(-1)?.body, 'payload');
  t.equal(mirror.requests.at(-1)?.url, '/mirrored/x');
  t.equal(mirror.requests.at(-1)?.headers.host, 'example.com-shadow', "Envoy's -shadow suffix");
  t.equal(JSON.parse(r.body).headers.host, 'example.com', 'the primary keeps the authority as sent');
});

t.test('the shadow suffix goes before the port of the authority', async (t) => {
  const before = mirror.hits;
  const r = await request(gw, '/mirrored/port', { host: 'shop.example.com:8443' });
  t.equal(r.status, 200);
  for (let i = 0; i < 50 && mirror.hits === before; i++) await sleep(20);
  t.equal(mirror.requests.at(-1)?.headers.host, 'shop.example.com-shadow:8443');
});

t.test('default retry policy moves a connect failure to another endpoint', async (t) => {
  for (let i = 0; i < 20; i++) t.equal((await request(gw, '/half')).status, 200);
});

t.test('upstream closing before a response: 503 UC; a body cut short is a broken response', async (t) => {
  const r = await request(gw, '/close');
  t.equal(r.status, 503);
  t.equal(
    r.body,
    'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
  );
  await t.rejects(request(gw, '/cut'), 'the client sees an aborted response, not a short success');
});

t.test('Upgrade requests are proxied both ways', async (t) => {
  const sock = connect(gw, '127.0.0.1');
  sock.write('GET /ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
  const got = await new Promise<string>((res) => {
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n\r\n') && !buf.includes('HELLO')) sock.write('hello');
      if (buf.includes('HELLO')) res(buf);
    });
    setTimeout(() => res(buf), 3000);
  });
  sock.destroy();
  t.match(got, /^HTTP\/1\.1 101/);
  t.match(got, /HELLO/);
});

/** Send an Upgrade request and return the response head (the connection is then closed). */
function upgradeHead(path: string): Promise<string> {
  return new Promise<string>((res) => {
    const sock = connect(gw, '127.0.0.1');
    sock.write(`GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n`);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n\r\n')) {
        sock.destroy();
        res(buf);
      }
    });
    sock.on('error', () => res(buf));
    setTimeout(() => {
      sock.destroy();
      res(buf);
    }, 3000);
  });
}

t.test('Upgrade requests follow the weighted split, not the first destination', async (t) => {
  let second = 0;
  const n = 40;
  for (let i = 0; i < n; i++) {
    const head = await upgradeHead('/wsplit');
    if (/^HTTP\/1\.1 101/.test(head) && /\r\nx-tunnel: two\r\n/i.test(head)) second++;
  }
  // 99% weight: all 40 but for a rare one; the first destination alone would give none.
  t.ok(second >= n - 5, `${second} of ${n} upgrades went to the 99% destination`);
});

t.test('Upgrade requests take the whole request path: rewrite, header ops, redirects', async (t) => {
  const tunnelled = await upgradeHead('/wsrewrite/chat?room=1');
  t.match(tunnelled, /^HTTP\/1\.1 101 /);
  t.match(tunnelled, /\r\nx-seen-url: \/inner\/chat\?room=1\r\n/i, 'the prefix rewrite applies');
  t.match(tunnelled, /\r\nx-seen-op: yes\r\n/i, 'request header operations apply');
  t.match(tunnelled, /\r\nx-seen-xff: 127\.0\.0\.1\r\n/i, 'x-forwarded-for is set');
  const redirected = await upgradeHead('/wsredirect');
  t.match(redirected, /^HTTP\/1\.1 301 /, 'a redirect route answers the redirect');
  t.match(redirected, /\r\nlocation: http:\/\/x\/elsewhere\r\n/i);
  // A tunnel is counted when it closes (its duration is the tunnel's life), as Envoy logs it.
  let text = '';
  for (let i = 0; i < 40 && !/response_code="101"/.test(text); i++) {
    await new Promise((r) => setTimeout(r, 50));
    text = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
  }
  t.match(text, /istio_requests_total\{[^}]*response_code="101"[^}]*\} [1-9]/, 'upgrades are counted (101)');
});

async function raw(text: string): Promise<string> {
  const sock = connect(gw, '127.0.0.1');
  sock.write(text);
  return new Promise((res) => {
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

t.test('malformed requests get 400 and are never forwarded', async (t) => {
  const before = ups.reduce((s, u) => s + u.hits, 0);
  const a = await raw(
    'POST /rr HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n',
  );
  t.match(a, /^HTTP\/1\.1 400/);
  const b = await raw('GET /rr HTTP/1.1\r\nhost: x\r\nbad header: y\r\n\r\n');
  t.match(b, /^HTTP\/1\.1 400/);
  const c = await raw(`GET /rr HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`);
  t.match(c, /^HTTP\/1\.1 431/);
  t.equal(
    ups.reduce((s, u) => s + u.hits, 0),
    before,
    'nothing reached an upstream',
  );
});

t.test('chunked request bodies stream to the upstream', async (t) => {
  const r = await raw(
    'POST /rr HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n',
  );
  t.match(r, /^HTTP\/1\.1 200/);
  t.match(r, /"body":"hello world"/);
});
