// Gateway validation, after Istio's pkg/config/validation (validateServer, validateServerPort, validateTLSOptions).

import { type Checker, isDns1123Label, isIP, type Obj, wildcardDomainError } from './checker.js';

export const GATEWAY_PROTOCOLS = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'TCP', 'TLS', 'REDIS'] as const;
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
  servers?.forEach((s, i) => {
    const p = `spec.servers[${i}]`;
    const so = c.obj(s, p, true);
    if (!so) return;
    const port = c.obj(so.port, `${p}.port`, true);
    let protocol: string | undefined;
    if (port) {
      c.port(port.number, `${p}.port.number`, true);
      const proto = c.str(port.protocol, `${p}.port.protocol`, true);
      if (proto !== undefined) {
        protocol = proto.toUpperCase();
        if (!(GATEWAY_PROTOCOLS as readonly string[]).includes(protocol))
          c.err(`${p}.port.protocol`, `unsupported protocol ${JSON.stringify(proto)}`);
      }
      c.str(port.name, `${p}.port.name`);
      c.port(port.targetPort, `${p}.port.targetPort`);
    }
    const hosts = c.strList(so.hosts, `${p}.hosts`, true);
    hosts.forEach((h, j) => {
      const hp = `${p}.hosts[${j}]`;
      const parts = h.split('/');
      if (parts.length > 2) {
        c.err(hp, `invalid host ${JSON.stringify(h)} (expected [namespace/]dnsName)`);
        return;
      }
      const [ns, dns] = parts.length === 2 ? [parts[0] as string, parts[1] as string] : ['*', parts[0] as string];
      if (ns !== '*' && ns !== '.' && !isDns1123Label(ns)) c.err(hp, `invalid namespace ${JSON.stringify(ns)} in host`);
      if (isIP(dns)) return;
      const e = wildcardDomainError(dns);
      if (e) c.err(hp, e);
    });
    const name = c.str(so.name, `${p}.name`);
    if (name) {
      const prev = names.get(name);
      if (prev !== undefined) c.err(`${p}.name`, `server name "${name}" is not unique (also spec.servers[${prev}])`);
      else names.set(name, i);
    }
    const bind = c.str(so.bind, `${p}.bind`);
    if (bind !== undefined && bind !== '' && !isIP(bind) && !bind.startsWith('unix://'))
      c.err(`${p}.bind`, `${JSON.stringify(bind)} must be an IP address or a unix:// socket`);
    validateServerTls(c, so.tls, `${p}.tls`, protocol);
  });
}

function validateServerTls(c: Checker, v: unknown, path: string, protocol: string | undefined): void {
  const t = c.obj(v, path);
  if (!t) {
    if (protocol === 'HTTPS' || protocol === 'TLS') c.err(path, `server must have TLS settings for ${protocol} protocol`);
    return;
  }
  c.bool(t.httpsRedirect, `${path}.httpsRedirect`);
  const mode = c.oneOf(t.mode, `${path}.mode`, SERVER_TLS_MODES);
  const hasCreds = t.credentialName !== undefined || t.credentialNames !== undefined;
  if ((mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') && !hasCreds) {
    if (t.serverCertificate === undefined)
      c.err(`${path}.serverCertificate`, `is required for mode ${mode} (or set credentialName)`);
    if (t.privateKey === undefined) c.err(`${path}.privateKey`, `is required for mode ${mode} (or set credentialName)`);
    if (mode !== 'SIMPLE' && t.caCertificates === undefined)
      c.err(`${path}.caCertificates`, `is required for mode ${mode} (or set credentialName)`);
  }
  if (mode === 'ISTIO_MUTUAL') {
    for (const k of ['serverCertificate', 'privateKey', 'caCertificates', 'credentialName'])
      if (t[k] !== undefined) c.err(`${path}.${k}`, 'cannot be set with mode ISTIO_MUTUAL');
  }
  for (const k of ['minProtocolVersion', 'maxProtocolVersion'])
    c.oneOf(t[k], `${path}.${k}`, ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3']);
}
