// What courier does not enforce yet is never ignored silently by the running agent: an
// AuthorizationPolicy (DENY), a DestinationRule with mesh TLS (ISTIO_MUTUAL), an HTTPS and a GRPC gateway
// server (ISTIO_MUTUAL, which needs mesh identities) are each a warning in the log, an entry of /config_dump's `not_enforced` and counted in
// `courier_config_not_enforced{kind}` on the merged metrics (status port). Removing the policy
// (hot reload) takes it out of all three; an EnvoyFilter, which changes no config version, is
// reported too. Traffic is unchanged: the DENY policy does not deny (that is a later issue).

import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  freePort,
  gatewayYaml,
  request,
  serviceEntryYaml,
  sleep,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

interface Entry {
  kind: string;
  namespace: string;
  name: string;
  file: string;
  index: number;
  path: string;
  message: string;
}

interface Dump {
  version: string;
  not_enforced: Entry[];
}

const up = await startUpstream('shop');
t.teardown(() => up.close());
const [port, httpsPort, grpcPort] = [await freePort(), await freePort(), await freePort()];
const HOST = 'shop.default.svc.cluster.local';

const configDir = writeConfigDir({
  'gw.yaml': `${gatewayYaml(port)}  - port: {number: ${httpsPort}, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: ${grpcPort}, name: grpc, protocol: GRPC}
    hosts: ["*"]
`,
  'se.yaml': serviceEntryYaml(HOST, [{ port: up.port }]),
  'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: ${HOST}}}]
`,
  'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop, namespace: default}
spec:
  host: ${HOST}
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
`,
  'ap.yaml': `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: default}
spec:
  action: DENY
  rules: [{}]
`,
});

const agent = await startAgent({ configDir });
t.teardown(() => agent.stop());

async function dump(): Promise<Dump> {
  return (await (await fetch(`http://127.0.0.1:${agent.admin}/config_dump`)).json()) as Dump;
}

/** `courier_config_not_enforced` by kind, from the merged metrics on the status port. */
async function gauge(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^courier_config_not_enforced\{kind="([^"]+)"\} (\S+)$/gm))
    out.set(m[1] as string, Number(m[2]));
  return out;
}

async function until<T>(what: string, get: () => Promise<T>, ok: (v: T) => boolean): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const v = await get();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(v)}`);
    await sleep(100);
  }
}

const summary = (d: Dump) => d.not_enforced.map((e) => `${e.file}[${e.index}] ${e.kind} ${e.path}`);

t.test('the agent reports each item: log, /config_dump, metric; traffic is unchanged', async (t) => {
  const r = await request(port, '/x');
  t.equal(r.status, 200, 'the DENY policy is not enforced (reported, not applied)');
  const logs = agent.logs();
  for (const line of [
    /warn pilot-agent: ap\.yaml\[0\] AuthorizationPolicy\/default\/deny-all: spec: AuthorizationPolicy is not enforced: requests are NOT checked against it \(action DENY/,
    /warn pilot-agent: dr\.yaml\[0\] DestinationRule\/default\/shop: spec\.trafficPolicy\.tls\.mode: ISTIO_MUTUAL is not enforced yet: traffic to shop\.default\.svc\.cluster\.local leaves in plaintext/,
    /warn pilot-agent: gw\.yaml\[0\] Gateway\/default\/gw: spec\.servers\[1\]\.port\.protocol: HTTPS \(TLS ISTIO_MUTUAL\) is not served yet/,
    /warn pilot-agent: gw\.yaml\[0\] Gateway\/default\/gw: spec\.servers\[2\]\.port\.protocol: GRPC is served as HTTP\/1\.1/,
  ])
    t.match(logs, line);

  const d = await dump();
  t.same(summary(d), [
    'ap.yaml[0] AuthorizationPolicy spec',
    'dr.yaml[0] DestinationRule spec.trafficPolicy.tls.mode',
    'gw.yaml[0] Gateway spec.servers[1].port.protocol',
    'gw.yaml[0] Gateway spec.servers[2].port.protocol',
  ]);
  t.match(d.not_enforced[0], {
    kind: 'AuthorizationPolicy',
    namespace: 'default',
    name: 'deny-all',
    message: /requests are NOT checked against it/,
  });

  const g = await gauge();
  t.equal(g.get('AuthorizationPolicy'), 1);
  t.equal(g.get('DestinationRule'), 1);
  t.equal(g.get('Gateway'), 2);
});

t.test('removing the policy (hot reload) takes it out of /config_dump and the metric', async (t) => {
  const before = await dump();
  rmSync(join(configDir, 'ap.yaml'));
  const after = await until('config_dump after removing ap.yaml', dump, (d) => d.version !== before.version);
  t.notOk(
    after.not_enforced.some((e) => e.kind === 'AuthorizationPolicy'),
    'no AuthorizationPolicy entry',
  );
  t.equal(after.not_enforced.length, 3, 'the others stay');
  const g = await gauge();
  t.ok(
    (g.get('AuthorizationPolicy') ?? 0) === 0,
    'courier_config_not_enforced{kind="AuthorizationPolicy"} 0',
  );
  t.equal(g.get('DestinationRule'), 1);
  t.equal((await request(port, '/x')).status, 200);
});

t.test('an EnvoyFilter (no new config version) is reported too, and its removal', async (t) => {
  const before = await dump();
  const file = join(configDir, 'ef.yaml');
  writeFileSync(
    file,
    'apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: lua, namespace: default}\nspec: {}\n',
  );
  const d = await until('config_dump with the EnvoyFilter', dump, (x) =>
    x.not_enforced.some((e) => e.kind === 'EnvoyFilter'),
  );
  t.equal(d.version, before.version, 'same config version: the filter is not loaded');
  t.match(
    agent.logs(),
    /warn pilot-agent: ef\.yaml\[0\] EnvoyFilter\/default\/lua: EnvoyFilter is not applied/,
  );
  t.equal((await gauge()).get('EnvoyFilter'), 1);
  rmSync(file);
  await until('config_dump without the EnvoyFilter', dump, (x) =>
    x.not_enforced.every((e) => e.kind !== 'EnvoyFilter'),
  );
  t.ok(((await gauge()).get('EnvoyFilter') ?? 0) === 0, 'courier_config_not_enforced{kind="EnvoyFilter"} 0');
});
