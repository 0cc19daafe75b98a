// A worker process: compiles the documents the agent sends (compile is deterministic, so the
// worker's snapshot has the agent's version), swaps it in and serves.

import { compile } from '../config/compile/index.js';
import { ProxyWorker } from '../proxy/worker.js';
import type { AgentToWorker, WorkerToAgent } from './protocol.js';

const send = (m: WorkerToAgent) => process.send?.(m);
const bindErrors: string[] = [];
const worker = new ProxyWorker({
  onListenError: (l, err) => {
    const code = (err as Error & { code?: string }).code;
    bindErrors.push(
      `listener ${l.address}:${l.port}: ${code === 'EADDRINUSE' ? 'address already in use' : err.message}`,
    );
  },
});

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
    void worker.drain(m.ms).then(() => process.exit(0));
    setTimeout(() => process.exit(0), m.ms + 500).unref();
  }
});

send({ t: 'hello' });

process.on('disconnect', () => process.exit(0));
// Signals to the whole process group (Ctrl-C, `timeout`, a container runtime) reach workers too:
// the agent drives the drain, so a worker only acts on them when it has lost its agent.
const orphanExit = () => {
  if (!process.connected) void worker.drain(1000).then(() => process.exit(0));
};
process.on('SIGTERM', orphanExit);
process.on('SIGINT', orphanExit);
process.on('uncaughtException', (e: Error & { code?: string }) => {
  if (!process.connected || e.code === 'EPIPE' || e.code === 'ERR_IPC_CHANNEL_CLOSED') process.exit(0);
  process.stderr.write(`courier worker: uncaught: ${e.stack ?? e}\n`);
  process.exit(70);
});
