// The access log: Istio's default TEXT format or its JSON keys (MeshConfig accessLogEncoding),
// one line per request (and per proxied TCP connection, at its close), buffered and written off
// the request path.
//
// Lines accumulate in memory and go out in one write every `flushMs` (or once `flushBytes` are
// waiting), one write in flight at a time; a destination that cannot keep up costs dropped lines
// (counted), never a blocked request. Several workers append to the same file: a file is opened
// O_APPEND and written a whole batch per write(2); stdout is written in pieces of at most
// PIPE_BUF bytes cut at line ends, so the workers' lines never interleave mid-line on a pipe.

import { close as closeFd, openSync, write, writeSync } from 'node:fs';

export type AccessLogFormat = 'text' | 'json';

/** What the access log reads of a finished request. `Exchange` satisfies it. */
export interface LoggedRequest {
  readonly startTime: Date;
  readonly method: string;
  /** Path and query before any rewrite ('' when the request was rejected before parsing it). */
  readonly originalPath: string;
  readonly req: {
    readonly url?: string | undefined;
    readonly httpVersion: string;
    readonly socket: {
      readonly localAddress?: string | undefined;
      readonly localPort?: number | undefined;
      readonly remoteAddress?: string | undefined;
      readonly remotePort?: number | undefined;
      /** Set on a TLS connection terminated here: its SNI is %REQUESTED_SERVER_NAME%. */
      readonly tls?: { readonly sni?: string | undefined } | undefined;
    };
  };
  readonly responseCode: number;
  readonly flagString: string;
  readonly details: string;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  /** -1 when no upstream answered. */
  readonly upstreamServiceTime: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly authority: string;
  readonly upstreamHost: string;
  readonly clusterName: string;
  readonly routeName: string;
  /** Why the upstream connection failed (Envoy's transport failure reason), when it did. */
  readonly transportFailure?: string | undefined;
}

/** %UPSTREAM_TRANSPORT_FAILURE_REASON%, spaces as underscores as Envoy prints it. */
function failureReason(x: LoggedRequest): string | undefined {
  return x.transportFailure?.replaceAll(' ', '_');
}

/** Envoy prints `-` for a value it does not have. */
function dash(v: string | undefined): string {
  return v === undefined || v === '' ? '-' : v;
}

function header(x: LoggedRequest, name: string): string | undefined {
  const v = x.headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(',') : v;
}

/** `ip:port`, IPv4-mapped IPv6 shown as IPv4 and IPv6 in brackets, as Envoy prints addresses. */
export function formatAddress(address: string | undefined, port: number | undefined): string | undefined {
  if (!address) return undefined;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  const host = a.includes(':') ? `[${a}]` : a;
  return port === undefined ? host : `${host}:${port}`;
}

function fields(x: LoggedRequest, durationMs: number) {
  const s = x.req.socket;
  return {
    path: x.originalPath || x.req.url || undefined,
    protocol: `HTTP/${x.req.httpVersion}`,
    duration: Math.max(0, Math.floor(durationMs)),
    upstreamServiceTime: x.upstreamServiceTime >= 0 ? String(x.upstreamServiceTime) : undefined,
    local: formatAddress(s.localAddress, s.localPort),
    remote: formatAddress(s.remoteAddress, s.remotePort),
    unset: (v: string) => (v === '-' || v === '' ? undefined : v),
  };
}

/**
 * Istio's `EnvoyTextLogFormat` (pilot/pkg/model/telemetry_logging.go):
 * `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE%
 * %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS%
 * "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
 * %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
 * "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW%
 * %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
 * %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n`. Values courier does not have yet (connection
 * termination details, upstream local address) print `-`; the SNI is there on TLS connections.
 */
export function formatText(x: LoggedRequest, durationMs: number): string {
  const f = fields(x, durationMs);
  return (
    `[${x.startTime.toISOString()}] "${dash(x.method)} ${dash(f.path)} ${f.protocol}" ` +
    `${x.responseCode} ${dash(x.flagString)} ${dash(x.details)} - "${dash(failureReason(x))}" ` +
    `${x.bytesReceived} ${x.bytesSent} ${f.duration} ${dash(f.upstreamServiceTime)} ` +
    `"${dash(header(x, 'x-forwarded-for'))}" "${dash(header(x, 'user-agent'))}" ` +
    `"${dash(header(x, 'x-request-id'))}" "${dash(x.authority)}" "${dash(x.upstreamHost)}" ` +
    `${dash(x.clusterName)} - ${dash(f.local)} ${dash(f.remote)} ${dash(x.req.socket.tls?.sni)} ${dash(x.routeName)}\n`
  );
}

/**
 * Istio's `EnvoyJSONLogFormatIstio` keys. As Envoy's JSON formatter does: keys sorted, numbers for
 * the numeric operators (response_code, bytes_*, duration), `null` for a value it does not have,
 * `"-"` for no response flags, and upstream_service_time as the header's string.
 */
export function formatJson(x: LoggedRequest, durationMs: number): string {
  const f = fields(x, durationMs);
  const n = (v: string | undefined) => (v === undefined || v === '' ? null : v);
  return `${JSON.stringify({
    authority: n(x.authority),
    bytes_received: x.bytesReceived,
    bytes_sent: x.bytesSent,
    connection_termination_details: null,
    downstream_local_address: n(f.local),
    downstream_remote_address: n(f.remote),
    duration: f.duration,
    method: n(x.method),
    path: n(f.path),
    protocol: f.protocol,
    request_id: n(header(x, 'x-request-id')),
    requested_server_name: n(x.req.socket.tls?.sni),
    response_code: x.responseCode,
    response_code_details: n(f.unset(x.details)),
    response_flags: dash(x.flagString),
    route_name: n(f.unset(x.routeName)),
    start_time: x.startTime.toISOString(),
    upstream_cluster: n(f.unset(x.clusterName)),
    upstream_host: n(f.unset(x.upstreamHost)),
    upstream_local_address: null,
    upstream_service_time: n(f.upstreamServiceTime),
    upstream_transport_failure_reason: n(failureReason(x)),
    user_agent: n(header(x, 'user-agent')),
    x_forwarded_for: n(header(x, 'x-forwarded-for')),
  })}\n`;
}

/** What the access log reads of a finished TCP connection (Envoy's tcp_proxy). `TcpSession` satisfies it. */
export interface LoggedConnection {
  readonly startTime: Date;
  readonly flagString: string;
  /** Why the upstream connection failed (Envoy's transport failure reason), when it did. */
  readonly transportFailure?: string | undefined;
  /** Bytes from the downstream. */
  readonly bytesReceived: number;
  /** Bytes to the downstream. */
  readonly bytesSent: number;
  /** `address:port` of the upstream host ('' when none was picked). */
  readonly upstreamHost: string;
  readonly clusterName: string;
  readonly upstreamLocalAddress?: string | undefined;
  readonly upstreamLocalPort?: number | undefined;
  readonly downstreamLocalAddress?: string | undefined;
  readonly downstreamLocalPort?: number | undefined;
  readonly downstreamRemoteAddress?: string | undefined;
  readonly downstreamRemotePort?: number | undefined;
  /** The requested server name (SNI), when the connection had one. */
  readonly sni?: string | undefined;
}

function tcpFields(c: LoggedConnection, durationMs: number) {
  return {
    duration: Math.max(0, Math.floor(durationMs)),
    upstreamLocal: formatAddress(c.upstreamLocalAddress, c.upstreamLocalPort),
    local: formatAddress(c.downstreamLocalAddress, c.downstreamLocalPort),
    remote: formatAddress(c.downstreamRemoteAddress, c.downstreamRemotePort),
    failure: c.transportFailure?.replaceAll(' ', '_'),
  };
}

/**
 * The same `EnvoyTextLogFormat` for a TCP connection, as Envoy prints it for tcp_proxy: no HTTP
 * request (`"- - -"`, response code 0, `-` for headers and the upstream service time), bytes
 * received from and sent to the downstream, the connection's duration, the upstream host and
 * cluster, the three addresses and the requested server name (SNI):
 * `[2021-11-10T14:49:06.792Z] "- - -" 0 - - - "-" 892 5620 135 - "-" "-" "-" "-" "172.217.6.68:443"
 * outbound|443||www.google.com 10.42.1.47:45712 10.42.1.47:8444 10.42.1.41:33992 www.google.com -`.
 */
export function formatTcpText(c: LoggedConnection, durationMs: number): string {
  const f = tcpFields(c, durationMs);
  return (
    `[${c.startTime.toISOString()}] "- - -" 0 ${dash(c.flagString)} - - "${dash(f.failure)}" ` +
    `${c.bytesReceived} ${c.bytesSent} ${f.duration} - "-" "-" "-" "-" "${dash(c.upstreamHost)}" ` +
    `${dash(c.clusterName)} ${dash(f.upstreamLocal)} ${dash(f.local)} ${dash(f.remote)} ${dash(c.sni)} -\n`
  );
}

/** Istio's JSON keys for a TCP connection: the HTTP-only ones `null`, response_code 0. */
export function formatTcpJson(c: LoggedConnection, durationMs: number): string {
  const f = tcpFields(c, durationMs);
  const n = (v: string | undefined) => (v === undefined || v === '' ? null : v);
  return `${JSON.stringify({
    authority: null,
    bytes_received: c.bytesReceived,
    bytes_sent: c.bytesSent,
    connection_termination_details: null,
    downstream_local_address: n(f.local),
    downstream_remote_address: n(f.remote),
    duration: f.duration,
    method: null,
    path: null,
    protocol: null,
    request_id: null,
    requested_server_name: n(c.sni),
    response_code: 0,
    response_code_details: null,
    response_flags: dash(c.flagString),
    route_name: null,
    start_time: c.startTime.toISOString(),
    upstream_cluster: n(c.clusterName),
    upstream_host: n(c.upstreamHost),
    upstream_local_address: n(f.upstreamLocal),
    upstream_service_time: null,
    upstream_transport_failure_reason: n(f.failure),
    user_agent: null,
    x_forwarded_for: null,
  })}\n`;
}

/** Where batches go. `write` is asynchronous and calls `done` once the data is out. */
export interface LogSink {
  write(data: string, done: (err?: Error | null) => void): void;
  /** Last-chance synchronous write (process exit). */
  writeSync(data: string): void;
  close(): Promise<void>;
}

/** Append to a file (opened once, O_APPEND); writes run on libuv's thread pool. */
export function fileSink(path: string): LogSink {
  const fd = openSync(path, 'a');
  let closed = false;
  const writeAll = (buf: Buffer, off: number, done: (err?: Error | null) => void) => {
    write(fd, buf, off, buf.length - off, null, (err, n) => {
      if (err) return done(err);
      if (off + n < buf.length) writeAll(buf, off + n, done);
      else done();
    });
  };
  return {
    write: (data, done) => writeAll(Buffer.from(data), 0, done),
    writeSync: (data) => {
      if (!closed) writeSync(fd, data);
    },
    close: () =>
      new Promise((resolve) => {
        if (closed) return resolve();
        closed = true;
        closeFd(fd, () => resolve());
      }),
  };
}

const PIPE_BUF = 4096;

/** Split a batch of lines into pieces of at most `max` bytes, cut after a newline. */
export function splitLines(data: string, max = PIPE_BUF): string[] {
  if (Buffer.byteLength(data) <= max) return [data];
  const out: string[] = [];
  let start = 0;
  let cut = 0;
  let bytes = 0;
  let lineStart = 0;
  for (let i = 0; i < data.length; i++) {
    if (data.charCodeAt(i) !== 10) continue;
    const lineBytes = Buffer.byteLength(data.slice(lineStart, i + 1));
    if (bytes + lineBytes > max && cut > start) {
      out.push(data.slice(start, cut));
      start = cut;
      bytes = 0;
    }
    bytes += lineBytes;
    cut = i + 1;
    lineStart = i + 1;
  }
  if (start < data.length) out.push(data.slice(start));
  return out;
}

/** Standard output, in pieces that a pipe writes atomically. */
export function stdoutSink(out: NodeJS.WriteStream = process.stdout): LogSink {
  // A reader gone (EPIPE) fails the write callback; without a listener it would also crash the worker.
  out.on('error', () => {});
  return {
    write: (data, done) => {
      const pieces = splitLines(data);
      for (let i = 0; i < pieces.length - 1; i++) out.write(pieces[i] as string);
      out.write(pieces[pieces.length - 1] as string, (err) => done(err));
    },
    writeSync: (data) => {
      try {
        writeSync(1, data);
      } catch {
        // stdout gone or would block: nothing left to do at exit
      }
    },
    close: async () => {},
  };
}

export interface AccessLoggerOptions {
  /** Longest a line waits in memory (ms). */
  flushMs?: number;
  /** Write as soon as this many characters are waiting. */
  flushBytes?: number;
  /** Beyond this many waiting characters, new lines are dropped (and counted). */
  maxBufferedBytes?: number;
}

export class AccessLogger {
  private chunks: string[] = [];
  private size = 0;
  private timer: NodeJS.Timeout | undefined;
  private writing = false;
  private closed = false;
  private idle: (() => void)[] = [];
  private dropHook: (() => void) | undefined;
  private reported = false;
  dropped = 0;
  private readonly flushMs: number;
  private readonly flushBytes: number;
  private readonly maxBuffered: number;
  private readonly format: (x: LoggedRequest, durationMs: number) => string;
  private readonly formatTcp: (c: LoggedConnection, durationMs: number) => string;

  constructor(
    private readonly sink: LogSink,
    format: AccessLogFormat,
    opts: AccessLoggerOptions = {},
  ) {
    this.format = format === 'json' ? formatJson : formatText;
    this.formatTcp = format === 'json' ? formatTcpJson : formatTcpText;
    this.flushMs = opts.flushMs ?? 50;
    this.flushBytes = opts.flushBytes ?? 64 * 1024;
    this.maxBuffered = opts.maxBufferedBytes ?? 16 * 1024 * 1024;
  }

  onDrop(hook: () => void): void {
    this.dropHook = hook;
  }

  log(x: LoggedRequest, durationMs: number): void {
    if (this.admit()) this.push(this.format(x, durationMs));
  }

  /** One line for a TCP connection, at its close. */
  logConnection(c: LoggedConnection, durationMs: number): void {
    if (this.admit()) this.push(this.formatTcp(c, durationMs));
  }

  /** Room for another line? Beyond the buffer limit a line is dropped and counted. */
  private admit(): boolean {
    if (this.closed) return false;
    if (this.size < this.maxBuffered) return true;
    this.dropped++;
    this.dropHook?.();
    return false;
  }

  private push(line: string): void {
    this.chunks.push(line);
    this.size += line.length;
    if (this.size >= this.flushBytes) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** Hand what is waiting to the sink (one write in flight at a time). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.writing) return;
    if (this.size === 0) {
      this.settle();
      return;
    }
    const data = this.chunks.length === 1 ? (this.chunks[0] as string) : this.chunks.join('');
    this.chunks = [];
    this.size = 0;
    this.writing = true;
    this.sink.write(data, (err) => {
      this.writing = false;
      if (err && !this.reported) {
        this.reported = true;
        process.stderr.write(`courier: access log write failed: ${err.message}\n`);
      }
      if (this.size > 0) this.flush();
      else this.settle();
    });
  }

  private settle(): void {
    if (this.writing || this.size > 0) return;
    const waiters = this.idle;
    this.idle = [];
    for (const w of waiters) w();
  }

  /** Write out everything waiting, then close the sink. */
  async close(): Promise<void> {
    this.closed = true;
    await new Promise<void>((resolve) => {
      this.idle.push(resolve);
      this.flush();
    });
    await this.sink.close();
  }

  /** At process exit: whatever is still waiting, synchronously. */
  flushSync(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.size === 0) return;
    const data = this.chunks.join('');
    this.chunks = [];
    this.size = 0;
    try {
      this.sink.writeSync(data);
    } catch {
      // exiting anyway
    }
  }
}

/** `--access-log off|-|PATH`; undefined when off. Throws when PATH cannot be opened. */
export function openAccessLog(
  dest: string,
  format: AccessLogFormat,
  opts?: AccessLoggerOptions,
): AccessLogger | undefined {
  if (dest === '' || dest === 'off') return undefined;
  const sink = dest === '-' || dest === '/dev/stdout' ? stdoutSink() : fileSink(dest);
  return new AccessLogger(sink, format, opts);
}
