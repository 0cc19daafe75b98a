// Certificates made at test time (ECDSA P-256, SHA-256), in-process with @peculiar/x509: no
// checked-in material that expires, no system program needed. A CA signs leaves with DNS/URI
// SANs, client or server usage, any validity window, and CRLs revoking leaves by serial.

import 'reflect-metadata';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

export interface Pem {
  /** The certificate (a leaf; `chain` adds its issuer for servers that send the chain). */
  cert: string;
  key: string;
  serial: string;
  /** Lowercase hex SHA-256 of the DER (Envoy's verifyCertificateHash / XFCC Hash). */
  sha256: string;
  /** base64 SHA-256 of the SubjectPublicKeyInfo (verifyCertificateSpki). */
  spki: string;
}

export interface Ca extends Pem {
  name: string;
  /** Internal: the CA's signing key. */
  readonly signer: CryptoKey;
  readonly subject: string;
  issue(opts: LeafOptions): Promise<Pem>;
  /** A CRL revoking these serials (hex). */
  crl(revoked: readonly string[]): Promise<string>;
}

export interface LeafOptions {
  cn: string;
  dns?: string[];
  uri?: string[];
  ip?: string[];
  /** Client certificate (clientAuth EKU) instead of a server one. */
  client?: boolean;
  /** Validity: days from now (negative: already expired). Default: -1 .. +30. */
  notBeforeDays?: number;
  notAfterDays?: number;
}

let serialCounter = 0x1000;
function nextSerial(): string {
  serialCounter += 1;
  return serialCounter.toString(16).padStart(4, '0');
}

async function keyPem(k: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', k));
  return `-----BEGIN PRIVATE KEY-----\n${der
    .toString('base64')
    .match(/.{1,64}/g)
    ?.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

function fingerprints(pem: string): { sha256: string; spki: string } {
  const c = new X509Certificate(pem);
  return {
    sha256: createHash('sha256').update(c.raw).digest('hex'),
    spki: createHash('sha256')
      .update(c.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64'),
  };
}

function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

/** A self-signed root CA named `CN=<name>`. */
export async function makeCa(name: string): Promise<Ca> {
  const keys = await newKeys();
  const serial = nextSerial();
  const subject = `CN=${name}`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial,
    name: subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 365 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const certPem = cert.toString('pem');
  const ca: Ca = {
    name,
    cert: `${certPem}\n`,
    key: await keyPem(keys.privateKey),
    serial,
    ...fingerprints(certPem),
    signer: keys.privateKey,
    subject,
    async issue(o: LeafOptions): Promise<Pem> {
      const lk = await newKeys();
      const s = nextSerial();
      const names: x509.JsonGeneralName[] = [
        ...(o.dns ?? []).map((v) => ({ type: 'dns' as const, value: v })),
        ...(o.uri ?? []).map((v) => ({ type: 'url' as const, value: v })),
        ...(o.ip ?? []).map((v) => ({ type: 'ip' as const, value: v })),
      ];
      const leaf = await x509.X509CertificateGenerator.create({
        serialNumber: s,
        subject: `CN=${o.cn}, O=courier tests`,
        issuer: subject,
        notBefore: new Date(Date.now() + (o.notBeforeDays ?? -1) * DAY),
        notAfter: new Date(Date.now() + (o.notAfterDays ?? 30) * DAY),
        signingKey: keys.privateKey,
        publicKey: lk.publicKey,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([
            o.client ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth,
          ]),
          ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
          await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      const pem = `${leaf.toString('pem')}\n`;
      return { cert: pem, key: await keyPem(lk.privateKey), serial: s, ...fingerprints(pem) };
    },
    async crl(revoked: readonly string[]): Promise<string> {
      const crl = await x509.X509CrlGenerator.create({
        issuer: subject,
        thisUpdate: new Date(Date.now() - DAY),
        nextUpdate: new Date(Date.now() + 30 * DAY),
        entries: revoked.map((serialNumber) => ({
          serialNumber,
          revocationDate: new Date(Date.now() - DAY),
        })),
        signingKey: keys.privateKey,
        signingAlgorithm: ALG,
        extensions: [await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey)],
      });
      // OpenSSL reads `X509 CRL` PEM blocks only.
      return `${crl.toString('pem').replace(/-----(BEGIN|END) CRL-----/g, '-----$1 X509 CRL-----')}\n`;
    },
  };
  return ca;
}

/** A Kubernetes TLS Secret document (`tls.crt`/`tls.key`, optional `ca.crt`) as YAML. */
export function tlsSecretYaml(
  name: string,
  keys: Record<string, string>,
  opts: { namespace?: string; stringData?: boolean } = {},
): string {
  const field = opts.stringData ? 'stringData' : 'data';
  const lines = Object.entries(keys).map(([k, v]) =>
    opts.stringData
      ? `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`
      : `  ${JSON.stringify(k)}: ${JSON.stringify(Buffer.from(v).toString('base64'))}`,
  );
  return [
    'apiVersion: v1',
    'kind: Secret',
    'metadata:',
    `  name: ${name}`,
    ...(opts.namespace ? [`  namespace: ${opts.namespace}`] : []),
    'type: kubernetes.io/tls',
    `${field}:`,
    ...lines,
    '',
  ].join('\n');
}

/** Write `files` (name → content) into `dir` (created), as a mounted Secret volume would hold them. */
export function writeFiles(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [n, v] of Object.entries(files)) writeFileSync(join(dir, n), v);
}
