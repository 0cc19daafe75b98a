// Upgrades and mirrors go through the same pool contract and the same accounting as forwarded
// requests: an open tunnel counts in its endpoint's `active` (LEAST_REQUEST) and its cluster's
// circuit `active` until it closes; a mirror counts while in flight, and one the shadow cluster's
// breakers would reject is not sent (Envoy's shadow requests count against the shadow cluster).

import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import t from 'tap';
import type { CompiledRoute, Listener } from '../../dist/config/snapshot.js';
import { ClusterCircuit } from '../../dist/proxy/cluster-circuit.js';
import type { ClusterManager, ClusterRuntime } from '../../dist/proxy/cluster-manager.js';
import type { ProxyDeps, Runtime } from '../../dist/proxy/deps.js';
import { Exchange } from '../../dist/proxy/exchange.js';
import { type Endpoint, makeEndpoint } from '../../dist/proxy/lb/types.js';
import { sendMirrors } from '../../dist/proxy/mirror.js';
import { SocketResponse, tunnel } from '../../dist/proxy/tunnel.js';
import type { PoolHandler, PoolRequest, UpstreamPool } from '../../dist/proxy/upstream-pool.js';

const NO_OPS = { set: [], add: [], remove: [] };
const listener = {
  name: 'l',
  address: '0.0.0.0',
  port: 8080,
  protocol: 'HTTP',
  kind: 'gateway',
} as unknown as Listener;

function clusterOf(ep: Endpoint, maxRequests = 2 ** 32 - 1): ClusterRuntime {
  return {
    config: {
      name: 'outbound|80||svc',
      discovery: 'static',
      connectionPool: {
        maxRequests,
        maxConnections: 2 ** 32 - 1,
        maxPendingRequests: 2 ** 32 - 1,
        maxRetries: 2 ** 32 - 1,
      },
      tls: { mode: 'DISABLE', subjectAltNames: [], insecureSkipVerify: false, key: '' },
    },
    endpoints: [ep],
    lb: { pick: () => ep },
    circuit: new ClusterCircuit(2 ** 32 - 1),
    limited: maxRequests < 2 ** 32 - 1,
  } as unknown as ClusterRuntime;
}

/** A manager whose pools keep each dispatch's handler for the test to drive. */
function managerWith(
  dispatched: { req: PoolRequest; h: PoolHandler; need: string | undefined }[],
): ClusterManager {
  return {
    poolFor: (_c: unknown, _ep: Endpoint, need?: string): UpstreamPool => ({
      validatedHeads: false,
      dispatch: (req, h) => {
        dispatched.push({ req, h, need });
        h.onConnect(() => {});
      },
    }),
    overflows: { requests: 0, retries: 0 },
    outlier: { record() {} },
  } as unknown as ClusterManager;
}

function depsWith(manager: ClusterManager): ProxyDeps {
  return {
    manager,
    random: () => 0.5,
    now: () => 0,
    observer: { onComplete() {} },
    maxBufferedBody: 1 << 20,
    maxBufferedTotal: 1 << 24,
    bufferedBytes: 0,
    draining: false,
  };
}

t.test('an open upgrade tunnel counts as a request in flight until it closes', async (t) => {
  const ep = makeEndpoint('10.0.0.1', 80);
  const c = clusterOf(ep);
  const dispatched: { req: PoolRequest; h: PoolHandler; need: string | undefined }[] = [];
  const deps = depsWith(managerWith(dispatched));
  const down = new PassThrough();
  const res = new SocketResponse(down as unknown as Socket);
  const x = new Exchange(
    {
      method: 'GET',
      url: '/ws',
      headers: { host: 'svc', upgrade: 'websocket', connection: 'upgrade' },
      httpVersion: '1.1',
      socket: { remoteAddress: '10.1.1.1' },
    },
    res,
    listener,
    0,
  );
  x.upgrade = { sock: down as unknown as Socket, head: Buffer.alloc(0) };
  x.cluster = c;
  tunnel(x, deps, { method: 'GET', path: '/ws', headers: { host: 'svc' } }, false);
  t.equal(dispatched.length, 1);
  t.equal(dispatched[0]?.need, 'upgrade', 'the manager is asked for an upgrade-capable pool');
  t.equal(dispatched[0]?.req.upgrade, 'websocket');
  t.same([ep.active, c.circuit.active], [1, 1], 'counted while the upgrade is pending');
  const up = new PassThrough();
  dispatched[0]?.h.onUpgrade?.(101, ['upgrade', 'websocket'], up as unknown as Socket);
  t.equal(x.responseCode, 101);
  t.same([ep.active, c.circuit.active], [1, 1], 'counted while the tunnel is open');
  up.destroy();
  await new Promise((r) => setImmediate(r));
  t.same([ep.active, c.circuit.active], [0, 0], 'released when the tunnel closes');
});

t.test('an upgrade the upstream refuses is released when its response completes', async (t) => {
  const ep = makeEndpoint('10.0.0.1', 80);
  const c = clusterOf(ep);
  const dispatched: { req: PoolRequest; h: PoolHandler; need: string | undefined }[] = [];
  const down = new PassThrough();
  down.resume();
  const x = new Exchange(
    {
      method: 'GET',
      url: '/ws',
      headers: { host: 'svc', upgrade: 'websocket' },
      httpVersion: '1.1',
      socket: {},
    },
    new SocketResponse(down as unknown as Socket),
    listener,
    0,
  );
  x.upgrade = { sock: down as unknown as Socket, head: Buffer.alloc(0) };
  x.cluster = c;
  tunnel(
    x,
    depsWith(managerWith(dispatched)),
    { method: 'GET', path: '/ws', headers: { host: 'svc' } },
    false,
  );
  const h = dispatched[0]?.h as PoolHandler;
  h.onHeaders(403, ['content-length', '0'], () => {}, 'Forbidden');
  t.same([ep.active, c.circuit.active], [1, 1]);
  h.onComplete(null);
  t.same([ep.active, c.circuit.active], [0, 0]);
  t.equal(x.responseCode, 403);
});

function mirrorRoute(): CompiledRoute {
  return {
    name: 'r',
    mirrors: [{ cluster: 'shadow', percent: 100 }],
    headers: { request: NO_OPS, response: NO_OPS },
  } as unknown as CompiledRoute;
}

t.test('a mirror counts against the shadow cluster while in flight', async (t) => {
  const ep = makeEndpoint('10.0.0.9', 80);
  const shadow = clusterOf(ep);
  const dispatched: { req: PoolRequest; h: PoolHandler; need: string | undefined }[] = [];
  const deps = depsWith(managerWith(dispatched));
  const rt = { snapshot: {}, clusters: new Map([['shadow', shadow]]) } as unknown as Runtime;
  const x = new Exchange(
    { method: 'GET', headers: { host: 'svc' }, httpVersion: '1.1', socket: {} },
    {} as never,
    listener,
    0,
  );
  const req = {
    method: 'GET',
    path: '/',
    headers: { host: 'svc:80' },
    body: null,
    streamed: false,
    fresh: false,
  };
  sendMirrors(rt, x, mirrorRoute(), req, deps);
  t.equal(dispatched.length, 1);
  t.equal(dispatched[0]?.req.headers.host, 'svc-shadow:80');
  t.equal(dispatched[0]?.need, 'buffered', 'a buffered request: the raw pool');
  t.same([ep.active, shadow.circuit.active], [1, 1]);
  dispatched[0]?.h.onHeaders(200, [], () => {}, 'OK');
  dispatched[0]?.h.onComplete(null);
  t.same([ep.active, shadow.circuit.active], [0, 0]);
  sendMirrors(rt, x, mirrorRoute(), req, deps);
  dispatched[1]?.h.onError(new Error('x') as never);
  t.same([ep.active, shadow.circuit.active], [0, 0], 'released on error too');
});

t.test("a mirror the shadow cluster's breakers would reject is not sent", async (t) => {
  const ep = makeEndpoint('10.0.0.9', 80);
  const shadow = clusterOf(ep, 1);
  shadow.circuit.active = 1; // http2MaxRequests reached by requests in flight
  const dispatched: { req: PoolRequest; h: PoolHandler; need: string | undefined }[] = [];
  const manager = managerWith(dispatched);
  const rt = { snapshot: {}, clusters: new Map([['shadow', shadow]]) } as unknown as Runtime;
  const x = new Exchange(
    { method: 'GET', headers: { host: 'svc' }, httpVersion: '1.1', socket: {} },
    {} as never,
    listener,
    0,
  );
  const req = {
    method: 'GET',
    path: '/',
    headers: { host: 'svc' },
    body: null,
    streamed: false,
    fresh: false,
  };
  sendMirrors(rt, x, mirrorRoute(), req, depsWith(manager));
  t.equal(dispatched.length, 0);
  t.equal(manager.overflows.requests, 1, 'counted as an overflow of the shadow cluster');
  t.equal(ep.active, 0);
});
