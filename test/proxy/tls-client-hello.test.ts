// The ClientHello reader behind SNI dispatch: genuine hellos from node:tls, crafted ones, every
// truncation (always "incomplete", never a wrong answer), malformed lengths, and random mutations
// (never a throw, never a read past the buffer).

import { createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { MAX_CLIENT_HELLO, parseClientHello } from '../../dist/proxy/tls-client-hello.js';

/** The first bytes node:tls sends: a genuine ClientHello. */
async function captureHello(opts: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    return await new Promise<Buffer>((resolve, reject) => {
      let got = Buffer.alloc(0);
      server.once('connection', (sock: Socket) => {
        sock.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d]);
          const r = parseClientHello(got);
          if (r.kind !== 'incomplete') {
            sock.destroy();
            resolve(got);
          }
        });
      });
      const c = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
      c.on('error', () => {});
      setTimeout(() => reject(new Error('no hello')), 3000).unref();
    });
  } finally {
    server.close();
  }
}

const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const u24 = (n: number) => [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];

function ext(type: number, data: number[]): number[] {
  return [...u16(type), ...u16(data.length), ...data];
}
function sniExt(...names: string[]): number[] {
  const entries = names.flatMap((n) => [0, ...u16(n.length), ...Buffer.from(n, 'latin1')]);
  return ext(0, [...u16(entries.length), ...entries]);
}
function alpnExt(...protos: string[]): number[] {
  const list = protos.flatMap((p) => [p.length, ...Buffer.from(p, 'latin1')]);
  return ext(16, [...u16(list.length), ...list]);
}

interface Craft {
  exts?: number[] | undefined;
  sessionId?: number;
  suites?: number[];
  compression?: number[];
  handshakeType?: number;
  /** Bytes of handshake data per record (default: one record). */
  recordSize?: number;
  /** Raw body instead of the built one. */
  body?: number[];
}

function craft(c: Craft = {}): Buffer {
  const sid = c.sessionId ?? 32;
  const suites = c.suites ?? [0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f];
  const comp = c.compression ?? [0];
  const body = c.body ?? [
    3,
    3,
    ...new Array(32).fill(7),
    sid,
    ...new Array(sid).fill(1),
    ...u16(suites.length),
    ...suites,
    comp.length,
    ...comp,
    ...(c.exts === undefined ? [] : [...u16(c.exts.length), ...c.exts]),
  ];
  const hs = [c.handshakeType ?? 1, ...u24(body.length), ...body];
  const size = c.recordSize ?? hs.length;
  const out: number[] = [];
  for (let i = 0; i < hs.length; i += size) {
    const frag = hs.slice(i, i + size);
    out.push(0x16, 3, 1, ...u16(frag.length), ...frag);
  }
  return Buffer.from(out);
}

t.test('a genuine node:tls hello: SNI, ALPN, and its length', async (t) => {
  const buf = await captureHello({ servername: 'API.Example.com', ALPNProtocols: ['h2', 'http/1.1'] });
  const r = parseClientHello(buf);
  t.equal(r.kind, 'hello');
  if (r.kind !== 'hello') return;
  t.equal(r.serverName, 'api.example.com', 'lowercased');
  t.strictSame(r.alpn, ['h2', 'http/1.1']);
  t.equal(r.length, buf.length, 'the whole first flight is the hello');
  const withData = Buffer.concat([buf, Buffer.from('after')]);
  t.match(parseClientHello(withData), { kind: 'hello', length: buf.length }, 'bytes after it are not read');
});

t.test('a hello to an IP address carries no SNI', async (t) => {
  const r = parseClientHello(await captureHello({}));
  t.match(r, { kind: 'hello', serverName: undefined, alpn: [] });
});

t.test('every truncation of a valid hello asks for more, never misreads', async (t) => {
  const genuine = await captureHello({ servername: 'a.example.com', ALPNProtocols: ['http/1.1'] });
  const split = craft({ exts: [...sniExt('split.example.com'), ...alpnExt('h2')], recordSize: 37 });
  for (const buf of [genuine, split]) {
    const bad: number[] = [];
    for (let n = 0; n < buf.length; n++)
      if (parseClientHello(buf.subarray(0, n)).kind !== 'incomplete') bad.push(n);
    t.strictSame(bad, [], `no prefix of a ${buf.length}-byte hello is anything but incomplete`);
  }
  t.match(
    parseClientHello(split),
    { kind: 'hello', serverName: 'split.example.com', alpn: ['h2'] },
    'reassembled',
  );
});

t.test('crafted hellos', async (t) => {
  t.match(parseClientHello(craft({ exts: [...sniExt('x.test'), ...alpnExt('h2', 'http/1.1')] })), {
    kind: 'hello',
    serverName: 'x.test',
    alpn: ['h2', 'http/1.1'],
  });
  t.match(
    parseClientHello(craft()),
    { kind: 'hello', serverName: undefined, alpn: [] },
    'no extensions block',
  );
  t.match(
    parseClientHello(craft({ exts: [] })),
    { kind: 'hello', serverName: undefined },
    'empty extensions',
  );
  t.match(parseClientHello(craft({ exts: [...ext(0xff01, [0]), ...sniExt('a.test')] })), {
    serverName: 'a.test',
  });
  t.match(
    parseClientHello(craft({ exts: sniExt('first.test', 'second.test') })),
    { kind: 'hello', serverName: 'first.test' },
    'the first host_name counts',
  );
  const otherType = [1, ...u16(3), 0x61, 0x62, 0x63, 0, ...u16(6), ...Buffer.from('b.test')];
  t.match(
    parseClientHello(craft({ exts: ext(0, [...u16(otherType.length), ...otherType]) })),
    { serverName: 'b.test' },
    'entries of another name type are skipped',
  );
  t.match(parseClientHello(craft({ sessionId: 0, recordSize: 1 })), { kind: 'hello' }, 'one byte per record');
});

t.test('not TLS', async (t) => {
  t.equal(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n')).kind, 'not_tls');
  t.equal(parseClientHello(Buffer.from([0x16, 0x02])).kind, 'not_tls');
  t.equal(parseClientHello(Buffer.from([0x16])).kind, 'incomplete');
  t.equal(parseClientHello(Buffer.alloc(0)).kind, 'incomplete');
});

t.test('malformed hellos are invalid, not incomplete', async (t) => {
  const cases: [string, Buffer][] = [
    ['session id longer than 32', craft({ sessionId: 33 })],
    ['odd cipher suites length', craft({ suites: [0x13, 0x01, 0x13] })],
    ['no cipher suites', craft({ suites: [] })],
    ['no compression method', craft({ compression: [] })],
    ['a ServerHello', craft({ handshakeType: 2 })],
    ['duplicate extension', craft({ exts: [...sniExt('a.test'), ...sniExt('b.test')] })],
    ['empty hello body', craft({ body: [] })],
    ['empty host name', craft({ exts: sniExt('') })],
    ['host name with a space', craft({ exts: sniExt('a b.test') })],
    ['host name with a NUL', craft({ exts: sniExt('a\0.test') })],
    ['host name over 255 bytes', craft({ exts: sniExt('a'.repeat(256)) })],
    ['empty ALPN name', craft({ exts: ext(16, [...u16(1), 0]) })],
    ['empty ALPN list', craft({ exts: ext(16, u16(0)) })],
    [
      'server_name list shorter than its data',
      craft({ exts: ext(0, [...u16(3), 0, ...u16(1), 0x61, 0x62]) }),
    ],
  ];
  // An extensions block whose length runs past the hello.
  const over = craft({ exts: sniExt('a.test') });
  const extLenAt = 5 + 4 + 2 + 32 + 1 + 32 + 2 + 6 + 1 + 1;
  over.writeUInt16BE(over.readUInt16BE(extLenAt) + 5, extLenAt);
  cases.push(['extensions length past the hello', over]);
  const trailing = craft({ exts: sniExt('a.test') });
  const body = [...trailing.subarray(9), 0];
  cases.push(['bytes after the extensions', craft({ body })]);
  const zero = Buffer.from([0x16, 3, 1, 0, 0]);
  cases.push(['empty record', zero]);
  cases.push(['record over 2^14', Buffer.from([0x16, 3, 1, 0x40, 0x01, 1])]);
  cases.push(['handshake over 64 KiB', Buffer.from([0x16, 3, 1, 0, 4, 1, 0x01, 0x00, 0x00])]);
  const interleaved = craft({ exts: sniExt('a.test'), recordSize: 20 });
  cases.push([
    'alert between hello records',
    Buffer.concat([interleaved.subarray(0, 25), Buffer.from([0x15, 3, 1, 0, 2, 2, 40])]),
  ]);
  cases.push(['a partial record that is not a ClientHello', Buffer.from([0x16, 3, 1, 0, 50, 2, 0])]);
  for (const [name, buf] of cases) t.equal(parseClientHello(buf).kind, 'invalid', name);
});

t.test('a hello bigger than the bound is refused without reading it all', async (t) => {
  // Records of 16 KiB each, handshake length just under 64 KiB: the records run past the bound.
  const hs = [1, ...u24(MAX_CLIENT_HELLO - 10)];
  const records: Buffer[] = [];
  let left = MAX_CLIENT_HELLO - 10 + 4;
  let first = true;
  while (left > 0) {
    const n = Math.min(left, 16_384);
    const frag = Buffer.alloc(n);
    if (first) Buffer.from(hs).copy(frag);
    first = false;
    records.push(Buffer.from([0x16, 3, 1, ...u16(n)]), frag);
    left -= n;
  }
  const all = Buffer.concat(records);
  t.equal(parseClientHello(all).kind, 'invalid');
  t.equal(parseClientHello(all.subarray(0, 40_000)).kind, 'incomplete', 'within the bound it waits');
});

t.test('random mutations never throw and never claim bytes that are not there', async (t) => {
  const base = await captureHello({ servername: 'fuzz.example.com', ALPNProtocols: ['h2', 'http/1.1'] });
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed % n;
  };
  const kinds = new Map<string, number>();
  for (let i = 0; i < 5000; i++) {
    const buf = Buffer.from(base.subarray(0, rand(base.length + 1)));
    for (let k = 1 + rand(4); k > 0 && buf.length > 0; k--) buf[rand(buf.length)] = rand(256);
    const r = parseClientHello(buf);
    kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
    if (r.kind === 'hello' && r.length > buf.length) t.fail(`length ${r.length} > ${buf.length}`);
  }
  t.ok((kinds.get('hello') ?? 0) > 0 && (kinds.get('invalid') ?? 0) > 0, JSON.stringify([...kinds]));
});
