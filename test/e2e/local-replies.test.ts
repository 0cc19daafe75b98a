// Local replies for upstream failures in the words of the Envoy that Istio 1.24-1.29 ships: the
// body, the response flags (`URX,UF` after retries), the response code details and the upstream
// transport failure reason in the access log, and the flags on istio_requests_total. Real
// pilot-agent, a real refused port and a real upstream that resets.

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

const refusedPort = await freePort();
const resets = await startUpstream('resets', (_req, res) => {
  res.socket?.destroy();
  return true;
});
const gw = await freePort();
const config = `${gatewayYaml(gw)}
---
${serviceEntryYaml('refused.default.svc.cluster.local', [{ port: refusedPort }])}
---
${serviceEntryYaml('resets.default.svc.cluster.local', [{ port: resets.port }])}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - match: [{uri: {prefix: /default-retries}}]
    route: [{destination: {host: refused}}]
  - match: [{uri: {prefix: /no-retries}}]
    retries: {attempts: 0}
    route: [{destination: {host: refused}}]
  - match: [{uri: {prefix: /reset-retried}}]
    retries: {attempts: 1, retryOn: reset}
    route: [{destination: {host: resets}}]
`;
const dir = writeConfigDir({ 'c.yaml': config });
const logFile = join(dir, '..', `local-replies-${process.pid}-${Date.now()}.log`);
writeFileSync(logFile, '');
const agent = await startAgent({ configDir: dir, args: ['--access-log', logFile] });
t.teardown(async () => {
  await agent.stop();
  await resets.close();
});

const HEAD = 'upstream connect error or disconnect/reset before headers. ';
const REFUSED =
  'remote connection failure, transport failure reason: delayed connect error: Connection refused';

async function logLine(path: string): Promise<string> {
  for (let i = 0; i < 200; i++) {
    const line = readFileSync(logFile, 'utf8')
      .split('\n')
      .find((l) => l.includes(`"GET ${path} `));
    if (line) return line;
    await sleep(25);
  }
  throw new Error(`no access log line for ${path}`);
}

t.test('a refused connection after the default retries', async (t) => {
  const r = await request(gw, '/default-retries');
  t.equal(r.status, 503);
  t.equal(r.body, `${HEAD}retried and the latest reset reason: ${REFUSED}`);
  const line = await logLine('/default-retries');
  t.match(
    line,
    '" 503 URX,UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" ',
    'flags URX,UF, details and transport failure reason as Envoy logs them',
  );
});

t.test('a refused connection with retries off', async (t) => {
  const r = await request(gw, '/no-retries');
  t.equal(r.status, 503);
  t.equal(r.body, `${HEAD}reset reason: ${REFUSED}`);
  t.match(
    await logLine('/no-retries'),
    '" 503 UF upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused} - "delayed_connect_error:_Connection_refused" ',
  );
});

t.test('a reset before headers, retried once', async (t) => {
  const r = await request(gw, '/reset-retried');
  t.equal(r.status, 503);
  t.equal(r.body, `${HEAD}retried and the latest reset reason: connection termination`);
  t.match(
    await logLine('/reset-retried'),
    '" 503 URX,UC upstream_reset_before_response_started{connection_termination} - "-" ',
  );
});

t.test('the flags reach istio_requests_total', async (t) => {
  const m = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
  t.match(m, /istio_requests_total\{[^}]*response_code="503"[^}]*response_flags="URX,UF"[^}]*\} 1/);
  t.match(m, /istio_requests_total\{[^}]*response_code="503"[^}]*response_flags="UF"[^}]*\} 1/);
});
