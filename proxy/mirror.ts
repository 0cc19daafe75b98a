// Traffic mirroring: fire and forget. The mirrored request never delays or fails the primary;
// its response is read and dropped. Its authority carries Envoy's `-shadow` suffix, so the
// shadow service can tell copies from live traffic (Istio >= 1.28 can turn the suffix off in
// istiod, DISABLE_SHADOW_HOST_SUFFIX; here COURIER_DISABLE_SHADOW_HOST_SUFFIX=true does).

import type { CompiledRoute } from '../config/snapshot.js';
import { overflows } from './cluster-manager.js';
import type { ProxyDeps, Runtime } from './deps.js';
import type { Exchange } from './exchange.js';
import type { UpstreamRequest } from './upstream-headers.js';
import type { PoolHandler } from './upstream-pool.js';
import { tlsUnusable } from './upstream-tls.js';

/** Reads and drops a shadow response; the request counts as in flight until it ends. */
class Discard implements PoolHandler {
  constructor(private release: (() => void) | undefined) {}
  onConnect(): void {}
  onHeaders(): boolean {
    return true;
  }
  onData(): boolean {
    return true;
  }
  onComplete(): void {
    this.end();
  }
  onError(): void {
    this.end();
  }
  private end(): void {
    const r = this.release;
    this.release = undefined;
    r?.();
  }
}

const SUFFIX = process.env.COURIER_DISABLE_SHADOW_HOST_SUFFIX === 'true' ? '' : '-shadow';

/**
 * Envoy's shadow host: the suffix goes before the port (`a.com:8080` -> `a.com-shadow:8080`); a
 * colon inside an IPv6 literal is not a port (`[::1]` -> `[::1]-shadow`, `[::1]:80` ->
 * `[::1]-shadow:80`).
 */
export function shadowAuthority(host: string, suffix = '-shadow'): string {
  const colon = host.lastIndexOf(':');
  if (colon < 0 || host.lastIndexOf(']') > colon) return `${host}${suffix}`;
  return `${host.slice(0, colon)}${suffix}${host.slice(colon)}`;
}

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
    // A shadow cluster whose TLS material is not ready gets no copy (no connection is tried).
    if (!cluster || tlsUnusable(cluster.config.tls)) continue;
    const ep = cluster.lb.pick({ hashKey: x.hashKey });
    if (!ep) continue;
    // Envoy's shadow requests go through the shadow cluster's router and connection pool, so its
    // circuit breakers count them, and trip for them: an overflowing shadow is not sent.
    if (cluster.limited && overflows(cluster)) {
      deps.manager.overflows.requests++;
      continue;
    }
    ep.active++;
    cluster.circuit.active++;
    const handler = new Discard(() => {
      ep.active--;
      cluster.circuit.active--;
    });
    // A mirror's body is buffered (a streamed request is not mirrored): the raw pool takes it.
    // Its Host is the shadow authority, and so is a TLS shadow cluster's SNI (as Envoy's auto SNI).
    const host = shadowAuthority(String(req.headers.host ?? ''), SUFFIX);
    deps.manager
      .poolFor(cluster.config, ep, 'buffered', host)
      .dispatch(
        { method: req.method, path: req.path, headers: { ...req.headers, host }, body: req.body },
        handler,
      );
  }
}
