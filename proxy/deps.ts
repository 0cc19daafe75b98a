// What the request path works with: the runtime a request reads once at its start, and the
// worker's shared services. Types only, so every stage can name them without importing another.

import type { Snapshot } from '../config/snapshot.js';
import type { ClusterManager, ClusterRuntime } from './cluster-manager.js';
import type { Exchange } from './exchange.js';

/** What a worker serves: a snapshot and the runtime clusters built for it. Swapped by reference. */
export interface Runtime {
  readonly snapshot: Snapshot;
  readonly clusters: ReadonlyMap<string, ClusterRuntime>;
}

export interface RequestObserver {
  onComplete(x: Exchange): void;
}

export interface ProxyDeps {
  readonly manager: ClusterManager;
  readonly random: () => number;
  readonly now: () => number;
  readonly observer: RequestObserver;
  /** Upper bound for buffering a request body for retry replay or mirroring. */
  readonly maxBufferedBody: number;
  /** Per-worker budget for all buffered bodies in flight; beyond it bodies stream (no replay). */
  readonly maxBufferedTotal: number;
  /** Bytes of request bodies currently buffered for replay in this worker. */
  bufferedBytes: number;
  /** True while draining: responses carry `Connection: close`. */
  draining: boolean;
}
