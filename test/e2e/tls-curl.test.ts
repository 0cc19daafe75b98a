// The gateway's TLS as curl sees it (the client Istio's tasks use): `--resolve` for the SNI,
// `--cacert` to verify the gateway's certificate, `--cert/--key` for MUTUAL. A refusal is a curl
// TLS or receive error (35, 56) with no HTTP status, never an answer.

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { makeCa, tlsSecretYaml } from '../helpers/certs.js';
import { freePort, serviceEntryYaml, startAgent, startUpstream, writeConfigDir } from '../helpers/procs.js';
import { requireProgram } from '../helpers/system.js';

const curl = requireProgram(t, 'curl', { apt: 'curl' });
if (curl) {
  const ca = await makeCa('curl-ca');
  const server = await ca.issue({ cn: 'httpbin.example.com', dns: ['httpbin.example.com'] });
  const client = await ca.issue({ cn: 'client.example.com', dns: ['client.example.com'], client: true });
  const up = await startUpstream('httpbin', (req, res) => {
    const m = /^\/status\/(\d+)$/.exec(req.url ?? '');
    if (!m) return false;
    res.writeHead(Number(m[1]));
    res.end();
    return true;
  });
  t.teardown(() => up.close());
  const [simple, mutual] = [await freePort(), await freePort()];
  const HOST = 'httpbin.default.svc.cluster.local';
  const dir = writeConfigDir({
    'secret.yaml': [
      tlsSecretYaml('httpbin-credential', { 'tls.crt': server.cert, 'tls.key': server.key }),
      tlsSecretYaml('httpbin-mutual', { 'tls.crt': server.cert, 'tls.key': server.key, 'ca.crt': ca.cert }),
    ].join('---\n'),
    'se.yaml': serviceEntryYaml(HOST, [{ port: up.port }]),
    'gw.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${simple}, name: https, protocol: HTTPS}
    hosts: [httpbin.example.com]
    tls: {mode: SIMPLE, credentialName: httpbin-credential}
  - port: {number: ${mutual}, name: https-mutual, protocol: HTTPS}
    hosts: [httpbin.example.com]
    tls: {mode: MUTUAL, credentialName: httpbin-mutual}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: ${HOST}}}]}]
`,
  });
  for (const [n, v] of Object.entries({
    'ca.crt': ca.cert,
    'client.crt': client.cert,
    'client.key': client.key,
  }))
    writeFileSync(join(dir, n), v);
  const agent = await startAgent({ configDir: dir });
  t.teardown(() => agent.stop());

  // Asynchronous: the upstream runs in this process and must keep answering meanwhile.
  const run = (port: number, host: string, extra: string[] = []) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn(
        curl,
        [
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code} %{ssl_verify_result}',
          '--max-time',
          '5',
          '--resolve',
          `${host}:${port}:127.0.0.1`,
          '--cacert',
          join(dir, 'ca.crt'),
          ...extra,
          `https://${host}:${port}/status/418`,
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => {
        out += d;
      });
      p.stderr.on('data', (d) => {
        err += d;
      });
      p.on('close', (code) => resolve({ code, out, err }));
    });

  t.test('SIMPLE: curl verifies the gateway certificate and gets the answer', async (t) => {
    const r = await run(simple, 'httpbin.example.com');
    t.equal(r.code, 0, r.err + agent.logs());
    t.equal(r.out, '418 0', 'status 418, certificate verified');
  });

  t.test('an SNI no server names: curl gets a TLS error, no answer', async (t) => {
    const r = await run(simple, 'other.example.com', ['-k']);
    t.ok(r.code === 35 || r.code === 56, `curl exit ${r.code}: ${r.err}`);
    t.match(r.out, /^000/);
  });

  t.test('MUTUAL: refused without a client certificate, served with one', async (t) => {
    const none = await run(mutual, 'httpbin.example.com');
    t.ok(none.code === 35 || none.code === 56, `curl exit ${none.code}: ${none.err}`);
    t.match(none.out, /^000/);
    const ok = await run(mutual, 'httpbin.example.com', [
      '--cert',
      join(dir, 'client.crt'),
      '--key',
      join(dir, 'client.key'),
    ]);
    t.equal(ok.code, 0, ok.err);
    t.equal(ok.out, '418 0');
  });
}
