// One command, one machine: productpage -> reviews (v1, v2, v3) -> ratings, every application with
// its own courier sidecar (pilot-agent proxy sidecar), and an ingress gateway on :8080.
//   node examples/bookinfo/run.mjs
//   curl -s localhost:8080/productpage                      # reviews v3 (red stars)
//   curl -s -H 'end-user: jason' localhost:8080/productpage # reviews v2 (black stars)
import { spawn } from 'node:child_process';
import { createServer, request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const agentBin = join(here, '..', '..', 'dist', 'pilot-agent', 'main.js');

// [name, version, app port]; sidecar ports derive from the index (inbound 19181.., outbound 19281..).
const apps = [
  ['productpage', 'v1'],
  ['reviews', 'v1'],
  ['reviews', 'v2'],
  ['reviews', 'v3'],
  ['ratings', 'v1'],
].map(([name, version], i) => ({
  name,
  version,
  app: 19081 + i,
  inbound: 19181 + i,
  outbound: 19281 + i,
  admin: 19381 + i,
  status: 19481 + i,
  health: 19581 + i,
  stats: 19681 + i,
}));

/** Call another service through this application's sidecar, as HTTP_PROXY would. */
function viaSidecar(outbound, host, path, headers) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: outbound, path, headers: { ...headers, host } }, (res) => {
      let body = '';
      res.on('data', (c) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const forward = (req) => (req.headers['end-user'] ? { 'end-user': req.headers['end-user'] } : {});

const handlers = {
  productpage: async (a, req) => {
    const r = await viaSidecar(a.outbound, 'reviews:9080', '/reviews/0', forward(req));
    return {
      product: 'The Comedy of Errors',
      reviews: r.status === 200 ? JSON.parse(r.body) : { status: r.status },
    };
  },
  reviews: async (a, req) => {
    const out = {
      service: 'reviews',
      version: a.version,
      reviews: ['An extremely entertaining play', 'Absolutely fun'],
    };
    if (a.version === 'v1') return out;
    const r = await viaSidecar(a.outbound, 'ratings:9080', '/ratings/0', forward(req));
    return {
      ...out,
      stars: a.version === 'v2' ? 'black' : 'red',
      ratings: r.status === 200 ? JSON.parse(r.body) : { status: r.status },
    };
  },
  ratings: async () => ({ service: 'ratings', ratings: { Reviewer1: 5, Reviewer2: 4 } }),
};

const servers = apps.map((a) =>
  createServer(async (req, res) => {
    try {
      const body = JSON.stringify(await handlers[a.name](a, req));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`${body}\n`);
    } catch (e) {
      res.writeHead(500);
      res.end(String(e));
    }
  }).listen(a.app, '127.0.0.1'),
);

const children = [];
const start = (args) => {
  const c = spawn(process.execPath, [agentBin, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  children.push(c);
  return c;
};
for (const a of apps)
  start([
    'proxy',
    'sidecar',
    '--config-dir',
    here,
    '--concurrency',
    '1',
    '--labels',
    `app=${a.name},version=${a.version}`,
    '--outbound-port',
    String(a.outbound),
    '--inbound-port',
    String(a.inbound),
    '--app-port',
    String(a.app),
    '--admin-port',
    String(a.admin),
    '--status-port',
    String(a.status),
    '--health-port',
    String(a.health),
    '--stats-port',
    String(a.stats),
  ]);
start([
  'proxy',
  'router',
  '--config-dir',
  here,
  '--concurrency',
  '1',
  '--admin-port',
  '19390',
  '--status-port',
  '19490',
  '--health-port',
  '19590',
  '--stats-port',
  '19690',
]);

process.stdout.write(
  'bookinfo: gateway on http://127.0.0.1:8080/productpage (sidecars: inbound 19181-19185, outbound 19281-19285)\n' +
    '  curl -s localhost:8080/productpage\n' +
    "  curl -s -H 'end-user: jason' localhost:8080/productpage\n",
);
let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  for (const c of children) c.kill('SIGTERM');
  for (const s of servers) s.close();
  setTimeout(() => process.exit(0), 6000).unref();
  Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.once('exit', r))))).then(
    () => process.exit(0),
  );
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
