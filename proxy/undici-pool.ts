// The upstream pool contract (upstream-pool.ts) over an undici Pool, for what the raw HTTP/1.1
// pool does not do: streamed request bodies and upgrades (also original-destination passthrough,
// and every request with COURIER_FAST_PATH=0). Failures become `UpstreamFailure`s.
//
// undici does not say which socket served a request, so `reused` is inferred: the request was
// dispatched while the pool had a connection open (undici serves from an idle connection before
// it opens one). A request on a pool with no connection is on a fresh one for certain. Nor can
// undici be told to use a new connection: `PoolRequest.fresh` is not honoured here, so a replay on
// this path may meet another stale idle socket (and then fails as a reset, as it did before).

import type { Socket } from 'node:net';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import type { buildConnector, Dispatcher, Pool } from 'undici';
import {
  asFailure,
  handshakeFailure,
  type PoolHandler,
  type PoolRequest,
  UpstreamFailure,
  type UpstreamPool,
} from './upstream-pool.js';

export class UndiciUpstream implements UpstreamPool {
  readonly validatedHeads = false;

  /**
   * `servername`: for a TLS pool, the one server name all its requests carry. undici destroys a
   * connection when a request's server name (by default from its Host header) differs from the
   * last one; the pool's SNI is fixed by the connector (tlsConnector), so this only keeps the
   * connections alive when Host headers vary (an explicit DR `sni` shared by several hosts).
   */
  constructor(
    readonly pool: Pool,
    private readonly servername?: string,
  ) {}

  get closed(): boolean {
    return this.pool.closed || this.pool.destroyed;
  }

  dispatch(req: PoolRequest, handler: PoolHandler): void {
    const reused = this.pool.stats.connected > 0;
    const adapter = new Adapter(handler, reused);
    try {
      this.pool.dispatch(
        {
          method: req.method,
          path: req.path,
          headers: req.headers,
          body: req.body as Dispatcher.DispatchOptions['body'],
          upgrade: req.upgrade ?? null,
          ...(this.servername !== undefined ? { servername: this.servername } : {}),
        },
        adapter as unknown as Dispatcher.DispatchHandler,
      );
    } catch (err) {
      adapter.onError(err as Error);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/** undici's dispatch handler (the raw-headers API) in front of a pool handler. */
class Adapter {
  private gotBytes = false;
  private ended = false;

  constructor(
    private readonly h: PoolHandler,
    private readonly reused: boolean,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    this.h.onConnect(abort);
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void, text: string): boolean {
    this.gotBytes = true;
    if (status < 200) return true; // interim (100, 103): the final head follows
    return this.h.onHeaders(status, raw, resume, text);
  }

  onData(chunk: Buffer): boolean {
    this.gotBytes = true;
    return this.h.onData(chunk);
  }

  onComplete(trailers: Buffer[] | null): void {
    this.ended = true;
    this.h.onComplete(trailers);
  }

  onUpgrade(status: number, raw: Buffer[] | string[] | null, socket: Socket): void {
    this.gotBytes = true;
    this.ended = true;
    if (this.h.onUpgrade) this.h.onUpgrade(status, raw ?? [], socket);
    else socket.destroy();
  }

  onError(err: Error & { code?: string }): void {
    if (this.ended) return;
    this.ended = true;
    this.h.onError(asFailure(err, this.reused, this.gotBytes));
  }
}

/**
 * undici's connector for a TLS pool: the connection is handed over once the handshake and the
 * certificate check passed, with the SNI and verification of `tls` (upstream-tls.ts), whatever
 * server name undici asks for. A failure before that is a connect failure (handshakeFailure); the
 * last session is resumed by the next connection.
 */
export function tlsConnector(
  tls: ConnectionOptions,
  timeoutMs: number,
  socketPath?: string,
): buildConnector.connector {
  let session: Buffer | undefined;
  return (opts, cb) => {
    const where =
      socketPath !== undefined
        ? { path: socketPath }
        : { host: opts.hostname, port: Number(opts.port) || 443 };
    const s = tlsConnect({ ...tls, ...where, ...(session ? { session } : {}) });
    if (socketPath === undefined) s.setNoDelay(true);
    s.on('session', (b: Buffer) => {
      session = b;
    });
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        s.destroy();
        cb(handshakeFailure(err), null);
        return;
      }
      s.off('error', finish);
      cb(null, s);
    };
    const timer = setTimeout(
      () => finish(new UpstreamFailure('connect timeout', 'UND_ERR_CONNECT_TIMEOUT', 'connect')),
      timeoutMs,
    );
    s.once('secureConnect', () => finish());
    s.on('error', finish);
  };
}
