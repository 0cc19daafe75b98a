// ServiceEntry, WorkloadEntry and Sidecar validation, after Istio's pkg/config/validation.

import {
  type Checker,
  isCIDR,
  isDns1123Label,
  isIP,
  keyPath,
  type Obj,
  wildcardDomainError,
} from './checker.js';

const RESOLUTIONS = ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS'] as const;
/** Istio's protocol.Parse names (case-insensitive). */
const PORT_PROTOCOLS = [
  'HTTP',
  'HTTPS',
  'GRPC',
  'GRPC-WEB',
  'HTTP2',
  'HTTP_PROXY',
  'MONGO',
  'TCP',
  'TLS',
  'UDP',
  'REDIS',
  'MYSQL',
];
const HTTP_OR_TLS = new Set(['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'HTTP_PROXY', 'TLS']);

/** Istio ValidatePortName: a DNS-1123 label (either case). */
function checkPortName(c: Checker, name: string, path: string): void {
  if (!isDns1123Label(name.toLowerCase())) c.err(path, `invalid port name ${JSON.stringify(name)}`);
}

export function validateServiceEntry(c: Checker, spec: Obj): void {
  const hosts = c.strList(spec.hosts, 'spec.hosts', true);
  const resolution = c.oneOf(spec.resolution, 'spec.resolution', RESOLUTIONS) ?? 'NONE';
  c.oneOf(spec.location, 'spec.location', ['MESH_EXTERNAL', 'MESH_INTERNAL']);
  const hasEndpoints = Array.isArray(spec.endpoints) && spec.endpoints.length > 0;
  hosts.forEach((h, i) => {
    const p = `spec.hosts[${i}]`;
    if (h === '*') {
      c.err(p, 'invalid host * (a service entry cannot match every host)');
      return;
    }
    const e = wildcardDomainError(h);
    if (e) {
      c.err(p, e);
      return;
    }
    const wildcard = h.startsWith('*');
    if (wildcard && (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && !hasEndpoints)
      c.err(p, `wildcard host ${h} is not allowed with resolution ${resolution} and no endpoints`);
    if (resolution === 'DYNAMIC_DNS' && !wildcard)
      c.err(p, 'host must be wildcarded for resolution mode DYNAMIC_DNS');
    if (resolution !== 'DYNAMIC_DNS' && wildcard && !h.startsWith('*.'))
      c.warn(p, `partial wildcard ${JSON.stringify(h)} not allowed`);
  });
  const addresses = c.strList(spec.addresses, 'spec.addresses');
  addresses.forEach((a, i) => {
    if (!isCIDR(a))
      c.err(`spec.addresses[${i}]`, `invalid address ${JSON.stringify(a)} (expected an IP or CIDR)`);
  });
  if (addresses.some((a) => a.includes('/')) && resolution !== 'NONE' && resolution !== 'STATIC')
    c.err('spec.addresses', 'CIDR addresses are allowed only for NONE/STATIC resolution types');
  if (resolution === 'DYNAMIC_DNS') {
    if (addresses.length > 0)
      c.err('spec.addresses', 'addresses cannot be set for resolution type DYNAMIC_DNS');
    if (hasEndpoints) c.err('spec.endpoints', 'endpoints cannot be set for resolution type DYNAMIC_DNS');
  }
  if (resolution === 'DNS_ROUND_ROBIN' && Array.isArray(spec.endpoints) && spec.endpoints.length > 1)
    c.err('spec.endpoints', 'there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN');
  const portProtocols: (string | undefined)[] = [];
  const portNames = new Set<string>();
  const portNumbers = new Set<number>();
  c.arr(spec.ports, 'spec.ports')?.forEach((pv, i) => {
    const p = `spec.ports[${i}]`;
    const po = c.obj(pv, p, true);
    if (!po) return;
    const n = c.port(po.number, `${p}.number`, true);
    if (n !== undefined) {
      if (portNumbers.has(n)) c.err(`${p}.number`, `service entry port ${n} already defined`);
      portNumbers.add(n);
    }
    const name = c.str(po.name, `${p}.name`, true);
    if (name !== undefined) {
      checkPortName(c, name, `${p}.name`);
      if (portNames.has(name)) c.err(`${p}.name`, `service entry port name "${name}" already defined`);
      portNames.add(name);
    }
    const proto = c.str(po.protocol, `${p}.protocol`);
    const upper = proto?.toUpperCase();
    portProtocols.push(upper);
    if (upper && !PORT_PROTOCOLS.includes(upper))
      c.err(`${p}.protocol`, `unsupported protocol ${JSON.stringify(proto)}`);
    else if (resolution === 'DYNAMIC_DNS' && !['HTTP', 'TLS', 'GRPC', 'HTTP2'].includes(upper ?? ''))
      c.err(
        `${p}.protocol`,
        'only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type DYNAMIC_DNS',
      );
    if (po.targetPort !== 0) c.port(po.targetPort, `${p}.targetPort`);
  });
  const endpoints = c.arr(spec.endpoints, 'spec.endpoints');
  const ws = c.obj(spec.workloadSelector, 'spec.workloadSelector');
  if (ws) c.labels(ws.labels, 'spec.workloadSelector.labels');
  if (ws && endpoints && endpoints.length > 0)
    c.err('spec', 'only one of workloadSelector or endpoints is allowed in a service entry');
  if (resolution === 'NONE' && endpoints && endpoints.length > 0)
    c.err('spec.endpoints', 'no endpoints should be provided for resolution type NONE');
  // Istio accepts this (its own tests call it valid), but nothing can be routed to such a service.
  if (resolution === 'STATIC' && (!endpoints || endpoints.length === 0) && !ws)
    c.warn(
      'spec.endpoints',
      'resolution STATIC with no endpoints and no workloadSelector: the service has no endpoints',
    );
  if (resolution !== 'NONE' && hosts.length > 1 && portProtocols.some((x) => !x || !HTTP_OR_TLS.has(x)))
    c.err(
      'spec.ports',
      'multiple hosts provided with non-HTTP, non-TLS ports (only resolution NONE allows that)',
    );
  endpoints?.forEach((e, i) => {
    const p = `spec.endpoints[${i}]`;
    validateWorkloadEntryBody(c, e, p, {
      requireAddress: true,
      staticIP: resolution === 'STATIC',
      portNames,
      portCount: portNames.size,
    });
  });
  c.strList(spec.exportTo, 'spec.exportTo');
  c.strList(spec.subjectAltNames, 'spec.subjectAltNames');
}

export function validateWorkloadEntry(c: Checker, spec: Obj): void {
  validateWorkloadEntryBody(c, spec, 'spec', { requireAddress: spec.network === undefined, staticIP: false });
}

function validateWorkloadEntryBody(
  c: Checker,
  v: unknown,
  path: string,
  opts: { requireAddress: boolean; staticIP: boolean; portNames?: Set<string>; portCount?: number },
): void {
  const we = c.obj(v, path, true);
  if (!we) return;
  const addr = c.str(we.address, `${path}.address`, opts.requireAddress);
  const unix = addr?.startsWith('unix://') === true;
  if (unix) {
    const sock = (addr as string).slice('unix://'.length);
    if (!sock.startsWith('/') && !sock.startsWith('@'))
      c.err(`${path}.address`, 'unix domain socket must be an absolute path or an abstract socket (@name)');
    else if (sock.endsWith('/')) c.err(`${path}.address`, 'unix domain socket path may not be a directory');
  }
  if (addr !== undefined && addr !== '' && !unix) {
    if (opts.staticIP && !isIP(addr))
      c.err(`${path}.address`, `endpoint address ${JSON.stringify(addr)} is not a valid IP address`);
    else if (!isIP(addr) && (wildcardDomainError(addr) || addr.includes('*')))
      c.err(
        `${path}.address`,
        `endpoint address ${JSON.stringify(addr)} is not a valid FQDN or an IP address`,
      );
  }
  const ports = c.obj(we.ports, `${path}.ports`);
  if (ports) {
    if (unix && Object.keys(ports).length > 0)
      c.err(`${path}.ports`, `unix endpoint ${addr} must not include ports`);
    for (const [k, n] of Object.entries(ports)) {
      const kp = keyPath(`${path}.ports`, k);
      c.port(n, kp, true);
      checkPortName(c, k, kp);
      if (opts.portNames && !opts.portNames.has(k))
        c.err(
          kp,
          `endpoint port ${k} is not defined by the service entry (declared: ${[...opts.portNames].join(', ') || 'none'})`,
        );
    }
  }
  if (unix && opts.portCount !== undefined && opts.portCount !== 1)
    c.err(`${path}.address`, 'exactly 1 service port is required for unix endpoints');
  c.labels(we.labels, `${path}.labels`);
  c.int(we.weight, `${path}.weight`, { min: 0 });
  c.str(we.locality, `${path}.locality`);
  c.str(we.network, `${path}.network`);
  c.str(we.serviceAccount, `${path}.serviceAccount`);
}

export function validateSidecar(c: Checker, spec: Obj): void {
  const ws = c.obj(spec.workloadSelector, 'spec.workloadSelector');
  if (ws) {
    c.labels(ws.labels, 'spec.workloadSelector.labels');
    if (!isObjWithKeys(ws.labels))
      c.warn(
        'spec.workloadSelector',
        'workload selector without labels: applies to every workload in the namespace',
      );
  }
  const ingress = c.arr(spec.ingress, 'spec.ingress');
  const egress = c.arr(spec.egress, 'spec.egress');
  if (
    !ingress?.length &&
    !egress?.length &&
    spec.outboundTrafficPolicy == null &&
    spec.inboundConnectionPool == null
  )
    c.err('spec', 'sidecar: empty configuration provided');
  const ingressPorts = new Set<number>();
  ingress?.forEach((iv, i) => {
    const p = `spec.ingress[${i}]`;
    const io = c.obj(iv, p, true);
    if (!io) return;
    const port = c.obj(io.port, `${p}.port`, true);
    const n = port ? checkSidecarPort(c, port, `${p}.port`) : undefined;
    if (n !== undefined) {
      if (ingressPorts.has(n))
        c.err(`${p}.port.number`, 'sidecar: ports on IP bound listeners must be unique');
      ingressPorts.add(n);
    }
    checkBind(c, io.bind, `${p}.bind`);
    const de = c.str(io.defaultEndpoint, `${p}.defaultEndpoint`);
    if (de !== undefined && de !== '' && !de.startsWith('unix://')) {
      const m = /^(127\.0\.0\.1|0\.0\.0\.0|\[::1\]|\[::\]|)?:(\d+)$/.exec(de);
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
        c.err(
          `${p}.defaultEndpoint`,
          'sidecar: defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port>, :<port> or unix://',
        );
    }
  });
  const egressPorts = new Set<number>();
  egress?.forEach((ev, i) => {
    const p = `spec.egress[${i}]`;
    const eo = c.obj(ev, p, true);
    if (!eo) return;
    const port = c.obj(eo.port, `${p}.port`);
    if (port) {
      const n = checkSidecarPort(c, port, `${p}.port`, eo.bind);
      if (n !== undefined) {
        if (egressPorts.has(n))
          c.err(`${p}.port.number`, 'sidecar: ports on IP bound listeners must be unique');
        egressPorts.add(n);
      }
    } else if (i !== (egress?.length ?? 0) - 1)
      c.err(
        `${p}.port`,
        'sidecar: the egress listener with empty port should be the last listener in the list',
      );
    checkBind(c, eo.bind, `${p}.bind`);
    c.strList(eo.hosts, `${p}.hosts`, true).forEach((h, j) => {
      checkSidecarHost(c, h, `${p}.hosts[${j}]`);
    });
  });
  const otp = c.obj(spec.outboundTrafficPolicy, 'spec.outboundTrafficPolicy');
  if (otp) c.oneOf(otp.mode, 'spec.outboundTrafficPolicy.mode', ['REGISTRY_ONLY', 'ALLOW_ANY']);
}

function isObjWithKeys(v: unknown): boolean {
  return typeof v === 'object' && v !== null && Object.keys(v).length > 0;
}

/** A SidecarPort; returns the number when it is an IP port. */
function checkSidecarPort(c: Checker, port: Obj, path: string, bind?: unknown): number | undefined {
  const name = c.str(port.name, `${path}.name`);
  if (name) checkPortName(c, name, `${path}.name`);
  const proto = c.str(port.protocol, `${path}.protocol`);
  if (proto && !PORT_PROTOCOLS.includes(proto.toUpperCase()))
    c.err(`${path}.protocol`, `unsupported protocol ${JSON.stringify(proto)}`);
  if (port.targetPort !== undefined && port.targetPort !== null && port.targetPort !== 0)
    c.err(`${path}.targetPort`, 'targetPort has no impact on Sidecars');
  if (port.number === 0 && typeof bind === 'string' && bind.startsWith('unix://')) return undefined;
  return c.port(port.number, `${path}.number`, true);
}

function checkBind(c: Checker, v: unknown, path: string): void {
  const bind = c.str(v, path);
  if (bind && !bind.startsWith('unix://') && !isIP(bind))
    c.err(path, `${JSON.stringify(bind)} is not a valid IP address`);
}

/** `namespace/dnsName` (Istio ValidateNamespaceSlashWildcardHostname for sidecars). */
function checkSidecarHost(c: Checker, h: string, path: string): void {
  const slash = h.indexOf('/');
  if (slash < 0) {
    c.err(path, `sidecar: host ${JSON.stringify(h)} must be of form namespace/dnsName`);
    return;
  }
  const ns = h.slice(0, slash);
  const dns = h.slice(slash + 1);
  if (ns === '' || dns === '') {
    c.err(path, `sidecar: host ${JSON.stringify(h)}: namespace and dnsName cannot be empty`);
    return;
  }
  const nsName = ns.startsWith('~') ? ns.slice(1) : ns;
  if (nsName !== '' && nsName !== '*' && nsName !== '.' && !isDns1123Label(nsName))
    c.err(path, `sidecar: invalid namespace ${JSON.stringify(ns)}`);
  const e = wildcardDomainError(dns);
  if (e) c.err(path, e);
  else if (dns !== '*' && !dns.includes('.'))
    c.err(path, `short name ${JSON.stringify(dns)} is not allowed: use a fully qualified host name`);
  else if (dns.includes('*') && dns !== '*' && !dns.startsWith('*.'))
    c.err(path, `partial wildcard ${JSON.stringify(dns)} is not allowed`);
}
