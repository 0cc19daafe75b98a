// The runnable examples, as a user runs them: the quick start (npm start), bookinfo with a
// sidecar per application, egress through a gateway, TLS origination, and Istio's TCP traffic
// shifting task. One after another (fixed ports).

import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { ROOT, request, sleep } from '../helpers/procs.js';

async function ready(ports: number[], ms = 30_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (const p of ports) {
    while (Date.now() < deadline) {
      const ok = await fetch(`http://127.0.0.1:${p}/healthz/ready`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) break;
      await sleep(100);
    }
  }
  return Date.now() < deadline;
}

/** An example script with its stdout kept (its instructions; the agents' access logs). */
function run(script: string): { proc: ChildProcess; out: () => string; stop: () => Promise<number | null> } {
  const proc = spawn(process.execPath, [join(ROOT, 'examples', script)], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  return {
    proc,
    out: () => out,
    stop: () =>
      new Promise((r) => {
        if (proc.exitCode !== null) return r(proc.exitCode);
        proc.once('exit', (c) => r(c));
        proc.kill('SIGTERM');
      }),
  };
}

t.test('quick start: 90/10 split, header match, direct response, session affinity', async (t) => {
  const qs = run('quickstart/run.mjs');
  t.teardown(qs.stop);
  t.ok(await ready([15021]), 'gateway ready');
  const hello = await request(8080, '/hello', { host: 'localhost' });
  t.equal(hello.status, 200);
  t.match(hello.headers['set-cookie'], /^session="/);
  const jason = await request(8080, '/', { host: 'localhost', headers: { 'end-user': 'jason' } });
  t.equal(JSON.parse(jason.body).version, 'v2');
  t.equal((await request(8080, '/teapot', { host: 'localhost' })).status, 418);
  // The cookie pins the endpoint within a subset; the 90/10 split still picks the subset per request.
  const cookie = String(hello.headers['set-cookie']).split(';')[0] as string;
  const v1 = new Set<number>();
  for (let i = 0; i < 12; i++) {
    const b = JSON.parse((await request(8080, '/', { host: 'localhost', headers: { cookie } })).body);
    if (b.version === 'v1') v1.add(b.instance);
  }
  t.equal(v1.size, 1, 'one v1 instance for this session');
  t.equal(await qs.stop(), 0);
});

t.test('bookinfo: gateway -> productpage -> reviews -> ratings through five sidecars', async (t) => {
  const b = run('bookinfo/run.mjs');
  t.teardown(b.stop);
  t.ok(await ready([19590, 19581, 19582, 19583, 19584, 19585]), 'gateway and sidecars ready');
  const page = JSON.parse((await request(8080, '/productpage')).body);
  t.equal(page.reviews.version, 'v3');
  t.equal(page.reviews.ratings.service, 'ratings');
  const jason = JSON.parse((await request(8080, '/productpage', { headers: { 'end-user': 'jason' } })).body);
  t.equal(jason.reviews.version, 'v2');
  t.equal(jason.reviews.stars, 'black');
  const inbound = await (await fetch('http://127.0.0.1:19481/stats/prometheus')).text();
  t.match(
    inbound,
    /istio_requests_total\{reporter="destination"[^}]*destination_service="productpage\.default\.svc\.cluster\.local"/,
  );
  t.equal(await b.stop(), 0);
});

t.test('egress: sidecar -> egress gateway -> external', async (t) => {
  const e = run('egress/run.mjs');
  t.teardown(e.stop);
  t.ok(await ready([19702, 19712]), 'ready');
  const r = await request(19881, '/politics', { host: 'edition.example.com' });
  t.equal(r.status, 200);
  t.equal(JSON.parse(r.body).via, '127.0.0.1,127.0.0.1', 'two proxies on the way');
  t.equal(await e.stop(), 0);
});

t.test('TLS origination: at a sidecar, and at an egress gateway (Istio egress tasks)', async (t) => {
  t.test('sidecar: plain HTTP from the application, TLS to edition.cnn.com', async (t) => {
    const s = run('egress-tls-origination/run.mjs');
    t.teardown(s.stop);
    t.ok(await ready([19722]), 'sidecar ready');
    const r = await request(19891, '/politics', { host: 'edition.cnn.com' });
    t.equal(r.status, 200, 'one 200, no 301 to https');
    t.equal(r.headers.location, undefined);
    const b = JSON.parse(r.body);
    t.same([b.tls, b.sni, b.path], [true, 'edition.cnn.com', '/politics'], 'over TLS, with SNI');
    t.equal(await s.stop(), 0);
  });

  t.test('egress gateway: HTTP to the gateway, TLS from it on port 443', async (t) => {
    const s = run('egress-gateway-tls-origination/run.mjs');
    t.teardown(s.stop);
    t.ok(await ready([19732, 19742]), 'gateway and sidecar ready');
    const r = await request(19896, '/politics', { host: 'edition.cnn.com' });
    t.equal(r.status, 200, 'one 200, no 301 to https');
    const b = JSON.parse(r.body);
    t.same([b.tls, b.sni, b.path], [true, 'edition.cnn.com', '/politics']);
    for (let i = 0; i < 50 && !s.out().includes('outbound|443||edition.cnn.com'); i++) await sleep(50);
    t.match(
      s.out(),
      /"GET \/politics HTTP\/1\.1" 200 .*"edition\.cnn\.com" "127\.0\.0\.1:19844" outbound\|443\|\|edition\.cnn\.com/,
    );
    t.equal(await s.stop(), 0);
  });
});

t.test("tcp-echo: all to v1, then Istio's 80/20 VirtualService applied, the split printed", async (t) => {
  const ex = run('tcp-echo/run.mjs');
  const { stop } = ex;
  t.teardown(stop);
  for (let i = 0; i < 300 && !ex.out().includes('try: '); i++) await sleep(100);
  const out = ex.out();
  t.match(out, /^all-v1: 20 one, 0 two of 20$/m, 'all 20 connections to v1');
  const before = out.slice(0, out.indexOf('all-v1:'));
  t.equal(before.match(/^one /gm)?.length, 20, 'twenty answers printed, each from v1');
  t.notMatch(before, /^two /m);
  const split = /^80\/20: (\d+) one, (\d+) two of 200 connections/m.exec(out);
  t.ok(split, 'the split is printed');
  const two = Number(split?.[2]);
  t.equal(Number(split?.[1]) + two, 200, 'every connection answered');
  t.ok(two >= 20 && two <= 60, `about 20% to v2 (${two}/200)`);
  // It keeps serving: what the task's `(date; sleep 1) | nc` sends, one line then EOF.
  const answer = await new Promise<string>((resolve) => {
    const s = connect({ port: 31400, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    s.on('data', (d) => {
      got += d;
    });
    s.on('end', () => s.end());
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    s.on('connect', () => s.end('hello\n'));
  });
  t.match(answer, /^(one|two) hello\n$/);
  t.equal(await stop(), 0);
});

t.test(
  'secure ingress: HTTPS terminated with the Secret, its certificate verified; HTTP redirected',
  async (t) => {
    const { tlsRequest } = await import('../helpers/tls-client.js');
    const { readFileSync } = await import('node:fs');
    const ex = run('secure-ingress/run.mjs');
    const { stop } = ex;
    t.teardown(stop);
    t.ok(await ready([19812]), 'gateway ready');
    const caFile = /--cacert (\S+)/.exec(ex.out())?.[1] ?? '';
    const ca = readFileSync(caFile, 'utf8');
    const r = await tlsRequest({ port: 8443, servername: 'httpbin.example.com', ca, path: '/status/418' });
    t.equal(r.status, 418, 'verified against the example CA, served by httpbin');
    t.equal(r.peerCN, 'httpbin.example.com');
    const headers = await tlsRequest({ port: 8443, servername: 'httpbin.example.com', ca, path: '/headers' });
    t.equal(JSON.parse(headers.body).headers['x-forwarded-proto'], 'https');
    const redirect = await request(8080, '/headers', { host: 'httpbin.example.com' });
    t.equal(redirect.status, 301);
    t.equal(redirect.headers.location, 'https://httpbin.example.com/headers');
    t.equal(await stop(), 0);
  },
);
