// A route table: virtual hosts and Envoy's domain matching order — exact domains, then suffix
// wildcards (`*.foo.com`, `*-bar.foo.com`; longest first), then prefix wildcards (`foo.*`;
// longest first), then `*`. A wildcard never matches the empty string.

import type { RouteTable, VirtualHost } from '../snapshot.js';

export function buildRouteTable(
  name: string,
  virtualHosts: VirtualHost[],
  opts: { ignorePort: boolean },
): RouteTable {
  const exact = new Map<string, VirtualHost>();
  const suffix: { s: string; vh: VirtualHost }[] = [];
  const prefix: { p: string; vh: VirtualHost }[] = [];
  let star: VirtualHost | undefined;
  for (const vh of virtualHosts) {
    for (const raw of vh.domains) {
      const d = raw.toLowerCase();
      if (d === '*') star ??= vh;
      else if (d.startsWith('*')) suffix.push({ s: d.slice(1), vh });
      else if (d.endsWith('*')) prefix.push({ p: d.slice(0, -1), vh });
      else if (!exact.has(d)) exact.set(d, vh);
    }
  }
  suffix.sort((a, b) => b.s.length - a.s.length);
  prefix.sort((a, b) => b.p.length - a.p.length);
  const match = (h: string): VirtualHost | undefined => {
    const e = exact.get(h);
    if (e) return e;
    for (const x of suffix) if (h.length > x.s.length && h.endsWith(x.s)) return x.vh;
    for (const x of prefix) if (h.length > x.p.length && h.startsWith(x.p)) return x.vh;
    return star;
  };
  const cache = new Map<string, VirtualHost | undefined>();
  const lookup = (host: string): VirtualHost | undefined => {
    const hit = cache.get(host);
    if (hit !== undefined || cache.has(host)) return hit;
    let h = host.toLowerCase();
    if (opts.ignorePort) h = stripPort(h);
    const vh = match(h);
    // Bounded memo of Host header → virtual host: a real proxy sees few distinct hosts.
    if (cache.size < 1024) cache.set(host, vh);
    return vh;
  };
  return Object.freeze({ name, virtualHosts: Object.freeze(virtualHosts), lookup });
}

export function stripPort(h: string): string {
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end >= 0 ? h.slice(0, end + 1) : h;
  }
  const i = h.lastIndexOf(':');
  return i >= 0 && /^\d*$/.test(h.slice(i + 1)) ? h.slice(0, i) : h;
}
