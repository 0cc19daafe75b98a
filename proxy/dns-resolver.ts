// DNS for `discovery: 'dns'` clusters (ServiceEntry `resolution: DNS`), Envoy STRICT_DNS style:
// each watched hostname is resolved in the background (A records, AAAA when there are none) and
// re-resolved when its records' TTL runs out (clamped), never on the request path. A failed
// lookup keeps the last good addresses; `onChange(host)` fires only when a host's address set
// changes (including its first answer). Until then `addresses(host)` is undefined and callers
// keep the hostname itself as the endpoint, so undici resolves it per connection.

import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';

/** One resolved address and its TTL in seconds. */
export interface DnsRecord {
  address: string;
  ttl: number;
}

/** Resolves a hostname; rejects on failure. Injected by tests; the default uses `Resolver`. */
export type DnsLookup = (host: string) => Promise<readonly DnsRecord[]>;

export interface DnsTimer {
  cancel(): void;
}

export interface DnsResolverOptions {
  /** `ip` or `ip:port` (IPv6 as `[ip]:port`); the system resolver configuration when absent. */
  servers?: readonly string[];
  lookup?: DnsLookup;
  /** Refresh bounds applied to record TTLs. */
  minRefreshMs?: number;
  maxRefreshMs?: number;
  /** Refresh interval when the TTL is 0 (Envoy's dns_refresh_rate, 5 s). */
  defaultRefreshMs?: number;
  /** Retry interval after a failed lookup. */
  failureRefreshMs?: number;
  /** Scheduler (tests drive time by hand); default an unref'd setTimeout. */
  schedule?: (fn: () => void, ms: number) => DnsTimer;
  /** Lookup failures are reported here (default: stderr once per host until it recovers). */
  onError?: (host: string, err: Error) => void;
}

interface HostState {
  addresses: readonly string[] | undefined;
  timer: DnsTimer | undefined;
  inflight: boolean;
  failing: boolean;
  watched: boolean;
}

/** Hostnames that need no DNS: IP literals, `localhost`, unix sockets. */
export function needsDns(address: string): boolean {
  if (isIP(address) !== 0 || address.startsWith('unix://') || address.startsWith('*')) return false;
  const a = address.toLowerCase().replace(/\.$/, '');
  return a !== 'localhost' && !a.endsWith('.localhost');
}

/** `COURIER_DNS_SERVERS=127.0.0.1:5353,10.0.0.2` → the list; undefined when unset or empty. */
export function parseDnsServers(raw: string | undefined): string[] | undefined {
  const list = (raw ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  return list.length > 0 ? list : undefined;
}

/** The default lookup: A records with TTLs, AAAA when there are no A records. */
export function resolverLookup(servers: readonly string[] | undefined): DnsLookup {
  const r = new Resolver({ timeout: 2500, tries: 2 });
  if (servers)
    try {
      r.setServers([...servers]);
    } catch (e) {
      process.stderr.write(
        `courier: dns: servers ${servers.join(',')}: ${(e as Error).message}; using the system resolver\n`,
      );
    }
  return async (host) => {
    let first: unknown;
    try {
      const v4 = await r.resolve4(host, { ttl: true });
      if (v4.length > 0) return v4;
    } catch (e) {
      first = e;
    }
    try {
      const v6 = await r.resolve6(host, { ttl: true });
      if (v6.length > 0) return v6;
    } catch (e) {
      first ??= e;
    }
    throw first ?? Object.assign(new Error(`no A or AAAA records for ${host}`), { code: 'ENODATA' });
  };
}

const unrefTimeout = (fn: () => void, ms: number): DnsTimer => {
  const t = setTimeout(fn, ms);
  t.unref();
  return { cancel: () => clearTimeout(t) };
};

export class DnsResolver {
  private readonly hosts = new Map<string, HostState>();
  private readonly lookup: DnsLookup;
  private readonly schedule: (fn: () => void, ms: number) => DnsTimer;
  private readonly minMs: number;
  private readonly maxMs: number;
  private readonly defaultMs: number;
  private readonly failureMs: number;
  private closed = false;

  constructor(
    private readonly opts: DnsResolverOptions,
    private readonly onChange: (host: string) => void,
  ) {
    this.lookup = opts.lookup ?? resolverLookup(opts.servers);
    this.schedule = opts.schedule ?? unrefTimeout;
    this.minMs = opts.minRefreshMs ?? 1_000;
    this.maxMs = opts.maxRefreshMs ?? 300_000;
    this.defaultMs = opts.defaultRefreshMs ?? 5_000;
    this.failureMs = opts.failureRefreshMs ?? this.defaultMs;
  }

  /** The last good addresses of a watched host, sorted; undefined before its first answer. */
  addresses(host: string): readonly string[] | undefined {
    return this.hosts.get(host)?.addresses;
  }

  /** Watch exactly these hosts: new ones are resolved now, dropped ones forgotten (timers cleared).
   * Hosts kept keep their addresses and refresh schedule. */
  sync(hosts: Iterable<string>): void {
    if (this.closed) return;
    const want = new Set(hosts);
    for (const [h, s] of this.hosts)
      if (!want.has(h)) {
        s.watched = false;
        s.timer?.cancel();
        this.hosts.delete(h);
      }
    for (const h of want)
      if (!this.hosts.has(h)) {
        const s: HostState = {
          addresses: undefined,
          timer: undefined,
          inflight: false,
          failing: false,
          watched: true,
        };
        this.hosts.set(h, s);
        this.refresh(h, s);
      }
  }

  /** Hosts being watched (for tests and diagnostics). */
  watched(): string[] {
    return [...this.hosts.keys()];
  }

  close(): void {
    this.closed = true;
    for (const s of this.hosts.values()) {
      s.watched = false;
      s.timer?.cancel();
    }
    this.hosts.clear();
  }

  private refresh(host: string, s: HostState): void {
    if (s.inflight || !s.watched) return;
    s.inflight = true;
    s.timer = undefined;
    let p: Promise<readonly DnsRecord[]>;
    try {
      p = this.lookup(host);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (records) => this.answered(host, s, records),
      (err: unknown) => this.failed(host, s, err instanceof Error ? err : new Error(String(err))),
    );
  }

  private answered(host: string, s: HostState, records: readonly DnsRecord[]): void {
    s.inflight = false;
    if (!s.watched) return;
    const addresses = [...new Set(records.map((r) => r.address).filter((a) => isIP(a) !== 0))].sort();
    if (addresses.length === 0) {
      this.failed(host, s, new Error(`no usable addresses for ${host}`));
      return;
    }
    s.failing = false;
    const ttls = records.map((r) => r.ttl).filter((t) => Number.isFinite(t) && t > 0);
    const ttlMs = ttls.length > 0 ? Math.min(...ttls) * 1000 : 0;
    const next = ttlMs > 0 ? Math.max(this.minMs, Math.min(this.maxMs, ttlMs)) : this.defaultMs;
    this.arm(host, s, next);
    const prev = s.addresses;
    if (prev && prev.length === addresses.length && prev.every((a, i) => a === addresses[i])) return;
    s.addresses = addresses;
    try {
      this.onChange(host);
    } catch (e) {
      process.stderr.write(`courier: dns: applying ${host}: ${(e as Error).stack ?? e}\n`);
    }
  }

  private failed(host: string, s: HostState, err: Error): void {
    s.inflight = false;
    if (!s.watched) return;
    if (!s.failing) {
      s.failing = true;
      if (this.opts.onError) this.opts.onError(host, err);
      else
        process.stderr.write(
          `courier: dns: ${host}: ${(err as Error & { code?: string }).code ?? err.message}; ` +
            `${s.addresses ? `keeping ${s.addresses.join(',')}` : 'using the hostname'}\n`,
        );
    }
    this.arm(host, s, this.failureMs);
  }

  private arm(host: string, s: HostState, ms: number): void {
    if (this.closed || !s.watched) return;
    s.timer?.cancel();
    s.timer = this.schedule(() => this.refresh(host, s), ms);
  }
}
