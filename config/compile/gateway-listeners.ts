// Router mode: a listener per selected Gateway server port; virtual hosts are the intersection of
// server hosts and the hosts of the VirtualServices bound to that gateway (merged across VSs on
// gateways, as Istio does). A server with no VS bound serves 404 (Istio's blackhole vhost).
// Each listener carries its filter chains: plaintext HTTP servers share one `http` chain; HTTPS,
// TLS and TCP servers compile into the chains Istio builds for them (TLS terminated, with its
// material, or passed through by SNI; TCP), one per server or per VS `tls:` match block.

import type { CredentialStore } from '../credentials.js';
import { expandHost, gatewayRef, hostIntersection, labelsMatch } from '../names.js';
import type {
  CompiledRoute,
  FilterChain,
  L4Route,
  Listener,
  ProxyIdentity,
  RouteTable,
  VirtualHost,
} from '../snapshot.js';
import type { Resource, RouteDestination, Server } from '../types.js';
import { plaintextHttpChains } from './filter-chains.js';
import { compileVsHttpRoutes, type RouteContext } from './routes.js';
import { compileServerTls } from './tls-settings.js';
import { buildRouteTable } from './virtual-hosts.js';

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

export interface GatewayInputs {
  gateways: Resource<'Gateway'>[];
  virtualServices: Resource<'VirtualService'>[];
  identity: ProxyIdentity;
  resolve: RouteContext['resolve'];
  /** Compile warnings; what is not served is reported by config/not-enforced.ts instead. */
  warnings: string[];
  /** TLS material by credential key (config/credentials.ts). */
  credentials?: CredentialStore;
}

interface ServerRef {
  gw: Resource<'Gateway'>;
  server: Server;
}

function serverHostParts(h: string): { ns: string; dns: string } {
  const i = h.indexOf('/');
  return i >= 0
    ? { ns: h.slice(0, i), dns: h.slice(i + 1).toLowerCase() }
    : { ns: '*', dns: h.toLowerCase() };
}

export function buildGatewayListeners(inp: GatewayInputs): Listener[] {
  const selected = inp.gateways.filter((g) => labelsMatch(g.spec.selector, inp.identity.labels));
  const groups = new Map<string, ServerRef[]>();
  for (const gw of selected) {
    for (const server of gw.spec.servers) {
      const key = `${server.bind || '0.0.0.0'}:${server.port.number}`;
      const list = groups.get(key) ?? [];
      list.push({ gw, server });
      groups.set(key, list);
    }
  }
  const listeners: Listener[] = [];
  for (const [, servers] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
    const first = servers[0] as ServerRef;
    const protocol = first.server.port.protocol.toUpperCase();
    const port = first.server.port.number;
    const address = first.server.bind || '0.0.0.0';
    // TLS and TCP servers; UDP and HTTP_PROXY build nothing (config/not-enforced.ts reports them
    // in `courier validate`, the agent's log, /config_dump and a metric).
    if (!HTTP_PROTOCOLS.has(protocol)) {
      const l = l4Listener(inp, servers, protocol, address, port);
      if (l) listeners.push(l);
      continue;
    }
    const gatewayNames = new Set(servers.map((s) => `${s.gw.namespace}/${s.gw.name}`));
    const routes = httpRouteTable(inp, servers, gatewayNames, port, `http.${port}`);
    listeners.push(
      Object.freeze({
        name: `${address}_${port}`,
        address,
        port,
        protocol,
        kind: 'gateway',
        routes,
        filterChains: plaintextHttpChains(routes),
        gateways: Object.freeze([...gatewayNames]),
      }),
    );
  }
  return listeners;
}

/** The route table of HTTP servers sharing a port (or of one HTTPS server): their hosts ∩ bound VS hosts. */
function httpRouteTable(
  inp: GatewayInputs,
  servers: readonly ServerRef[],
  gatewayNames: ReadonlySet<string>,
  port: number,
  name: string,
): RouteTable {
  const ctx: RouteContext = {
    gatewayNames,
    proxyLabels: inp.identity.labels,
    proxyNamespace: inp.identity.namespace,
    port,
    gatewayRef,
    resolve: inp.resolve,
  };
  const vhosts = new Map<string, { routes: CompiledRoute[]; vs: Set<string>; httpsRedirect: boolean }>();
  const vsRoutes = new Map<string, CompiledRoute[]>();
  const catchAll = new Set<CompiledRoute>();
  const routesOf = (vs: Resource<'VirtualService'>): CompiledRoute[] => {
    const k = `${vs.namespace}/${vs.name}`;
    let rs = vsRoutes.get(k);
    if (!rs) {
      const compiled = compileVsHttpRoutes(vs, ctx);
      rs = compiled.routes;
      if (compiled.catchAll) catchAll.add(compiled.catchAll);
      vsRoutes.set(k, rs);
    }
    return rs;
  };
  const bound = (s: ServerRef) =>
    inp.virtualServices.filter((vs) =>
      (vs.spec.gateways ?? []).some((g) => gatewayRef(g, vs.namespace) === `${s.gw.namespace}/${s.gw.name}`),
    );
  for (const s of servers) {
    const redirect = s.server.tls?.httpsRedirect === true;
    for (const sh of s.server.hosts) {
      const { ns, dns } = serverHostParts(sh);
      for (const vs of bound(s)) {
        const nsOk = ns === '*' || (ns === '.' ? vs.namespace === s.gw.namespace : vs.namespace === ns);
        if (!nsOk) continue;
        for (const vh of vs.spec.hosts ?? []) {
          const h = hostIntersection(dns, expandHost(vh, vs.namespace));
          if (!h) continue;
          const entry = vhosts.get(h) ?? { routes: [], vs: new Set<string>(), httpsRedirect: false };
          entry.httpsRedirect ||= redirect;
          const vsKey = `${vs.namespace}/${vs.name}`;
          if (!entry.vs.has(vsKey)) {
            entry.vs.add(vsKey);
            entry.routes.push(...routesOf(vs));
          }
          vhosts.set(h, entry);
        }
      }
      if (redirect) {
        const entry = vhosts.get(dns) ?? { routes: [], vs: new Set<string>(), httpsRedirect: true };
        entry.httpsRedirect = true;
        vhosts.set(dns, entry);
      }
    }
  }
  const vhList: VirtualHost[] = [...vhosts].map(([h, e]) =>
    Object.freeze({
      name: `${h}:${port}`,
      domains: Object.freeze([h]),
      // Istio SortVHostRoutes: catch-all routes of merged VSs go last, other routes keep their order.
      routes: Object.freeze([
        ...e.routes.filter((r) => !catchAll.has(r)),
        ...e.routes.filter((r) => catchAll.has(r)),
      ]),
      ...(e.httpsRedirect ? { httpsRedirect: true } : {}),
    }),
  );
  return buildRouteTable(name, vhList, { ignorePort: true });
}

const TLS_PROTOCOLS = new Set(['HTTPS', 'TLS']);
const TCP_PROTOCOLS = new Set(['TCP', 'MONGO', 'MYSQL', 'REDIS']);

/**
 * The listener of TLS or TCP servers sharing a port, as Istio builds it: every TLS server is its
 * own chain (terminating HTTPS: its own route table; TLS terminated: a VS `tcp:` route;
 * PASSTHROUGH: one chain per VS `tls:` match block, by its sniHosts); a TCP server is a chain to
 * the first VS `tcp:` route. Servers of the other class on the port are skipped (the first server
 * decides), as are chains whose match repeats an earlier one. No chain: no listener.
 */
function l4Listener(
  inp: GatewayInputs,
  servers: readonly ServerRef[],
  protocol: string,
  address: string,
  port: number,
): Listener | undefined {
  const cls = TLS_PROTOCOLS.has(protocol)
    ? TLS_PROTOCOLS
    : TCP_PROTOCOLS.has(protocol)
      ? TCP_PROTOCOLS
      : undefined;
  if (!cls) return undefined; // UDP, HTTP_PROXY: nothing to build
  const chains: FilterChain[] = [];
  const taken = new Set<string>();
  const gateways = new Set<string>();
  /** `what` names the skipped server or VS rule in the warning, as Istio's log does. */
  const add = (s: ServerRef, chain: FilterChain, what?: string) => {
    const t = chain.match.transportProtocol;
    const names = chain.match.serverNames.length === 0 ? [''] : chain.match.serverNames;
    const dup = names.filter((n) => taken.has(`${t}|${n}`));
    if (dup.length > 0) {
      // Istio skips the later duplicate (servers in Gateway order, VirtualServices in file order).
      const shown = dup.map((n) => n || '*').join(' ');
      inp.warnings.push(
        what
          ? `skipping ${what} on server port ${port} of gateway ${s.gw.namespace}/${s.gw.name}, duplicate SNI host names: [${shown}]`
          : `skipping server ${s.server.port.name ?? ''} on gateway ${s.gw.namespace}/${s.gw.name}, duplicate host names: [${shown}]`,
      );
      return;
    }
    for (const n of names) taken.add(`${t}|${n}`);
    chains.push(Object.freeze(chain));
    gateways.add(`${s.gw.namespace}/${s.gw.name}`);
  };
  for (const s of servers) {
    const proto = s.server.port.protocol.toUpperCase();
    if (!cls.has(proto)) continue;
    const gwName = `${s.gw.namespace}/${s.gw.name}`;
    const vss = boundVirtualServices(inp, s);
    const mode = s.server.tls?.mode ?? 'PASSTHROUGH';
    if (cls === TCP_PROTOCOLS) {
      const route = firstTcpRoute(inp, vss, gwName, port);
      if (route) add(s, { transport: 'tcp', name: route.name, match: RAW_MATCH, route });
      continue;
    }
    if (mode === 'AUTO_PASSTHROUGH') continue; // SNI-encoded clusters (multi-network): not modelled
    if (mode === 'PASSTHROUGH') {
      for (const vs of vss)
        (vs.spec.tls ?? []).forEach((rule, i) => {
          if ((rule.route ?? []).length === 0) return;
          const route = l4Route(inp, vs, 'tls', i, rule.route ?? []);
          for (const m of rule.match ?? []) {
            if (m.port !== undefined && m.port !== 0 && m.port !== port) continue;
            if (m.gateways?.length && !m.gateways.some((g) => gatewayRef(g, vs.namespace) === gwName))
              continue;
            const match = tlsMatch(m.sniHosts ?? []);
            add(
              s,
              {
                transport: 'tls_passthrough',
                name: `${route.name}|${match.serverNames.join(',')}`,
                match,
                route,
              },
              `VirtualService ${vs.namespace}/${vs.name} rule #${i}`,
            );
          }
        });
      continue;
    }
    const tls = compileServerTls(s.server.tls ?? {}, inp.credentials ?? {}, inp.identity.namespace);
    const match = tlsMatch(s.server.hosts.map((h) => serverHostParts(h).dns));
    const name = `https.${port}.${s.server.port.name ?? ''}.${s.gw.name}.${s.gw.namespace}`;
    if (proto === 'HTTPS') {
      const routes = httpRouteTable(inp, [s], new Set([gwName]), port, name);
      add(s, { transport: 'https', name, match, tls, routes });
    } else {
      const route = firstTcpRoute(inp, vss, gwName, port);
      if (route) add(s, { transport: 'tcp', name, match, tls, route });
    }
  }
  if (chains.length === 0) return undefined; // Istio builds no listener without chains
  return Object.freeze({
    name: `${address}_${port}`,
    address,
    port,
    protocol,
    kind: 'gateway',
    routes: buildRouteTable('', [], { ignorePort: true }),
    filterChains: Object.freeze(chains),
    gateways: Object.freeze([...gateways]),
  });
}

const RAW_MATCH = Object.freeze({ transportProtocol: 'raw_buffer', serverNames: Object.freeze([]) } as const);

/** SNI names as Envoy matches them: lowercase, sorted, deduplicated; `*` means no SNI condition. */
function tlsMatch(hosts: readonly string[]): { transportProtocol: 'tls'; serverNames: readonly string[] } {
  const names = hosts.map((h) => h.toLowerCase());
  return Object.freeze({
    transportProtocol: 'tls',
    serverNames: Object.freeze(names.includes('*') ? [] : [...new Set(names)].sort()),
  });
}

/** VirtualServices bound to this server's gateway with a host its hosts cover (Istio's pickMatchingGatewayHosts). */
function boundVirtualServices(inp: GatewayInputs, s: ServerRef): Resource<'VirtualService'>[] {
  const gwName = `${s.gw.namespace}/${s.gw.name}`;
  return inp.virtualServices.filter((vs) => {
    if (!(vs.spec.gateways ?? []).some((g) => gatewayRef(g, vs.namespace) === gwName)) return false;
    return s.server.hosts.some((sh) => {
      const { ns, dns } = serverHostParts(sh);
      const nsOk = ns === '*' || (ns === '.' ? vs.namespace === s.gw.namespace : vs.namespace === ns);
      return nsOk && (vs.spec.hosts ?? []).some((vh) => hostIntersection(dns, expandHost(vh, vs.namespace)));
    });
  });
}

/** The first VS `tcp:` rule with routes whose match passes at this gateway (only port and gateways count). */
function firstTcpRoute(
  inp: GatewayInputs,
  vss: readonly Resource<'VirtualService'>[],
  gwName: string,
  port: number,
): L4Route | undefined {
  for (const vs of vss) {
    const rules = vs.spec.tcp ?? [];
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i];
      if (!rule || (rule.route ?? []).length === 0) continue;
      const matches = rule.match ?? [];
      const passes =
        matches.length === 0 ||
        matches.some(
          (m) =>
            (m.port === undefined || m.port === 0 || m.port === port) &&
            (!m.gateways?.length || m.gateways.some((g) => gatewayRef(g, vs.namespace) === gwName)),
        );
      if (passes) return l4Route(inp, vs, 'tcp', i, rule.route ?? []);
    }
  }
  return undefined;
}

/** Weighted destinations as for HTTP routes: one takes all, none weighted splits evenly, zeros dropped. */
function l4Route(
  inp: GatewayInputs,
  vs: Resource<'VirtualService'>,
  kind: 'tcp' | 'tls',
  index: number,
  list: readonly RouteDestination[],
): L4Route {
  const anyWeight = list.some((d) => d.weight !== undefined);
  const destinations = list
    .map((d) => ({
      ...inp.resolve(d.destination, vs.namespace),
      weight: list.length === 1 || !anyWeight ? 1 : (d.weight ?? 0),
    }))
    .filter((d) => d.weight > 0);
  return Object.freeze({
    name: `${vs.namespace}.${vs.name}.${kind}.${index}`,
    virtualService: `${vs.namespace}/${vs.name}`,
    destinations: Object.freeze(destinations.map((d) => Object.freeze(d))),
    totalWeight: destinations.reduce((n, d) => n + d.weight, 0),
  });
}
