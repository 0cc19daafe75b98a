// Messages between the agent and its workers (node:cluster IPC, JSON).

import type { ProxyIdentity } from '../config/snapshot.js';
import type { AnyResource } from '../config/types.js';

export type AgentToWorker =
  | { t: 'config'; version: string; resources: AnyResource[]; identity: ProxyIdentity }
  | { t: 'drain'; ms: number };

export type WorkerToAgent =
  | { t: 'hello' }
  | { t: 'applied'; version: string; bound: boolean; errors: string[] }
  | { t: 'fatal'; message: string };
