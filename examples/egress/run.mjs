// Egress through a gateway, by one command: application sidecar (outbound :19881) -> egress
// gateway (router, istio=egressgateway, :19880) -> "external" service (:19800).
//   node examples/egress/run.mjs
//   curl -s -H 'host: edition.example.com' localhost:19881/politics
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const agentBin = join(here, '..', '..', 'dist', 'pilot-agent', 'main.js');
const external = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    `${JSON.stringify({ service: 'edition.example.com', path: req.url, via: req.headers['x-forwarded-for'] })}\n`,
  );
}).listen(19800, '127.0.0.1');
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
  ['proxy', 'router', '--labels', 'istio=egressgateway', '--namespace', 'istio-system', ...ports(1970)],
  [
    'proxy',
    'sidecar',
    '--labels',
    'app=sleep',
    '--outbound-port',
    '19881',
    '--inbound-port',
    '19882',
    ...ports(1971),
  ],
].map((args) =>
  spawn(process.execPath, [agentBin, ...args, '--config-dir', here, '--concurrency', '1'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  }),
);
process.stdout.write(
  "egress: curl -s -H 'host: edition.example.com' localhost:19881/politics   (sidecar -> egress gateway -> external)\n",
);
const stop = () => {
  for (const c of children) c.kill('SIGTERM');
  external.close();
  Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r))))).then(
    () => process.exit(0),
  );
  setTimeout(() => process.exit(0), 6000).unref();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
