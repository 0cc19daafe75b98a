// Process lifecycle of the real pilot-agent: hot reload, rejected configs, listeners following
// the config, worker restarts, and a clean drain on SIGTERM.

import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  childPids,
  freePort,
  gatewayYaml,
  request,
  serviceEntryYaml,
  sleep,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const up = await startUpstream('up', (req, res) => {
  if (req.url?.startsWith('/slow')) {
    setTimeout(() => {
      res.writeHead(200);
      res.end('slow done');
    }, 800);
    return true;
  }
  return false;
});
t.teardown(() => up.close());

function vs(body: string): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: vs}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
${body}`;
}

async function until(fn: () => Promise<boolean>, ms = 8000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await fn()) return true;
    await sleep(100);
  }
  return false;
}

t.test(
  'a file change is picked up; a bad change is rejected and the last good config keeps serving',
  async (t) => {
    const port = await freePort();
    const dir = writeConfigDir({
      'gw.yaml': gatewayYaml(port),
      'se.yaml': serviceEntryYaml('up.default.svc.cluster.local', [{ port: up.port }]),
      'vs.yaml': vs('  - directResponse: {status: 201, body: {string: one}}\n'),
    });
    const agent = await startAgent({ configDir: dir, concurrency: 2 });
    t.teardown(() => agent.stop());
    t.equal((await request(port, '/')).status, 201);
    writeFileSync(join(dir, 'vs.yaml'), vs('  - directResponse: {status: 202, body: {string: two}}\n'));
    t.ok(await until(async () => (await request(port, '/')).status === 202), 'new config served');
    // Every worker switches: several requests on fresh connections all see the new config.
    for (let i = 0; i < 10; i++) t.equal((await request(port, '/')).status, 202);

    writeFileSync(join(dir, 'vs.yaml'), vs('  - route:\n    - destination: {host: up}\n      weight: -1\n'));
    t.ok(
      await until(async () => {
        const d = (await (await fetch(`http://127.0.0.1:${agent.admin}/config_dump`)).json()) as {
          last_rejection: { errors: string[] } | null;
        };
        return d.last_rejection !== null;
      }),
      'rejection recorded in /config_dump',
    );
    const dump = (await (await fetch(`http://127.0.0.1:${agent.admin}/config_dump`)).json()) as {
      last_rejection: { errors: string[] };
    };
    t.match(
      dump.last_rejection.errors[0],
      /vs\.yaml\[0\] VirtualService\/default\/vs: spec\.http\[0\]\.route\[0\]\.weight: must be >= 0/,
    );
    t.equal((await request(port, '/')).status, 202, 'last good config still serving');
    const metrics = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
    t.match(metrics, /courier_config_reloads_total\{result="rejected"\} [1-9]/);
    t.match(agent.logs(), /spec\.http\[0\]\.route\[0\]\.weight/);
    // Then the fix lands and is served.
    writeFileSync(join(dir, 'vs.yaml'), vs('  - directResponse: {status: 203, body: {string: fixed}}\n'));
    t.ok(await until(async () => (await request(port, '/')).status === 203), 'the fixed config is served');
  },
);

t.test(
  'a weight change under continuous load: zero failures, keep-alive connections switch over',
  async (t) => {
    const { Pool } = await import('undici');
    const v2 = await startUpstream('v2');
    t.teardown(() => v2.close());
    const port = await freePort();
    const split = (w1: number, w2: number) =>
      vs(
        `  - route:\n    - {destination: {host: svc, subset: v1}, weight: ${w1}}\n    - {destination: {host: svc, subset: v2}, weight: ${w2}}\n`,
      );
    const dir = writeConfigDir({
      'gw.yaml': gatewayYaml(port),
      'se.yaml': serviceEntryYaml('svc.default.svc.cluster.local', [
        { port: up.port, labels: { version: 'v1' } },
        { port: v2.port, labels: { version: 'v2' } },
      ]),
      'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc}
spec:
  host: svc
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`,
      'vs.yaml': split(100, 0),
    });
    const agent = await startAgent({ configDir: dir, concurrency: 2 });
    t.teardown(() => agent.stop());
    const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 4 });
    t.teardown(() => pool.close());
    const statuses = new Map<number, number>();
    const names = new Map<string, number>();
    let stop = false;
    const loop = async () => {
      while (!stop) {
        try {
          const r = await pool.request({ path: '/', method: 'GET', headers: { host: 'x' } });
          const b = (await r.body.json()) as { name?: string };
          statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
          if (b.name) names.set(b.name, (names.get(b.name) ?? 0) + 1);
        } catch {
          statuses.set(0, (statuses.get(0) ?? 0) + 1);
        }
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    await sleep(500);
    writeFileSync(join(dir, 'vs.yaml'), split(0, 100));
    const switched = await until(async () => {
      const r = await pool.request({ path: '/', method: 'GET', headers: { host: 'x' } });
      const b = (await r.body.json()) as { name?: string };
      return b.name === 'v2';
    });
    t.ok(switched, 'the same keep-alive connections now reach v2');
    const before = names.get('v1') ?? 0;
    await sleep(500);
    stop = true;
    await Promise.all(loops);
    t.equal((names.get('v1') ?? 0) - before, 0, 'no v1 answers after the switch settled');
    t.same([...statuses.keys()], [200], `only 200s (${JSON.stringify([...statuses])})`);
    t.ok((names.get('v2') ?? 0) > 0);
  },
);

t.test('a ConfigMap-style ..data symlink swap reloads', async (t) => {
  const port = await freePort();
  const dir = writeConfigDir({});
  const gen = (name: string, status: number) => {
    const d = join(dir, name);
    mkdirSync(d);
    writeFileSync(join(d, 'gw.yaml'), gatewayYaml(port));
    writeFileSync(join(d, 'vs.yaml'), vs(`  - directResponse: {status: ${status}}\n`));
  };
  gen('..2026_01_01_00_00_00.1', 210);
  symlinkSync('..2026_01_01_00_00_00.1', join(dir, '..data'));
  symlinkSync('..data/gw.yaml', join(dir, 'gw.yaml'));
  symlinkSync('..data/vs.yaml', join(dir, 'vs.yaml'));
  const agent = await startAgent({ configDir: dir });
  t.teardown(() => agent.stop());
  t.equal((await request(port, '/')).status, 210);
  gen('..2026_01_01_00_00_00.2', 211);
  symlinkSync('..2026_01_01_00_00_00.2', join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
  rmSync(join(dir, '..2026_01_01_00_00_00.1'), { recursive: true });
  t.ok(await until(async () => (await request(port, '/')).status === 211), 'swapped config served');
});

t.test('listeners follow the config: a new server port opens, a removed one closes', async (t) => {
  const [p1, p2] = [await freePort(), await freePort()];
  const dir = writeConfigDir({
    'gw.yaml': gatewayYaml(p1),
    'vs.yaml': vs('  - directResponse: {status: 200}\n'),
  });
  const agent = await startAgent({ configDir: dir, concurrency: 2 });
  t.teardown(() => agent.stop());
  t.equal((await request(p1, '/')).status, 200);
  writeFileSync(join(dir, 'gw.yaml'), gatewayYaml(p2));
  t.ok(
    await until(async () => (await request(p2, '/').catch(() => ({ status: 0 }))).status === 200),
    'new port serves',
  );
  t.ok(
    await until(async () => (await request(p1, '/').catch(() => ({ status: 0 }))).status === 0),
    'old port closed',
  );
  t.ok(await agent.ready(), 'ready after the listener change');
});

t.test('a killed worker is replaced while the others keep serving', async (t) => {
  const port = await freePort();
  const dir = writeConfigDir({
    'gw.yaml': gatewayYaml(port),
    'vs.yaml': vs('  - directResponse: {status: 200}\n'),
  });
  const agent = await startAgent({ configDir: dir, concurrency: 2 });
  t.teardown(() => agent.stop());
  const pids = childPids(agent.proc.pid as number);
  t.equal(pids.length, 2, 'two workers');
  // Continuous load from 8 clients; kill -9 one worker in the middle.
  let ok = 0;
  let failed = 0;
  let stop = false;
  const client = async () => {
    while (!stop) {
      const r = await request(port, '/').catch(() => ({ status: 0 }));
      if (r.status === 200) ok++;
      else failed++;
    }
  };
  const clients = Array.from({ length: 8 }, client);
  await sleep(300);
  process.kill(pids[0] as number, 'SIGKILL');
  // Only requests in flight on the killed worker can be lost; measure long enough to see the rate.
  await sleep(4000);
  stop = true;
  await Promise.all(clients);
  t.ok(failed <= (ok + failed) / 100, `lost ${failed} of ${ok + failed} requests (< 1%)`);
  t.ok(await until(() => agent.ready()), 'ready again');
  let lost = 0;
  for (let i = 0; i < 50; i++)
    if ((await request(port, '/').catch(() => ({ status: 0 }))).status !== 200) lost++;
  t.equal(lost, 0, 'none lost once the replacement is up');
  const after = childPids(agent.proc.pid as number);
  t.equal(after.length, 2, 'worker replaced');
  const metrics = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
  t.match(metrics, /courier_worker_restarts_total 1/);
});

t.test('SIGTERM: readiness drops, in-flight requests finish, exit 0, no orphans', async (t) => {
  const port = await freePort();
  const dir = writeConfigDir({
    'gw.yaml': gatewayYaml(port),
    'se.yaml': serviceEntryYaml('up.default.svc.cluster.local', [{ port: up.port }]),
    'vs.yaml': vs('  - route:\n    - destination: {host: up}\n'),
  });
  const agent = await startAgent({ configDir: dir, concurrency: 2, args: ['--drain-duration', '3s'] });
  const inflight = request(port, '/slow');
  await sleep(150);
  const workers = childPids(agent.proc.pid as number);
  const exit = agent.stop('SIGTERM');
  await sleep(100);
  t.notOk(await agent.ready(), 'not ready while draining');
  const r = await inflight;
  t.equal(r.status, 200);
  t.equal(r.body, 'slow done');
  t.equal(await exit, 0, 'exit code 0');
  for (const pid of workers) {
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    t.notOk(alive, `worker ${pid} gone`);
  }
});

t.test('a config that never validates: exit 1 with one clear line', async (t) => {
  const dir = writeConfigDir({ 'bad.yaml': vs('  - route: []\n') });
  const agent = await startAgent({ configDir: dir, waitReady: false });
  const code =
    agent.proc.exitCode ?? (await new Promise<number | null>((r) => agent.proc.once('exit', (c) => r(c))));
  t.equal(code, 1);
  t.match(agent.logs(), /never validated/);
});

t.test('a Gateway port already in use at start-up: exit 1 with one clear line', async (t) => {
  const { createServer } = await import('node:net');
  const blocker = createServer();
  const port = await freePort();
  await new Promise<void>((r) => blocker.listen(port, r));
  t.teardown(() => blocker.close());
  const dir = writeConfigDir({
    'gw.yaml': gatewayYaml(port),
    'vs.yaml': vs('  - directResponse: {status: 200}\n'),
  });
  const agent = await startAgent({ configDir: dir, waitReady: false });
  const code =
    agent.proc.exitCode ?? (await new Promise<number | null>((r) => agent.proc.once('exit', (c) => r(c))));
  t.equal(code, 1);
  t.match(agent.logs(), new RegExp(`pilot-agent: listener 0\\.0\\.0\\.0:${port}: address already in use`));
});
