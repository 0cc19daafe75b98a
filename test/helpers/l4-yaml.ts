// VirtualService YAML for the TCP and TLS end-to-end tests: one `tcp` or `tls` rule with weighted
// destinations (`weight` only where given, as a user writes it).

export interface L4Destination {
  host: string;
  subset?: string;
  weight?: number;
}

/** A VirtualService bound to gateway `gw` with one rule of `kind`, matching `match`, routing to `routes` on `port`. */
export function l4VirtualService(opts: {
  name: string;
  gw: string;
  kind: 'tcp' | 'tls';
  hosts: string[];
  match: string;
  port: number;
  routes: L4Destination[];
}): string {
  const r = opts.routes
    .map(
      (d) =>
        `    - destination: {host: ${d.host}, port: {number: ${opts.port}}${d.subset ? `, subset: ${d.subset}` : ''}}${
          d.weight !== undefined ? `\n      weight: ${d.weight}` : ''
        }`,
    )
    .join('\n');
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${opts.name}, namespace: default}
spec:
  hosts: ${JSON.stringify(opts.hosts)}
  gateways: [${opts.gw}]
  ${opts.kind}:
  - match: [${opts.match}]
    route:
${r}
`;
}
