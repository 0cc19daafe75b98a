// Calibration target (issue 6): a bare forwarder of about forty lines -- node:http in front of an
// undici Pool.dispatch, no routing, no metrics, no header work beyond hop-by-hop. It shows what
// "Node + undici" costs on this machine, i.e. the floor courier's general path builds on.
// Usage: node bench/bare-forwarder.mjs LISTEN_PORT TARGET_URL. Exits when its stdin closes.

import http from 'node:http';
import { Pool } from 'undici';
import { exitWithParent, listenAndAnnounce } from './lib/child.mjs';

const [listenPort, target] = process.argv.slice(2);
const pool = new Pool(target, { connections: 256, pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'trailer']);

const server = http.createServer((req, res) => {
  const headers = {};
  for (const k in req.headers) if (!HOP.has(k)) headers[k] = req.headers[k];
  const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
  pool.dispatch(
    { method: req.method, path: req.url, headers, body },
    {
      onConnect() {},
      onHeaders(status, raw) {
        const out = [];
        for (let i = 0; i < raw.length; i += 2) {
          const k = raw[i].toString('latin1');
          if (!HOP.has(k.toLowerCase())) out.push(k, raw[i + 1].toString('latin1'));
        }
        res.writeHead(status, out);
        return true;
      },
      onData: (chunk) => res.write(chunk),
      onComplete: () => res.end(),
      onError: () => (res.headersSent ? res.destroy() : res.writeHead(502).end()),
    },
  );
});
server.keepAliveTimeout = 120_000;
listenAndAnnounce(server, listenPort);
exitWithParent();
