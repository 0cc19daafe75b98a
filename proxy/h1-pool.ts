// The fast path for the common case: HTTP/1.1 to an upstream over pooled keep-alive sockets (TCP
// or unix), a request head serialised in one string and written with its (buffered) body in one
// write, and a minimal response parser (status line, headers, Content-Length / chunked /
// close-delimited bodies). It implements the upstream pool contract (upstream-pool.ts), as the
// undici adapter does for what this does not cover (streamed request bodies, upgrades). A failure
// says whether the socket was reused and whether any byte came back; replaying the idle-socket
// race is the forwarder's decision, not the pool's.
// Measured on the bench config: a bare forwarder on undici cost ~60 µs/request of CPU, the same
// forwarder on raw pooled sockets ~47 µs (bench/README.md).

import { type BudgetedPool, ConnectionBudget } from './cluster-circuit.js';
import { Conn, type ConnOwner, type H1Handler, type H1PoolOptions, type H1Request } from './h1-conn.js';
import { asFailure, type RawHeaders, UpstreamFailure, type UpstreamPool } from './upstream-pool.js';

export type { H1Handler, H1PoolOptions, H1Request };

/** A pending dispatch waiting for a socket. */
interface Queued {
  req: H1Request;
  handler: H1Handler;
}
export class H1Pool implements UpstreamPool, BudgetedPool, ConnOwner {
  /** Response heads come validated, names lower-cased (h1-conn.ts parseHead). */
  readonly validatedHeads = true;
  private readonly idle: Conn[] = [];
  private readonly all = new Set<Conn>();
  private readonly queue: Queued[] = [];
  /** Requests that must go on a new connection (PoolRequest.fresh): served before `queue` by one. */
  private readonly freshQueue: Queued[] = [];
  private connecting = 0;
  private running = 0;
  private closedPool = false;
  /** TLS pools: the session the next connection resumes (ConnOwner). */
  tlsSession: Buffer | undefined;
  /** True once close() ran (the cluster manager pruned it). */
  get closed(): boolean {
    return this.closedPool;
  }
  private sweeper: NodeJS.Timeout | undefined;
  /** Every socket this pool opens takes a slot from the budget and returns it on close. */
  private readonly budget: ConnectionBudget;
  private readonly onSlot = () => this.grow();

  constructor(
    readonly host: string,
    readonly port: number,
    readonly opts: H1PoolOptions,
  ) {
    this.budget = opts.budget ?? new ConnectionBudget(opts.connections);
    this.budget.pools.add(this);
  }

  load(): { running: number; queued: number } {
    return { running: this.running, queued: this.queue.length + this.freshQueue.length };
  }

  closeIdle(): boolean {
    const c = this.takeIdle();
    if (!c) return false;
    c.socket.destroy();
    return true;
  }

  get stats(): { running: number; queued: number; connected: number; free: number } {
    return {
      running: this.running,
      queued: this.queue.length + this.freshQueue.length,
      connected: this.all.size,
      free: this.idle.length,
    };
  }

  dispatch(req: H1Request, handler: H1Handler): void {
    if (this.closedPool) {
      handler.onError(new UpstreamFailure('pool closed', 'UND_ERR_DESTROYED', 'reset'));
      return;
    }
    const body = req.body;
    if (req.upgrade !== undefined || (body !== null && !(body instanceof Uint8Array))) {
      // The cluster manager sends streamed bodies and upgrades to undici; never here.
      handler.onError(
        new UpstreamFailure('not supported by the raw pool', 'UND_ERR_NOT_SUPPORTED', 'protocol'),
      );
      return;
    }
    if (req.fresh === true) {
      this.freshQueue.push({ req, handler });
      this.grow();
      return;
    }
    const c = this.takeIdle();
    if (c) return this.start(c, req, handler);
    this.queue.push({ req, handler });
    this.grow();
  }

  private takeIdle(): Conn | undefined {
    let c = this.idle.pop();
    while (c?.closed) c = this.idle.pop();
    if (c) c.idleSince = 0;
    return c;
  }

  private start(c: Conn, req: H1Request, handler: H1Handler): void {
    this.running++;
    const wrapped = new Counting(this, handler);
    c.send(req, wrapped);
  }

  private grow(): void {
    if (this.closedPool) return;
    while (this.queue.length + this.freshQueue.length > this.connecting) {
      if (!this.budget.tryAcquire()) {
        this.budget.wait(this.onSlot);
        return;
      }
      this.connecting++;
      new Conn(this, this.host, this.port, (conn, err) => {
        this.connecting--;
        if (err) {
          // A connect failure fails the oldest waiting request (the one this socket was for).
          (this.freshQueue.shift() ?? this.queue.shift())?.handler.onError(asFailure(err, false, false));
          return;
        }
        this.all.add(conn);
        this.release(conn, true);
      });
    }
  }

  /** A socket finished an exchange (or just connected): hand it the next request or park it. */
  release(c: Conn, fresh = false): void {
    if (c.closed) return;
    if (this.closedPool) {
      c.socket.destroy();
      return;
    }
    if (!fresh) c.reused = true;
    const next = (fresh ? this.freshQueue.shift() : undefined) ?? this.queue.shift();
    if (next) return this.start(c, next.req, next.handler);
    // Another pool of the cluster waits for a connection slot: give this one back.
    if (this.budget.contended) {
      c.socket.destroy();
      return;
    }
    c.reused = true;
    c.idleSince = Date.now();
    this.idle.push(c);
    // One sweep per pool instead of a timer per parked socket (a timer per request otherwise).
    if (!this.sweeper) {
      const every = Math.min(1000, Math.max(25, this.opts.keepAliveMs / 4));
      this.sweeper = setInterval(() => this.sweep(), every);
      this.sweeper.unref();
    }
  }

  /** Close sockets idle for keepAliveMs or more (oldest first: the idle list is a stack). */
  private sweep(): void {
    const cutoff = Date.now() - this.opts.keepAliveMs;
    while (this.idle.length > 0 && (this.idle[0] as Conn).idleSince <= cutoff) {
      (this.idle.shift() as Conn).socket.destroy();
    }
    if (this.all.size === 0 && this.sweeper) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
    }
  }

  /** A socket closed (after connecting or failing to): its budget slot returns. */
  forget(c: Conn): void {
    this.budget.release();
    this.all.delete(c);
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (this.queue.length + this.freshQueue.length > 0) this.grow();
  }

  done(): void {
    this.running--;
  }

  async close(): Promise<void> {
    this.closedPool = true;
    for (const q of [...this.freshQueue.splice(0), ...this.queue.splice(0)])
      q.handler.onError(new UpstreamFailure('pool closed', 'UND_ERR_DESTROYED', 'reset'));
    // Idle sockets close now; sockets with a request in flight finish it and close on release.
    for (const c of this.idle.splice(0)) c.socket.destroy();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = undefined;
    this.budget.pools.delete(this);
  }
}

/** Wraps a handler to keep the pool's running count. */
class Counting implements H1Handler {
  private finished = false;

  constructor(
    private readonly pool: H1Pool,
    private readonly inner: H1Handler,
  ) {}

  onConnect(abort: (err?: Error) => void): void {
    this.inner.onConnect(abort);
  }

  onHeaders(status: number, raw: RawHeaders, resume: () => void, text: string): boolean {
    return this.inner.onHeaders(status, raw, resume, text);
  }

  onData(chunk: Buffer): boolean {
    return this.inner.onData(chunk);
  }

  onComplete(trailers: RawHeaders | null): void {
    this.end();
    this.inner.onComplete(trailers);
  }

  onError(err: UpstreamFailure): void {
    this.end();
    this.inner.onError(err);
  }

  private end(): void {
    if (this.finished) return;
    this.finished = true;
    this.pool.done();
  }
}
