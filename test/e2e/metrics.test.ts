// End to end: the real pilot-agent with two workers; Istio's request metrics merged across the
// workers on the status port, the proxy's own on the stats port, and the access log in both formats.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

const v1 = await startUpstream('v1');
const gwPort = await freePort();
const config = `${gatewayYaml(gwPort)}
---
${serviceEntryYaml('reviews.default.svc.cluster.local', [{ port: v1.port, labels: { version: 'v1' } }])}
---
${serviceEntryYaml('empty.default.svc.cluster.local', [{ port: v1.port, labels: { version: 'v1' } }])}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: empty}
spec:
  host: empty
  subsets: [{name: none, labels: {version: v9}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: main}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /ok}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - match: [{uri: {prefix: /empty}}]
    route: [{destination: {host: empty, subset: none}}]
`;

const N_OK = 12;
const N_NR = 5;
const N_UH = 3;
const TOTAL = N_OK + N_NR + N_UH;

/** Pod name and labels the proxy reports about itself. */
const ENV = { POD_NAME: 'edge-gw-7d9f6b8c5d-x2x4k', ISTIO_META_WORKLOAD_NAME: '' };
const LABELS = ['--labels', 'istio=ingressgateway,app=edge-gw,version=1.0'];

async function traffic(): Promise<void> {
  // A new connection per request (agent: false), so both workers take a share.
  const all: Promise<{ status: number }>[] = [];
  for (let i = 0; i < N_OK; i++)
    all.push(request(gwPort, `/ok/${i}`, i % 2 ? { method: 'POST', body: 'hello' } : {}));
  for (let i = 0; i < N_NR; i++) all.push(request(gwPort, `/nothing/${i}`));
  for (let i = 0; i < N_UH; i++) all.push(request(gwPort, `/empty/${i}`));
  const codes = (await Promise.all(all)).map((r) => r.status);
  const count = (c: number) => codes.filter((x) => x === c).length;
  if (count(200) !== N_OK || count(404) !== N_NR || count(503) !== N_UH)
    throw new Error(`unexpected status codes: ${codes.join(',')}`);
}

/** `name{labels}` → value, for every sample line. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

function series(name: string, v: Record<string, string>): string {
  const labels = {
    reporter: 'source',
    source_workload: 'edge-gw',
    source_app: 'edge-gw',
    destination_workload: 'unknown',
    destination_version: 'unknown',
    destination_service: 'unknown',
    destination_service_name: 'unknown',
    destination_service_namespace: 'unknown',
    request_protocol: 'http',
    response_code: '200',
    response_flags: '-',
    connection_security_policy: 'unknown',
    ...v,
  };
  return `${name}{${Object.entries(labels)
    .map(([k, x]) => `${k}="${x}"`)
    .join(',')}}`;
}

const OK = {
  destination_version: 'v1',
  destination_service: 'reviews.default.svc.cluster.local',
  destination_service_name: 'reviews',
  destination_service_namespace: 'default',
};
const NR = { response_code: '404', response_flags: 'NR' };
const UH = {
  destination_version: 'none',
  destination_service: 'empty.default.svc.cluster.local',
  destination_service_name: 'empty',
  destination_service_namespace: 'default',
  response_code: '503',
  response_flags: 'UH',
};

async function waitFor<T>(what: string, fn: () => T | undefined, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

t.test('two workers: merged istio metrics on the status port, text access log', async (t) => {
  const dir = writeConfigDir({ 'config.yaml': config });
  const logFile = join(dir, '..', `access-${process.pid}-${Date.now()}.log`);
  writeFileSync(logFile, '');
  const agent = await startAgent({
    configDir: dir,
    concurrency: 2,
    args: [...LABELS, '--access-log', logFile],
    env: ENV,
  });
  t.teardown(() => agent.stop());
  await traffic();

  const status = await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`);
  t.equal(status.status, 200);
  t.match(status.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const merged = samples(await status.text());
  t.equal(merged.get(series('istio_requests_total', OK)), N_OK, '200s summed over both workers');
  t.equal(merged.get(series('istio_requests_total', NR)), N_NR, '404 NR');
  t.equal(merged.get(series('istio_requests_total', UH)), N_UH, '503 UH');
  const istioTotal = [...merged]
    .filter(([k]) => k.startsWith('istio_requests_total{'))
    .reduce((a, [, v]) => a + v, 0);
  t.equal(istioTotal, TOTAL, 'no other istio_requests_total series');
  t.equal(merged.get(series('istio_request_duration_milliseconds_count', OK)), N_OK);
  t.equal(
    merged.get(`${series('istio_request_duration_milliseconds_bucket', OK).slice(0, -1)},le="+Inf"}`),
    N_OK,
  );
  t.equal(merged.get(series('istio_request_bytes_count', NR)), N_NR);
  t.equal(merged.get(series('istio_request_bytes_sum', OK)), 5 * (N_OK / 2), 'request body bytes');
  t.ok((merged.get(series('istio_response_bytes_sum', OK)) ?? 0) > 0, 'response body bytes');
  t.equal(merged.get(series('istio_response_bytes_sum', NR)), 0);
  t.equal(merged.get('courier_config_reloads_total{result="success"}'), 1, 'agent metrics merged in');
  t.equal(merged.get('courier_config_reloads_total{result="rejected"}'), 0);
  t.equal(merged.get('courier_worker_restarts_total'), 0);
  t.ok(merged.has('courier_upstream_connections'), 'worker gauges');

  const metricsPath = samples(await (await fetch(`http://127.0.0.1:${agent.status}/metrics`)).text());
  t.equal(metricsPath.get(series('istio_requests_total', OK)), N_OK, '/metrics is the same merge');

  const proxy = samples(await (await fetch(`http://127.0.0.1:${agent.stats}/stats/prometheus`)).text());
  t.equal(proxy.get(series('istio_requests_total', OK)), N_OK, 'stats port: the proxy metrics');
  t.equal(proxy.get(series('istio_requests_total', UH)), N_UH);
  t.notOk(proxy.has('courier_config_reloads_total{result="success"}'), 'stats port: no agent metrics');

  const lines = await waitFor('access log lines', () => {
    const l = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
    return l.length >= TOTAL ? l : undefined;
  });
  t.equal(lines.length, TOTAL, 'one line per request');
  const ok = lines.filter((l) => / \/ok\//.test(l));
  t.equal(ok.length, N_OK);
  const uuid = '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}';
  const okLine = new RegExp(
    `^\\[\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z\\] "(GET /ok/\\d+ HTTP/1\\.1" 200 - via_upstream - "-" 0|POST /ok/\\d+ HTTP/1\\.1" 200 - via_upstream - "-" 5) ` +
      `\\d+ \\d+ \\d+ "127\\.0\\.0\\.1" "-" "${uuid}" "example\\.com" "127\\.0\\.0\\.1:${v1.port}" ` +
      `outbound\\|80\\|v1\\|reviews\\.default\\.svc\\.cluster\\.local - 127\\.0\\.0\\.1:${gwPort} 127\\.0\\.0\\.1:\\d+ - default\\.main\\.0$`,
  );
  for (const l of ok) t.match(l, okLine);
  const nr = lines.filter((l) => l.includes('"GET /nothing/'));
  t.equal(nr.length, N_NR);
  for (const l of nr)
    t.match(
      l,
      new RegExp(
        `^\\[\\S+\\] "GET /nothing/\\d+ HTTP/1\\.1" 404 NR route_not_found - "-" 0 0 \\d+ - "-" "-" "-" "example\\.com" "-" - - 127\\.0\\.0\\.1:${gwPort} 127\\.0\\.0\\.1:\\d+ - -$`,
      ),
    );
  const uh = lines.filter((l) => l.includes('"GET /empty/'));
  t.equal(uh.length, N_UH);
  for (const l of uh)
    t.match(
      l,
      /" 503 UH no_healthy_upstream - "-" 0 19 \d+ - "127\.0\.0\.1" "-" "[0-9a-f-]+" "example\.com" "-" outbound\|80\|none\|empty\.default\.svc\.cluster\.local - /,
    );
});

t.test('JSON access log on stdout, flushed on drain', async (t) => {
  const dir = writeConfigDir({ 'config.yaml': config });
  const agent = await startAgent({
    configDir: dir,
    concurrency: 2,
    args: [...LABELS, '--access-log', '-', '--access-log-format', 'json'],
    env: ENV,
  });
  t.teardown(() => agent.stop());
  await traffic();
  // Stop at once: lines still in a worker's buffer must come out on drain.
  t.equal(await agent.stop(), 0);
  await sleep(200);
  const json = agent
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(json.length, TOTAL, 'one JSON line per request');
  const keys = [
    'authority',
    'bytes_received',
    'bytes_sent',
    'connection_termination_details',
    'downstream_local_address',
    'downstream_remote_address',
    'duration',
    'method',
    'path',
    'protocol',
    'request_id',
    'requested_server_name',
    'response_code',
    'response_code_details',
    'response_flags',
    'route_name',
    'start_time',
    'upstream_cluster',
    'upstream_host',
    'upstream_local_address',
    'upstream_service_time',
    'upstream_transport_failure_reason',
    'user_agent',
    'x_forwarded_for',
  ];
  for (const o of json) t.same(Object.keys(o), keys);
  const ok = json.filter((o) => o.response_code === 200);
  t.equal(ok.length, N_OK);
  for (const o of ok) {
    t.equal(o.response_flags, '-');
    t.equal(o.upstream_cluster, 'outbound|80|v1|reviews.default.svc.cluster.local');
    t.equal(o.upstream_host, `127.0.0.1:${v1.port}`);
    t.equal(o.route_name, 'default.main.0');
    t.equal(typeof o.duration, 'number');
    t.equal(typeof o.upstream_service_time, 'string');
  }
  const nr = json.filter((o) => o.response_code === 404);
  t.equal(nr.length, N_NR);
  for (const o of nr) {
    t.equal(o.response_flags, 'NR');
    t.equal(o.upstream_cluster, null);
    t.equal(o.route_name, null);
  }
  t.equal(json.filter((o) => o.response_code === 503 && o.response_flags === 'UH').length, N_UH);
});

t.test('an access log path that cannot be opened is a clear start-up error', async (t) => {
  const dir = writeConfigDir({ 'config.yaml': config });
  const agent = await startAgent({
    configDir: dir,
    args: ['--access-log', join(dir, 'no-such-dir', 'access.log')],
    waitReady: false,
  });
  const code = await new Promise<number | null>((r) => agent.proc.once('exit', (c) => r(c)));
  t.equal(code, 1);
  t.match(agent.logs(), /--access-log .*no-such-dir\/access\.log: ENOENT/);
});

t.teardown(() => v1.close());
