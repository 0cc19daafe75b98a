// `courier proxy-config` and `pilot-agent request` against a running pilot-agent's admin API.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { COURIER, freePort, PILOT_AGENT, ROOT, startAgent, writeConfigDir } from '../helpers/procs.js';

// The quick start's config, on a free port instead of 8080 (the bookinfo example test uses 8080).
const src = join(ROOT, 'examples', 'quickstart', 'config');
const port = await freePort();
const files: Record<string, string> = {};
for (const f of readdirSync(src))
  files[f] = readFileSync(join(src, f), 'utf8').replace('number: 8080', `number: ${port}`);
const agent = await startAgent({ configDir: writeConfigDir(files) });
t.teardown(() => agent.stop());
const admin = `http://127.0.0.1:${agent.admin}`;
const courier = (...a: string[]) =>
  spawnSync(process.execPath, [COURIER, 'proxy-config', ...a, '--admin', admin], { encoding: 'utf8' });

t.test('listeners and routes tables', async (t) => {
  const l = courier('listeners');
  t.equal(l.status, 0, l.stderr);
  t.match(l.stdout, /^NAME\s+ADDRESS\s+PORT\s+PROTOCOL\s+KIND/);
  t.match(l.stdout, new RegExp(`0\\.0\\.0\\.0_${port}\\s+0\\.0\\.0\\.0\\s+${port}\\s+HTTP\\s+gateway`));
  t.match(l.stdout, /\s+FILTER CHAINS\n/, 'the filter-chain column');
  t.match(l.stdout, new RegExp(`0\\.0\\.0\\.0_${port}\\s.*\\shttp$`, 'm'), 'one plaintext http chain');
  const j = JSON.parse(courier('listeners', '-o', 'json').stdout) as { filter_chains: unknown[] }[];
  t.same(j[0]?.filter_chains, [{ transport: 'http', transport_protocol: 'raw_buffer', server_names: [] }]);
  const r = courier('routes');
  t.match(r.stdout, /split\s+default\/demo\s+outbound\|80\|v1\|demo\.default\.svc\.cluster\.local \(90\)/);
  t.match(r.stdout, /teapot\s+default\/demo\s+direct response 418/);
});

t.test('clusters and endpoints tables, and JSON output', async (t) => {
  const c = courier('clusters');
  t.match(c.stdout, /demo\.default\.svc\.cluster\.local\s+80\s+v2\s+static\s+RING_HASH\s+default\/demo/);
  const e = courier('endpoints');
  t.match(e.stdout, /127\.0\.0\.1:9082\s+1\s+version=v2\s+outbound\|80\|v2\|demo/);
  const j = courier('clusters', '-o', 'json');
  t.equal(j.status, 0, `exit 0 (stderr: ${j.stderr})`);
  const parsed = JSON.parse(j.stdout) as { name: string }[];
  t.ok(parsed.some((x) => x.name === 'outbound|80|v1|demo.default.svc.cluster.local'));
});

t.test('unreachable admin: one clear line, exit 1', async (t) => {
  const r = spawnSync(
    process.execPath,
    [COURIER, 'proxy-config', 'routes', '--admin', 'http://127.0.0.1:9'],
    { encoding: 'utf8' },
  );
  t.equal(r.status, 1);
  t.match(r.stderr, /cannot reach the admin API/);
});

t.test('pilot-agent request GET /server_info', async (t) => {
  const r = spawnSync(process.execPath, [PILOT_AGENT, 'request', 'GET', '/server_info'], {
    encoding: 'utf8',
    env: { ...process.env, COURIER_ADMIN_PORT: String(agent.admin) },
  });
  t.equal(r.status, 0, r.stderr);
  t.equal((JSON.parse(r.stdout) as { state: string }).state, 'LIVE');
});
