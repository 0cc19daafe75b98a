// The downstream fast path: HTTP/1.1 keep-alive connections whose requests are complete, plain
// and bodyless are served on the raw socket, without node:http's IncomingMessage/ServerResponse
// streams, timers and events per request. Everything else is handed to node:http, whole
// connection at a time, at a request boundary: the first request the strict parser below does
// not accept (a body, chunked framing, HTTP/1.0, an upgrade, Expect, a duplicate header, a head
// split across reads, any byte outside the grammar...) and every request after it on that
// connection go through node:http, its codec errors (400/431) and its timeouts. So the fast path
// only ever narrows what it serves; it never answers a request node:http would have rejected.
//
// Both paths hand the request path the same shapes (DownstreamRequest/DownstreamResponse in
// exchange.ts), so routing, upstream I/O, stats and logs are one code path. COURIER_FAST_DOWNSTREAM=0
// turns the fast path off (every connection goes straight to node:http).

import { type IncomingHttpHeaders, METHODS as METHODS_LIST, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { DownstreamRequest, DownstreamResponse, OutgoingHeaders } from './exchange.js';
import { connectionTokens, HOP_BY_HOP, TOKEN } from './http-util.js';

/** Head size node:http accepts (its maxHeaderSize); a larger head goes to node:http for its 431. */
const MAX_HEAD = 60 * 1024;
/** Pipelined bytes buffered while a response is in flight before the socket is paused. */
const MAX_PENDING = 64 * 1024;
const MAX_HEADERS = 200;

// Request line (origin-form target only) and header lines, each CRLF-terminated: the subset of
// RFC 9112 llhttp accepts too. Header values: HTAB, SP, VCHAR and obs-text; no obs-fold.
const HEAD_GRAMMAR =
  /^[A-Z]{1,20} \/[\x21-\x7e]* HTTP\/1\.1\r\n(?:[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*\r\n)*$/;
/** Header values node:http refuses to write (response splitting); names must be a TOKEN. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** Bodies up to this size are written with the head as one latin1 string (one write, no writev). */
const INLINE_BODY = 16 * 1024;

export interface FastServerOptions {
  /** Serve one parsed request (the worker's request path). */
  onRequest(req: DownstreamRequest, res: DownstreamResponse): void;
  /** Give a connection to node:http (its own connection listener); `data` is re-fed to it. */
  handoff(sock: Socket): void;
  keepAliveTimeoutMs: number;
  /** Requests served on the fast path / connections handed to node:http (shared by listeners). */
  counters: { fastRequests: number; handoffs: number };
}

/** The fast connections of one listener. */
export class FastServer {
  readonly connections = new Set<FastConnection>();
  draining = false;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(readonly opts: FastServerOptions) {}

  /**
   * Serve a new connection. `head`: what it sent already (read by the listener's dispatcher),
   * parsed here at once, in the tick it arrived, as if it were the connection's first read.
   */
  accept(sock: Socket, head?: Buffer): void {
    const c = new FastConnection(this, sock);
    this.connections.add(c);
    // Keep-alive timeout by a sweep, not a socket timer (node refreshes those on every read and
    // write, a timer-list insert twice per request).
    if (!this.sweeper && !this.draining) {
      const every = Math.max(50, Math.min(5000, this.opts.keepAliveTimeoutMs / 4));
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    }
    if (head !== undefined) c.data(head);
  }

  private sweep(): void {
    const cutoff = Date.now() - this.opts.keepAliveTimeoutMs;
    for (const c of this.connections) c.closeIfIdleSince(cutoff);
  }

  /** Drain: close idle connections now, the busy ones after their response (Connection: close). */
  closeIdle(): void {
    this.draining = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const c of this.connections) c.closeIfIdle();
  }
}

class FastConnection {
  private buf: Buffer | undefined;
  private res: FastResponse | undefined;
  private parsing = false;
  /** Reading stopped: too many pipelined bytes while a response is in flight. */
  private inputPaused = false;
  /** Parsing stopped until the client reads what was written (node:http's needDrain pause). */
  private awaitingDrain = false;
  private gone = false;
  private readonly onData = (chunk: Buffer) => this.data(chunk);
  private readonly onClose = () => this.closed();
  private readonly onEnd = () => this.ended();
  private readonly onDrain = () => this.drained();
  /** Date.now() when the connection last became idle (seconds matter here; it is the cheaper clock). */
  private idleSince = Date.now();

  constructor(
    private readonly server: FastServer,
    readonly sock: Socket,
  ) {
    sock.setNoDelay(true);
    sock.on('data', this.onData);
    sock.on('close', this.onClose);
    sock.on('error', onSocketError);
    sock.on('end', this.onEnd);
    sock.on('drain', this.onDrain);
  }

  data(chunk: Buffer): void {
    if (this.gone) return; // closing: nothing more is served
    this.buf = this.buf === undefined ? chunk : Buffer.concat([this.buf, chunk]);
    if (this.res || this.awaitingDrain) {
      // Pipelined while a response is in flight or unread: keep it for later, within bounds.
      if (this.buf.length > MAX_PENDING && !this.inputPaused) {
        this.inputPaused = true;
        this.sock.pause();
      }
      return;
    }
    this.next();
  }

  /** Serve buffered requests until one is in flight, the buffer is empty, or a handoff. */
  private next(): void {
    this.parsing = true;
    while (this.buf !== undefined && this.res === undefined && !this.gone) {
      if (this.sock.writableNeedDrain) {
        // The client is not reading its responses: serve the next request once it has.
        this.awaitingDrain = true;
        break;
      }
      const buf = this.buf;
      const end = buf.indexOf('\r\n\r\n', 0, 'latin1');
      if (end < 0 || end + 2 > MAX_HEAD) return this.handoff();
      const head = buf.toString('latin1', 0, end + 2);
      const req = parseRequest(head, this.sock);
      if (req === undefined) return this.handoff();
      this.buf = buf.length === end + 4 ? undefined : buf.subarray(end + 4);
      const res = new FastResponse(this, req.method === 'HEAD', req.close || this.server.draining);
      this.res = res;
      this.server.opts.counters.fastRequests++;
      this.server.opts.onRequest(req, res);
    }
    this.parsing = false;
    if (this.inputPaused && this.res === undefined && !this.awaitingDrain && !this.gone) {
      this.inputPaused = false;
      this.sock.resume();
    }
  }

  /** The response in flight was fully written. */
  finished(res: FastResponse): void {
    if (this.res !== res) return;
    this.res = undefined;
    this.idleSince = Date.now();
    res.emitClose();
    if (res.last || this.server.draining) {
      this.close();
      return;
    }
    if (this.parsing) return; // next() goes on with what is buffered
    if (this.buf !== undefined) setImmediate(() => this.resumeParsing());
    else if (this.inputPaused) {
      this.inputPaused = false;
      this.sock.resume();
    }
  }

  private resumeParsing(): void {
    if (!this.gone && this.res === undefined) this.next();
  }

  private drained(): void {
    this.res?.drained();
    if (this.awaitingDrain) {
      this.awaitingDrain = false;
      this.resumeParsing();
    }
  }

  closeIfIdleSince(cutoff: number): void {
    if (this.idleSince <= cutoff) this.closeIfIdle();
  }

  closeIfIdle(): void {
    if (!this.res) this.close();
  }

  /** Close after what was written is sent (a destroy would drop queued bytes). */
  private close(): void {
    if (this.gone) return;
    this.gone = true;
    this.buf = undefined;
    const sock = this.sock;
    if (sock.writableLength === 0) {
      sock.destroy();
      return;
    }
    // Server sockets allow half-open: end() only sends FIN, so destroy once flushed, and give a
    // client that never reads a bounded time.
    sock.end();
    sock.once('finish', () => sock.destroy());
    setTimeout(() => sock.destroy(), CLOSE_GRACE_MS).unref();
  }

  /**
   * The client's FIN. Like node:http (httpAllowHalfOpen false): the request in flight is aborted,
   * responses already written are still sent, then the connection closes.
   */
  private ended(): void {
    const res = this.res;
    this.res = undefined;
    res?.abort();
    this.close();
  }

  private closed(): void {
    this.gone = true;
    this.buf = undefined;
    this.server.connections.delete(this);
    const res = this.res;
    this.res = undefined;
    res?.abort();
  }

  /** Give the connection, and what it sent that is not served yet, to node:http. */
  private handoff(): void {
    this.parsing = false;
    this.gone = true;
    const sock = this.sock;
    this.server.connections.delete(this);
    this.server.opts.counters.handoffs++;
    sock.removeListener('data', this.onData);
    sock.removeListener('close', this.onClose);
    sock.removeListener('error', onSocketError);
    sock.removeListener('end', this.onEnd);
    sock.removeListener('drain', this.onDrain);
    // Bytes read but not yet delivered (a paused socket) come after what we hold, in order.
    let pending = this.buf;
    this.buf = undefined;
    for (let c = sock.read() as Buffer | null; c !== null; c = sock.read() as Buffer | null)
      pending = pending === undefined ? c : Buffer.concat([pending, c]);
    this.server.opts.handoff(sock);
    // Resume before re-feeding: an upgrade handled inside the emit takes the socket out of
    // flowing mode, and a resume after it would drop the upgraded stream's first bytes.
    if (this.inputPaused) sock.resume();
    if (pending !== undefined) sock.emit('data', pending);
  }
}

/** A closing connection whose client does not read gets this long to take the last bytes. */
const CLOSE_GRACE_MS = 10_000;

/** 'error' on a fast connection: close it ('close' aborts the request in flight). */
function onSocketError(this: Socket): void {
  this.destroy();
}

/** Methods llhttp knows (node:http answers 400 to others); CONNECT is node:http's own event. */
const METHODS = new Set(METHODS_LIST.filter((m) => m !== 'CONNECT'));

interface FastRequest extends DownstreamRequest {
  readonly method: string;
  readonly close: boolean;
}

/**
 * Parse a complete request head (request line and header lines, each ending in CRLF). Returns
 * undefined for anything the fast path does not serve; node:http then decides.
 */
export function parseRequest(head: string, socket: Socket): FastRequest | undefined {
  if (!HEAD_GRAMMAR.test(head)) return undefined;
  const sp1 = head.indexOf(' ');
  const sp2 = head.indexOf(' ', sp1 + 1);
  const method = head.slice(0, sp1);
  if (!METHODS.has(method)) return undefined;
  const url = head.slice(sp1 + 1, sp2);
  const headers: Record<string, string> = {};
  let close = false;
  let host = false;
  let count = 0;
  let pos = head.indexOf('\r\n', sp2) + 2;
  while (pos < head.length) {
    const eol = head.indexOf('\r\n', pos);
    const colon = head.indexOf(':', pos);
    const name = head.slice(pos, colon).toLowerCase();
    let a = colon + 1;
    let b = eol;
    while (a < b && (head.charCodeAt(a) === 32 || head.charCodeAt(a) === 9)) a++;
    while (b > a && (head.charCodeAt(b - 1) === 32 || head.charCodeAt(b - 1) === 9)) b--;
    const value = head.slice(a, b);
    pos = eol + 2;
    if (headers[name] !== undefined || ++count > MAX_HEADERS) return undefined; // node's merge rules
    switch (name) {
      case 'content-length':
        if (value !== '0') return undefined;
        break;
      case 'transfer-encoding':
      case 'upgrade':
      case 'expect':
      case '__proto__':
        return undefined;
      case 'host':
        host = true;
        break;
      case 'connection':
        close = hasToken(value, 'close');
        break;
    }
    headers[name] = value;
  }
  if (!host) return undefined; // node:http answers the 400
  return { method, url, headers: headers as IncomingHttpHeaders, httpVersion: '1.1', socket, close };
}

function hasToken(list: string, token: string): boolean {
  if (list === token) return true;
  if (list === 'keep-alive') return false; // the common request value
  const v = list.toLowerCase();
  if (v === token) return true;
  for (const t of v.split(',')) if (t.trim() === token) return true;
  return false;
}

type Listener = (this: DownstreamResponse) => void;

let dateSecond = 0;
let dateString = '';
/** The Date header value, rebuilt once a second (as node:http does). */
function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateString = new Date(s * 1000).toUTCString();
  }
  return dateString;
}

/** A response written straight to the socket: node:http's header rules and framing. */
class FastResponse implements DownstreamResponse {
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive: boolean;
  /** Connection closes after this response (request or response said `Connection: close`). */
  last: boolean;
  private head: string | undefined;
  private chunked = false;
  private hasBody: boolean;
  private extra: [string, string][] | undefined;
  private closeListener: Listener | undefined;
  /** Per response (not on the socket): a late drain must not resume another exchange's upstream. */
  private drainListener: (() => void) | undefined;

  constructor(
    private readonly conn: FastConnection,
    head: boolean,
    close: boolean,
  ) {
    this.hasBody = !head;
    this.last = close;
    this.shouldKeepAlive = !close;
  }

  setHeader(name: string, value: string): this {
    if (this.headersSent) throw headersSentError();
    const lower = name.toLowerCase();
    const extra = this.extra ?? [];
    this.extra = extra.filter(([k]) => k !== lower);
    this.extra.push([lower, value]);
    return this;
  }

  writeHead(status: number, headers?: OutgoingHeaders): this {
    if (this.headersSent) throw headersSentError();
    let h = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    const seen = { date: false, length: false, connection: false };
    if (this.extra)
      for (const [k, v] of this.extra) if (headers?.[k] === undefined) h = addHeader(h, k, k, v, seen, this);
    if (headers)
      for (const k in headers) {
        const v = headers[k];
        if (v !== undefined) h = addHeader(h, k, k.toLowerCase(), v, seen, this);
      }
    this.head = this.finishHead(h, status, seen.date, seen.length, seen.connection);
    this.headersSent = true; // only once valid: an invalid header leaves the 500 possible
    return this;
  }

  writeRawHead(status: number, raw: readonly string[], extra: readonly string[]): boolean {
    if (this.headersSent || this.extra) return false;
    let h = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'unknown'}\r\n`;
    let date = false;
    let length = false;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i] as string;
      const v = raw[i + 1] as string;
      if (k === 'connection') {
        if (connectionTokens(v).length > 0) return false; // it names headers to drop
        continue;
      }
      if (HOP_BY_HOP.has(k)) continue;
      if (k === 'date') date = true;
      else if (k === 'content-length') length = true;
      h += `${k}: ${v}\r\n`;
    }
    for (let i = 0; i < extra.length; i += 2) h += `${extra[i]}: ${extra[i + 1]}\r\n`;
    this.headersSent = true;
    this.head = this.finishHead(h, status, date, length, false);
    return true;
  }

  /** Date, Connection/Keep-Alive and framing, as node:http adds them. */
  private finishHead(h: string, status: number, date: boolean, length: boolean, connection: boolean): string {
    if (status === 204 || status === 304 || (status >= 100 && status < 200)) this.hasBody = false;
    if (!date) h += `Date: ${httpDate()}\r\n`;
    if (!this.shouldKeepAlive) this.last = true;
    if (!connection)
      h += this.last ? 'Connection: close\r\n' : 'Connection: keep-alive\r\nKeep-Alive: timeout=65\r\n';
    if (!length && this.hasBody) {
      this.chunked = true;
      h += 'Transfer-Encoding: chunked\r\n';
    }
    return `${h}\r\n`;
  }

  write(chunk: Buffer): boolean {
    if (this.writableEnded || this.destroyed) return false;
    if (!this.headersSent) this.writeHead(200);
    const sock = this.conn.sock;
    const head = this.head;
    if (!this.hasBody || chunk.length === 0) {
      if (head !== undefined) {
        this.head = undefined;
        return sock.write(head, 'latin1');
      }
      return true;
    }
    if (this.chunked) {
      const size = `${chunk.length.toString(16)}\r\n`;
      this.head = undefined;
      if (chunk.length <= INLINE_BODY)
        return sock.write(`${head ?? ''}${size}${chunk.toString('latin1')}\r\n`, 'latin1');
      sock.cork();
      sock.write(`${head ?? ''}${size}`, 'latin1');
      sock.write(chunk);
      const ok = sock.write('\r\n', 'latin1');
      sock.uncork();
      return ok;
    }
    if (head === undefined) return sock.write(chunk);
    this.head = undefined;
    if (chunk.length <= INLINE_BODY) return sock.write(head + chunk.toString('latin1'), 'latin1');
    sock.cork();
    sock.write(head, 'latin1');
    const ok = sock.write(chunk);
    sock.uncork();
    return ok;
  }

  end(chunk?: Buffer): this {
    if (this.writableEnded) return this;
    if (this.destroyed) {
      this.writableEnded = true;
      return this;
    }
    if (!this.headersSent) this.writeHead(200);
    if (chunk !== undefined && chunk.length > 0) this.write(chunk);
    const sock = this.conn.sock;
    const head = this.head;
    this.head = undefined;
    if (this.chunked) sock.write(`${head ?? ''}0\r\n\r\n`, 'latin1');
    else if (head !== undefined) sock.write(head, 'latin1');
    this.writableEnded = true;
    // Finished once node has handed every byte to the kernel, as ServerResponse's 'finish': at
    // once in the common case, else when the queued bytes flush (a client gone first is DC).
    if (sock.writableLength === 0) this.flushed();
    else sock.write('', 'latin1', () => this.flushed());
    return this;
  }

  private flushed(): void {
    if (this.destroyed || this.writableFinished) return;
    this.writableFinished = true;
    this.conn.finished(this);
  }

  destroy(_err?: Error): this {
    if (!this.destroyed) {
      this.destroyed = true;
      this.conn.sock.destroy();
    }
    return this;
  }

  on(event: 'close', fn: Listener): this {
    if (event === 'close') this.closeListener = fn;
    return this;
  }

  once(event: 'drain', fn: () => void): this {
    if (event === 'drain') this.drainListener = fn;
    return this;
  }

  /** The socket drained while this response was in flight. */
  drained(): void {
    const fn = this.drainListener;
    this.drainListener = undefined;
    fn?.();
  }

  /** The connection went away before this response was written: in-flight work is cancelled. */
  abort(): void {
    this.destroyed = true;
    this.drainListener = undefined;
    this.emitClose();
  }

  emitClose(): void {
    const fn = this.closeListener;
    this.closeListener = undefined;
    fn?.call(this);
  }
}

function addHeader(
  h: string,
  name: string,
  lower: string,
  v: string | string[] | number,
  seen: { date: boolean; length: boolean; connection: boolean },
  res: FastResponse,
): string {
  if (!TOKEN.test(name)) throw invalidHeader('header name', name);
  switch (lower) {
    case 'date':
      seen.date = true;
      break;
    case 'content-length':
      seen.length = true;
      break;
    case 'transfer-encoding':
      return h; // framing is ours: chunked whenever there is a body and no Content-Length
    case 'connection':
      seen.connection = true;
      if (hasToken(String(v), 'close')) res.last = true;
      break;
  }
  if (Array.isArray(v)) {
    for (const one of v) {
      if (INVALID_VALUE.test(one)) throw invalidHeader(`value of ${name}`, one);
      h += `${name}: ${one}\r\n`;
    }
    return h;
  }
  const s = typeof v === 'string' ? v : String(v);
  if (INVALID_VALUE.test(s)) throw invalidHeader(`value of ${name}`, s);
  return `${h}${name}: ${s}\r\n`;
}

function invalidHeader(what: string, v: string): Error {
  return Object.assign(new TypeError(`Invalid character in ${what} ${JSON.stringify(v)}`), {
    code: 'ERR_INVALID_CHAR',
  });
}

function headersSentError(): Error {
  return Object.assign(new Error('Cannot write headers after they are sent to the client'), {
    code: 'ERR_HTTP_HEADERS_SENT',
  });
}
