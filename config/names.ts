// Host and gateway name forms, as Istio resolves them.

export const CLUSTER_DOMAIN = 'svc.cluster.local';

/** Istio ResolveShortnameToFQDN: a host without dots expands with the resource's namespace. */
export function expandHost(host: string, namespace: string): string {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === '*' || h.includes('.')) return h;
  return `${h}.${namespace}.${CLUSTER_DOMAIN}`;
}

/** `ns/name` for a gateway reference: `name`, `ns/name` or `name.ns.svc.cluster.local`. */
export function gatewayRef(ref: string, vsNamespace: string): string {
  if (ref === 'mesh') return 'mesh';
  const slash = ref.indexOf('/');
  if (slash >= 0) return ref;
  const fq = /^([^.]+)\.([^.]+)\.svc(\.cluster\.local)?$/.exec(ref);
  if (fq) return `${fq[2]}/${fq[1]}`;
  return `${vsNamespace}/${ref}`;
}

/** Does wildcard-capable host `pattern` cover host `h`? (`*.foo.com` covers `a.foo.com`.) */
export function hostCovers(pattern: string, h: string): boolean {
  if (pattern === '*' || pattern === h) return true;
  if (pattern.startsWith('*')) {
    const suffix = pattern.slice(1);
    if (h.startsWith('*')) return h.slice(1).endsWith(suffix);
    return h.length > suffix.length && h.endsWith(suffix);
  }
  return false;
}

/** Intersection of two host patterns (Gateway server host and VirtualService host), or undefined. */
export function hostIntersection(a: string, b: string): string | undefined {
  if (hostCovers(a, b)) return b;
  if (hostCovers(b, a)) return a;
  return undefined;
}

export function labelsMatch(
  selector: Record<string, string> | undefined,
  labels: Record<string, string>,
): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

/** Split `host:port` (IPv6 `[::1]:80` aware). */
export function splitHostPort(authority: string): { host: string; port?: number } {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    const host = authority.slice(0, end + 1);
    const rest = authority.slice(end + 1);
    return rest.startsWith(':') && /^\d+$/.test(rest.slice(1))
      ? { host, port: Number(rest.slice(1)) }
      : { host };
  }
  const i = authority.lastIndexOf(':');
  if (i >= 0 && /^\d+$/.test(authority.slice(i + 1)))
    return { host: authority.slice(0, i), port: Number(authority.slice(i + 1)) };
  return { host: authority };
}
