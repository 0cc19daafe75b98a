// Router mode: a listener per selected Gateway server port; virtual hosts are the intersection of
// server hosts and the hosts of the VirtualServices bound to that gateway (merged across VSs on
// gateways, as Istio does). A server with no VS bound serves 404 (Istio's blackhole vhost).

import { expandHost, gatewayRef, hostIntersection, labelsMatch } from '../names.js';
import type { CompiledRoute, Listener, ProxyIdentity, VirtualHost } from '../snapshot.js';
import type { Resource, Server } from '../types.js';
import { compileHttpRoute, isCatchAll, type RouteContext } from './routes.js';
import { buildRouteTable } from './virtual-hosts.js';

const HTTP_PROTOCOLS = new Set(['HTTP', 'HTTP2', 'GRPC', 'GRPC-WEB']);

export interface GatewayInputs {
  gateways: Resource<'Gateway'>[];
  virtualServices: Resource<'VirtualService'>[];
  identity: ProxyIdentity;
  resolve: RouteContext['resolve'];
  /** Compile warnings; what is not served is reported by config/not-enforced.ts instead. */
  warnings: string[];
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
    // Not served yet: config/not-enforced.ts reports each such server (and HTTP2/GRPC ones, served
    // as HTTP/1.1) in `courier validate`, the agent's log, /config_dump and a metric.
    if (!HTTP_PROTOCOLS.has(protocol)) continue;
    const gatewayNames = new Set(servers.map((s) => `${s.gw.namespace}/${s.gw.name}`));
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
        rs = [];
        const http = vs.spec.http ?? [];
        for (let i = 0; i < http.length; i++) {
          const src = http[i];
          if (!src) continue;
          const r = compileHttpRoute(src, i, vs, ctx);
          if (!r) continue;
          rs.push(r);
          if (isCatchAll(src, vs.namespace, ctx)) {
            catchAll.add(r);
            break; // Istio stops generating routes after a catch-all
          }
        }
        vsRoutes.set(k, rs);
      }
      return rs;
    };
    const bound = (s: ServerRef) =>
      inp.virtualServices.filter((vs) =>
        (vs.spec.gateways ?? []).some(
          (g) => gatewayRef(g, vs.namespace) === `${s.gw.namespace}/${s.gw.name}`,
        ),
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
    listeners.push(
      Object.freeze({
        name: `${address}_${port}`,
        address,
        port,
        protocol,
        kind: 'gateway',
        routes: buildRouteTable(`http.${port}`, vhList, { ignorePort: true }),
        gateways: Object.freeze([...gatewayNames]),
      }),
    );
  }
  return listeners;
}
