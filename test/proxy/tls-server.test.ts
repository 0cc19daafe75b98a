// A terminating chain's TLS on its own (proxy/tls-server.ts), behind a plain net.Server that
// hands each connection over as the worker's dispatcher does: settings changed by a reload take
// effect for new connections — a new certificate, and SIMPLE → MUTUAL, which needs a new server
// (requestCert is not a context option) — and material that is not usable refuses connections.

import { createServer, type Server, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import type { ServerTls, TlsMaterial } from '../../dist/config/snapshot.js';
import { ChainTls, type TerminatedFacts } from '../../dist/proxy/tls-server.js';
import { makeCa } from '../helpers/certs.js';
import { tlsRequest } from '../helpers/tls-client.js';

const ca = await makeCa('unit-ca');
const leaf = await ca.issue({ cn: 'a.example.com', dns: ['a.example.com'] });
const leaf2 = await ca.issue({ cn: 'a2.example.com', dns: ['a.example.com'] });
const client = await ca.issue({
  cn: 'client',
  uri: ['spiffe://td/ns/n/sa/c'],
  dns: ['c.example.com'],
  client: true,
});

const material = (cert: string, key: string, extra: Partial<TlsMaterial> = {}): TlsMaterial => ({
  source: 'test',
  cert,
  key,
  ca: ca.cert,
  hash: `${cert.slice(-80)}:${extra.error ?? ''}`,
  ...extra,
});
const settings = (mode: ServerTls['mode'], m: TlsMaterial): ServerTls => ({
  mode,
  subjectAltNames: [],
  verifyCertificateSpki: [],
  verifyCertificateHash: [],
  material: m,
});

const facts: TerminatedFacts[] = [];
const refused: string[] = [];
const chain = new ChainTls({
  tls: settings('SIMPLE', material(leaf.cert, leaf.key)),
  alpn: ['http/1.1'],
  onSecure: (sock: TLSSocket, f) => {
    facts.push(f);
    sock.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok');
  },
  onRefused: (_kind, r) => {
    refused.push(r);
  },
});
const server: Server = createServer((sock: Socket) => {
  sock.once('data', (head: Buffer) => chain.accept(sock, head));
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const port = (server.address() as { port: number }).port;
t.teardown(() => {
  chain.close();
  server.close();
});

t.test('SIMPLE serves; the facts carry SNI, ALPN, version and no client identity', async (t) => {
  const r = await tlsRequest({ port, servername: 'a.example.com', ca: ca.cert, ALPNProtocols: ['http/1.1'] });
  t.equal(r.status, 200);
  t.equal(r.peerCN, 'a.example.com');
  t.match(facts.at(-1), {
    sni: 'a.example.com',
    alpn: 'http/1.1',
    version: 'TLSv1.3',
    peerIdentity: undefined,
    xfcc: undefined,
  });
});

t.test('a reload with new material: new connections get it', async (t) => {
  chain.update(settings('SIMPLE', material(leaf2.cert, leaf2.key)));
  const r = await tlsRequest({ port, servername: 'a.example.com', ca: ca.cert });
  t.equal(r.peerCN, 'a2.example.com');
});

t.test(
  'SIMPLE → MUTUAL on a reload: a client without a certificate is refused, one with passes',
  async (t) => {
    chain.update(settings('MUTUAL', material(leaf2.cert, leaf2.key)));
    const none = await tlsRequest({ port, servername: 'a.example.com', ca: ca.cert });
    t.equal(none.status, undefined);
    const ok = await tlsRequest({
      port,
      servername: 'a.example.com',
      ca: ca.cert,
      cert: client.cert,
      key: client.key,
    });
    t.equal(ok.status, 200);
    const f = facts.at(-1);
    t.equal(f?.peerIdentity, 'spiffe://td/ns/n/sa/c');
    t.match(f?.xfcc, new RegExp(`^Hash=${client.sha256};Cert="`));
    t.match(f?.xfcc, /;URI=spiffe:\/\/td\/ns\/n\/sa\/c;DNS=c\.example\.com$/);
  },
);

t.test('material that is not usable refuses every connection, with the reason', async (t) => {
  chain.update(settings('SIMPLE', material(leaf.cert, leaf.key, { error: 'broken on purpose' })));
  const r = await tlsRequest({ port, servername: 'a.example.com', ca: ca.cert });
  t.equal(r.status, undefined);
  t.equal(refused.at(-1), 'broken on purpose');
  chain.update(settings('SIMPLE', material(leaf.cert, leaf.key)));
  t.equal(
    (await tlsRequest({ port, servername: 'a.example.com', ca: ca.cert })).status,
    200,
    'and good again',
  );
});
