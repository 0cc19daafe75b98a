// Istio's "Secure Gateways" task by one command: an ingress gateway terminating HTTPS for
// httpbin.example.com with a Secret made here (its own CA), plain HTTP redirected to HTTPS, and a
// small httpbin stand-in (/status/N, /headers) behind it.
//   node examples/secure-ingress/run.mjs
//   curl -sS --resolve httpbin.example.com:8443:127.0.0.1 --cacert <dir>/example.com.crt \
//        https://httpbin.example.com:8443/status/418          # 418, certificate verified
//   curl -sS -D - -o /dev/null -H 'host: httpbin.example.com' localhost:8080/headers   # 301 to https
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCertificates } from '../egress-tls-origination/stand-in.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const agentBin = join(here, '..', '..', 'dist', 'pilot-agent', 'main.js');

// httpbin's two answers the task uses.
const httpbin = createServer((req, res) => {
  const status = /^\/status\/(\d{3})$/.exec(req.url ?? '');
  if (status) {
    res.writeHead(Number(status[1]));
    return res.end();
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(`${JSON.stringify({ headers: req.headers }, null, 2)}\n`);
});
await new Promise((r) => httpbin.listen(19801, '127.0.0.1', r));

const pem = await makeCertificates('httpbin.example.com');
const dir = mkdtempSync(join(tmpdir(), 'courier-secure-ingress-'));
cpSync(join(here, 'secure-ingress.yaml'), join(dir, 'secure-ingress.yaml'));
const b64 = (s) => Buffer.from(s).toString('base64');
// As `kubectl create -n istio-system secret tls httpbin-credential --key=... --cert=...` makes it.
writeFileSync(
  join(dir, 'httpbin-credential.yaml'),
  `apiVersion: v1\nkind: Secret\nmetadata: {name: httpbin-credential, namespace: istio-system}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: ${b64(pem.cert)}\n  tls.key: ${b64(pem.key)}\n`,
);
const caFile = join(dir, 'example.com.crt');
writeFileSync(caFile, pem.ca);

const gateway = spawn(
  process.execPath,
  [
    agentBin,
    'proxy',
    'router',
    '--config-dir',
    dir,
    '--namespace',
    'istio-system',
    '--admin-port',
    '19810',
    '--status-port',
    '19811',
    '--health-port',
    '19812',
    '--stats-port',
    '19813',
    '--concurrency',
    '1',
    '--access-log',
    '-',
    ...process.argv.slice(2),
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
process.stdout.write(
  `secure ingress: curl -sS --resolve httpbin.example.com:8443:127.0.0.1 --cacert ${caFile} https://httpbin.example.com:8443/status/418\n` +
    "  and plain HTTP is redirected: curl -sS -D - -o /dev/null -H 'host: httpbin.example.com' localhost:8080/headers\n",
);
const stop = () => {
  gateway.kill('SIGTERM');
  httpbin.close();
  const done = () => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  if (gateway.exitCode !== null) done();
  else gateway.once('exit', done);
  setTimeout(done, 6000).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
