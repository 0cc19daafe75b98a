// Differential check of the downstream fast path against node:http: the same generated requests
// -- ordinary ones and ones with odd methods, targets, versions, whitespace, control bytes,
// obs-text, folded lines, duplicate or missing Host, framing headers -- go to two real agents, one
// with the fast path (default) and one with COURIER_FAST_DOWNSTREAM=0. Every answer (status, and
// for forwarded requests what the upstream saw) must be the same: the fast path may only narrow
// what it serves, never change an answer.

import t from 'tap';
import {
  freePort,
  gatewayYaml,
  serviceEntryYaml,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';
import { exchange } from '../helpers/raw-http.js';

const echo = await startUpstream('echo');
t.teardown(() => echo.close());

async function agentWith(fast: boolean) {
  const port = await freePort();
  const dir = writeConfigDir({
    'c.yaml': `${gatewayYaml(port)}
---
${serviceEntryYaml('echo.default.svc.cluster.local', [{ port: echo.port }])}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /local}}]
    directResponse: {status: 418, body: {string: "local"}}
  - route: [{destination: {host: echo.default.svc.cluster.local}}]
`,
  });
  const agent = await startAgent({ configDir: dir, env: { COURIER_FAST_DOWNSTREAM: fast ? '1' : '0' } });
  return { agent, port };
}

const fast = await agentWith(true);
const node = await agentWith(false);
t.teardown(() => Promise.all([fast.agent.stop(), node.agent.stop()]));

// A small deterministic generator (xorshift), so a failure names a reproducible case.
let seed = 0x2545f491;
const rnd = (n: number) => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) % n;
};
const pick = (xs: readonly string[]): string => xs[rnd(xs.length)] as string;

// Each part is ordinary most of the time and odd sometimes, so both paths get plenty of work.
const METHODS = [
  ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'PUT'],
  ['POST', 'FOO', 'get', 'PRI', 'PURGE', 'CONNECT'],
];
const TARGETS = [
  ['/a', '/a?b=c&d', '/local', '/a/../b', '/%2e%2e/x', '/a#frag', '/a;p=1', '/~x/y.z'],
  ['/\x7f', '/a b', '*', 'http://h.example/x', '/\u00fc', '/a\tb'],
];
const VERSIONS = [['HTTP/1.1'], ['HTTP/1.0', 'HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1.1 ']];
const HEADERS = [
  [
    'X-A: v',
    'X-B:v',
    'X-C:\tpadded\t ',
    'X-D: ',
    'X-E: obs \x80\xff text',
    'Content-Length: 0',
    'Connection: keep-alive',
    'Connection: close',
    'Connection: x-a',
    'X-Forwarded-For: 10.0.0.1',
    'X-Request-Id: fixed-id',
    'Cookie: a=1; b=2',
    'Accept: */*',
    'User-Agent: differential/1.0',
  ],
  [
    'X-F: ctl\x01',
    'X-G : space-before-colon',
    ' X-H: folded-start',
    'X-I: a\r\n  continued',
    'X I: bad-name',
    'Content-Length: +0',
    'Content-Length:  0 ',
    'Content-Length: 00',
    'Transfer-Encoding: chunked',
    'Expect: 100-continue',
    'Upgrade: websocket',
    '__proto__: x',
    'Host: other.example.com',
    'X-A: v',
  ],
];
/** Ordinary 85% of the time. */
const part = (lists: readonly (readonly string[])[]) =>
  pick((rnd(100) < 85 ? lists[0] : lists[1]) as string[]);

function makeRequest(): string {
  const headers: string[] = [];
  for (let n = rnd(6); n > 0; n--) {
    const h = part(HEADERS);
    if (!headers.includes(h) || rnd(4) === 0) headers.push(h); // now and then a repeat
  }
  if (rnd(20) > 0) headers.splice(rnd(headers.length + 1), 0, 'Host: shop.example.com');
  // Chunked framing gets its (empty) body so both parsers see a whole request.
  const body = headers.includes('Transfer-Encoding: chunked') ? '0\r\n\r\n' : '';
  return `${part(METHODS)} ${part(TARGETS)} ${part(VERSIONS)}\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n${body}`;
}

/** What a client can observe: status, and for forwarded requests what the upstream was sent. */
async function observe(port: number, text: string, method: string) {
  const { responses } = await exchange(port, [text], 1, [method === 'HEAD'], 0).catch(() => ({
    responses: [],
  }));
  const r = responses[0];
  if (!r) return { status: 'none' };
  let seen: unknown;
  if (r.headers['x-upstream'] === 'echo' && r.body) {
    const b = JSON.parse(r.body) as { method: string; url: string; headers: Record<string, string> };
    const { 'x-request-id': id, ...headers } = b.headers;
    seen = { method: b.method, url: b.url, headers, fixedId: id === 'fixed-id' };
  }
  return { status: r.status, seen, body: seen ? undefined : r.body };
}

t.test('500 generated requests: the fast path answers exactly as node:http does', async (t) => {
  let differences = 0;
  for (let i = 0; i < 500; i++) {
    const text = makeRequest();
    const method = text.slice(0, text.indexOf(' '));
    const [a, b] = await Promise.all([observe(fast.port, text, method), observe(node.port, text, method)]);
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      differences++;
      t.same(a, b, `case ${i}: ${JSON.stringify(text)}`);
    }
  }
  t.equal(differences, 0, 'no request answered differently');
  const text = await (await fetch(`http://127.0.0.1:${fast.agent.status}/stats/prometheus`)).text();
  const served = Number(/courier_downstream_fast_path_total\{event="request"\} (\d+)/.exec(text)?.[1]);
  const handed = Number(/courier_downstream_fast_path_total\{event="handoff"\} (\d+)/.exec(text)?.[1]);
  t.ok(served > 100, `the fast path served a share of them (${served})`);
  t.ok(handed > 100, `and handed the odd ones to node:http (${handed})`);
});
