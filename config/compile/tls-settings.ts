// TLS settings compiled once: a Gateway server's `tls` into the ServerTls a chain's context is
// built from, a DestinationRule's `tls` into a cluster's ClientTls, each with its material from
// the credential store the agent resolved (config/credentials.ts).

import { type CredentialStore, clientCredentialKey, serverCredentialKey } from '../credentials.js';
import type { ClientTls, ServerTls, TlsMaterial } from '../snapshot.js';
import type { ClientTLSSettings, ServerTLSSettings } from '../types.js';
import { isValidCipherSuite } from '../validate/gateway.js';

const VERSIONS = {
  TLSV1_0: 'TLSv1',
  TLSV1_1: 'TLSv1.1',
  TLSV1_2: 'TLSv1.2',
  TLSV1_3: 'TLSv1.3',
} as const;

/** Material a key was not resolved for (compile without the agent's store, e.g. `explain`). */
function unresolved(key: string): TlsMaterial {
  return Object.freeze({ source: key, error: 'credential not resolved', hash: 'unresolved' });
}

function lookup(store: CredentialStore, key: string | undefined): TlsMaterial | undefined {
  if (key === undefined) return undefined;
  return store[key] ?? unresolved(key);
}

export function compileServerTls(t: ServerTLSSettings, store: CredentialStore, namespace: string): ServerTls {
  const mode =
    t.mode === 'MUTUAL' || t.mode === 'OPTIONAL_MUTUAL' || t.mode === 'ISTIO_MUTUAL' ? t.mode : 'SIMPLE';
  const min = VERSIONS[t.minProtocolVersion as keyof typeof VERSIONS];
  const max = VERSIONS[t.maxProtocolVersion as keyof typeof VERSIONS];
  let ciphers = t.cipherSuites?.length
    ? [...new Set(t.cipherSuites.filter((c) => c !== '' && isValidCipherSuite(c)))].join(':')
    : undefined;
  // TLS 1.0/1.1 need OpenSSL's lowest security level to negotiate at all (Istio: compatible ciphers).
  if (min === 'TLSv1' || min === 'TLSv1.1') ciphers = `${ciphers || 'DEFAULT'}:@SECLEVEL=0`;
  const material = lookup(store, serverCredentialKey({ ...t, mode }, namespace));
  return Object.freeze({
    mode,
    ...(t.credentialName ? { credentialName: t.credentialName } : {}),
    ...(t.serverCertificate ? { serverCertificate: t.serverCertificate } : {}),
    ...(t.privateKey ? { privateKey: t.privateKey } : {}),
    ...(t.caCertificates ? { caCertificates: t.caCertificates } : {}),
    ...(min ? { minVersion: min } : {}),
    ...(max ? { maxVersion: max } : {}),
    ...(ciphers ? { ciphers } : {}),
    subjectAltNames: Object.freeze([...(t.subjectAltNames ?? [])]),
    verifyCertificateSpki: Object.freeze([...(t.verifyCertificateSpki ?? [])]),
    verifyCertificateHash: Object.freeze(
      (t.verifyCertificateHash ?? []).map((h) => h.replace(/:/g, '').toLowerCase()),
    ),
    ...(material ? { material } : {}),
  });
}

const DISABLED: ClientTls = Object.freeze({
  mode: 'DISABLE',
  subjectAltNames: Object.freeze([]),
  insecureSkipVerify: false,
  key: '',
});

/** A cluster's upstream TLS: DestinationRule `tls` at the level that applies (already merged). */
export function compileClientTls(
  t: ClientTLSSettings | undefined,
  store: CredentialStore,
  namespace: string,
  defaultSubjectAltNames: readonly string[] = [],
): ClientTls {
  const mode = t?.mode ?? 'DISABLE';
  if (!t || mode === 'DISABLE') return DISABLED;
  const material = lookup(store, clientCredentialKey(t, namespace));
  const sans = t.subjectAltNames?.length ? t.subjectAltNames : defaultSubjectAltNames;
  const c = {
    mode,
    ...(t.sni ? { sni: t.sni } : {}),
    subjectAltNames: Object.freeze([...sans]),
    insecureSkipVerify: t.insecureSkipVerify === true,
    ...(t.credentialName ? { credentialName: t.credentialName } : {}),
    ...(material ? { material } : {}),
  };
  const key = JSON.stringify([
    mode,
    c.sni ?? '',
    c.subjectAltNames,
    c.insecureSkipVerify,
    material?.hash ?? '',
  ]);
  return Object.freeze({ ...c, key });
}
