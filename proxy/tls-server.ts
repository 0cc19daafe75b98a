// TLS termination for one filter chain (a Gateway server with SIMPLE, MUTUAL or OPTIONAL_MUTUAL):
// a non-listening tls.Server the dispatcher hands connections to once their ClientHello chose this
// chain. The bytes already read are put back on the socket and replayed into the handshake.
//
// Client certificates: Node's server (requestCert + rejectUnauthorized) answers a missing
// certificate with a TLS alert, as Envoy does, but a certificate from an unknown CA only by
// destroying the socket after the handshake (no alert). OPTIONAL_MUTUAL asks for a certificate
// without requiring it: a certificate that is sent must verify (`authorized` alone says nothing
// without one). subjectAltNames, verifyCertificateHash and verifyCertificateSpki are checked on
// the secure connection; a mismatch closes it before any request is read.
//
// Rotation: new material builds a new context (setSecureContext); connections open on the old
// one keep it and keep working. Material that is not usable closes every connection of the chain.

import { createHash, X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import {
  createServer,
  type SecureContextOptions,
  type Server,
  type TLSSocket,
  type TlsOptions,
} from 'node:tls';
import type { ServerTls } from '../config/snapshot.js';
import type { TlsFacts } from './exchange.js';

/** Envoy's transport socket connect timeout on gateway chains: the handshake must end in 15 s. */
export const HANDSHAKE_TIMEOUT_MS = 15_000;

/** What a terminated connection tells the HTTP (or TCP) layer behind it. */
export interface TerminatedFacts extends TlsFacts {
  /** The x-forwarded-client-cert value for a connection with a client certificate (SANITIZE_SET). */
  readonly xfcc?: string | undefined;
  readonly version?: string | undefined;
  readonly cipher?: string | undefined;
}

export type RefusalKind = 'handshake' | 'client_certificate' | 'credential';

export interface ChainTlsOptions {
  readonly tls: ServerTls;
  /** ALPN protocols offered, in preference order (http/1.1 only until h2 is served). */
  readonly alpn: readonly string[];
  /** A connection completed its handshake and passed every check. */
  onSecure(sock: TLSSocket, facts: TerminatedFacts): void;
  /** A connection was refused: its handshake failed, its client certificate, or no usable material. */
  onRefused(kind: RefusalKind, reason: string): void;
}

export class ChainTls {
  private server: Server | undefined;
  /** The mode the server was built for: requestCert/rejectUnauthorized are not context options. */
  private serverMode: ServerTls['mode'] | undefined;
  private settingsKey = '';
  private tls: ServerTls;
  /** The `By=` of XFCC: this chain's own certificate's URI SAN, if any. */
  private by: string | undefined;

  constructor(private readonly opts: ChainTlsOptions) {
    this.tls = opts.tls;
    this.update(opts.tls);
  }

  /** Follow a new snapshot's settings: rebuild the context only when material or settings changed. */
  update(tls: ServerTls): void {
    this.tls = tls;
    const m = tls.material;
    const key = JSON.stringify([
      m?.hash,
      tls.mode,
      tls.minVersion,
      tls.maxVersion,
      tls.ciphers,
      this.opts.alpn,
    ]);
    if (key === this.settingsKey) return;
    this.settingsKey = key;
    if (!m || m.error !== undefined || !m.cert || !m.key) {
      this.server?.close();
      this.server = undefined;
      return;
    }
    const mutual = tls.mode === 'MUTUAL' || tls.mode === 'OPTIONAL_MUTUAL';
    const ctx: SecureContextOptions = {
      cert: m.cert,
      key: m.key,
      ...(mutual && m.ca ? { ca: m.ca } : {}),
      ...(mutual && m.crl ? { crl: m.crl } : {}),
      ...(tls.minVersion ? { minVersion: tls.minVersion } : {}),
      ...(tls.maxVersion ? { maxVersion: tls.maxVersion } : {}),
      ...(tls.ciphers ? { ciphers: tls.ciphers } : {}),
      // Sessions never cross chains or settings: a resumed session skips client verification.
      sessionIdContext: createHash('sha256').update(key).digest('hex').slice(0, 32),
    };
    this.by = ownUriSan(m.cert);
    if (this.server && this.serverMode !== tls.mode) {
      // A new mode needs a new server; connections open on the old one keep their sockets.
      this.server.close();
      this.server = undefined;
    }
    if (this.server) {
      try {
        this.server.setSecureContext(ctx);
      } catch (e) {
        this.opts.onRefused('credential', `context: ${(e as Error).message}`);
      }
      return;
    }
    const options: TlsOptions = {
      ...ctx,
      requestCert: mutual,
      rejectUnauthorized: tls.mode === 'MUTUAL',
      ALPNProtocols: [...this.opts.alpn],
      handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
    };
    let server: Server;
    try {
      server = createServer(options);
    } catch (e) {
      this.opts.onRefused('credential', `context: ${(e as Error).message}`);
      return;
    }
    server.on('secureConnection', (sock: TLSSocket) => this.secure(sock));
    server.on('tlsClientError', (err: Error & { code?: string }, sock: TLSSocket) => {
      // A MUTUAL certificate that does not verify: Node destroys the socket after the handshake
      // (no alert), which surfaces here as a hang-up with the verification error kept on it.
      const verify = sock.authorizationError;
      if (verify) this.opts.onRefused('client_certificate', `client certificate: ${String(verify)}`);
      else this.opts.onRefused(isClientCertError(err.code) ? 'client_certificate' : 'handshake', err.message);
    });
    this.server = server;
    this.serverMode = tls.mode;
  }

  /** Serve a connection whose first bytes (`head`, already read) are its ClientHello. */
  accept(sock: Socket, head: Buffer): void {
    const server = this.server;
    if (!server) {
      sock.destroy();
      this.opts.onRefused('credential', this.tls.material?.error ?? 'no usable certificate');
      return;
    }
    sock.pause();
    sock.unshift(head);
    server.emit('connection', sock);
  }

  private secure(sock: TLSSocket): void {
    const tls = this.tls;
    const peer = sock.getPeerX509Certificate();
    if (peer !== undefined) {
      // OPTIONAL_MUTUAL admits no certificate, never a bad one.
      const why = !sock.authorized ? String(sock.authorizationError) : mismatch(tls, peer);
      if (why !== undefined) {
        sock.destroy();
        this.opts.onRefused('client_certificate', `client certificate: ${why}`);
        return;
      }
    } else if (tls.mode === 'MUTUAL') {
      sock.destroy();
      this.opts.onRefused('client_certificate', 'client certificate required');
      return;
    }
    const alpn = sock.alpnProtocol;
    const facts: TerminatedFacts = {
      sni: typeof sock.servername === 'string' ? sock.servername : undefined,
      alpn: typeof alpn === 'string' ? alpn : undefined,
      peerIdentity: peer ? uriSans(peer)[0] : undefined,
      xfcc: peer ? xfcc(peer, this.by) : undefined,
      version: sock.getProtocol() ?? undefined,
      cipher: sock.getCipher()?.standardName,
    };
    this.opts.onSecure(sock, facts);
  }

  close(): void {
    this.server?.close();
    this.server = undefined;
  }
}

/**
 * A handshake that failed on the client certificate: none sent under MUTUAL, or an X.509
 * verification error (OpenSSL's names: UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_REVOKED, ...).
 */
function isClientCertError(code: string | undefined): boolean {
  if (code === undefined) return false;
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return true;
  return /^[A-Z0-9_]+$/.test(code) && !code.startsWith('ERR_') && !/^E[A-Z]+$/.test(code);
}

/** Why a verified client certificate is still refused by the server's SAN/hash/SPKI lists. */
function mismatch(tls: ServerTls, cert: X509Certificate): string | undefined {
  if (tls.subjectAltNames.length > 0) {
    const sans = allSans(cert);
    if (!tls.subjectAltNames.some((s) => sans.includes(s))) return 'no subject alt name matches';
  }
  const hashes = tls.verifyCertificateHash;
  const spkis = tls.verifyCertificateSpki;
  if (hashes.length > 0 || spkis.length > 0) {
    // Either list matching accepts (Envoy's default validator).
    const hash = createHash('sha256').update(cert.raw).digest('hex');
    if (hashes.includes(hash)) return undefined;
    const spki = createHash('sha256')
      .update(cert.publicKey.export({ type: 'spki', format: 'der' }))
      .digest('base64');
    if (spkis.includes(spki)) return undefined;
    return 'certificate hash or SPKI does not match';
  }
  return undefined;
}

/** `URI:x, DNS:y` → values, in order. */
function sanValues(cert: X509Certificate, kind: 'URI' | 'DNS'): string[] {
  const out: string[] = [];
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    if (part.startsWith(`${kind}:`)) out.push(part.slice(kind.length + 1));
  }
  return out;
}

function allSans(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .map((p) => p.slice(p.indexOf(':') + 1))
    .filter((v) => v !== '');
}

function uriSans(cert: X509Certificate): string[] {
  return sanValues(cert, 'URI');
}

function ownUriSan(pem: string): string | undefined {
  try {
    return uriSans(new X509Certificate(pem))[0];
  } catch {
    return undefined;
  }
}

/**
 * Envoy's XFCC element for a client certificate (gateway SANITIZE_SET, with Subject, Cert, URI and
 * DNS details): `By=...;Hash=...;Cert="...";Subject="...";URI=...;DNS=...`.
 */
export function xfcc(cert: X509Certificate, by: string | undefined): string {
  const parts: string[] = [];
  if (by) parts.push(`By=${by}`);
  parts.push(`Hash=${createHash('sha256').update(cert.raw).digest('hex')}`);
  parts.push(`Cert="${encodeURIComponent(cert.toString())}"`);
  parts.push(`Subject="${subjectLine(cert).replace(/"/g, '\\"')}"`);
  parts.push(`URI=${uriSans(cert)[0] ?? ''}`);
  for (const d of sanValues(cert, 'DNS')) parts.push(`DNS=${d}`);
  return parts.join(';');
}

/** The subject as Envoy prints it (RFC 2253 order: most specific first, comma-separated). */
function subjectLine(cert: X509Certificate): string {
  return cert.subject
    .split('\n')
    .filter((s) => s !== '')
    .reverse()
    .join(',');
}
