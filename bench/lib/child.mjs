// What every bench child process (upstream, forwarders, load generator) shares: it announces its
// port as one JSON line on stdout, and exits when its stdin closes or on SIGTERM/SIGINT, so it
// cannot outlive the harness.

/** Run `onExit` (default: exit 0) when stdin closes or on SIGTERM/SIGINT. */
export function exitWithParent(onExit = () => process.exit(0)) {
  process.stdin.resume();
  process.stdin.on('end', onExit);
  process.stdin.on('error', onExit);
  for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, onExit);
}

/** Print `{"port":N}` once `server` (node:http or node:net) is listening. */
export function listenAndAnnounce(server, port) {
  server.listen(Number(port), '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
  });
}

/**
 * http-proxy and http-proxy-3 in front of TARGET_URL with a keep-alive agent (both open a new
 * upstream connection per request by default) and an 'error' listener (without one, both re-throw
 * and kill the process). Usage of the calling file: node FILE LISTEN_PORT TARGET_URL.
 */
export async function serveHttpProxy(createProxyServer) {
  const http = await import('node:http');
  const [listenPort, target] = process.argv.slice(2);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256, keepAliveMsecs: 60_000 });
  const proxy = createProxyServer({ target, agent, xfwd: false });
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
  listenAndAnnounce(server, listenPort);
  exitWithParent();
}
