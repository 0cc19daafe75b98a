// Istio's TLS validation rules, with Istio's messages, as `courier validate` reports them: a
// Gateway server's `tls` (ServerTLSSettings), a DestinationRule's `tls` at every level
// (ClientTLSSettings) and a VirtualService's `tls:` routes (TLSRoute, TLSMatchAttributes). Each
// rule is checked for its exact message and field path, and for what else it reports (nothing).

import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { loadConfig } from '../../dist/config/load.js';
import { formatError } from '../../dist/config/types.js';
import { validateCommand } from '../../dist/pilot-agent/courier-cli.js';

/** One Istio document: header plus a `spec:` body written as YAML. */
function doc(kind: string, spec: string, name = 'r'): string {
  const body = spec
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
  return `apiVersion: networking.istio.io/v1\nkind: ${kind}\nmetadata:\n  name: ${name}\nspec:\n${body}\n`;
}

/** A Gateway with one server on `port`/`protocol`; `tls` is a YAML flow mapping, or omitted. */
function gw(tls: string | undefined, protocol = 'HTTPS', port = 443): string {
  const name = protocol.toLowerCase();
  return doc(
    'Gateway',
    `servers:\n- port: {number: ${port}, name: ${name}, protocol: ${protocol}}\n  hosts: [a.example.com]${
      tls === undefined ? '' : `\n  tls: ${tls}`
    }`,
  );
}

/** A DestinationRule whose `trafficPolicy.tls` is `tls` (a YAML flow mapping). */
function dr(tls: string): string {
  return doc('DestinationRule', `host: a.example.com\ntrafficPolicy: {tls: ${tls}}`);
}

/** A VirtualService with `hosts` and `gateways` whose `tls:` list is `routes` (YAML lines). */
function vs(routes: string, hosts = '[a.example.com, "*.b.example.com"]', gateways = '[gw]'): string {
  return doc('VirtualService', `hosts: ${hosts}\ngateways: ${gateways}\ntls:\n${routes}`);
}

const ROUTE = '  route: [{destination: {host: a.example.com, port: {number: 443}}}]';

function load(t: Test, yaml: string) {
  const dir = t.testdir({ 'doc.yaml': yaml });
  const r = loadConfig([dir], { displayBase: dir });
  return {
    errors: r.errors.map(formatError),
    warnings: r.warnings.map(formatError),
    resources: r.resources.length,
  };
}

/** [field path, exact message]: the line is `doc.yaml[0] Kind/default/r: path: message`. */
type Msg = [path: string, message: string];

function expectLines(t: Test, lines: string[], kind: string, expected: Msg[], what: string): void {
  t.same(
    [...lines].sort(),
    expected.map(([p, m]) => `doc.yaml[0] ${kind}/default/r: ${p}: ${m}`).sort(),
    what,
  );
}

interface Case {
  name: string;
  yaml: string;
  errors?: Msg[];
  warnings?: Msg[];
}

function run(t: Test, kind: string, cases: Case[]): void {
  for (const c of cases)
    t.test(c.name, async (t) => {
      const r = load(t, c.yaml);
      expectLines(t, r.errors, kind, c.errors ?? [], 'errors');
      expectLines(t, r.warnings, kind, c.warnings ?? [], 'warnings');
      t.equal(r.resources, (c.errors ?? []).length === 0 ? 1 : 0, 'loads only when valid');
    });
}

const S = 'spec.servers[0].tls';
const SHA256_HEX = createHash('sha256').update('client cert').digest('hex');
const SHA256_B64 = createHash('sha256').update('client spki').digest('base64');

// ---------------------------------------------------------------- Gateway servers[].tls

t.test('Gateway server TLS (Istio validateServer, validateTLSOptions)', async (t) => {
  run(t, 'Gateway', [
    {
      name: 'HTTPS server without tls',
      yaml: gw(undefined),
      errors: [[S, 'server must have TLS settings for HTTPS/TLS protocols']],
    },
    {
      name: 'TLS server without tls',
      yaml: gw(undefined, 'TLS'),
      errors: [[S, 'server must have TLS settings for HTTPS/TLS protocols']],
    },
    {
      name: 'HTTP server terminating TLS with a credential',
      yaml: gw('{mode: SIMPLE, credentialName: x}', 'HTTP', 80),
      errors: [[S, 'server cannot have TLS settings for plain text HTTP ports']],
    },
    {
      name: 'HTTP server with httpsRedirect and mode SIMPLE',
      yaml: gw('{httpsRedirect: true, mode: SIMPLE}', 'HTTP', 80),
      errors: [
        [S, 'server cannot have TLS settings for plain text HTTP ports'],
        [`${S}.serverCertificate`, 'SIMPLE TLS requires a server certificate'],
        [`${S}.privateKey`, 'SIMPLE TLS requires a private key'],
      ],
    },
    {
      name: 'HTTP server with a certificate file (passthrough mode)',
      yaml: gw('{httpsRedirect: true, serverCertificate: /c.pem}', 'HTTP', 80),
      errors: [[S, 'server cannot have TLS settings for plain text HTTP ports']],
      warnings: [[S, 'PASSTHROUGH mode does not use certificates, they will be ignored']],
    },
    {
      name: 'HTTP server with httpsRedirect only',
      yaml: gw('{httpsRedirect: true}', 'HTTP', 80),
    },
    {
      name: 'TCP server with TLS settings',
      yaml: gw('{mode: SIMPLE, credentialName: x}', 'TCP', 9000),
      errors: [[S, 'server cannot have TLS settings for non HTTPS/TLS ports']],
    },
    {
      name: 'httpsRedirect on a TCP server',
      yaml: gw('{httpsRedirect: true}', 'TCP', 9000),
      errors: [[S, 'server cannot have TLS settings for non HTTPS/TLS ports']],
      warnings: [[`${S}.httpsRedirect`, 'tls.httpsRedirect should only be used with http servers']],
    },
    {
      name: 'httpsRedirect on an HTTPS server',
      yaml: gw('{httpsRedirect: true, mode: SIMPLE, credentialName: x}'),
      warnings: [[`${S}.httpsRedirect`, 'tls.httpsRedirect should only be used with http servers']],
    },
    {
      name: 'ISTIO_MUTUAL with every certificate source',
      yaml: gw(
        '{mode: ISTIO_MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, tlsCertificates: [{serverCertificate: /r.pem, privateKey: /r.key}], credentialName: x, credentialNames: [y]}',
      ),
      errors: [
        [`${S}.serverCertificate`, 'ISTIO_MUTUAL TLS cannot have associated server certificate'],
        [`${S}.privateKey`, 'ISTIO_MUTUAL TLS cannot have associated private key'],
        [`${S}.caCertificates`, 'ISTIO_MUTUAL TLS cannot have associated CA bundle'],
        [`${S}.tlsCertificates`, 'ISTIO_MUTUAL TLS cannot have associated tlsCertificates'],
        [`${S}.credentialName`, 'ISTIO_MUTUAL TLS cannot have associated credentialName'],
        [`${S}.credentialNames`, 'ISTIO_MUTUAL TLS cannot have associated credentialNames'],
      ],
    },
    {
      name: 'ISTIO_MUTUAL with a credentialName',
      yaml: gw('{mode: ISTIO_MUTUAL, credentialName: x}'),
      errors: [[`${S}.credentialName`, 'ISTIO_MUTUAL TLS cannot have associated credentialName']],
    },
    {
      name: 'ISTIO_MUTUAL alone',
      yaml: gw('{mode: ISTIO_MUTUAL}'),
    },
    {
      name: 'credentialName and certificate files',
      yaml: gw('{mode: SIMPLE, credentialName: x, serverCertificate: /c.pem, privateKey: /k.pem}'),
      errors: [
        [
          S,
          'only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified',
        ],
      ],
    },
    {
      name: 'credentialNames and tlsCertificates',
      yaml: gw(
        '{mode: MUTUAL, credentialNames: [rsa], tlsCertificates: [{serverCertificate: /c.pem, privateKey: /k.pem}]}',
      ),
      errors: [
        [
          S,
          'only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified',
        ],
      ],
    },
    {
      name: 'SIMPLE with only a server certificate',
      yaml: gw('{mode: SIMPLE, serverCertificate: /c.pem}'),
      errors: [[`${S}.privateKey`, 'SIMPLE TLS requires a private key']],
    },
    {
      name: 'SIMPLE with only a private key',
      yaml: gw('{mode: SIMPLE, privateKey: /k.pem}'),
      errors: [[`${S}.serverCertificate`, 'SIMPLE TLS requires a server certificate']],
    },
    {
      name: 'MUTUAL without anything',
      yaml: gw('{mode: MUTUAL}'),
      errors: [
        [`${S}.serverCertificate`, 'MUTUAL TLS requires a server certificate'],
        [`${S}.privateKey`, 'MUTUAL TLS requires a private key'],
        [`${S}.caCertificates`, 'MUTUAL TLS requires a client CA bundle'],
      ],
    },
    {
      name: 'MUTUAL with certificate and key but no CA',
      yaml: gw('{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}'),
      errors: [[`${S}.caCertificates`, 'MUTUAL TLS requires a client CA bundle']],
    },
    {
      name: 'OPTIONAL_MUTUAL without a CA',
      yaml: gw('{mode: OPTIONAL_MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem}'),
      errors: [[`${S}.caCertificates`, 'MUTUAL TLS requires a client CA bundle']],
    },
    {
      name: 'MUTUAL with a credential needs no files',
      yaml: gw('{mode: MUTUAL, credentialName: x}'),
    },
    {
      name: 'MUTUAL tlsCertificates entry without a key',
      yaml: gw(
        '{mode: MUTUAL, caCertificates: /ca.pem, tlsCertificates: [{serverCertificate: /rsa.pem}, {serverCertificate: /ec.pem, privateKey: /ec.key}]}',
      ),
      errors: [[`${S}.tlsCertificates[0].privateKey`, 'MUTUAL TLS requires a private key']],
    },
    {
      name: 'SIMPLE with three tlsCertificates',
      yaml: gw(
        '{mode: SIMPLE, tlsCertificates: [{serverCertificate: /1.pem, privateKey: /1.key}, {serverCertificate: /2.pem, privateKey: /2.key}, {serverCertificate: /3.pem, privateKey: /3.key}]}',
      ),
      warnings: [[`${S}.tlsCertificates`, 'SIMPLE TLS can support up to 2 server certificates']],
    },
    {
      name: 'three credentialNames',
      yaml: gw('{mode: SIMPLE, credentialNames: [a, b, c]}'),
      errors: [[`${S}.credentialNames`, 'at most 2 credential names (one RSA, one ECDSA) may be set']],
    },
    {
      name: 'caCrl with a credentialName (passthrough: Istio rejects it)',
      yaml: gw('{credentialName: x, caCrl: /crl.pem}'),
      errors: [
        [`${S}.caCrl`, 'CRL is not supported with credentialName. CRL has to be specified in the credential'],
      ],
      warnings: [[S, 'PASSTHROUGH mode does not use certificates, they will be ignored']],
    },
    {
      name: 'caCrl with a credentialName in MUTUAL mode (Istio accepts it; the file is not used)',
      yaml: gw('{mode: MUTUAL, credentialName: x, caCrl: /crl.pem}'),
      warnings: [
        [`${S}.caCrl`, 'CRL is not supported with credentialName. CRL has to be specified in the credential'],
      ],
    },
    {
      name: 'caCrl with SIMPLE',
      yaml: gw('{mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem, caCrl: /crl.pem}'),
      errors: [[`${S}.caCrl`, 'CRL is not supported with SIMPLE TLS']],
    },
    {
      name: 'caCrl with MUTUAL files',
      yaml: gw(
        '{mode: MUTUAL, serverCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem, caCrl: /crl.pem}',
      ),
    },
    {
      name: 'HTTPS with a credentialName and no mode is PASSTHROUGH',
      yaml: gw('{credentialName: x}'),
      warnings: [[S, 'PASSTHROUGH mode does not use certificates, they will be ignored']],
    },
    {
      name: 'AUTO_PASSTHROUGH with a certificate',
      yaml: gw('{mode: AUTO_PASSTHROUGH, serverCertificate: /c.pem, privateKey: /k.pem}', 'TLS', 15443),
      warnings: [[S, 'AUTO_PASSTHROUGH mode does not use certificates, they will be ignored']],
    },
    {
      name: 'an unknown mode',
      yaml: gw('{mode: STRICT, credentialName: x}'),
      errors: [
        [
          `${S}.mode`,
          'unsupported value "STRICT" (expected one of PASSTHROUGH, SIMPLE, MUTUAL, AUTO_PASSTHROUGH, ISTIO_MUTUAL, OPTIONAL_MUTUAL)',
        ],
      ],
    },
    {
      name: 'unknown protocol versions',
      yaml: gw('{mode: SIMPLE, credentialName: x, minProtocolVersion: TLSV1_4, maxProtocolVersion: TLS1_3}'),
      errors: [
        [
          `${S}.minProtocolVersion`,
          'unsupported value "TLSV1_4" (expected one of TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3)',
        ],
        [
          `${S}.maxProtocolVersion`,
          'unsupported value "TLS1_3" (expected one of TLS_AUTO, TLSV1_0, TLSV1_1, TLSV1_2, TLSV1_3)',
        ],
      ],
    },
    {
      name: 'minProtocolVersion above maxProtocolVersion',
      yaml: gw('{mode: SIMPLE, credentialName: x, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLSV1_2}'),
      errors: [
        [`${S}.maxProtocolVersion`, 'maxProtocolVersion TLSV1_2 is lower than minProtocolVersion TLSV1_3'],
      ],
    },
    {
      name: 'equal versions and TLS_AUTO bounds',
      yaml: gw(
        '{mode: SIMPLE, credentialName: x, minProtocolVersion: TLSV1_3, maxProtocolVersion: TLS_AUTO}',
      ),
    },
    {
      name: 'TLS 1.1 without cipher suites',
      yaml: gw('{mode: SIMPLE, credentialName: x, minProtocolVersion: TLSV1_1}'),
      warnings: [
        [
          `${S}.minProtocolVersion`,
          'TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.',
        ],
      ],
    },
    {
      name: 'TLS 1.0 with cipher suites',
      yaml: gw(
        '{mode: SIMPLE, credentialName: x, minProtocolVersion: TLSV1_0, cipherSuites: [ECDHE-RSA-AES128-SHA]}',
      ),
    },
    {
      name: 'invalid and duplicate cipher suites',
      yaml: gw(
        '{mode: SIMPLE, credentialName: x, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256, fake, ALL, "-AES128-SHA", "!DES-CBC3-SHA", bogus, ECDHE-RSA-AES128-GCM-SHA256, fake]}',
      ),
      warnings: [
        [`${S}.cipherSuites`, 'ignoring invalid cipher suites: [bogus fake]'],
        [`${S}.cipherSuites`, 'ignoring duplicate cipher suites: [ECDHE-RSA-AES128-GCM-SHA256]'],
      ],
    },
    {
      name: 'every cipher suite Istio knows',
      yaml: gw(
        '{mode: SIMPLE, credentialName: x, cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256, ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-RSA-AES256-GCM-SHA384, ECDHE-ECDSA-CHACHA20-POLY1305, ECDHE-RSA-CHACHA20-POLY1305, ECDHE-ECDSA-AES128-SHA, ECDHE-RSA-AES128-SHA, ECDHE-ECDSA-AES256-SHA, ECDHE-RSA-AES256-SHA, AES128-GCM-SHA256, AES256-GCM-SHA384, AES128-SHA, AES256-SHA, DES-CBC3-SHA]}',
      ),
    },
    {
      name: 'malformed certificate pins',
      yaml: gw(
        `{mode: MUTUAL, credentialName: x, verifyCertificateSpki: ["${SHA256_B64}", "not-base64", "${Buffer.from('short').toString('base64')}"], verifyCertificateHash: [${SHA256_HEX}, "${SHA256_HEX.slice(2)}", "zz${SHA256_HEX.slice(2)}"]}`,
      ),
      errors: [
        [`${S}.verifyCertificateSpki[1]`, 'Invalid base64-encoded SHA-256 not-base64'],
        [`${S}.verifyCertificateSpki[2]`, 'Invalid base64-encoded SHA-256 c2hvcnQ='],
        [`${S}.verifyCertificateHash[1]`, `Invalid hex-encoded SHA-256 ${SHA256_HEX.slice(2)}`],
        [`${S}.verifyCertificateHash[2]`, `Invalid hex-encoded SHA-256 zz${SHA256_HEX.slice(2)}`],
      ],
    },
    {
      name: 'certificate pins in both forms, and SANs',
      yaml: gw(
        `{mode: MUTUAL, credentialName: x, subjectAltNames: [spiffe://cluster.local/ns/default/sa/client], verifyCertificateSpki: ["${SHA256_B64}"], verifyCertificateHash: [${SHA256_HEX.toUpperCase()}, "${SHA256_HEX.match(/../g)?.join(':')}"]}`,
      ),
    },
    {
      name: 'a colon-separated hash with a byte missing',
      yaml: gw(
        `{mode: MUTUAL, credentialName: x, verifyCertificateHash: ["${SHA256_HEX.slice(2).match(/../g)?.join(':')}"]}`,
      ),
      errors: [
        [
          `${S}.verifyCertificateHash[0]`,
          `Invalid hex-encoded SHA-256 ${SHA256_HEX.slice(2).match(/../g)?.join(':')}`,
        ],
      ],
    },
  ]);
});

// ---------------------------------------------------------------- DestinationRule tls

t.test('DestinationRule client TLS at every level (Istio ValidateTLS)', async (t) => {
  const T = 'spec.trafficPolicy.tls';
  run(t, 'DestinationRule', [
    {
      name: 'MUTUAL without a certificate or key',
      yaml: dr('{mode: MUTUAL, caCertificates: /ca.pem}'),
      errors: [
        [`${T}.clientCertificate`, 'client certificate required for mutual tls'],
        [`${T}.privateKey`, 'private key required for mutual tls'],
      ],
    },
    {
      name: 'MUTUAL without a certificate',
      yaml: dr('{mode: MUTUAL, privateKey: /k.pem}'),
      errors: [[`${T}.clientCertificate`, 'client certificate required for mutual tls']],
    },
    {
      name: 'MUTUAL with a credential needs no files',
      yaml: dr('{mode: MUTUAL, credentialName: client-cred}'),
    },
    {
      name: 'credentialName with a client certificate and key',
      yaml: dr('{mode: MUTUAL, credentialName: c, clientCertificate: /c.pem, privateKey: /k.pem}'),
      errors: [
        [T, 'cannot specify client certificates or CA certificate or CA CRL If credentialName is set'],
      ],
    },
    {
      name: 'credentialName with a CRL (subset)',
      yaml: doc(
        'DestinationRule',
        'host: a.example.com\nsubsets:\n- name: v1\n  labels: {version: v1}\n  trafficPolicy: {tls: {mode: SIMPLE, credentialName: c, caCrl: /crl.pem}}',
      ),
      errors: [
        [
          'spec.subsets[0].trafficPolicy.tls',
          'cannot specify client certificates or CA certificate or CA CRL If credentialName is set',
        ],
      ],
    },
    {
      name: 'MUTUAL without a key in a subset port level',
      yaml: doc(
        'DestinationRule',
        'host: a.example.com\nsubsets:\n- name: v1\n  labels: {version: v1}\n  trafficPolicy:\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: MUTUAL, clientCertificate: /c.pem}',
      ),
      errors: [
        [
          'spec.subsets[0].trafficPolicy.portLevelSettings[0].tls.privateKey',
          'private key required for mutual tls',
        ],
      ],
    },
    {
      name: 'SIMPLE insecureSkipVerify with caCertificates (port level)',
      yaml: doc(
        'DestinationRule',
        'host: a.example.com\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 443}\n    tls: {mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem}',
      ),
      errors: [
        [
          'spec.trafficPolicy.portLevelSettings[0].tls',
          'cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true',
        ],
      ],
    },
    {
      name: 'SIMPLE insecureSkipVerify with subjectAltNames',
      yaml: dr('{mode: SIMPLE, insecureSkipVerify: true, subjectAltNames: [a.example.com]}'),
      errors: [
        [
          T,
          'cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true',
        ],
      ],
    },
    {
      name: 'SIMPLE insecureSkipVerify with a credentialName',
      yaml: dr('{mode: SIMPLE, insecureSkipVerify: true, credentialName: c}'),
      errors: [
        [
          T,
          'cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true',
        ],
      ],
    },
    {
      name: 'MUTUAL insecureSkipVerify with caCertificates',
      yaml: dr(
        '{mode: MUTUAL, insecureSkipVerify: true, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}',
      ),
      errors: [[T, 'cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true']],
    },
    {
      name: 'MUTUAL insecureSkipVerify with a credentialName',
      yaml: dr('{mode: MUTUAL, insecureSkipVerify: true, credentialName: c}'),
    },
    {
      name: 'insecureSkipVerify false with everything',
      yaml: dr('{mode: SIMPLE, insecureSkipVerify: false, caCertificates: /ca.pem, subjectAltNames: [a]}'),
    },
    {
      name: 'ISTIO_MUTUAL with certificate files',
      yaml: dr('{mode: ISTIO_MUTUAL, caCertificates: /ca.pem, insecureSkipVerify: true}'),
      warnings: [[`${T}.caCertificates`, 'ignored with mode ISTIO_MUTUAL']],
    },
  ]);
});

// ---------------------------------------------------------------- VirtualService tls routes

t.test('VirtualService tls routes (Istio validateTLSRoute, validateTLSMatch, validateSniHost)', async (t) => {
  run(t, 'VirtualService', [
    {
      name: 'a route without match',
      yaml: vs(`-${ROUTE.slice(1)}`),
      errors: [['spec.tls[0].match', 'TLS route must have at least one match condition']],
    },
    {
      name: 'a route with an empty match list',
      yaml: vs(`- match: []\n${ROUTE}`),
      errors: [['spec.tls[0].match', 'TLS route must have at least one match condition']],
    },
    {
      name: 'a route without destinations',
      yaml: vs('- match: [{sniHosts: [a.example.com]}]'),
      errors: [['spec.tls[0].route', 'TLS route is required']],
    },
    {
      name: 'a route with an empty destination list',
      yaml: vs('- match: [{sniHosts: [a.example.com]}]\n  route: []'),
      errors: [['spec.tls[0].route', 'TLS route is required']],
    },
    {
      name: 'a match without SNI hosts',
      yaml: vs(`- match: [{port: 443}]\n${ROUTE}`),
      errors: [['spec.tls[0].match[0].sniHosts', 'TLS match must have at least one SNI host']],
    },
    {
      name: 'a match with an empty SNI list',
      yaml: vs(`- match: [{sniHosts: []}]\n${ROUTE}`),
      errors: [['spec.tls[0].match[0].sniHosts', 'TLS match must have at least one SNI host']],
    },
    {
      name: 'SNI hosts outside the virtual service hosts',
      yaml: vs(
        `- match: [{sniHosts: [a.example.com, c.example.com, x.b.example.com, "*.example.com"]}]\n${ROUTE}`,
      ),
      errors: [
        [
          'spec.tls[0].match[0].sniHosts[1]',
          `SNI host "c.example.com" is not a compatible subset of any of the virtual service hosts: [a.example.com, *.b.example.com]`,
        ],
        [
          'spec.tls[0].match[0].sniHosts[3]',
          `SNI host "*.example.com" is not a compatible subset of any of the virtual service hosts: [a.example.com, *.b.example.com]`,
        ],
      ],
    },
    {
      name: 'a wildcard SNI host within a wildcard virtual service host',
      yaml: vs(`- match: [{sniHosts: ["*.x.b.example.com", "*.b.example.com"]}]\n${ROUTE}`),
    },
    {
      name: 'any SNI host within "*"',
      yaml: vs(`- match: [{sniHosts: ["*", a.example.org, "*.c.com"]}]\n${ROUTE}`, '["*"]'),
    },
    {
      name: 'an IP address as SNI is only a warning',
      yaml: vs(`- match: [{sniHosts: [10.0.0.1]}]\n${ROUTE}`),
      warnings: [
        [
          'spec.tls[0].match[0].sniHosts[0]',
          'using an IP address ("10.0.0.1") goes against SNI spec and most clients do not support this',
        ],
      ],
    },
    {
      name: 'a malformed SNI host',
      yaml: vs(`- match: [{sniHosts: ["a..example.com"]}]\n${ROUTE}`),
      errors: [
        ['spec.tls[0].match[0].sniHosts[0]', 'domain name "a..example.com" invalid (label "" invalid)'],
      ],
    },
    {
      name: "AUTO_PASSTHROUGH's SNI on a gateway virtual service",
      yaml: vs(`- match: [{sniHosts: [outbound_.80_._.e2e.foobar.mesh]}]\n${ROUTE}`, '["*.foobar.mesh"]'),
    },
    {
      name: "AUTO_PASSTHROUGH's SNI with a bad port",
      yaml: vs(`- match: [{sniHosts: [outbound_.http_._.e2e.foobar.mesh]}]\n${ROUTE}`, '["*.foobar.mesh"]'),
      errors: [
        [
          'spec.tls[0].match[0].sniHosts[0]',
          'domain name "outbound_.http_._.e2e.foobar.mesh" invalid (label "http" invalid). should follow outbound_.<PORT>_._.<HOSTNAME> format',
        ],
      ],
    },
    {
      name: "AUTO_PASSTHROUGH's SNI on a mesh virtual service",
      yaml: vs(
        `- match: [{sniHosts: [outbound_.80_._.e2e.foobar.mesh]}]\n${ROUTE}`,
        '["*.foobar.mesh"]',
        '[mesh]',
      ),
      errors: [
        [
          'spec.tls[0].match[0].sniHosts[0]',
          'domain name "outbound_.80_._.e2e.foobar.mesh" invalid (label "outbound_" invalid)',
        ],
      ],
    },
    {
      name: 'bad subnets, port and gateway name',
      yaml: vs(
        `- match: [{sniHosts: [a.example.com], destinationSubnets: [10.0.0.0/8, 10.0.0.0/33, nonsense, "2001:db8::/32"], port: 70000, gateways: [a/b/c]}]\n${ROUTE}`,
      ),
      errors: [
        ['spec.tls[0].match[0].destinationSubnets[1]', '10.0.0.0/33 is not a valid CIDR block'],
        ['spec.tls[0].match[0].destinationSubnets[2]', 'nonsense is not a valid IP'],
        ['spec.tls[0].match[0].port', 'port number 70000 must be in the range 1..65535'],
        [
          'spec.tls[0].match[0].gateways[0]',
          'invalid gateway name "a/b/c" (expected "mesh", "name" or "namespace/name")',
        ],
      ],
    },
    {
      name: 'bad source labels',
      yaml: vs(`- match: [{sniHosts: [a.example.com], sourceLabels: {"bad key!": v}}]\n${ROUTE}`),
      errors: [['spec.tls[0].match[0].sourceLabels.bad key!', 'invalid label key "bad key!"']],
    },
    {
      name: 'destinations without weight',
      yaml: vs(
        '- match: [{sniHosts: [a.example.com]}]\n  route:\n  - destination: {host: a.example.com, subset: v1}\n  - destination: {host: a.example.com, subset: v2}',
      ),
      errors: [
        [
          'spec.tls[0].route',
          'total destination weight = 0 (give at least one destination a positive weight)',
        ],
      ],
    },
    {
      name: 'a TCP route without destinations',
      yaml: doc('VirtualService', 'hosts: [db.example.com]\ntcp:\n- match: [{port: 5432}]'),
      errors: [['spec.tcp[0].route', 'TCP route is required']],
    },
  ]);
});

// ---------------------------------------------------------------- valid Istio samples

t.test('Istio TLS samples validate without errors or warnings', async (t) => {
  const cases: [string, string][] = [
    [
      'secure ingress: HTTPS SIMPLE with credentialName, and its VirtualService',
      [
        doc(
          'Gateway',
          'selector: {istio: ingressgateway}\nservers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  tls: {mode: SIMPLE, credentialName: httpbin-credential}\n  hosts: [httpbin.example.com]',
          'mygateway',
        ),
        doc(
          'VirtualService',
          'hosts: [httpbin.example.com]\ngateways: [mygateway]\nhttp:\n- match: [{uri: {prefix: /status}}]\n  route: [{destination: {port: {number: 8000}, host: httpbin}}]',
          'httpbin',
        ),
      ].join('---\n'),
    ],
    [
      'mutual TLS ingress with files, SANs and an HTTP redirect server',
      doc(
        'Gateway',
        'servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: [httpbin.example.com]\n  tls:\n    mode: MUTUAL\n    serverCertificate: /etc/istio/ingressgateway-certs/tls.crt\n    privateKey: /etc/istio/ingressgateway-certs/tls.key\n    caCertificates: /etc/istio/ingressgateway-ca-certs/ca-chain.cert.pem\n    subjectAltNames: [spiffe://cluster.local/ns/default/sa/client]\n    minProtocolVersion: TLSV1_2\n    maxProtocolVersion: TLSV1_3\n- port: {number: 80, name: http, protocol: HTTP}\n  hosts: [httpbin.example.com]\n  tls: {httpsRedirect: true}',
      ),
    ],
    [
      'OPTIONAL_MUTUAL with a credential and ISTIO_MUTUAL on a TLS port',
      doc(
        'Gateway',
        'servers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  hosts: ["*.example.com"]\n  tls: {mode: OPTIONAL_MUTUAL, credentialName: wildcard-cred, cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384]}\n- port: {number: 15443, name: tls, protocol: TLS}\n  hosts: ["*.local"]\n  tls: {mode: ISTIO_MUTUAL}',
      ),
    ],
    [
      'SNI passthrough: PASSTHROUGH server and a VirtualService tls route',
      [
        doc(
          'Gateway',
          'selector: {istio: ingressgateway}\nservers:\n- port: {number: 443, name: https, protocol: HTTPS}\n  tls: {mode: PASSTHROUGH}\n  hosts: [nginx.example.com]',
          'mygateway',
        ),
        doc(
          'VirtualService',
          'hosts: [nginx.example.com]\ngateways: [mygateway]\ntls:\n- match:\n  - port: 443\n    sniHosts: [nginx.example.com]\n  route:\n  - destination: {host: my-nginx, port: {number: 443}}',
          'nginx',
        ),
      ].join('---\n'),
    ],
    [
      'mesh tls route with subnets and weights',
      doc(
        'VirtualService',
        'hosts: ["*.wikipedia.org"]\ntls:\n- match: [{port: 443, sniHosts: [en.wikipedia.org], destinationSubnets: [10.0.0.0/8, "2001:db8::/32", 192.168.1.1]}]\n  route:\n  - {destination: {host: en.wikipedia.org}, weight: 80}\n  - {destination: {host: de.wikipedia.org}, weight: 20}',
      ),
    ],
    [
      'egress TLS origination: portLevelSettings SIMPLE with sni',
      doc(
        'DestinationRule',
        'host: edition.cnn.com\ntrafficPolicy:\n  portLevelSettings:\n  - port: {number: 80}\n    tls: {mode: SIMPLE, sni: edition.cnn.com, caCertificates: /etc/certs/ca.pem}',
      ),
    ],
    [
      'origination MUTUAL with files, in a subset too',
      doc(
        'DestinationRule',
        'host: my-nginx.mesh-external.svc.cluster.local\ntrafficPolicy:\n  loadBalancer: {simple: ROUND_ROBIN}\n  portLevelSettings:\n  - port: {number: 443}\n    tls:\n      mode: MUTUAL\n      clientCertificate: /etc/certs/client.crt\n      privateKey: /etc/certs/client.key\n      caCertificates: /etc/certs/ca.crt\n      caCrl: /etc/certs/ca.crl\n      sni: my-nginx.mesh-external.svc.cluster.local\n      subjectAltNames: [my-nginx.mesh-external.svc.cluster.local]\nsubsets:\n- name: v1\n  labels: {version: v1}\n  trafficPolicy: {tls: {mode: MUTUAL, credentialName: client-credential}}',
      ),
    ],
    [
      'origination with insecureSkipVerify and nothing to verify with',
      doc(
        'DestinationRule',
        'host: a.example.com\ntrafficPolicy: {tls: {mode: SIMPLE, insecureSkipVerify: true, sni: a}}',
      ),
    ],
  ];
  for (const [name, yaml] of cases) {
    const r = load(t, yaml);
    t.same(r.errors, [], `${name}: no errors`);
    t.same(r.warnings, [], `${name}: no warnings`);
    t.ok(r.resources >= 1, `${name}: loads`);
  }
});

t.test('courier validate prints TLS errors and exits 1; a warning alone exits 0', async (t) => {
  const bad = t.testdir({ 'gw.yaml': gw('{mode: SIMPLE, serverCertificate: /c.pem}') });
  const out: string[] = [];
  t.equal(validateCommand([bad], { out: (l) => out.push(l), err: () => {} }), 1);
  t.match(
    out.join('\n'),
    /gw\.yaml\[0\] Gateway\/default\/r: spec\.servers\[0\]\.tls\.privateKey: SIMPLE TLS requires a private key/,
  );

  const warn = t.testdir({ 'gw.yaml': gw('{credentialName: x}') });
  const err: string[] = [];
  t.equal(validateCommand([warn], { out: () => {}, err: (l) => err.push(l) }), 0);
  t.match(
    err.join('\n'),
    /warning: .*gw\.yaml\[0\] Gateway\/default\/r: spec\.servers\[0\]\.tls: PASSTHROUGH mode does not use certificates, they will be ignored/,
  );
});
