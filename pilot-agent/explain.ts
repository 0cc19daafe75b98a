// `courier explain`: which listener, filter chain (by SNI for TLS), virtual host, route, action,
// cluster/subset and load-balancing policy a request or a connection would take — computed by
// compile(), the dispatcher's chain selection (proxy/listener-dispatch.ts) and the proxy's own
// router (proxy/router.ts, pure: no upstream code is loaded), so what it prints is what the proxy
// decides. `https://` URLs go through the port's TLS chains by SNI (`--sni`, else the URL's host);
// `tcp://` and `tls://` URLs explain a connection (a TCP route, or a TLS one by SNI).

import { compile } from '../config/compile/index.js';
import { resolveCredentials } from '../config/credentials.js';
import { loadConfig } from '../config/load.js';
import type { Listener, ProxyIdentity, RequestView, ServerTls, Snapshot } from '../config/snapshot.js';
import { formatError } from '../config/types.js';
import { normalizePath } from '../proxy/http-util.js';
import { SERVED, selectFilterChain } from '../proxy/listener-dispatch.js';
import { decideRoute, httpsRedirectLocation, redirectLocation } from '../proxy/router.js';
import { parseLabels, UsageError } from './options.js';

export interface ExplainArgs {
  configDir: string;
  identity: ProxyIdentity;
  method: string;
  url: string;
  headers: Record<string, string>;
  /** SNI of a TLS connection (default: the URL's host name); '' for none. */
  sni?: string;
  credentialsDir?: string;
}

export function parseExplainArgs(argv: string[]): ExplainArgs {
  let configDir: string | undefined;
  let mode: 'router' | 'sidecar' = 'router';
  let labels: Record<string, string> | undefined;
  let namespace = 'default';
  const headers: Record<string, string> = {};
  let sni: string | undefined;
  let credentialsDir: string | undefined;
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
    else if (a === '--sni') sni = next();
    else if (a === '--credentials-dir') credentialsDir = next();
    else if (a === '--namespace') namespace = next();
    else if (a === '-H' || a === '--header') {
      const h = next();
      const c = h.indexOf(':');
      if (c <= 0) throw new UsageError(`-H expects 'name: value', got ${JSON.stringify(h)}`);
      headers[h.slice(0, c).trim().toLowerCase()] = h.slice(c + 1).trim();
    } else pos.push(a);
  }
  if (!configDir) throw new UsageError('--config-dir is required');
  // A connection (tcp://, tls://) needs no method.
  if (pos.length === 1 && /^(tcp|tls):\/\//.test(pos[0] as string)) pos.unshift('CONNECT');
  const [method, url] = pos;
  if (!method || !url || pos.length > 2)
    throw new UsageError('expected METHOD URL (or a tcp:// or tls:// URL)');
  return {
    configDir,
    identity: { mode, labels: labels ?? (mode === 'router' ? { istio: 'ingressgateway' } : {}), namespace },
    method: method.toUpperCase(),
    url,
    headers,
    ...(sni !== undefined ? { sni } : {}),
    ...(credentialsDir !== undefined ? { credentialsDir } : {}),
  };
}

export function explain(args: ExplainArgs): { lines: string[]; ok: boolean } {
  const r = loadConfig([args.configDir], { displayBase: args.configDir });
  if (r.errors.length > 0) return { lines: r.errors.map(formatError), ok: false };
  // TLS material as the agent resolves it, so a chain's certificate problems show as they would.
  const creds = resolveCredentials(r.resources, {
    namespace: args.identity.namespace,
    secrets: r.secrets,
    configDir: args.configDir,
    credentialsDir: args.credentialsDir,
  });
  const snap = compile(r.resources, args.identity, creds.store);
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
  const scheme = u.protocol.slice(0, -1);
  const tls = scheme === 'https' || scheme === 'tls';
  const port = u.port ? Number(u.port) : tls ? 443 : 80;
  const authority = args.headers.host ?? u.host;
  const found =
    snap.identity.mode === 'sidecar'
      ? snap.listeners.find((l) => l.kind === 'outbound')
      : snap.listeners.find((l) => l.port === port);
  if (!found) {
    lines.push(
      `listener: none on port ${port} (listeners: ${snap.listeners.map((l) => l.name).join(', ') || 'none'}) -> connection refused`,
    );
    return { lines, ok: false };
  }
  lines.push(`listener: ${found.name} (${found.kind}, ${found.protocol})`);
  // The filter chain, as the dispatcher picks it from the connection's first bytes.
  const sni = args.sni ?? (tls ? u.hostname : undefined);
  const first = tls ? 'tls' : scheme === 'tcp' ? 'tcp' : 'http1';
  const chain = selectFilterChain(
    found.filterChains,
    first,
    tls ? { serverName: sni || undefined, alpn: [], length: 0 } : undefined,
    SERVED,
  );
  if (!chain) {
    lines.push(
      `filter chain: none matches ${tls ? (sni ? `SNI ${JSON.stringify(sni)}` : 'a connection without SNI') : `${first} bytes`} -> connection closed (NR filter_chain_not_found)`,
    );
    return { lines, ok: true };
  }
  const names = chain.match.serverNames.length ? ` server names ${chain.match.serverNames.join(', ')}` : '';
  lines.push(`filter chain: ${chain.name} (${chain.transport}${names})`);
  if (chain.transport === 'https' || (chain.transport === 'tcp' && chain.tls)) {
    const t = chain.tls as ServerTls;
    const m = t.material;
    lines.push(
      `  tls: terminated, ${t.mode}${m?.source ? ` with ${m.source.replace(/#.*$/, '')}` : ''}${m?.error ? ` (${m.error}: connections are refused)` : ''}`,
    );
  }
  if (chain.transport === 'tcp' || chain.transport === 'tls_passthrough') {
    lines.push(`route: ${chain.route.name} (from VirtualService ${chain.route.virtualService})`);
    for (const d of chain.route.destinations) {
      const share =
        chain.route.destinations.length > 1 ? ` weight ${d.weight}/${chain.route.totalWeight}` : '';
      lines.push(
        `destination: ${d.host}${d.subset ? ` subset ${d.subset}` : ''} port ${d.port}${share} -> cluster ${d.cluster}`,
      );
      clusterLines(snap, d.cluster, lines);
    }
    return { lines, ok: true };
  }
  if (scheme === 'tcp' || scheme === 'tls') {
    lines.push(`a ${chain.transport} chain serves HTTP: use an http:// or https:// URL`);
    return { lines, ok: false };
  }
  const listener: Listener = chain.transport === 'https' ? { ...found, routes: chain.routes } : found;
  const path = normalizePath(decodeURI(u.pathname)) ?? u.pathname;
  const view: RequestView = {
    method: args.method,
    path,
    query: u.search.replace(/^\?/, ''),
    authority,
    scheme: tls ? 'https' : 'http',
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
    clusterLines(snap, d.cluster, lines);
  }
  return { lines, ok: true };
}

/** A cluster's load balancer, upstream TLS and endpoints. */
function clusterLines(snap: Snapshot, name: string, lines: string[]): void {
  const c = snap.clusters.get(name);
  if (!c) {
    lines.push('  cluster: not found -> connection closed (NC)');
    return;
  }
  const hash = c.hashPolicy
    ? ` by ${c.hashPolicy.kind}${'name' in c.hashPolicy ? ` ${c.hashPolicy.name}` : ''}`
    : '';
  lines.push(`  load balancer: ${c.lb.kind}${hash}`);
  const t = c.tls;
  if (t.mode !== 'DISABLE') {
    const sni = t.sni ? `sni ${t.sni}` : 'sni from the request authority';
    const verify = t.insecureSkipVerify
      ? 'not verified (insecureSkipVerify)'
      : `verified against ${t.material?.ca ? t.material.source.replace(/#.*$/, '') : 'the system roots'}${t.subjectAltNames.length ? `, SANs ${t.subjectAltNames.join(', ')}` : t.sni ? '' : ', hostname checked'}`;
    lines.push(
      `  upstream tls: ${t.mode}, ${sni}, ${verify}${t.material?.error ? ` (${t.material.error}: 503)` : ''}`,
    );
  }
  lines.push(
    c.endpoints.length
      ? `  endpoints: ${c.endpoints.map((e) => `${e.address}:${e.port}`).join(', ')}`
      : c.discovery === 'original_dst'
        ? '  endpoints: original destination (resolution NONE)'
        : '  endpoints: none -> 503 UH',
  );
}
