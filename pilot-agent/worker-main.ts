// A worker process: compiles the documents the agent sends (compile is deterministic, so the
// worker's snapshot has the agent's version), swaps it in and serves. Counts every request and
// every proxied TCP connection into its own metrics registry (scraped by the agent over IPC) and
// writes the access log; the observer reaches the TCP proxy through the worker's deps.

import { Counter, Gauge } from 'prom-client';
import { compile } from '../config/compile/index.js';
import { openAccessLog } from '../proxy/access-log.js';
import { StatsObserver } from '../proxy/stats.js';
import { DEFAULT_MAX_CONNECTIONS, ProxyWorker } from '../proxy/worker.js';
import { type AgentToWorker, WORKER_INIT_ENV, type WorkerInit, type WorkerToAgent } from './protocol.js';

const send = (m: WorkerToAgent) => process.send?.(m);

function readInit(): WorkerInit {
  const raw = process.env[WORKER_INIT_ENV];
  if (raw) return JSON.parse(raw) as WorkerInit;
  return {
    identity: { mode: 'router', labels: {}, namespace: 'default' },
    podName: 'courier',
    workload: 'courier',
    accessLog: 'off',
    accessLogFormat: 'text',
  };
}

const init = readInit();
let accessLog: ReturnType<typeof openAccessLog>;
try {
  accessLog = openAccessLog(init.accessLog, init.accessLogFormat);
} catch (e) {
  process.stderr.write(`courier worker: access log ${init.accessLog}: ${(e as Error).message}\n`);
}
const observer = new StatsObserver({
  identity: {
    mode: init.identity.mode,
    labels: init.identity.labels,
    namespace: init.identity.namespace,
    workload: init.workload,
  },
  accessLog,
});
process.on('exit', () => accessLog?.flushSync());

/** A positive integer from the environment, else the default (with a warning when malformed). */
function envLimit(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (Number.isInteger(n) && n > 0) return n;
  process.stderr.write(
    `courier worker: ${name}=${JSON.stringify(raw)} is not a positive integer; using ${dflt}\n`,
  );
  return dflt;
}

const bindErrors: string[] = [];
const worker = new ProxyWorker({
  observer,
  maxConnections: envLimit('COURIER_MAX_CONNECTIONS', DEFAULT_MAX_CONNECTIONS),
  onListenError: (l, err) => {
    const code = (err as Error & { code?: string }).code;
    bindErrors.push(
      `listener ${l.address}:${l.port}: ${code === 'EADDRINUSE' ? 'address already in use' : err.message}`,
    );
  },
  onServerError: (l, err) => rateLimitedLog(`listener ${l.address}:${l.port}: ${err.message}`),
});
observer.bindUpstream(worker.manager);

// Staying up: what this worker refused or survived, merged into the agent's /stats/prometheus.
const unhandled = { rejection: 0, exception: 0 };
new Counter({
  name: 'courier_downstream_cx_overflow_total',
  help: 'Downstream connections closed at accept: the listener was at COURIER_MAX_CONNECTIONS.',
  registers: [observer.registry],
  collect() {
    this.reset();
    this.inc(worker.counters.connectionsOverflowed);
  },
});
new Counter({
  name: 'courier_downstream_cx_no_filter_chain_total',
  help: "Downstream connections closed before serving: their first bytes matched no filter chain this listener serves (Envoy's no_filter_chain_match), by what they were (tls: a ClientHello, h2c: the HTTP/2 preface).",
  labelNames: ['first_bytes'],
  registers: [observer.registry],
  collect() {
    this.reset();
    for (const [first, n] of Object.entries(worker.counters.noFilterChain))
      this.inc({ first_bytes: first }, n);
  },
});
new Counter({
  name: 'courier_downstream_tls_handshakes_total',
  help: "TLS handshakes completed on terminating chains (Envoy's listener ssl.handshake).",
  registers: [observer.registry],
  collect() {
    this.reset();
    this.inc(worker.counters.tlsHandshakes);
  },
});
new Counter({
  name: 'courier_downstream_tls_refused_total',
  help:
    'TLS connections a terminating chain refused, by why: handshake (the handshake failed: no common ' +
    'version or cipher, a timeout), client_certificate (none sent under MUTUAL, or one that does not ' +
    'verify or fails subjectAltNames/hash/SPKI), credential (the chain has no usable certificate). ' +
    "Envoy's ssl.connection_error, no_certificate and fail_verify_*.",
  labelNames: ['reason'],
  registers: [observer.registry],
  collect() {
    this.reset();
    for (const [reason, n] of Object.entries(worker.counters.tlsRefused)) this.inc({ reason }, n);
  },
});
new Counter({
  name: 'courier_downstream_fast_path_total',
  help:
    'Downstream fast path (plain bodyless HTTP/1.1 on the raw socket): requests it served, and ' +
    'connections it handed to node:http at the first request it does not serve.',
  labelNames: ['event'],
  registers: [observer.registry],
  collect() {
    this.reset();
    this.inc({ event: 'request' }, worker.counters.fastRequests);
    this.inc({ event: 'handoff' }, worker.counters.handoffs);
  },
});
new Gauge({
  name: 'courier_tcp_connections_active',
  help: 'Downstream connections being proxied as TCP (Gateway TCP servers, TLS terminated then TCP, TLS passthrough).',
  registers: [observer.registry],
  collect() {
    this.set(worker.tcp.active);
  },
});
new Counter({
  name: 'courier_worker_unhandled_errors_total',
  help: 'Unhandled promise rejections and I/O error events a worker logged and kept serving through.',
  labelNames: ['kind'],
  registers: [observer.registry],
  collect() {
    this.reset();
    this.inc({ kind: 'rejection' }, unhandled.rejection);
    this.inc({ kind: 'exception' }, unhandled.exception);
  },
});

let logBudget = 0;
let logWindow = 0;
/** At most 10 lines a second: a flood of one failure must not become a flood of log lines. */
function rateLimitedLog(msg: string): void {
  const now = Date.now();
  if (now - logWindow > 1000) {
    logWindow = now;
    logBudget = 10;
  }
  if (logBudget-- > 0) process.stderr.write(`courier worker: ${msg}\n`);
}

/** Drain listeners, flush the access log, exit. */
function drainAndExit(ms: number): void {
  void worker
    .drain(ms)
    .then(() => observer.close())
    .then(() => process.exit(0));
}

let queue = Promise.resolve();

process.on('message', (m: AgentToWorker) => {
  if (m.t === 'config') {
    queue = queue.then(async () => {
      bindErrors.length = 0;
      try {
        const snap = compile(m.resources, m.identity, m.credentials);
        await worker.apply(snap);
        send({ t: 'applied', version: snap.version, bound: worker.allBound, errors: [...bindErrors] });
      } catch (e) {
        send({ t: 'applied', version: '', bound: false, errors: [`apply failed: ${(e as Error).message}`] });
      }
    });
  } else if (m.t === 'drain') {
    drainAndExit(m.ms);
    setTimeout(() => process.exit(0), m.ms + 500).unref();
  } else if (m.t === 'metrics') {
    void observer.exportForAgent().then((metrics) => send({ t: 'metrics', id: m.id, metrics }));
  }
});

send({ t: 'hello' });

process.on('disconnect', () => process.exit(0));
// Signals to the whole process group (Ctrl-C, `timeout`, a container runtime) reach workers too:
// the agent drives the drain, so a worker only acts on them when it has lost its agent.
const orphanExit = () => {
  if (!process.connected) drainAndExit(1000);
};
process.on('SIGTERM', orphanExit);
process.on('SIGINT', orphanExit);

/**
 * An 'error' event of one connection or stream that nobody listened for: it comes from that
 * connection's I/O on its own tick and leaves no shared state half-updated, so the worker logs it
 * and keeps serving every other connection. Anything else may have left state inconsistent: exit
 * and let the agent start a fresh worker.
 */
const IO_ERROR =
  /^(E(CONNRESET|PIPE|CONNABORTED|CONNREFUSED|TIMEDOUT|HOSTUNREACH|NETUNREACH|MFILE|NFILE|NOBUFS|CANCELED)|ERR_STREAM_(DESTROYED|PREMATURE_CLOSE|WRITE_AFTER_END|ALREADY_FINISHED)|ERR_SOCKET_CLOSED|UND_ERR_|HPE_)/;

process.on('unhandledRejection', (reason) => {
  unhandled.rejection++;
  rateLimitedLog(`unhandled rejection (kept serving): ${(reason as Error)?.stack ?? reason}`);
});
process.on('uncaughtException', (e: Error & { code?: string }) => {
  if (!process.connected || e.code === 'ERR_IPC_CHANNEL_CLOSED') process.exit(0);
  if (e.code && IO_ERROR.test(e.code)) {
    unhandled.exception++;
    rateLimitedLog(`unhandled I/O error (kept serving): ${e.stack ?? e}`);
    return;
  }
  process.stderr.write(`courier worker: uncaught: ${e.stack ?? e}\n`);
  process.exit(70);
});
