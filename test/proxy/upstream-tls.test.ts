// TLS origination's pure parts: which host a request's TLS depends on, the SNI, the SAN rules
// (Envoy's exact match with DNS wildcards), and Node's TLS errors in Envoy's words (BoringSSL's
// packed codes), as the local reply and the access log print them.

import type { PeerCertificate } from 'node:tls';
import t from 'tap';
import type { ClientTls } from '../../dist/config/snapshot.js';
import { connectFailure } from '../../dist/proxy/local-reply.js';
import { failureKind, handshakeFailure, UpstreamFailure } from '../../dist/proxy/upstream-pool.js';
import {
  isTlsFailureCode,
  matchSans,
  originates,
  serverName,
  tlsFailureReason,
  tlsHost,
  tlsUnusable,
  upstreamTlsOptions,
} from '../../dist/proxy/upstream-tls.js';

function tls(over: Partial<ClientTls> = {}): ClientTls {
  return { mode: 'SIMPLE', subjectAltNames: [], insecureSkipVerify: false, key: 'k', ...over };
}

const cert = (san: string) => ({ subjectaltname: san }) as unknown as PeerCertificate;

t.test('tlsHost: the authority without its port; nothing when the DR names the SNI', async (t) => {
  const c = tls();
  t.equal(tlsHost(c, 'a.example.com'), 'a.example.com');
  t.equal(tlsHost(c, 'a.example.com:8443'), 'a.example.com');
  t.equal(tlsHost(c, '10.0.0.1:80'), '10.0.0.1');
  t.equal(tlsHost(c, '[::1]:80'), '::1');
  t.equal(tlsHost(c, '[::1]'), '::1');
  t.equal(tlsHost(c, 'a.example.com:x'), 'a.example.com:x', 'not a port');
  t.equal(tlsHost(tls({ sni: 'b.example.com' }), 'a.example.com:80'), '');
  t.equal(tlsHost(tls({ mode: 'DISABLE' }), 'a.example.com'), '', 'plaintext');
  t.equal(tlsHost(tls({ mode: 'ISTIO_MUTUAL' }), 'a.example.com'), '', 'mesh mTLS is not originated yet');
});

t.test('serverName: the DR sni, else the host, never an IP', async (t) => {
  t.equal(serverName(tls(), 'a.example.com'), 'a.example.com');
  t.equal(serverName(tls(), '10.0.0.1'), undefined);
  t.equal(serverName(tls(), '::1'), undefined);
  t.equal(serverName(tls(), ''), undefined);
  t.equal(serverName(tls({ sni: 'b.example.com' }), ''), 'b.example.com');
});

t.test('originates and tlsUnusable', async (t) => {
  t.ok(originates(tls()));
  t.ok(originates(tls({ mode: 'MUTUAL' })));
  t.notOk(originates(tls({ mode: 'DISABLE' })));
  t.notOk(originates(tls({ mode: 'ISTIO_MUTUAL' })));
  t.notOk(tlsUnusable(tls()), 'no material: the system roots');
  t.notOk(tlsUnusable(tls({ material: { source: 's', ca: 'x', hash: 'h' } })));
  t.ok(tlsUnusable(tls({ material: { source: 's', error: 'secret not found', hash: 'h' } })));
});

t.test('upstreamTlsOptions: SNI, ALPN, verification per Istio settings', async (t) => {
  const auto = upstreamTlsOptions(tls(), 'a.example.com');
  t.equal(auto.servername, 'a.example.com');
  t.same(auto.ALPNProtocols, ['http/1.1']);
  t.equal(auto.rejectUnauthorized, true);
  t.ok(auto.secureContext);
  const check = auto.checkServerIdentity as (h: string, c: PeerCertificate) => Error | undefined;
  t.equal(check('ignored', cert('DNS:a.example.com')), undefined);
  t.match(check('a.example.com', cert('DNS:b.example.com')), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  const ip = upstreamTlsOptions(tls(), '10.0.0.1');
  t.equal(ip.servername, undefined, 'no SNI for an IP');
  const sni = upstreamTlsOptions(tls({ sni: 'b.example.com' }), '');
  t.equal(sni.servername, 'b.example.com');
  t.equal(
    (sni.checkServerIdentity as (h: string, c: PeerCertificate) => Error | undefined)('x', cert('DNS:z')),
    undefined,
    'explicit sni without SANs: the chain only',
  );
  const insecure = upstreamTlsOptions(tls({ insecureSkipVerify: true }), 'a.example.com');
  t.equal(insecure.rejectUnauthorized, false);
  t.equal(insecure.servername, 'a.example.com', 'still the auto SNI');
  const sans = upstreamTlsOptions(tls({ subjectAltNames: ['b.example.com'] }), 'a.example.com');
  const sanCheck = sans.checkServerIdentity as (h: string, c: PeerCertificate) => Error | undefined;
  t.equal(sanCheck('a.example.com', cert('DNS:b.example.com')), undefined, 'the SANs, not the host');
  t.ok(sanCheck('a.example.com', cert('DNS:a.example.com')));
  t.same(upstreamTlsOptions(tls(), 'h', ['h2', 'http/1.1']).ALPNProtocols, ['h2', 'http/1.1']);
});

t.test('matchSans: exact over every SAN type, DNS wildcards as Envoy matches them', async (t) => {
  t.equal(matchSans(['a.example.com'], cert('DNS:a.example.com')), undefined);
  t.equal(matchSans(['A.Example.com'], cert('DNS:a.example.com')), undefined, 'DNS is case-insensitive');
  t.equal(matchSans(['a.example.com'], cert('DNS:*.example.com')), undefined, 'a wildcard SAN');
  t.ok(matchSans(['a.b.example.com'], cert('DNS:*.example.com')), 'one label only');
  t.ok(matchSans(['example.com'], cert('DNS:*.example.com')));
  t.ok(matchSans(['*.example.com'], cert('DNS:a.example.com')), 'a wildcard wanted is literal');
  const spiffe = 'spiffe://cluster.local/ns/default/sa/client';
  t.equal(matchSans([spiffe], cert(`DNS:client.example.com, URI:${spiffe}`)), undefined);
  t.equal(matchSans(['10.0.0.1'], cert('IP Address:10.0.0.1')), undefined);
  t.equal(matchSans(['x,y'], cert('DNS:a, URI:"x,y"')), undefined, 'a quoted value');
  const err = matchSans(['c.example.com'], cert('DNS:a.example.com, DNS:b.example.com'));
  t.match(err, { code: 'ERR_TLS_CERT_ALTNAME_INVALID', message: /DNS:a\.example\.com, DNS:b\.example\.com/ });
  t.ok(matchSans(['a'], cert('')), 'no SANs at all');
});

t.test("tlsFailureReason: Envoy's TLS_error strings with BoringSSL's codes", async (t) => {
  const cvf = 'TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end';
  for (const code of [
    'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    'SELF_SIGNED_CERT_IN_CHAIN',
    'DEPTH_ZERO_SELF_SIGNED_CERT',
    'CERT_HAS_EXPIRED',
    'CERT_REVOKED',
    'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  ])
    t.equal(tlsFailureReason({ code }), cvf, code);
  t.equal(
    tlsFailureReason({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' }),
    'TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:verify cert failed: verify SAN list:TLS_error_end',
  );
  t.equal(
    tlsFailureReason({ code: 'ERR_SSL_WRONG_VERSION_NUMBER' }),
    'TLS_error:|268435703:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER:TLS_error_end',
  );
  t.equal(
    tlsFailureReason({ code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' }),
    'TLS_error:|268436572:SSL routines:OPENSSL_internal:TLSV1_ALERT_CERTIFICATE_REQUIRED:TLS_error_end',
  );
  t.equal(
    tlsFailureReason({ code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' }),
    'TLS_error:|268436496:SSL routines:OPENSSL_internal:SSLV3_ALERT_HANDSHAKE_FAILURE:TLS_error_end',
  );
  t.equal(
    tlsFailureReason({ code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' }),
    'TLS_error:|268436504:SSL routines:OPENSSL_internal:TLSV1_ALERT_UNKNOWN_CA:TLS_error_end',
  );
  t.equal(
    tlsFailureReason({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' }),
    'TLS_error:|268436526:SSL routines:OPENSSL_internal:TLSV1_ALERT_PROTOCOL_VERSION:TLS_error_end',
  );
  t.equal(tlsFailureReason({ code: 'ECONNRESET' }), undefined, 'a TCP error is no TLS failure');
  t.equal(
    tlsFailureReason({ code: 'ECONNRESET' }, true),
    'TLS_error:|33554536:system library:OPENSSL_internal:Connection reset by peer:TLS_error_end',
    'a reset during the handshake',
  );
  t.equal(tlsFailureReason({ code: 'ECONNREFUSED' }, true), undefined);
  t.equal(tlsFailureReason(undefined), undefined);
});

t.test('TLS failures are connect failures, with the reason in the reply', async (t) => {
  t.ok(isTlsFailureCode('ERR_SSL_WRONG_VERSION_NUMBER'));
  t.ok(isTlsFailureCode('CERT_HAS_EXPIRED'));
  t.notOk(isTlsFailureCode('ECONNRESET'));
  t.notOk(isTlsFailureCode(undefined));
  const verify = Object.assign(new Error('unable to verify the first certificate'), {
    code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  });
  t.equal(failureKind(verify), 'connect');
  t.same(connectFailure(verify), {
    reason: 'remote connection failure',
    transport: 'TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end',
  });
  t.same(connectFailure('ERR_SSL_WRONG_VERSION_NUMBER').reason, 'remote connection failure');
  // A reset before the handshake finished: a connect failure, in BoringSSL's words.
  const reset = handshakeFailure(
    Object.assign(
      new Error('Client network socket disconnected before secure TLS connection was established'),
      {
        code: 'ECONNRESET',
      },
    ),
  );
  t.ok(reset instanceof UpstreamFailure);
  t.equal(reset.kind, 'connect');
  t.match(connectFailure(reset).transport, /^TLS_error:\|33554536:system library/);
  // Refused at TCP: still Envoy's delayed connect error.
  const refused = handshakeFailure(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
  t.same(connectFailure(refused), {
    reason: 'remote connection failure',
    transport: 'delayed connect error: Connection refused',
  });
  // Plaintext failures keep their words.
  t.same(connectFailure('ECONNREFUSED').transport, 'delayed connect error: Connection refused');
  t.same(connectFailure('UND_ERR_CONNECT_TIMEOUT'), { reason: 'connection timeout' });
});
