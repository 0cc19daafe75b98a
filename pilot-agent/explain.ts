// `courier explain`: which listener, virtual host, route, action, cluster/subset and load-balancing
// policy a request would take — computed by compile() and the proxy's own router (proxy/router.ts,
// pure: no upstream code is loaded), so what it prints is what the proxy decides.

import { compile } from '../config/compile/index.js';
import { loadConfig } from '../config/load.js';
import type { ProxyIdentity, RequestView, Snapshot } from '../config/snapshot.js';
import { formatError } from '../config/types.js';
import { normalizePath } from '../proxy/http-util.js';
import { decideRoute, httpsRedirectLocation, redirectLocation } from '../proxy/router.js';
import { parseLabels, UsageError } from './options.js';

export interface ExplainArgs {
  configDir: string;
  identity: ProxyIdentity;
  method: string;
  url: string;
  headers: Record<string, string>;
}

export function parseExplainArgs(argv: string[]): ExplainArgs {
  let configDir: string | undefined;
  let mode: 'router' | 'sidecar' = 'router';
  let labels: Record<string, string> | undefined;
  let namespace = 'default';
  const headers: Record<string, string> = {};
  const pos: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value`);
      return v;
    };
    if (a === '--config-dir') configDir = next();
    else if (a === '--mode') {
      const m = next();
      if (m !== 'router' && m !== 'sidecar') throw new UsageError('--mode must be router or sidecar');
      mode = m;
    } else if (a === '--labels') labels = parseLabels(next());
    else if (a === '--namespace') namespace = next();
    else if (a === '-H' || a === '--header') {
      const h = next();
      const c = h.indexOf(':');
      if (c <= 0) throw new UsageError(`-H expects 'name: value', got ${JSON.stringify(h)}`);
      headers[h.slice(0, c).trim().toLowerCase()] = h.slice(c + 1).trim();
    } else pos.push(a);
  }
  if (!configDir) throw new UsageError('--config-dir is required');
  const [method, url] = pos;
  if (!method || !url || pos.length > 2) throw new UsageError('expected METHOD URL');
  return {
    configDir,
    identity: { mode, labels: labels ?? (mode === 'router' ? { istio: 'ingressgateway' } : {}), namespace },
    method: method.toUpperCase(),
    url,
    headers,
  };
}

export function explain(args: ExplainArgs): { lines: string[]; ok: boolean } {
  const r = loadConfig([args.configDir], { displayBase: args.configDir });
  if (r.errors.length > 0) return { lines: r.errors.map(formatError), ok: false };
  const snap = compile(r.resources, args.identity);
  return explainRequest(snap, args);
}

export function explainRequest(snap: Snapshot, args: ExplainArgs): { lines: string[]; ok: boolean } {
  const lines: string[] = [];
  let u: URL;
  try {
    u = new URL(args.url.includes('://') ? args.url : `http://${args.url}`);
  } catch {
    return { lines: [`invalid URL ${JSON.stringify(args.url)}`], ok: false };
  }
  const port = u.port ? Number(u.port) : 80;
  const authority = args.headers.host ?? u.host;
  const listener =
    snap.identity.mode === 'sidecar'
      ? snap.listeners.find((l) => l.kind === 'outbound')
      : snap.listeners.find((l) => l.port === port);
  if (!listener) {
    lines.push(
      `listener: none on port ${port} (listeners: ${snap.listeners.map((l) => l.name).join(', ') || 'none'})`,
    );
    return { lines, ok: false };
  }
  lines.push(`listener: ${listener.name} (${listener.kind}, ${listener.protocol})`);
  const path = normalizePath(decodeURI(u.pathname)) ?? u.pathname;
  const view: RequestView = {
    method: args.method,
    path,
    query: u.search.replace(/^\?/, ''),
    authority,
    scheme: 'http',
    headers: { ...args.headers, host: authority },
  };
  const d = decideRoute(listener, view);
  const vh = d.vh;
  if (!vh) {
    lines.push(`virtual host: none matches ${JSON.stringify(authority)} -> 404 NR`);
    return { lines, ok: true };
  }
  lines.push(`virtual host: ${vh.name} (domains: ${vh.domains.join(', ')})`);
  if (d.kind === 'https_redirect') {
    const pq = view.query ? `${view.path}?${view.query}` : view.path;
    lines.push(`action: https redirect (301) to ${httpsRedirectLocation(authority, pq)}`);
    return { lines, ok: true };
  }
  if (d.kind === 'fallback') {
    lines.push(d.mode === 'block' ? 'action: REGISTRY_ONLY -> 502' : `action: passthrough to ${authority}`);
    return { lines, ok: true };
  }
  if (d.kind === 'no_route') {
    lines.push('route: none matches -> 404 NR');
    return { lines, ok: true };
  }
  const route = d.route;
  lines.push(
    `route: ${route.name} (#${vh.routes.indexOf(route)} of ${vh.routes.length}, from VirtualService ${route.virtualService || '(default)'})`,
  );
  const a = route.action;
  if (a.kind === 'redirect') {
    lines.push(`action: redirect ${a.code} to ${redirectLocation(a, view, listener.port, d.prefix)}`);
    return { lines, ok: true };
  }
  if (a.kind === 'direct_response') {
    lines.push(`action: direct response ${a.status}${a.body ? ` (${a.body.length} bytes)` : ''}`);
    return { lines, ok: true };
  }
  if (route.fault?.abort)
    lines.push(`fault: abort ${route.fault.abort.status} at ${route.fault.abort.percent}%`);
  if (route.fault?.delay)
    lines.push(`fault: delay ${route.fault.delay.ms}ms at ${route.fault.delay.percent}%`);
  lines.push(
    `timeout: ${route.timeoutMs ? `${route.timeoutMs}ms` : 'none'}; retries: ${route.retry.numRetries} on ${[...route.retry.retryOn].join(',') || '-'}`,
  );
  for (const d of a.destinations) {
    const share = a.destinations.length > 1 ? ` weight ${d.weight}/${a.totalWeight}` : '';
    const c = snap.clusters.get(d.cluster);
    lines.push(
      `destination: ${d.host}${d.subset ? ` subset ${d.subset}` : ''} port ${d.port}${share} -> cluster ${d.cluster}`,
    );
    if (!c) {
      lines.push('  cluster: not found -> 503 NC');
      continue;
    }
    const hash = c.hashPolicy
      ? ` by ${c.hashPolicy.kind}${'name' in c.hashPolicy ? ` ${c.hashPolicy.name}` : ''}`
      : '';
    lines.push(`  load balancer: ${c.lb.kind}${hash}`);
    lines.push(
      c.endpoints.length
        ? `  endpoints: ${c.endpoints.map((e) => `${e.address}:${e.port}`).join(', ')}`
        : c.discovery === 'original_dst'
          ? '  endpoints: original destination (resolution NONE)'
          : '  endpoints: none -> 503 UH',
    );
  }
  return { lines, ok: true };
}
