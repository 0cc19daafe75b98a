// The connection dispatcher in front of a plain HTTP gateway listener, through the real
// pilot-agent, with the downstream fast path on (default) and off: HTTP/1.1 is served as before
// (keep-alive, a body through node:http, a request split byte by byte across the ambiguous `P`
// prefix); an h2c prior-knowledge preface and a genuine TLS ClientHello (node:tls with SNI) match
// no filter chain — closed without an HTTP answer, counted in
// courier_downstream_cx_no_filter_chain_total{first_bytes} — and the one worker keeps serving.

import http from 'node:http';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import t from 'tap';
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

const HOST = 'shop.default.svc.cluster.local';
const up = await startUpstream('shop');
t.teardown(() => up.close());

const vsYaml = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: ${HOST}}}]
`;

const H2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
/** An empty SETTINGS frame, what an h2c client sends right after the preface. */
const SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);

/** Write `parts` (pausing between them) and collect what comes back until the proxy closes. */
function raw(port: number, parts: (string | Buffer)[], gapMs = 0): Promise<{ got: string; how: string }> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    let how = 'closed';
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
    });
    s.on('error', (e: Error & { code?: string }) => {
      how = e.code ?? e.message;
    });
    s.on('close', () => resolve({ got, how }));
    const timer = setTimeout(() => {
      how = 'timeout';
      s.destroy();
    }, 5000);
    s.on('close', () => clearTimeout(timer));
    s.on('connect', async () => {
      for (const p of parts) {
        s.write(p);
        if (gapMs) await sleep(gapMs);
      }
    });
  });
}

/** A TLS handshake attempt with SNI: how it ended (never a completed handshake, never a hang). */
function tlsHello(port: number, servername: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    s.once('secureConnect', () => resolve('handshake completed'));
    s.once('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
    s.once('close', () => resolve('closed'));
    setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, 5000);
  });
}

const MODES: [string, NodeJS.ProcessEnv][] = [
  ['the fast path (default)', {}],
  ['node:http only (COURIER_FAST_DOWNSTREAM=0)', { COURIER_FAST_DOWNSTREAM: '0' }],
];

for (const [mode, env] of MODES)
  t.test(`a plain HTTP listener, ${mode}`, async (t) => {
    const gw = await freePort();
    const agent = await startAgent({
      configDir: writeConfigDir({
        'gw.yaml': gatewayYaml(gw),
        'se.yaml': serviceEntryYaml(HOST, [{ port: up.port }]),
        'vs.yaml': vsYaml,
      }),
      concurrency: 1,
      env,
    });
    t.teardown(() => agent.stop());
    const [workerPid] = childPids(agent.proc.pid as number);
    const metrics = async () => (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
    const noChain = async (first: string) =>
      Number(
        new RegExp(
          `^courier_downstream_cx_no_filter_chain_total\\{first_bytes="${first}"\\} (\\d+)$`,
          'm',
        ).exec(await metrics())?.[1] ?? Number.NaN,
      );

    t.test('HTTP/1.1 is served as before', async (t) => {
      const r = await request(gw, '/plain');
      t.equal(r.status, 200);
      t.equal(JSON.parse(r.body).url, '/plain');
      // Keep-alive: three requests on one connection.
      const agentKA = new http.Agent({ keepAlive: true, maxSockets: 1 });
      t.teardown(() => agentKA.destroy());
      const reused: boolean[] = [];
      for (let i = 0; i < 3; i++)
        await new Promise<void>((resolve, reject) => {
          const req = http.get({ port: gw, host: '127.0.0.1', path: `/ka${i}`, agent: agentKA }, (res) => {
            t.equal(res.statusCode, 200);
            res.resume();
            res.on('end', resolve);
          });
          req.on('error', reject);
          req.on('socket', () => reused.push(req.reusedSocket));
        });
      t.strictSame(reused, [false, true, true], 'one connection, kept alive');
      // A body: the connection goes to node:http, as before.
      const post = await request(gw, '/post', { method: 'POST', body: 'hello' });
      t.equal(post.status, 200);
      t.equal(JSON.parse(post.body).body, 'hello');
      // Byte by byte through `P`, which could start the h2 preface: held, then served.
      const head = 'POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi';
      const slow = await raw(gw, [...head.slice(0, 5)].concat(head.slice(5)), 10);
      t.match(slow.got, /^HTTP\/1\.1 200 /);
      // Bytes that are neither TLS nor h2: still the HTTP/1 codec's 400, as before.
      const junk = await raw(gw, ['\x00\x01junk\r\n\r\n']);
      t.match(junk.got, /^HTTP\/1\.1 400 /);
    });

    t.test('an h2c preface is closed without an answer, and counted', async (t) => {
      const before = await noChain('h2c');
      const r = await raw(gw, [H2_PREFACE, SETTINGS]);
      t.equal(r.got, '', 'no HTTP/1.1 400, no HTTP/2 frames: a close');
      t.not(r.how, 'timeout');
      // The preface split across writes is recognised too.
      const split = await raw(
        gw,
        [H2_PREFACE.slice(0, 3), H2_PREFACE.slice(3, 17), H2_PREFACE.slice(17)],
        20,
      );
      t.equal(split.got, '');
      t.equal(await noChain('h2c'), before + 2);
    });

    t.test('a TLS ClientHello is closed before any handshake, and counted', async (t) => {
      const before = await noChain('tls');
      const outcome = await tlsHello(gw, 'shop.example.com');
      t.not(outcome, 'handshake completed');
      t.not(outcome, 'timeout', `closed (${outcome})`);
      const burst = await Promise.all(
        Array.from({ length: 10 }, (_, i) => tlsHello(gw, `h${i}.example.com`)),
      );
      t.notOk(
        burst.some((o) => o === 'handshake completed' || o === 'timeout'),
        'every one closed',
      );
      t.equal(await noChain('tls'), before + 11);
    });

    t.test('the worker keeps serving', async (t) => {
      await sleep(100);
      t.strictSame(childPids(agent.proc.pid as number), [workerPid], 'the same one worker');
      const m = await metrics();
      t.match(m, /^courier_worker_restarts_total 0$/m);
      t.match(m, /^courier_worker_unhandled_errors_total\{kind="exception"\} 0$/m);
      t.match(m, /^courier_worker_unhandled_errors_total\{kind="rejection"\} 0$/m);
      t.match(
        m,
        /^courier_downstream_cx_no_filter_chain_total\{first_bytes="http1"\} 0$/m,
        'HTTP/1 never refused',
      );
      const r = await request(gw, '/after');
      t.equal(r.status, 200);
    });
  });
