// The connection dispatcher in front of every listener: an accepted connection is held until its
// first bytes show what it is — a TLS ClientHello (and its SNI), the HTTP/2 connection preface,
// or other plaintext (an HTTP/1 request line, or raw TCP bytes) — and the listener's filter chain
// for that is chosen, as Envoy's listener filters (tls_inspector, http_inspector) and filter chain
// match do. The chosen chain gets the socket with the bytes read so far, to replay first and in
// order; no chain this build serves: the connection is closed and counted (Envoy's
// no_filter_chain_match). The dispatch happens once per connection: the first chunk of an HTTP/1
// connection is handed to its codec in the tick it arrived, without a copy.
//
// A connection that shows nothing within `firstBytesTimeoutMs` is handed to `onTimeout` (the
// worker closes it as its HTTP codec would have closed an idle connection). A hello is bounded by
// MAX_CLIENT_HELLO (64 KiB) and by that timeout.

import type { Socket } from 'node:net';
import type { ChainTransport, FilterChain, Listener } from '../config/snapshot.js';
import { type ClientHello, MAX_CLIENT_HELLO, parseClientHello } from './tls-client-hello.js';

/** The HTTP/2 connection preface (RFC 9113 §3.4): what an h2c prior-knowledge client sends first. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * What a connection's first bytes show: `more` (cannot tell yet), a TLS handshake record, the h2
 * preface, an HTTP/1 request (or, without sniffing, any other plaintext: the HTTP/1 codec judges
 * it), or other plaintext (raw TCP).
 */
export type FirstBytes = 'more' | 'tls' | 'h2c' | 'http1' | 'tcp';

/** Longest method llhttp knows is shorter; a longer token before the first space is not HTTP/1. */
const MAX_METHOD = 20;

/**
 * Classify the first bytes of a connection. With `sniffHttp` (a port serving both HTTP and TCP),
 * plaintext that does not start like an HTTP/1 request line is `tcp`; without it, it is `http1`
 * and the HTTP/1 codec answers it (400), as before any dispatch existed. Decides on the first
 * byte for every request that does not start with `P` or 0x16.
 */
export function classifyFirstBytes(buf: Uint8Array, sniffHttp = false): FirstBytes {
  const b0 = buf[0];
  if (b0 === undefined) return 'more';
  if (b0 === 0x16) {
    // A TLS record: content type handshake, then version 3.x (SSL 3.0 .. TLS 1.3 record layers).
    if (buf.length < 3) return buf.length === 2 && buf[1] !== 3 ? plaintext(buf, sniffHttp) : 'more';
    if (buf[1] === 3 && (buf[2] as number) <= 4) return 'tls';
    return plaintext(buf, sniffHttp);
  }
  if (b0 === 0x50) {
    const n = Math.min(buf.length, H2_PREFACE.length);
    let i = 1;
    while (i < n && buf[i] === H2_PREFACE[i]) i++;
    if (i === n) return n === H2_PREFACE.length ? 'h2c' : 'more';
  }
  return plaintext(buf, sniffHttp);
}

function plaintext(buf: Uint8Array, sniffHttp: boolean): FirstBytes {
  if (!sniffHttp) return 'http1';
  // A method token (uppercase letters, `-` as in M-SEARCH, `_`) then a space.
  const n = Math.min(buf.length, MAX_METHOD + 1);
  for (let i = 0; i < n; i++) {
    const c = buf[i] as number;
    if (c === 0x20) return i > 0 ? 'http1' : 'tcp';
    if (!((c >= 0x41 && c <= 0x5a) || c === 0x2d || c === 0x5f)) return 'tcp';
  }
  return n > MAX_METHOD ? 'tcp' : 'more';
}

/** What this build serves: the chain transports, and whether an `http` chain speaks h2c. */
export interface Served {
  readonly transports: ReadonlySet<ChainTransport>;
  readonly h2c: boolean;
}

/**
 * What the worker serves (and `courier explain` assumes): plaintext HTTP/1.1, TLS terminated
 * (HTTP/1.1 or TCP behind it), TLS passed through by SNI, and TCP. The h2 preface matches no chain.
 */
export const SERVED: Served = Object.freeze({
  transports: new Set<ChainTransport>(['http', 'https', 'tls_passthrough', 'tcp']),
  h2c: false,
});

/** Does an SNI name match a chain's server name (exact, or `*.suffix` at any depth, not the bare parent)? */
function nameMatches(pattern: string, sni: string): number {
  if (pattern === sni) return Number.MAX_SAFE_INTEGER; // exact beats every wildcard
  if (pattern.startsWith('*.') && sni.length > pattern.length - 1 && sni.endsWith(pattern.slice(1)))
    return pattern.length; // the longest wildcard wins
  return -1;
}

/**
 * The filter chain for a connection, in Envoy's order. TLS: an exact SNI name, then the longest
 * wildcard, then a chain with no server names (which also takes a hello without SNI). Plaintext:
 * h2c to an `http` chain that speaks it, HTTP/1 to the `http` chain, other bytes to a `tcp`
 * chain; a port with only one of `http`/`tcp` gives it every plaintext connection it can take
 * (an `http` chain answers bytes that are not HTTP with 400, as its codec does). Only chains this
 * build serves are considered; undefined: no filter chain matches.
 */
export function selectFilterChain(
  chains: readonly FilterChain[],
  first: FirstBytes,
  hello: ClientHello | undefined,
  served: Served,
): FilterChain | undefined {
  if (first === 'more') return undefined;
  if (first === 'tls') {
    const sni = hello?.serverName;
    let best: FilterChain | undefined;
    let bestScore = -1;
    for (const c of chains) {
      if (c.match.transportProtocol !== 'tls' || !served.transports.has(c.transport)) continue;
      let score = c.match.serverNames.length === 0 ? 0 : -1;
      if (sni !== undefined)
        for (const n of c.match.serverNames) score = Math.max(score, nameMatches(n, sni));
      if (score > bestScore) {
        best = c;
        bestScore = score;
      }
    }
    return best;
  }
  let http: FilterChain | undefined;
  let tcp: FilterChain | undefined;
  for (const c of chains) {
    if (c.match.transportProtocol !== 'raw_buffer' || !served.transports.has(c.transport)) continue;
    if (c.transport === 'http') http ??= c;
    else if (c.transport === 'tcp') tcp ??= c;
  }
  if (first === 'h2c') return (served.h2c ? http : undefined) ?? tcp;
  if (first === 'http1') return http ?? tcp;
  return tcp ?? http;
}

export interface DispatcherOptions {
  /** This listener's config now (a reload may change its chains; its key keeps their transports). */
  listener(): Listener;
  served: Served;
  /** Serve `sock` by `chain`; `head` is what it sent so far, to be replayed first, in order. */
  serve(chain: FilterChain, sock: Socket, head: Buffer, hello: ClientHello | undefined): void;
  /** No chain matched: the connection was closed (count it). */
  noFilterChain(first: FirstBytes, hello: ClientHello | undefined): void;
  firstBytesTimeoutMs: number;
  /** A connection showed nothing (or not enough) within the timeout: close it. */
  onTimeout(sock: Socket): void;
}

/** The connections of one listener that have not shown what they are yet. */
export class ConnectionDispatcher {
  readonly pending = new Set<PendingConnection>();
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(readonly opts: DispatcherOptions) {}

  accept(sock: Socket): void {
    this.pending.add(new PendingConnection(this, sock));
    // The first-bytes timeout by a sweep, not a timer per connection.
    if (!this.sweeper && !this.closed) {
      const every = Math.max(50, Math.min(5000, this.opts.firstBytesTimeoutMs / 4));
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    }
  }

  private sweep(): void {
    const cutoff = Date.now() - this.opts.firstBytesTimeoutMs;
    for (const p of this.pending) if (p.since <= cutoff) p.timedOut();
  }

  /** Drain: stop the sweep and close the connections still undecided (they are idle). */
  close(): void {
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const p of this.pending) p.destroy();
  }
}

class PendingConnection {
  /** Date.now() at accept. */
  readonly since = Date.now();
  private buf: Buffer | undefined;
  private readonly onData = (chunk: Buffer) => this.data(chunk);
  private readonly onEnd = () => this.destroy();
  private readonly onClose = () => this.detach();

  constructor(
    private readonly d: ConnectionDispatcher,
    private readonly sock: Socket,
  ) {
    sock.on('data', this.onData);
    sock.on('end', this.onEnd); // a FIN before it showed anything: nothing to serve
    sock.on('error', onSocketError);
    sock.on('close', this.onClose);
  }

  private data(chunk: Buffer): void {
    const buf = this.buf === undefined ? chunk : Buffer.concat([this.buf, chunk]);
    this.buf = buf;
    const opts = this.d.opts;
    const listener = opts.listener();
    const chains = listener.filterChains;
    const first = classifyFirstBytes(buf, sniffsHttp(chains, opts.served));
    if (first === 'more') return;
    let hello: ClientHello | undefined;
    if (first === 'tls' && servesTls(chains, opts.served)) {
      const h = parseClientHello(buf);
      if (h.kind === 'incomplete' && buf.length < MAX_CLIENT_HELLO) return;
      if (h.kind !== 'hello') return this.reject(first, undefined);
      hello = h;
    }
    const chain = selectFilterChain(chains, first, hello, opts.served);
    if (chain === undefined) return this.reject(first, hello);
    this.detach();
    opts.serve(chain, this.sock, buf, hello);
  }

  private reject(first: FirstBytes, hello: ClientHello | undefined): void {
    this.destroy();
    this.d.opts.noFilterChain(first, hello);
  }

  timedOut(): void {
    this.detach();
    this.d.opts.onTimeout(this.sock);
  }

  destroy(): void {
    this.detach();
    this.sock.destroy();
  }

  private detach(): void {
    if (!this.d.pending.delete(this)) return;
    this.buf = undefined;
    const sock = this.sock;
    sock.removeListener('data', this.onData);
    sock.removeListener('end', this.onEnd);
    sock.removeListener('error', onSocketError);
    sock.removeListener('close', this.onClose);
  }
}

/** A port with both a plaintext HTTP and a TCP chain must tell HTTP/1 from other bytes. */
function sniffsHttp(chains: readonly FilterChain[], served: Served): boolean {
  if (chains.length < 2) return false;
  let http = false;
  let tcp = false;
  for (const c of chains) {
    if (c.match.transportProtocol !== 'raw_buffer' || !served.transports.has(c.transport)) continue;
    if (c.transport === 'http') http = true;
    else if (c.transport === 'tcp') tcp = true;
  }
  return http && tcp;
}

/** Only a port with a served TLS chain waits for the whole hello; others close at its first bytes. */
function servesTls(chains: readonly FilterChain[], served: Served): boolean {
  for (const c of chains)
    if (c.match.transportProtocol === 'tls' && served.transports.has(c.transport)) return true;
  return false;
}

/** 'error' before dispatch: close ('close' detaches). */
function onSocketError(this: Socket): void {
  this.destroy();
}
