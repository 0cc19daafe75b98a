// End to end: the real pilot-agent (router mode) in front of real upstream servers, one config
// exercising VirtualService matching, actions and DestinationRule subsets.

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

const v1 = await startUpstream('v1');
const v2 = await startUpstream('v2');
const flaky = await startUpstream('flaky', (req, res, _b, u) => {
  // 503 on the first two hits of each request id, then 200.
  const n = u.requests.filter((r) => r.headers['x-request-id'] === req.headers['x-request-id']).length;
  if (n <= 2) {
    res.writeHead(503, { 'content-length': '4' });
    res.end('flak');
    return true;
  }
  return false;
});
const slow = await startUpstream('slow', (_req, res) => {
  setTimeout(() => {
    res.writeHead(200);
    res.end('late');
  }, 1500);
  return true;
});
const cookies = await startUpstream('cookies', (_req, res) => {
  res.writeHead(200, [
    ['set-cookie', 'a=1; Path=/'],
    ['set-cookie', 'b=2; Path=/'],
    ['content-length', '2'],
  ] as never);
  res.end('ok');
  return true;
});
const gwPort = await freePort();
const deadPort = await freePort();

const config = `${gatewayYaml(gwPort)}
---
${serviceEntryYaml('reviews.default.svc.cluster.local', [
  { port: v1.port, labels: { version: 'v1' } },
  { port: v2.port, labels: { version: 'v2' } },
])}
---
${serviceEntryYaml('flaky.default.svc.cluster.local', [{ port: flaky.port }])}
---
${serviceEntryYaml('slow.default.svc.cluster.local', [{ port: slow.port }])}
---
${serviceEntryYaml('cookies.default.svc.cluster.local', [{ port: cookies.port }])}
---
${serviceEntryYaml('dead.default.svc.cluster.local', [{ port: deadPort }])}
---
${serviceEntryYaml('empty.default.svc.cluster.local', [{ port: v1.port, labels: { version: 'v1' } }])}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: empty}
spec:
  host: empty
  subsets:
  - {name: none, labels: {version: v9}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: main}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {exact: /exact}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{headers: {end-user: {exact: jason}}, uri: {prefix: /reviews}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {regex: "/re/[0-9]+"}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /q}, queryParams: {flag: {exact: "yes"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /without}, withoutHeaders: {x-skip: {}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /method}, method: {exact: POST}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
    - {destination: {host: reviews, subset: v2}, weight: 0}
  - match: [{uri: {prefix: /old}}]
    redirect: {uri: /new, authority: new.example.com}
  - match: [{uri: {prefix: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
    headers: {response: {set: {content-type: text/x-teapot}}}
  - match: [{uri: {prefix: /api/}}]
    rewrite: {uri: /v2/, authority: backend.internal}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /hdr}}]
    headers:
      request: {set: {x-set: one}, add: {x-add: two}, remove: [x-drop]}
      response: {set: {x-resp: yes}, remove: [x-upstream]}
    route: [{destination: {host: reviews, subset: v1}, headers: {request: {set: {x-dest: d}}}}]
  - match: [{uri: {prefix: /abort-never}}]
    fault: {abort: {httpStatus: 555}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 555, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {fixedDelay: 400ms, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /flaky}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: flaky}}]
  - match: [{uri: {prefix: /noretry}}]
    retries: {attempts: 0}
    route: [{destination: {host: flaky}}]
  - match: [{uri: {prefix: /slow}}]
    timeout: 300ms
    route: [{destination: {host: slow}}]
  - match: [{uri: {prefix: /cookies}}]
    route: [{destination: {host: cookies}}]
  - match: [{uri: {prefix: /dead}}]
    route: [{destination: {host: dead}}]
  - match: [{uri: {prefix: /empty}}]
    route: [{destination: {host: empty, subset: none}}]
  - match: [{uri: {prefix: /nocluster}}]
    route: [{destination: {host: nowhere.example.com}}]
  - match: [{uri: {prefix: /cors}}]
    corsPolicy:
      allowOrigins: [{exact: cors.com}]
      allowMethods: [POST, GET]
      allowHeaders: [X-Foo-Bar]
      maxAge: 24h
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /echo}}]
    route: [{destination: {host: reviews, subset: v1}}]
`;

const agent = await startAgent({ configDir: writeConfigDir({ 'all.yaml': config }) });
t.teardown(async () => {
  await agent.stop();
  await Promise.all([v1, v2, flaky, slow, cookies].map((u) => u.close()));
});

const json = (b: string) =>
  JSON.parse(b) as { name: string; url: string; headers: Record<string, string>; body: string };

t.test('uri exact, header, regex, query, withoutHeaders and method matches', async (t) => {
  t.equal(json((await request(gwPort, '/exact')).body).name, 'v1');
  t.equal((await request(gwPort, '/exact/more')).status, 404, 'exact does not match a longer path');
  t.equal(json((await request(gwPort, '/reviews', { headers: { 'end-user': 'jason' } })).body).name, 'v2');
  t.equal((await request(gwPort, '/reviews', { headers: { 'end-user': 'bob' } })).status, 404);
  t.equal(json((await request(gwPort, '/re/123')).body).name, 'v2');
  t.equal((await request(gwPort, '/re/123x')).status, 404, 'regex is a full-string match');
  t.equal(json((await request(gwPort, '/q?flag=yes')).body).name, 'v2');
  t.equal((await request(gwPort, '/q?flag=no')).status, 404);
  t.equal(json((await request(gwPort, '/without')).body).name, 'v2', 'missing header matches withoutHeaders');
  t.equal((await request(gwPort, '/without', { headers: { 'x-skip': '1' } })).status, 404);
  t.equal(json((await request(gwPort, '/method', { method: 'POST', body: 'x' })).body).name, 'v2');
  t.equal((await request(gwPort, '/method')).status, 404);
});

t.test('no route: 404 with no body', async (t) => {
  const r = await request(gwPort, '/nothing-here');
  t.equal(r.status, 404);
  t.equal(r.body, '');
});

t.test('weighted split 80/20 within tolerance, zero weight never chosen', async (t) => {
  let a = 0;
  const n = 400;
  for (let i = 0; i < n; i++) if (json((await request(gwPort, '/split')).body).name === 'v1') a++;
  t.ok(Math.abs(a / n - 0.8) < 0.08, `v1 share ${a / n} ~ 0.8`);
});

t.test('redirect keeps the query string, default 301', async (t) => {
  const r = await request(gwPort, '/old/thing?k=v');
  t.equal(r.status, 301);
  t.equal(r.headers.location, 'http://new.example.com/new?k=v');
});

t.test('direct response with response header ops', async (t) => {
  const r = await request(gwPort, '/teapot');
  t.equal(r.status, 418);
  t.equal(r.body, 'short and stout');
  t.equal(r.headers['content-type'], 'text/x-teapot');
});

t.test('rewrite uri prefix and authority', async (t) => {
  const b = json((await request(gwPort, '/api/items?x=1')).body);
  t.equal(b.url, '/v2/items?x=1');
  t.equal(b.headers.host, 'backend.internal');
  t.equal(b.headers['x-envoy-original-path'], '/api/items?x=1');
});

t.test('header operations on request and response, route and destination level', async (t) => {
  const r = await request(gwPort, '/hdr', { headers: { 'x-add': 'one', 'x-drop': 'gone' } });
  const b = json(r.body);
  t.equal(b.headers['x-set'], 'one');
  t.equal(b.headers['x-add'], 'one,two');
  t.notOk('x-drop' in b.headers);
  t.equal(b.headers['x-dest'], 'd');
  t.equal(r.headers['x-resp'], 'yes');
  t.notOk('x-upstream' in r.headers);
});

t.test('forwarding headers: request id, x-forwarded-for/proto, attempt count, service time', async (t) => {
  const r = await request(gwPort, '/echo', {
    headers: { 'x-forwarded-for': '10.0.0.1', connection: 'keep-alive, x-hop', 'x-hop': 'h' },
  });
  const b = json(r.body);
  t.match(b.headers['x-request-id'], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.equal(b.headers['x-forwarded-for'], '10.0.0.1,127.0.0.1');
  t.equal(b.headers['x-forwarded-proto'], 'http');
  t.equal(b.headers['x-envoy-attempt-count'], '1');
  t.notOk('x-hop' in b.headers, 'headers named in Connection are hop-by-hop');
  t.match(r.headers['x-envoy-upstream-service-time'], /^\d+$/);
  const kept = json((await request(gwPort, '/echo', { headers: { 'x-request-id': 'my-id' } })).body);
  t.equal(kept.headers['x-request-id'], 'my-id');
});

t.test('fault abort at 100% and unset percentage never fires', async (t) => {
  const r = await request(gwPort, '/abort');
  t.equal(r.status, 555);
  t.equal(r.body, 'fault filter abort');
  t.equal((await request(gwPort, '/abort-never')).status, 200);
});

t.test('fault delay', async (t) => {
  const start = Date.now();
  const r = await request(gwPort, '/delay');
  t.equal(r.status, 200);
  t.ok(Date.now() - start >= 380, 'delayed about 400ms');
});

t.test('retries on 5xx reach a healthy answer; attempt count increments', async (t) => {
  const r = await request(gwPort, '/flaky');
  t.equal(r.status, 200);
  t.equal(json(r.body).headers['x-envoy-attempt-count'], '3');
  const n = await request(gwPort, '/noretry');
  t.equal(n.status, 503, 'attempts: 0 passes the upstream 503 through');
  t.equal(n.body, 'flak');
});

t.test('route timeout: 504 upstream request timeout', async (t) => {
  const start = Date.now();
  const r = await request(gwPort, '/slow');
  t.equal(r.status, 504);
  t.equal(r.body, 'upstream request timeout');
  t.ok(Date.now() - start < 1200);
});

t.test('several Set-Cookie headers stay apart', async (t) => {
  const r = await request(gwPort, '/cookies');
  t.same(r.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/']);
});

t.test('connect failure, no healthy upstream, no cluster', async (t) => {
  const dead = await request(gwPort, '/dead');
  t.equal(dead.status, 503);
  t.equal(
    dead.body,
    'upstream connect error or disconnect/reset before headers. retried and the latest reset reason: remote connection failure, transport failure reason: delayed connect error: Connection refused',
  );
  const empty = await request(gwPort, '/empty');
  t.equal(empty.status, 503);
  t.equal(empty.body, 'no healthy upstream');
  const nc = await request(gwPort, '/nocluster');
  t.equal(nc.status, 503);
});

t.test('CORS preflight answered by the proxy; simple request gets the origin', async (t) => {
  const pre = await request(gwPort, '/cors', {
    method: 'OPTIONS',
    headers: { origin: 'cors.com', 'access-control-request-method': 'DELETE' },
  });
  t.equal(pre.status, 200);
  t.equal(pre.headers['access-control-allow-origin'], 'cors.com');
  t.equal(pre.headers['access-control-allow-methods'], 'POST,GET');
  t.equal(pre.headers['access-control-max-age'], '86400');
  const get = await request(gwPort, '/cors', { headers: { origin: 'cors.com' } });
  t.equal(get.headers['access-control-allow-origin'], 'cors.com');
  const other = await request(gwPort, '/cors', { headers: { origin: 'evil.com' } });
  t.notOk(other.headers['access-control-allow-origin']);
});

t.test('paths are normalised before routing', async (t) => {
  t.equal(json((await request(gwPort, '/foo/../exact')).body).name, 'v1');
});

t.test('large bodies stream both ways', async (t) => {
  const big = Buffer.alloc(3 * 1024 * 1024, 'a');
  const r = await request(gwPort, '/echo', { method: 'POST', body: big });
  t.equal(r.status, 200);
  t.equal(json(r.body).body.length, big.length);
});
