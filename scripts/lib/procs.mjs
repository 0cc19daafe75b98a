// Process helpers shared by the benchmark (bench/run.mjs) and the soak test (scripts/soak.mjs):
// free ports, the pilot-agent command line, children started in their own process group (so a
// kill reaches courier's workers and nginx's worker too) and killed at exit, and /proc readers
// (RSS, CPU time, open fds, child pids).

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const PILOT_AGENT = join(ROOT, 'dist', 'pilot-agent', 'main.js');
export const COURIER_CLI = join(ROOT, 'dist', 'pilot-agent', 'courier.js');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A port free right now on 127.0.0.1 (another process may take it before we do; rare). */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/**
 * `node PILOT_AGENT proxy router ...` arguments with four fresh ports (admin, status, health,
 * stats), returned with the ports.
 */
export async function pilotAgentArgs({ configDir, concurrency, nodeFlags = [], extra = [] }) {
  const ports = {
    admin: await freePort(),
    status: await freePort(),
    health: await freePort(),
    stats: await freePort(),
  };
  const args = [
    ...nodeFlags,
    PILOT_AGENT,
    'proxy',
    'router',
    '--config-dir',
    configDir,
    '--concurrency',
    String(concurrency),
    ...Object.entries(ports).flatMap(([name, port]) => [`--${name}-port`, String(port)]),
    ...extra,
  ];
  return { args, ports };
}

/** Poll `url` until it answers 200; throws after `ms` or when `exited()` turns true. */
export async function waitHttp200(url, { ms = 20_000, exited = () => false, what = url } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (exited()) throw new Error(`${what} exited before it was ready`);
    try {
      const r = await fetch(url);
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${ms / 1000} s`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// Children: each in its own process group; all killed at exit, on error and on Ctrl-C.

const children = new Set();

/** Whether `cmd args` can be started at all (it exists and is executable). */
export function canRun(cmd, args) {
  return !spawnSync(cmd, args, { stdio: 'ignore' }).error;
}

/**
 * Start `cmd args` detached (own process group), stdin a pipe (our children exit when it closes),
 * stdout and stderr collected into `h.out` (the last 64 KiB). `prefix` wraps the command (taskset,
 * a cgroup entry shell).
 */
export function launch(name, cmd, args, { prefix = [], cwd = ROOT, env } = {}) {
  const [file, ...rest] = [...prefix, cmd, ...args];
  const proc = spawn(file, rest, { detached: true, stdio: ['pipe', 'pipe', 'pipe'], cwd, env });
  const h = { name, proc, pgid: proc.pid, out: '', outBytes: 0, exited: false, code: null };
  const collect = (d) => {
    h.outBytes += d.length;
    h.out = (h.out + d).slice(-65536);
  };
  proc.stdout.on('data', collect);
  proc.stderr.on('data', collect);
  proc.stdin.on('error', () => {});
  h.done = new Promise((r) => {
    const end = (code) => {
      h.exited = true;
      h.code = code;
      r();
    };
    proc.once('exit', (code, signal) => end(code ?? signal));
    proc.once('error', (err) => end(err.message));
  });
  children.add(h);
  return h;
}

export function killGroup(h, signal) {
  try {
    process.kill(-h.pgid, signal);
  } catch {}
}

/** Close its stdin, SIGTERM the group, SIGKILL what is left after `graceMs`. */
export async function stop(h, graceMs = 3000) {
  if (!h.exited) {
    h.proc.stdin.end();
    killGroup(h, 'SIGTERM');
    await Promise.race([h.done, sleep(graceMs)]);
  }
  killGroup(h, 'SIGKILL'); // the leader may be gone while its workers linger
  await Promise.race([h.done, sleep(1000)]);
  children.delete(h);
}

export async function stopAll() {
  await Promise.all([...children].map((h) => stop(h)));
}

/** Forget a child that has exited by itself (a finished load run). */
export function forget(h) {
  children.delete(h);
}

/**
 * On SIGINT/SIGTERM/SIGHUP: stop every child, run `cleanup`, exit 130. On exit: SIGKILL every
 * group still known. Returns a function telling whether a signal is being handled.
 */
export function stopChildrenOnSignals(cleanup = () => {}) {
  let stopping = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, async () => {
      if (stopping) return;
      stopping = true;
      console.error(`\n${sig}: stopping every child process...`);
      await stopAll();
      cleanup();
      process.exit(130);
    });
  }
  process.on('exit', () => {
    for (const h of children) killGroup(h, 'SIGKILL');
  });
  return () => stopping;
}

/** Wait until a child prints a JSON line (its listening port) and return it parsed. */
export async function waitJson(h, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const line = h.out.split('\n').find((l) => l.startsWith('{'));
    if (line) return JSON.parse(line);
    if (h.exited) break;
    await sleep(20);
  }
  throw new Error(`${h.name} did not start (exit ${h.code}):\n${h.out}`);
}

// ---------------------------------------------------------------------------------------------
// /proc

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

const numericEntries = (dir) => {
  try {
    return readdirSync(dir).filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
};

/** Fields of /proc/PID/stat after the command name (index 0 = state), or undefined. */
function statFields(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** RSS in bytes (NaN when the process is gone). */
export function rssBytes(pid) {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** RSS (MB), user+system CPU time (ms) and per-process RSS of every process in group `pgid`. */
export function groupUsage(pgid) {
  let rss = 0;
  let cpuTicks = 0;
  let processes = 0;
  const perProcessMb = [];
  for (const pid of numericEntries('/proc')) {
    const f = statFields(pid);
    if (!f || Number(f[2]) !== pgid) continue;
    processes++;
    cpuTicks += Number(f[11]) + Number(f[12]);
    const b = rssBytes(pid);
    if (Number.isFinite(b)) {
      rss += b;
      perProcessMb.push(Math.round(b / 104857.6) / 10);
    }
  }
  return { rssMb: rss / 2 ** 20, cpuMs: (cpuTicks * 1000) / CLK_TCK, processes, perProcessMb };
}

/** Direct children of `pid` (courier's workers under the agent). */
export function childPids(pid) {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** Open fds of `pid`, and how many of them are sockets. */
export function fds(pid) {
  const names = numericEntries(`/proc/${pid}/fd`);
  if (names.length === 0) return { total: Number.NaN, sockets: Number.NaN };
  let sockets = 0;
  for (const n of names) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${n}`).startsWith('socket:')) sockets++;
    } catch {}
  }
  return { total: names.length, sockets };
}

/** Processes whose command line mentions `needle` (a temp dir): leftovers to kill. */
export function pidsMentioning(needle) {
  const out = [];
  for (const pid of numericEntries('/proc')) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) out.push(Number(pid));
    } catch {}
  }
  return out;
}
