// ServiceEntry, WorkloadEntry and Sidecar validation, after Istio's pkg/config/validation.

import { type Checker, isCIDR, isDns1123Label, isIP, type Obj, wildcardDomainError } from './checker.js';

const RESOLUTIONS = ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS'] as const;
const PORT_PROTOCOLS = [
  'HTTP',
  'HTTPS',
  'GRPC',
  'GRPC-WEB',
  'HTTP2',
  'MONGO',
  'TCP',
  'TLS',
  'UDP',
  'REDIS',
  'MYSQL',
  'THRIFT',
];

export function validateServiceEntry(c: Checker, spec: Obj): void {
  const hosts = c.strList(spec.hosts, 'spec.hosts', true);
  const resolution = c.oneOf(spec.resolution, 'spec.resolution', RESOLUTIONS) ?? 'NONE';
  c.oneOf(spec.location, 'spec.location', ['MESH_EXTERNAL', 'MESH_INTERNAL']);
  hosts.forEach((h, i) => {
    const p = `spec.hosts[${i}]`;
    if (h === '*') {
      c.err(p, 'invalid host *');
      return;
    }
    const e = wildcardDomainError(h);
    if (e) c.err(p, e);
    if (h.startsWith('*') && (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && !spec.endpoints)
      c.err(p, `wildcard host ${h} is not allowed with resolution ${resolution} and no endpoints`);
  });
  c.strList(spec.addresses, 'spec.addresses').forEach((a, i) => {
    if (!isCIDR(a)) c.err(`spec.addresses[${i}]`, `invalid address ${JSON.stringify(a)} (expected an IP or CIDR)`);
  });
  const portNames = new Set<string>();
  const portNumbers = new Set<number>();
  c.arr(spec.ports, 'spec.ports')?.forEach((pv, i) => {
    const p = `spec.ports[${i}]`;
    const po = c.obj(pv, p, true);
    if (!po) return;
    const n = c.port(po.number, `${p}.number`, true);
    if (n !== undefined) {
      if (portNumbers.has(n)) c.err(`${p}.number`, `port number ${n} is not unique`);
      portNumbers.add(n);
    }
    const name = c.str(po.name, `${p}.name`, true);
    if (name !== undefined) {
      if (!isDns1123Label(name.toLowerCase())) c.err(`${p}.name`, `invalid port name ${JSON.stringify(name)}`);
      if (portNames.has(name)) c.err(`${p}.name`, `port name ${name} is not unique`);
      portNames.add(name);
    }
    const proto = c.str(po.protocol, `${p}.protocol`);
    if (proto !== undefined && !PORT_PROTOCOLS.includes(proto.toUpperCase()))
      c.err(`${p}.protocol`, `unsupported protocol ${JSON.stringify(proto)}`);
    c.port(po.targetPort, `${p}.targetPort`);
  });
  const endpoints = c.arr(spec.endpoints, 'spec.endpoints');
  const ws = c.obj(spec.workloadSelector, 'spec.workloadSelector');
  if (ws) c.labels(ws.labels, 'spec.workloadSelector.labels');
  if (ws && endpoints && endpoints.length > 0)
    c.err('spec', 'only one of workloadSelector or endpoints is allowed in a service entry');
  if (resolution === 'NONE' && endpoints && endpoints.length > 0)
    c.err('spec.endpoints', 'no endpoints should be provided for resolution type NONE');
  if (resolution === 'STATIC' && (!endpoints || endpoints.length === 0) && !ws)
    c.err('spec.endpoints', 'endpoints must be provided if service entry discovery mode is STATIC');
  endpoints?.forEach((e, i) => {
    const p = `spec.endpoints[${i}]`;
    validateWorkloadEntryBody(c, e, p, { requireAddress: true, staticIP: resolution === 'STATIC', portNames });
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
  opts: { requireAddress: boolean; staticIP: boolean; portNames?: Set<string> },
): void {
  const we = c.obj(v, path, true);
  if (!we) return;
  const addr = c.str(we.address, `${path}.address`, opts.requireAddress);
  if (addr !== undefined && addr !== '') {
    if (addr.startsWith('unix://')) {
      // unix domain sockets are valid endpoint addresses
    } else if (opts.staticIP && !isIP(addr))
      c.err(`${path}.address`, `endpoint address ${JSON.stringify(addr)} is not a valid IP address`);
    else if (!isIP(addr) && wildcardDomainError(addr))
      c.err(`${path}.address`, `invalid address ${JSON.stringify(addr)}`);
  }
  const ports = c.obj(we.ports, `${path}.ports`);
  if (ports) {
    for (const [k, n] of Object.entries(ports)) {
      c.port(n, `${path}.ports.${k}`, true);
      if (opts.portNames && !opts.portNames.has(k))
        c.err(`${path}.ports.${k}`, `endpoint port ${k} is not defined by the service entry`);
    }
  }
  c.labels(we.labels, `${path}.labels`);
  c.int(we.weight, `${path}.weight`, { min: 0 });
  c.str(we.locality, `${path}.locality`);
  c.str(we.network, `${path}.network`);
  c.str(we.serviceAccount, `${path}.serviceAccount`);
}

export function validateSidecar(c: Checker, spec: Obj): void {
  const ws = c.obj(spec.workloadSelector, 'spec.workloadSelector');
  if (ws) c.labels(ws.labels, 'spec.workloadSelector.labels');
  const ingress = c.arr(spec.ingress, 'spec.ingress');
  const egress = c.arr(spec.egress, 'spec.egress');
  if (!ingress?.length && !egress?.length && spec.outboundTrafficPolicy === undefined && !spec.inboundConnectionPool)
    c.err('spec', 'sidecar: empty configuration provided');
  const ingressPorts = new Set<number>();
  ingress?.forEach((iv, i) => {
    const p = `spec.ingress[${i}]`;
    const io = c.obj(iv, p, true);
    if (!io) return;
    const port = c.obj(io.port, `${p}.port`, true);
    const n = port ? c.port(port.number, `${p}.port.number`, true) : undefined;
    if (n !== undefined) {
      if (ingressPorts.has(n)) c.err(`${p}.port.number`, `sidecar: ports on IP bound listeners must be unique`);
      ingressPorts.add(n);
    }
    const de = c.str(io.defaultEndpoint, `${p}.defaultEndpoint`);
    if (de !== undefined && de !== '' && !de.startsWith('unix://')) {
      const m = /^(127\.0\.0\.1|0\.0\.0\.0|\[::1\]|\[::\]):(\d+)$/.exec(de);
      if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535)
        c.err(`${p}.defaultEndpoint`, 'sidecar: defaultEndpoint must be of form 127.0.0.1:<port>, 0.0.0.0:<port> or unix://');
    }
  });
  egress?.forEach((ev, i) => {
    const p = `spec.egress[${i}]`;
    const eo = c.obj(ev, p, true);
    if (!eo) return;
    const port = c.obj(eo.port, `${p}.port`);
    if (port) c.port(port.number, `${p}.port.number`, true);
    c.strList(eo.hosts, `${p}.hosts`, true).forEach((h, j) => {
      const hp = `${p}.hosts[${j}]`;
      const parts = h.split('/');
      if (parts.length !== 2) {
        c.err(hp, `sidecar: host ${JSON.stringify(h)} must be of form namespace/dnsName`);
        return;
      }
      const [ns, dns] = parts as [string, string];
      const nsName = ns.startsWith('~') && ns.length > 1 ? ns.slice(1) : ns;
      if (nsName !== '*' && nsName !== '.' && nsName !== '~' && !isDns1123Label(nsName))
        c.err(hp, `sidecar: invalid namespace ${JSON.stringify(ns)}`);
      const e = wildcardDomainError(dns);
      if (e) c.err(hp, e);
    });
  });
  const otp = c.obj(spec.outboundTrafficPolicy, 'spec.outboundTrafficPolicy');
  if (otp) c.oneOf(otp.mode, 'spec.outboundTrafficPolicy.mode', ['REGISTRY_ONLY', 'ALLOW_ANY']);
}
