// Messages between the agent and its workers (node:cluster IPC, JSON).

import type { CredentialStore } from '../config/credentials.js';
import type { ProxyIdentity } from '../config/snapshot.js';
import type { AnyResource } from '../config/types.js';
import type { AccessLogFormat } from '../proxy/access-log.js';
import type { WorkerMetrics } from '../proxy/stats.js';

export type AgentToWorker =
  | {
      t: 'config';
      version: string;
      resources: AnyResource[];
      identity: ProxyIdentity;
      /** TLS material by credential key, resolved by the agent (workers read no credential files). */
      credentials: CredentialStore;
    }
  | { t: 'drain'; ms: number }
  /** Scrape: the worker answers with its metrics under the same id. */
  | { t: 'metrics'; id: number };

export type WorkerToAgent =
  | { t: 'hello' }
  | { t: 'applied'; version: string; bound: boolean; errors: string[] }
  | { t: 'fatal'; message: string }
  | { t: 'metrics'; id: number; metrics: WorkerMetrics };

/** Environment variable carrying `WorkerInit` (JSON) to a forked worker. */
export const WORKER_INIT_ENV = 'COURIER_WORKER_INIT';

/** What a worker needs before its first request: who it reports as and where it logs. */
export interface WorkerInit {
  identity: ProxyIdentity;
  podName: string;
  workload: string;
  accessLog: string;
  accessLogFormat: AccessLogFormat;
}
