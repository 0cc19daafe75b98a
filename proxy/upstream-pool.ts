// The one contract between the request path and the upstream connection pools. The forwarder,
// mirrors and upgrade tunnels ask the cluster manager for a pool (cluster-manager.ts picks the
// implementation per cluster, endpoint and request need) and dispatch through it the same way:
// the raw HTTP/1.1 pool (h1-pool.ts) for bodyless and buffered requests, the undici adapter
// (undici-pool.ts) for streamed bodies, upgrades and passthrough. Every failure is
// an `UpstreamFailure` that says what failed, on what kind of connection, and whether any
// response byte had arrived: enough for the forwarder's single idle-race replay rule.

import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { isTlsFailureCode, tlsFailureReason } from './upstream-tls.js';

/** What an upstream attempt failed at (the forwarder's per-try timeout makes `timeout`). */
export type FailureKind = 'connect' | 'reset' | 'protocol' | 'timeout';

/** The one failure type every pool hands to `PoolHandler.onError`. */
export class UpstreamFailure extends Error {
  constructor(
    message: string,
    /** The transport's own code (ECONNREFUSED, UND_ERR_SOCKET, HPE_INVALID, ...), when it gave one. */
    readonly code: string | undefined,
    readonly kind: FailureKind,
    /** The connection had served an exchange before this one (a kept-alive socket). */
    public reused = false,
    /** Some response byte arrived before the failure (a status line, a head, body bytes). */
    public gotBytes = false,
  ) {
    super(message);
  }
  /** Envoy's transport failure reason, when known where the failure happened (a TLS handshake). */
  transportFailure?: string | undefined;
}

/** Header name/value pairs as received: lower-cased strings (raw pool) or Buffers (undici). */
export type RawHeaders = (string | Buffer)[];

export interface PoolRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  /** Buffered (replayable), the downstream stream itself, or none. */
  body: Buffer | Readable | null;
  /** The Upgrade protocol (websocket, ...): the handler's onUpgrade gets the socket on a 101. */
  upgrade?: string | undefined;
  /**
   * Send on a new connection, never an idle one (the replay after an idle-socket race). The raw
   * pool honours it; undici cannot be told, so there it is a hint only (undici-pool.ts).
   */
  fresh?: boolean;
}

export interface PoolHandler {
  /** Called once, before anything else: `abort` cancels the exchange (onError follows). */
  onConnect(abort: (err?: Error) => void): void;
  /** A final response head (1xx are skipped). false: pause reading until `resume` is called. */
  onHeaders(status: number, raw: RawHeaders, resume: () => void, statusText: string): boolean;
  /** A body chunk; false pauses reading until `resume`. */
  onData(chunk: Buffer): boolean;
  onComplete(trailers: RawHeaders | null): void;
  /** The upstream switched protocols: the socket is the handler's from now on. */
  onUpgrade?(status: number, raw: RawHeaders, socket: Socket): void;
  onError(err: UpstreamFailure): void;
}

export interface UpstreamPool {
  /**
   * Response header pairs arrive validated, names lower-cased, as strings: fit to go straight
   * into the downstream head (`writeRawHead`) without a header object in between.
   */
  readonly validatedHeads: boolean;
  dispatch(req: PoolRequest, handler: PoolHandler): void;
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOENT',
]);

/** The failure class of a transport error. */
export function failureKind(err: Error & { code?: string }): FailureKind {
  if (err instanceof UpstreamFailure) return err.kind;
  const code = err.code ?? '';
  // A failed TLS handshake or certificate check: the connection never became usable (Envoy: UF).
  if (CONNECT_CODES.has(code) || isTlsFailureCode(code)) return 'connect';
  if (
    err.name === 'HTTPParserError' ||
    code.startsWith('HPE_') ||
    code === 'UND_ERR_HEADERS_OVERFLOW' ||
    code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'
  )
    return 'protocol';
  return 'reset';
}

/** A transport error as the one failure type, with what is known of its connection. */
export function asFailure(
  err: Error & { code?: string },
  reused: boolean,
  gotBytes: boolean,
): UpstreamFailure {
  if (err instanceof UpstreamFailure) {
    err.reused = reused;
    err.gotBytes = gotBytes;
    return err;
  }
  const f = new UpstreamFailure(err.message, err.code, failureKind(err), reused, gotBytes);
  f.cause = err;
  return f;
}

/**
 * An error that ended a TLS connection before it was ready (the handshake or the certificate
 * check): a connect failure whatever its code, with Envoy's transport failure reason.
 */
export function handshakeFailure(err: Error & { code?: string }): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
  const f = new UpstreamFailure(err.message, err.code, 'connect');
  f.transportFailure = tlsFailureReason(err, true);
  f.cause = err;
  return f;
}
