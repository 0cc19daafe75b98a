// Istio's "Egress Gateways with TLS Origination" (older form: plain HTTP from the sidecar to the
// gateway), by one command: application sidecar (outbound :19896) -> egress gateway (router,
// istio=egressgateway, HTTP :19885) -> TLS to a local HTTPS stand-in for edition.cnn.com:443
// (:19844, its own CA). The gateway's access log (stdout) shows outbound|443||edition.cnn.com.
//   node examples/egress-gateway-tls-origination/run.mjs
//   curl -sS -D - -o - -H 'host: edition.cnn.com' localhost:19896/politics   # 200, no 301
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { configDir, startStandIn } from '../egress-tls-origination/stand-in.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const agentBin = join(here, '..', '..', 'dist', 'pilot-agent', 'main.js');
const standIn = await startStandIn('edition.cnn.com', 19844);
const config = configDir(here, standIn.ca);
const ports = (base) => [
  '--admin-port',
  `${base}0`,
  '--status-port',
  `${base}1`,
  '--health-port',
  `${base}2`,
  '--stats-port',
  `${base}3`,
];
const children = [
  [
    'proxy',
    'router',
    '--labels',
    'istio=egressgateway',
    '--namespace',
    'istio-system',
    '--access-log',
    '-',
    ...ports(1973),
  ],
  [
    'proxy',
    'sidecar',
    '--labels',
    'app=sleep',
    '--outbound-port',
    '19896',
    '--inbound-port',
    '19897',
    ...ports(1974),
  ],
].map((args) =>
  spawn(process.execPath, [agentBin, ...args, '--config-dir', config.dir, '--concurrency', '1'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  }),
);
process.stdout.write(
  "egress gateway TLS origination: curl -sS -D - -o - -H 'host: edition.cnn.com' localhost:19896/politics\n" +
    '  (sidecar -> egress gateway :19885 -> TLS to the stand-in for edition.cnn.com:443 on :19844)\n',
);
const stop = () => {
  for (const c of children) c.kill('SIGTERM');
  standIn.server.close();
  const done = () => {
    config.remove();
    process.exit(0);
  };
  Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r))))).then(
    done,
  );
  setTimeout(done, 6000).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
