// Runtime side of clusters: endpoint objects with live counters, a load balancer per cluster,
// and the keep-alive upstream pools per endpoint, chosen per request need (`poolFor`): the raw
// HTTP/1.1 pool, or undici for streamed bodies and upgrades (upstream-pool.ts). Rebuilt when a
// snapshot arrives; endpoint state and pools survive reloads when the endpoint is unchanged, so
// counters and warm connections carry over. A cluster with DestinationRule TLS (SIMPLE/MUTUAL)
// originates it in every pool (upstream-tls.ts); its pools are keyed by its TLS settings and by
// the request host its SNI comes from, as Envoy keys pools by transport socket options.
// Hostnames of DNS clusters are resolved in the background (dns-resolver.ts): one endpoint per
// resolved address, swapped into the live ClusterRuntime when the address set changes.

import { buildConnector, Pool } from 'undici';
import type { Cluster, ClusterEndpoint, Snapshot } from '../config/snapshot.js';
import { type BudgetedPool, ClusterCircuit, type ConnectionBudget } from './cluster-circuit.js';
import { DnsResolver, type DnsResolverOptions, needsDns } from './dns-resolver.js';
import { H1Pool } from './h1-pool.js';
import { createLoadBalancer } from './lb/registry.js';
import { type Endpoint, type LoadBalancer, makeEndpoint } from './lb/types.js';
import { OutlierDetector } from './outlier-detection.js';
import { MAX_TIMER_MS } from './timers.js';
import { tlsConnector, UndiciUpstream } from './undici-pool.js';
import type { UpstreamPool } from './upstream-pool.js';
import { originates, serverName, tlsHost, upstreamTlsOptions } from './upstream-tls.js';

/**
 * What a request needs of its pool: a buffered (or no) body, which the raw HTTP/1.1 pool sends;
 * a streamed body or an upgrade, which undici does.
 */
export type PoolNeed = 'buffered' | 'streamed' | 'upgrade';

export interface ClusterRuntime {
  readonly config: Cluster;
  /** Replaced in place (with `lb`) when a DNS cluster's addresses change; new picks see them. */
  endpoints: readonly Endpoint[];
  lb: LoadBalancer;
  /** Circuit-breaker counters and the connection budget: the same object across reloads. */
  readonly circuit: ClusterCircuit;
  /** Any circuit-breaker threshold below its 2^32-1 default (checked per request only then). */
  readonly limited: boolean;
}

export interface ManagerDeps {
  random: () => number;
  /** Milliseconds, monotonic. */
  now?: () => number;
  /** Resolver for `dns` clusters: servers (COURIER_DNS_SERVERS), or a lookup injected by tests. */
  dns?: DnsResolverOptions;
}

const MAX_PASSTHROUGH_POOLS = 256;

export class ClusterManager {
  private readonly pools = new Map<string, UndiciUpstream>();
  private readonly fastPools = new Map<string, H1Pool>();
  /** COURIER_FAST_PATH=0 sends everything through undici (for comparison and as an escape hatch). */
  readonly fastPath = process.env.COURIER_FAST_PATH !== '0';
  private readonly endpointState = new Map<string, Endpoint>();
  private readonly passthroughPools = new Map<string, UndiciUpstream>();
  private readonly clusterState = new Map<string, ClusterRuntime>();
  /** An undici pool's place in its cluster's budget (dropped when the pool is pruned). */
  private readonly undiciMembers = new WeakMap<
    UndiciUpstream,
    { budget: ConnectionBudget; member: BudgetedPool }
  >();
  /** Per cluster name, kept while the cluster exists (Envoy keeps breakers per cluster). */
  private readonly circuits = new Map<string, ClusterCircuit>();
  private sweeps: NodeJS.Timeout[] = [];
  private readonly dns: DnsResolver;
  /** DNS hostname -> names of the current clusters with an endpoint on it. */
  private dnsClusters = new Map<string, string[]>();
  readonly outlier: OutlierDetector;
  /** Circuit-breaker trips (Envoy's upstream_rq_pending_overflow + retry overflow). */
  readonly overflows = { requests: 0, retries: 0 };

  constructor(private readonly deps: ManagerDeps) {
    this.outlier = new OutlierDetector(deps.now ?? (() => performance.now()));
    this.dns = new DnsResolver(deps.dns ?? {}, (host) => this.onDnsChange(host));
  }

  /** Runtime clusters for a snapshot. Called once per snapshot, off the request path. */
  build(snapshot: Snapshot): ReadonlyMap<string, ClusterRuntime> {
    const out = new Map<string, ClusterRuntime>();
    const liveEndpoints = new Set<string>();
    const dnsClusters = new Map<string, string[]>();
    for (const c of snapshot.clusters.values()) {
      if (c.discovery === 'dns')
        for (const e of c.endpoints)
          if (needsDns(e.address)) {
            const names = dnsClusters.get(e.address) ?? [];
            if (!names.includes(c.name)) names.push(c.name);
            dnsClusters.set(e.address, names);
          }
      const eps = this.endpointsOf(c, liveEndpoints);
      const cp = c.connectionPool;
      let circuit = this.circuits.get(c.name);
      if (circuit) circuit.connections.setMax(cp.maxConnections);
      else {
        circuit = new ClusterCircuit(cp.maxConnections);
        this.circuits.set(c.name, circuit);
      }
      const rt: ClusterRuntime = {
        config: c,
        endpoints: eps,
        lb: createLoadBalancer(eps, c.lb, { random: this.deps.random }),
        circuit,
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
    // Requests in flight on a removed cluster hold its old circuit object, not this map.
    for (const name of this.circuits.keys()) if (!out.has(name)) this.circuits.delete(name);
    this.prunePools(out);
    this.dnsClusters = dnsClusters;
    this.dns.sync(dnsClusters.keys());
    for (const t of this.sweeps) clearInterval(t);
    this.sweeps = [];
    for (const rt of out.values()) {
      const od = rt.config.outlierDetection;
      if (!od || rt.endpoints.length === 0) continue;
      const t = setInterval(
        () => this.outlier.sweep(rt.endpoints, od),
        Math.max(10, Math.min(od.intervalMs, MAX_TIMER_MS)),
      );
      t.unref();
      this.sweeps.push(t);
    }
    return out;
  }

  /** A cluster's endpoint objects (reused by id); DNS hostnames expand to their last good
   * addresses, or stay as the hostname until the first answer. */
  private endpointsOf(c: Cluster, live: Set<string>): Endpoint[] {
    const out: Endpoint[] = [];
    for (const e of c.endpoints) {
      const resolved =
        c.discovery === 'dns' && needsDns(e.address) ? this.dns.addresses(e.address) : undefined;
      for (const address of resolved ?? [e.address]) {
        const id = endpointId(c, address, e);
        if (resolved && live.has(id)) continue; // two hostnames, one address
        live.add(id);
        let ep = this.endpointState.get(id);
        if (!ep) {
          ep = makeEndpoint(address, e.port, e.labels, e.weight);
          this.endpointState.set(id, ep);
        }
        out.push(ep);
      }
    }
    return out;
  }

  /** A DNS host's address set changed: rebuild the endpoints and LB of its clusters in place. */
  private onDnsChange(host: string): void {
    for (const name of this.dnsClusters.get(host) ?? []) {
      const rt = this.clusterState.get(name);
      if (!rt) continue;
      const live = new Set<string>();
      const eps = this.endpointsOf(rt.config, live);
      for (const old of rt.endpoints) {
        const id = endpointId(rt.config, old.address, old);
        if (!live.has(id)) this.endpointState.delete(id);
      }
      rt.endpoints = eps;
      rt.lb = createLoadBalancer(eps, rt.config.lb, { random: this.deps.random });
    }
    this.prunePools(this.clusterState);
  }

  /**
   * The pool for a request to an endpoint of a cluster: the raw HTTP/1.1 pool for a buffered or
   * absent body (over TCP or a unix socket), undici for a streamed body or an upgrade (and for
   * everything with COURIER_FAST_PATH=0). Every pool of the cluster opens connections from its
   * one budget. `authority`: the upstream request's Host (after rewrites), where a TLS cluster's
   * SNI and hostname check come from; unused for plaintext.
   */
  poolFor(cluster: Cluster, ep: Endpoint, need: PoolNeed = 'buffered', authority = ''): UpstreamPool {
    if (need === 'buffered' && this.fastPath) return this.fastPool(cluster, ep, authority);
    return this.pool(cluster, ep, authority);
  }

  /** The undici pool for an endpoint of a cluster (and, for TLS, the request's host). */
  pool(cluster: Cluster, ep: Endpoint, authority = ''): UndiciUpstream {
    const host = tlsHost(cluster.tls, authority);
    const key = poolKey(cluster, ep.address, ep.port, host);
    let p = this.pools.get(key);
    if (!p) {
      const budget = this.circuitOf(cluster).connections;
      const pool = newPool(cluster, ep.address, ep.port, budget, host);
      const up = new UndiciUpstream(pool, sniToken(cluster, host));
      p = up;
      this.pools.set(key, up);
      // An idle undici pool gives its connections back by closing; the next request opens anew.
      const member: BudgetedPool = {
        load: () => ({ running: pool.stats.running, queued: pool.stats.pending }),
        closeIdle: () => {
          const st = pool.stats;
          if (st.running > 0 || st.pending > 0 || st.connected === 0 || this.pools.get(key) !== up)
            return false;
          this.pools.delete(key);
          budget.pools.delete(member);
          void pool.close().catch(() => {});
          return true;
        },
      };
      budget.pools.add(member);
      this.undiciMembers.set(up, { budget, member });
    }
    return p;
  }

  /** The circuit of a cluster of the current snapshot (a fresh one for a cluster not built). */
  private circuitOf(cluster: Cluster): ClusterCircuit {
    let c = this.circuits.get(cluster.name);
    if (!c) {
      c = new ClusterCircuit(cluster.connectionPool.maxConnections);
      this.circuits.set(cluster.name, c);
    }
    return c;
  }

  /** The raw HTTP/1.1 pool for an endpoint (requests without a streamed body). */
  fastPool(cluster: Cluster, ep: Endpoint, authority = ''): H1Pool {
    // Cached on the endpoint for its cluster config (and TLS host): no key string per request.
    const e = ep as Endpoint & { h1Pool?: H1Pool; h1Cluster?: Cluster; h1Host?: string };
    const cached = e.h1Pool;
    // Plaintext: '' without looking at the authority.
    const host = cluster.tls.mode === 'DISABLE' ? '' : tlsHost(cluster.tls, authority);
    if (cached !== undefined && e.h1Cluster === cluster && e.h1Host === host && !cached.closed) return cached;
    const key = poolKey(cluster, ep.address, ep.port, host);
    let p = this.fastPools.get(key);
    if (!p) {
      const cp = cluster.connectionPool;
      p = new H1Pool(ep.address, ep.port, {
        ...(originates(cluster.tls) ? { tls: upstreamTlsOptions(cluster.tls, host) } : {}),
        connections: cp.maxConnections,
        budget: this.circuitOf(cluster).connections,
        connectTimeoutMs: cp.connectTimeoutMs,
        keepAliveMs: Math.min(4_000, cp.idleTimeoutMs),
        maxRequestsPerConnection: cp.maxRequestsPerConnection,
        maxConnectionDurationMs: cp.maxConnectionDurationMs,
        tcpKeepaliveMs: cp.tcpKeepaliveMs,
      });
      this.fastPools.set(key, p);
    }
    e.h1Pool = p;
    e.h1Cluster = cluster;
    e.h1Host = host;
    return p;
  }

  /**
   * Original-destination pools (ServiceEntry resolution NONE, sidecar passthrough), per
   * destination; a cluster's TLS applies there too, keyed by its settings and the SNI's host.
   */
  passthroughPool(host: string, port: number, cluster?: Cluster, authority = ''): UpstreamPool {
    const tls = cluster !== undefined && originates(cluster.tls) ? cluster.tls : undefined;
    const sniHost = tls ? tlsHost(tls, authority) : '';
    const key = tls ? `${host}:${port}|${tls.key}\n${sniHost}` : `${host}:${port}`;
    let p = this.passthroughPools.get(key);
    if (!p) {
      if (this.passthroughPools.size >= MAX_PASSTHROUGH_POOLS) {
        const [oldKey, old] = this.passthroughPools.entries().next().value as [string, UndiciUpstream];
        this.passthroughPools.delete(oldKey);
        void old.close().catch(() => {});
      }
      p = new UndiciUpstream(newPool(cluster, host, port, undefined, sniHost), sniToken(cluster, sniHost));
      this.passthroughPools.set(key, p);
    }
    return p;
  }

  private forgetMember(p: UndiciUpstream): void {
    const m = this.undiciMembers.get(p);
    if (m) m.budget.pools.delete(m.member);
  }

  private prunePools(clusters: ReadonlyMap<string, ClusterRuntime>): void {
    const live = new Set<string>();
    for (const rt of clusters.values())
      for (const ep of rt.endpoints) live.add(poolKey(rt.config, ep.address, ep.port, ''));
    for (const [k, p] of this.fastPools)
      if (!live.has(baseKey(k))) {
        this.fastPools.delete(k);
        void p.close();
      }
    for (const [k, p] of this.pools)
      if (!live.has(baseKey(k))) {
        this.pools.delete(k);
        this.forgetMember(p);
        // Let in-flight requests on the old pool finish; close() waits for them.
        void p.close().catch(() => {});
      }
  }

  stats(): { pools: number; connected: number; running: number; pending: number } {
    let connected = 0;
    let running = 0;
    let pending = 0;
    for (const u of [...this.pools.values(), ...this.passthroughPools.values()]) {
      const st = u.pool.stats;
      connected += st.connected;
      running += st.running;
      pending += st.pending;
    }
    for (const p of this.fastPools.values()) {
      const st = p.stats;
      connected += st.connected;
      running += st.running;
      pending += st.queued;
    }
    return { pools: this.pools.size + this.passthroughPools.size, connected, running, pending };
  }

  resilience(): {
    ejectionsTotal: number;
    ejected: { cluster: string; endpoint: string }[];
    overflows: { requests: number; retries: number };
  } {
    const ejected: { cluster: string; endpoint: string }[] = [];
    for (const rt of this.clusterState.values())
      for (const ep of rt.endpoints)
        if (ep.ejected) ejected.push({ cluster: rt.config.name, endpoint: ep.key });
    return { ejectionsTotal: this.outlier.ejectionsTotal, ejected, overflows: { ...this.overflows } };
  }

  async close(): Promise<void> {
    this.dns.close();
    for (const t of this.sweeps) clearInterval(t);
    this.sweeps = [];
    const all = [...this.pools.values(), ...this.passthroughPools.values()];
    for (const p of this.fastPools.values()) void p.close();
    this.fastPools.clear();
    this.pools.clear();
    this.passthroughPools.clear();
    await Promise.all(all.map((p) => p.close().catch(() => {})));
  }
}

/**
 * Envoy's circuit breakers for one cluster: outstanding requests (http2MaxRequests), and pending
 * requests (http1MaxPendingRequests) once every connection the cluster may open
 * (maxConnections, across all its pools) is busy.
 */
export function overflows(c: ClusterRuntime): boolean {
  const cp = c.config.connectionPool;
  const circuit = c.circuit;
  if (circuit.active >= cp.maxRequests) return true;
  const budget = circuit.connections;
  if (budget.open < budget.max) return false;
  const load = budget.load();
  return load.running + load.queued >= cp.maxConnections && load.queued >= cp.maxPendingRequests;
}

function endpointId(
  c: Cluster,
  address: string,
  e: Pick<ClusterEndpoint, 'port' | 'weight' | 'labels'>,
): string {
  return `${c.name}|${address}|${e.port}|${e.weight}|${JSON.stringify(e.labels)}`;
}

/**
 * Pools are per cluster and endpoint (as Envoy's), so each counts against its cluster's budget;
 * per TLS settings, and per request host when the SNI comes from it (after a newline: the
 * cluster's part is what a reload keeps or prunes).
 */
function poolKey(c: Cluster, address: string, port: number, tlsHost: string): string {
  const cp = c.connectionPool;
  const base = `${c.name}|${address}|${port}|${cp.maxConnections}|${cp.connectTimeoutMs}|${cp.idleTimeoutMs}|${cp.maxRequestsPerConnection}|${cp.maxConnectionDurationMs}|${cp.tcpKeepaliveMs}|${c.tls.key}`;
  return tlsHost === '' ? base : `${base}\n${tlsHost}`;
}

function baseKey(key: string): string {
  const nl = key.indexOf('\n');
  return nl < 0 ? key : key.slice(0, nl);
}

/** The one server name undici sees on every request of a TLS pool (UndiciUpstream). */
function sniToken(c: Cluster | undefined, host: string): string | undefined {
  if (c === undefined || !originates(c.tls)) return undefined;
  return serverName(c.tls, host) ?? (host || '-');
}

function origin(address: string, port: number, scheme: 'http' | 'https'): string {
  if (address.includes(':') && !address.startsWith('[')) return `${scheme}://[${address}]:${port}`;
  return `${scheme}://${address}:${port}`;
}

const MAX_U32 = 2 ** 32 - 1;

function newPool(
  c: Cluster | undefined,
  address: string,
  port: number,
  budget?: ConnectionBudget,
  tlsHost = '',
): Pool {
  const cp = c?.connectionPool;
  const socketPath = address.startsWith('unix://') ? address.slice('unix://'.length) : undefined;
  const timeout = cp?.connectTimeoutMs ?? 10_000;
  const tls = c !== undefined && originates(c.tls) ? upstreamTlsOptions(c.tls, tlsHost) : undefined;
  const scheme = tls ? 'https' : 'http';
  let connect: buildConnector.BuildOptions | buildConnector.connector;
  if (tls) {
    const base = tlsConnector(tls, timeout, socketPath);
    connect = budget ? budgetedConnector(base, budget) : base;
  } else
    connect = budget
      ? budgetedConnector(buildConnector({ timeout, ...(socketPath ? { socketPath } : {}) }), budget)
      : { timeout, ...(socketPath ? { socketPath } : {}) };
  return new Pool(socketPath ? `${scheme}://localhost` : origin(address, port, scheme), {
    connections: cp && cp.maxConnections < MAX_U32 ? cp.maxConnections : null,
    pipelining: 1,
    headersTimeout: 0,
    bodyTimeout: 0,
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: cp ? Math.min(cp.idleTimeoutMs, 600_000) : 600_000,
    ...(cp && cp.maxRequestsPerConnection > 0 ? { maxRequestsPerClient: cp.maxRequestsPerConnection } : {}),
    connect,
  });
}

/** undici's connector, opening a socket only with a slot of the cluster's budget. */
function budgetedConnector(
  base: buildConnector.connector,
  budget: ConnectionBudget,
): buildConnector.connector {
  return (opts, cb) => {
    const go = () => {
      if (!budget.tryAcquire()) return budget.wait(go);
      base(opts, (err, sock) => {
        if (err || !sock) {
          budget.release();
          return cb(err ?? new Error('connect failed'), null);
        }
        sock.once('close', () => budget.release());
        cb(null, sock);
      });
    };
    go();
  };
}
