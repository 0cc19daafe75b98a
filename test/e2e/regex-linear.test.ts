// End to end: VirtualService regexes match in linear time (RE2), in router and sidecar mode.
// Routes whose uri, header, queryParams and authority matches, and a uriRegexRewrite, use the
// classic catastrophic-backtracking patterns `(a+)+b`, `(a|aa)*c` and `(.*a){20}`; crafted inputs
// of 56 KiB are sent on a warm keep-alive connection and each answer must arrive in well under
// 50 ms and be routed right. (The issue asks for 64 KiB, but the listener's head limit is 60 KiB,
// like Envoy's max_request_headers_kb default, and a bigger head is answered 431 before routing; 56
// KiB plus the rest of the head is the largest input that still reaches the route table.) With the
// old backtracking translation the first of these requests held the worker for good (28 `a`s
// against `(a+)+b` already took 1.3 s): the request times out and the test fails.

import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import t from 'tap';
import {
  freePort,
  gatewayYaml,
  serviceEntryYaml,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const N = 56 * 1024;
const a = (n: number) => 'a'.repeat(n);
/** Best of three requests must beat this; a linear engine takes a few ms at 56 KiB. */
const BUDGET_MS = 50;

// The upstream answers with what it saw, cut short: the path may be 56 KiB.
const echo = await startUpstream('echo', (req, res) => {
  const url = req.url ?? '';
  const body = JSON.stringify({ len: url.length, head: url.slice(0, 40), tail: url.slice(-8) });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
  return true;
});
const seen = (url: string) => ({ len: url.length, head: url.slice(0, 40), tail: url.slice(-8) });

const PATTERNS = ['(a+)+b', '(a|aa)*c', '(.*a){20}'] as const;
/** Per pattern: a value it matches in full, and crafted ones it does not (the backtracking bombs). */
const INPUTS: Record<(typeof PATTERNS)[number], { yes: string; no: string[] }> = {
  '(a+)+b': { yes: `${a(N)}b`, no: [`${a(N)}c`] },
  '(a|aa)*c': { yes: `${a(N)}c`, no: [`${a(N)}b`] },
  '(.*a){20}': { yes: a(N), no: [`${a(N)}b`, `${a(19)}${'x'.repeat(N)}`] },
};
/** Whether `s` has no match of the pattern anywhere (what a rewrite's search needs to be a no-op). */
const noneIn = (s: string) => !s.endsWith('ab');

const route = (name: string, match: string, extra = '') => `  - match: [${match}]
    headers: {response: {set: {x-route: ${name}}}}${extra}
    route: [{destination: {host: echo.svc.test}}]`;
const str = (s: string) => JSON.stringify(s);

const routes = [
  ...PATTERNS.map((p, i) => route(`uri${i}`, `{uri: {regex: ${str(`/u${i}/${p}`)}}}`)),
  ...PATTERNS.map((p, i) => route(`header${i}`, `{headers: {x-re${i}: {regex: ${str(p)}}}}`)),
  ...PATTERNS.map((p, i) => route(`query${i}`, `{queryParams: {q${i}: {regex: ${str(p)}}}}`)),
  ...PATTERNS.map((p, i) =>
    route(`authority${i}`, `{authority: {regex: ${str(`${p}\\.r${i}\\.regex\\.test`)}}}`),
  ),
  ...PATTERNS.map((p, i) =>
    route(
      `rewrite${i}`,
      `{uri: {prefix: /rw${i}/}}`,
      `\n    rewrite: {uriRegexRewrite: {match: ${str(`/rw${i}/${p}`)}, rewrite: ${str('/done/\\1')}}}`,
    ),
  ),
  '  - headers: {response: {set: {x-route: fallback}}}\n    route: [{destination: {host: echo.svc.test}}]',
];

const gwPort = await freePort();
const config = `${gatewayYaml(gwPort)}
---
${serviceEntryYaml('echo.svc.test', [{ port: echo.port }])}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: linear, namespace: default}
spec:
  hosts: ["*.regex.test"]
  gateways: [gw, mesh]
  http:
${routes.join('\n')}
`;

const outbound = await freePort();
const router = await startAgent({ configDir: writeConfigDir({ 'config.yaml': config }) });
const sidecar = await startAgent({
  configDir: writeConfigDir({ 'config.yaml': config }),
  mode: 'sidecar',
  args: [
    '--labels',
    'app=client',
    '--outbound-port',
    String(outbound),
    '--inbound-port',
    String(await freePort()),
  ],
});
t.teardown(async () => {
  await Promise.all([router.stop(), sidecar.stop()]);
  await echo.close();
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  ms: number;
}

/** One request on the agent's warm keep-alive connection; fails after 5 s rather than hang. */
function send(agent: Agent, port: number, path: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = httpRequest({ host: '127.0.0.1', port, path, headers, agent, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
          ms: performance.now() - t0,
        }),
      );
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer in 5 s: ${path.slice(0, 40)}…`)));
    req.on('error', reject);
    req.end();
  });
}

for (const [mode, port] of [
  ['router', gwPort],
  ['sidecar', outbound],
] as const) {
  t.test(`${mode}: crafted 56 KiB inputs are answered fast and routed right`, async (t) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.teardown(() => agent.destroy());
    const host = 'svc.regex.test';
    // Warm the connection (and the worker's code paths) first.
    t.equal((await send(agent, port, '/warm', { host })).headers['x-route'], 'fallback');

    /** Best of three on the warm connection: a noisy machine gets slack, backtracking does not. */
    const timed = async (what: string, path: string, headers: Record<string, string> = {}) => {
      let best: Answer | undefined;
      for (let i = 0; i < 3; i++) {
        const r = await send(agent, port, path, { host, ...headers });
        if (!best || r.ms < best.ms) best = r;
      }
      const r = best as Answer;
      t.ok(r.ms < BUDGET_MS, `${mode} ${what}: ${r.ms.toFixed(1)} ms < ${BUDGET_MS} ms`);
      t.equal(r.status, 200, `${what}: status`);
      return r;
    };
    const routed = (r: Answer, want: string, what: string) => t.equal(r.headers['x-route'], want, what);

    for (const [i, p] of PATTERNS.entries()) {
      const { yes, no } = INPUTS[p];
      for (const s of no) {
        const tag = `${p} vs ${s.length} chars`;
        routed(await timed(`uri ${tag}`, `/u${i}/${s}`), 'fallback', `uri ${tag} falls through`);
        routed(await timed(`header ${tag}`, '/h', { [`x-re${i}`]: s }), 'fallback', `header ${tag}`);
        routed(await timed(`query ${tag}`, `/q?q${i}=${s}`), 'fallback', `query ${tag}`);
        const auth = await timed(`authority ${tag}`, '/a', { host: `${s}.r${i}.regex.test` });
        routed(auth, 'fallback', `authority ${tag}`);
        // The rewrite's search finds no match anywhere: the path goes up unchanged.
        if (!noneIn(s)) continue;
        const rw = await timed(`rewrite ${tag}`, `/rw${i}/${s}`);
        routed(rw, `rewrite${i}`, `rewrite ${tag}: the prefix route`);
        t.same(JSON.parse(rw.body), seen(`/rw${i}/${s}`), `rewrite ${tag}: path unchanged`);
      }
      const tag = `${p} vs ${yes.length} chars (match)`;
      routed(await timed(`uri ${tag}`, `/u${i}/${yes}`), `uri${i}`, `uri ${tag}`);
      routed(await timed(`header ${tag}`, '/h', { [`x-re${i}`]: yes }), `header${i}`, `header ${tag}`);
      routed(await timed(`query ${tag}`, `/q?q${i}=${yes}`), `query${i}`, `query ${tag}`);
      const auth = await timed(`authority ${tag}`, '/a', { host: `${yes}.r${i}.regex.test` });
      routed(auth, `authority${i}`, `authority ${tag}`);
    }

    // A rewrite that matches runs RE2's capture engine over the whole match: linear, O(input ×
    // pattern), but slow in JS: for (a+)+b about 0.1-0.5 ms a KiB, for (.*a){20} (a 100-instruction
    // program, ~40 threads alive per character) 2.5-5 ms a KiB once past the 2.5 KiB that re2js's
    // bit-state backtracker takes. A matching input is no bomb for a backtracking engine either,
    // so these check the rewrite's result at sizes that stay in budget on a busy machine.
    // \1 is the last repetition: all the a's for (a+)+b, one `a` for the other two.
    const K8 = 8 * 1024;
    const rewrites: [number, string, string][] = [
      [0, `${a(K8)}b`, `/done/${a(K8)}`],
      [1, `${a(K8)}c`, '/done/a'],
      [2, a(2 * 1024), '/done/a'],
    ];
    for (const [i, s, want] of rewrites) {
      const r = await timed(`rewrite ${PATTERNS[i]} vs ${s.length} chars (match)`, `/rw${i}/${s}`);
      routed(r, `rewrite${i}`, 'the rewrite route');
      t.same(JSON.parse(r.body), seen(want), `rewrite${i}: ${want.slice(0, 8)}…`);
    }
  });
}
