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
import type { Dispatcher, Pool } from 'undici';
import { asFailure, type PoolHandler, type PoolRequest, type UpstreamPool } from './upstream-pool.js';

export class UndiciUpstream implements UpstreamPool {
  readonly validatedHeads = false;

  constructor(readonly pool: Pool) {}

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
