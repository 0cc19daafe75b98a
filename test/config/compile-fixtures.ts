// Shared helpers for the compile() suites: write real Istio YAML into a tap testdir, load and
// validate it with the real loader, compile it, and ask the snapshot the questions the data path asks.

import type { Test } from 'tap';
import { compile } from '../../dist/config/compile/index.js';
import { loadConfig } from '../../dist/config/load.js';
import type {
  CompiledRoute,
  Listener,
  ProxyIdentity,
  RequestView,
  RouteActionRoute,
  Snapshot,
  VirtualHost,
} from '../../dist/config/snapshot.js';
import type { AnyResource } from '../../dist/config/types.js';

export const GATEWAY: ProxyIdentity = {
  mode: 'router',
  labels: { istio: 'ingressgateway' },
  namespace: 'istio-system',
};

export const SIDECAR: ProxyIdentity = {
  mode: 'sidecar',
  labels: { app: 'productpage', version: 'v1' },
  namespace: 'default',
};

/** Load YAML files from a fresh testdir; fails the test if any document is invalid. */
export function load(t: Test, files: Parameters<Test['testdir']>[0]): AnyResource[] {
  const dir = t.testdir(files);
  const r = loadConfig([dir]);
  t.strictSame(
    r.errors.map((e) => `${e.file}[${e.index}] ${e.path}: ${e.message}`),
    [],
    'config loads without errors',
  );
  return r.resources;
}

export function compileYaml(t: Test, yaml: string, identity: ProxyIdentity): Snapshot {
  return compile(load(t, { 'config.yaml': yaml }), identity);
}

export function listenerOn(snap: Snapshot, port: number): Listener | undefined {
  return snap.listeners.find((l) => l.port === port);
}

export function outbound(snap: Snapshot): Listener {
  const l = snap.listeners.find((x) => x.kind === 'outbound');
  if (!l) throw new Error('no outbound listener');
  return l;
}

export function req(p: Partial<RequestView> = {}): RequestView {
  return { method: 'GET', path: '/', query: '', authority: 'example.com', scheme: 'http', headers: {}, ...p };
}

/** The first route of a virtual host that a request matches (Envoy: first match wins). */
export function routeFor(vh: VirtualHost | undefined, r: RequestView): CompiledRoute | undefined {
  return vh?.routes.find((x) => x.matchers.length === 0 || x.matchers.some((m) => m(r)));
}

/** Cluster names of a route action (throws when the action is not a route). */
export function clustersOf(route: CompiledRoute | undefined): string[] {
  if (route?.action.kind !== 'route') throw new Error(`not a route action: ${route?.action.kind}`);
  return (route.action as RouteActionRoute).destinations.map((d) => d.cluster);
}

/** Where a request for `host` + `path` goes on listener `l`: the first cluster, or a marker. */
export function dispatch(l: Listener | undefined, host: string, p: Partial<RequestView> = {}): string {
  const vh = l?.routes.lookup(host);
  if (!vh) return 'NO_VHOST';
  if (vh.httpsRedirect) return 'HTTPS_REDIRECT';
  if (vh.fallback) return vh.fallback.toUpperCase();
  const r = routeFor(vh, req({ authority: host, ...p }));
  if (!r) return 'NO_ROUTE';
  if (r.action.kind !== 'route') return r.action.kind.toUpperCase();
  return r.action.destinations[0]?.cluster ?? 'NO_DESTINATION';
}

/** A ServiceEntry making `host` (short name, in `ns`) a mesh service with one static endpoint per version. */
export function service(
  name: string,
  ns: string,
  ports: { number: number; name: string; targetPort?: number }[],
  endpoints: { address: string; labels?: Record<string, string>; ports?: Record<string, number> }[] = [],
): string {
  const portYaml = ports
    .map(
      (p) =>
        `    - number: ${p.number}\n      name: ${p.name}\n      protocol: HTTP${p.targetPort ? `\n      targetPort: ${p.targetPort}` : ''}`,
    )
    .join('\n');
  const epYaml = endpoints
    .map((e) => {
      const labels = e.labels
        ? `\n      labels:\n${Object.entries(e.labels)
            .map(([k, v]) => `        ${k}: ${v}`)
            .join('\n')}`
        : '';
      const eports = e.ports
        ? `\n      ports:\n${Object.entries(e.ports)
            .map(([k, v]) => `        ${k}: ${v}`)
            .join('\n')}`
        : '';
      return `    - address: ${e.address}${labels}${eports}`;
    })
    .join('\n');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  hosts:
    - ${name}.${ns}.svc.cluster.local
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
${portYaml}
${endpoints.length ? `  endpoints:\n${epYaml}\n` : ''}`;
}
