// A gateway TCP route to a destination whose DestinationRule originates TLS, through the real
// pilot-agent: the bytes reach a TLS echo server (SNI = the service host, certificate verified
// against the DR's CA, the client certificate presented under MUTUAL); an upstream certificate
// from another CA closes the client's connection with no bytes (UF,URX and the TLS reason in the
// access log); a credential that is missing refuses the connection without an attempt (UH).

import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createServer, type TLSSocket } from 'node:tls';
import t from 'tap';
import { makeCa } from '../helpers/certs.js';
import { freePort, sleep, startAgent, writeConfigDir } from '../helpers/procs.js';

const ca = await makeCa('tcp-origination-ca');
const other = await makeCa('other-ca');
const good = await ca.issue({ cn: 'db.example.com', dns: ['db.example.com'] });
const bad = await other.issue({ cn: 'db.example.com', dns: ['db.example.com'] });
const clientCert = await ca.issue({ cn: 'gateway', client: true });

interface Seen {
  sni: string | false;
  peerCN: string | undefined;
}

async function tlsEcho(cert: { cert: string; key: string }, requireClient: boolean) {
  const seen: Seen[] = [];
  const server = createServer(
    {
      cert: cert.cert,
      key: cert.key,
      ca: ca.cert,
      requestCert: requireClient,
      rejectUnauthorized: requireClient,
      allowHalfOpen: true,
    },
    (sock: TLSSocket) => {
      seen.push({
        sni: sock.servername ?? false,
        peerCN: sock.getPeerCertificate()?.subject?.CN as string | undefined,
      });
      sock.on('data', (d: Buffer) => sock.write(`tls ${d}`));
      sock.on('end', () => sock.end());
      sock.on('error', () => {});
    },
  );
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as { port: number }).port, seen, close: () => server.close() };
}

const simple = await tlsEcho(good, false);
const mutual = await tlsEcho(good, true);
const wrongCa = await tlsEcho(bad, false);
t.teardown(() => {
  simple.close();
  mutual.close();
  wrongCa.close();
});

const [pSimple, pMutual, pWrong, pMissing] = [
  await freePort(),
  await freePort(),
  await freePort(),
  await freePort(),
];
const route = (name: string, port: number, host: string) => `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${name}}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp: [{match: [{port: ${port}}], route: [{destination: {host: ${host}, port: {number: 5432}}}]}]
`;
const service = (name: string, host: string, port: number, tls: string) => `---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}}
spec:
  hosts: [${host}]
  location: MESH_EXTERNAL
  ports: [{number: 5432, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: ${port}}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}}
spec:
  host: ${host}
  trafficPolicy: {tls: ${tls}}
`;
const dir = writeConfigDir({
  'gw.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
${[pSimple, pMutual, pWrong, pMissing].map((p) => `  - {port: {number: ${p}, name: tcp-${p}, protocol: TCP}, hosts: ["*"]}`).join('\n')}
${route('simple', pSimple, 'db.example.com')}${route('mutual', pMutual, 'mdb.example.com')}${route('wrong', pWrong, 'wdb.example.com')}${route('missing', pMissing, 'xdb.example.com')}${service('simple', 'db.example.com', simple.port, '{mode: SIMPLE, caCertificates: ca.pem}')}${service('mutual', 'mdb.example.com', mutual.port, '{mode: MUTUAL, caCertificates: ca.pem, clientCertificate: client.pem, privateKey: client.key, sni: db.example.com}')}${service('wrong', 'wdb.example.com', wrongCa.port, '{mode: SIMPLE, caCertificates: ca.pem, sni: db.example.com}')}${service('missing', 'xdb.example.com', simple.port, '{mode: SIMPLE, credentialName: no-such-secret}')}`,
});
writeFileSync(join(dir, 'ca.pem'), ca.cert);
writeFileSync(join(dir, 'client.pem'), clientCert.cert);
writeFileSync(join(dir, 'client.key'), clientCert.key);
const log = join(dir, 'access.log');
const agent = await startAgent({ configDir: dir, args: ['--access-log', log] });
t.teardown(() => agent.stop());

function talk(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    s.on('data', (d) => {
      got += d;
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    s.on('connect', () => s.end(text));
    setTimeout(() => s.destroy(), 5000);
  });
}

async function logLine(match: RegExp): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const line = readFileSync(log, 'utf8')
      .split('\n')
      .find((l) => match.test(l));
    if (line) return line;
    await sleep(100);
  }
  return '';
}

t.test(
  'SIMPLE: the bytes reach the TLS upstream, SNI the service host, its certificate verified',
  async (t) => {
    t.equal(await talk(pSimple, 'hello\n'), 'tls hello\n', agent.logs());
    t.equal(simple.seen.at(-1)?.sni, 'db.example.com');
  },
);

t.test('MUTUAL: the client certificate is presented, with the explicit sni', async (t) => {
  t.equal(await talk(pMutual, 'hi\n'), 'tls hi\n');
  t.same(mutual.seen.at(-1), { sni: 'db.example.com', peerCN: 'gateway' });
});

t.test(
  'an upstream certificate from another CA: closed with no bytes, UF,URX and the TLS reason',
  async (t) => {
    t.equal(await talk(pWrong, 'x\n'), '');
    const line = await logLine(/outbound\|5432\|\|wdb\.example\.com/);
    t.match(line, /"- - -" 0 UF,URX /);
    t.match(line, /CERTIFICATE_VERIFY_FAILED/);
  },
);

t.test('a credential that is missing: refused without an attempt (UH)', async (t) => {
  const before = simple.seen.length;
  t.equal(await talk(pMissing, 'x\n'), '');
  const line = await logLine(/outbound\|5432\|\|xdb\.example\.com/);
  t.match(line, /"- - -" 0 UH /);
  t.equal(simple.seen.length, before, 'no connection reached the upstream');
});
