// POST /logging?level= on the admin port changes what the running agent logs, at once, with
// Envoy's level names; an unknown level is a 400 that names the known ones.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { freePort, gatewayYaml, sleep, startAgent, writeConfigDir } from '../helpers/procs.js';

const gw = await freePort();
const dir = writeConfigDir({ 'gw.yaml': gatewayYaml(gw) });
const agent = await startAgent({ configDir: dir });
t.teardown(() => agent.stop());

const post = async (q: string) => {
  const r = await fetch(`http://127.0.0.1:${agent.admin}/logging${q}`, { method: 'POST' });
  return { status: r.status, body: await r.text() };
};

/** Add a document and wait until the agent has logged something after it. */
async function reloadWith(name: string): Promise<string> {
  const before = agent.logs().length;
  writeFileSync(join(dir, `${name}.yaml`), gatewayYaml(gw).replace('name: gw', `name: ${name}`));
  await sleep(1500); // the watcher's debounce and the reload
  return agent.logs().slice(before);
}

t.test('level error hides the info lines of the next reload; info brings them back', async (t) => {
  t.same(await post('?level=error'), { status: 200, body: 'active loggers: level error\n' });
  t.notMatch(await reloadWith('quiet'), /config version \S+ active/, 'no info line at level error');
  t.same(await post('?level=info'), { status: 200, body: 'active loggers: level info\n' });
  t.match(await reloadWith('loud'), /info pilot-agent: config version \S+ active/);
});

t.test("Envoy's names map onto the agent's levels; unknown ones are refused", async (t) => {
  t.equal((await post('?level=warning')).body, 'active loggers: level warn\n');
  t.equal((await post('?level=critical')).body, 'active loggers: level error\n');
  const bad = await post('?level=loud');
  t.equal(bad.status, 400);
  t.match(bad.body, /unknown logger level "loud"/);
  t.equal((await post('')).body, 'active loggers: level error\n', 'no level: the current one');
});
