// The `pilot-agent` command line: proxy router|sidecar, wait, request.

import { existsSync, statSync } from 'node:fs';
import { Agent } from './agent.js';
import { DirectorySource } from './config-source.js';
import { agentOptions, UsageError } from './options.js';

const USAGE = `usage:
  pilot-agent proxy router  --config-dir DIR [options]
  pilot-agent proxy sidecar --config-dir DIR [options]
  pilot-agent wait [--url URL] [--timeout 60s]
  pilot-agent request METHOD PATH`;

const LEVELS = ['debug', 'info', 'warn', 'error'];

/** The agent's log; the level is read on each line, so POST /logging?level= takes effect at once. */
function logger(level: () => string) {
  return (l: string, msg: string) => {
    const min = level() === 'off' ? LEVELS.length : Math.max(0, LEVELS.indexOf(level()));
    if (LEVELS.indexOf(l) < min) return;
    process.stderr.write(`${new Date().toISOString()} ${l} pilot-agent: ${msg}\n`);
  };
}

async function proxy(mode: string | undefined, rest: string[]): Promise<number> {
  if (mode !== 'router' && mode !== 'sidecar')
    throw new UsageError('pilot-agent proxy: expected router or sidecar');
  const opts = agentOptions(mode, rest);
  if (!existsSync(opts.configDir) || !statSync(opts.configDir).isDirectory())
    throw new UsageError(`--config-dir ${opts.configDir}: not a readable directory`);
  const log = logger(() => opts.logLevel);
  const agent = new Agent(opts, new DirectorySource(opts.configDir), log);
  try {
    await agent.start();
  } catch (e) {
    process.stderr.write(`pilot-agent: ${(e as Error).message}\n`);
    return 1;
  }
  log('info', `${mode} started: ${opts.concurrency} worker(s), config ${agent.active?.version}`);
  return await new Promise<number>((resolve) => {
    const stop = () => {
      void agent.shutdown(opts.drainMs).then(() => resolve(0));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    process.on('SIGHUP', () => agent.reload('SIGHUP'));
  });
}

async function wait(rest: string[]): Promise<number> {
  let url = 'http://127.0.0.1:15021/healthz/ready';
  let timeoutMs = 60_000;
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--url') url = rest[++i] ?? url;
    else if (rest[i] === '--timeout') {
      const { parseDuration } = await import('../config/duration.js');
      timeoutMs = parseDuration(rest[++i]) ?? timeoutMs;
    }
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const r = await fetch(url);
      if (r.status === 200) return 0;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  process.stderr.write(`pilot-agent wait: ${url} not ready after ${timeoutMs}ms\n`);
  return 1;
}

async function request(rest: string[]): Promise<number> {
  const [method, path] = rest;
  if (!method || !path) throw new UsageError('pilot-agent request METHOD PATH');
  const port = process.env.COURIER_ADMIN_PORT ?? '15000';
  const r = await fetch(`http://127.0.0.1:${port}${path.startsWith('/') ? path : `/${path}`}`, { method });
  process.stdout.write(await r.text());
  return r.ok ? 0 : 1;
}

export async function runPilotAgent(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'proxy':
        return await proxy(rest[0], rest.slice(1));
      case 'wait':
        return await wait(rest);
      case 'request':
        return await request(rest);
      case '-h':
      case '--help':
        process.stdout.write(`${USAGE}\n`);
        return 0;
      default:
        process.stderr.write(`${USAGE}\n`);
        return 2;
    }
  } catch (e) {
    process.stderr.write(`pilot-agent: ${(e as Error).message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}
