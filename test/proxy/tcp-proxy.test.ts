// The TCP proxy in process, over real sockets: a compiled snapshot's TCP chain, the cluster
// manager's runtime clusters, and TcpProxy.serve() fed by a plain net.Server. What the e2e tests
// cannot reach easily: the flags of a missing cluster (NC) and of a cluster without endpoints
// (UH), the connection budget shared with the HTTP pools, the replayed first bytes, the observer
// calls and drain.

import { connect, createServer, type Server, type Socket } from 'node:net';
import t from 'tap';
import { compile } from '../../dist/config/compile/index.js';
import { loadConfig } from '../../dist/config/load.js';
import type { Listener, Snapshot, TcpFilterChain } from '../../dist/config/snapshot.js';
import { ClusterManager } from '../../dist/proxy/cluster-manager.js';
import type { ProxyDeps, Runtime } from '../../dist/proxy/deps.js';
import { pickL4Destination, TcpProxy, type TcpSession } from '../../dist/proxy/tcp-proxy.js';
import { writeConfigDir } from '../helpers/procs.js';

/** An upstream that records what it received and answers `ok` at the client's EOF. */
async function upstream(): Promise<{ port: number; got: string[]; accepted: number; server: Server }> {
  const u = { port: 0, got: [] as string[], accepted: 0, server: undefined as unknown as Server };
  u.server = createServer({ allowHalfOpen: true }, (s) => {
    u.accepted++;
    let data = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      data += d;
    });
    s.on('end', () => {
      u.got.push(data);
      s.end('ok\n');
    });
    s.on('error', () => {});
  });
  await new Promise<void>((r) => u.server.listen(0, '127.0.0.1', r));
  u.port = (u.server.address() as { port: number }).port;
  t.teardown(() => u.server.close());
  return u;
}

const up = await upstream();

function snapshot(): Snapshot {
  const dir = writeConfigDir({
    'c.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 31401, name: tcp-empty, protocol: TCP}
    hosts: ["*"]
  - port: {number: 31402, name: tcp-missing, protocol: TCP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo, namespace: default}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tcp: ${up.port}}, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: empty, namespace: default}
spec:
  hosts: [empty.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 9000, name: tcp, protocol: TCP}]
  resolution: STATIC
  endpoints: []
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: echo, namespace: default}
spec:
  host: echo
  trafficPolicy: {connectionPool: {tcp: {maxConnections: 1}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: routes, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp:
  - match: [{port: 31400}]
    route: [{destination: {host: echo, port: {number: 9000}}}]
  - match: [{port: 31401}]
    route: [{destination: {host: empty, port: {number: 9000}}}]
  - match: [{port: 31402}]
    route: [{destination: {host: nowhere.example.com, port: {number: 9000}}}]
`,
  });
  const r = loadConfig([dir]);
  if (r.errors.length > 0) throw new Error(JSON.stringify(r.errors));
  return compile(r.resources, { mode: 'router', labels: { istio: 'ingressgateway' }, namespace: 'default' });
}

const snap = snapshot();
const manager = new ClusterManager({ random: Math.random });
t.teardown(() => manager.close());
const runtime: Runtime = { snapshot: snap, clusters: manager.build(snap) };
const opened: TcpSession[] = [];
const closed: TcpSession[] = [];
const deps = {
  manager,
  random: Math.random,
  now: () => performance.now(),
  observer: {
    onComplete: () => {},
    onTcpOpen: (c: TcpSession) => opened.push(c),
    onTcpClose: (c: TcpSession) => closed.push(c),
  },
  maxBufferedBody: 0,
  maxBufferedTotal: 0,
  bufferedBytes: 0,
  draining: false,
} as unknown as ProxyDeps;
const proxy = new TcpProxy({ deps, runtime: () => runtime });

function chainOf(port: number): { listener: Listener; chain: TcpFilterChain } {
  const listener = snap.listeners.find((l) => l.port === port) as Listener;
  return { listener, chain: listener.filterChains[0] as TcpFilterChain };
}

/** A front door whose every connection is served by `proxy` as the chain of `port`, with `head`. */
async function front(port: number, head = ''): Promise<number> {
  const { listener, chain } = chainOf(port);
  const server = createServer({ allowHalfOpen: true }, (sock) =>
    proxy.serve(listener, chain, sock, Buffer.from(head), undefined),
  );
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return (server.address() as { port: number }).port;
}

/** Send `data`, FIN, collect the answer until closed. */
function exchange(port: number, data: string, onSocket?: (s: Socket) => void): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      got += d;
    });
    s.on('error', () => {});
    s.on('close', () => resolve(got));
    s.on('connect', () => s.end(data));
    onSocket?.(s);
  });
}

const lastClosed = async (n: number) => {
  for (let i = 0; i < 100 && closed.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  return closed[n - 1] as TcpSession;
};

t.test('the first bytes go upstream first, then the rest; counted, observed, closed', async (t) => {
  const port = await front(31400, 'HEAD|');
  const before = closed.length;
  t.equal(await exchange(port, 'body'), 'ok\n');
  t.equal(up.got.at(-1), 'HEAD|body', 'head replayed before the relayed bytes');
  const s = await lastClosed(before + 1);
  t.ok(opened.includes(s), 'onTcpOpen before onTcpClose');
  t.same(s.flags, []);
  t.equal(s.bytesReceived, 9, 'the head counts as received');
  t.equal(s.bytesSent, 3);
  t.equal(s.clusterName, 'outbound|9000||echo.default.svc.cluster.local');
  t.equal(s.upstreamHost, `127.0.0.1:${up.port}`);
  t.equal(s.endpoint?.active, 0, 'the endpoint count is given back');
  t.equal(runtime.clusters.get(s.clusterName)?.circuit.connections.open, 0, 'the budget slot too');
});

t.test('a cluster without endpoints: UH; a destination with no cluster: NC', async (t) => {
  const before = closed.length;
  t.equal(await exchange(await front(31401), 'x'), '');
  const uh = await lastClosed(before + 1);
  t.same(uh.flags, ['UH']);
  t.equal(uh.flagString, 'UH');
  t.equal(uh.clusterName, 'outbound|9000||empty.default.svc.cluster.local');
  t.notOk(uh.opened);
  t.equal(await exchange(await front(31402), 'x'), '');
  const nc = await lastClosed(before + 2);
  t.same(nc.flags, ['NC']);
  t.equal(nc.upstreamHost, '');
});

t.test('tcp.maxConnections is the cluster budget the HTTP pools share: a held slot means UO', async (t) => {
  const c = runtime.clusters.get('outbound|9000||echo.default.svc.cluster.local');
  t.ok(c);
  const budget = c?.circuit.connections;
  t.ok(budget?.tryAcquire(), 'an HTTP pool takes the only connection');
  const accepted = up.accepted;
  const before = closed.length;
  t.equal(await exchange(await front(31400), 'x'), '', 'closed with no bytes');
  const uo = await lastClosed(before + 1);
  t.same(uo.flags, ['UO']);
  t.equal(uo.endpoint, undefined, 'no upstream host');
  t.equal(up.accepted, accepted, 'no upstream attempt');
  budget?.release();
  t.equal(await exchange(await front(31400), 'x'), 'ok\n', 'the slot back, proxied again');
});

t.test('drain (close) cuts open connections', async (t) => {
  const port = await front(31400);
  let sock: Socket | undefined;
  const done = new Promise<void>((resolve) => {
    sock = connect({ port, host: '127.0.0.1' });
    sock.on('error', () => {});
    sock.on('close', () => resolve());
  });
  await new Promise<void>((r) => sock?.once('connect', () => r()));
  for (let i = 0; i < 100 && proxy.active === 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(proxy.active, 1);
  proxy.close();
  await done;
  for (let i = 0; i < 100 && proxy.active > 0; i++) await new Promise((r) => setTimeout(r, 5));
  t.equal(proxy.active, 0);
});

t.test('pickL4Destination: by weight, one destination takes all', async (t) => {
  const ds = [
    { name: 'a', weight: 80 },
    { name: 'b', weight: 20 },
  ];
  t.equal(pickL4Destination(ds, 100, () => 0)?.name, 'a');
  t.equal(pickL4Destination(ds, 100, () => 0.79)?.name, 'a');
  t.equal(pickL4Destination(ds, 100, () => 0.8)?.name, 'b');
  t.equal(pickL4Destination(ds, 100, () => 0.9999)?.name, 'b');
  t.equal(pickL4Destination([{ name: 'only', weight: 1 }], 1, () => 0.5)?.name, 'only');
  t.equal(
    pickL4Destination([], 0, () => 0.5),
    undefined,
  );
});
