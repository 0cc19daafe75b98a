// `npm start`: two demo upstreams (v1 on :9081, v2 on :9082) and a courier gateway on :8080.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// Three demo instances: v1 on :9081 and :9083, v2 on :9082.
const servers = [
  ['v1', 9081],
  ['v2', 9082],
  ['v1', 9083],
].map(([version, port]) =>
  createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify({ service: 'demo', version, instance: port, path: req.url })}\n`);
  }).listen(port, '127.0.0.1'),
);
const agent = spawn(
  process.execPath,
  [
    join(here, '..', '..', 'dist', 'pilot-agent', 'main.js'),
    'proxy',
    'router',
    '--config-dir',
    join(here, 'config'),
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
);
process.stdout.write(
  'courier quick start: gateway on http://127.0.0.1:8080\n' +
    '  curl -s localhost:8080/hello            # 90% v1, 10% v2\n' +
    "  curl -s -H 'end-user: jason' localhost:8080/   # always v2\n" +
    '  curl -si localhost:8080/teapot          # direct response 418\n' +
    '  curl -si localhost:8080/ | grep -i set-cookie   # session affinity cookie; send it back to stay on one instance\n' +
    '  curl -s localhost:15021/healthz/ready -o /dev/null -w "%{http_code}\\n"\n',
);
const stop = (sig) => agent.kill(sig);
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
agent.on('exit', (code) => {
  for (const s of servers) s.close();
  process.exit(code ?? 0);
});
