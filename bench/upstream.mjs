// The benchmark upstream: a minimal node:http server answering a small fixed body with
// content-length on every port given on the command line (one per subset). It prints
// `{"ports":[...]}` on stdout once listening and exits when its stdin closes (no orphans).
// GET /__counts answers the per-port request counts (used to check the weighted split).

import { createServer } from 'node:http';

export const BODY = 'hello world\n';

const ports = process.argv.slice(2).map(Number);
if (ports.length === 0) ports.push(0);
const body = Buffer.from(BODY);
const headers = { 'content-type': 'text/plain', 'content-length': String(body.length) };
const counts = ports.map(() => 0);

const servers = ports.map((port, i) => {
  const server = createServer((req, res) => {
    if (req.url === '/__counts') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(counts));
      return;
    }
    counts[i]++;
    res.writeHead(200, headers);
    res.end(body);
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 130_000;
  server.requestTimeout = 0;
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
});

const listening = await Promise.all(servers);
process.stdout.write(`${JSON.stringify({ ports: listening.map((s) => s.address().port) })}\n`);

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
