// DestinationRule validation, after Istio's pkg/config/validation.

import { type Checker, isObj, type Obj } from './checker.js';
import { checkHost, checkSubsetName } from './common.js';

const SIMPLE_LB = [
  'UNSPECIFIED',
  'LEAST_CONN',
  'RANDOM',
  'PASSTHROUGH',
  'ROUND_ROBIN',
  'LEAST_REQUEST',
] as const;
const TLS_MODES = ['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL'] as const;
const HASH_KEYS = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const;

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;
  return true;
}

export function validateDestinationRule(c: Checker, spec: Obj): void {
  checkHost(c, spec.host, 'spec.host');
  validateTrafficPolicy(c, spec.trafficPolicy, 'spec.trafficPolicy', true);
  const names = new Map<string, number>();
  c.arr(spec.subsets, 'spec.subsets')?.forEach((s, i) => {
    const p = `spec.subsets[${i}]`;
    const so = c.obj(s, p, true);
    if (!so) return;
    const name = c.str(so.name, `${p}.name`, true);
    if (name !== undefined) {
      checkSubsetName(c, name, `${p}.name`);
      const prev = names.get(name);
      if (prev !== undefined)
        c.err(`${p}.name`, `duplicate subset name "${name}" (also spec.subsets[${prev}])`);
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
  if (allowPorts && Object.values(tp).every((x) => x === undefined || x === null))
    c.err(path, 'traffic policy must have at least one field');
  validateLoadBalancer(c, tp.loadBalancer, `${path}.loadBalancer`, tp.outlierDetection);
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
      // Istio accepts this; only the first entry for a port takes effect.
      if (prev !== undefined)
        c.warn(
          `${p}.port.number`,
          `port ${n} already has settings in portLevelSettings[${prev}]; this entry is ignored`,
        );
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

function validateLoadBalancer(c: Checker, v: unknown, path: string, outlier: unknown): void {
  const lb = c.obj(v, path);
  if (!lb) return;
  c.exclusive(lb, path, ['simple', 'consistentHash']);
  c.oneOf(lb.simple, `${path}.simple`, SIMPLE_LB);
  c.duration(lb.warmupDurationSecs, `${path}.warmupDurationSecs`);
  const warm = c.obj(lb.warmup, `${path}.warmup`);
  if (warm) {
    if (warm.duration === undefined || warm.duration === null)
      c.err(`${path}.warmup.duration`, 'is required');
    c.duration(warm.duration, `${path}.warmup.duration`);
    c.num(warm.minimumPercent, `${path}.warmup.minimumPercent`, { min: 0, max: 100 });
    const ag = c.num(warm.aggression, `${path}.warmup.aggression`);
    if (ag !== undefined && ag <= 0) c.err(`${path}.warmup.aggression`, 'aggression must be greater than 0');
  }
  validateLocalityLb(c, lb.localityLbSetting, `${path}.localityLbSetting`, outlier);
  const ch = c.obj(lb.consistentHash, `${path}.consistentHash`);
  if (!ch) return;
  const p = `${path}.consistentHash`;
  const keys = c.exclusive(ch, p, HASH_KEYS);
  // Istio accepts a hash without a key; Envoy then has nothing to hash and picks at random.
  if (keys.length === 0)
    c.warn(p, `no hash key (${HASH_KEYS.join(', ')}) is set, so requests are not sticky`);
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
    const seen = new Set<string>();
    c.arr(cookie.attributes, `${p}.httpCookie.attributes`)?.forEach((a, i) => {
      const ap = `${p}.httpCookie.attributes[${i}]`;
      const ao = c.obj(a, ap, true);
      if (!ao) return;
      const name = c.str(ao.name, `${ap}.name`, true);
      c.str(ao.value, `${ap}.value`);
      if (name !== undefined) {
        if (seen.has(name)) c.err(`${ap}.name`, `duplicate cookie attribute name ${JSON.stringify(name)}`);
        seen.add(name);
      }
    });
  }
  if (
    ch.useSourceIp !== undefined &&
    c.bool(ch.useSourceIp, `${p}.useSourceIp`) === false &&
    keys.length === 1
  )
    c.err(`${p}.useSourceIp`, 'must be true when it is the hash key');
  if (ch.httpQueryParameterName !== undefined)
    c.str(ch.httpQueryParameterName, `${p}.httpQueryParameterName`, true);
  const legacyRing = c.int(ch.minimumRingSize, `${p}.minimumRingSize`, { min: 0 });
  if (legacyRing) {
    c.warn(`${p}.minimumRingSize`, 'deprecated: use ringHash.minimumRingSize');
    if (ch.ringHash !== undefined || ch.maglev !== undefined)
      c.err(`${p}.minimumRingSize`, 'only one of minimumRingSize or maglev/ringHash can be specified');
  }
  const ring = c.obj(ch.ringHash, `${p}.ringHash`);
  if (ring) c.int(ring.minimumRingSize, `${p}.ringHash.minimumRingSize`, { min: 0, max: 8_388_608 });
  const mag = c.obj(ch.maglev, `${p}.maglev`);
  if (mag) {
    const t = c.int(mag.tableSize, `${p}.maglev.tableSize`, { min: 0 });
    if (t === undefined || t === 0) {
      if (mag.tableSize === undefined || mag.tableSize === null || t === 0)
        c.err(`${p}.maglev.tableSize`, 'tableSize must be set for maglev (a prime such as 65537)');
    } else if (!isPrime(t) || t >= 5_000_011)
      c.err(`${p}.maglev.tableSize`, `table size ${t} must be a prime number less than 5000011`);
  }
}

/** LocalityLoadBalancerSetting, after Istio's ValidateLocalityLbSetting. */
function validateLocalityLb(c: Checker, v: unknown, path: string, outlier: unknown): void {
  const l = c.obj(v, path);
  if (!l) return;
  const distribute = c.arr(l.distribute, `${path}.distribute`) ?? [];
  const failover = c.arr(l.failover, `${path}.failover`) ?? [];
  const priority = c.strList(l.failoverPriority, `${path}.failoverPriority`);
  c.bool(l.enabled, `${path}.enabled`);
  if (distribute.length > 0 && failover.length > 0)
    c.err(path, 'cannot set both "distribute" and "failover"');
  distribute.forEach((d, i) => {
    const dp = `${path}.distribute[${i}]`;
    const dobj = c.obj(d, dp, true);
    if (!dobj) return;
    c.str(dobj.from, `${dp}.from`);
    const to = c.obj(dobj.to, `${dp}.to`);
    if (!to) return;
    let total = 0;
    for (const [loc, w] of Object.entries(to)) {
      const n = c.int(w, `${dp}.to[${JSON.stringify(loc)}]`, { min: 1, max: 100 });
      total += n ?? 0;
    }
    if (total !== 100) c.err(`${dp}.to`, `total locality weight ${total} != 100`);
  });
  failover.forEach((f, i) => {
    const fp = `${path}.failover[${i}]`;
    const fo = c.obj(f, fp, true);
    if (!fo) return;
    const from = c.str(fo.from, `${fp}.from`) ?? '';
    const to = c.str(fo.to, `${fp}.to`) ?? '';
    if (from === to) c.err(fp, 'locality lb failover settings must specify different regions');
    if (from.includes('/') || to.includes('/')) c.err(fp, 'locality lb failover only specifies regions');
    if (from.includes('*') || to.includes('*'))
      c.err(fp, "locality lb failover region should not contain '*'");
  });
  if ((failover.length > 0 || priority.length > 0) && !isObj(outlier))
    c.warn(path, 'outlier detection policy must be provided for failover');
}

function validateConnectionPool(c: Checker, v: unknown, path: string): void {
  const cp = c.obj(v, path);
  if (!cp) return;
  if (cp.tcp === undefined && cp.http === undefined)
    c.err(path, 'connection pool must have at least one field');
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
    c.duration(http.idleTimeout, `${path}.http.idleTimeout`);
    const h2 = c.oneOf(http.h2UpgradePolicy, `${path}.http.h2UpgradePolicy`, [
      'DEFAULT',
      'DO_NOT_UPGRADE',
      'UPGRADE',
    ]);
    if (c.bool(http.useClientProtocol, `${path}.http.useClientProtocol`) === true && h2 === 'UPGRADE')
      c.err(`${path}.http.useClientProtocol`, 'must not be true when h2UpgradePolicy is UPGRADE');
    const ka = c.obj(http.http2KeepAlive, `${path}.http.http2KeepAlive`);
    if (ka)
      for (const k of ['interval', 'timeout']) {
        if (ka[k] === undefined || ka[k] === null) c.err(`${path}.http.http2KeepAlive.${k}`, 'is required');
        c.duration(ka[k], `${path}.http.http2KeepAlive.${k}`);
      }
  }
}

function validateOutlierDetection(c: Checker, v: unknown, path: string): void {
  const od = c.obj(v, path);
  if (!od) return;
  for (const k of [
    'consecutiveErrors',
    'consecutive5xxErrors',
    'consecutiveGatewayErrors',
    'consecutiveLocalOriginFailures',
  ])
    c.int(od[k], `${path}.${k}`, { min: 0 });
  c.duration(od.interval, `${path}.interval`);
  c.duration(od.baseEjectionTime, `${path}.baseEjectionTime`);
  c.int(od.maxEjectionPercent, `${path}.maxEjectionPercent`, { min: 0, max: 100 });
  c.int(od.minHealthPercent, `${path}.minHealthPercent`, { min: 0, max: 100 });
  const split = c.bool(od.splitExternalLocalOriginErrors, `${path}.splitExternalLocalOriginErrors`);
  const local = Number(od.consecutiveLocalOriginFailures);
  if (!split && local > 0)
    c.err(
      `${path}.consecutiveLocalOriginFailures`,
      'consecutive local origin failures is set, but splitExternalLocalOriginErrors is false',
    );
  if (od.consecutiveErrors !== undefined && od.consecutiveErrors !== 0)
    c.warn(`${path}.consecutiveErrors`, 'deprecated: use consecutiveGatewayErrors or consecutive5xxErrors');
}

/**
 * ClientTLSSettings, after Istio's ValidateTLS (pkg/config/validation/agent), with its messages.
 * Used at every level: trafficPolicy, portLevelSettings and subsets.
 */
function validateClientTls(c: Checker, v: unknown, path: string): void {
  const t = c.obj(v, path);
  if (!t) return;
  const mode =
    t.mode === undefined || t.mode === null ? 'DISABLE' : c.oneOf(t.mode, `${path}.mode`, TLS_MODES);
  for (const k of ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'sni', 'caCrl'])
    c.str(t[k], `${path}.${k}`);
  c.strList(t.subjectAltNames, `${path}.subjectAltNames`);
  const skipVerify = c.bool(t.insecureSkipVerify, `${path}.insecureSkipVerify`);
  const set = (k: string) => {
    const x = t[k];
    return x !== undefined && x !== null && x !== '' && !(Array.isArray(x) && x.length === 0);
  };
  if (mode === 'ISTIO_MUTUAL') {
    // Istio's validation accepts these (sni and subjectAltNames are honoured), but the certificate
    // fields have no effect: the workload's own identity is used.
    for (const k of ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName'])
      if (set(k)) c.warn(`${path}.${k}`, 'ignored with mode ISTIO_MUTUAL');
  }
  if (skipVerify === true) {
    if (mode === 'SIMPLE' && (set('caCertificates') || set('credentialName') || set('subjectAltNames')))
      c.err(
        path,
        'cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true',
      );
    // With MUTUAL a credential also carries the client certificate, so it is allowed.
    if (mode === 'MUTUAL' && (set('caCertificates') || set('subjectAltNames')))
      c.err(path, 'cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true');
  }
  if ((mode === 'SIMPLE' || mode === 'MUTUAL') && set('credentialName')) {
    // Certificates, CA and CRL are fetched from the credential.
    if (['clientCertificate', 'caCertificates', 'privateKey', 'caCrl'].some(set))
      c.err(path, 'cannot specify client certificates or CA certificate or CA CRL If credentialName is set');
  } else if (mode === 'MUTUAL') {
    if (!set('clientCertificate'))
      c.err(`${path}.clientCertificate`, 'client certificate required for mutual tls');
    if (!set('privateKey')) c.err(`${path}.privateKey`, 'private key required for mutual tls');
  }
}
