// Baseline: node http-proxy@1.18.1 with a keep-alive agent (its default opens a new upstream
// connection per request). Usage: node bench/http-proxy.mjs LISTEN_PORT TARGET_URL.
// Exits when its stdin closes, so it cannot outlive the harness.

import http from 'node:http';
import httpProxy from 'http-proxy';

const [listenPort, target] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, keepAliveMsecs: 60_000 });
const proxy = httpProxy.createProxyServer({ target, agent, xfwd: false });
// Without an 'error' listener http-proxy re-throws and kills the process.
proxy.on('error', (err, _req, res) => {
  if (res && 'writeHead' in res && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain' });
    res.end(`bad gateway: ${err.code ?? err.message}\n`);
  } else res?.destroy?.();
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.requestTimeout = 0;
server.listen(Number(listenPort), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
