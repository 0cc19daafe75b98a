// compile() in router mode: Gateway selection and binding, host expansion, and Envoy's
// virtual-host domain order as seen through listener.routes.lookup.

import t from 'tap';
import { buildRouteTable } from '../../dist/config/compile/virtual-hosts.js';
import type { VirtualHost } from '../../dist/config/snapshot.js';
import { compileYaml, dispatch, GATEWAY, listenerOn, service } from './compile-fixtures.js';

const gateway = (name: string, ns: string, servers: string, selector = 'istio: ingressgateway') => `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  selector:
    ${selector}
  servers:
${servers}
---
`;

let serverSeq = 0;
const httpServer = (port: number, hosts: string[], extra = '') => `
    - port:
        number: ${port}
        name: http-${port}-${serverSeq++}
        protocol: HTTP
      hosts:
${hosts.map((h) => `        - "${h}"`).join('\n')}
${extra}`;

/** A VS routing everything to `dest` (a host that needs no ServiceEntry for compile). */
const vs = (name: string, ns: string, hosts: string[], gateways: string[], dest: string, http?: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  hosts:
${hosts.map((h) => `    - "${h}"`).join('\n')}
  gateways:
${gateways.map((g) => `    - ${g}`).join('\n')}
  http:
${
  http ??
  `    - route:
        - destination:
            host: ${dest}
            port:
              number: 80`
}
---
`;

const cluster = (host: string, port = 80, subset = '') => `outbound|${port}|${subset}|${host}`;

t.test('host expansion uses the resource namespace', async (t) => {
  const snap = compileYaml(
    t,
    gateway('bookinfo-gateway', 'istio-system', httpServer(80, ['*'])) +
      service('ratings', 'default', [{ number: 9080, name: 'http' }]) +
      '---\n' +
      service('ratings', 'bookinfo', [{ number: 9080, name: 'http' }]) +
      `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: bookinfo
spec:
  hosts:
    - reviews
  gateways:
    - istio-system/bookinfo-gateway
  http:
    - route:
        - destination:
            host: ratings
`,
    GATEWAY,
  );
  const l = listenerOn(snap, 80);
  t.strictSame(
    l?.routes.virtualHosts.map((v) => v.name),
    ['reviews.bookinfo.svc.cluster.local:80'],
    'VS host `reviews` in bookinfo becomes reviews.bookinfo.svc.cluster.local',
  );
  t.equal(l?.routes.lookup('reviews.istio-system.svc.cluster.local'), undefined, 'not the gateway namespace');
  t.equal(
    dispatch(l, 'reviews.bookinfo.svc.cluster.local'),
    cluster('ratings.bookinfo.svc.cluster.local', 9080),
    'destination `ratings` expands with the VirtualService namespace, not where another ratings lives',
  );
  t.ok(snap.clusters.has(cluster('ratings.bookinfo.svc.cluster.local', 9080)));
});

t.test('Envoy domain order: exact, longest suffix wildcard, then *', async (t) => {
  // Declared most-general first, so "first declared wins" would give the wrong answers.
  const snap = compileYaml(
    t,
    gateway('gw', 'istio-system', httpServer(80, ['*'])) +
      vs('star', 'istio-system', ['*'], ['gw'], 'star.example.org') +
      vs('sub', 'istio-system', ['*.foo.com'], ['gw'], 'sub.example.org') +
      vs('subsub', 'istio-system', ['*.bar.foo.com'], ['gw'], 'subsub.example.org') +
      vs('exact', 'istio-system', ['foo.com'], ['gw'], 'exact.example.org'),
    GATEWAY,
  );
  const l = listenerOn(snap, 80);
  const go = (h: string) => dispatch(l, h);
  t.equal(go('foo.com'), cluster('exact.example.org'), 'exact beats *.foo.com and *');
  t.equal(go('a.foo.com'), cluster('sub.example.org'), '*.foo.com');
  t.equal(go('x.bar.foo.com'), cluster('subsub.example.org'), 'longer suffix *.bar.foo.com beats *.foo.com');
  t.equal(go('bar.foo.com'), cluster('sub.example.org'), '*.bar.foo.com never matches an empty label');
  t.equal(go('other.org'), cluster('star.example.org'), '* is last');
  t.equal(go('.foo.com'), cluster('star.example.org'), '*.foo.com does not match an empty first label');
  t.equal(go('FOO.Com'), cluster('exact.example.org'), 'case-insensitive exact');
  t.equal(go('A.Bar.FOO.com'), cluster('subsub.example.org'), 'case-insensitive wildcard');
  t.equal(go('foo.com:8080'), cluster('exact.example.org'), 'gateway ignores the port in Host');
  t.equal(go('x.bar.foo.com:443'), cluster('subsub.example.org'), 'port ignored for wildcards too');
  t.equal(go('[::1]:80'), cluster('star.example.org'), 'IPv6 literal with port');
});

t.test('a suffix wildcard never matches the bare domain', async (t) => {
  const snap = compileYaml(
    t,
    gateway('gw', 'istio-system', httpServer(80, ['*'])) +
      vs('sub', 'istio-system', ['*.foo.com'], ['gw'], 'sub.example.org'),
    GATEWAY,
  );
  const l = listenerOn(snap, 80);
  t.equal(dispatch(l, 'foo.com'), 'NO_VHOST');
  t.equal(dispatch(l, 'xfoo.com'), 'NO_VHOST', 'suffix match is on a label boundary');
  t.equal(dispatch(l, 'a.foo.com'), cluster('sub.example.org'));
});

t.test('route table: suffix wildcards beat prefix wildcards; longest prefix first', async (t) => {
  const vh = (name: string, domains: string[]): VirtualHost => ({ name, domains, routes: [] });
  const table = buildRouteTable(
    'test',
    [vh('star', ['*']), vh('prefix', ['foo.*']), vh('longprefix', ['foo.bar.*']), vh('suffix', ['*.com'])],
    { ignorePort: true },
  );
  t.equal(table.lookup('foo.com')?.name, 'suffix', '*.com beats foo.*');
  t.equal(table.lookup('foo.org')?.name, 'prefix');
  t.equal(table.lookup('foo.bar.org')?.name, 'longprefix', 'foo.bar.* beats foo.*');
  t.equal(table.lookup('foo.')?.name, 'star', 'foo.* does not match an empty label');
  t.equal(table.lookup('bar.org')?.name, 'star');
  const withPort = buildRouteTable('p', [vh('a', ['a.com:81']), vh('b', ['a.com'])], { ignorePort: false });
  t.equal(withPort.lookup('a.com:81')?.name, 'a', 'port kept when the table is port-aware');
  t.equal(withPort.lookup('a.com')?.name, 'b');
  t.equal(withPort.lookup('a.com:82'), undefined);
});

t.test('Gateway selector chooses the listeners', async (t) => {
  const yaml =
    gateway('ingress', 'istio-system', httpServer(80, ['*'])) +
    gateway('egress', 'istio-system', httpServer(81, ['*']), 'istio: egressgateway') +
    gateway('multi', 'istio-system', httpServer(82, ['*']), 'istio: ingressgateway\n    zone: a');
  const snap = compileYaml(t, yaml, GATEWAY);
  t.strictSame(
    snap.listeners.map((l) => l.port),
    [80],
    'egress selector and a selector with an extra label do not match',
  );
  t.strictSame(listenerOn(snap, 80)?.gateways, ['istio-system/ingress']);
  const zoned = compileYaml(t, yaml, { ...GATEWAY, labels: { istio: 'ingressgateway', zone: 'a', x: 'y' } });
  t.strictSame(
    zoned.listeners.map((l) => l.port),
    [80, 82],
    'a selector is a subset of the labels',
  );
  const egress = compileYaml(t, yaml, { ...GATEWAY, labels: { istio: 'egressgateway' } });
  t.strictSame(
    egress.listeners.map((l) => l.port),
    [81],
  );
});

t.test('VirtualService gateways: `name` is the VS namespace, `ns/name` is explicit', async (t) => {
  const snap = compileYaml(
    t,
    gateway('gw', 'istio-system', httpServer(80, ['*'])) +
      vs('same-ns', 'istio-system', ['a.example.com'], ['gw'], 'a.backend') +
      vs('qualified', 'bookinfo', ['b.example.com'], ['istio-system/gw'], 'b.backend') +
      vs('unqualified-elsewhere', 'bookinfo', ['c.example.com'], ['gw'], 'c.backend') +
      vs('mesh-only', 'istio-system', ['d.example.com'], ['mesh'], 'd.backend') +
      vs('other-gw', 'istio-system', ['e.example.com'], ['istio-system/other'], 'e.backend'),
    GATEWAY,
  );
  const l = listenerOn(snap, 80);
  t.equal(dispatch(l, 'a.example.com'), cluster('a.backend'));
  t.equal(dispatch(l, 'b.example.com'), cluster('b.backend'));
  t.equal(dispatch(l, 'c.example.com'), 'NO_VHOST', '`gw` from bookinfo means bookinfo/gw');
  t.equal(dispatch(l, 'd.example.com'), 'NO_VHOST', 'mesh-only VS does not bind');
  t.equal(dispatch(l, 'e.example.com'), 'NO_VHOST');
});

t.test('server host namespace part: ./*, ns/*, */host', async (t) => {
  const snap = compileYaml(
    t,
    gateway(
      'gw',
      'istio-system',
      httpServer(80, ['./*']) + httpServer(81, ['bookinfo/*']) + httpServer(82, ['*/*.example.com']),
    ) +
      vs('local', 'istio-system', ['a.example.com'], ['gw'], 'a.backend') +
      vs('remote', 'bookinfo', ['b.example.com', 'other.org'], ['istio-system/gw'], 'b.backend'),
    GATEWAY,
  );
  const names = (port: number) => listenerOn(snap, port)?.routes.virtualHosts.map((v) => v.name);
  t.strictSame(names(80), ['a.example.com:80'], './* takes only VSs of the gateway namespace');
  t.strictSame(names(81), ['b.example.com:81', 'other.org:81'], 'bookinfo/* takes only bookinfo VSs');
  t.strictSame(
    names(82)?.sort(),
    ['a.example.com:82', 'b.example.com:82'],
    '*/*.example.com: any namespace, hosts under example.com',
  );
});

t.test('virtual hosts are server host ∩ VS host', async (t) => {
  const snap = compileYaml(
    t,
    gateway('gw', 'istio-system', httpServer(80, ['*.example.com']) + httpServer(81, ['foo.bar'])) +
      vs('all', 'istio-system', ['*'], ['gw'], 'all.backend') +
      vs('dev', 'istio-system', ['dev.example.com'], ['gw'], 'dev.backend') +
      vs('apex', 'istio-system', ['example.com'], ['gw'], 'apex.backend'),
    GATEWAY,
  );
  const l80 = listenerOn(snap, 80);
  t.strictSame(
    l80?.routes.virtualHosts.map((v) => v.name).sort(),
    ['*.example.com:80', 'dev.example.com:80'],
    'VS `*` narrows to the server host; example.com is not under *.example.com',
  );
  t.equal(dispatch(l80, 'dev.example.com'), cluster('dev.backend'));
  t.equal(dispatch(l80, 'x.example.com'), cluster('all.backend'));
  t.equal(dispatch(l80, 'example.com'), 'NO_VHOST');
  t.equal(dispatch(l80, 'elsewhere.org'), 'NO_VHOST', 'VS `*` does not widen the server host');
  const l81 = listenerOn(snap, 81);
  t.strictSame(
    l81?.routes.virtualHosts.map((v) => v.name),
    ['foo.bar:81'],
    'server foo.bar + VS * gives foo.bar',
  );
  t.equal(dispatch(l81, 'foo.bar'), cluster('all.backend'));
});

t.test('a server with no VirtualService bound has a listener and no virtual host', async (t) => {
  const snap = compileYaml(t, gateway('gw', 'istio-system', httpServer(8080, ['*'])), GATEWAY);
  const l = listenerOn(snap, 8080);
  t.ok(l, 'listener exists');
  t.equal(l?.kind, 'gateway');
  t.equal(l?.address, '0.0.0.0');
  t.strictSame(l?.routes.virtualHosts, []);
  t.equal(dispatch(l, 'anything.example.com'), 'NO_VHOST', '404 like Istio blackhole');
});

t.test('VirtualServices for one host merge on a gateway', async (t) => {
  const route = (prefix: string, dest: string) => `    - match:
        - uri:
            prefix: ${prefix}
      route:
        - destination:
            host: ${dest}
            port:
              number: 80`;
  const snap = compileYaml(
    t,
    gateway('gw', 'istio-system', httpServer(80, ['api.example.com'])) +
      vs('catchall', 'istio-system', ['api.example.com'], ['gw'], '', route('/', 'root.backend')) +
      vs('a', 'istio-system', ['api.example.com'], ['gw'], '', route('/a', 'a.backend')) +
      vs('b', 'istio-system', ['api.example.com'], ['gw'], '', route('/b', 'b.backend')),
    GATEWAY,
  );
  const l = listenerOn(snap, 80);
  t.equal(l?.routes.virtualHosts.length, 1, 'one vhost for the host');
  t.equal(dispatch(l, 'api.example.com', { path: '/a/1' }), cluster('a.backend'));
  t.equal(dispatch(l, 'api.example.com', { path: '/b/1' }), cluster('b.backend'));
  t.equal(
    dispatch(l, 'api.example.com', { path: '/c' }),
    cluster('root.backend'),
    'the catch-all (prefix /) of the first VS moves to the end',
  );
  t.strictSame(
    l?.routes.virtualHosts[0]?.routes.map((r) => r.virtualService),
    ['istio-system/a', 'istio-system/b', 'istio-system/catchall'],
  );
});

t.test('tls.httpsRedirect marks the server virtual hosts', async (t) => {
  const snap = compileYaml(
    t,
    gateway(
      'gw',
      'istio-system',
      httpServer(80, ['secure.example.com'], '      tls:\n        httpsRedirect: true') +
        httpServer(80, ['plain.example.com']),
    ) +
      vs('secure', 'istio-system', ['secure.example.com'], ['gw'], 'secure.backend') +
      vs('plain', 'istio-system', ['plain.example.com'], ['gw'], 'plain.backend'),
    GATEWAY,
  );
  const l = listenerOn(snap, 80);
  t.equal(snap.listeners.length, 1, 'two servers on one port share a listener');
  t.equal(dispatch(l, 'secure.example.com'), 'HTTPS_REDIRECT');
  t.equal(dispatch(l, 'plain.example.com'), cluster('plain.backend'));
  const redirectOnly = compileYaml(
    t,
    gateway(
      'gw',
      'istio-system',
      httpServer(80, ['r.example.com'], '      tls:\n        httpsRedirect: true'),
    ),
    GATEWAY,
  );
  t.equal(
    dispatch(listenerOn(redirectOnly, 80), 'r.example.com'),
    'HTTPS_REDIRECT',
    'redirects even with no VS bound',
  );
});

t.test('match gateways and port select routes on a gateway', async (t) => {
  const snap = compileYaml(
    t,
    gateway('gw', 'istio-system', httpServer(80, ['*']) + httpServer(8080, ['*'])) +
      vs(
        'sel',
        'istio-system',
        ['svc.example.com'],
        ['gw', 'mesh'],
        '',
        `    - match:
        - gateways: [mesh]
      route:
        - destination:
            host: mesh.backend
            port:
              number: 80
    - match:
        - port: 8080
      route:
        - destination:
            host: alt.backend
            port:
              number: 80
    - route:
        - destination:
            host: gw.backend
            port:
              number: 80`,
      ),
    GATEWAY,
  );
  t.equal(dispatch(listenerOn(snap, 80), 'svc.example.com'), cluster('gw.backend'), 'mesh block dropped');
  t.equal(
    dispatch(listenerOn(snap, 8080), 'svc.example.com'),
    cluster('alt.backend'),
    'port 8080 block kept',
  );
});

t.test('servers that are not plain HTTP are skipped (config/not-enforced.ts reports them)', async (t) => {
  const snap = compileYaml(
    t,
    gateway(
      'gw',
      'istio-system',
      `    - port:
        number: 443
        name: tls
        protocol: TLS
      hosts: ["*"]
      tls:
        mode: PASSTHROUGH
`,
    ),
    GATEWAY,
  );
  t.strictSame(snap.listeners, []);
  t.strictSame(snap.warnings, [], 'reported once, as not enforced, not as a compile warning too');
});
