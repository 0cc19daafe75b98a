// The benchmark upstream: answers every request with a small fixed body and content-length on
// every port given on the command line (one per subset). It prints `{"ports":[...]}` on stdout
// once listening and exits when its stdin closes (no orphans). GET /__counts answers the per-port
// request counts (used to check the weighted split).
//
// It is a minimal HTTP/1.1 server on raw sockets, not node:http: it shares a core with the load
// generator, and every microsecond it spends is one the load generator cannot, which would cap
// the fastest targets (nginx, direct) below what they can do. It handles what the targets send:
// keep-alive requests, pipelined or not, with a Content-Length body or none; anything else
// (chunked bodies, unparseable heads) gets a 400 and a close.
//
// `--tls CERT KEY` first: the same over TLS (node:tls) -- the "direct https" baseline of the TLS
// rows, where the load side's own ceiling is measured with the TLS client work wrk does there.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { exitWithParent } from './lib/child.mjs';

export const BODY = 'hello world\n';

const argv = process.argv.slice(2);
const tls = argv[0] === '--tls' ? { cert: readFileSync(argv[1]), key: readFileSync(argv[2]) } : undefined;
const ports = argv.slice(tls ? 3 : 0).map(Number);
if (ports.length === 0) ports.push(0);
const counts = ports.map(() => 0);
const RESPONSE = Buffer.from(
  `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${BODY.length}\r\nkeep-alive: timeout=120\r\n\r\n${BODY}`,
  'latin1',
);
const BAD = 'HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n';
const CRLF2 = Buffer.from('\r\n\r\n');

function serve(sock, i) {
  let buf = null;
  let skip = 0; // body bytes of the current request still to discard
  sock.setNoDelay(true);
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk) => {
    if (skip > 0) {
      if (chunk.length <= skip) {
        skip -= chunk.length;
        return;
      }
      chunk = chunk.subarray(skip);
      skip = 0;
    }
    buf = buf ? Buffer.concat([buf, chunk]) : chunk;
    const parts = []; // responses in request order, written together
    for (;;) {
      const end = buf.indexOf(CRLF2);
      if (end < 0) {
        if (buf.length > 65536) return sock.end(BAD);
        break;
      }
      const head = buf.latin1Slice(0, end).toLowerCase();
      if (head.includes('\ntransfer-encoding:')) return sock.end(BAD);
      const cl = /\ncontent-length:\s*(\d+)/.exec(head);
      const len = cl ? Number(cl[1]) : 0;
      const rest = end + 4;
      if (head.startsWith('get /__counts ')) {
        const json = JSON.stringify(counts);
        parts.push(
          Buffer.from(
            `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${json.length}\r\n\r\n${json}`,
            'latin1',
          ),
        );
      } else {
        counts[i]++;
        parts.push(RESPONSE);
      }
      if (buf.length - rest < len) {
        skip = len - (buf.length - rest);
        buf = null;
        break;
      }
      buf = buf.length === rest + len ? null : buf.subarray(rest + len);
      if (!buf) break;
    }
    // One write for everything answered in this read (pipelined requests batch up).
    if (parts.length === 1) sock.write(parts[0]);
    else if (parts.length > 1) sock.write(Buffer.concat(parts));
  });
}

const servers = ports.map((port, i) => {
  const server = tls
    ? createTlsServer(tls, (sock) => serve(sock, i))
    : createServer((sock) => serve(sock, i));
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
});

const listening = await Promise.all(servers);
process.stdout.write(`${JSON.stringify({ ports: listening.map((s) => s.address().port) })}\n`);
exitWithParent();
