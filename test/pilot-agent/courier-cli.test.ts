// The `courier` bin as a user runs it: validate and explain.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { COURIER, ROOT, writeConfigDir } from '../helpers/procs.js';

const run = (...args: string[]) => spawnSync(process.execPath, [COURIER, ...args], { encoding: 'utf8' });

t.test('validate: the Istio fixtures are valid (exit 0), unknown kinds noted', async (t) => {
  const r = run('validate', join(ROOT, 'test', 'fixtures', 'istio'));
  t.equal(r.status, 0, r.stdout + r.stderr);
  t.match(r.stderr, /skipped Deployment/);
});

t.test(
  'validate: one line per error with file, document, resource and field path; no stack trace',
  async (t) => {
    const dir = writeConfigDir({
      'vs.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ok}
spec:
  hosts: [a]
  http: [{route: [{destination: {host: a}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews}, weight: 10}
    - {destination: {host: reviews}, weight: -1}
`,
    });
    const r = run('validate', dir);
    t.equal(r.status, 1);
    t.match(
      r.stdout,
      /vs\.yaml\[1\] VirtualService\/default\/reviews: spec\.http\[0\]\.route\[1\]\.weight: must be >= 0/,
    );
    t.notMatch(r.stdout + r.stderr, /\bat .*\.js:\d+/, 'no stack trace');
  },
);

t.test(
  'validate: an unknown field is a warning with file and path; the config is valid (exit 0)',
  async (t) => {
    const dir = writeConfigDir({
      'dr.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - name: v1
    lables: {version: v1}
`,
    });
    const r = run('validate', dir);
    t.equal(r.status, 0, r.stdout + r.stderr);
    t.equal(r.stdout, '', 'no errors');
    t.match(
      r.stderr,
      /^warning: \S*dr\.yaml\[0\] DestinationRule\/shop\/reviews: spec\.subsets\[0\]\.lables: unknown field "lables" \(did you mean "labels"\?\)$/m,
    );
    t.match(r.stderr, /1 resource\(s\) in 1 file\(s\) valid/);
  },
);

t.test('validate: a missing path is an error, not a crash', async (t) => {
  const r = run('validate', '/nonexistent/courier/path');
  t.equal(r.status, 1);
  t.notMatch(r.stderr + r.stdout, /\bat .*\.js:\d+/);
});

t.test('explain: listener, virtual host, route, destinations, cluster and LB policy', async (t) => {
  const cfg = join(ROOT, 'examples', 'quickstart', 'config');
  const a = run('explain', '--config-dir', cfg, 'GET', 'http://localhost:8080/hello');
  t.equal(a.status, 0, a.stderr);
  t.match(a.stdout, /listener: 0\.0\.0\.0_8080/);
  t.match(a.stdout, /route: split \(#2 of 3/);
  t.match(
    a.stdout,
    /subset v1 port 80 weight 90\/100 -> cluster outbound\|80\|v1\|demo\.default\.svc\.cluster\.local/,
  );
  t.match(a.stdout, /load balancer: RING_HASH by cookie session/);
  const b = run('explain', '--config-dir', cfg, 'GET', 'http://localhost:8080/', '-H', 'end-user: jason');
  t.match(b.stdout, /route: jason-to-v2 \(#0 of 3/);
  const c = run('explain', '--config-dir', cfg, 'GET', 'http://localhost:8080/teapot');
  t.match(c.stdout, /action: direct response 418/);
  const d = run('explain', '--config-dir', cfg, 'GET', 'http://localhost:9999/');
  t.equal(d.status, 1);
  t.match(d.stderr, /listener: none on port 9999/);
  const e = run('explain', '--config-dir', cfg);
  t.equal(e.status, 2, 'usage error');
});

t.test(
  'explain: the filter chain an SNI selects, a TCP route, a passthrough route, upstream TLS',
  async (t) => {
    const { makeCa, tlsSecretYaml } = await import('../helpers/certs.js');
    const ca = await makeCa('explain-ca');
    const a = await ca.issue({ cn: 'a.example.com', dns: ['a.example.com'] });
    const cfg = writeConfigDir({
      'secret.yaml': tlsSecretYaml('a-cred', { 'tls.crt': a.cert, 'tls.key': a.key }),
      'gw.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: SIMPLE, credentialName: a-cred}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: [b.example.com]
    tls: {mode: SIMPLE, credentialName: missing-cred}
  - port: {number: 8443, name: tls-p, protocol: TLS}
    hosts: [p.example.com]
    tls: {mode: PASSTHROUGH}
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [a.example.com, b.example.com]
  gateways: [gw]
  http: [{route: [{destination: {host: web.example.com, port: {number: 443}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: l4}
spec:
  hosts: ["*"]
  gateways: [gw]
  tls: [{match: [{sniHosts: [p.example.com]}], route: [{destination: {host: p.backend, port: {number: 443}}}]}]
  tcp:
  - route:
    - {destination: {host: echo.backend, port: {number: 9000}, subset: v1}, weight: 80}
    - {destination: {host: echo.backend, port: {number: 9000}, subset: v2}, weight: 20}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web.example.com
  trafficPolicy: {tls: {mode: SIMPLE, sni: web.internal}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.example.com]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
`,
    });
    const https = run('explain', '--config-dir', cfg, 'GET', 'https://a.example.com/x');
    t.equal(https.status, 0, https.stderr);
    t.match(
      https.stdout,
      /filter chain: https\.443\.https-a\.gw\.default \(https server names a\.example\.com\)/,
    );
    t.match(https.stdout, /tls: terminated, SIMPLE with kubernetes:\/\/default\/a-cred\n/);
    t.match(https.stdout, /virtual host: a\.example\.com:443/);
    t.match(https.stdout, /upstream tls: SIMPLE, sni web\.internal, verified against the system roots/);
    const broken = run('explain', '--config-dir', cfg, 'GET', 'https://b.example.com/');
    t.match(
      broken.stdout,
      /tls: terminated, SIMPLE with kubernetes:\/\/default\/missing-cred \(secret default\/missing-cred not found: connections are refused\)/,
    );
    const unknown = run(
      'explain',
      '--config-dir',
      cfg,
      '--sni',
      'c.example.com',
      'GET',
      'https://a.example.com/',
    );
    t.match(
      unknown.stdout,
      /filter chain: none matches SNI "c\.example\.com" -> connection closed \(NR filter_chain_not_found\)/,
    );
    const tcp = run('explain', '--config-dir', cfg, 'tcp://gateway:31400');
    t.equal(tcp.status, 0, tcp.stderr);
    t.match(tcp.stdout, /route: default\.l4\.tcp\.0 \(from VirtualService default\/l4\)/);
    t.match(tcp.stdout, /subset v1 port 9000 weight 80\/100 -> cluster outbound\|9000\|v1\|echo\.backend/);
    const pass = run('explain', '--config-dir', cfg, 'tls://p.example.com:8443');
    t.match(
      pass.stdout,
      /filter chain: default\.l4\.tls\.0\|p\.example\.com \(tls_passthrough server names p\.example\.com\)/,
    );
    t.match(pass.stdout, /-> cluster outbound\|443\|\|p\.backend/);
    const noSni = run('explain', '--config-dir', cfg, '--sni', '', 'tls://p.example.com:8443');
    t.match(noSni.stdout, /none matches a connection without SNI/);
  },
);
