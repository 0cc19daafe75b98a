// Gateway listeners as filter chains: an HTTP server compiles into one plaintext `http` chain
// (the same table the request path reads); HTTPS, TLS and TCP servers compile into the chains
// Istio builds for them.

import t, { type Test } from 'tap';
import { buildGatewayListeners } from '../../dist/config/compile/gateway-listeners.js';
import type { Listener } from '../../dist/config/snapshot.js';
import type { Destination, Resource } from '../../dist/config/types.js';
import { compileYaml, GATEWAY, load } from './compile-fixtures.js';

const YAML = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: a-cred}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: ["*.b.example.com"]
    tls: {mode: MUTUAL, credentialName: b-cred, minProtocolVersion: TLSV1_3}
  - port: {number: 443, name: tls-p, protocol: TLS}
    hosts: [p.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 443, name: tls-t, protocol: TLS}
    hosts: [t.example.com]
    tls: {mode: SIMPLE, credentialName: t-cred}
  - port: {number: 443, name: http-conflict, protocol: HTTP}
    hosts: [c.example.com]
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 8443, name: tls-none, protocol: TLS}
    hosts: [none.example.com]
    tls: {mode: PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: istio-system}
spec:
  hosts: [a.example.com, x.b.example.com]
  gateways: [gw]
  http:
  - route: [{destination: {host: web.backend}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pass, namespace: istio-system}
spec:
  hosts: [p.example.com]
  gateways: [gw]
  tls:
  - match: [{port: 443, sniHosts: [p.example.com]}, {port: 8443, sniHosts: [p.example.com]}]
    route:
    - {destination: {host: p1.backend, port: {number: 443}}, weight: 80}
    - {destination: {host: p2.backend, port: {number: 443}}, weight: 20}
  - match: [{sniHosts: [p.example.com]}]
    route: [{destination: {host: dup.backend}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{port: 9999}]
    route: [{destination: {host: wrong-port.backend}}]
  - match: [{port: 31400}]
    route: [{destination: {host: tcp.backend, port: {number: 27017}}}]
  - route: [{destination: {host: second.backend}}]
`;

const resolve = (d: Destination) => ({
  cluster: `outbound|${d.port?.number ?? 80}|${d.subset ?? ''}|${d.host}`,
  host: d.host,
  subset: d.subset ?? '',
  port: d.port?.number ?? 80,
});

function build(t: Test, warnings: string[] = []): Listener[] {
  const resources = load(t, { 'c.yaml': YAML });
  const of = <K extends string>(k: K) => resources.filter((r) => r.kind === k) as Resource<never>[];
  return buildGatewayListeners({
    gateways: of('Gateway') as never,
    virtualServices: of('VirtualService') as never,
    identity: GATEWAY,
    resolve,
    warnings,
  });
}

t.test(
  'a snapshot has every server port; the plaintext HTTP listener has one http chain over its table',
  async (t) => {
    const snap = compileYaml(t, YAML, GATEWAY);
    t.strictSame(
      snap.listeners.map((l) => l.port),
      [31400, 443, 80],
    );
    const l = snap.listeners.find((x) => x.port === 80) as Listener;
    t.equal(l.filterChains.length, 1);
    const chain = l.filterChains[0];
    t.equal(chain?.transport, 'http');
    t.strictSame(chain?.match, { transportProtocol: 'raw_buffer', serverNames: [] });
    t.equal(chain?.transport === 'http' && chain.routes, l.routes, 'the same table the request path reads');
    t.ok(Object.isFrozen(l.filterChains) && Object.isFrozen(chain), 'frozen');
    t.strictSame(
      build(t).map((x) => x.port),
      [31400, 443, 80],
      'the builder alone gives the same listeners',
    );
  },
);

t.test('HTTPS, TLS and TCP servers compile into their chains', async (t) => {
  const warnings: string[] = [];
  const ls = build(t, warnings);
  t.strictSame(
    warnings,
    [
      'skipping VirtualService istio-system/pass rule #1 on server port 443 of gateway istio-system/gw, duplicate SNI host names: [p.example.com]',
    ],
    'a skipped duplicate is reported, as Istio logs it',
  );
  t.strictSame(
    ls.map((l) => [l.port, l.protocol]),
    [
      [31400, 'TCP'],
      [443, 'HTTPS'],
      [80, 'HTTP'],
    ],
    'a PASSTHROUGH server with no VirtualService bound has no chain, so no listener (8443)',
  );
  const tls = ls.find((l) => l.port === 443) as Listener;
  t.equal(tls.routes.virtualHosts.length, 0, 'no plaintext table');
  t.strictSame(
    tls.filterChains.map((c) => [c.transport, c.match.transportProtocol, c.match.serverNames]),
    [
      ['https', 'tls', ['a.example.com']],
      ['https', 'tls', ['*.b.example.com']],
      ['tls_passthrough', 'tls', ['p.example.com']],
      ['tcp', 'tls', ['t.example.com']],
    ],
    'each TLS server its own chain; the HTTP server on 443 conflicts and is skipped; the duplicate SNI rule too',
  );
  const [a, bChain, p, tt] = tls.filterChains;
  if (a?.transport !== 'https' || bChain?.transport !== 'https') throw new Error('https chains');
  t.equal(a.name, 'https.443.https-a.gw.istio-system');
  t.match(a.tls, { mode: 'SIMPLE', credentialName: 'a-cred' });
  t.match(bChain.tls, { mode: 'MUTUAL', credentialName: 'b-cred', minVersion: 'TLSv1.3' });
  t.strictSame(
    [a.tls.material?.source, a.tls.material?.error],
    ['kubernetes://istio-system/a-cred#server', 'credential not resolved'],
    'material looked up by the credential key in the proxy namespace; without a store it is an error',
  );
  t.equal(bChain.tls.material?.source, 'kubernetes://istio-system/b-cred#server-mutual');
  t.strictSame(
    a.routes.virtualHosts.map((v) => v.name),
    ['a.example.com:443'],
    'its own table: only its hosts',
  );
  t.strictSame(
    bChain.routes.virtualHosts.map((v) => v.name),
    ['x.b.example.com:443', '*.b.example.com:443'],
    'the tcp VS with host * binds as well (with no http routes), as for plaintext HTTP servers',
  );
  if (p?.transport !== 'tls_passthrough') throw new Error('passthrough chain');
  t.strictSame(
    p.route.destinations.map((d) => [d.cluster, d.weight]),
    [
      ['outbound|443||p1.backend', 80],
      ['outbound|443||p2.backend', 20],
    ],
  );
  t.equal(p.route.totalWeight, 100);
  if (tt?.transport !== 'tcp') throw new Error('terminated tcp chain');
  t.match(tt.tls, { mode: 'SIMPLE', credentialName: 't-cred' });
  t.equal(
    tt.route.destinations[0]?.cluster,
    'outbound|80||second.backend',
    'the first tcp rule that passes on 443',
  );
  const tcp = ls.find((l) => l.port === 31400) as Listener;
  t.strictSame(
    tcp.filterChains.map((c) => [c.transport, c.match]),
    [['tcp', { transportProtocol: 'raw_buffer', serverNames: [] }]],
  );
  t.equal(
    tcp.filterChains[0]?.transport === 'tcp' && tcp.filterChains[0].route.name,
    'istio-system.tcp.tcp.1',
    'the rule for port 9999 is skipped, the one for 31400 taken',
  );
});
