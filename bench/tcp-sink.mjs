// The TCP rows' upstream (bench/lib/tls-rows.mjs): a sink that counts and discards. Each
// connection starts with an 8-byte big-endian length L; the sink counts the L bytes that follow
// and answers the count (8 bytes) once they are all in, so the client knows every byte went
// through the proxy without relying on the proxy passing a half-close on (nginx's stream module
// does not by default). Prints `{"port":N}` once listening; exits when its stdin closes.

import { createServer } from 'node:net';
import { exitWithParent, listenAndAnnounce } from './lib/child.mjs';

const server = createServer((sock) => {
  let head = null; // the first bytes, until the 8-byte length is complete
  let expected = -1;
  let got = 0;
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk) => {
    if (expected < 0) {
      head = head ? Buffer.concat([head, chunk]) : chunk;
      if (head.length < 8) return;
      expected = Number(head.readBigUInt64BE(0));
      chunk = head.subarray(8);
      head = null;
    }
    got += chunk.length;
    if (got >= expected) {
      const reply = Buffer.alloc(8);
      reply.writeBigUInt64BE(BigInt(got));
      sock.end(reply);
      expected = Number.POSITIVE_INFINITY; // answered; anything more is ignored
    }
  });
});

listenAndAnnounce(server, process.argv[2] ?? 0);
exitWithParent();
