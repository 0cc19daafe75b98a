// The supervisor: owns the listening sockets (node:cluster shares them with the workers), loads,
// validates and compiles the config, hands good configs to every worker, keeps the last good one
// when a change is rejected, restarts dead workers with backoff, serves health/status/admin, and
// drains on SIGTERM. It never touches the request path.

import cluster, { type Worker } from 'node:cluster';
import { closeSync, openSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { compile } from '../config/compile/index.js';
import {
  type CertificateInfo,
  type CredentialStore,
  describeCertificates,
  resolveCredentials,
} from '../config/credentials.js';
import { countByKind, formatNotEnforced, type NotEnforced, notEnforced } from '../config/not-enforced.js';
import type { ProxyIdentity } from '../config/snapshot.js';
import { type AnyResource, formatError } from '../config/types.js';
import { istioMetricsJSON, type MetricJSON, type WorkerMetrics, workloadName } from '../proxy/stats.js';
import { adminHandler } from './admin.js';
import type { ConfigSource } from './config-source.js';
import type { AgentOptions } from './options.js';
import { type AgentToWorker, WORKER_INIT_ENV, type WorkerInit, type WorkerToAgent } from './protocol.js';

export interface ActiveConfig {
  version: string;
  resources: AnyResource[];
  loadedAt: string;
  warnings: string[];
  /** What this config asks of this proxy that is not enforced yet (config/not-enforced.ts). */
  notEnforced: NotEnforced[];
  /** TLS material the config refers to, resolved and checked (never logged or dumped whole). */
  credentials: CredentialStore;
  /** Credentials that are broken (kept at their last good material, or refused). */
  credentialProblems: readonly string[];
}

/** One credential in use, as /certs, /config_dump and `proxy-config secrets` show it. */
export interface SecretInfo {
  name: string;
  source: string;
  state: 'ACTIVE' | 'STALE' | 'ERROR';
  error?: string;
  certificates: CertificateInfo[];
  ca_certificates: CertificateInfo[];
}

interface WorkerState {
  worker: Worker;
  version: string;
  bound: boolean;
  clusters: unknown;
  /** Said hello: its message handler is up (scrapes go only to these). */
  hello: boolean;
}

/** One scrape in progress: the workers still to answer and what the others sent. */
interface PendingScrape {
  waiting: Set<number>;
  results: WorkerMetrics[];
  done: () => void;
}

const PROM_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** A worker that does not answer a scrape within this is left out of that scrape. */
const SCRAPE_TIMEOUT_MS = 2000;

export class Agent {
  active: ActiveConfig | undefined;
  lastRejection: { at: string; errors: string[] } | undefined;
  readonly workers = new Map<number, WorkerState>();
  readonly counters = { reloadsOk: 0, reloadsRejected: 0, workerRestarts: 0 };
  draining = false;
  private everReady = false;
  private servers: Server[] = [];
  private stopWatch: (() => void) | undefined;
  private restartDelayMs = 100;
  readonly identity: ProxyIdentity;
  readonly startedAt = Date.now();
  /** The agent's own metrics; workers' metrics are merged in at scrape time. */
  readonly registry = new Registry();
  private scrapeSeq = 0;
  private readonly scrapes = new Map<number, PendingScrape>();

  constructor(
    readonly opts: AgentOptions,
    readonly source: ConfigSource,
    private readonly log: (level: string, msg: string) => void,
  ) {
    this.identity = {
      mode: opts.mode,
      labels: opts.labels,
      namespace: opts.namespace,
      ...(opts.mode === 'sidecar'
        ? {
            outboundPort: opts.outboundPort,
            inboundPort: opts.inboundPort,
            ...(opts.appPort ? { appPort: opts.appPort } : {}),
          }
        : {}),
    };
    const counters = this.counters;
    const registers = [this.registry];
    new Counter({
      name: 'courier_config_reloads_total',
      help: 'Config reloads by result.',
      labelNames: ['result'],
      registers,
      collect() {
        this.reset();
        this.inc({ result: 'success' }, counters.reloadsOk);
        this.inc({ result: 'rejected' }, counters.reloadsRejected);
      },
    });
    new Counter({
      name: 'courier_worker_restarts_total',
      help: 'Worker processes restarted after exiting.',
      registers,
      collect() {
        this.reset();
        this.inc(counters.workerRestarts);
      },
    });
    const secrets = () => this.secrets();
    new Gauge({
      name: 'courier_server_seconds_until_first_cert_expiring',
      help: "Seconds until the first certificate in use (server, client or CA) expires (Envoy's server.days_until_first_cert_expiring, in seconds); absent while none is loaded.",
      registers,
      collect() {
        this.reset();
        const expiries = secrets().flatMap((s) =>
          s.state === 'ERROR' ? [] : [...s.certificates, ...s.ca_certificates].map((c) => c.expires),
        );
        if (expiries.length > 0) this.set(Math.floor((Math.min(...expiries) - Date.now()) / 1000));
      },
    });
    new Gauge({
      name: 'courier_tls_credentials',
      help: 'TLS credentials the active config refers to, by state: ACTIVE, STALE (new material was broken: the last good is served), ERROR (never good: its server refuses connections, its cluster answers 503).',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const counts = { ACTIVE: 0, STALE: 0, ERROR: 0 };
        for (const s of secrets()) counts[s.state]++;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    // Per kind for the active config; a kind that had entries and no longer has shows 0.
    const kinds = new Set<string>();
    const current = () => this.active?.notEnforced ?? [];
    new Gauge({
      name: 'courier_config_not_enforced',
      help: 'Resources and fields of the active config that are not enforced yet, by kind.',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const counts = countByKind(current());
        for (const k of counts.keys()) kinds.add(k);
        for (const k of kinds) this.set({ kind: k }, counts.get(k) ?? 0);
      },
    });
  }

  /** Credentials in use: each certificate (leaf and CA) described, never the keys. */
  secrets(): SecretInfo[] {
    const store = this.active?.credentials ?? {};
    const problems = this.active?.credentialProblems ?? [];
    return Object.entries(store).map(([key, m]) => {
      const stale = problems.find(
        (p) => p.startsWith(`${m.source}:`) && p.endsWith('still serving the last good material'),
      );
      return {
        name: key,
        source: m.source,
        state: m.error !== undefined ? 'ERROR' : stale ? 'STALE' : 'ACTIVE',
        ...(m.error !== undefined
          ? { error: m.error }
          : stale
            ? { error: stale.slice(m.source.length + 2) }
            : {}),
        certificates: describeCertificates(m.cert),
        ca_certificates: describeCertificates(m.ca),
      };
    });
  }

  /** Load + validate + compile. Returns true when a new config became active. */
  reload(reason: string): boolean {
    const r = this.source.load();
    if (r.errors.length > 0) {
      const errors = r.errors.map(formatError);
      this.lastRejection = { at: new Date().toISOString(), errors };
      this.counters.reloadsRejected++;
      for (const e of errors) this.log('error', `config rejected (${reason}): ${e}`);
      if (this.active) this.log('warn', `keeping config version ${this.active.version}`);
      return false;
    }
    let version: string;
    let warnings: string[];
    const creds = resolveCredentials(
      r.resources,
      {
        namespace: this.identity.namespace,
        secrets: r.secrets,
        configDir: this.source.baseDir,
        credentialsDir: this.opts.credentialsDir,
      },
      this.active?.credentials,
    );
    this.source.watchAlso(creds.watched);
    try {
      const snap = compile(r.resources, this.identity, creds.store);
      version = snap.version;
      // Validation warnings (unknown fields, deprecated settings) and compile warnings alike.
      warnings = [...r.warnings.map(formatError), ...snap.warnings];
    } catch (e) {
      const msg = `compile failed: ${(e as Error).message}`;
      this.lastRejection = { at: new Date().toISOString(), errors: [msg] };
      this.counters.reloadsRejected++;
      this.log('error', `config rejected (${reason}): ${msg}`);
      return false;
    }
    const ne = notEnforced(r, this.identity);
    // Documents courier does not load (an EnvoyFilter) do not change the version; the list does.
    const sameVersion = this.active?.version === version;
    const sameProblems = JSON.stringify(this.active?.credentialProblems) === JSON.stringify(creds.problems);
    if (sameVersion && sameProblems && JSON.stringify(this.active?.notEnforced) === JSON.stringify(ne))
      return false;
    this.active = {
      version,
      resources: r.resources,
      loadedAt: new Date().toISOString(),
      warnings,
      notEnforced: ne,
      credentials: creds.store,
      credentialProblems: creds.problems,
    };
    this.counters.reloadsOk++;
    for (const w of warnings) this.log('warn', w);
    for (const p of creds.problems) this.log('error', `TLS credential ${p}`);
    for (const n of ne) this.log('warn', formatNotEnforced(n));
    this.log('info', `config version ${version} active (${r.resources.length} resources, ${reason})`);
    if (!sameVersion) for (const s of this.workers.values()) this.sendConfig(s.worker);
    return true;
  }

  private sendConfig(w: Worker): void {
    if (!this.active || !w.isConnected()) return;
    const msg: AgentToWorker = {
      t: 'config',
      version: this.active.version,
      resources: this.active.resources,
      identity: this.identity,
      credentials: this.active.credentials,
    };
    w.send(msg);
  }

  get ready(): boolean {
    if (this.draining || !this.active) return false;
    if (this.workers.size < this.opts.concurrency) return false;
    for (const s of this.workers.values()) if (s.version !== this.active.version || !s.bound) return false;
    return true;
  }

  async start(): Promise<void> {
    this.reload('startup');
    if (!this.active) throw new Error(`config in ${this.source.description} never validated`);
    this.checkAccessLog();
    await this.startServers();
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({
      exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)),
      silent: false,
    });
    cluster.on('exit', (w, code, signal) => this.onWorkerExit(w, code, signal));
    for (let i = 0; i < this.opts.concurrency; i++) this.fork();
    this.stopWatch = this.source.watch(() => this.reload('file change'));
  }

  /** A file access log must be writable before any worker starts (one clear start-up error). */
  private checkAccessLog(): void {
    const dest = this.opts.accessLog;
    if (dest === 'off' || dest === '' || dest === '-' || dest === '/dev/stdout') return;
    try {
      closeSync(openSync(dest, 'a'));
    } catch (e) {
      throw new Error(`--access-log ${dest}: ${(e as Error).message}`);
    }
  }

  private workerInit(): WorkerInit {
    return {
      identity: this.identity,
      podName: this.opts.podName,
      workload: workloadName(this.opts.podName),
      accessLog: this.opts.accessLog,
      accessLogFormat: this.opts.accessLogFormat,
    };
  }

  private fork(): void {
    const w = cluster.fork({
      COURIER_WORKER: '1',
      COURIER_LOG_LEVEL: this.opts.logLevel,
      [WORKER_INIT_ENV]: JSON.stringify(this.workerInit()),
    });
    const state: WorkerState = { worker: w, version: '', bound: false, clusters: undefined, hello: false };
    this.workers.set(w.id, state);
    w.on('message', (m: WorkerToAgent) => this.onWorkerMessage(state, m));
    // A send to a worker that just died (EPIPE, channel closed) is emitted here; unheard, it would
    // take the agent down with it. The 'exit' that follows restarts the worker.
    w.on('error', (e: Error) => this.log('warn', `worker ${w.id}: ${e.message}`));
  }

  private onWorkerMessage(s: WorkerState, m: WorkerToAgent): void {
    if (m.t === 'hello') {
      s.hello = true;
      this.sendConfig(s.worker);
    } else if (m.t === 'applied') {
      s.version = m.version;
      s.bound = m.bound;
      for (const e of m.errors) this.log('error', `worker ${s.worker.id}: ${e}`);
      if (s.bound) this.restartDelayMs = 100;
      if (this.ready) this.everReady = true;
      else if (!this.everReady && m.errors.length > 0) {
        // A listener that cannot bind at start-up is fatal: one clear line, exit 1 (docs/reference.md).
        process.stderr.write(`pilot-agent: ${m.errors[0]}\n`);
        void this.shutdown(0).then(() => process.exit(1));
      }
    } else if (m.t === 'fatal') {
      this.log('error', m.message);
      if (!this.ready && !this.workers.size) process.exitCode = 1;
    } else if (m.t === 'metrics') {
      const p = this.scrapes.get(m.id);
      if (!p?.waiting.delete(s.worker.id)) return;
      p.results.push(m.metrics);
      if (p.waiting.size === 0) p.done();
    }
  }

  /** Every live worker's metrics; a worker that exits or stays silent is left out of this scrape. */
  /** Endpoints any worker currently has ejected (outlier detection), as `cluster|endpoint` keys. */
  async ejectedEndpoints(): Promise<Set<string>> {
    const out = new Set<string>();
    for (const w of await this.scrapeWorkers())
      for (const m of w.metrics)
        if (m.name === 'courier_endpoint_ejected')
          for (const v of m.values) if (v.value > 0) out.add(`${v.labels.cluster_name}|${v.labels.endpoint}`);
    return out;
  }

  private scrapeWorkers(): Promise<WorkerMetrics[]> {
    const id = ++this.scrapeSeq;
    return new Promise((resolve) => {
      const p: PendingScrape = { waiting: new Set(), results: [], done: () => {} };
      const timer = setTimeout(() => p.done(), SCRAPE_TIMEOUT_MS);
      timer.unref();
      p.done = () => {
        clearTimeout(timer);
        this.scrapes.delete(id);
        resolve(p.results);
      };
      this.scrapes.set(id, p);
      const msg: AgentToWorker = { t: 'metrics', id };
      for (const s of this.workers.values()) {
        if (!s.hello || !s.worker.isConnected()) continue;
        p.waiting.add(s.worker.id);
        s.worker.send(msg);
      }
      if (p.waiting.size === 0) p.done();
    });
  }

  private onWorkerExit(w: Worker, code: number | null, signal: string | null): void {
    this.workers.delete(w.id);
    for (const p of this.scrapes.values()) if (p.waiting.delete(w.id) && p.waiting.size === 0) p.done();
    if (this.draining) return;
    this.counters.workerRestarts++;
    this.log('warn', `worker ${w.id} exited (${signal ?? code}); restarting in ${this.restartDelayMs}ms`);
    const delay = this.restartDelayMs;
    this.restartDelayMs = Math.min(this.restartDelayMs * 2, 10_000);
    setTimeout(() => {
      if (!this.draining) this.fork();
    }, delay).unref();
  }

  private async startServers(): Promise<void> {
    const o = this.opts;
    const health = (path: string | undefined) =>
      path === '/healthz/ready' ? (this.ready ? 200 : 503) : undefined;
    /** Health on every port; `/stats/prometheus` (and `/metrics` on status) where `scope` is set. */
    const simple = (scope?: 'all' | 'proxy', paths: string[] = ['/stats/prometheus']) =>
      createServer((req, res) => {
        const path = (req.url ?? '/').split('?')[0] ?? '/';
        const h = health(path);
        if (h !== undefined) {
          res.writeHead(h, { 'content-type': 'text/plain' });
          res.end(h === 200 ? '' : this.draining ? 'draining\n' : 'not ready\n');
          return;
        }
        if (scope && paths.includes(path)) {
          this.promText(scope).then(
            (text) => {
              res.writeHead(200, { 'content-type': PROM_CONTENT_TYPE });
              res.end(text);
            },
            (e: Error) => {
              res.writeHead(500, { 'content-type': 'text/plain' });
              res.end(`${e.message}\n`);
            },
          );
          return;
        }
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('');
      });
    const listen = (s: Server, port: number, host: string, what: string) =>
      new Promise<void>((resolve, reject) => {
        s.once('error', (e: Error & { code?: string }) =>
          reject(
            new Error(
              `${what} port ${port}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`,
            ),
          ),
        );
        s.listen(port, host, () => resolve());
      });
    const admin = createServer(adminHandler(this));
    const servers: [Server, number, string, string][] = [
      [simple(), o.healthPort, '0.0.0.0', 'health'],
      [simple('all', ['/stats/prometheus', '/metrics']), o.statusPort, '0.0.0.0', 'status'],
      [simple('proxy'), o.statsPort, '0.0.0.0', 'stats'],
      [admin, o.adminPort, '127.0.0.1', 'admin'],
    ];
    for (const [s, port, host, what] of servers) {
      await listen(s, port, host, what);
      this.servers.push(s);
    }
  }

  /**
   * Prometheus text: `all` = the agent's metrics plus every worker's, summed per label set (status
   * port); `proxy` = the workers' only (stats port, Envoy's own metrics in Istio).
   */
  async promText(scope: 'all' | 'proxy' = 'all'): Promise<string> {
    const sets: MetricJSON[][] = [];
    if (scope === 'all') sets.push((await this.registry.getMetricsAsJSON()) as unknown as MetricJSON[]);
    for (const w of await this.scrapeWorkers()) sets.push([...w.metrics, ...istioMetricsJSON(w.istio)]);
    return AggregatorRegistry.aggregate(sets).metrics();
  }

  /** SIGTERM: readiness 503 at once, workers stop accepting and drain, then exit. */
  async shutdown(graceMs: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    this.stopWatch?.();
    this.log('info', `draining for up to ${graceMs}ms`);
    const exits = [...this.workers.values()].map(
      (s) =>
        new Promise<void>((resolve) => {
          if (!s.worker.isConnected() || s.worker.isDead()) return resolve();
          s.worker.once('exit', () => resolve());
          const msg: AgentToWorker = { t: 'drain', ms: graceMs };
          s.worker.send(msg);
        }),
    );
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, graceMs + 1000).unref());
    await Promise.race([Promise.all(exits), timeout]);
    for (const s of this.workers.values()) if (!s.worker.isDead()) s.worker.process.kill('SIGKILL');
    await Promise.all(this.servers.map((s) => new Promise((r) => s.close(r))));
    for (const s of this.servers) s.closeAllConnections();
  }
}
