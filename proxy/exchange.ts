// Per-request state: what the request path decided so far and what gets logged and counted.
// One object per request, no closures; the route holds the immutable policy, this holds the
// retry state (attempts so far, hosts tried, deadline).

import type { IncomingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { CompiledRoute, Listener, RequestView, WeightedDestination } from '../config/snapshot.js';
import type { ClusterRuntime } from './cluster-manager.js';
import type { Endpoint } from './lb/types.js';

const NO_FLAGS: string[] = [];

/** An Upgrade request's raw socket and the bytes that followed its head. */
export interface UpgradeContext {
  readonly sock: Socket;
  /** Bytes the client sent after the request head (the start of the upgraded stream). */
  readonly head: Buffer;
}

export type IncomingHeaders = Record<string, string | string[] | undefined>;
export type OutgoingHeaders = Record<string, string | string[] | number | undefined>;

/** What a TLS handshake told about the downstream connection (set where TLS terminates). */
export interface TlsFacts {
  readonly sni?: string | undefined;
  /** The negotiated ALPN protocol (`h2`, `http/1.1`). */
  readonly alpn?: string | undefined;
  /** The peer certificate's identity (a SPIFFE URI SAN), when the client presented one. */
  readonly peerIdentity?: string | undefined;
  /** Envoy's x-forwarded-client-cert element for the verified client certificate, if any. */
  readonly xfcc?: string | undefined;
}

/** The downstream connection as every codec reports it. */
export interface ConnectionFacts {
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  /** Absent on plaintext connections; its presence makes the request's scheme `https`. */
  readonly tls?: TlsFacts | undefined;
}

/**
 * The downstream request as the request path sees it, whatever the codec: node:http's
 * IncomingMessage, the fast path's parsed head (proxy/downstream.ts; always bodyless, so never
 * read as a stream), and later an HTTP/2 stream. `headers` carry no pseudo-headers; a codec that
 * has `:authority` gives it as `authority`, else the Host header is the authority.
 */
export interface DownstreamRequest {
  readonly method?: string | undefined;
  readonly url?: string | undefined;
  readonly authority?: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly httpVersion: string;
  readonly socket: ConnectionFacts;
}

/** The downstream response: node:http's ServerResponse, or the fast path's raw-socket writer. */
export interface DownstreamResponse {
  readonly headersSent: boolean;
  readonly writableEnded: boolean;
  readonly writableFinished: boolean;
  readonly destroyed: boolean;
  shouldKeepAlive: boolean;
  setHeader(name: string, value: string): unknown;
  writeHead(status: number, headers?: OutgoingHeaders): unknown;
  write(chunk: Buffer): boolean;
  end(chunk?: Buffer): unknown;
  destroy(err?: Error): unknown;
  on(event: 'close', fn: () => void): unknown;
  once(event: 'drain', fn: () => void): unknown;
  /** Trailers sent after the body when the response ends (codecs that carry them: HTTP/2). */
  addTrailers?(trailers: Record<string, string>): unknown;
  /**
   * Fast path only: write the head straight from the raw pool's lower-cased, validated name/value
   * pairs (hop-by-hop ones skipped) plus `extra` pairs. False when it cannot (a Connection header
   * naming other headers); the caller then builds the header object.
   */
  writeRawHead?(status: number, raw: readonly string[], extra: readonly string[]): boolean;
}

export class Exchange implements RequestView {
  method: string;
  path = '/';
  query = '';
  authority: string;
  scheme = 'http';
  headers: IncomingHeaders;

  /** performance.now() at arrival. */
  readonly start: number;
  /** Wall clock at arrival (ms since the epoch); `startTime` builds a Date only when logged. */
  readonly startEpoch: number;
  route: CompiledRoute | undefined;
  /** The uri prefix of the route's match block that matched (prefix rewrites and redirects). */
  matchPrefix: string | undefined;
  destination: WeightedDestination | undefined;
  cluster: ClusterRuntime | undefined;
  endpoint: Endpoint | undefined;
  /** 1-based attempt number of the current upstream try. */
  attempt = 0;
  attempted: Set<Endpoint> | undefined;
  /** Envoy response flags, e.g. ['UT'], logged as `UT` or `-`. */
  flags: string[] = NO_FLAGS;
  details = '-';
  /** The last connect failure's Envoy reset reason and transport failure reason. */
  resetReason: string | undefined;
  /** A retry policy sent another attempt (an idle-socket replay is not one). */
  retried = false;
  transportFailure: string | undefined;
  upstreamHost = '-';
  upstreamStart = 0;
  upstreamServiceTime = -1;
  bytesReceived = 0;
  bytesSent = 0;
  responseCode = 0;
  /** Original path before a rewrite (x-envoy-original-path). */
  originalPath = '';
  routeTimer: NodeJS.Timeout | undefined;
  done = false;
  /** Bytes of this request's body counted against the worker's buffering budget. */
  reservedBytes = 0;
  hashKey: string | undefined;
  setCookie: string | undefined;
  /** Set for an Upgrade request: the raw socket it came on (the last stage tunnels). */
  upgrade: UpgradeContext | undefined;

  constructor(
    readonly req: DownstreamRequest,
    readonly res: DownstreamResponse,
    readonly listener: Listener,
    now: number,
  ) {
    this.start = now;
    this.startEpoch = Date.now();
    this.method = req.method ?? 'GET';
    this.authority = req.authority ?? req.headers.host ?? '';
    this.headers = req.headers;
    if (req.socket.tls !== undefined) this.scheme = 'https';
  }

  get startTime(): Date {
    return new Date(this.startEpoch);
  }

  /** Set by upstream I/O: cancels the attempt in flight when the downstream goes away. */
  onAbort: (() => void) | undefined;

  flag(f: string): void {
    if (this.flags === NO_FLAGS) this.flags = [f];
    else if (!this.flags.includes(f)) this.flags.push(f);
  }

  get flagString(): string {
    return this.flags.length === 0 ? '-' : this.flags.join(',');
  }

  get routeName(): string {
    return this.route?.name ?? '-';
  }

  get clusterName(): string {
    return this.cluster?.config.name ?? this.destination?.cluster ?? '-';
  }
}

/** The downstream peer's address, IPv4-mapped IPv6 shown as plain IPv4 (as Envoy logs it). */
export function downstreamAddress(x: Exchange): string {
  const a = x.req.socket.remoteAddress ?? '';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}
