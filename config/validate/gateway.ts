// Gateway validation, after Istio's pkg/config/validation (ValidateGateway, validateServer,
// validateServerPort, validateServerBind, validateTLSOptions).

import { type Checker, isDns1123Label, isIP, type Obj, wildcardDomainError } from './checker.js';

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

function validateServerTls(c: Checker, v: unknown, path: string, protocol: string | undefined): void {
  const t = c.obj(v, path);
  if (!t) {
    if (protocol !== undefined && TLS_FAMILY.has(protocol))
      c.err(path, `server must have TLS settings for ${protocol} protocol`);
    return;
  }
  const set = (k: string) => {
    const x = t[k];
    return x !== undefined && x !== null && x !== '' && !(Array.isArray(x) && x.length === 0);
  };
  const redirect = c.bool(t.httpsRedirect, `${path}.httpsRedirect`);
  const mode =
    c.oneOf(t.mode, `${path}.mode`, SERVER_TLS_MODES) ?? (t.mode === undefined ? 'PASSTHROUGH' : undefined);
  const certFields = ['serverCertificate', 'privateKey', 'caCertificates'];
  if (protocol !== undefined && !TLS_FAMILY.has(protocol)) {
    if (!HTTP_FAMILY.has(protocol)) c.err(path, `server cannot have TLS settings for ${protocol} ports`);
    else if ((mode !== 'PASSTHROUGH' && mode !== 'AUTO_PASSTHROUGH') || certFields.some(set))
      c.err(path, 'server cannot have TLS settings for plain text HTTP ports (only httpsRedirect)');
    return;
  }
  if (redirect && protocol !== undefined && !HTTP_FAMILY.has(protocol))
    c.warn(`${path}.httpsRedirect`, 'httpsRedirect should only be used with HTTP servers');
  if (mode === 'ISTIO_MUTUAL') {
    for (const k of [...certFields, 'tlsCertificates', 'credentialName', 'credentialNames'])
      if (set(k)) c.err(`${path}.${k}`, 'cannot be set with mode ISTIO_MUTUAL');
    checkProtocolVersions(c, t, path);
    return;
  }
  const certSources = [
    set('serverCertificate') && set('privateKey'),
    set('credentialName'),
    set('credentialNames'),
    set('tlsCertificates'),
  ].filter(Boolean).length;
  if (mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH') {
    if ([...certFields, 'caCrl', 'tlsCertificates', 'credentialName', 'credentialNames'].some(set))
      c.warn(path, `${mode} mode does not use certificates; they are ignored`);
  }
  if (certSources > 1)
    c.err(
      path,
      'only one of credentialName, credentialNames, serverCertificate/privateKey, tlsCertificates may be set',
    );
  const needsCert = mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL';
  if (needsCert && !set('credentialName') && !set('credentialNames')) {
    if (mode !== 'SIMPLE' && !set('caCertificates'))
      c.err(`${path}.caCertificates`, `is required for mode ${mode} (or set credentialName)`);
    const certs = c.arr(t.tlsCertificates, `${path}.tlsCertificates`);
    if (certs && certs.length > 0) {
      certs.forEach((cert, i) => {
        const cp = `${path}.tlsCertificates[${i}]`;
        const co = c.obj(cert, cp, true);
        if (!co) return;
        c.str(co.serverCertificate, `${cp}.serverCertificate`, true);
        c.str(co.privateKey, `${cp}.privateKey`, true);
      });
      if (certs.length > 2) c.warn(`${path}.tlsCertificates`, 'at most 2 server certificates are used');
    } else {
      if (!set('serverCertificate'))
        c.err(`${path}.serverCertificate`, `is required for mode ${mode} (or set credentialName)`);
      if (!set('privateKey'))
        c.err(`${path}.privateKey`, `is required for mode ${mode} (or set credentialName)`);
    }
  }
  const creds = c.strList(t.credentialNames, `${path}.credentialNames`);
  if (creds.length > 2)
    c.err(`${path}.credentialNames`, 'at most 2 credential names (one RSA, one ECDSA) may be set');
  if (set('caCrl')) {
    if (set('credentialName'))
      c.err(`${path}.caCrl`, 'CRL is not supported with credentialName (put it in the credential)');
    if (mode === 'SIMPLE') c.err(`${path}.caCrl`, 'CRL is not supported with SIMPLE TLS');
  }
  for (const k of [...certFields, 'credentialName', 'caCrl']) c.str(t[k], `${path}.${k}`);
  checkProtocolVersions(c, t, path);
}

function checkProtocolVersions(c: Checker, t: Obj, path: string): void {
  for (const k of ['minProtocolVersion', 'maxProtocolVersion'])
    c.oneOf(t[k], `${path}.${k}`, ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3']);
}
