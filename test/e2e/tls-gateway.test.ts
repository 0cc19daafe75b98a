// Gateway TLS termination through the real pilot-agent, with real TLS clients (node:tls with
// SNI, client certificates and version caps) and certificates made for the run: SIMPLE from a TLS
// Secret, a generic Secret and files; several servers and certificates on one port chosen by SNI;
// no SNI; wildcard names; MUTUAL and OPTIONAL_MUTUAL with the CA in the Secret, in `<name>-cacert`
// or a file, subjectAltNames, certificate hash and CRL checks; the XFCC and x-forwarded-proto a
// gateway sends; versions and cipher suites; httpsRedirect (Location keeps the Host's port); and
// plaintext or garbage sent to a TLS port. Refusals are asserted as "no HTTP response", not by
// alert text (Node destroys the socket where Envoy sends an alert).

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { makeCa, tlsSecretYaml } from '../helpers/certs.js';
import {
  freePort,
  request,
  serviceEntryYaml,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';
import { tlsRequest } from '../helpers/tls-client.js';

const caA = await makeCa('ca-a');
const caB = await makeCa('ca-b');
const certA = await caA.issue({ cn: 'a.example.com', dns: ['a.example.com'] });
const certB = await caA.issue({ cn: 'b.example.com', dns: ['b.example.com'] });
const certAny = await caA.issue({ cn: 'any.example.com', dns: ['any.example.com'] });
const wildcard = await caA.issue({ cn: '*.example.com', dns: ['*.example.com'] });
const SPIFFE = 'spiffe://cluster.local/ns/default/sa/client';
const client = await caA.issue({ cn: 'client', dns: ['client.example.com'], uri: [SPIFFE], client: true });
const other = await caA.issue({ cn: 'other', dns: ['other.example.com'], client: true });
const evil = await caB.issue({ cn: 'evil', client: true });
const revokedCrl = await caA.crl([client.serial]);
const up = await startUpstream('echo');
t.teardown(() => up.close());

const HOST = 'echo.default.svc.cluster.local';
const P = {
  multi: await freePort(),
  files: await freePort(),
  wild: await freePort(),
  mutual: await freePort(),
  cacert: await freePort(),
  cacertWins: await freePort(),
  optional: await freePort(),
  sans: await freePort(),
  hash: await freePort(),
  crl: await freePort(),
  tls13: await freePort(),
  tls12: await freePort(),
  redirect: await freePort(),
  tlsOnly: await freePort(),
  broken: await freePort(),
};

function server(port: number, name: string, hosts: string[], tls: string, protocol = 'HTTPS'): string {
  return `  - port: {number: ${port}, name: ${name}, protocol: ${protocol}}\n    hosts: ${JSON.stringify(hosts)}\n    tls: ${tls}\n`;
}

const gateway = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
${[
  server(P.multi, 'https-a', ['a.example.com'], '{mode: SIMPLE, credentialName: a-cred}'),
  server(P.multi, 'https-b', ['b.example.com'], '{mode: SIMPLE, credentialName: b-cred}'),
  server(
    P.files,
    'https-files',
    ['*'],
    '{mode: SIMPLE, serverCertificate: certs/any.crt, privateKey: certs/any.key}',
  ),
  server(P.wild, 'https-wild', ['*.example.com'], '{mode: SIMPLE, credentialName: wild-cred}'),
  server(P.mutual, 'https-mutual', ['a.example.com'], '{mode: MUTUAL, credentialName: m-cred}'),
  server(P.cacert, 'https-cacert', ['a.example.com'], '{mode: MUTUAL, credentialName: c-cred}'),
  server(P.cacertWins, 'https-cacert-wins', ['a.example.com'], '{mode: MUTUAL, credentialName: w-cred}'),
  server(P.optional, 'https-optional', ['a.example.com'], '{mode: OPTIONAL_MUTUAL, credentialName: m-cred}'),
  server(
    P.sans,
    'https-sans',
    ['a.example.com'],
    `{mode: MUTUAL, credentialName: m-cred, subjectAltNames: ["${SPIFFE}"]}`,
  ),
  server(
    P.hash,
    'https-hash',
    ['a.example.com'],
    `{mode: MUTUAL, credentialName: m-cred, verifyCertificateHash: ["${client.sha256.replace(/(..)(?!$)/g, '$1:').toUpperCase()}"]}`,
  ),
  server(
    P.crl,
    'https-crl',
    ['a.example.com'],
    '{mode: MUTUAL, serverCertificate: certs/a.crt, privateKey: certs/a.key, caCertificates: certs/ca-a.crt, caCrl: certs/revoked.crl}',
  ),
  server(
    P.tls13,
    'https-13',
    ['a.example.com'],
    '{mode: SIMPLE, credentialName: a-cred, minProtocolVersion: TLSV1_3}',
  ),
  server(
    P.tls12,
    'https-12',
    ['a.example.com'],
    '{mode: SIMPLE, credentialName: a-cred, maxProtocolVersion: TLSV1_2, cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, fake]}',
  ),
  server(P.redirect, 'http-redirect', ['*'], '{httpsRedirect: true}', 'HTTP'),
  server(P.tlsOnly, 'https-only', ['a.example.com'], '{mode: SIMPLE, credentialName: a-cred}'),
  server(P.broken, 'https-good', ['a.example.com'], '{mode: SIMPLE, credentialName: a-cred}'),
  server(P.broken, 'https-broken', ['b.example.com'], '{mode: SIMPLE, credentialName: empty-key}'),
].join('')}`;

const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: echo, namespace: default}
spec:
  hosts: [a.example.com, b.example.com, any.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: ${HOST}}}]
`;

const secrets = [
  tlsSecretYaml('a-cred', { 'tls.crt': certA.cert, 'tls.key': certA.key }),
  tlsSecretYaml('b-cred', { cert: certB.cert, key: certB.key }),
  tlsSecretYaml('wild-cred', { 'tls.crt': wildcard.cert, 'tls.key': wildcard.key }, { stringData: true }),
  tlsSecretYaml('m-cred', { 'tls.crt': certA.cert, 'tls.key': certA.key, 'ca.crt': caA.cert }),
  tlsSecretYaml('c-cred', { 'tls.crt': certA.cert, 'tls.key': certA.key }),
  tlsSecretYaml('c-cred-cacert', { cacert: caA.cert }),
  tlsSecretYaml('w-cred', { 'tls.crt': certA.cert, 'tls.key': certA.key, 'ca.crt': caA.cert }),
  tlsSecretYaml('w-cred-cacert', { cacert: caB.cert }),
  tlsSecretYaml('empty-key', { 'tls.crt': certB.cert, 'tls.key': '' }),
].join('---\n');

const dir = writeConfigDir({
  'gateway.yaml': gateway,
  'vs.yaml': vs,
  'se.yaml': serviceEntryYaml(HOST, [{ port: up.port }]),
  'secrets.yaml': secrets,
});
const certs = join(dir, 'certs');
(await import('node:fs')).mkdirSync(certs);
writeFileSync(join(certs, 'any.crt'), certAny.cert);
writeFileSync(join(certs, 'any.key'), certAny.key);
writeFileSync(join(certs, 'a.crt'), certA.cert);
writeFileSync(join(certs, 'a.key'), certA.key);
writeFileSync(join(certs, 'ca-a.crt'), caA.cert);
writeFileSync(join(certs, 'revoked.crl'), revokedCrl);

const agent = await startAgent({ configDir: dir, args: ['--access-log', join(dir, 'access.log')] });
t.teardown(() => agent.stop());

const echoed = (body: string) => JSON.parse(body) as { headers: Record<string, string> };

// A client that connects to a TLS port and sends nothing: closed after Envoy's 15 s listener
// filter timeout, while every other test of this file is served meanwhile.
const silentOpened = Date.now();
const silentClosed = new Promise<{ ms: number; got: number }>((resolve) => {
  import('node:net').then(({ connect }) => {
    const s = connect(P.tlsOnly, '127.0.0.1');
    let got = 0;
    s.on('data', (d: Buffer) => {
      got += d.length;
    });
    s.on('error', () => {});
    s.on('close', () => resolve({ ms: Date.now() - silentOpened, got }));
  });
});

t.test(
  'SIMPLE: a TLS Secret, a generic Secret and files; several certificates on one port by SNI',
  async (t) => {
    const a = await tlsRequest({
      port: P.multi,
      servername: 'a.example.com',
      ca: caA.cert,
      path: '/status/418',
    });
    t.equal(a.status, 200, agent.logs());
    t.equal(a.peerCN, 'a.example.com');
    t.equal(a.alpn, false, 'no ALPN asked, none negotiated');
    const b = await tlsRequest({ port: P.multi, servername: 'b.example.com', ca: caA.cert });
    t.equal(b.status, 200, 'generic Secret keys cert/key');
    t.equal(b.peerCN, 'b.example.com', 'SNI b gets certificate b');
    const f = await tlsRequest({ port: P.files, servername: 'any.example.com', ca: caA.cert });
    t.equal(f.status, 200, 'file paths relative to the config dir');
    t.equal(f.peerCN, 'any.example.com');
    const alpn = await tlsRequest({
      port: P.multi,
      servername: 'a.example.com',
      ca: caA.cert,
      ALPNProtocols: ['h2', 'http/1.1'],
    });
    t.equal(alpn.alpn, 'http/1.1', 'only http/1.1 is offered while HTTP/2 is not served');
    t.equal(alpn.status, 200);
  },
);

t.test('SNI picks the server, Host the virtual host in its table', async (t) => {
  const cross = await tlsRequest({
    port: P.multi,
    servername: 'a.example.com',
    host: 'b.example.com',
    ca: caA.cert,
  });
  t.equal(cross.status, 404, 'SNI a with Host b: 404 (b is another server of the port), never 421');
  const unknown = await tlsRequest({ port: P.multi, servername: 'c.example.com', ca: caA.cert });
  t.equal(unknown.status, undefined, 'an SNI no server names is refused');
  const noSni = await tlsRequest({ port: P.multi, host: 'a.example.com', insecure: true });
  t.equal(noSni.status, undefined, 'no SNI and no `*` server: refused');
  const noSniStar = await tlsRequest({ port: P.files, host: 'any.example.com', insecure: true });
  t.equal(noSniStar.status, 200, 'no SNI is served by a hosts: ["*"] server');
});

t.test('wildcard server names; a server with no VirtualService answers 404', async (t) => {
  const x = await tlsRequest({ port: P.wild, servername: 'x.example.com', ca: caA.cert });
  t.equal(x.peerCN, '*.example.com');
  t.equal(x.status, 404, 'no VirtualService for x.example.com on this server');
  const bare = await tlsRequest({ port: P.wild, servername: 'example.com', ca: caA.cert });
  t.equal(bare.status, undefined, '*.example.com does not cover the bare parent');
});

t.test('MUTUAL: a CA-A client certificate passes; none, or one from another CA, is refused', async (t) => {
  for (const port of [P.mutual, P.cacert]) {
    const ok = await tlsRequest({
      port,
      servername: 'a.example.com',
      ca: caA.cert,
      cert: client.cert,
      key: client.key,
    });
    t.equal(ok.status, 200, `port ${port === P.mutual ? 'ca.crt in the Secret' : 'CA in <name>-cacert'}`);
    const none = await tlsRequest({ port, servername: 'a.example.com', ca: caA.cert });
    t.equal(none.status, undefined, 'no client certificate: refused');
    const bad = await tlsRequest({
      port,
      servername: 'a.example.com',
      ca: caA.cert,
      cert: evil.cert,
      key: evil.key,
    });
    t.equal(bad.status, undefined, 'a certificate from CA-B: refused');
  }
  const wins = await tlsRequest({
    port: P.cacertWins,
    servername: 'a.example.com',
    ca: caA.cert,
    cert: client.cert,
    key: client.key,
  });
  t.equal(wins.status, undefined, '<name>-cacert (CA-B) wins over the ca.crt (CA-A) in <name>');
  const winsB = await tlsRequest({
    port: P.cacertWins,
    servername: 'a.example.com',
    ca: caA.cert,
    cert: evil.cert,
    key: evil.key,
  });
  t.equal(winsB.status, 200, 'and a CA-B client passes there');
});

t.test('OPTIONAL_MUTUAL: no certificate 200, CA-A 200, CA-B refused; XFCC replaced or removed', async (t) => {
  const none = await tlsRequest({
    port: P.optional,
    servername: 'a.example.com',
    ca: caA.cert,
    headers: { 'x-forwarded-client-cert': 'forged', 'x-forwarded-proto': 'http' },
  });
  t.equal(none.status, 200);
  t.equal(
    echoed(none.body).headers['x-forwarded-client-cert'],
    undefined,
    'a client XFCC without a certificate is removed',
  );
  t.equal(
    echoed(none.body).headers['x-forwarded-proto'],
    'https',
    "the client's x-forwarded-proto is overwritten",
  );
  const ok = await tlsRequest({
    port: P.optional,
    servername: 'a.example.com',
    ca: caA.cert,
    cert: client.cert,
    key: client.key,
    headers: { 'x-forwarded-client-cert': 'forged' },
  });
  t.equal(ok.status, 200);
  const xfcc = echoed(ok.body).headers['x-forwarded-client-cert'] ?? '';
  t.match(xfcc, new RegExp(`^Hash=${client.sha256};Cert="-----BEGIN%20CERTIFICATE-----`));
  t.match(
    xfcc,
    /;Subject="[^"]*CN=client[^"]*";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/client;DNS=client\.example\.com$/,
  );
  t.notMatch(xfcc, /forged/, 'the client-sent value is replaced');
  const bad = await tlsRequest({
    port: P.optional,
    servername: 'a.example.com',
    ca: caA.cert,
    cert: evil.cert,
    key: evil.key,
  });
  t.equal(bad.status, undefined, 'a certificate that is sent must verify');
});

t.test('SIMPLE: a forged XFCC never reaches the upstream', async (t) => {
  const r = await tlsRequest({
    port: P.multi,
    servername: 'a.example.com',
    ca: caA.cert,
    headers: { 'x-forwarded-client-cert': 'By=forged' },
  });
  t.equal(r.status, 200);
  t.equal(echoed(r.body).headers['x-forwarded-client-cert'], undefined);
  t.equal(echoed(r.body).headers['x-forwarded-proto'], 'https');
});

t.test('subjectAltNames, certificate hash and CRL narrow MUTUAL', async (t) => {
  const opts = { servername: 'a.example.com', ca: caA.cert };
  t.equal((await tlsRequest({ port: P.sans, ...opts, cert: client.cert, key: client.key })).status, 200);
  t.equal(
    (await tlsRequest({ port: P.sans, ...opts, cert: other.cert, key: other.key })).status,
    undefined,
    'a CA-A certificate without the SAN',
  );
  t.equal((await tlsRequest({ port: P.hash, ...opts, cert: client.cert, key: client.key })).status, 200);
  t.equal(
    (await tlsRequest({ port: P.hash, ...opts, cert: other.cert, key: other.key })).status,
    undefined,
    'another certificate of CA-A: its hash is not listed',
  );
  t.equal(
    (await tlsRequest({ port: P.crl, ...opts, cert: client.cert, key: client.key })).status,
    undefined,
    'revoked by the CRL',
  );
  t.equal(
    (await tlsRequest({ port: P.crl, ...opts, cert: other.cert, key: other.key })).status,
    200,
    'not revoked',
  );
});

t.test('protocol versions and cipher suites', async (t) => {
  const opts = { servername: 'a.example.com', ca: caA.cert };
  t.equal(
    (await tlsRequest({ port: P.tls13, ...opts, maxVersion: 'TLSv1.2' })).status,
    undefined,
    'min TLS 1.3 refuses 1.2',
  );
  const r13 = await tlsRequest({ port: P.tls13, ...opts });
  t.equal(r13.status, 200);
  t.equal(r13.protocol, 'TLSv1.3');
  const r12 = await tlsRequest({ port: P.tls12, ...opts });
  t.equal(r12.protocol, 'TLSv1.2', 'max TLS 1.2');
  t.equal(r12.cipher, 'ECDHE-ECDSA-AES128-GCM-SHA256', 'the one valid configured suite; `fake` dropped');
  t.equal(r12.status, 200);
  const other12 = await tlsRequest({ port: P.tls12, ...opts, ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' });
  t.equal(other12.status, undefined, 'a TLS 1.2 suite not configured: no common cipher');
  t.match(agent.logs(), /ignoring invalid cipher suites: \[fake\]/, 'reported when loaded');
});

t.test(
  'httpsRedirect: 301 to https with the Host as sent, port included, even with no VirtualService',
  async (t) => {
    const r = await request(P.redirect, '/p?q=1', { host: 'a' });
    t.equal(r.status, 301);
    t.equal(r.headers.location, 'https://a/p?q=1');
    const withPort = await request(P.redirect, '/p?q=1', { host: 'a:8080' });
    t.equal(withPort.headers.location, 'https://a:8080/p?q=1');
  },
);

t.test('plaintext or garbage on a TLS port closes only that connection', async (t) => {
  const { connect } = await import('node:net');
  const plain = await new Promise<string>((resolve) => {
    const s = connect(P.tlsOnly, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nhost: a.example.com\r\n\r\n'));
    let got = '';
    s.on('data', (d) => {
      got += d;
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got));
  });
  t.equal(plain, '', 'no HTTP response to plaintext');
  const cut = await new Promise<string>((resolve) => {
    // A ClientHello record header announcing more than is sent, then the client stops writing.
    const s = connect(P.tlsOnly, '127.0.0.1', () => s.end(Buffer.from([0x16, 3, 1, 0x02, 0x00, 0x01, 0x00])));
    let got = '';
    s.on('data', (d) => {
      got += d;
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got));
  });
  t.equal(cut, '', 'a ClientHello cut short: closed without an answer');
  const ok = await tlsRequest({ port: P.tlsOnly, servername: 'a.example.com', ca: caA.cert });
  t.equal(ok.status, 200, 'the next TLS connection is served');
});

t.test('broken material fails only its own server', async (t) => {
  const b = await tlsRequest({ port: P.broken, servername: 'b.example.com', ca: caA.cert });
  t.equal(b.status, undefined, 'SNI b (a Secret with an empty tls.key) is refused');
  const a = await tlsRequest({ port: P.broken, servername: 'a.example.com', ca: caA.cert });
  t.equal(a.status, 200, 'SNI a on the same port is served');
  t.match(agent.logs(), /TLS credential kubernetes:\/\/default\/empty-key: private key is missing or empty/);
});

t.test('the access log line of an HTTPS request names the SNI (%REQUESTED_SERVER_NAME%)', async (t) => {
  const { readFileSync } = await import('node:fs');
  const lines = readFileSync(join(dir, 'access.log'), 'utf8').split('\n');
  const line = lines.find((l) => l.includes('"GET /status/418 HTTP/1.1" 200'));
  t.match(line, /outbound\|80\|\|echo\.default\.svc\.cluster\.local - \S+ \S+ a\.example\.com \S+$/);
});

t.test('handshakes and refusals are counted by why', async (t) => {
  const text = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? Number.NaN);
  t.ok(value(/courier_downstream_tls_handshakes_total (\d+)/) >= 20, 'handshakes completed');
  t.ok(
    value(/courier_downstream_tls_refused_total\{reason="client_certificate"\} (\d+)/) >= 8,
    'none, CA-B, SAN, hash, CRL',
  );
  const handshake = value(/courier_downstream_tls_refused_total\{reason="handshake"\} (\d+)/);
  t.equal(handshake, 2, 'no common version, no common cipher (a cut hello never reaches TLS)');
  t.ok(value(/courier_downstream_tls_refused_total\{reason="credential"\} (\d+)/) >= 1, 'the broken Secret');
  t.ok(
    value(/courier_downstream_cx_no_filter_chain_total\{first_bytes="tls"\} (\d+)/) >= 3,
    'SNI no server names',
  );
});

t.test('a connection that sends nothing to a TLS port is closed after about 15 s', async (t) => {
  const { ms, got } = await silentClosed;
  t.equal(got, 0, 'no bytes answered');
  t.ok(ms >= 14_000 && ms < 20_000, `closed after ${ms} ms`);
});
