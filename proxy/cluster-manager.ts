// Runtime side of clusters: endpoint objects with live counters, a load balancer per cluster,
// and a keep-alive undici Pool per upstream endpoint. Rebuilt when a snapshot arrives; endpoint
// state and pools survive reloads when the endpoint is unchanged, so counters and warm
// connections carry over.

import { Pool } from 'undici';
import type { Cluster, Snapshot } from '../config/snapshot.js';
import { createLoadBalancer } from './lb/registry.js';
import { type Endpoint, type LoadBalancer, makeEndpoint } from './lb/types.js';
import { OutlierDetector } from './outlier-detection.js';

export interface ClusterRuntime {
  readonly config: Cluster;
  readonly endpoints: readonly Endpoint[];
  readonly lb: LoadBalancer;
  /** Requests in flight on this cluster (circuit breaking reads it). */
  active: number;
  pending: number;
  retriesActive: number;
  /** Any circuit-breaker threshold below its 2^32-1 default (checked per request only then). */
  readonly limited: boolean;
}

export interface ManagerDeps {
  random: () => number;
  /** Milliseconds, monotonic. */
  now?: () => number;
}

const MAX_PASSTHROUGH_POOLS = 256;

export class ClusterManager {
  private readonly pools = new Map<string, Pool>();
  private readonly endpointState = new Map<string, Endpoint>();
  private readonly passthroughPools = new Map<string, Pool>();
  private readonly clusterState = new Map<string, ClusterRuntime>();
  private sweeps: NodeJS.Timeout[] = [];
  readonly outlier: OutlierDetector;
  /** Circuit-breaker trips (Envoy's upstream_rq_pending_overflow + retry overflow). */
  readonly overflows = { requests: 0, retries: 0 };

  constructor(private readonly deps: ManagerDeps) {
    this.outlier = new OutlierDetector(deps.now ?? (() => performance.now()));
  }

  /** Runtime clusters for a snapshot. Called once per snapshot, off the request path. */
  build(snapshot: Snapshot): ReadonlyMap<string, ClusterRuntime> {
    const out = new Map<string, ClusterRuntime>();
    const liveEndpoints = new Set<string>();
    for (const c of snapshot.clusters.values()) {
      const eps = c.endpoints.map((e) => {
        const id = `${c.name}|${e.address}|${e.port}|${e.weight}|${JSON.stringify(e.labels)}`;
        liveEndpoints.add(id);
        let ep = this.endpointState.get(id);
        if (!ep) {
          ep = makeEndpoint(e.address, e.port, e.labels, e.weight);
          this.endpointState.set(id, ep);
        }
        return ep;
      });
      const prev = this.clusterState.get(c.name);
      const rt: ClusterRuntime = {
        config: c,
        endpoints: eps,
        lb: createLoadBalancer(eps, c.lb, { random: this.deps.random }),
        active: prev?.active ?? 0,
        pending: prev?.pending ?? 0,
        retriesActive: prev?.retriesActive ?? 0,
        limited:
          c.connectionPool.maxRequests < MAX_U32 ||
          c.connectionPool.maxPendingRequests < MAX_U32 ||
          c.connectionPool.maxConnections < MAX_U32,
      };
      out.set(c.name, rt);
    }
    for (const id of this.endpointState.keys()) if (!liveEndpoints.has(id)) this.endpointState.delete(id);
    this.clusterState.clear();
    for (const [k, v] of out) this.clusterState.set(k, v);
    this.prunePools(out);
    for (const t of this.sweeps) clearInterval(t);
    this.sweeps = [];
    for (const rt of out.values()) {
      const od = rt.config.outlierDetection;
      if (!od || rt.endpoints.length === 0) continue;
      const t = setInterval(
        () => this.outlier.sweep(rt.endpoints),
        Math.max(10, Math.min(od.intervalMs, 2 ** 31 - 1)),
      );
      t.unref();
      this.sweeps.push(t);
    }
    return out;
  }

  /** The keep-alive pool for an endpoint of a cluster. */
  pool(cluster: Cluster, ep: Endpoint): Pool {
    const key = poolKey(cluster, ep.address, ep.port);
    let p = this.pools.get(key);
    if (!p) {
      p = newPool(cluster, ep.address, ep.port);
      this.pools.set(key, p);
    }
    return p;
  }

  /** Original-destination pools (ServiceEntry resolution NONE, sidecar passthrough). */
  passthroughPool(host: string, port: number, cluster?: Cluster): Pool {
    const key = `${host}:${port}`;
    let p = this.passthroughPools.get(key);
    if (!p) {
      if (this.passthroughPools.size >= MAX_PASSTHROUGH_POOLS) {
        const [oldKey, old] = this.passthroughPools.entries().next().value as [string, Pool];
        this.passthroughPools.delete(oldKey);
        void old.close().catch(() => {});
      }
      p = newPool(cluster, host, port);
      this.passthroughPools.set(key, p);
    }
    return p;
  }

  private prunePools(clusters: ReadonlyMap<string, ClusterRuntime>): void {
    const live = new Set<string>();
    for (const rt of clusters.values())
      for (const ep of rt.endpoints) live.add(poolKey(rt.config, ep.address, ep.port));
    for (const [k, p] of this.pools)
      if (!live.has(k)) {
        this.pools.delete(k);
        // Let in-flight requests on the old pool finish; close() waits for them.
        void p.close().catch(() => {});
      }
  }

  stats(): { pools: number; connected: number; running: number; pending: number } {
    let connected = 0;
    let running = 0;
    let pending = 0;
    for (const p of [...this.pools.values(), ...this.passthroughPools.values()]) {
      connected += p.stats.connected;
      running += p.stats.running;
      pending += p.stats.pending;
    }
    return { pools: this.pools.size + this.passthroughPools.size, connected, running, pending };
  }

  async close(): Promise<void> {
    for (const t of this.sweeps) clearInterval(t);
    this.sweeps = [];
    const all = [...this.pools.values(), ...this.passthroughPools.values()];
    this.pools.clear();
    this.passthroughPools.clear();
    await Promise.all(all.map((p) => p.close().catch(() => {})));
  }
}

function poolKey(c: Cluster, address: string, port: number): string {
  const cp = c.connectionPool;
  return `${address}|${port}|${cp.maxConnections}|${cp.connectTimeoutMs}|${cp.idleTimeoutMs}|${cp.maxRequestsPerConnection}`;
}

function origin(address: string, port: number): string {
  if (address.includes(':') && !address.startsWith('[')) return `http://[${address}]:${port}`;
  return `http://${address}:${port}`;
}

const MAX_U32 = 2 ** 32 - 1;

function newPool(c: Cluster | undefined, address: string, port: number): Pool {
  const cp = c?.connectionPool;
  const socketPath = address.startsWith('unix://') ? address.slice('unix://'.length) : undefined;
  return new Pool(socketPath ? 'http://localhost' : origin(address, port), {
    connections: cp && cp.maxConnections < MAX_U32 ? cp.maxConnections : null,
    pipelining: 1,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: cp ? Math.min(cp.idleTimeoutMs, 600_000) : 600_000,
    ...(cp && cp.maxRequestsPerConnection > 0 ? { maxRequestsPerClient: cp.maxRequestsPerConnection } : {}),
    connect: { timeout: cp?.connectTimeoutMs ?? 10_000, ...(socketPath ? { socketPath } : {}) },
  });
}
