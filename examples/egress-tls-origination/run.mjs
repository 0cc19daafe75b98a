// Istio's "Egress TLS Origination" task at a sidecar, by one command: the application speaks
// plain HTTP to edition.cnn.com; its sidecar (outbound :19891) originates TLS to a local HTTPS
// stand-in for the external host (:19843, its own CA), verifying its certificate and sending SNI.
//   node examples/egress-tls-origination/run.mjs
//   curl -sS -D - -o - -H 'host: edition.cnn.com' localhost:19891/politics   # 200, no 301
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configDir, startStandIn } from './stand-in.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const agentBin = join(here, '..', '..', 'dist', 'pilot-agent', 'main.js');
const standIn = await startStandIn('edition.cnn.com', 19843);
const config = configDir(here, standIn.ca);
const sidecar = spawn(
  process.execPath,
  [
    agentBin,
    'proxy',
    'sidecar',
    '--config-dir',
    config.dir,
    '--labels',
    'app=sleep',
    '--outbound-port',
    '19891',
    '--inbound-port',
    '19892',
    '--admin-port',
    '19720',
    '--status-port',
    '19721',
    '--health-port',
    '19722',
    '--stats-port',
    '19723',
    '--concurrency',
    '1',
    '--access-log',
    '-',
    ...process.argv.slice(2),
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
process.stdout.write(
  "egress TLS origination: curl -sS -D - -o - -H 'host: edition.cnn.com' localhost:19891/politics\n" +
    '  (plain HTTP to the sidecar; TLS from the sidecar to the stand-in for edition.cnn.com on :19843)\n',
);
const stop = () => {
  sidecar.kill('SIGTERM');
  standIn.server.close();
  const done = () => {
    config.remove();
    process.exit(0);
  };
  if (sidecar.exitCode !== null) done();
  else sidecar.once('exit', done);
  setTimeout(done, 6000).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
