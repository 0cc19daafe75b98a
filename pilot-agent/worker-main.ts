// A worker process: compiles the documents the agent sends (compile is deterministic, so the
// worker's snapshot has the agent's version), swaps it in and serves. Counts every request into
// its own metrics registry (scraped by the agent over IPC) and writes the access log.

import { compile } from '../config/compile/index.js';
import { openAccessLog } from '../proxy/access-log.js';
import { StatsObserver } from '../proxy/stats.js';
import { ProxyWorker } from '../proxy/worker.js';
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

const bindErrors: string[] = [];
const worker = new ProxyWorker({
  observer,
  onListenError: (l, err) => {
    const code = (err as Error & { code?: string }).code;
    bindErrors.push(
      `listener ${l.address}:${l.port}: ${code === 'EADDRINUSE' ? 'address already in use' : err.message}`,
    );
  },
});
observer.bindUpstream(worker.manager);

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
        const snap = compile(m.resources, m.identity);
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
process.on('uncaughtException', (e: Error & { code?: string }) => {
  if (!process.connected || e.code === 'EPIPE' || e.code === 'ERR_IPC_CHANNEL_CLOSED') process.exit(0);
  process.stderr.write(`courier worker: uncaught: ${e.stack ?? e}\n`);
  process.exit(70);
});
