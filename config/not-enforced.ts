// What the config asks for that courier does not do yet, so that nothing which changes security or
// where (and how) traffic goes is ignored silently. One pure function over the loaded resources:
// `courier validate` prints its result as warnings, the agent logs it on each new config version,
// lists it in /config_dump (`not_enforced`) and counts it in `courier_config_not_enforced{kind}`.
// Each entry names the resource, its file and document, the field path and what happens instead.
// Without a proxy identity (`courier validate`) every resource is considered; with one (the agent),
// only what applies to that proxy: the Gateways its labels select, the VirtualServices bound to them
// (or to the mesh, for a sidecar), the policies that select its workload.

import { appliesToMesh, selectSidecar } from './compile/sidecar-listeners.js';
import { gatewayRef, labelsMatch } from './names.js';
import type { ProxyIdentity } from './snapshot.js';
import {
  type AnyResource,
  type ConfigError,
  type DocSource,
  formatError,
  type PolicySelection,
  type Resource,
  type Server,
  type TrafficPolicy,
} from './types.js';
import { keyPath } from './validate/checker.js';

export interface NotEnforced {
  kind: string;
  namespace: string;
  name: string;
  file: string;
  /** The document's index in its file. */
  index: number;
  /** The field that is not enforced, `''` for the whole resource. */
  path: string;
  /** What it would do and what happens instead. */
  message: string;
}

/** A document of a kind courier does not load, kept because that kind changes traffic. */
export interface IgnoredDoc {
  kind: string;
  apiVersion: string;
  namespace: string;
  name: string;
  source: DocSource;
}

const ROOT_NAMESPACE = 'istio-system';

/** Kinds courier does not load that change security or traffic: what ignoring them means. */
const UNSERVED_KINDS: Record<string, string> = {
  'networking.istio.io/EnvoyFilter': 'EnvoyFilter is not applied: its patches do not change this proxy',
  'extensions.istio.io/WasmPlugin': 'WasmPlugin is not run: requests do not pass through its filter',
  'gateway.networking.k8s.io/Gateway':
    'Gateway (Gateway API) is not served yet: none of its listeners is opened',
  'gateway.networking.k8s.io/HTTPRoute': 'HTTPRoute is not served yet: requests are not routed by it',
  'gateway.networking.k8s.io/GRPCRoute': 'GRPCRoute is not served yet: requests are not routed by it',
  'gateway.networking.k8s.io/TLSRoute': 'TLSRoute is not served yet: connections are not routed by it',
  'gateway.networking.k8s.io/TCPRoute': 'TCPRoute is not served yet: connections are not routed by it',
};

function unservedKey(apiVersion: unknown, kind: unknown): string {
  return `${String(apiVersion).split('/')[0]}/${String(kind)}`;
}

/** Does a document of this kind, which courier does not load, belong in the not-enforced list? */
export function isUnservedKind(apiVersion: unknown, kind: unknown): boolean {
  return Object.hasOwn(UNSERVED_KINDS, unservedKey(apiVersion, kind));
}

/** A Gateway server courier does not serve as configured, or undefined. */
function serverMessage(server: Server): string | undefined {
  const proto = server.port.protocol.toUpperCase();
  const port = server.port.number;
  if (proto === 'HTTP2' || proto === 'GRPC')
    return `${proto} is served as HTTP/1.1: HTTP/2 clients on port ${port}${proto === 'GRPC' ? ' (every gRPC client)' : ''} are not understood`;
  if (proto === 'GRPC-WEB')
    return `GRPC-WEB is served as plain HTTP/1.1: gRPC-Web requests on port ${port} reach the upstream as they are, not translated to gRPC`;
  if (proto === 'UDP' || proto === 'HTTP_PROXY')
    return `${proto} is not served yet: nothing listens for this server on port ${port}`;
  if (proto !== 'HTTPS' && proto !== 'TLS') return undefined;
  const tls = server.tls ?? {};
  const mode = tls.mode ?? 'PASSTHROUGH';
  if (mode === 'AUTO_PASSTHROUGH')
    return `${proto} (TLS AUTO_PASSTHROUGH) is not served yet: connections on port ${port} get no filter chain from it (no SNI-encoded clusters)`;
  if (mode === 'ISTIO_MUTUAL')
    return `${proto} (TLS ISTIO_MUTUAL) is not served yet: the gateway has no workload certificate, so connections to this server on port ${port} are refused`;
  return undefined;
}

/** Server TLS fields courier does not honour yet (the server is served without them, or refused). */
function serverTlsFields(server: Server): [string, string][] {
  const t = server.tls as
    | (Server['tls'] & {
        credentialNames?: unknown[];
        tlsCertificates?: unknown[];
        caCertCredentialName?: string;
      })
    | undefined;
  if (!t || t.mode === undefined || t.mode === 'PASSTHROUGH' || t.mode === 'AUTO_PASSTHROUGH') return [];
  const out: [string, string][] = [];
  if (t.credentialNames?.length)
    out.push([
      'credentialNames',
      'several certificates per server are not served yet: without credentialName this server has no certificate and its connections are refused',
    ]);
  if (t.tlsCertificates?.length)
    out.push([
      'tlsCertificates',
      'several certificates per server are not served yet: without serverCertificate/privateKey this server has no certificate and its connections are refused',
    ]);
  if (t.caCertCredentialName)
    out.push([
      'caCertCredentialName',
      'is not read yet: client certificates are verified against the CA of credentialName (or its -cacert Secret)',
    ]);
  return out;
}

const UPSTREAM_HTTP2 = new Set(['HTTP2', 'GRPC', 'GRPC-WEB']);
const UPSTREAM_TLS = new Set(['HTTPS', 'TLS']);
const UPSTREAM_TCP = new Set(['TCP', 'MONGO', 'MYSQL', 'REDIS']);

function servicePortMessage(proto: string, target: string, router: boolean): string | undefined {
  if (UPSTREAM_HTTP2.has(proto))
    return `upstream ${proto} is not spoken yet: requests to ${target} are sent as HTTP/1.1, not HTTP/2`;
  // A gateway passes TLS through and proxies TCP to these ports (VS tls/tcp routes); sidecars
  // build HTTP listeners only.
  if (router) return undefined;
  if (UPSTREAM_TLS.has(proto))
    return `${proto} is not served yet: sidecars do not pass connections to ${target} through as TLS; requests routed there are sent as plaintext HTTP/1.1`;
  if (UPSTREAM_TCP.has(proto))
    return `${proto} is not served yet: sidecars do not proxy connections to ${target} as TCP; only HTTP/1.1 requests are routed there`;
  return undefined;
}

function authorizationMessage(spec: Resource<'AuthorizationPolicy'>['spec']): string {
  const action = spec.action ?? 'ALLOW';
  const why =
    action === 'DENY'
      ? 'requests it denies are let through'
      : action === 'AUDIT'
        ? 'requests it matches are not audit-logged'
        : action === 'CUSTOM'
          ? `requests are not sent to the external authorizer ${JSON.stringify(spec.provider?.name ?? '')}`
          : (spec.rules ?? []).length === 0
            ? 'it allows nothing, yet every request is let through'
            : 'requests it does not allow are let through';
  return `AuthorizationPolicy is not enforced: requests are NOT checked against it (action ${action}: ${why})`;
}

type Add = (r: AnyResource, path: string, message: string) => void;

/** A traffic policy with the fields courier's types leave out because it does not serve them. */
type Policy = TrafficPolicy & {
  tunnel?: { targetHost?: string; targetPort?: number };
  proxyProtocol?: unknown;
};

/** Visit a traffic policy and its port-level settings: `(policy, path, where)`. */
function eachPolicy(
  tp: Policy | undefined,
  path: string,
  where: string,
  visit: (p: Policy, path: string, where: string) => void,
): void {
  if (!tp) return;
  visit(tp, path, where);
  tp.portLevelSettings?.forEach((pl, i) => {
    visit(pl, `${path}.portLevelSettings[${i}]`, `${where} port ${pl.port?.number ?? '?'}`);
  });
}

function destinationRule(
  dr: Resource<'DestinationRule'>,
  identity: ProxyIdentity | undefined,
  add: Add,
): void {
  const visit = (p: Policy, path: string, where: string) => {
    if (p.tls?.mode === 'ISTIO_MUTUAL')
      add(
        dr,
        `${path}.tls.mode`,
        `ISTIO_MUTUAL is not enforced yet: traffic to ${where} leaves in plaintext`,
      );
    if (p.connectionPool?.http?.h2UpgradePolicy === 'UPGRADE')
      add(
        dr,
        `${path}.connectionPool.http.h2UpgradePolicy`,
        `UPGRADE is not enforced yet: requests to ${where} are sent as HTTP/1.1, not HTTP/2`,
      );
    const locality = p.loadBalancer?.localityLbSetting as { enabled?: boolean } | undefined;
    if (locality && locality.enabled !== false)
      add(
        dr,
        `${path}.loadBalancer.localityLbSetting`,
        `locality load balancing is not enforced yet: endpoints of ${where} are picked regardless of locality`,
      );
    const tunnel = p.tunnel;
    if (tunnel)
      add(
        dr,
        `${path}.tunnel`,
        `tunnel is not enforced yet: traffic to ${where} connects directly, not through ${tunnel.targetHost}:${tunnel.targetPort}`,
      );
    if (p.proxyProtocol)
      add(dr, `${path}.proxyProtocol`, `PROXY protocol is not sent yet: ${where} receives no PROXY header`);
  };
  const host = dr.spec.host;
  eachPolicy(dr.spec.trafficPolicy, 'spec.trafficPolicy', host, visit);
  dr.spec.subsets?.forEach((s, i) => {
    eachPolicy(s.trafficPolicy, `spec.subsets[${i}].trafficPolicy`, `${host} subset ${s.name}`, visit);
  });
  const ws = dr.spec.workloadSelector;
  if (
    ws &&
    (!identity || dr.namespace !== identity.namespace || !labelsMatch(ws.matchLabels, identity.labels))
  )
    add(
      dr,
      'spec.workloadSelector',
      'workloadSelector is not enforced yet: this rule applies to every proxy, not only the workloads it selects',
    );
}

/** Sidecar ingress, inbound TLS and the egress proxy. */
function sidecar(sc: Resource<'Sidecar'>, identity: ProxyIdentity | undefined, add: Add): void {
  const ingress = sc.spec.ingress ?? [];
  const portOf = (ep: string | undefined) => (ep ? Number(ep.split(':').pop()) : undefined);
  const used = identity?.appPort ?? portOf(ingress.find((i) => i.defaultEndpoint)?.defaultEndpoint);
  ingress.forEach((l, i) => {
    const p = `spec.ingress[${i}]`;
    if ((l as { tls?: unknown }).tls)
      add(
        sc,
        `${p}.tls`,
        `inbound TLS is not served yet: inbound traffic for port ${l.port.number} is accepted in plaintext`,
      );
    if (l.defaultEndpoint && portOf(l.defaultEndpoint) !== used)
      add(
        sc,
        `${p}.defaultEndpoint`,
        `is not used: every inbound request goes to 127.0.0.1:${used}, not ${l.defaultEndpoint}`,
      );
  });
  const otp = sc.spec.outboundTrafficPolicy as { mode?: string; egressProxy?: { host?: string } } | undefined;
  if (otp?.egressProxy && otp.mode !== 'REGISTRY_ONLY')
    add(
      sc,
      'spec.outboundTrafficPolicy.egressProxy',
      `egressProxy is not enforced yet: traffic to hosts outside the registry goes directly, not through ${otp.egressProxy.host}`,
    );
}

/** Does a security policy select this proxy's workload? (Always, without an identity.) */
function selects(
  r: Resource<'AuthorizationPolicy' | 'PeerAuthentication' | 'RequestAuthentication'>,
  identity: ProxyIdentity | undefined,
): boolean {
  if (!identity) return true;
  if (r.namespace !== identity.namespace && r.namespace !== ROOT_NAMESPACE) return false;
  const s = r.spec as PolicySelection;
  if (s.targetRef || (s.targetRefs ?? []).length > 0) return true; // may name this gateway: listed
  return labelsMatch(s.selector?.matchLabels, identity.labels);
}

export function notEnforced(
  input: { resources: readonly AnyResource[]; ignored?: readonly IgnoredDoc[] },
  identity?: ProxyIdentity,
): NotEnforced[] {
  const out: NotEnforced[] = [];
  const add: Add = (r, path, message) =>
    out.push({
      kind: r.kind,
      namespace: r.namespace,
      name: r.name,
      file: r.source.file,
      index: r.source.index,
      path,
      message,
    });
  const of = <K extends AnyResource['kind']>(kind: K) =>
    input.resources.filter((r) => r.kind === kind) as unknown as Resource<K>[];

  // Gateways: a router serves those its labels select; a sidecar none.
  const gateways = of('Gateway').filter(
    (g) => !identity || (identity.mode === 'router' && labelsMatch(g.spec.selector, identity.labels)),
  );
  const gatewayNames = new Set(gateways.map((g) => `${g.namespace}/${g.name}`));
  // Servers sharing a port are served by one listener whose protocol is the first server's (as
  // Istio merges them); a server of another protocol on that port is not served at all.
  const portProtocol = new Map<string, string>();
  for (const gw of gateways)
    gw.spec.servers.forEach((s, i) => {
      const m = serverMessage(s);
      if (m) add(gw, `spec.servers[${i}].port.protocol`, m);
      for (const [field, msg] of serverTlsFields(s)) add(gw, `spec.servers[${i}].tls.${field}`, msg);
      const key = `${s.bind || '0.0.0.0'}:${s.port.number}`;
      const proto = s.port.protocol.toUpperCase();
      const first = portProtocol.get(key);
      if (first === undefined) portProtocol.set(key, proto);
      else if (sameListener(first) !== sameListener(proto))
        add(
          gw,
          `spec.servers[${i}].port`,
          `port ${s.port.number} is already taken by a ${first} server: this ${proto} server is not served (servers sharing a port must share a protocol)`,
        );
    });

  const exportTo = (r: AnyResource, list: string[] | undefined) => {
    if (!list || list.length === 0 || list.includes('*')) return;
    if (!identity) {
      add(r, 'spec.exportTo', `exportTo is not enforced yet: proxies in every namespace use this ${r.kind}`);
      return;
    }
    const ns = identity.namespace;
    if (!list.some((e) => e === ns || (e === '.' && r.namespace === ns)))
      add(
        r,
        'spec.exportTo',
        `exportTo is not enforced yet: this proxy (namespace ${ns}) uses it although it is not exported there`,
      );
  };

  for (const vs of of('VirtualService')) {
    const bound =
      !identity ||
      (identity.mode === 'sidecar'
        ? appliesToMesh(vs)
        : (vs.spec.gateways ?? []).some((g) => gatewayNames.has(gatewayRef(g, vs.namespace))));
    if (!bound) continue;
    const hosts = (vs.spec.hosts ?? []).join(', ');
    // Gateways route TCP and TLS connections by them; sidecars build HTTP listeners only.
    const atSidecar = identity ? identity.mode === 'sidecar' : appliesToMesh(vs);
    if ((vs.spec.tcp ?? []).length > 0 && atSidecar)
      add(
        vs,
        'spec.tcp',
        `tcp routes are not served at sidecars yet: TCP connections to ${hosts} are not routed by them`,
      );
    if ((vs.spec.tls ?? []).length > 0 && atSidecar)
      add(
        vs,
        'spec.tls',
        `tls routes are not served at sidecars yet: TLS connections to ${hosts} are not routed by them`,
      );
    vs.spec.http?.forEach((h, i) => {
      if (h.delegate)
        add(
          vs,
          `spec.http[${i}].delegate`,
          `delegation is not served yet: requests matching this route are answered 503 instead of taking the routes of ${h.delegate.namespace ?? vs.namespace}/${h.delegate.name}`,
        );
    });
    exportTo(vs, vs.spec.exportTo);
  }

  for (const dr of of('DestinationRule')) {
    destinationRule(dr, identity, add);
    exportTo(dr, dr.spec.exportTo);
  }

  for (const se of of('ServiceEntry')) {
    const hosts = se.spec.hosts.join(', ');
    se.spec.ports?.forEach((p, i) => {
      const m = servicePortMessage(
        (p.protocol ?? '').toUpperCase(),
        `${hosts}:${p.number}`,
        identity?.mode === 'router',
      );
      if (m) add(se, `spec.ports[${i}].protocol`, m);
    });
    exportTo(se, se.spec.exportTo);
  }

  // A router uses no Sidecar; a sidecar uses the one selected for it.
  const sidecars = of('Sidecar');
  const selectedSidecar = identity?.mode === 'sidecar' ? selectSidecar(sidecars, identity) : undefined;
  for (const sc of sidecars) if (!identity || sc.spec === selectedSidecar) sidecar(sc, identity, add);

  for (const ap of of('AuthorizationPolicy'))
    if (selects(ap, identity)) add(ap, 'spec', authorizationMessage(ap.spec));

  for (const ra of of('RequestAuthentication'))
    if ((ra.spec.jwtRules ?? []).length > 0 && selects(ra, identity))
      add(
        ra,
        'spec.jwtRules',
        'RequestAuthentication is not enforced: JWTs are NOT validated; requests with invalid tokens are let through',
      );

  // PeerAuthentication governs a workload's inbound mTLS; gateways are not subject to it.
  const strict =
    'STRICT is not enforced yet: inbound plaintext requests are accepted (mutual TLS is not required)';
  for (const pa of of('PeerAuthentication')) {
    if (identity?.mode === 'router' || !selects(pa, identity)) continue;
    if (pa.spec.mtls?.mode === 'STRICT') add(pa, 'spec.mtls.mode', strict);
    for (const [port, v] of Object.entries(pa.spec.portLevelMtls ?? {}))
      if (v?.mode === 'STRICT') add(pa, `${keyPath('spec.portLevelMtls', port)}.mode`, strict);
  }

  for (const d of input.ignored ?? [])
    out.push({
      kind: d.kind,
      namespace: d.namespace,
      name: d.name,
      file: d.source.file,
      index: d.source.index,
      path: '',
      message: UNSERVED_KINDS[unservedKey(d.apiVersion, d.kind)] ?? `${d.kind} is not served yet`,
    });
  // File order, as the other messages: stable within a document.
  return out
    .map((n, i) => [n, i] as const)
    .sort(([a, i], [b, j]) => (a.file === b.file ? a.index - b.index || i - j : a.file < b.file ? -1 : 1))
    .map(([n]) => n);
}

/** The entry as a warning line: `file[index] Kind/namespace/name: field.path: message`. */
export function notEnforcedError(n: NotEnforced): ConfigError {
  return {
    file: n.file,
    index: n.index,
    resource: `${n.kind}/${n.namespace}/${n.name}`,
    path: n.path,
    message: n.message,
  };
}

export function formatNotEnforced(n: NotEnforced): string {
  return formatError(notEnforcedError(n));
}

/** Entries per kind, for the `courier_config_not_enforced{kind}` gauge. */
export function countByKind(list: readonly NotEnforced[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const n of list) m.set(n.kind, (m.get(n.kind) ?? 0) + 1);
  return m;
}

/** Protocols one HTTP listener serves together (HTTP, HTTP2, GRPC share the HTTP codec). */
function sameListener(protocol: string): string {
  if (protocol === 'HTTP' || protocol === 'HTTP2' || protocol === 'GRPC' || protocol === 'GRPC-WEB')
    return 'http';
  if (protocol === 'HTTPS' || protocol === 'TLS') return 'tls';
  if (protocol === 'TCP' || protocol === 'MONGO' || protocol === 'MYSQL' || protocol === 'REDIS')
    return 'tcp';
  return protocol;
}
