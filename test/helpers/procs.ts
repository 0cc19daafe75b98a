// Real processes for end-to-end tests: the built pilot-agent, Node upstream servers on port 0,
// and the real httpbin under gunicorn.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as netServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Test } from 'tap';
import { requireProgram } from './system.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const PILOT_AGENT = join(ROOT, 'dist', 'pilot-agent', 'main.js');
export const COURIER = join(ROOT, 'dist', 'pilot-agent', 'courier.js');

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = netServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

/** Children of a process, from /proc (no pgrep: slim images lack procps). */
export function childPids(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // /proc/PID/stat: "pid (comm) state ppid ...": comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) out.push(Number(name));
    } catch {
      // the process ended while we looked
    }
  }
  return out.sort((a, b) => a - b);
}

export function writeConfigDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'courier-cfg-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

export interface AgentHandle {
  proc: ChildProcess;
  configDir: string;
  admin: number;
  status: number;
  health: number;
  stats: number;
  logs: () => string;
  ready: () => Promise<boolean>;
  waitReady: (ms?: number) => Promise<void>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** Start the agent; retried with fresh ports when a port picked by freePort() was taken meanwhile. */
export async function startAgent(opts: Parameters<typeof startAgentOnce>[0]): Promise<AgentHandle> {
  for (let i = 0; ; i++) {
    try {
      return await startAgentOnce(opts);
    } catch (e) {
      if (i >= 2 || !/address already in use/.test((e as Error).message) || opts.waitReady === false) throw e;
    }
  }
}

async function startAgentOnce(opts: {
  configDir: string;
  mode?: 'router' | 'sidecar';
  args?: string[];
  concurrency?: number;
  waitReady?: boolean;
  /** Extra environment for the agent (merged over this process's). */
  env?: NodeJS.ProcessEnv;
}): Promise<AgentHandle> {
  const [admin, status, health, stats] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const args = [
    PILOT_AGENT,
    'proxy',
    opts.mode ?? 'router',
    '--config-dir',
    opts.configDir,
    '--concurrency',
    String(opts.concurrency ?? 1),
    '--admin-port',
    String(admin),
    '--status-port',
    String(status),
    '--health-port',
    String(health),
    '--stats-port',
    String(stats),
    ...(opts.args ?? []),
  ];
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}),
  });
  let out = '';
  proc.stdout?.on('data', (d) => {
    out += d;
  });
  proc.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const ready = async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${health}/healthz/ready`);
      return r.status === 200;
    } catch {
      return false;
    }
  };
  const h: AgentHandle = {
    proc,
    configDir: opts.configDir,
    admin,
    status,
    health,
    stats,
    logs: () => out,
    ready,
    waitReady: async (ms = 15_000) => {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        if (proc.exitCode !== null) throw new Error(`pilot-agent exited ${proc.exitCode}:\n${out}`);
        if (await ready()) return;
        await sleep(50);
      }
      throw new Error(`pilot-agent not ready after ${ms}ms:\n${out}`);
    },
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
  };
  if (opts.waitReady !== false) await h.waitReady();
  return h;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Upstream {
  port: number;
  name: string;
  hits: number;
  requests: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
  close: () => Promise<void>;
  server: Server;
}

/** An echo upstream: answers JSON {name, method, url, headers, body}; `handler` may take over. */
export async function startUpstream(
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer, u: Upstream) => boolean | undefined,
): Promise<Upstream> {
  const server = createServer({ maxHeaderSize: 128 * 1024 });
  const u: Upstream = { port: 0, name, hits: 0, requests: [], close: async () => {}, server };
  server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      u.hits++;
      u.requests.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: body.toString(),
      });
      if (handler?.(req, res, body, u)) return;
      const text = JSON.stringify({
        name,
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: body.toString(),
      });
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
      res.end(text);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.port = (server.address() as { port: number }).port;
  u.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return u;
}

export interface Httpbin {
  port: number;
  stop: () => Promise<void>;
}

/**
 * Whether the real httpbin can run here: gunicorn on PATH and able to load `httpbin:app` (checked
 * with gunicorn's own Python, which need not be the `python3` on PATH). Skips, or fails under
 * COURIER_REQUIRE_SYSTEM_TESTS=1, when not; see helpers/system.ts.
 */
export function requireHttpbin(t: Test): boolean {
  const found = requireProgram(t, 'gunicorn', {
    apt: 'gunicorn python3-httpbin',
    check: (gunicorn) => {
      const r = spawnSync(gunicorn, ['--check-config', 'httpbin:app'], { cwd: tmpdir(), encoding: 'utf8' });
      return r.status === 0 ? undefined : 'gunicorn cannot load httpbin:app';
    },
  });
  return found !== undefined;
}

/** The real httpbin (Debian python3-httpbin) under gunicorn; see requireHttpbin. */
export async function startHttpbin(): Promise<Httpbin> {
  const port = await freePort();
  const proc = spawn(
    'gunicorn',
    ['-b', `127.0.0.1:${port}`, '-w', '2', '--log-level', 'warning', 'httpbin:app'],
    {
      stdio: 'ignore',
    },
  );
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error('gunicorn httpbin exited; is python3-httpbin installed?');
    try {
      const r = await fetch(`http://127.0.0.1:${port}/get`);
      if (r.ok) break;
    } catch {
      await sleep(100);
    }
  }
  return {
    port,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** A Gateway on `port` for hosts `*`, plus a ServiceEntry per named upstream (STATIC, 127.0.0.1). */
export function gatewayYaml(port: number, hosts = ['*']): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${port}, name: http, protocol: HTTP}
    hosts: ${JSON.stringify(hosts)}
`;
}

export function serviceEntryYaml(
  host: string,
  endpoints: { port: number; labels?: Record<string, string>; address?: string }[],
  servicePort = 80,
): string {
  const eps = endpoints
    .map(
      (e) =>
        `  - address: ${e.address ?? '127.0.0.1'}\n    ports: {http: ${e.port}}\n    labels: ${JSON.stringify(e.labels ?? {})}`,
    )
    .join('\n');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${host.split('.')[0]}, namespace: default}
spec:
  hosts: [${host}]
  location: MESH_INTERNAL
  ports: [{number: ${servicePort}, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
${eps || '  []'}
`;
}

/** Plain HTTP request through the proxy (undici-free so the client is independent of the proxy). */
export async function request(
  port: number,
  path: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string | Buffer; host?: string } = {},
): Promise<{ status: number; headers: IncomingMessage['headers']; body: string; raw: string[] }> {
  const http = await import('node:http');
  return new Promise((res, rej) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: opts.method ?? 'GET',
        headers: { host: opts.host ?? 'example.com', ...(opts.headers ?? {}) },
        agent: false,
      },
      (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () =>
          res({
            status: r.statusCode ?? 0,
            headers: r.headers,
            body: Buffer.concat(chunks).toString(),
            raw: r.rawHeaders,
          }),
        );
        r.on('error', rej);
      },
    );
    req.on('error', rej);
    if (opts.body !== undefined) req.end(opts.body);
    else req.end();
  });
}
