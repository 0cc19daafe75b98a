// Command-line options of `pilot-agent proxy`, each also read from COURIER_<NAME> in the
// environment (flags win), plus the Kubernetes downward-API variables.

import { availableParallelism } from 'node:os';
import { parseDuration } from '../config/duration.js';
import type { ProxyMode } from '../config/snapshot.js';

export interface AgentOptions {
  mode: ProxyMode;
  configDir: string;
  concurrency: number;
  labels: Record<string, string>;
  namespace: string;
  podName: string;
  adminPort: number;
  statusPort: number;
  healthPort: number;
  statsPort: number;
  outboundPort: number;
  inboundPort: number;
  appPort?: number;
  drainMs: number;
  accessLog: string;
  accessLogFormat: 'text' | 'json';
  logLevel: string;
  /** Mounted Secret volumes for `credentialName` (`<dir>/<name>/tls.crt`, ...). */
  credentialsDir?: string;
}

const FLAGS = [
  'config-dir',
  'concurrency',
  'labels',
  'namespace',
  'admin-port',
  'status-port',
  'health-port',
  'stats-port',
  'outbound-port',
  'inbound-port',
  'app-port',
  'drain-duration',
  'access-log',
  'access-log-format',
  'log-level',
  'credentials-dir',
] as const;

export class UsageError extends Error {}

export function parseLabels(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of s.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--labels: expected k=v, got ${JSON.stringify(p)}`);
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

function port(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new UsageError(`--${name}: invalid port ${JSON.stringify(v)}`);
  return n;
}

/** Parse `--flag value` / `--flag=value` pairs, with COURIER_* environment fallbacks. */
export function parseFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): Map<string, string> {
  const vals = new Map<string, string>();
  for (const f of FLAGS) {
    const e = env[`COURIER_${f.toUpperCase().replace(/-/g, '_')}`];
    if (e !== undefined && e !== '') vals.set(f, e);
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith('--')) throw new UsageError(`unexpected argument ${JSON.stringify(a)}`);
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (!(FLAGS as readonly string[]).includes(name)) throw new UsageError(`unknown option --${name}`);
    const v = eq >= 0 ? a.slice(eq + 1) : argv[++i];
    if (v === undefined) throw new UsageError(`--${name} needs a value`);
    vals.set(name, v);
  }
  return vals;
}

export function agentOptions(
  mode: ProxyMode,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): AgentOptions {
  const f = parseFlags(argv, env);
  const configDir = f.get('config-dir');
  if (!configDir) throw new UsageError('--config-dir is required');
  const concurrency = f.has('concurrency') ? Number(f.get('concurrency')) : availableParallelism();
  if (!Number.isInteger(concurrency) || concurrency < 1)
    throw new UsageError('--concurrency must be a positive integer');
  const drain = parseDuration(f.get('drain-duration') ?? '5s');
  if (drain === undefined) throw new UsageError('--drain-duration: invalid duration');
  const format = f.get('access-log-format') ?? 'text';
  if (format !== 'text' && format !== 'json')
    throw new UsageError('--access-log-format must be text or json');
  const labels = f.has('labels')
    ? parseLabels(f.get('labels') as string)
    : mode === 'router'
      ? { istio: 'ingressgateway' }
      : {};
  const opts: AgentOptions = {
    mode,
    configDir,
    concurrency,
    labels,
    namespace: f.get('namespace') ?? env.POD_NAMESPACE ?? 'default',
    podName: env.POD_NAME ?? `courier-${mode}`,
    adminPort: port('admin-port', f.get('admin-port') ?? '15000'),
    statusPort: port('status-port', f.get('status-port') ?? '15020'),
    healthPort: port('health-port', f.get('health-port') ?? '15021'),
    statsPort: port('stats-port', f.get('stats-port') ?? '15090'),
    outboundPort: port('outbound-port', f.get('outbound-port') ?? '15001'),
    inboundPort: port('inbound-port', f.get('inbound-port') ?? '15006'),
    drainMs: drain,
    accessLog: f.get('access-log') ?? 'off',
    accessLogFormat: format,
    logLevel: f.get('log-level') ?? 'info',
  };
  const creds = f.get('credentials-dir');
  if (creds) opts.credentialsDir = creds;
  if (f.has('app-port')) opts.appPort = port('app-port', f.get('app-port') as string);
  return opts;
}
