// DestinationRule validation, after Istio's pkg/config/validation.

import type { Checker, Obj } from './checker.js';
import { checkHost } from './common.js';

const SIMPLE_LB = ['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'] as const;
const TLS_MODES = ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] as const;
const HASH_KEYS = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const;

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
  return true;
}

export function validateDestinationRule(c: Checker, spec: Obj): void {
  checkHost(c, spec.host, 'spec.host', { allowStar: false });
  validateTrafficPolicy(c, spec.trafficPolicy, 'spec.trafficPolicy', true);
  const names = new Map<string, number>();
  c.arr(spec.subsets, 'spec.subsets')?.forEach((s, i) => {
    const p = `spec.subsets[${i}]`;
    const so = c.obj(s, p, true);
    if (!so) return;
    const name = c.str(so.name, `${p}.name`, true);
    if (name !== undefined) {
      if (!/^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$/.test(name))
        c.err(`${p}.name`, `invalid subset name ${JSON.stringify(name)}`);
      const prev = names.get(name);
      if (prev !== undefined) c.err(`${p}.name`, `duplicate subset name "${name}" (also spec.subsets[${prev}])`);
      else names.set(name, i);
    }
    c.labels(so.labels, `${p}.labels`);
    validateTrafficPolicy(c, so.trafficPolicy, `${p}.trafficPolicy`, true);
  });
  c.strList(spec.exportTo, 'spec.exportTo');
  const ws = c.obj(spec.workloadSelector, 'spec.workloadSelector');
  if (ws) c.labels(ws.matchLabels, 'spec.workloadSelector.matchLabels');
}

function validateTrafficPolicy(c: Checker, v: unknown, path: string, allowPorts: boolean): void {
  const tp = c.obj(v, path);
  if (!tp) return;
  validateLoadBalancer(c, tp.loadBalancer, `${path}.loadBalancer`);
  validateConnectionPool(c, tp.connectionPool, `${path}.connectionPool`);
  validateOutlierDetection(c, tp.outlierDetection, `${path}.outlierDetection`);
  validateClientTls(c, tp.tls, `${path}.tls`);
  if (!allowPorts) return;
  const ports = new Map<number, number>();
  c.arr(tp.portLevelSettings, `${path}.portLevelSettings`)?.forEach((pl, i) => {
    const p = `${path}.portLevelSettings[${i}]`;
    const po = c.obj(pl, p, true);
    if (!po) return;
    const port = c.obj(po.port, `${p}.port`, true);
    const n = port ? c.port(port.number, `${p}.port.number`, true) : undefined;
    if (n !== undefined) {
      const prev = ports.get(n);
      if (prev !== undefined) c.err(`${p}.port.number`, `duplicate port-level settings for port ${n}`);
      else ports.set(n, i);
    }
    if (
      po.loadBalancer === undefined &&
      po.connectionPool === undefined &&
      po.outlierDetection === undefined &&
      po.tls === undefined
    )
      c.err(p, 'port traffic policy must have at least one field');
    validateTrafficPolicy(c, { ...po, port: undefined }, p, false);
  });
}

function validateLoadBalancer(c: Checker, v: unknown, path: string): void {
  const lb = c.obj(v, path);
  if (!lb) return;
  c.exclusive(lb, path, ['simple', 'consistentHash']);
  c.oneOf(lb.simple, `${path}.simple`, SIMPLE_LB);
  c.duration(lb.warmupDurationSecs, `${path}.warmupDurationSecs`);
  const warm = c.obj(lb.warmup, `${path}.warmup`);
  if (warm) {
    c.duration(warm.duration, `${path}.warmup.duration`);
    c.num(warm.minimumPercent, `${path}.warmup.minimumPercent`, { min: 0, max: 100 });
    c.num(warm.aggression, `${path}.warmup.aggression`, { min: 1 });
  }
  const ch = c.obj(lb.consistentHash, `${path}.consistentHash`);
  if (!ch) return;
  const p = `${path}.consistentHash`;
  const keys = c.exclusive(ch, p, HASH_KEYS);
  if (keys.length === 0) c.err(p, `one of ${HASH_KEYS.join(', ')} is required`);
  c.exclusive(ch, p, ['ringHash', 'maglev']);
  if (ch.httpHeaderName !== undefined) {
    const h = c.str(ch.httpHeaderName, `${p}.httpHeaderName`, true);
    if (h !== undefined) c.headerName(h, `${p}.httpHeaderName`);
  }
  const cookie = c.obj(ch.httpCookie, `${p}.httpCookie`);
  if (cookie) {
    c.str(cookie.name, `${p}.httpCookie.name`, true);
    c.str(cookie.path, `${p}.httpCookie.path`);
    c.duration(cookie.ttl, `${p}.httpCookie.ttl`, { allowZero: true });
  }
  if (ch.useSourceIp !== undefined && c.bool(ch.useSourceIp, `${p}.useSourceIp`) === false && keys.length === 1)
    c.err(`${p}.useSourceIp`, 'must be true when it is the hash key');
  if (ch.httpQueryParameterName !== undefined) c.str(ch.httpQueryParameterName, `${p}.httpQueryParameterName`, true);
  c.int(ch.minimumRingSize, `${p}.minimumRingSize`, { min: 0 });
  const ring = c.obj(ch.ringHash, `${p}.ringHash`);
  if (ring) c.int(ring.minimumRingSize, `${p}.ringHash.minimumRingSize`, { min: 0, max: 8_388_608 });
  const mag = c.obj(ch.maglev, `${p}.maglev`);
  if (mag) {
    const t = c.int(mag.tableSize, `${p}.maglev.tableSize`, { min: 0 });
    if (t !== undefined && t !== 0 && (!isPrime(t) || t >= 5_000_011))
      c.err(`${p}.maglev.tableSize`, `table size ${t} must be a prime number less than 5000011`);
  }
}

function validateConnectionPool(c: Checker, v: unknown, path: string): void {
  const cp = c.obj(v, path);
  if (!cp) return;
  if (cp.tcp === undefined && cp.http === undefined) c.err(path, 'connection pool must have at least one field');
  const tcp = c.obj(cp.tcp, `${path}.tcp`);
  if (tcp) {
    c.int(tcp.maxConnections, `${path}.tcp.maxConnections`, { min: 0 });
    c.duration(tcp.connectTimeout, `${path}.tcp.connectTimeout`);
    c.duration(tcp.maxConnectionDuration, `${path}.tcp.maxConnectionDuration`);
    c.duration(tcp.idleTimeout, `${path}.tcp.idleTimeout`, { allowZero: true });
    const ka = c.obj(tcp.tcpKeepalive, `${path}.tcp.tcpKeepalive`);
    if (ka) {
      c.int(ka.probes, `${path}.tcp.tcpKeepalive.probes`, { min: 0 });
      c.duration(ka.time, `${path}.tcp.tcpKeepalive.time`);
      c.duration(ka.interval, `${path}.tcp.tcpKeepalive.interval`);
    }
  }
  const http = c.obj(cp.http, `${path}.http`);
  if (http) {
    for (const k of [
      'http1MaxPendingRequests',
      'http2MaxRequests',
      'maxRequestsPerConnection',
      'maxRetries',
      'maxConcurrentStreams',
    ])
      c.int(http[k], `${path}.http.${k}`, { min: 0 });
    c.duration(http.idleTimeout, `${path}.http.idleTimeout`, { allowZero: true });
    c.oneOf(http.h2UpgradePolicy, `${path}.http.h2UpgradePolicy`, ['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']);
    c.bool(http.useClientProtocol, `${path}.http.useClientProtocol`);
  }
}

function validateOutlierDetection(c: Checker, v: unknown, path: string): void {
  const od = c.obj(v, path);
  if (!od) return;
  for (const k of ['consecutiveErrors', 'consecutive5xxErrors', 'consecutiveGatewayErrors', 'consecutiveLocalOriginFailures'])
    c.int(od[k], `${path}.${k}`, { min: 0 });
  c.duration(od.interval, `${path}.interval`);
  c.duration(od.baseEjectionTime, `${path}.baseEjectionTime`);
  c.int(od.maxEjectionPercent, `${path}.maxEjectionPercent`, { min: 0, max: 100 });
  c.int(od.minHealthPercent, `${path}.minHealthPercent`, { min: 0, max: 100 });
  c.bool(od.splitExternalLocalOriginErrors, `${path}.splitExternalLocalOriginErrors`);
}

function validateClientTls(c: Checker, v: unknown, path: string): void {
  const t = c.obj(v, path);
  if (!t) return;
  const mode = c.oneOf(t.mode, `${path}.mode`, TLS_MODES);
  const others = ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'subjectAltNames', 'sni'];
  if (mode === 'ISTIO_MUTUAL') {
    for (const k of others)
      if (t[k] !== undefined) c.err(`${path}.${k}`, 'cannot be set with mode ISTIO_MUTUAL');
  }
  if (mode === 'MUTUAL' && t.credentialName === undefined) {
    if (t.clientCertificate === undefined) c.err(`${path}.clientCertificate`, 'is required for mode MUTUAL');
    if (t.privateKey === undefined) c.err(`${path}.privateKey`, 'is required for mode MUTUAL');
  }
  for (const k of ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'sni'])
    c.str(t[k], `${path}.${k}`);
  c.strList(t.subjectAltNames, `${path}.subjectAltNames`);
  c.bool(t.insecureSkipVerify, `${path}.insecureSkipVerify`);
}
