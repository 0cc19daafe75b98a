// The egress-gateway pattern (istio-semantics.md §4.2): application → sidecar → egress gateway
// (router mode, istio=egressgateway) → the external service, with one VirtualService bound to
// both `mesh` and the egress gateway. Both proxies are real pilot-agent processes.

import t from 'tap';
import { freePort, request, startAgent, startUpstream, writeConfigDir } from '../helpers/procs.js';

const external = await startUpstream('external');
const egressPort = await freePort();

const config = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external}
spec:
  hosts: [edition.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${external.port}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: egressgateway, namespace: istio-system}
spec:
  hosts: [istio-egressgateway.istio-system.svc.cluster.local]
  ports: [{number: ${egressPort}, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: ${egressPort}, name: http, protocol: HTTP}
    hosts: [edition.example.com]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: external
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-external-through-egress-gateway}
spec:
  hosts: [edition.example.com]
  gateways: [istio-egressgateway, mesh]
  http:
  - match:
    - gateways: [mesh]
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: external
        port: {number: ${egressPort}}
  - match:
    - gateways: [istio-egressgateway]
      port: ${egressPort}
    route:
    - destination:
        host: edition.example.com
        port: {number: 80}
      headers:
        request:
          set: {x-via-egress: "yes"}
`;

const dir = writeConfigDir({ 'egress.yaml': config });
const egress = await startAgent({
  configDir: dir,
  args: ['--labels', 'istio=egressgateway', '--namespace', 'istio-system'],
});
const outbound = await freePort();
const side = await startAgent({
  configDir: dir,
  mode: 'sidecar',
  args: [
    '--labels',
    'app=sleep',
    '--outbound-port',
    String(outbound),
    '--inbound-port',
    String(await freePort()),
  ],
});
t.teardown(async () => {
  await side.stop();
  await egress.stop();
  await external.close();
});

t.test('the request travels sidecar → egress gateway → external service', async (t) => {
  const r = await request(outbound, '/politics', { host: 'edition.example.com' });
  t.equal(r.status, 200);
  const b = JSON.parse(r.body) as { name: string; url: string; headers: Record<string, string> };
  t.equal(b.name, 'external');
  t.equal(b.url, '/politics');
  t.equal(b.headers['x-via-egress'], 'yes', 'the egress gateway route was taken');
  t.equal(b.headers.host, 'edition.example.com');
  t.equal(b.headers['x-forwarded-for']?.split(',').length, 2, 'two proxies appended the peer');
});

t.test('the egress gateway alone serves only its gateway-bound route', async (t) => {
  const r = await request(egressPort, '/x', { host: 'edition.example.com' });
  t.equal(JSON.parse(r.body).headers['x-via-egress'], 'yes');
});
