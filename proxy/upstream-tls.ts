// TLS origination: a cluster's ClientTls (DestinationRule `tls`) as Node connect options, and a
// failed handshake or verification in Envoy's words. Shared by every upstream pool, and meant for
// a TCP proxy too.
//
// What Istio asks of Envoy, and what is built here (cluster_tls.go, router.cc):
// - SNI: the DR's `sni`, else the request's authority after route rewrites without its port (auto
//   SNI), and none for an IP address.
// - Verification on by default, against the DR's CA or the system roots; `subjectAltNames` match
//   exactly (any SAN type; a DNS SAN may be a wildcard, as Envoy's dnsNameMatch); with no SANs and
//   no `sni`, the certificate must be valid for that authority's host (auto SAN validation); an
//   explicit `sni` with no SANs checks the chain only; `insecureSkipVerify` checks nothing.
// - TLS 1.2 to 1.3, ALPN http/1.1.
// Options are built once per pool (the secure context once per settings), never per request.

import { isIP } from 'node:net';
import {
  type ConnectionOptions,
  checkServerIdentity,
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
} from 'node:tls';
import type { ClientTls } from '../config/snapshot.js';

/** The modes that open TLS here; ISTIO_MUTUAL (mesh mTLS) is not served yet and stays plaintext. */
export function originates(tls: ClientTls): boolean {
  return tls.mode === 'SIMPLE' || tls.mode === 'MUTUAL';
}

/**
 * The cluster's TLS material is unusable (a Secret or file missing or broken): Envoy's cluster
 * waits for its secret and answers `no healthy upstream` (UH) meanwhile, opening no connection.
 */
export function tlsUnusable(tls: ClientTls): boolean {
  return tls.material?.error !== undefined && originates(tls);
}

/**
 * What of a request's authority the cluster's TLS depends on: its host without port (SNI and
 * hostname check), or '' when nothing does (plaintext, or an explicit `sni`). Pools are keyed by
 * it, since one connection carries one SNI. No allocation for an authority without a port.
 */
export function tlsHost(tls: ClientTls, authority: string): string {
  if (tls.sni !== undefined || !originates(tls)) return '';
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const end = authority.indexOf(']');
    return end < 0 ? authority : authority.slice(1, end);
  }
  const colon = authority.lastIndexOf(':');
  if (colon < 0 || authority.indexOf(':') !== colon) return authority;
  for (let i = colon + 1; i < authority.length; i++) {
    const c = authority.charCodeAt(i);
    if (c < 48 || c > 57) return authority;
  }
  return authority.slice(0, colon);
}

/** The SNI a connection for `host` (from tlsHost) sends, if any. */
export function serverName(tls: ClientTls, host: string): string | undefined {
  if (tls.sni !== undefined) return tls.sni;
  return host !== '' && isIP(host) === 0 ? host : undefined;
}

const CONTEXTS = new Map<string, SecureContext>();
const MAX_CONTEXTS = 128;

/** One secure context per mode and material (the CA bundle parsed once, not per connection). */
function contextFor(tls: ClientTls): SecureContext {
  const m = tls.material;
  const key = `${tls.mode}|${m?.hash ?? 'system'}`;
  let ctx = CONTEXTS.get(key);
  if (ctx === undefined) {
    ctx = createSecureContext({
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.3',
      ...(m?.ca !== undefined ? { ca: m.ca } : {}),
      ...(m?.crl !== undefined ? { crl: m.crl } : {}),
      ...(tls.mode === 'MUTUAL' && m?.cert !== undefined && m.key !== undefined
        ? { cert: m.cert, key: m.key }
        : {}),
    });
    if (CONTEXTS.size >= MAX_CONTEXTS) CONTEXTS.delete(CONTEXTS.keys().next().value as string);
    CONTEXTS.set(key, ctx);
  }
  return ctx;
}

const NO_CHECK = (): undefined => undefined;

/**
 * Connect options for a cluster's TLS and the host a pool serves (tlsHost: '' for none). The
 * caller adds where to connect (host/port or path) and, for the raw pool, `onread`.
 */
export function upstreamTlsOptions(
  tls: ClientTls,
  host: string,
  alpn: readonly string[] = ['http/1.1'],
): ConnectionOptions {
  const servername = serverName(tls, host);
  return {
    secureContext: contextFor(tls),
    ...(servername !== undefined ? { servername } : {}),
    rejectUnauthorized: !tls.insecureSkipVerify,
    checkServerIdentity: verifier(tls, host),
    ALPNProtocols: [...alpn],
  };
}

function verifier(
  tls: ClientTls,
  host: string,
): (hostname: string, cert: PeerCertificate) => Error | undefined {
  if (tls.insecureSkipVerify) return NO_CHECK;
  const sans = tls.subjectAltNames;
  if (sans.length > 0) return (_h, cert) => matchSans(sans, cert);
  // An explicit SNI without SANs: the chain only. No host either (no authority): nothing to check.
  if (tls.sni !== undefined || host === '') return NO_CHECK;
  // Auto SAN validation against the request's host (not the endpoint address Node would use).
  return (_h, cert) => checkServerIdentity(host, cert);
}

/** The certificate's SANs as `[type, value]`: DNS, URI, IP Address, email. */
function certSans(cert: PeerCertificate): [string, string][] {
  const out: [string, string][] = [];
  const text = cert.subjectaltname ?? '';
  // Node quotes a value holding a comma or a quote as a JSON string.
  const re = /(DNS|URI|IP Address|email):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (let m = re.exec(text); m !== null && m[0] !== ''; m = re.exec(text)) {
    const raw = m[2] as string;
    let value = raw;
    if (raw.startsWith('"'))
      try {
        value = JSON.parse(raw) as string;
      } catch {
        // keep the raw text
      }
    out.push([m[1] as string, value]);
  }
  return out;
}

/** Envoy's dnsNameMatch: exact (case-insensitive), or a `*.` SAN standing for one label. */
function dnsMatch(want: string, san: string): boolean {
  const w = want.toLowerCase();
  const s = san.toLowerCase();
  if (w === s) return true;
  if (!s.startsWith('*.')) return false;
  const dot = w.indexOf('.');
  return dot > 0 && w.slice(dot) === s.slice(1);
}

/** Exact SAN match (DestinationRule/ServiceEntry `subjectAltNames`) of any SAN type. */
export function matchSans(want: readonly string[], cert: PeerCertificate): Error | undefined {
  const have = certSans(cert);
  for (const w of want)
    for (const [type, v] of have) if (type === 'DNS' ? dnsMatch(w, v) : v === w) return undefined;
  const err = new Error(
    `certificate SANs [${have.map(([t, v]) => `${t}:${v}`).join(', ')}] match none of [${want.join(', ')}]`,
  ) as Error & { code: string };
  err.code = 'ERR_TLS_CERT_ALTNAME_INVALID';
  return err;
}

// Envoy's transport failure reason: `TLS_error:|<packed code>:<lib>:OPENSSL_internal:<REASON>...
// :TLS_error_end` (ssl_socket.cc drainErrorQueue), with BoringSSL's packed codes (lib << 24 |
// reason). Node's OpenSSL says the same things under other names: map them.

const SSL_LIB = 16 << 24;
const SYS_LIB = 2 << 24;
const VERIFY_FAILED = `TLS_error:|${SSL_LIB + 125}:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED`;

/** OpenSSL's X509 verify results (Node puts them in `code`): all CERTIFICATE_VERIFY_FAILED. */
const VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'ERROR_IN_CRL_LAST_UPDATE_FIELD',
  'ERROR_IN_CRL_NEXT_UPDATE_FIELD',
  'OUT_OF_MEM',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

/** BoringSSL reason codes of the SSL library besides alerts. */
const SSL_REASONS: Record<string, number> = {
  WRONG_VERSION_NUMBER: 247,
  CERTIFICATE_VERIFY_FAILED: 125,
  UNSUPPORTED_PROTOCOL: 252,
  NO_SHARED_CIPHER: 184,
  HANDSHAKE_FAILURE_ON_CLIENT_HELLO: 227,
  UNEXPECTED_MESSAGE: 233,
  UNEXPECTED_RECORD: 234,
  DECODE_ERROR: 137,
  BAD_ECC_CERT: 107,
  PEER_DID_NOT_RETURN_A_CERTIFICATE: 196,
  TLSV1_ALERT_NO_APPLICATION_PROTOCOL: 1120,
};

/** TLS alert descriptions (RFC 8446 §6) by the words OpenSSL uses after `_ALERT_`. */
const ALERTS: Record<string, number> = {
  CLOSE_NOTIFY: 0,
  UNEXPECTED_MESSAGE: 10,
  BAD_RECORD_MAC: 20,
  DECRYPTION_FAILED: 21,
  RECORD_OVERFLOW: 22,
  DECOMPRESSION_FAILURE: 30,
  HANDSHAKE_FAILURE: 40,
  NO_CERTIFICATE: 41,
  BAD_CERTIFICATE: 42,
  UNSUPPORTED_CERTIFICATE: 43,
  CERTIFICATE_REVOKED: 44,
  CERTIFICATE_EXPIRED: 45,
  CERTIFICATE_UNKNOWN: 46,
  ILLEGAL_PARAMETER: 47,
  UNKNOWN_CA: 48,
  ACCESS_DENIED: 49,
  DECODE_ERROR: 50,
  DECRYPT_ERROR: 51,
  EXPORT_RESTRICTION: 60,
  PROTOCOL_VERSION: 70,
  INSUFFICIENT_SECURITY: 71,
  INTERNAL_ERROR: 80,
  INAPPROPRIATE_FALLBACK: 86,
  USER_CANCELLED: 90,
  NO_RENEGOTIATION: 100,
  MISSING_EXTENSION: 109,
  UNSUPPORTED_EXTENSION: 110,
  CERTIFICATE_UNOBTAINABLE: 111,
  UNRECOGNIZED_NAME: 112,
  BAD_CERTIFICATE_STATUS_RESPONSE: 113,
  BAD_CERTIFICATE_HASH_VALUE: 114,
  UNKNOWN_PSK_IDENTITY: 115,
  CERTIFICATE_REQUIRED: 116,
  NO_APPLICATION_PROTOCOL: 120,
};

/** An alert's BoringSSL name: SSLV3_ALERT_* for the SSLv3-era ones, else TLSV1_ALERT_*. */
function alertName(name: string, n: number): string {
  const sslv3 = n <= 47 && n !== 21 && n !== 22;
  return `${sslv3 ? 'SSLV3' : 'TLSV1'}_ALERT_${name}`;
}

function sslReason(code: number, reason: string): string {
  return `TLS_error:|${SSL_LIB + code}:SSL routines:OPENSSL_internal:${reason}`;
}

/** errno values Envoy's BoringSSL reports under `system library` when the peer cuts a handshake. */
const SYSTEM_ERRORS: Record<string, [number, string]> = {
  ECONNRESET: [104, 'Connection reset by peer'],
  EPIPE: [32, 'Broken pipe'],
};

/** Node's TLS error codes that mean the handshake or the certificate failed (connect failures). */
export function isTlsFailureCode(code: string | undefined): boolean {
  if (code === undefined) return false;
  return (
    code.startsWith('ERR_SSL_') ||
    VERIFY_CODES.has(code) ||
    code === 'ERR_TLS_CERT_ALTNAME_INVALID' ||
    code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
  );
}

/**
 * Envoy's transport failure reason for a TLS failure (`TLS_error:|...:TLS_error_end`), or
 * undefined when the error is no TLS failure. `handshake`: the error ended a handshake in progress
 * (a reset then reads as BoringSSL's system-library error, not a TCP connect error).
 */
export function tlsFailureReason(
  err: { code?: string | undefined } | undefined,
  handshake = false,
): string | undefined {
  const code = err?.code;
  if (code === undefined) return undefined;
  let body: string | undefined;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') body = `${VERIFY_FAILED}:verify cert failed: verify SAN list`;
  else if (VERIFY_CODES.has(code)) body = VERIFY_FAILED;
  else if (code.startsWith('ERR_SSL_')) {
    const name = code.slice('ERR_SSL_'.length);
    const alert = /^(?:SSLV3|TLSV1|TLSV13)_ALERT_(.+)$/.exec(name);
    const n = alert ? ALERTS[alert[1] as string] : undefined;
    if (alert && n !== undefined) body = sslReason(1000 + n, alertName(alert[1] as string, n));
    else {
      const r = SSL_REASONS[name];
      body =
        r !== undefined ? sslReason(r, name) : `TLS_error:|${SSL_LIB}:SSL routines:OPENSSL_internal:${name}`;
    }
  } else if (handshake) {
    const sys = SYSTEM_ERRORS[code];
    if (sys) body = `TLS_error:|${SYS_LIB + sys[0]}:system library:OPENSSL_internal:${sys[1]}`;
  }
  return body === undefined ? undefined : `${body}:TLS_error_end`;
}
