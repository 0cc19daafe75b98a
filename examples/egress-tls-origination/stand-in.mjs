// A local HTTPS server standing in for an external host (edition.cnn.com in Istio's tasks), with
// its own CA made on the spot (ECDSA P-256, SHA-256, @peculiar/x509): the proxy is given that CA
// as the DestinationRule's `caCertificates`, so it verifies the stand-in as it would the real host.
// Also used by examples/egress-gateway-tls-origination.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY = 86_400_000;

async function keyPem(k) {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', k)).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${der.match(/.{1,64}/g).join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** A CA and a server certificate for `host` signed by it: PEM strings. */
export async function makeCertificates(host) {
  const caKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${host} stand-in CA`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: `CN=${host}`,
    issuer: ca.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 30 * DAY),
    signingKey: caKeys.privateKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: host }]),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  return { ca: ca.toString('pem'), cert: leaf.toString('pem'), key: await keyPem(keys.privateKey) };
}

/**
 * The stand-in on 127.0.0.1:`port`: answers every request 200 with what it saw (path, the SNI the
 * proxy sent, the Host). Returns the server and its CA.
 */
export async function startStandIn(host, port) {
  const pem = await makeCertificates(host);
  const server = createServer({ key: pem.key, cert: pem.cert }, (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      `${JSON.stringify({ service: host, tls: true, sni: req.socket.servername, host: req.headers.host, path: req.url })}\n`,
    );
  });
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { server, ca: pem.ca };
}

/**
 * A config directory for the agents: this example's YAML files plus the stand-in's CA as
 * `stand-in-ca.crt` (the DestinationRule's `caCertificates`, relative to the config directory).
 */
export function configDir(yamlDir, ca) {
  const dir = mkdtempSync(join(tmpdir(), 'courier-example-'));
  for (const f of readdirSync(yamlDir)) if (f.endsWith('.yaml')) cpSync(join(yamlDir, f), join(dir, f));
  writeFileSync(join(dir, 'stand-in-ca.crt'), ca);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
