// A typo in an otherwise valid config: the running agent accepts it (as Kubernetes' default field
// validation does), serves the known fields, and reports the unknown one in its log and in
// /config_dump, with file and field path.

import t from 'tap';
import {
  freePort,
  gatewayYaml,
  request,
  serviceEntryYaml,
  startAgent,
  startUpstream,
  writeConfigDir,
} from '../helpers/procs.js';

const up = await startUpstream('shop');
t.teardown(() => up.close());
const port = await freePort();
const configDir = writeConfigDir({
  'gw.yaml': gatewayYaml(port),
  'se.yaml': serviceEntryYaml('shop.default.svc.cluster.local', [{ port: up.port }]),
  'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: shop.default.svc.cluster.local}}]
    timout: 5s
`,
});

t.test('an unknown field is a warning: config active, logged, in /config_dump', async (t) => {
  const agent = await startAgent({ configDir });
  t.teardown(() => agent.stop());
  const r = await request(port, '/x');
  t.equal(r.status, 200, 'the known fields are served');
  t.match(
    agent.logs(),
    /warn.*vs\.yaml\[0\] VirtualService\/default\/shop: spec\.http\[0\]\.timout: unknown field "timout"/,
  );
  const dump = (await (await fetch(`http://127.0.0.1:${agent.admin}/config_dump`)).json()) as {
    configs?: unknown;
  };
  t.match(JSON.stringify(dump), /spec\.http\[0\]\.timout: unknown field/);
});
