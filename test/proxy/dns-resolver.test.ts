// DNS for `resolution: DNS` clusters: the resolver's refresh schedule (record TTLs, clamped),
// failures keeping the last good addresses, and the cluster manager expanding a hostname into
// one endpoint per address, rebuilt in place when the set changes. Time and lookups are fakes.

import t from 'tap';
import { ClusterManager } from '../../dist/proxy/cluster-manager.js';
import {
  type DnsLookup,
  type DnsRecord,
  DnsResolver,
  type DnsResolverOptions,
  needsDns,
  parseDnsServers,
} from '../../dist/proxy/dns-resolver.js';
import { compileYaml, GATEWAY } from '../config/compile-fixtures.js';

interface FakeTimer {
  fn: () => void;
  ms: number;
  cancelled: boolean;
}

/** A fake clock (timers run when told) and a fake DNS (answers per host, settable). */
function fakes() {
  const timers: FakeTimer[] = [];
  const answers = new Map<string, readonly DnsRecord[] | Error>();
  const lookups: string[] = [];
  const errors: string[] = [];
  const lookup: DnsLookup = async (host) => {
    lookups.push(host);
    const a = answers.get(host);
    if (a === undefined) throw Object.assign(new Error(`queryA ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    if (a instanceof Error) throw a;
    return a;
  };
  const opts: DnsResolverOptions = {
    lookup,
    schedule: (fn, ms) => {
      const timer: FakeTimer = { fn, ms, cancelled: false };
      timers.push(timer);
      return { cancel: () => (timer.cancelled = true) };
    },
    onError: (host, err) => errors.push(`${host}: ${err.message}`),
  };
  const pending = () => timers.filter((x) => !x.cancelled);
  /** Run the timers due now, then let their lookups settle. */
  const tick = async () => {
    const due = pending();
    for (const x of due) x.cancelled = true;
    for (const x of due) x.fn();
    await settle();
  };
  return { timers, answers, lookups, errors, opts, pending, tick };
}

const settle = () => new Promise((r) => setImmediate(r));
const rec = (ttl: number, ...addresses: string[]) => addresses.map((address) => ({ address, ttl }));

t.test('needsDns: IP literals, localhost and unix sockets need no lookup', async (t) => {
  t.equal(needsDns('svc.courier.test'), true);
  t.equal(needsDns('httpbin.org'), true);
  t.equal(needsDns('10.0.0.1'), false);
  t.equal(needsDns('::1'), false);
  t.equal(needsDns('localhost'), false);
  t.equal(needsDns('LOCALHOST.'), false);
  t.equal(needsDns('unix:///run/app.sock'), false);
});

t.test('parseDnsServers: a comma list, undefined when unset or blank', async (t) => {
  t.strictSame(parseDnsServers('127.0.0.1:5353, 10.0.0.2 ,'), ['127.0.0.1:5353', '10.0.0.2']);
  t.equal(parseDnsServers(''), undefined);
  t.equal(parseDnsServers(undefined), undefined);
});

t.test('first answer: sorted addresses, onChange, refresh on the TTL clamped to [1s, 300s]', async (t) => {
  const f = fakes();
  const changed: string[] = [];
  const r = new DnsResolver(f.opts, (h) => changed.push(h));
  f.answers.set('a.test', rec(30, '10.0.0.2', '10.0.0.1', '10.0.0.2'));
  f.answers.set('b.test', rec(0, '10.0.1.1'));
  f.answers.set('c.test', [...rec(100_000, '10.0.2.1'), ...rec(0, '10.0.2.2')]);
  f.answers.set(
    'd.test',
    rec(0, '10.0.3.1').map((x) => ({ ...x, ttl: 0.2 })),
  );
  r.sync(['a.test', 'b.test', 'c.test', 'd.test']);
  t.equal(r.addresses('a.test'), undefined, 'nothing before the first answer');
  await settle();
  t.strictSame(r.addresses('a.test'), ['10.0.0.1', '10.0.0.2'], 'deduplicated and sorted');
  t.strictSame(changed.sort(), ['a.test', 'b.test', 'c.test', 'd.test']);
  t.strictSame(
    f.pending().map((x) => x.ms),
    [30_000, 5_000, 300_000, 1_000],
    'TTL 30s; TTL 0 -> default 5s; huge TTL -> 300s (the smallest non-zero TTL counts); sub-second -> 1s',
  );
  r.close();
  t.equal(f.pending().length, 0, 'close cancels every timer');
});

t.test('refresh: unchanged set is quiet, a changed set fires onChange', async (t) => {
  const f = fakes();
  const changed: string[] = [];
  const r = new DnsResolver(f.opts, (h) => changed.push(h));
  f.answers.set('a.test', rec(5, '10.0.0.1', '10.0.0.2'));
  r.sync(['a.test']);
  await settle();
  t.equal(changed.length, 1);
  f.answers.set('a.test', rec(7, '10.0.0.2', '10.0.0.1'));
  await f.tick();
  t.equal(changed.length, 1, 'same addresses in another order: no change');
  t.strictSame(
    f.pending().map((x) => x.ms),
    [7_000],
    'the new TTL sets the next refresh',
  );
  f.answers.set('a.test', rec(5, '10.0.0.3'));
  await f.tick();
  t.equal(changed.length, 2);
  t.strictSame(r.addresses('a.test'), ['10.0.0.3']);
  t.equal(f.lookups.length, 3);
  r.close();
});

t.test('a failed lookup keeps the last good addresses and retries', async (t) => {
  const f = fakes();
  const changed: string[] = [];
  const r = new DnsResolver({ ...f.opts, failureRefreshMs: 2_000 }, (h) => changed.push(h));
  f.answers.set('a.test', rec(5, '10.0.0.1'));
  r.sync(['a.test', 'never.test']);
  await settle();
  t.equal(r.addresses('never.test'), undefined, 'a host that never answered stays unresolved');
  f.answers.set('a.test', Object.assign(new Error('queryA ETIMEOUT a.test'), { code: 'ETIMEOUT' }));
  await f.tick();
  t.strictSame(r.addresses('a.test'), ['10.0.0.1'], 'last good kept');
  f.answers.set('a.test', []);
  await f.tick();
  t.strictSame(r.addresses('a.test'), ['10.0.0.1'], 'an empty answer counts as a failure too');
  t.strictSame(
    f.pending().map((x) => x.ms),
    [2_000, 2_000],
    'failures retry at the failure interval',
  );
  t.strictSame(
    f.errors,
    ['never.test: queryA ENOTFOUND never.test', 'a.test: queryA ETIMEOUT a.test'],
    'each host reported once per failing streak',
  );
  t.equal(changed.length, 1);
  f.answers.set('a.test', rec(5, '10.0.0.9'));
  await f.tick();
  t.strictSame(r.addresses('a.test'), ['10.0.0.9'], 'recovers');
  t.equal(changed.length, 2);
  r.close();
});

t.test('sync: dropped hosts are forgotten (timer cancelled, late answers ignored)', async (t) => {
  const f = fakes();
  const changed: string[] = [];
  const r = new DnsResolver(f.opts, (h) => changed.push(h));
  f.answers.set('a.test', rec(5, '10.0.0.1'));
  f.answers.set('b.test', rec(5, '10.0.0.2'));
  r.sync(['a.test', 'b.test']);
  await settle();
  r.sync(['a.test']);
  t.strictSame(r.watched(), ['a.test']);
  t.equal(f.pending().length, 1, "b's refresh cancelled");
  r.sync(['a.test', 'c.test']);
  r.sync(['a.test']); // c dropped while its lookup is in flight
  await settle();
  t.equal(r.addresses('c.test'), undefined);
  t.strictSame(changed, ['a.test', 'b.test'], 'no change reported for a dropped host');
  t.equal(f.pending().length, 1, 'no timer armed for a dropped host');
  r.sync(['a.test']);
  t.equal(f.lookups.filter((h) => h === 'a.test').length, 1, 'a kept host is not looked up again');
  r.close();
  r.sync(['z.test']);
  t.equal(f.pending().length, 0, 'nothing after close');
});

const DNS_CONFIG = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [svc.courier.test]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: multi, namespace: default}
spec:
  hosts: [multi.courier.test]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
  endpoints:
  - {address: one.courier.test, ports: {http: 8080}, labels: {v: one}}
  - {address: 10.9.9.9, ports: {http: 8080}}
  - {address: localhost, ports: {http: 8081}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: default}
spec:
  host: svc.courier.test
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
`;
const SVC = 'outbound|80||svc.courier.test';
const MULTI = 'outbound|80||multi.courier.test';

t.test('cluster manager: one endpoint per address, rebuilt in place on change', async (t) => {
  const f = fakes();
  const snap = compileYaml(t, DNS_CONFIG, GATEWAY);
  const m = new ClusterManager({ random: () => 0.5, dns: f.opts });
  t.teardown(() => m.close());
  const clusters = m.build(snap);
  await settle(); // both lookups fail: nothing answers yet
  const rt = clusters.get(SVC);
  if (!rt) throw new Error('no cluster');
  t.strictSame(
    rt.endpoints.map((e) => e.key),
    ['svc.courier.test:80'],
    'before the first answer: the hostname (undici resolves it)',
  );
  t.strictSame(
    clusters.get(MULTI)?.endpoints.map((e) => e.key),
    ['one.courier.test:8080', '10.9.9.9:8080', 'localhost:8081'],
  );
  t.strictSame(f.lookups.sort(), ['one.courier.test', 'svc.courier.test'], 'IPs and localhost not looked up');
  const hostnameEp = rt.endpoints[0];
  if (!hostnameEp) throw new Error('no endpoint');
  m.pool(rt.config, hostnameEp);
  t.equal(m.stats().pools, 1);

  f.answers.set('svc.courier.test', rec(1, '127.0.0.3', '127.0.0.2'));
  await f.tick();
  t.equal(clusters.get(SVC), rt, 'the same ClusterRuntime object, updated in place');
  t.strictSame(
    rt.endpoints.map((e) => e.key),
    ['127.0.0.2:80', '127.0.0.3:80'],
  );
  t.equal(m.stats().pools, 0, "the hostname endpoint's pool is closed");
  const picks = new Set<string>();
  for (let i = 0; i < 4; i++) picks.add(rt.lb.pick({})?.key ?? '-');
  t.strictSame([...picks].sort(), ['127.0.0.2:80', '127.0.0.3:80'], 'the LB spreads over both addresses');

  const kept = rt.endpoints[0];
  if (!kept) throw new Error('no endpoint');
  kept.ejected = true;
  kept.active = 3;
  f.answers.set('svc.courier.test', rec(1, '127.0.0.4', '127.0.0.2'));
  await f.tick();
  t.strictSame(
    rt.endpoints.map((e) => e.key),
    ['127.0.0.2:80', '127.0.0.4:80'],
  );
  t.equal(rt.endpoints[0], kept, 'an unchanged address keeps its Endpoint (counters, ejection)');
  t.match(kept, { ejected: true, active: 3 });
  t.equal(rt.lb.pick({})?.key, '127.0.0.4:80', 'the rebuilt LB skips the ejected endpoint');
  kept.ejected = false;
  kept.active = 0;

  f.answers.set('svc.courier.test', Object.assign(new Error('queryA ESERVFAIL'), { code: 'ESERVFAIL' }));
  const before = rt.endpoints;
  await f.tick();
  t.equal(rt.endpoints, before, 'a failed lookup changes nothing');

  f.answers.set('one.courier.test', rec(60, '10.1.0.1', '10.1.0.2'));
  await f.tick();
  t.strictSame(
    clusters.get(MULTI)?.endpoints.map((e) => `${e.key} ${JSON.stringify(e.labels)}`),
    ['10.1.0.1:8080 {"v":"one"}', '10.1.0.2:8080 {"v":"one"}', '10.9.9.9:8080 {}', 'localhost:8081 {}'],
    'a hostname endpoint expands with its port and labels; literal endpoints stay',
  );

  const lookupsBefore = f.lookups.length;
  const again = m.build(snap);
  const rt2 = again.get(SVC);
  t.not(rt2, rt, 'a reload builds new runtime clusters');
  t.strictSame(
    rt2?.endpoints.map((e) => e.key),
    ['127.0.0.2:80', '127.0.0.4:80'],
    'a reload uses the resolved addresses at once',
  );
  t.equal(rt2?.endpoints[0], kept, 'endpoint identity survives the reload');
  t.equal(f.lookups.length, lookupsBefore, 'a reload does not re-resolve watched hosts');

  f.answers.set('svc.courier.test', rec(1, '127.0.0.5'));
  await f.tick();
  t.strictSame(
    rt2?.endpoints.map((e) => e.key),
    ['127.0.0.5:80'],
    'the current runtime follows changes',
  );
  t.strictSame(
    rt.endpoints.map((e) => e.key),
    ['127.0.0.2:80', '127.0.0.4:80'],
    'the replaced runtime is left alone',
  );

  const noDns = compileYaml(t, '', GATEWAY);
  m.build(noDns);
  t.equal(f.pending().length, 0, 'hosts no longer used stop refreshing');
});

t.test('cluster manager close() stops DNS refreshes', async (t) => {
  const f = fakes();
  const m = new ClusterManager({ random: () => 0.5, dns: f.opts });
  f.answers.set('svc.courier.test', rec(1, '127.0.0.2'));
  m.build(compileYaml(t, DNS_CONFIG, GATEWAY));
  await settle();
  t.ok(f.pending().length > 0);
  await m.close();
  t.equal(f.pending().length, 0);
});
