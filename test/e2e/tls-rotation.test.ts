// Certificate rotation without restarts, through the real pilot-agent: a Secret document, a
// mounted-Secret directory under --credentials-dir and a file path are each replaced while a
// keep-alive connection is open. New connections get the new certificate; the open one keeps
// working on the old. Broken replacement material is reported (log, /certs, a gauge) and the
// last good certificate keeps serving. `courier proxy-config secrets` lists what is in use, and a
// gauge gives the seconds until the first certificate expires.

import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { makeCa, tlsSecretYaml, writeFiles } from '../helpers/certs.js';
import {
  COURIER,
  freePort,
  ROOT,
  serviceEntryYaml,
  sleep,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';
import { tlsRequest } from '../helpers/tls-client.js';

const caA = await makeCa('ca-a');
const caC = await makeCa('ca-c');
const aOld = await caA.issue({ cn: 'a.example.com', dns: ['a.example.com'], notAfterDays: 20 });
const aNew = await caC.issue({ cn: 'a.example.com', dns: ['a.example.com'] });
const dOld = await caA.issue({ cn: 'd.example.com', dns: ['d.example.com'] });
const dNew = await caC.issue({ cn: 'd.example.com', dns: ['d.example.com'] });
const fOld = await caA.issue({ cn: 'f.example.com', dns: ['f.example.com'] });
const fNew = await caC.issue({ cn: 'f.example.com', dns: ['f.example.com'] });
const up = await startUpstream('echo');
t.teardown(() => up.close());

const HOST = 'echo.default.svc.cluster.local';
const [secretPort, dirPort, filePort] = [await freePort(), await freePort(), await freePort()];
const server = (port: number, name: string, host: string, tls: string) =>
  `  - port: {number: ${port}, name: ${name}, protocol: HTTPS}\n    hosts: [${host}]\n    tls: ${tls}\n`;
const dir = writeConfigDir({
  'gw.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
${server(secretPort, 'https-secret', 'a.example.com', '{mode: SIMPLE, credentialName: a-cred}')}${server(dirPort, 'https-dir', 'd.example.com', '{mode: SIMPLE, credentialName: d-cred}')}${server(filePort, 'https-file', 'f.example.com', '{mode: SIMPLE, serverCertificate: tls/f.crt, privateKey: tls/f.key}')}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: ${HOST}}}]
`,
  'se.yaml': serviceEntryYaml(HOST, [{ port: up.port }]),
  'secret.yaml': tlsSecretYaml('a-cred', { 'tls.crt': aOld.cert, 'tls.key': aOld.key }),
});
writeFiles(join(dir, 'tls'), { 'f.crt': fOld.cert, 'f.key': fOld.key });
const creds = join(dir, '..', `${dir.split('/').pop()}-creds`);
mkdirSync(creds);
writeFiles(join(creds, 'd-cred'), { 'tls.crt': dOld.cert, 'tls.key': dOld.key });

const agent = await startAgent({
  configDir: dir,
  args: ['--namespace', 'istio-system', '--credentials-dir', creds],
});
t.teardown(() => agent.stop());

const adminGet = async <T>(path: string): Promise<T> =>
  (await (await fetch(`http://127.0.0.1:${agent.admin}${path}`)).json()) as T;
const version = async () => (await adminGet<{ version: string }>('/config_dump')).version;
async function nextVersion(before: string): Promise<string> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const v = await version();
    if (v !== before) {
      await agent.waitReady();
      return v;
    }
    if (Date.now() > deadline) throw new Error(`config version still ${before}:\n${agent.logs()}`);
    await sleep(100);
  }
}
const metrics = async () => (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();

/** A keep-alive client: one socket for every request, and the certificate it was opened with. */
function keepAlive(port: number, servername: string, ca: string) {
  const ag = new https.Agent({ keepAlive: true, maxSockets: 1, ca, servername });
  const get = () =>
    new Promise<{ status: number; reused: boolean; cn: string }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port, path: '/', agent: ag, headers: { host: servername }, servername },
        (r) => {
          const cn = (r.socket as TLSSocket).getPeerCertificate().subject.CN as string;
          r.resume();
          r.on('end', () => resolve({ status: r.statusCode ?? 0, reused: req.reusedSocket, cn }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  return { get, close: () => ag.destroy() };
}

t.test('a Secret replaced: new connections get the new certificate, an open one keeps working', async (t) => {
  const ka = keepAlive(secretPort, 'a.example.com', caA.cert);
  t.teardown(() => ka.close());
  const first = await ka.get();
  t.same([first.status, first.cn, first.reused], [200, 'a.example.com', false]);
  const before = await version();
  writeFileSync(
    join(dir, 'secret.yaml'),
    tlsSecretYaml('a-cred', { 'tls.crt': aNew.cert, 'tls.key': aNew.key }),
  );
  await nextVersion(before);
  const fresh = await tlsRequest({ port: secretPort, servername: 'a.example.com', ca: caC.cert });
  t.equal(fresh.status, 200, 'new trust (CA-C): served');
  const oldTrust = await tlsRequest({ port: secretPort, servername: 'a.example.com', ca: caA.cert });
  t.equal(oldTrust.status, undefined, 'old trust (CA-A): the new certificate does not verify');
  const again = await ka.get();
  t.same([again.status, again.reused], [200, true], 'the keep-alive connection opened before still serves');
});

t.test('broken replacement material: reported, and the last good certificate keeps serving', async (t) => {
  const before = await version();
  // aNew's certificate with another key: they do not match.
  writeFileSync(
    join(dir, 'secret.yaml'),
    tlsSecretYaml('a-cred', { 'tls.crt': aNew.cert, 'tls.key': dOld.key }),
  );
  const deadline = Date.now() + 10_000;
  while (!/still serving the last good material/.test(agent.logs())) {
    if (Date.now() > deadline) throw new Error(`not reported:\n${agent.logs()}`);
    await sleep(100);
  }
  t.match(
    agent.logs(),
    /TLS credential kubernetes:\/\/istio-system\/a-cred: certificate and key are not usable: .*; still serving the last good material/,
  );
  t.equal(await version(), before, 'the config version is unchanged: nothing new to serve');
  const r = await tlsRequest({ port: secretPort, servername: 'a.example.com', ca: caC.cert });
  t.equal(r.status, 200, 'the last good certificate (CA-C) serves');
  const certs = await adminGet<{ certificates: { source: string; state: string; error?: string }[] }>(
    '/certs',
  );
  const a = certs.certificates.find((c) => c.source === 'kubernetes://istio-system/a-cred');
  t.equal(a?.state, 'STALE');
  t.match(a?.error, /certificate and key are not usable/);
  t.match(await metrics(), /courier_tls_credentials\{state="STALE"\} 1/);
});

t.test('a mounted Secret directory and a file path rotate the same way', async (t) => {
  const d0 = await tlsRequest({ port: dirPort, servername: 'd.example.com', ca: caA.cert });
  t.same([d0.status, d0.peerCN], [200, 'd.example.com'], '--credentials-dir/<name>/tls.crt');
  let before = await version();
  // As the kubelet updates a Secret volume: new files, swapped in by a rename.
  writeFiles(join(creds, 'd-cred.new'), { 'tls.crt': dNew.cert, 'tls.key': dNew.key });
  renameSync(join(creds, 'd-cred'), join(creds, 'd-cred.old'));
  renameSync(join(creds, 'd-cred.new'), join(creds, 'd-cred'));
  before = await nextVersion(before);
  t.equal((await tlsRequest({ port: dirPort, servername: 'd.example.com', ca: caC.cert })).status, 200);

  t.equal((await tlsRequest({ port: filePort, servername: 'f.example.com', ca: caA.cert })).status, 200);
  writeFiles(join(dir, 'tls'), { 'f.crt': fNew.cert, 'f.key': fNew.key });
  await nextVersion(before);
  t.equal((await tlsRequest({ port: filePort, servername: 'f.example.com', ca: caC.cert })).status, 200);
  t.equal(
    (await tlsRequest({ port: filePort, servername: 'f.example.com', ca: caA.cert })).status,
    undefined,
  );
});

t.test('proxy-config secrets lists every certificate in use; the expiry gauge', async (t) => {
  const r = spawnSync(
    process.execPath,
    [COURIER, 'proxy-config', 'secrets', '--admin', `http://127.0.0.1:${agent.admin}`],
    { encoding: 'utf8', cwd: ROOT },
  );
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(
    lines[0],
    /^RESOURCE NAME\s+TYPE\s+STATUS\s+SERIAL NUMBER\s+NOT AFTER\s+NOT BEFORE\s+SUBJECT\s+SANS$/,
  );
  t.ok(
    lines.some(
      (l) =>
        l.startsWith('kubernetes://istio-system/d-cred') &&
        l.includes(dNew.serial) &&
        l.includes('DNS:d.example.com'),
    ),
    r.stdout,
  );
  t.ok(
    lines.some((l) => l.startsWith('file:tls/f.crt~tls/f.key') && l.includes(fNew.serial)),
    r.stdout,
  );
  t.ok(lines.some((l) => l.includes('kubernetes://istio-system/a-cred') && /STALE/.test(l)));
  const json = spawnSync(
    process.execPath,
    [COURIER, 'proxy-config', 'secrets', '--admin', `http://127.0.0.1:${agent.admin}`, '-o', 'json'],
    { encoding: 'utf8', cwd: ROOT },
  );
  const parsed = JSON.parse(json.stdout) as { certificates: { notAfter: string }[] }[];
  t.equal(parsed.length, 3);
  t.notMatch(json.stdout, /PRIVATE KEY/, 'keys are never shown');
  const m = /courier_server_seconds_until_first_cert_expiring (\d+)/.exec(await metrics());
  const seconds = Number(m?.[1]);
  // In use now: aNew (30 days, kept as last good), dNew and fNew (30 days); the 20-day one is gone.
  t.ok(seconds > 29 * 86400 && seconds <= 30 * 86400, `seconds until the first expiry: ${seconds}`);
});
