// One pooled upstream HTTP/1.1 connection: the socket, a request head written in one write with
// its buffered body, and a minimal response parser (status line, headers, Content-Length /
// chunked / close-delimited bodies) that reads into one shared buffer. The pool (h1-pool.ts)
// decides which connection serves which request.

import { connect, type OnReadOpts, type Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { ConnectionBudget } from './cluster-circuit.js';
import { TOKEN } from './http-util.js';
import {
  asFailure,
  handshakeFailure,
  type PoolHandler,
  type PoolRequest,
  UpstreamFailure,
} from './upstream-pool.js';

/** The raw pool speaks the upstream pool contract (upstream-pool.ts). */
export type H1Handler = PoolHandler;
export type H1Request = PoolRequest;

export interface H1PoolOptions {
  /** Maximum sockets of this pool when no cluster-wide budget is given. */
  connections: number;
  /** The cluster's connection budget (tcp.maxConnections across all its pools). */
  budget?: ConnectionBudget;
  connectTimeoutMs: number;
  /** Close an idle keep-alive socket after this long (shorter than typical upstream idle timeouts). */
  keepAliveMs: number;
  /** 0 = unlimited. */
  maxRequestsPerConnection: number;
  /** Close a connection once it is this old (tcp.maxConnectionDuration); 0 = never. */
  maxConnectionDurationMs?: number;
  /** Enable TCP keepalive probes after this idle time (tcp.tcpKeepalive.time); 0 = off. */
  tcpKeepaliveMs?: number;
  /**
   * Originate TLS with these options (upstream-tls.ts: SNI, context, verification); the
   * connection is ready once the handshake and the certificate check passed. Absent: plaintext.
   */
  tls?: ConnectionOptions;
}

const NO_BODY_STATUS = (s: number) => s === 204 || s === 304 || (s >= 100 && s < 200);
const MAX_HEAD = 64 * 1024;
/** Every pool socket reads into this one buffer; a read is consumed before the next one lands. */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
/** A control byte other than HTAB, or a CR or LF that is not part of a CRLF. */
const CONTROL = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n/;

/** What a connection needs from its pool. */
export interface ConnOwner {
  readonly opts: H1PoolOptions;
  /** The last TLS session a connection of this pool got: the next one resumes it. */
  tlsSession?: Buffer | undefined;
  /** An exchange finished on a keep-alive connection (or it just connected). */
  release(c: Conn, fresh?: boolean): void;
  /** The socket closed. */
  forget(c: Conn): void;
}

export class Conn {
  readonly socket: Socket;
  private handler: H1Handler | undefined;
  private head: Buffer | undefined;
  private state:
    | 'idle'
    | 'head'
    | 'body'
    | 'chunk-size'
    | 'chunk-data'
    | 'chunk-crlf'
    | 'trailers'
    | 'until-close' = 'idle';
  private remaining = 0;
  private keepAlive = true;
  private isHead = false;
  private gotBytes = false;
  requests = 0;
  reused = false;
  expired = false;
  /** Date.now() when parked idle (0 while busy); the pool's sweep closes stale ones. */
  idleSince = 0;
  closed = false;
  private chunkLine: Buffer | undefined;
  private readonly resume = () => this.socket.resume();
  private readonly abort = (err?: Error) =>
    this.fail(err ?? new UpstreamFailure('request aborted', 'UND_ERR_ABORTED', 'reset'), true);

  constructor(
    readonly pool: ConnOwner,
    host: string,
    port: number,
    connected: (c: Conn, err?: Error) => void,
  ) {
    // Reads land in one shared buffer (no stream push, no Buffer per read); onData copies what
    // outlives the call (a partial head or chunk line, body bytes handed to the handler).
    const onread = {
      buffer: READ_BUFFER,
      callback: (n: number, b: Uint8Array) => {
        this.onData((b as Buffer).subarray(0, n));
        return true;
      },
    };
    // A `unix://` endpoint address is a socket path (the port does not apply).
    const tls = pool.opts.tls;
    const s =
      tls === undefined
        ? host.startsWith('unix://')
          ? connect({ path: host.slice('unix://'.length), onread })
          : connect({ host, port, noDelay: true, onread })
        : this.connectTls(tls, host, port, onread);
    this.socket = s;
    // The connect timeout covers the TLS handshake too (Envoy: connected once the handshake is).
    let timer: NodeJS.Timeout | undefined = setTimeout(() => {
      timer = undefined;
      this.closed = true;
      connected(this, new UpstreamFailure('connect timeout', 'UND_ERR_CONNECT_TIMEOUT', 'connect'));
      s.destroy();
    }, pool.opts.connectTimeoutMs);
    s.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      const o = pool.opts;
      if (o.tcpKeepaliveMs) s.setKeepAlive(true, o.tcpKeepaliveMs);
      if (o.maxConnectionDurationMs) {
        // Envoy max_connection_duration: finish the exchange in flight, then close.
        const t = setTimeout(() => {
          this.expired = true;
          if (!this.handler) s.destroy();
        }, o.maxConnectionDurationMs);
        t.unref();
        s.once('close', () => clearTimeout(t));
      }
      connected(this);
    });
    s.on('error', (err: Error) => {
      if (timer) {
        clearTimeout(timer);
        timer = undefined;
        this.closed = true;
        connected(this, tls === undefined ? err : handshakeFailure(err));
        return;
      }
      this.fail(err, false);
    });
    s.on('close', () => {
      this.closed = true;
      if (timer) {
        clearTimeout(timer);
        timer = undefined;
      }
      if (this.state === 'until-close') this.complete(null);
      else if (this.handler)
        this.fail(new UpstreamFailure('other side closed', 'UND_ERR_SOCKET', 'reset'), false);
      this.pool.forget(this);
    });
  }

  /** A TLS connection (reads still land in the shared buffer: `onread` works for TLS sockets). */
  private connectTls(tls: ConnectionOptions, host: string, port: number, onread: OnReadOpts): Socket {
    const session = this.pool.tlsSession;
    const where = host.startsWith('unix://') ? { path: host.slice('unix://'.length) } : { host, port };
    // Node's typings omit `onread` for TLS; tls.connect passes it to the socket (Node >= 20).
    const opts: ConnectionOptions & { onread: OnReadOpts } = {
      ...tls,
      ...where,
      onread,
      ...(session ? { session } : {}),
    };
    const s = tlsConnect(opts);
    if (!('path' in where)) s.setNoDelay(true);
    s.on('session', (sess: Buffer) => {
      this.pool.tlsSession = sess;
    });
    return s;
  }

  send(req: H1Request, handler: H1Handler): void {
    this.handler = handler;
    this.requests++;
    this.state = 'head';
    this.head = undefined;
    this.gotBytes = false;
    this.keepAlive = true;
    this.isHead = req.method === 'HEAD';
    let h = `${req.method} ${req.path} HTTP/1.1\r\n`;
    const headers = req.headers;
    for (const k in headers) {
      const v = headers[k];
      if (v === undefined || k === 'content-length' || k === 'transfer-encoding') continue;
      if (typeof v === 'string') h += `${k}: ${v}\r\n`;
      else for (const one of v) h += `${k}: ${one}\r\n`;
    }
    const body = req.body as Buffer | null; // the pool takes buffered bodies only
    if (body) h += `content-length: ${body.length}\r\n`;
    else if (headers['content-length'] !== undefined) h += 'content-length: 0\r\n';
    if (
      this.pool.opts.maxRequestsPerConnection > 0 &&
      this.requests >= this.pool.opts.maxRequestsPerConnection
    ) {
      h += 'connection: close\r\n';
      this.keepAlive = false;
    }
    h += '\r\n';
    handler.onConnect(this.abort);
    if (!this.handler) return; // aborted synchronously
    if (body && body.length > 0) {
      this.socket.cork();
      this.socket.write(h, 'latin1');
      this.socket.write(body);
      this.socket.uncork();
    } else this.socket.write(h, 'latin1');
  }

  private fail(err: Error, destroy: boolean): void {
    const h = this.handler;
    this.handler = undefined;
    this.state = 'idle';
    if (destroy || !this.closed) this.socket.destroy();
    if (!h) return;
    // Whether the socket had served before and whether anything came back: a reused socket that
    // died before any response byte is the idle-socket race, which the forwarder replays.
    h.onError(asFailure(err, this.reused, this.gotBytes));
  }

  private complete(trailers: string[] | null): void {
    const h = this.handler;
    this.handler = undefined;
    this.state = 'idle';
    if (this.socket.isPaused()) this.socket.resume();
    h?.onComplete(trailers);
    if (this.keepAlive && !this.closed && !this.expired) this.pool.release(this);
    else this.socket.destroy();
  }

  private protocolError(msg: string): void {
    this.fail(new UpstreamFailure(msg, 'HPE_INVALID', 'protocol'), true);
  }

  private onData(d: Buffer): void {
    if (!this.handler) {
      // Bytes on an idle socket: the upstream is confused; do not reuse it.
      if (d.length > 0) this.socket.destroy();
      return;
    }
    this.gotBytes = true;
    let buf: Buffer = d;
    while (buf.length > 0 && this.handler) {
      switch (this.state) {
        case 'head': {
          const all = this.head ? Buffer.concat([this.head, buf]) : buf;
          const end = all.indexOf('\r\n\r\n');
          if (end < 0) {
            if (all.length > MAX_HEAD) return this.protocolError('response head too large');
            this.head = all === buf ? Buffer.from(all) : all;
            return;
          }
          this.head = undefined;
          const rest = all.subarray(end + 4);
          if (!this.parseHead(all.toString('latin1', 0, end))) return;
          buf = rest;
          break;
        }
        case 'body': {
          const n = Math.min(this.remaining, buf.length);
          const chunk = n === buf.length ? buf : buf.subarray(0, n);
          this.remaining -= n;
          buf = buf.subarray(n);
          if (!this.handler.onData(Buffer.from(chunk))) this.socket.pause();
          if (this.remaining === 0) this.complete(null);
          break;
        }
        case 'until-close':
          if (!this.handler.onData(Buffer.from(buf))) this.socket.pause();
          return;
        case 'chunk-size':
        case 'trailers': {
          const all = this.chunkLine ? Buffer.concat([this.chunkLine, buf]) : buf;
          const nl = all.indexOf('\r\n');
          if (nl < 0) {
            if (all.length > 4096) return this.protocolError('chunk line too long');
            this.chunkLine = all === buf ? Buffer.from(all) : all;
            return;
          }
          this.chunkLine = undefined;
          const line = all.toString('latin1', 0, nl);
          buf = all.subarray(nl + 2);
          if (this.state === 'trailers') {
            if (line === '') this.complete(null);
            continue;
          }
          const semi = line.indexOf(';');
          const hex = (semi >= 0 ? line.slice(0, semi) : line).trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) return this.protocolError('invalid chunk size');
          const size = Number.parseInt(hex, 16);
          if (size === 0) this.state = 'trailers';
          else {
            this.remaining = size;
            this.state = 'chunk-data';
          }
          break;
        }
        case 'chunk-data': {
          const n = Math.min(this.remaining, buf.length);
          const chunk = n === buf.length ? buf : buf.subarray(0, n);
          this.remaining -= n;
          buf = buf.subarray(n);
          if (!this.handler.onData(Buffer.from(chunk))) this.socket.pause();
          if (this.remaining === 0) this.state = 'chunk-crlf';
          break;
        }
        case 'chunk-crlf': {
          const all = this.chunkLine ? Buffer.concat([this.chunkLine, buf]) : buf;
          if (all.length < 2) {
            this.chunkLine = all === buf ? Buffer.from(all) : all;
            return;
          }
          this.chunkLine = undefined;
          if (all[0] !== 13 || all[1] !== 10) return this.protocolError('missing CRLF after chunk');
          buf = all.subarray(2);
          this.state = 'chunk-size';
          break;
        }
        default:
          return;
      }
    }
  }

  /** Status line and headers. Returns false when the exchange ended (error or interim). */
  private parseHead(text: string): boolean {
    // One scan of the whole head for bytes that must not be there: a bare CR/LF or control byte
    // inside a line would, passed on, split the head downstream.
    if (CONTROL.test(text)) {
      this.protocolError('invalid header line');
      return false;
    }
    const eol = text.indexOf('\r\n');
    const status = eol < 0 ? text : text.slice(0, eol);
    if (
      !status.startsWith('HTTP/1.') ||
      status.length < 12 ||
      (status[12] !== undefined && status[12] !== ' ')
    ) {
      this.protocolError('invalid status line');
      return false;
    }
    const code = Number(status.slice(9, 12));
    if (!Number.isInteger(code) || code < 100) {
      this.protocolError('invalid status code');
      return false;
    }
    const http10 = status[7] === '0';
    if (code >= 100 && code < 200) {
      // Interim response (100 Continue, 103 Early Hints): skip it, the final head follows.
      this.state = 'head';
      return true;
    }
    // Names are passed on lower-cased (HTTP/1.1 names are case-insensitive; Envoy lower-cases).
    const raw: string[] = [];
    let length = -1;
    let chunked = false;
    let sawTransferEncoding = false;
    let conn: string | undefined;
    let pos = eol < 0 ? text.length : eol + 2;
    while (pos < text.length) {
      let next = text.indexOf('\r\n', pos);
      if (next < 0) next = text.length;
      const c = text.indexOf(':', pos);
      const first = text.charCodeAt(pos);
      if (c <= pos || c > next || first === 32 || first === 9) {
        this.protocolError('invalid header line');
        return false;
      }
      const name = text.slice(pos, c);
      if (!TOKEN.test(name)) {
        this.protocolError('invalid header line');
        return false;
      }
      const lower = name.toLowerCase();
      let a = c + 1;
      let b = next;
      while (a < b && (text.charCodeAt(a) === 32 || text.charCodeAt(a) === 9)) a++;
      while (b > a && (text.charCodeAt(b - 1) === 32 || text.charCodeAt(b - 1) === 9)) b--;
      const value = text.slice(a, b);
      pos = next + 2;
      if (lower === 'content-length') {
        const n = Number(value);
        if (!/^\d+$/.test(value) || (length >= 0 && length !== n)) {
          this.protocolError('invalid content-length');
          return false;
        }
        length = n;
      } else if (lower === 'transfer-encoding') {
        sawTransferEncoding = true;
        chunked = value.toLowerCase().endsWith('chunked');
      } else if (lower === 'connection') conn = value.toLowerCase();
      raw.push(lower, value);
    }
    if (length >= 0 && sawTransferEncoding) {
      // Both framings: a response-splitting attempt or a broken upstream (Envoy rejects it too).
      this.protocolError('both content-length and transfer-encoding');
      return false;
    }
    if (conn?.includes('close') || (http10 && !conn?.includes('keep-alive'))) this.keepAlive = false;
    const h = this.handler as H1Handler;
    h.onHeaders(code, raw, this.resume, status.slice(13));
    if (!this.handler) return false;
    if (this.isHead || NO_BODY_STATUS(code)) {
      this.complete(null);
      return false;
    }
    if (chunked) this.state = 'chunk-size';
    else if (length >= 0) {
      if (length === 0) {
        this.complete(null);
        return false;
      }
      this.remaining = length;
      this.state = 'body';
    } else {
      this.keepAlive = false;
      this.state = 'until-close';
    }
    return true;
  }
}
