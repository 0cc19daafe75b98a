// Sidecar mode: one outbound HTTP listener (127.0.0.1) routing by Host in every form Istio
// generates, and one inbound listener forwarding to the local application.

import { CLUSTER_DOMAIN, expandHost, gatewayRef, hostCovers, labelsMatch } from '../names.js';
import type { CompiledRoute, Listener, ProxyIdentity, VirtualHost } from '../snapshot.js';
import type { Destination, Resource, SidecarSpec } from '../types.js';
import { clusterName, inboundClusterName } from './clusters.js';
import { plaintextHttpChains } from './filter-chains.js';
import type { Registry, Service } from './registry.js';
import { compileVsHttpRoutes, defaultRetryPolicy, NO_HEADERS, type RouteContext } from './routes.js';
import { buildRouteTable } from './virtual-hosts.js';

export interface SidecarInputs {
  registry: Registry;
  virtualServices: Resource<'VirtualService'>[];
  sidecars: Resource<'Sidecar'>[];
  identity: ProxyIdentity;
  /** Destination → cluster; `listenerPort` applies when neither the destination nor a single-port service names one. */
  resolve: (
    d: Destination,
    vsNamespace: string,
    listenerPort?: number,
  ) => ReturnType<RouteContext['resolve']>;
}

/** The Sidecar resource for this workload: one whose selector matches, else the namespace default. */
export function selectSidecar(
  sidecars: Resource<'Sidecar'>[],
  identity: ProxyIdentity,
): SidecarSpec | undefined {
  const inNs = sidecars.filter((s) => s.namespace === identity.namespace);
  const bySelector = inNs.find(
    (s) => s.spec.workloadSelector?.labels && labelsMatch(s.spec.workloadSelector.labels, identity.labels),
  );
  return (
    bySelector ??
    inNs.find((s) => !s.spec.workloadSelector) ??
    sidecars.find((s) => s.namespace === 'istio-system' && !s.spec.workloadSelector)
  )?.spec;
}

export function appliesToMesh(vs: Resource<'VirtualService'>): boolean {
  const g = vs.spec.gateways;
  return !g || g.length === 0 || g.includes('mesh');
}

/** Every Host form Istio generates for a service port (GenerateAltVirtualHosts). */
export function hostForms(host: string, svcNamespace: string, proxyNamespace: string): string[] {
  const forms = [host];
  const suffix = `.${svcNamespace}.${CLUSTER_DOMAIN}`;
  if (host.endsWith(suffix)) {
    const name = host.slice(0, -suffix.length);
    forms.push(`${name}.${svcNamespace}.svc`, `${name}.${svcNamespace}`);
    if (svcNamespace === proxyNamespace) forms.push(name);
  }
  return forms;
}

function egressVisible(spec: SidecarSpec | undefined, svc: Service, proxyNs: string): boolean {
  const egress = spec?.egress;
  if (!egress || egress.length === 0) return true;
  return egress.some((e) =>
    e.hosts.some((h) => {
      const [ns = '*', dns = '*'] = h.split('/');
      const nsOk = ns === '*' || (ns === '.' ? svc.namespace === proxyNs : ns === svc.namespace);
      return nsOk && hostCovers(dns.toLowerCase(), svc.host);
    }),
  );
}

function defaultRoute(svcHost: string, port: number, svc: Service | undefined): CompiledRoute {
  return {
    name: 'default',
    virtualService: '',
    matchers: [],
    matchPrefixes: ['/'],
    action: {
      kind: 'route',
      destinations: [
        {
          cluster: clusterName(port, '', svc?.host ?? svcHost),
          host: svc?.host ?? svcHost,
          subset: '',
          port,
          weight: 1,
          headers: NO_HEADERS,
        },
      ],
      totalWeight: 1,
    },
    timeoutMs: 0,
    retry: defaultRetryPolicy(),
    mirrors: [],
    headers: NO_HEADERS,
  };
}

export function buildSidecarListeners(inp: SidecarInputs): Listener[] {
  const { identity } = inp;
  const sc = selectSidecar(inp.sidecars, identity);
  const meshVs = inp.virtualServices.filter(appliesToMesh);
  const vsFor = (host: string) =>
    meshVs.find((vs) => (vs.spec.hosts ?? []).some((h) => expandHost(h, vs.namespace) === host)) ??
    meshVs.find((vs) => (vs.spec.hosts ?? []).some((h) => hostCovers(expandHost(h, vs.namespace), host)));
  const vhosts: VirtualHost[] = [];
  const routesFor = (host: string, port: number, svc: Service | undefined): CompiledRoute[] => {
    const vs = vsFor(host);
    if (!vs) return [defaultRoute(host, port, svc)];
    const ctx: RouteContext = {
      gatewayNames: new Set(['mesh']),
      proxyLabels: identity.labels,
      proxyNamespace: identity.namespace,
      port,
      gatewayRef,
      resolve: (d, ns) => inp.resolve(d, ns, port),
    };
    const out = compileVsHttpRoutes(vs, ctx).routes;
    return out.length > 0 ? out : [defaultRoute(host, port, svc)];
  };
  const covered = new Set<string>();
  /** One virtual host per service port; the port-less forms on the default (80, else first) port. */
  const addVhosts = (host: string, forms: string[], svc: Service) => {
    const defaultPort = svc.ports.find((p) => p.number === 80)?.number ?? svc.ports[0]?.number;
    for (const p of svc.ports) {
      const domains = forms.map((f) => `${f}:${p.number}`);
      if (p.number === defaultPort) domains.push(...forms);
      vhosts.push(
        Object.freeze({
          name: `${host}:${p.number}`,
          domains,
          routes: Object.freeze(routesFor(host, p.number, svc)),
        }),
      );
    }
    covered.add(host);
  };
  // Every visible service, wildcard hosts (`*.example.com`) included: Envoy matches those domains
  // after exact ones, so a wildcard ServiceEntry admits its hosts under REGISTRY_ONLY too.
  for (const svc of inp.registry.services.values()) {
    if (!egressVisible(sc, svc, identity.namespace)) continue;
    const forms = svc.host.startsWith('*')
      ? [svc.host]
      : [
          ...hostForms(svc.host, svc.namespace, identity.namespace),
          ...svc.addresses.filter((a) => !a.includes('/')),
        ];
    addVhosts(svc.host, forms, svc);
  }
  // VirtualService hosts that are not a service host of their own still route, as Istio does:
  // covered by a wildcard ServiceEntry, on its ports; with no service behind them, on port 80.
  for (const vs of meshVs) {
    for (const h of vs.spec.hosts ?? []) {
      const host = expandHost(h, vs.namespace);
      const svc = inp.registry.lookup(host);
      if (covered.has(host) || svc?.host === host) continue;
      if (svc) {
        if (egressVisible(sc, svc, identity.namespace) && !host.startsWith('*'))
          addVhosts(host, hostForms(host, vs.namespace, identity.namespace), svc);
        continue;
      }
      covered.add(host);
      const forms = host.startsWith('*') ? [host] : hostForms(host, vs.namespace, identity.namespace);
      vhosts.push(
        Object.freeze({
          name: `${host}:80`,
          domains: [...forms.map((f) => `${f}:80`), ...forms],
          routes: Object.freeze(routesFor(host, 80, undefined)),
        }),
      );
    }
  }
  const mode = sc?.outboundTrafficPolicy?.mode ?? 'ALLOW_ANY';
  vhosts.push(
    Object.freeze({
      name: mode === 'ALLOW_ANY' ? 'allow_any' : 'block_all',
      domains: ['*'],
      routes: [],
      fallback: mode === 'ALLOW_ANY' ? 'passthrough' : 'block',
    }),
  );
  const outbound = buildRouteTable('outbound', vhosts, { ignorePort: false });
  const listeners: Listener[] = [
    Object.freeze({
      name: 'virtualOutbound',
      address: '127.0.0.1',
      port: identity.outboundPort ?? 15001,
      protocol: 'HTTP',
      kind: 'outbound',
      routes: outbound,
      filterChains: plaintextHttpChains(outbound),
      gateways: ['mesh'],
    }),
  ];
  const ingressEndpoint = sc?.ingress?.find((i) => i.defaultEndpoint)?.defaultEndpoint;
  const appPort =
    identity.appPort ?? (ingressEndpoint ? Number(ingressEndpoint.split(':').pop()) : undefined);
  if (appPort) {
    const route: CompiledRoute = {
      ...defaultRoute('inbound', appPort, undefined),
      name: 'default',
      action: {
        kind: 'route',
        destinations: [
          {
            cluster: inboundClusterName(appPort),
            host: 'inbound',
            subset: '',
            port: appPort,
            weight: 1,
            headers: NO_HEADERS,
          },
        ],
        totalWeight: 1,
      },
      retry: {
        numRetries: 2,
        perTryTimeoutMs: 0,
        retryOn: new Set(['reset-before-request']),
        retriableStatusCodes: new Set(),
        backoffBaseMs: 25,
        retryOtherHosts: false,
      },
    };
    const inbound = buildRouteTable('inbound', [{ name: 'inbound|http', domains: ['*'], routes: [route] }], {
      ignorePort: true,
    });
    listeners.push(
      Object.freeze({
        name: 'virtualInbound',
        address: '0.0.0.0',
        port: identity.inboundPort ?? 15006,
        protocol: 'HTTP',
        kind: 'inbound',
        routes: inbound,
        filterChains: plaintextHttpChains(inbound),
        gateways: [],
      }),
    );
  }
  return listeners;
}
