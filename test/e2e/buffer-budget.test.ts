// The per-worker budget for buffered request bodies: within it a POST body is buffered and can be
// replayed on retry; beyond it the body streams and the request is not retried.

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

// 503 on the first attempt of each request id, then echo the body.
const flaky = await startUpstream('flaky', (req, res, body, u) => {
  const n = u.requests.filter((r) => r.headers['x-request-id'] === req.headers['x-request-id']).length;
  if (n === 1) {
    res.writeHead(503, { 'content-length': '0' });
    res.end();
    return true;
  }
  res.writeHead(200, { 'content-length': String(body.length) });
  res.end(body);
  return true;
});
t.teardown(() => flaky.close());

async function agentWith(env: Record<string, string>) {
  const port = await freePort();
  const config = `${gatewayYaml(port)}
---
${serviceEntryYaml('flaky.default.svc.cluster.local', [{ port: flaky.port }])}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: flaky}}]
`;
  const agent = await startAgent({
    configDir: writeConfigDir({ 'c.yaml': config }),
    env: { ...process.env, ...env },
  });
  return { agent, port };
}

const body = 'x'.repeat(1000);

t.test('within the budget: the body is buffered and the retry replays it', async (t) => {
  const { agent, port } = await agentWith({});
  t.teardown(() => agent.stop());
  const r = await request(port, '/', { method: 'POST', body });
  t.equal(r.status, 200);
  t.equal(r.body, body);
});

t.test('beyond the budget: the body streams and the upstream 503 is not retried', async (t) => {
  const { agent, port } = await agentWith({ COURIER_MAX_BUFFERED_BYTES: '100' });
  t.teardown(() => agent.stop());
  const r = await request(port, '/', { method: 'POST', body });
  t.equal(r.status, 503);
});
