// Gateway validation, after Istio's pkg/config/validation (ValidateGateway, validateServer,
// validateServerPort, validateServerBind, validateTLSOptions).

import { type Checker, isDns1123Label, isIP, isObj, type Obj, wildcardDomainError } from './checker.js';

/** Protocols Istio's protocol.Parse knows (case-insensitive). courier serves the HTTP family. */
export const GATEWAY_PROTOCOLS = [
  'HTTP',
  'HTTPS',
  'GRPC',
  'GRPC-WEB',
  'HTTP2',
  'HTTP_PROXY',
  'MONGO',
  'MYSQL',
  'REDIS',
  'TCP',
  'TLS',
  'UDP',
] as const;
const HTTP_FAMILY = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB', 'HTTP_PROXY']);
const TLS_FAMILY = new Set(['HTTPS', 'TLS']);
const SERVER_TLS_MODES = [
  'PASSTHROUGH',
  'SIMPLE',
  'MUTUAL',
  'AUTO_PASSTHROUGH',
  'ISTIO_MUTUAL',
  'OPTIONAL_MUTUAL',
] as const;

export function validateGateway(c: Checker, spec: Obj): void {
  c.labels(spec.selector, 'spec.selector');
  const servers = c.arr(spec.servers, 'spec.servers', true);
  const names = new Map<string, number>();
  const portNames = new Map<string, number>();
  servers?.forEach((s, i) => {
    const p = `spec.servers[${i}]`;
    const so = c.obj(s, p, true);
    if (!so) return;
    const bind = c.str(so.bind, `${p}.bind`);
    const unix = bind?.startsWith('unix://') === true;
    const port = c.obj(so.port, `${p}.port`, true);
    let protocol: string | undefined;
    if (port) {
      if (unix) {
        if (port.number !== undefined && port.number !== 0)
          c.err(`${p}.port.number`, 'port number must be 0 for a unix domain socket bind');
      } else c.port(port.number, `${p}.port.number`, true);
      const proto = c.str(port.protocol, `${p}.port.protocol`, true);
      if (proto !== undefined) {
        protocol = proto.toUpperCase();
        if (!(GATEWAY_PROTOCOLS as readonly string[]).includes(protocol)) {
          c.err(
            `${p}.port.protocol`,
            `unsupported protocol ${JSON.stringify(proto)} (expected one of ${GATEWAY_PROTOCOLS.join(', ')})`,
          );
          protocol = undefined;
        }
      }
      const pname = c.str(port.name, `${p}.port.name`, true);
      if (pname !== undefined) {
        const prev = portNames.get(pname);
        if (prev !== undefined)
          c.err(
            `${p}.port.name`,
            `port names in servers must be unique: "${pname}" is also spec.servers[${prev}]`,
          );
        else portNames.set(pname, i);
      }
      if (port.targetPort !== undefined && port.targetPort !== null && port.targetPort !== 0)
        c.err(`${p}.port.targetPort`, 'targetPort has no impact on Gateways');
    }
    c.strList(so.hosts, `${p}.hosts`, true).forEach((h, j) => {
      checkGatewayHost(c, h, `${p}.hosts[${j}]`);
    });
    const name = c.str(so.name, `${p}.name`);
    if (name) {
      const prev = names.get(name);
      if (prev !== undefined)
        c.err(`${p}.name`, `server name "${name}" is not unique (also spec.servers[${prev}])`);
      else names.set(name, i);
    }
    if (bind !== undefined && bind !== '' && !isIP(bind) && !unix)
      c.err(`${p}.bind`, `${JSON.stringify(bind)} must be an IP address or a unix:// socket`);
    validateServerTls(c, so.tls, `${p}.tls`, protocol);
  });
}

/** `[namespace/]dnsName` (Istio ValidateNamespaceSlashWildcardHostname for gateways). */
function checkGatewayHost(c: Checker, h: string, path: string): void {
  const slash = h.indexOf('/');
  const [ns, dns] = slash >= 0 ? [h.slice(0, slash), h.slice(slash + 1)] : [undefined, h];
  if (ns !== undefined) {
    if (ns === '' || dns === '') {
      c.err(path, `invalid host ${JSON.stringify(h)}: namespace and dnsName cannot be empty`);
      return;
    }
    if (ns !== '*' && ns !== '.' && !isDns1123Label(ns))
      c.err(path, `invalid namespace ${JSON.stringify(ns)} in host`);
  }
  if (isIP(dns)) return;
  const e = wildcardDomainError(dns);
  if (e) {
    c.err(path, e);
    return;
  }
  if (dns !== '*' && !dns.includes('.'))
    c.err(path, `short name ${JSON.stringify(dns)} is not allowed: use a fully qualified host name`);
  else if (dns.includes('*') && dns !== '*' && !dns.startsWith('*.'))
    c.err(path, `partial wildcard ${JSON.stringify(dns)} is not allowed`);
}

const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'] as const;

/** Istio's ValidCipherSuites (pkg/config/security): the TLS <= 1.2 suites a gateway accepts by name. */
export const VALID_CIPHER_SUITES: ReadonlySet<string> = new Set([
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-ECDSA-AES128-SHA',
  'ECDHE-RSA-AES128-SHA',
  'ECDHE-ECDSA-AES256-SHA',
  'ECDHE-RSA-AES256-SHA',
  'AES128-GCM-SHA256',
  'AES256-GCM-SHA384',
  'AES128-SHA',
  'AES256-SHA',
  'DES-CBC3-SHA',
]);

/**
 * Istio IsValidCipherSuite: a known name, `ALL`, or an entry that starts with neither a letter nor
 * a digit (OpenSSL operators such as `-X`, `+X`, `!X`, which Istio does not parse).
 */
export function isValidCipherSuite(cs: string): boolean {
  if (cs === '' || cs === 'ALL') return true;
  if (!/^[A-Za-z0-9]/.test(cs)) return true;
  return VALID_CIPHER_SUITES.has(cs);
}

/** Go's `%v` of a sorted string list: `[a b]`. */
function goList(items: Iterable<string>): string {
  return `[${[...items].sort().join(' ')}]`;
}

/** Set as Istio's Go structs see it: a non-empty string or list. */
function present(x: unknown): boolean {
  return x !== undefined && x !== null && x !== '' && !(Array.isArray(x) && x.length === 0);
}

/** Envoy: a verify_certificate_spki entry is the base64 of a SHA-256 digest (32 bytes). */
function isSpki(s: string): boolean {
  return /^[A-Za-z0-9+/]{43}=$/.test(s) && Buffer.from(s, 'base64').length === 32;
}

/** Envoy: a verify_certificate_hash entry is a hex SHA-256, or the 95-character colon-separated form. */
function isCertHash(s: string): boolean {
  return /^[0-9A-Fa-f]{64}$/.test(s) || /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){31}$/.test(s);
}

/**
 * A server's `tls` (Istio validateServer's TLS part and validateTLSOptions, with Istio's messages),
 * plus the shapes Envoy would reject (certificate pins, protocol version order).
 */
function validateServerTls(c: Checker, v: unknown, path: string, protocol: string | undefined): void {
  const t = c.obj(v, path);
  const tlsProtocol = protocol !== undefined && TLS_FAMILY.has(protocol);
  if (!t) {
    if (tlsProtocol) c.err(path, 'server must have TLS settings for HTTPS/TLS protocols');
    return;
  }
  const set = (k: string) => present(t[k]);
  const redirect = c.bool(t.httpsRedirect, `${path}.httpsRedirect`);
  // The mode enum's zero value is PASSTHROUGH: a `tls` without `mode` passes TLS through.
  const mode =
    t.mode === undefined || t.mode === null
      ? 'PASSTHROUGH'
      : c.oneOf(t.mode, `${path}.mode`, SERVER_TLS_MODES);
  validateTlsOptions(c, t, path, mode);
  if (protocol !== undefined && !tlsProtocol) {
    if (HTTP_FAMILY.has(protocol)) {
      // Only a redirect: a passthrough-mode `tls` without certificates.
      const passthrough = mode === undefined || mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH';
      if (!passthrough || set('caCertificates') || set('privateKey') || set('serverCertificate'))
        c.err(path, 'server cannot have TLS settings for plain text HTTP ports');
    } else c.err(path, 'server cannot have TLS settings for non HTTPS/TLS ports');
  }
  if (redirect === true && protocol !== undefined && !HTTP_FAMILY.has(protocol))
    c.warn(`${path}.httpsRedirect`, 'tls.httpsRedirect should only be used with http servers');
}

/** Istio validateTLSOptions: what a server's TLS settings must hold, whatever its protocol. */
function validateTlsOptions(c: Checker, t: Obj, path: string, mode: string | undefined): void {
  const set = (k: string) => present(t[k]);
  for (const k of [
    'serverCertificate',
    'privateKey',
    'caCertificates',
    'caCrl',
    'credentialName',
    'caCertCredentialName',
  ])
    c.str(t[k], `${path}.${k}`);
  const credentialNames = c.strList(t.credentialNames, `${path}.credentialNames`);
  if (credentialNames.length > 2)
    c.err(`${path}.credentialNames`, 'at most 2 credential names (one RSA, one ECDSA) may be set');
  c.strList(t.subjectAltNames, `${path}.subjectAltNames`);
  c.strList(t.verifyCertificateSpki, `${path}.verifyCertificateSpki`).forEach((h, i) => {
    if (!isSpki(h)) c.err(`${path}.verifyCertificateSpki[${i}]`, `Invalid base64-encoded SHA-256 ${h}`);
  });
  c.strList(t.verifyCertificateHash, `${path}.verifyCertificateHash`).forEach((h, i) => {
    if (!isCertHash(h)) c.err(`${path}.verifyCertificateHash[${i}]`, `Invalid hex-encoded SHA-256 ${h}`);
  });

  const ciphers = c.strList(t.cipherSuites, `${path}.cipherSuites`);
  const min = c.oneOf(t.minProtocolVersion, `${path}.minProtocolVersion`, TLS_VERSIONS);
  const max = c.oneOf(t.maxProtocolVersion, `${path}.maxProtocolVersion`, TLS_VERSIONS);
  if ((min === 'TLSV1_0' || min === 'TLSV1_1') && ciphers.length === 0)
    c.warn(
      `${path}.minProtocolVersion`,
      'TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.',
    );
  // Not in Istio's validation: Envoy (and Node) cannot build a context whose range is empty.
  if (
    min !== undefined &&
    max !== undefined &&
    min !== 'TLS_AUTO' &&
    max !== 'TLS_AUTO' &&
    TLS_VERSIONS.indexOf(min) > TLS_VERSIONS.indexOf(max)
  )
    c.err(`${path}.maxProtocolVersion`, `maxProtocolVersion ${max} is lower than minProtocolVersion ${min}`);
  const invalid = new Set<string>();
  const valid = new Set<string>();
  const duplicate = new Set<string>();
  for (const cs of ciphers) {
    if (!isValidCipherSuite(cs)) invalid.add(cs);
    else if (valid.has(cs)) duplicate.add(cs);
    else valid.add(cs);
  }
  if (invalid.size > 0) c.warn(`${path}.cipherSuites`, `ignoring invalid cipher suites: ${goList(invalid)}`);
  if (duplicate.size > 0)
    c.warn(`${path}.cipherSuites`, `ignoring duplicate cipher suites: ${goList(duplicate)}`);

  const certs = c.arr(t.tlsCertificates, `${path}.tlsCertificates`) ?? [];
  certs.forEach((x, i) => {
    const cp = `${path}.tlsCertificates[${i}]`;
    const co = c.obj(x, cp, true);
    if (co) for (const k of ['serverCertificate', 'privateKey', 'caCertificates']) c.str(co[k], `${cp}.${k}`);
  });

  if (mode === 'ISTIO_MUTUAL') {
    // The gateway's workload certificate is used: any other certificate source is a mistake.
    const what: [string, string][] = [
      ['serverCertificate', 'server certificate'],
      ['privateKey', 'private key'],
      ['caCertificates', 'CA bundle'],
      ['tlsCertificates', 'tlsCertificates'],
      ['credentialName', 'credentialName'],
      ['credentialNames', 'credentialNames'],
    ];
    for (const [k, name] of what)
      if (set(k)) c.err(`${path}.${k}`, `ISTIO_MUTUAL TLS cannot have associated ${name}`);
    return;
  }
  if (
    (mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH') &&
    [
      'caCrl',
      'serverCertificate',
      'privateKey',
      'caCertificates',
      'tlsCertificates',
      'credentialName',
      'credentialNames',
    ].some(set)
  )
    // Istio only warns (backwards compatibility). An HTTPS server with a credentialName and no
    // mode is PASSTHROUGH: it does not terminate TLS, and this is how its author learns it.
    c.warn(path, `${mode} mode does not use certificates, they will be ignored`);

  const sources = [
    set('serverCertificate') && set('privateKey'),
    set('credentialName'),
    set('credentialNames'),
    set('tlsCertificates'),
  ].filter(Boolean).length;
  if (sources > 1)
    c.err(
      path,
      'only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified',
    );

  const terminating = mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL';
  if (terminating && (set('credentialName') || set('credentialNames'))) {
    // Certificates (and the CA) come from the credential. Istio stops here, so it accepts a file
    // CRL next to a credential; courier warns that the file is not used.
    if (set('caCrl')) {
      if (set('credentialName'))
        c.warn(
          `${path}.caCrl`,
          'CRL is not supported with credentialName. CRL has to be specified in the credential',
        );
      if (mode === 'SIMPLE') c.warn(`${path}.caCrl`, 'CRL is not supported with SIMPLE TLS');
    }
    return;
  }
  if (terminating) {
    const prefix = mode === 'SIMPLE' ? 'SIMPLE TLS' : 'MUTUAL TLS';
    if (mode !== 'SIMPLE' && !set('caCertificates'))
      c.err(`${path}.caCertificates`, `${prefix} requires a client CA bundle`);
    if (certs.length > 2)
      c.warn(`${path}.tlsCertificates`, `${prefix} can support up to 2 server certificates`);
    if (certs.length > 0)
      certs.forEach((co, i) => {
        if (!isObj(co)) return;
        const cp = `${path}.tlsCertificates[${i}]`;
        if (!present(co.serverCertificate))
          c.err(`${cp}.serverCertificate`, `${prefix} requires a server certificate`);
        if (!present(co.privateKey)) c.err(`${cp}.privateKey`, `${prefix} requires a private key`);
      });
    else {
      if (!set('serverCertificate'))
        c.err(`${path}.serverCertificate`, `${prefix} requires a server certificate`);
      if (!set('privateKey')) c.err(`${path}.privateKey`, `${prefix} requires a private key`);
    }
  }
  if (set('caCrl')) {
    if (set('credentialName'))
      c.err(
        `${path}.caCrl`,
        'CRL is not supported with credentialName. CRL has to be specified in the credential',
      );
    if (mode === 'SIMPLE') c.err(`${path}.caCrl`, 'CRL is not supported with SIMPLE TLS');
  }
}
