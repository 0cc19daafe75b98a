// TLS origination (DestinationRule `tls` SIMPLE / MUTUAL) end to end: a sidecar and an egress
// gateway (real pilot-agent processes) in front of node:https upstreams with certificates made
// at test time. The application speaks plain HTTP; the proxy opens TLS to the upstream, with the
// request's host as SNI, verifies the certificate as Envoy does, and answers Envoy's 503 when the
// handshake or the verification fails.

import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { makeCa, tlsSecretYaml } from '../helpers/certs.js';
import {
  freePort,
  gatewayYaml,
  request,
  sleep,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const caA = await makeCa('ca-a');
const caB = await makeCa('ca-b');
const client = await caA.issue({
  cn: 'client',
  dns: ['client.example.com'],
  uri: ['spiffe://cluster.local/ns/default/sa/client'],
  client: true,
});

interface Seen {
  servername: string | false | null;
  url: string;
  peer: string | string[];
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** An HTTPS upstream that records the SNI, the client certificate and its TLS connections. */
async function tlsUpstream(name: string, opts: https.ServerOptions) {
  const seen: Seen[] = [];
  let connections = 0;
  const server = https.createServer(opts, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const sock = req.socket as TLSSocket;
      const s: Seen = {
        servername: sock.servername,
        url: req.url ?? '',
        peer: sock.getPeerCertificate()?.subject?.CN ?? '-',
        body: Buffer.concat(chunks).toString(),
        headers: req.headers,
      };
      seen.push(s);
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
      res.end(JSON.stringify({ name, ...s, alpn: sock.alpnProtocol }));
    });
  });
  server.on('secureConnection', () => connections++);
  server.on('upgrade', (req, sock) => {
    sock.write(
      `HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: Upgrade\r\n` +
        `x-sni: ${(req.socket as TLSSocket).servername}\r\n\r\n`,
    );
    sock.on('data', (d: Buffer) => sock.write(Buffer.from(d.toString().toUpperCase())));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    port,
    seen,
    connections: () => connections,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const certA = await caA.issue({ cn: 'a.example.com', dns: ['a.example.com'] });
const certB = await caA.issue({ cn: 'b.example.com', dns: ['b.example.com'] });
const certEvil = await caB.issue({ cn: 'evil', dns: ['evil.example.com', 'insecure.example.com'] });
const certM = await caA.issue({
  cn: 'mtls',
  dns: ['mtls.example.com', 'mtls-simple.example.com', 'cred.example.com', 'nocred.example.com'],
});
const upA = await tlsUpstream('a', { key: certA.key, cert: certA.cert });
const upB = await tlsUpstream('b', { key: certB.key, cert: certB.cert });
const upEvil = await tlsUpstream('evil', { key: certEvil.key, cert: certEvil.cert });
const upM = await tlsUpstream('mtls', {
  key: certM.key,
  cert: certM.cert,
  ca: caA.cert,
  requestCert: true,
  rejectUnauthorized: true,
});
const plain = await startUpstream('plain');

/** A ServiceEntry whose port 80 goes to `target` (the TLS port), and a DR with `tls` on port 80. */
function originated(host: string, target: number, tls: string): string {
  const name = host.split('.')[0];
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}}
spec:
  hosts: [${host}]
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: ${target}}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}}
spec:
  host: ${host}
  trafficPolicy:
    portLevelSettings:
    - port: {number: 80}
      tls: ${tls}
`;
}

const simple = '{mode: SIMPLE, caCertificates: certs/ca-a.crt}';
const sidecarConfig = [
  originated('a.example.com', upA.port, simple),
  originated('evil.example.com', upEvil.port, simple),
  originated('mismatch.example.com', upB.port, simple),
  originated(
    'sni.example.com',
    upB.port,
    '{mode: SIMPLE, caCertificates: certs/ca-a.crt, sni: b.example.com}',
  ),
  originated(
    'san.example.com',
    upB.port,
    '{mode: SIMPLE, caCertificates: certs/ca-a.crt, subjectAltNames: [b.example.com]}',
  ),
  originated(
    'sanbad.example.com',
    upB.port,
    '{mode: SIMPLE, caCertificates: certs/ca-a.crt, subjectAltNames: [c.example.com]}',
  ),
  originated('insecure.example.com', upEvil.port, '{mode: SIMPLE, insecureSkipVerify: true}'),
  originated('plain.example.com', plain.port, simple),
  originated(
    'mtls.example.com',
    upM.port,
    '{mode: MUTUAL, clientCertificate: certs/client.crt, privateKey: certs/client.key, caCertificates: certs/ca-a.crt}',
  ),
  originated('mtls-simple.example.com', upM.port, simple),
].join('---\n');

// Istio's mutual task at a sidecar: resolution NONE (the connection goes where the request's
// authority says), MUTUAL from a credentialName Secret, an explicit sni.
const passthroughConfig = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: nginx}
spec:
  hosts: [localhost]
  ports: [{number: ${upM.port}, name: http, protocol: HTTP}]
  location: MESH_EXTERNAL
  resolution: NONE
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: originate-mtls-for-nginx}
spec:
  host: localhost
  trafficPolicy:
    portLevelSettings:
    - port: {number: ${upM.port}}
      tls: {mode: MUTUAL, credentialName: client-credential, sni: mtls.example.com}
---
${tlsSecretYaml('client-credential', { 'tls.crt': client.cert, 'tls.key': client.key, 'ca.crt': caA.cert })}`;

const dir = writeConfigDir({ 'tls.yaml': sidecarConfig, 'passthrough.yaml': passthroughConfig });
const certs = join(dir, 'certs');
mkdirSync(certs);
writeFileSync(join(certs, 'ca-a.crt'), caA.cert);
writeFileSync(join(certs, 'client.crt'), client.cert);
writeFileSync(join(certs, 'client.key'), client.key);
const accessLog = join(dir, 'access.log');
const outbound = await freePort();
const side = await startAgent({
  configDir: dir,
  mode: 'sidecar',
  args: [
    '--labels',
    'app=sleep',
    '--outbound-port',
    String(outbound),
    '--inbound-port',
    String(await freePort()),
    '--access-log',
    accessLog,
  ],
});

// The egress gateway: credentialName Secrets (documents without a namespace are in the proxy's,
// istio-system; the bare credentialName is looked up there) for MUTUAL.
const gwPort = await freePort();
const gwConfig = `${gatewayYaml(gwPort)}
---
${tlsSecretYaml('client-credential', { 'tls.crt': client.cert, 'tls.key': client.key, 'ca.crt': caA.cert })}
---
${originated('cred.example.com', upM.port, '{mode: MUTUAL, credentialName: client-credential}')}
---
${originated('nocred.example.com', upM.port, '{mode: MUTUAL, credentialName: missing-credential}')}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: egress}
spec:
  hosts: [cred.example.com, nocred.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: cred.example.com, port: {number: 80}}}]
    match: [{authority: {exact: cred.example.com}}]
  - route: [{destination: {host: nocred.example.com, port: {number: 80}}}]
`;
const gwDir = writeConfigDir({ 'egress.yaml': gwConfig });
const gateway = await startAgent({
  configDir: gwDir,
  args: ['--labels', 'istio=ingressgateway', '--namespace', 'istio-system'],
});

t.teardown(async () => {
  await side.stop();
  await gateway.stop();
  await Promise.all([upA.close(), upB.close(), upEvil.close(), upM.close(), plain.close()]);
});

const get = (host: string, path = '/') => request(outbound, path, { host });
const FAILED = 'upstream connect error or disconnect/reset before headers.';

/** The access-log line of a request (by path), once written. */
async function logLine(path: string): Promise<string> {
  for (let i = 0; i < 50; i++) {
    const line = readFileSync(accessLog, 'utf8')
      .split('\n')
      .find((l) => l.includes(` ${path} `));
    if (line) return line;
    await sleep(40);
  }
  return '';
}

t.test('SIMPLE with the CA file: 200 over TLS, SNI = the request host, ALPN http/1.1', async (t) => {
  const r = await get('a.example.com', '/politics');
  t.equal(r.status, 200, r.body);
  const b = JSON.parse(r.body);
  t.equal(b.name, 'a');
  t.equal(b.servername, 'a.example.com', 'auto SNI from the Host header');
  t.equal(b.url, '/politics');
  t.equal(b.alpn, 'http/1.1');
  t.equal(b.headers.host, 'a.example.com', 'the Host is what the application sent');
  const line = await logLine('/politics');
  t.match(line, /" 200 - via_upstream /);
  t.match(line, /outbound\|80\|\|a\.example\.com/);
});

t.test('the TLS connection is kept alive and reused', async (t) => {
  await get('a.example.com', '/warm');
  const before = upA.connections();
  for (let i = 0; i < 3; i++) t.equal((await get('a.example.com', `/reuse-${i}`)).status, 200);
  t.equal(upA.connections(), before, 'no new TLS connection for sequential requests');
});

t.test('a certificate from another CA: 503 UF, CERTIFICATE_VERIFY_FAILED', async (t) => {
  const r = await get('evil.example.com', '/evil');
  t.equal(r.status, 503);
  t.ok(r.body.startsWith(FAILED), r.body);
  t.match(
    r.body,
    'reset reason: remote connection failure, transport failure reason: TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end',
  );
  t.notMatch(r.body, 'verify SAN list', 'the chain failed, not the name');
  t.match(await logLine('/evil'), /" 503 (URX,UF|UF) /);
  t.equal(upEvil.seen.length, 0, 'nothing reached the upstream');
});

t.test('a certificate for another host (b for Host a): 503, verify SAN list', async (t) => {
  const r = await get('mismatch.example.com', '/mismatch');
  t.equal(r.status, 503);
  t.match(
    r.body,
    'TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify cert failed: verify SAN list:TLS_error_end',
  );
  t.match(await logLine('/mismatch'), /" 503 (URX,UF|UF) /);
});

t.test('an explicit sni: sent as SNI, the chain checked only', async (t) => {
  const r = await get('sni.example.com', '/sni');
  t.equal(r.status, 200, r.body);
  const b = JSON.parse(r.body);
  t.equal(b.servername, 'b.example.com');
  t.equal(b.headers.host, 'sni.example.com');
});

t.test('subjectAltNames: an exact match passes, another name fails', async (t) => {
  const ok = await get('san.example.com', '/san');
  t.equal(ok.status, 200, ok.body);
  t.equal(JSON.parse(ok.body).servername, 'san.example.com', 'SNI still from the Host');
  const bad = await get('sanbad.example.com', '/sanbad');
  t.equal(bad.status, 503);
  t.match(bad.body, 'CERTIFICATE_VERIFY_FAILED:verify cert failed: verify SAN list');
});

t.test('insecureSkipVerify: any certificate is accepted', async (t) => {
  const r = await get('insecure.example.com', '/insecure');
  t.equal(r.status, 200, r.body);
  t.equal(JSON.parse(r.body).name, 'evil');
});

t.test(
  'TLS to a plaintext port: 503, WRONG_VERSION_NUMBER, logged as the transport failure reason',
  async (t) => {
    const r = await get('plain.example.com', '/plain');
    t.equal(r.status, 503);
    t.match(r.body, 'TLS_error:|268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end');
    const line = await logLine('/plain');
    t.match(
      line,
      /" 503 (URX,UF|UF) upstream_reset_before_response_started\{remote_connection_failure\|TLS_error:\|268435703/,
    );
    t.match(
      line,
      / "TLS_error:\|268435703:SSL_routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end" /,
    );
  },
);

t.test('MUTUAL with files: the upstream sees the client certificate; SIMPLE to it fails', async (t) => {
  const r = await get('mtls.example.com', '/mtls');
  t.equal(r.status, 200, r.body);
  const b = JSON.parse(r.body);
  t.equal(b.peer, 'client');
  t.equal(b.servername, 'mtls.example.com');
  const no = await get('mtls-simple.example.com', '/mtls-simple');
  t.equal(no.status, 503);
  t.ok(no.body.startsWith(FAILED), no.body);
  t.match(
    no.body,
    /TLS_error:\|\d+:SSL routines:OPENSSL_internal:(TLSV1_ALERT_CERTIFICATE_REQUIRED|SSLV3_ALERT_HANDSHAKE_FAILURE):TLS_error_end/,
  );
  t.match(await logLine('/mtls-simple'), /" 503 (URX,UF|UF) /);
});

t.test(
  'resolution NONE (original destination) originates too: MUTUAL via credentialName at a sidecar',
  async (t) => {
    const r = await request(outbound, '/none', { host: `localhost:${upM.port}` });
    t.equal(r.status, 200, r.body);
    const b = JSON.parse(r.body);
    t.same([b.peer, b.servername, b.url], ['client', 'mtls.example.com', '/none']);
  },
);

t.test('MUTUAL via credentialName at the egress gateway: 200; a missing Secret: 503 UH', async (t) => {
  const r = await request(gwPort, '/cred', { host: 'cred.example.com' });
  t.equal(r.status, 200, r.body);
  t.equal(JSON.parse(r.body).peer, 'client');
  const before = upM.connections();
  const no = await request(gwPort, '/nocred', { host: 'nocred.example.com' });
  t.equal(no.status, 503);
  t.equal(no.body, 'no healthy upstream');
  t.equal(upM.connections(), before, 'no connection was tried');
});

t.test('a streamed (chunked) request body goes over TLS (the undici pool)', async (t) => {
  const body = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: outbound,
        path: '/stream',
        method: 'POST',
        headers: { host: 'a.example.com', 'transfer-encoding': 'chunked' },
        agent: false,
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.write('part one, ');
    setTimeout(() => req.end('part two'), 30);
  });
  t.equal(body.status, 200, body.text);
  const b = JSON.parse(body.text);
  t.equal(b.body, 'part one, part two');
  t.equal(b.servername, 'a.example.com');
});

t.test('an upgrade (WebSocket-style) tunnels over TLS to a TLS cluster', async (t) => {
  const sock = connect(outbound, '127.0.0.1');
  await once(sock, 'connect');
  sock.write('GET /ws HTTP/1.1\r\nhost: a.example.com\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\r\n');
  let got = '';
  sock.on('data', (d: Buffer) => {
    got += d.toString();
  });
  for (let i = 0; i < 100 && !got.includes('\r\n\r\n'); i++) await sleep(20);
  t.match(got, /^HTTP\/1\.1 101 /);
  t.match(got, /x-sni: a\.example\.com/);
  sock.write('hello tls');
  for (let i = 0; i < 100 && !got.includes('HELLO TLS'); i++) await sleep(20);
  t.match(got, /HELLO TLS$/);
  sock.destroy();
});
