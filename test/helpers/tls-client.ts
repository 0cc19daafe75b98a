// A TLS client for end-to-end tests: one HTTP/1.1 request over a fresh node:tls connection with
// the SNI, trust, client certificate and versions a case asks for, reporting what the handshake
// negotiated and how a refusal looked (an alert, a reset, a clean close) rather than throwing.

import { type ConnectionOptions, connect, type TLSSocket } from 'node:tls';

export interface TlsAnswer {
  /** undefined: no HTTP response (refused). */
  status?: number;
  body: string;
  headers: Record<string, string>;
  /** The server certificate's subject CN, when the handshake completed. */
  peerCN?: string;
  protocol?: string;
  cipher?: string;
  alpn?: string | false;
  /** How a connection without a response ended: an error code, `closed`, or `timeout`. */
  refused?: string;
}

export interface TlsRequest {
  port: number;
  /** SNI; omit for none. */
  servername?: string;
  host?: string;
  path?: string;
  ca?: string;
  cert?: string;
  key?: string;
  headers?: Record<string, string>;
  minVersion?: ConnectionOptions['minVersion'];
  maxVersion?: ConnectionOptions['maxVersion'];
  ciphers?: string;
  ALPNProtocols?: string[];
  /** Skip verifying the server (default: verify against `ca`). */
  insecure?: boolean;
  timeoutMs?: number;
}

export function tlsRequest(o: TlsRequest): Promise<TlsAnswer> {
  return new Promise((resolve) => {
    const opts: ConnectionOptions = {
      host: '127.0.0.1',
      port: o.port,
      ...(o.servername !== undefined ? { servername: o.servername } : {}),
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.cert ? { cert: o.cert, key: o.key } : {}),
      ...(o.minVersion ? { minVersion: o.minVersion } : {}),
      ...(o.maxVersion ? { maxVersion: o.maxVersion } : {}),
      ...(o.ciphers ? { ciphers: o.ciphers } : {}),
      ...(o.ALPNProtocols ? { ALPNProtocols: o.ALPNProtocols } : {}),
      rejectUnauthorized: !o.insecure,
      // The server's name is checked against the SNI we send (or the Host for no SNI).
      checkServerIdentity: () => undefined,
    };
    const s: TLSSocket = connect(opts);
    let raw = Buffer.alloc(0);
    let done = false;
    const answer: TlsAnswer = { body: '', headers: {} };
    const finish = (refused?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const text = raw.toString('latin1');
      const sep = text.indexOf('\r\n\r\n');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m && sep > 0) {
        answer.status = Number(m[1]);
        for (const line of text.slice(0, sep).split('\r\n').slice(1)) {
          const i = line.indexOf(':');
          answer.headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
        }
        let body: Buffer = Buffer.from(text.slice(sep + 4), 'latin1');
        if (answer.headers['transfer-encoding'] === 'chunked') body = dechunk(body);
        answer.body = body.toString('utf8');
      } else answer.refused = refused ?? 'closed';
      resolve(answer);
    };
    const timer = setTimeout(() => finish('timeout'), o.timeoutMs ?? 5000);
    s.once('secureConnect', () => {
      const cert = s.getPeerCertificate();
      answer.peerCN = cert?.subject?.CN as string | undefined;
      answer.protocol = s.getProtocol() ?? undefined;
      answer.cipher = s.getCipher()?.name;
      answer.alpn = s.alpnProtocol ?? false;
      const headers = {
        host: o.host ?? o.servername ?? 'localhost',
        connection: 'close',
        ...(o.headers ?? {}),
      };
      const head = Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('');
      s.write(`GET ${o.path ?? '/'} HTTP/1.1\r\n${head}\r\n`);
    });
    s.on('data', (d: Buffer) => {
      raw = Buffer.concat([raw, d]);
    });
    s.once('error', (e: Error & { code?: string }) => finish(e.code ?? e.message));
    s.once('end', () => finish());
    s.once('close', () => finish());
  });
}

/** A chunked body's data (a test client's reading: no extensions, no trailers). */
function dechunk(b: Buffer): Buffer {
  const parts: Buffer[] = [];
  let i = 0;
  while (i < b.length) {
    const eol = b.indexOf('\r\n', i);
    if (eol < 0) break;
    const n = Number.parseInt(b.subarray(i, eol).toString('latin1'), 16);
    if (!(n > 0)) break;
    parts.push(b.subarray(eol + 2, eol + 2 + n));
    i = eol + 2 + n + 2;
  }
  return Buffer.concat(parts);
}
