// The codec-neutral request: every codec hands the request path the same shape. The authority is
// the codec's `:authority` when it has one, else the Host header; the scheme comes from the
// connection (TLS facts present: https), never from a header the client sent.

import t from 'tap';
import type { Listener } from '../../dist/config/snapshot.js';
import { type DownstreamRequest, type DownstreamResponse, Exchange } from '../../dist/proxy/exchange.js';

const listener = { name: 'l', port: 8080 } as unknown as Listener;
const res = {} as DownstreamResponse;
const req = (p: Partial<DownstreamRequest>): DownstreamRequest => ({
  method: 'GET',
  url: '/',
  headers: { host: 'from-host.example' },
  httpVersion: '1.1',
  socket: { remoteAddress: '::ffff:10.0.0.1' },
  ...p,
});

t.test('authority: the codec-level authority, else Host', async (t) => {
  t.equal(new Exchange(req({}), res, listener, 0).authority, 'from-host.example');
  t.equal(new Exchange(req({ authority: 'h2.example' }), res, listener, 0).authority, 'h2.example');
  t.equal(new Exchange(req({ headers: {} }), res, listener, 0).authority, '');
});

t.test('scheme from the connection', async (t) => {
  t.equal(new Exchange(req({}), res, listener, 0).scheme, 'http');
  const tls = req({ socket: { tls: { sni: 'a.example', alpn: 'http/1.1' } } });
  t.equal(new Exchange(tls, res, listener, 0).scheme, 'https');
  const spoof = req({ headers: { host: 'a', 'x-forwarded-proto': 'https' } });
  t.equal(new Exchange(spoof, res, listener, 0).scheme, 'http', 'a header does not make it https');
});
