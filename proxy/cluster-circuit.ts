// Envoy's circuit breakers belong to the cluster, not to one snapshot or one connection pool.
// A `ClusterCircuit` is kept per cluster name across config reloads, so a request that started
// before a reload releases the counters that new requests check (a copied count would leak one
// slot per request in flight at each reload). `ConnectionBudget` is the cluster-wide
// `tcp.maxConnections`: every pool of the cluster (the raw HTTP/1.1 pool, undici for streamed
// bodies, upgrades and mirrors) opens a connection only with a slot from it.

/** A pool the budget may ask to give back an idle connection, and whose load it can read. */
export interface BudgetedPool {
  /** Close one idle connection (its slot returns on close); false when none is idle. */
  closeIdle(): boolean;
  /** Requests on a connection, and requests waiting for one. */
  load(): { running: number; queued: number };
}

export class ConnectionBudget {
  /** Connections open or opening, across every pool of the cluster. */
  open = 0;
  private readonly waiters: (() => void)[] = [];
  readonly pools = new Set<BudgetedPool>();
  /** While pools wait: look for a connection that went idle since (undici tells no one). */
  private ticker: NodeJS.Timeout | undefined;

  constructor(private maxConnections: number) {}

  get max(): number {
    return this.maxConnections;
  }

  /** A reload may change the limit; a raised one lets waiting pools connect at once. */
  setMax(max: number): void {
    this.maxConnections = max;
    this.wake();
  }

  /** Take a slot for a new connection, when one is free. */
  tryAcquire(): boolean {
    if (this.open >= this.maxConnections) return false;
    this.open++;
    return true;
  }

  /**
   * Call `waiter` once a slot may be free (it takes it with tryAcquire, or waits again). Meanwhile
   * an idle connection elsewhere in the cluster is closed to make room: an idle keep-alive socket
   * of one endpoint must not starve requests for another.
   */
  wait(waiter: () => void): void {
    if (!this.waiters.includes(waiter)) this.waiters.push(waiter);
    if (this.closeIdle() || this.ticker) return;
    this.ticker = setInterval(() => {
      if (this.waiters.length === 0) {
        clearInterval(this.ticker);
        this.ticker = undefined;
      } else this.closeIdle();
    }, 10);
    this.ticker.unref();
  }

  /** Pools are waiting for a slot (a connection that turns idle should close instead). */
  get contended(): boolean {
    return this.waiters.length > 0;
  }

  private closeIdle(): boolean {
    for (const p of this.pools) if (p.closeIdle()) return true;
    return false;
  }

  /** A connection closed (or failed to open): its slot goes to the first waiter. */
  release(): void {
    this.open--;
    this.wake();
  }

  private wake(): void {
    while (this.open < this.maxConnections && this.waiters.length > 0) (this.waiters.shift() as () => void)();
  }

  /** Cluster-wide load: requests running on connections and requests queued for one. */
  load(): { running: number; queued: number } {
    let running = 0;
    let queued = 0;
    for (const p of this.pools) {
      const l = p.load();
      running += l.running;
      queued += l.queued;
    }
    return { running, queued };
  }
}

/** Circuit-breaker state of one cluster, shared by every snapshot that has the cluster. */
export class ClusterCircuit {
  /** Requests in flight (http2MaxRequests). */
  active = 0;
  /** Retries in flight (maxRetries). */
  retriesActive = 0;
  readonly connections: ConnectionBudget;

  constructor(maxConnections: number) {
    this.connections = new ConnectionBudget(maxConnections);
  }
}
