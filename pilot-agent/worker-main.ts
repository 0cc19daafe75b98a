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
process.on('SIGTERM', () => {
  // The agent drives shutdown; a direct SIGTERM drains briefly.
  void worker.drain(1000).then(() => process.exit(0));
});
process.on('SIGINT', () => {});
process.on('uncaughtException', (e) => {
  process.stderr.write(`courier worker: uncaught: ${e.stack ?? e}\n`);
  process.exit(70);
});
