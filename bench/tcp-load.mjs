// The TCP rows' client (bench/lib/drivers.mjs tcpLoad): streams `bytes` in total over
// `connections` parallel connections to `port` (a proxy in front of bench/tcp-sink.mjs, or the
// sink itself), each connection its share after an 8-byte length, and waits for the sink's count
// on every connection: the clock stops when the last byte has reached the sink. One shared 1 MiB
// buffer is written over and over (no copy in this process). Prints one JSON line:
// {"bytes":B,"acked":A,"seconds":S,"errors":E,"timedOut":false}.
//
// Usage: node bench/tcp-load.mjs '{"port":N,"bytes":B,"connections":C,"timeoutS":T}'

import { connect } from 'node:net';

const { port, bytes, connections, timeoutS = 120 } = JSON.parse(process.argv[2]);
const CHUNK = Buffer.alloc(2 ** 20, 0x61);
const sockets = new Set();
let errors = 0;
let timedOut = false;

function one(share) {
  return new Promise((resolve) => {
    const sock = connect({ port, host: '127.0.0.1' });
    sockets.add(sock);
    let left = share;
    let reply = Buffer.alloc(0);
    let acked = 0;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, CHUNK.length);
        left -= n;
        if (!sock.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return;
      }
    };
    sock.on('connect', () => {
      const head = Buffer.alloc(8);
      head.writeBigUInt64BE(BigInt(share));
      sock.write(head);
      pump();
    });
    sock.on('drain', pump);
    sock.on('data', (d) => {
      reply = Buffer.concat([reply, d]);
      if (reply.length >= 8) {
        acked = Number(reply.readBigUInt64BE(0));
        sock.destroy();
      }
    });
    sock.on('error', () => {
      errors++;
    });
    sock.on('close', () => {
      sockets.delete(sock);
      resolve(acked);
    });
  });
}

const per = Math.floor(bytes / connections);
const shares = Array.from({ length: connections }, (_, i) =>
  i === 0 ? bytes - per * (connections - 1) : per,
);
const timer = setTimeout(() => {
  timedOut = true;
  for (const s of sockets) s.destroy();
}, timeoutS * 1000);
const start = performance.now();
const acked = (await Promise.all(shares.map(one))).reduce((a, b) => a + b, 0);
const seconds = (performance.now() - start) / 1000;
clearTimeout(timer);
process.stdout.write(`${JSON.stringify({ bytes, acked, seconds, errors, timedOut })}\n`);
