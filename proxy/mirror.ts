// Traffic mirroring: fire and forget. The mirrored request never delays or fails the primary;
// its response is read and dropped.

import type { Dispatcher } from 'undici';
import type { CompiledRoute } from '../config/snapshot.js';
import type { Exchange } from './exchange.js';
import type { ProxyDeps, Runtime } from './request-path.js';
import type { UpstreamRequest } from './upstream.js';

const DISCARD = {
  onConnect() {},
  onHeaders() {
    return true;
  },
  onData() {
    return true;
  },
  onComplete() {},
  onError() {},
} as unknown as Dispatcher.DispatchHandler;

export function sendMirrors(
  rt: Runtime,
  x: Exchange,
  route: CompiledRoute,
  req: UpstreamRequest,
  deps: ProxyDeps,
): void {
  for (const m of route.mirrors) {
    if (m.percent < 100 && deps.random() * 100 >= m.percent) continue;
    const cluster = rt.clusters.get(m.cluster);
    if (!cluster) continue;
    const ep = cluster.lb.pick({ hashKey: x.hashKey });
    if (!ep) continue;
    try {
      deps.manager.pool(cluster.config, ep).dispatch(
        {
          method: req.method,
          path: req.path,
          headers: { ...req.headers },
          body: req.body as Buffer | null,
        },
        DISCARD,
      );
    } catch {
      // best effort
    }
  }
}
