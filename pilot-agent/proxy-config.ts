// `courier proxy-config routes|clusters|listeners|endpoints|secrets [--admin URL] [-o json]`: tables
// (or JSON) from the admin API, like `istioctl proxy-config`.

import { UsageError } from './options.js';

type Row = string[];

interface ListenerInfo {
  name: string;
  address: string;
  port: number;
  protocol: string;
  kind: string;
  filter_chains?: { transport: string; server_names: string[] }[];
  virtual_hosts: {
    name: string;
    domains: string[];
    routes: { name: string; virtual_service: string; action: Record<string, unknown> }[];
  }[];
}

interface ClusterInfo {
  name: string;
  service: string;
  port: number;
  subset: string;
  discovery: string;
  lb_policy: string;
  destination_rule: string | null;
  endpoints: { address: string; labels: Record<string, string>; weight: number }[];
}

export interface SecretRow {
  name: string;
  source: string;
  state: string;
  error?: string;
  certificates: CertRow[];
  ca_certificates: CertRow[];
}

interface CertRow {
  subject: string;
  subjectAltNames: string[];
  serial: string;
  notBefore: string;
  notAfter: string;
}

/** `istioctl proxy-config secret`'s table: one row per certificate (leaf chain and CA). */
export function renderSecrets(secrets: SecretRow[]): string {
  const rows: Row[] = [];
  for (const s of secrets) {
    const certs = [
      ...s.certificates.map((c) => ['Cert Chain', c] as const),
      ...s.ca_certificates.map((c) => ['CA', c] as const),
    ];
    const status = s.error ? `${s.state}: ${s.error}` : s.state;
    if (certs.length === 0) rows.push([s.source, '-', status, '-', '-', '-', '-', '-']);
    for (const [type, c] of certs)
      rows.push([
        s.source,
        type,
        status,
        c.serial,
        c.notAfter,
        c.notBefore,
        c.subject,
        c.subjectAltNames.join(',') || '-',
      ]);
  }
  return table(
    ['RESOURCE NAME', 'TYPE', 'STATUS', 'SERIAL NUMBER', 'NOT AFTER', 'NOT BEFORE', 'SUBJECT', 'SANS'],
    rows,
  );
}

export function table(header: Row, rows: Row[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: Row) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function actionText(a: Record<string, unknown>): string {
  if ('route' in a)
    return (a.route as { cluster: string; weight: number }[])
      .map((d) => (d.weight !== 1 ? `${d.cluster} (${d.weight})` : d.cluster))
      .join(', ');
  if ('redirect' in a) return `redirect ${(a.redirect as { code: number }).code}`;
  return `direct response ${(a.direct_response as { status: number }).status}`;
}

export function renderProxyConfig(kind: string, listeners: ListenerInfo[], clusters: ClusterInfo[]): string {
  switch (kind) {
    case 'listeners':
      return table(
        ['NAME', 'ADDRESS', 'PORT', 'PROTOCOL', 'KIND', 'VIRTUAL HOSTS', 'FILTER CHAINS'],
        listeners.map((l) => [
          l.name,
          l.address,
          String(l.port),
          l.protocol,
          l.kind,
          String(l.virtual_hosts.length),
          (l.filter_chains ?? [])
            .map((c) =>
              c.server_names.length ? `${c.transport} (${c.server_names.join(',')})` : c.transport,
            )
            .join(', ') || '-',
        ]),
      );
    case 'routes':
      return table(
        ['LISTENER', 'DOMAINS', 'ROUTE', 'VIRTUAL SERVICE', 'ACTION'],
        listeners.flatMap((l) =>
          l.virtual_hosts.flatMap((vh) =>
            vh.routes.length === 0
              ? [[l.name, vh.domains.join(','), '-', '-', '404 (no routes)']]
              : vh.routes.map((r) => [
                  l.name,
                  vh.domains.join(','),
                  r.name,
                  r.virtual_service || '-',
                  actionText(r.action),
                ]),
          ),
        ),
      );
    case 'clusters':
      return table(
        ['SERVICE FQDN', 'PORT', 'SUBSET', 'DISCOVERY', 'LB', 'DESTINATION RULE'],
        clusters.map((c) => [
          c.service,
          String(c.port),
          c.subset || '-',
          c.discovery,
          c.lb_policy,
          c.destination_rule ?? '-',
        ]),
      );
    case 'endpoints':
      return table(
        ['ENDPOINT', 'WEIGHT', 'LABELS', 'CLUSTER'],
        clusters.flatMap((c) =>
          c.endpoints.map((e) => [
            e.address,
            String(e.weight),
            Object.entries(e.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(',') || '-',
            c.name,
          ]),
        ),
      );
  }
  throw new UsageError(
    `unknown proxy-config kind ${JSON.stringify(kind)} (routes, clusters, listeners, endpoints, secrets)`,
  );
}

export async function proxyConfigCommand(argv: string[], out: (s: string) => void): Promise<number> {
  let admin = `http://127.0.0.1:${process.env.COURIER_ADMIN_PORT ?? '15000'}`;
  let json = false;
  let kind: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--admin') admin = argv[++i] ?? admin;
    else if (a === '-o' || a === '--output') json = argv[++i] === 'json';
    else if (a === '-ojson') json = true;
    else kind = a;
  }
  if (!kind || !['routes', 'clusters', 'listeners', 'endpoints', 'secrets'].includes(kind))
    throw new UsageError(
      'courier proxy-config routes|clusters|listeners|endpoints|secrets [--admin URL] [-o json]',
    );
  const base = admin.replace(/\/$/, '');
  const get = async <T>(path: string): Promise<T> => {
    const r = await fetch(`${base}${path}`).catch((e: Error) => {
      throw new Error(
        `cannot reach the admin API at ${base}: ${(e.cause as Error | undefined)?.message ?? e.message}`,
      );
    });
    if (!r.ok) throw new Error(`${base}${path}: HTTP ${r.status}`);
    return (await r.json()) as T;
  };
  if (kind === 'secrets') {
    const { certificates } = await get<{ certificates: SecretRow[] }>('/certs');
    out(json ? JSON.stringify(certificates, null, 2) : renderSecrets(certificates));
    return 0;
  }
  const needsClusters = kind === 'clusters' || kind === 'endpoints';
  const listeners = needsClusters ? [] : await get<ListenerInfo[]>('/listeners');
  const clusters = needsClusters ? await get<ClusterInfo[]>('/clusters') : [];
  if (json) out(JSON.stringify(needsClusters ? clusters : listeners, null, 2));
  else out(renderProxyConfig(kind, listeners, clusters));
  return 0;
}
