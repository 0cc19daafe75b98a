// The forwarder (proxy/upstream.ts) against a fake upstream pool and a fake clock: retries per
// retryOn, per-try and route timeouts, the single replay of an idle-socket race (and none for a
// POST, none once bytes arrived, none on a fresh connection), URX only with a retry policy, and
// the endpoint / circuit counters back at zero. No sockets, no real timers: milliseconds.

import t, { type Test } from 'tap';
import type { CompiledRoute, Listener, RetryPolicy } from '../../dist/config/snapshot.js';
import { ClusterCircuit } from '../../dist/proxy/cluster-circuit.js';
import type { ClusterManager, ClusterRuntime } from '../../dist/proxy/cluster-manager.js';
import type { ProxyDeps, Runtime } from '../../dist/proxy/deps.js';
import { type DownstreamResponse, Exchange } from '../../dist/proxy/exchange.js';
import { type Endpoint, makeEndpoint } from '../../dist/proxy/lb/types.js';
import { forward, timers } from '../../dist/proxy/upstream.js';
import {
  type FailureKind,
  type PoolHandler,
  type PoolRequest,
  UpstreamFailure,
  type UpstreamPool,
} from '../../dist/proxy/upstream-pool.js';

/** A fake clock behind the forwarder's timers seam: nothing runs until `advance`. */
class Clock {
  now = 0;
  private seq = 0;
  private pending = new Map<number, { at: number; fn: () => void }>();

  install(t: Test): void {
    const saved = { ...timers };
    timers.setTimeout = (fn, ms) => this.add(fn, ms);
    timers.clearTimeout = (h) => {
      this.pending.delete((h as unknown as { id: number }).id);
    };
    timers.setImmediate = (fn) => void this.add(fn, 0);
    t.teardown(() => Object.assign(timers, saved));
  }

  private add(fn: () => void, ms: number): NodeJS.Timeout {
    const id = ++this.seq;
    this.pending.set(id, { at: this.now + ms, fn });
    return { id, unref() {} } as unknown as NodeJS.Timeout;
  }

  /** Run every timer due within `ms`, in order (timers they set run too, when due). */
  advance(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.pending) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.pending.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = end;
  }

  get scheduled(): number {
    return this.pending.size;
  }
}

type Script =
  | { ok: number; body?: string }
  | { fail: FailureKind; reused?: boolean; gotBytes?: boolean; code?: string }
  | 'hang';

interface Sent {
  method: string;
  attemptCount: string | undefined;
  fresh: boolean | undefined;
  endpoint: string;
  aborted: boolean;
}

/** A pool per endpoint that answers each dispatch from a shared script, at once. */
class FakePools {
  readonly sent: Sent[] = [];
  constructor(private readonly script: Script[]) {}

  poolFor(ep: Endpoint): UpstreamPool {
    return {
      validatedHeads: false,
      dispatch: (req: PoolRequest, h: PoolHandler) => {
        const s: Sent = {
          method: req.method,
          attemptCount: req.headers['x-envoy-attempt-count'] as string | undefined,
          fresh: req.fresh,
          endpoint: ep.key,
          aborted: false,
        };
        this.sent.push(s);
        const step = this.script.shift() ?? { ok: 200 };
        let done = false;
        h.onConnect(() => {
          if (done) return;
          done = true;
          s.aborted = true;
          h.onError(new UpstreamFailure('aborted', 'UND_ERR_ABORTED', 'reset'));
        });
        if (step === 'hang') return;
        done = true;
        if ('ok' in step) {
          h.onHeaders(step.ok, ['content-length', String(step.body?.length ?? 0)], () => {}, '');
          if (step.body) h.onData(Buffer.from(step.body));
          h.onComplete(null);
        } else
          h.onError(
            new UpstreamFailure(
              'failed',
              step.code ?? (step.fail === 'connect' ? 'ECONNREFUSED' : 'UND_ERR_SOCKET'),
              step.fail,
              step.reused ?? false,
              step.gotBytes ?? false,
            ),
          );
      },
    };
  }
}

class FakeResponse implements DownstreamResponse {
  headersSent = false;
  writableEnded = false;
  writableFinished = false;
  destroyed = false;
  shouldKeepAlive = true;
  status = 0;
  headers: Record<string, unknown> = {};
  body = '';
  setHeader(): this {
    return this;
  }
  writeHead(status: number, headers?: Record<string, unknown>): this {
    this.headersSent = true;
    this.status = status;
    this.headers = headers ?? {};
    return this;
  }
  write(chunk: Buffer): boolean {
    this.body += chunk.toString();
    return true;
  }
  end(chunk?: Buffer): this {
    if (chunk) this.body += chunk.toString();
    this.writableEnded = true;
    this.writableFinished = true;
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
  on(): this {
    return this;
  }
  once(): this {
    return this;
  }
}

const NO_OPS = { set: [], add: [], remove: [] };
const listener = {
  name: 'l',
  address: '0.0.0.0',
  port: 8080,
  protocol: 'HTTP',
  kind: 'gateway',
} as unknown as Listener;

function route(retry: Partial<RetryPolicy> = {}, timeoutMs = 0): CompiledRoute {
  return {
    name: 'r',
    virtualService: 'default/vs',
    matchers: [],
    matchPrefixes: [],
    action: {},
    timeoutMs,
    retry: {
      numRetries: 0,
      perTryTimeoutMs: 0,
      retryOn: new Set<string>(),
      retriableStatusCodes: new Set<number>(),
      backoffBaseMs: 25,
      retryOtherHosts: true,
      ...retry,
    },
    mirrors: [],
    headers: { request: NO_OPS, response: NO_OPS },
  } as unknown as CompiledRoute;
}

interface Run {
  x: Exchange;
  res: FakeResponse;
  pools: FakePools;
  clock: Clock;
  eps: Endpoint[];
  circuit: ClusterCircuit;
}

/** Forward one request through the fake pools; the clock is not advanced. */
function run(t: Test, r: CompiledRoute, script: Script[], method = 'GET'): Run {
  const clock = new Clock();
  clock.install(t);
  const pools = new FakePools(script);
  const eps = [makeEndpoint('10.0.0.1', 80), makeEndpoint('10.0.0.2', 80)];
  const circuit = new ClusterCircuit(2 ** 32 - 1);
  const cluster = {
    config: {
      name: 'outbound|80||svc',
      discovery: 'static',
      connectionPool: { maxRetries: 2 ** 32 - 1 },
      tls: { mode: 'DISABLE', subjectAltNames: [], insecureSkipVerify: false, key: '' },
    },
    endpoints: eps,
    lb: {
      pick: (ctx: { attempted?: Set<Endpoint> }) => eps.find((e) => !ctx.attempted?.has(e)) ?? eps[0],
    },
    circuit,
    limited: false,
  } as unknown as ClusterRuntime;
  const manager = {
    poolFor: (_c: unknown, ep: Endpoint) => pools.poolFor(ep),
    overflows: { requests: 0, retries: 0 },
    outlier: { record() {} },
  } as unknown as ClusterManager;
  const deps: ProxyDeps = {
    manager,
    random: () => 0.5,
    now: () => clock.now,
    observer: { onComplete() {} },
    maxBufferedBody: 1 << 20,
    maxBufferedTotal: 1 << 24,
    bufferedBytes: 0,
    draining: false,
  };
  const res = new FakeResponse();
  const x = new Exchange(
    {
      method,
      url: '/p',
      headers: { host: 'svc' },
      httpVersion: '1.1',
      socket: { remoteAddress: '10.1.1.1' },
    },
    res,
    listener,
    0,
  );
  x.path = '/p';
  x.route = r;
  x.cluster = cluster;
  forward({ snapshot: {}, clusters: new Map() } as unknown as Runtime, x, deps);
  return { x, res, pools, clock, eps, circuit };
}

/** Counters of every endpoint and the circuit are back at zero. */
function settled(t: Test, r: Run): void {
  t.same(
    r.eps.map((e) => e.active),
    [0, 0],
    'endpoint active counts released',
  );
  t.same([r.circuit.active, r.circuit.retriesActive], [0, 0], 'circuit counts released');
}

const FIVE_XX = new Set(['5xx']);

t.test('a plain GET: one dispatch, attempt count 1', async (t) => {
  const r = run(t, route(), [{ ok: 200, body: 'hi' }]);
  t.equal(r.res.status, 200);
  t.equal(r.res.body, 'hi');
  t.same(
    r.pools.sent.map((s) => s.attemptCount),
    ['1'],
  );
  t.equal(r.x.retried, false);
  settled(t, r);
});

t.test('retryOn 5xx: a 503 is retried on another host after the backoff', async (t) => {
  const r = run(t, route({ numRetries: 2, retryOn: FIVE_XX }), [{ ok: 503 }, { ok: 200, body: 'ok' }]);
  t.equal(r.res.status, 0, 'nothing sent before the backoff');
  r.clock.advance(25); // full jitter: 0.5 x 25 ms for the first retry
  t.equal(r.res.status, 200);
  t.same(
    r.pools.sent.map((s) => [s.attemptCount, s.endpoint]),
    [
      ['1', '10.0.0.1:80'],
      ['2', '10.0.0.2:80'],
    ],
  );
  t.equal(r.x.retried, true);
  t.same(r.x.flags, []);
  settled(t, r);
});

t.test('retries exhausted on 5xx: the last 503 goes through with URX', async (t) => {
  const r = run(t, route({ numRetries: 1, retryOn: FIVE_XX }), [{ ok: 503 }, { ok: 503 }]);
  r.clock.advance(100);
  t.equal(r.res.status, 503);
  t.equal(r.pools.sent.length, 2);
  t.same(r.x.flags, ['URX']);
  settled(t, r);
});

t.test('a 503 with no retry policy: passed through, no URX', async (t) => {
  const r = run(t, route(), [{ ok: 503 }]);
  t.equal(r.res.status, 503);
  t.same(r.x.flags, []);
});

t.test('retryOn connect-failure: a refused connection is retried; a reset is not', async (t) => {
  const policy = { numRetries: 1, retryOn: new Set(['connect-failure']) };
  const r = run(t, route(policy), [{ fail: 'connect' }, { ok: 200 }]);
  r.clock.advance(100);
  t.equal(r.res.status, 200);
  t.equal(r.pools.sent.length, 2);
  settled(t, r);

  const reset = run(t, route(policy), [{ fail: 'reset' }]);
  reset.clock.advance(100);
  t.equal(reset.res.status, 503);
  t.equal(reset.pools.sent.length, 1);
  t.same(reset.x.flags, ['UC'], 'not retriable: no URX');
  settled(t, reset);
});

t.test('URX only with a retry policy: connect failures with and without one', async (t) => {
  const none = run(t, route(), [{ fail: 'connect' }]);
  t.equal(none.res.status, 503);
  t.same(none.x.flags, ['UF']);
  const exhausted = run(t, route({ numRetries: 1, retryOn: new Set(['connect-failure']) }), [
    { fail: 'connect' },
    { fail: 'connect' },
  ]);
  exhausted.clock.advance(100);
  t.equal(exhausted.res.status, 503);
  t.same(exhausted.x.flags, ['URX', 'UF']);
});

t.test('per-try timeout: the hung attempt is cancelled and the retry answers', async (t) => {
  const r = run(t, route({ numRetries: 1, perTryTimeoutMs: 100, retryOn: FIVE_XX }, 1000), [
    'hang',
    { ok: 200 },
  ]);
  r.clock.advance(99);
  t.equal(r.pools.sent.length, 1);
  r.clock.advance(1);
  t.equal(r.pools.sent[0]?.aborted, true, 'the first attempt was aborted');
  r.clock.advance(50);
  t.equal(r.res.status, 200);
  t.equal(r.pools.sent.length, 2);
  settled(t, r);
  t.equal(r.clock.scheduled, 0, 'no timer left behind');
});

t.test('route timeout: 504 UT over every attempt', async (t) => {
  const r = run(t, route({ numRetries: 3, perTryTimeoutMs: 100, retryOn: FIVE_XX }, 250), [
    'hang',
    'hang',
    'hang',
  ]);
  r.clock.advance(250);
  t.equal(r.res.status, 504);
  t.ok(r.x.flags.includes('UT'));
  t.ok(r.pools.sent.length >= 2 && r.pools.sent.length <= 3);
  settled(t, r);
});

t.test('the idle-socket race: replayed once, on a fresh connection, not as a retry', async (t) => {
  const r = run(t, route(), [
    { fail: 'reset', reused: true },
    { ok: 200, body: 'ok' },
  ]);
  t.equal(r.pools.sent.length, 1, 'the replay waits for the next tick');
  r.clock.advance(0);
  t.equal(r.res.status, 200);
  t.same(
    r.pools.sent.map((s) => [s.attemptCount, s.fresh, s.endpoint]),
    [
      ['1', false, '10.0.0.1:80'],
      ['1', true, '10.0.0.1:80'],
    ],
    'same endpoint, same attempt count, fresh connection',
  );
  t.equal(r.x.retried, false, 'not a retry');
  t.same(r.x.flags, []);
  settled(t, r);
});

t.test('only one replay: a second race fails the request (no policy, no URX)', async (t) => {
  const r = run(t, route(), [
    { fail: 'reset', reused: true },
    { fail: 'reset', reused: true },
  ]);
  r.clock.advance(0);
  t.equal(r.res.status, 503);
  t.match(r.res.body, /connection termination/);
  t.equal(r.pools.sent.length, 2);
  t.same(r.x.flags, ['UC']);
  settled(t, r);
});

t.test('a replay is outside the retry policy: the retries stay available', async (t) => {
  const r = run(t, route({ numRetries: 1, retryOn: FIVE_XX }), [
    { fail: 'reset', reused: true },
    { ok: 503 },
    { ok: 200 },
  ]);
  r.clock.advance(100);
  t.equal(r.res.status, 200);
  t.same(
    r.pools.sent.map((s) => s.attemptCount),
    ['1', '1', '2'],
  );
});

t.test('no replay for a POST, once bytes arrived, or on a fresh connection', async (t) => {
  const post = run(t, route(), [{ fail: 'reset', reused: true }], 'POST');
  post.clock.advance(10);
  t.equal(post.res.status, 503, 'POST: not idempotent');
  t.equal(post.pools.sent.length, 1);

  const bytes = run(t, route(), [{ fail: 'reset', reused: true, gotBytes: true }]);
  bytes.clock.advance(10);
  t.equal(bytes.res.status, 503, 'bytes arrived: the upstream saw it');
  t.equal(bytes.pools.sent.length, 1);

  const fresh = run(t, route(), [{ fail: 'reset', reused: false }]);
  fresh.clock.advance(10);
  t.equal(fresh.res.status, 503, 'a new connection that reset: no race');
  t.equal(fresh.pools.sent.length, 1);

  const protocol = run(t, route(), [{ fail: 'protocol', reused: true }]);
  protocol.clock.advance(10);
  t.equal(protocol.res.status, 503, 'a protocol error is an answer, not a race');
  t.equal(protocol.pools.sent.length, 1);
  for (const r of [post, bytes, fresh, protocol]) settled(t, r);
});
