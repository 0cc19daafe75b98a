// Where TLS material comes from, resolved by the agent before a config is compiled: a Gateway
// server's or a DestinationRule's `credentialName` (a `kind: Secret` document in the config
// directory, else a mounted-Secret directory under `--credentials-dir`), or the PEM file paths of
// those settings (absolute, or relative to the config directory). Every piece is checked here the
// way a TLS context will use it, so a worker never builds a context that throws; broken material
// is reported, and a credential that was good before keeps its last good material (as Envoy keeps
// serving the last secret it accepted). Material that never was good carries its error: that
// server's connections are refused, that cluster answers 503; nothing else is affected.
//
// The store is keyed by `credentialKey`, which compile uses to find the material of a setting.

import { createHash, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { TlsMaterial } from './snapshot.js';
import type { AnyResource, ClientTLSSettings, Resource, ServerTLSSettings } from './types.js';

/** A `v1` Secret from the config directory, values decoded. */
export interface SecretDoc {
  readonly name: string;
  /** '' when the document names none: the proxy's namespace. */
  readonly namespace: string;
  readonly data: Readonly<Record<string, string>>;
  readonly source: { readonly file: string; readonly index: number };
}

export type CredentialStore = Readonly<Record<string, TlsMaterial>>;

/** What a setting needs of its material. */
export type CredentialNeed = 'server' | 'server-mutual' | 'client' | 'client-mutual';

export interface CredentialOptions {
  readonly namespace: string;
  readonly secrets: readonly SecretDoc[];
  /** Relative file paths are read from here. */
  readonly configDir?: string | undefined;
  /** Mounted Secret volumes: `<dir>/<name>/` (proxy namespace) or `<dir>/<ns>/<name>/`. */
  readonly credentialsDir?: string | undefined;
}

export interface ResolvedCredentials {
  readonly store: CredentialStore;
  /** One line per credential that is broken (kept last good or refused). */
  readonly problems: readonly string[];
  /** Files and directories read (or looked for): a change to any of them is a config change. */
  readonly watched: readonly string[];
}

/** `kubernetes://ns/name` for a credentialName (a bare name is in the proxy's namespace). */
export function credentialRef(name: string, proxyNamespace: string): string {
  const bare = name.startsWith('kubernetes://') ? name.slice('kubernetes://'.length) : name;
  const i = bare.indexOf('/');
  return i >= 0 ? `kubernetes://${bare}` : `kubernetes://${proxyNamespace}/${bare}`;
}

/** The store key of a server's or a cluster's TLS setting (undefined: it needs no material). */
export function serverCredentialKey(t: ServerTLSSettings, proxyNamespace: string): string | undefined {
  const mode = t.mode ?? 'PASSTHROUGH';
  if (mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH' || mode === 'ISTIO_MUTUAL') return undefined;
  const need: CredentialNeed = mode === 'SIMPLE' ? 'server' : 'server-mutual';
  if (t.credentialName) return `${credentialRef(t.credentialName, proxyNamespace)}#${need}`;
  return fileKey(t.serverCertificate, t.privateKey, t.caCertificates, t.caCrl, need);
}

export function clientCredentialKey(t: ClientTLSSettings, proxyNamespace: string): string | undefined {
  const mode = t.mode ?? 'DISABLE';
  if (mode !== 'SIMPLE' && mode !== 'MUTUAL') return undefined;
  const need: CredentialNeed = mode === 'SIMPLE' ? 'client' : 'client-mutual';
  if (t.credentialName) return `${credentialRef(t.credentialName, proxyNamespace)}#${need}`;
  if (need === 'client' && !t.caCertificates && !t.caCrl) return undefined; // system roots
  return fileKey(t.clientCertificate, t.privateKey, t.caCertificates, t.caCrl, need);
}

function fileKey(
  cert: string | undefined,
  key: string | undefined,
  ca: string | undefined,
  crl: string | undefined,
  need: CredentialNeed,
): string {
  return `file:${JSON.stringify([cert ?? '', key ?? '', ca ?? '', crl ?? ''])}#${need}`;
}

/** Every material key the config refers to, for this proxy's namespace. */
export function credentialKeys(resources: readonly AnyResource[], proxyNamespace: string): Set<string> {
  const keys = new Set<string>();
  const add = (k: string | undefined) => {
    if (k) keys.add(k);
  };
  for (const r of resources) {
    if (r.kind === 'Gateway') {
      for (const s of (r as Resource<'Gateway'>).spec.servers ?? [])
        if (s.tls) add(serverCredentialKey(s.tls, proxyNamespace));
    } else if (r.kind === 'DestinationRule') {
      const tp = (r as Resource<'DestinationRule'>).spec;
      const policies = [tp.trafficPolicy, ...(tp.subsets ?? []).map((s) => s.trafficPolicy)];
      for (const p of policies) {
        if (!p) continue;
        if (p.tls) add(clientCredentialKey(p.tls, proxyNamespace));
        for (const pl of p.portLevelSettings ?? [])
          if (pl.tls) add(clientCredentialKey(pl.tls, proxyNamespace));
      }
    }
  }
  return keys;
}

/** Resolve and check every credential the config refers to. */
export function resolveCredentials(
  resources: readonly AnyResource[],
  opts: CredentialOptions,
  previous: CredentialStore = {},
): ResolvedCredentials {
  const store: Record<string, TlsMaterial> = {};
  const problems: string[] = [];
  const watched = new Set<string>();
  const reader = new Reader(opts, watched);
  for (const key of [...credentialKeys(resources, opts.namespace)].sort()) {
    const m = resolveOne(key, reader);
    const prev = previous[key];
    if (m.error !== undefined && prev && prev.error === undefined) {
      problems.push(`${m.source}: ${m.error}; still serving the last good material`);
      store[key] = prev;
    } else {
      if (m.error !== undefined) problems.push(`${m.source}: ${m.error}`);
      store[key] = m;
    }
  }
  return { store, problems, watched: [...watched].sort() };
}

/** Content hash of a store (part of the config version: new material is a new config). */
export function storeHash(store: CredentialStore): string {
  const h = createHash('sha256');
  for (const k of Object.keys(store).sort()) h.update(`${k}=${store[k]?.hash}\n`);
  return h.digest('hex').slice(0, 16);
}

interface Pieces {
  cert?: string | undefined;
  key?: string | undefined;
  ca?: string | undefined;
  crl?: string | undefined;
}

function resolveOne(storeKey: string, reader: Reader): TlsMaterial {
  const hashAt = storeKey.lastIndexOf('#');
  const need = storeKey.slice(hashAt + 1) as CredentialNeed;
  const ref = storeKey.slice(0, hashAt);
  let source: string;
  let got: Pieces | { error: string };
  if (ref.startsWith('kubernetes://')) {
    source = ref;
    got = reader.secret(ref.slice('kubernetes://'.length), need);
  } else {
    const [cert, key, ca, crl] = JSON.parse(ref.slice('file:'.length)) as string[];
    source = `file:${[cert, key, ca, crl].filter((p) => p).join('~')}`;
    got = reader.files({ cert, key, ca, crl });
  }
  if ('error' in got) return material(source, {}, got.error);
  return material(source, got, check(got, need));
}

function material(source: string, p: Pieces, error: string | undefined): TlsMaterial {
  const h = createHash('sha256');
  for (const v of [p.cert, p.key, p.ca, p.crl, error]) h.update(`${v ?? ''}\0`);
  return Object.freeze({
    source,
    ...(p.cert ? { cert: p.cert } : {}),
    ...(p.key ? { key: p.key } : {}),
    ...(p.ca ? { ca: p.ca } : {}),
    ...(p.crl ? { crl: p.crl } : {}),
    ...(error !== undefined ? { error } : {}),
    hash: h.digest('hex').slice(0, 16),
  });
}

/** Why the pieces cannot serve `need`, or undefined. */
function check(p: Pieces, need: CredentialNeed): string | undefined {
  const pair = need !== 'client';
  if (pair) {
    if (!p.cert?.trim()) return 'certificate is missing or empty';
    if (!p.key?.trim()) return 'private key is missing or empty';
    try {
      createSecureContext({ cert: p.cert, key: p.key });
    } catch (e) {
      return `certificate and key are not usable: ${(e as Error).message}`;
    }
    const leaf = pemBlocks(p.cert)[0];
    if (leaf === undefined) return 'certificate is not PEM';
    try {
      new X509Certificate(leaf);
    } catch (e) {
      return `certificate is not valid: ${(e as Error).message}`;
    }
  }
  if (need === 'server-mutual' && !p.ca?.trim()) return 'client CA bundle is missing or empty';
  if (p.ca !== undefined) {
    const blocks = pemBlocks(p.ca);
    // A garbage CA is accepted by createSecureContext without a word: parse every certificate.
    if (blocks.length === 0) return 'CA bundle holds no PEM certificate';
    for (const b of blocks)
      try {
        new X509Certificate(b);
      } catch (e) {
        return `CA bundle holds an invalid certificate: ${(e as Error).message}`;
      }
  }
  if (p.crl !== undefined)
    try {
      createSecureContext({ crl: p.crl });
    } catch (e) {
      return `CRL is not usable: ${(e as Error).message}`;
    }
  return undefined;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The PEM certificate blocks of a bundle. */
export function pemBlocks(pem: string): string[] {
  return pem.match(PEM_CERT) ?? [];
}

/** What `proxy-config secrets` and the expiry gauge show of one certificate. */
export interface CertificateInfo {
  readonly subject: string;
  readonly subjectAltNames: readonly string[];
  readonly serial: string;
  readonly notBefore: string;
  readonly notAfter: string;
  /** Epoch ms of notAfter. */
  readonly expires: number;
}

export function describeCertificates(pem: string | undefined): CertificateInfo[] {
  const out: CertificateInfo[] = [];
  for (const b of pemBlocks(pem ?? '')) {
    try {
      const c = new X509Certificate(b);
      out.push({
        subject: c.subject.replace(/\n/g, ', '),
        subjectAltNames: (c.subjectAltName ?? '').split(', ').filter((s) => s !== ''),
        serial: c.serialNumber,
        notBefore: new Date(c.validFrom).toISOString(),
        notAfter: new Date(c.validTo).toISOString(),
        expires: Date.parse(c.validTo),
      });
    } catch {
      // checked when resolved; a block that does not parse is not described
    }
  }
  return out;
}

/** Reads Secrets (documents first, then the credentials directory) and files, noting what it read. */
class Reader {
  private readonly secrets = new Map<string, SecretDoc>();

  constructor(
    private readonly opts: CredentialOptions,
    private readonly watched: Set<string>,
  ) {
    for (const s of opts.secrets) this.secrets.set(`${s.namespace || opts.namespace}/${s.name}`, s);
  }

  /** A Secret's keys: a document in the config dir, else a mounted directory. */
  private data(nsName: string): Readonly<Record<string, string>> | undefined {
    const doc = this.secrets.get(nsName);
    if (doc) return doc.data;
    const dir = this.opts.credentialsDir;
    if (!dir) return undefined;
    const [ns, name] = nsName.split('/') as [string, string];
    const path = ns === this.opts.namespace ? join(dir, name) : join(dir, ns, name);
    this.watched.add(path);
    let names: string[];
    try {
      if (!statSync(path).isDirectory()) return undefined;
      names = readdirSync(path).filter((n) => !n.startsWith('.'));
    } catch {
      return undefined;
    }
    const out: Record<string, string> = {};
    for (const n of names) {
      const f = join(path, n);
      this.watched.add(f);
      try {
        if (statSync(f).isFile()) out[n] = readFileSync(f, 'utf8');
      } catch {
        // gone between the listing and the read: the next change notices
      }
    }
    return out;
  }

  /** Istio's ExtractCertInfo / ExtractRoot over a Secret and its `-cacert` companion. */
  secret(nsName: string, need: CredentialNeed): Pieces | { error: string } {
    const main = this.data(nsName);
    const caSecret = this.data(`${nsName}-cacert`);
    const mutual = need === 'server-mutual' || need === 'client-mutual';
    const out: Pieces = {};
    if (need !== 'client') {
      if (!main) return { error: `secret ${nsName} not found` };
      if (main.cert !== undefined && main.key !== undefined) {
        out.cert = main.cert;
        out.key = main.key;
      } else if (main['tls.crt'] !== undefined && main['tls.key'] !== undefined) {
        out.cert = main['tls.crt'];
        out.key = main['tls.key'];
      } else
        return {
          error: `found secret, but didn't have expected keys (cert and key) or (tls.crt and tls.key); found: ${Object.keys(main).sort().join(', ')}`,
        };
      out.crl = main.crl ?? main['ca.crl'];
    }
    const root = caSecret ?? main;
    if (mutual || need === 'client') {
      if (!root) return { error: `secret ${nsName} not found` };
      out.ca = root.cacert ?? root['ca.crt'];
      out.crl = root.crl ?? root['ca.crl'] ?? out.crl;
      if (need === 'client' && out.ca === undefined)
        return { error: `secret ${nsName}${caSecret ? '-cacert' : ''} has no cacert or ca.crt` };
    }
    return out;
  }

  files(paths: { cert?: string; key?: string; ca?: string; crl?: string }): Pieces | { error: string } {
    const out: Pieces = {};
    for (const k of ['cert', 'key', 'ca', 'crl'] as const) {
      const p = paths[k];
      if (!p) continue;
      const abs = isAbsolute(p) || !this.opts.configDir ? p : join(this.opts.configDir, p);
      this.watched.add(abs);
      try {
        out[k] = readFileSync(abs, 'utf8');
      } catch (e) {
        return {
          error: `${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`,
        };
      }
    }
    return out;
  }
}
