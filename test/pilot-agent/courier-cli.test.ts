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
