import { AggregatorRegistry } from 'prom-client';
import t from 'tap';
import {
  AccessLogger,
  type LoggedConnection,
  type LoggedRequest,
  type LogSink,
} from '../../dist/proxy/access-log.js';
import {
  DURATION_BUCKETS,
  ISTIO_LABELS,
  ISTIO_TCP_LABELS,
  istioMetricsJSON,
  type MetricJSON,
  type ObservedConnection,
  type ObservedRequest,
  type StatsIdentity,
  StatsObserver,
  workloadName,
} from '../../dist/proxy/stats.js';

type Req = ObservedRequest & LoggedRequest;

const GATEWAY: StatsIdentity = {
  mode: 'router',
  labels: { app: 'istio-ingressgateway', istio: 'ingressgateway' },
  namespace: 'istio-system',
  workload: 'istio-ingressgateway',
};

const reviewsV1 = {
  config: {
    name: 'outbound|9080|v1|reviews.default.svc.cluster.local',
    host: 'reviews.default.svc.cluster.local',
    subset: 'v1',
    serviceName: 'reviews',
    serviceNamespace: 'default',
  },
};
const reviewsAll = {
  config: { ...reviewsV1.config, name: 'outbound|9080||reviews.default.svc.cluster.local', subset: '' },
};
const gatewayListener = { kind: 'gateway' as const };
const inboundListener = { kind: 'inbound' as const };

const clock = 0;

function req(over: Partial<Req> = {}): Req {
  return {
    listener: gatewayListener,
    cluster: undefined,
    destination: undefined,
    endpoint: undefined,
    responseCode: 200,
    flags: [],
    headers: {},
    bytesReceived: 0,
    bytesSent: 0,
    start: clock,
    startTime: new Date(0),
    method: 'GET',
    originalPath: '/',
    req: { url: '/', httpVersion: '1.1', socket: {} },
    flagString: '-',
    details: '-',
    upstreamServiceTime: -1,
    authority: 'example.com',
    upstreamHost: '-',
    clusterName: '-',
    routeName: '-',
    ...over,
  };
}

/** Series lines of one metric: `name{labels} value`, HELP/TYPE dropped. */
async function lines(obs: StatsObserver, name: string): Promise<string[]> {
  const text = await obs.registry.getSingleMetricAsString(name);
  return text.split('\n').filter((l) => !l.startsWith('#'));
}

function labelString(values: Record<string, string>): string {
  return ISTIO_LABELS.map((k) => `${k}="${values[k]}"`).join(',');
}

const sourceLabels = {
  reporter: 'source',
  source_workload: 'istio-ingressgateway',
  source_app: 'istio-ingressgateway',
  destination_workload: 'unknown',
  request_protocol: 'http',
  connection_security_policy: 'unknown',
};

t.test('istio_requests_total: exact counts and labels per tuple', async (t) => {
  const obs = new StatsObserver({ identity: GATEWAY, now: () => clock + 7 });
  const ep1 = { labels: { version: 'v1' } };
  const ep2 = { labels: { version: 'v1' } };
  const ep3 = { labels: { version: 'v3' } };
  // 3 × 200 via subset v1 (two endpoints, same labels: one series).
  obs.onComplete(req({ cluster: reviewsV1, endpoint: ep1, bytesSent: 50 }));
  obs.onComplete(req({ cluster: reviewsV1, endpoint: ep2, bytesSent: 50 }));
  obs.onComplete(req({ cluster: reviewsV1, endpoint: ep1, bytesSent: 5000 }));
  // No subset: the endpoint's version label decides destination_version.
  obs.onComplete(req({ cluster: reviewsAll, endpoint: ep3 }));
  // 2 × 404 NR (nothing routed).
  obs.onComplete(req({ responseCode: 404, flags: ['NR'], flagString: 'NR' }));
  obs.onComplete(req({ responseCode: 404, flags: ['NR'], flagString: 'NR' }));
  // 503 UH: cluster chosen, no endpoint.
  obs.onComplete(req({ cluster: reviewsV1, responseCode: 503, flags: ['UH'], flagString: 'UH' }));
  // gRPC is its own protocol.
  obs.onComplete(
    req({ cluster: reviewsV1, endpoint: ep1, headers: { 'content-type': 'application/grpc+proto' } }),
  );

  const reviews = {
    destination_service: 'reviews.default.svc.cluster.local',
    destination_service_name: 'reviews',
    destination_service_namespace: 'default',
  };
  const unknownDest = {
    destination_version: 'unknown',
    destination_service: 'unknown',
    destination_service_name: 'unknown',
    destination_service_namespace: 'unknown',
  };
  const l = (v: Record<string, string>) => labelString({ ...sourceLabels, ...v });
  t.same(
    (await lines(obs, 'istio_requests_total')).sort(),
    [
      `istio_requests_total{${l({ ...reviews, destination_version: 'v1', response_code: '200', response_flags: '-' })}} 3`,
      `istio_requests_total{${l({ ...reviews, destination_version: 'v3', response_code: '200', response_flags: '-' })}} 1`,
      `istio_requests_total{${l({ ...unknownDest, response_code: '404', response_flags: 'NR' })}} 2`,
      `istio_requests_total{${l({ ...reviews, destination_version: 'v1', response_code: '503', response_flags: 'UH' })}} 1`,
      `istio_requests_total{${l({ ...reviews, destination_version: 'v1', response_code: '200', response_flags: '-', request_protocol: 'grpc' })}} 1`,
    ].sort(),
  );
});

t.test('histograms: Envoy buckets, cumulative, sum and count', async (t) => {
  const obs = new StatsObserver({ identity: GATEWAY, now: () => clock + 7 });
  const ep = { labels: { version: 'v1' } };
  obs.onComplete(req({ cluster: reviewsV1, endpoint: ep, bytesReceived: 0, bytesSent: 50 }));
  obs.onComplete(req({ cluster: reviewsV1, endpoint: ep, bytesReceived: 10, bytesSent: 5000 }));
  const dur = await lines(obs, 'istio_request_duration_milliseconds');
  const buckets = dur.filter((x) => x.includes('_bucket'));
  t.equal(buckets.length, DURATION_BUCKETS.length + 1, '19 bounds + +Inf');
  t.match(buckets[0], /_bucket\{reporter="source",.*,le="0.5"\} 0$/);
  t.match(buckets[2], /le="5"\} 0$/);
  t.match(buckets[3], /le="10"\} 2$/);
  t.match(buckets[19], /le="\+Inf"\} 2$/);
  t.match(
    dur.find((x) => x.includes('_sum')),
    / 14$/,
  );
  t.match(
    dur.find((x) => x.includes('_count')),
    / 2$/,
  );
  const resp = await lines(obs, 'istio_response_bytes');
  t.match(
    resp.find((x) => x.includes('le="100"')),
    / 1$/,
  );
  t.match(
    resp.find((x) => x.includes('le="10000"')),
    / 2$/,
  );
  t.match(
    resp.find((x) => x.includes('_sum')),
    / 5050$/,
  );
  const reqB = await lines(obs, 'istio_request_bytes');
  t.match(
    reqB.find((x) => x.includes('le="1"')),
    / 1$/,
    'an empty body is <= 1',
  );
  t.match(
    reqB.find((x) => x.includes('le="10"')),
    / 2$/,
  );
});

t.test('inbound: reporter=destination, our identity is the destination', async (t) => {
  const sidecar: StatsIdentity = {
    mode: 'sidecar',
    labels: { app: 'reviews', version: 'v2' },
    namespace: 'default',
    workload: 'reviews-v2',
  };
  const obs = new StatsObserver({ identity: sidecar, now: () => clock });
  const inboundCluster = {
    config: {
      name: 'inbound|9080||',
      host: '127.0.0.1',
      subset: '',
      serviceName: 'reviews',
      serviceNamespace: 'default',
    },
  };
  obs.onComplete(req({ listener: inboundListener, cluster: inboundCluster, endpoint: { labels: {} } }));
  t.same(await lines(obs, 'istio_requests_total'), [
    `istio_requests_total{${labelString({
      reporter: 'destination',
      source_workload: 'unknown',
      source_app: 'unknown',
      destination_workload: 'reviews-v2',
      destination_version: 'v2',
      destination_service: 'reviews.default.svc.cluster.local',
      destination_service_name: 'reviews',
      destination_service_namespace: 'default',
      request_protocol: 'http',
      response_code: '200',
      response_flags: '-',
      connection_security_policy: 'none',
    })}} 1`,
  ]);
});

t.test('a proxy without app/version labels reports unknown', async (t) => {
  const obs = new StatsObserver({
    identity: { mode: 'router', labels: {}, namespace: 'default', workload: 'courier-router' },
  });
  obs.onComplete(req({ responseCode: 0, flags: ['DC'], flagString: 'DC' }));
  const [line] = await lines(obs, 'istio_requests_total');
  t.match(line, /source_workload="courier-router",source_app="unknown",/);
  t.match(line, /response_code="0",response_flags="DC"/);
});

t.test('worker export merges across workers into exact sums', async (t) => {
  const w1 = new StatsObserver({ identity: GATEWAY, now: () => clock + 1 });
  const w2 = new StatsObserver({ identity: GATEWAY, now: () => clock + 1 });
  // Different endpoint objects in each worker, same labels.
  for (let i = 0; i < 3; i++)
    w1.onComplete(req({ cluster: reviewsV1, endpoint: { labels: { version: 'v1' } } }));
  for (let i = 0; i < 4; i++)
    w2.onComplete(req({ cluster: reviewsV1, endpoint: { labels: { version: 'v1' } } }));
  w2.onComplete(req({ responseCode: 404, flags: ['NR'], flagString: 'NR' }));
  w1.bindUpstream({ stats: () => ({ pools: 1, connected: 2, running: 1, pending: 0 }) });
  w2.bindUpstream({ stats: () => ({ pools: 1, connected: 3, running: 0, pending: 0 }) });
  const sets: MetricJSON[][] = [];
  for (const w of [w1, w2]) {
    const e = await w.exportForAgent();
    t.notOk(
      e.metrics.some((m) => m.name.startsWith('istio_') && !m.name.startsWith('istio_tcp_')),
      'istio request metrics travel compact',
    );
    sets.push([...e.metrics, ...istioMetricsJSON(e.istio)]);
  }
  const text = await AggregatorRegistry.aggregate(sets).metrics();
  t.match(text, /istio_requests_total\{[^}]*response_code="200",response_flags="-"[^}]*\} 7\n/);
  t.match(text, /istio_requests_total\{[^}]*response_code="404",response_flags="NR"[^}]*\} 1\n/);
  t.match(text, /istio_request_duration_milliseconds_count\{[^}]*response_code="200"[^}]*\} 7\n/);
  t.match(text, /istio_request_duration_milliseconds_bucket\{[^}]*response_code="200"[^}]*le="1"\} 7\n/);
  t.match(text, /courier_upstream_connections 5\n/);
  t.match(text, /courier_upstream_rq_active 1\n/);
  // The worker's own registry answers the same.
  t.match(await w1.registry.metrics(), /# TYPE istio_requests_total counter\nistio_requests_total\{.*\} 3\n/);
});

t.test('reset zeroes every series', async (t) => {
  const obs = new StatsObserver({ identity: GATEWAY, now: () => clock });
  obs.onComplete(req());
  obs.registry.resetMetrics();
  t.match((await lines(obs, 'istio_requests_total'))[0], / 0$/);
});

t.test('the observer fans out to the access log and never throws', async (t) => {
  const writes: string[] = [];
  const sink: LogSink = {
    write: (d, done) => {
      writes.push(d);
      done();
    },
    writeSync: () => {},
    close: async () => {},
  };
  const log = new AccessLogger(sink, 'text', { flushMs: 1 });
  const obs = new StatsObserver({ identity: GATEWAY, accessLog: log, now: () => clock + 3 });
  obs.onComplete(req({ responseCode: 404, flags: ['NR'], flagString: 'NR' }));
  obs.onComplete(req());
  const stderr = process.stderr.write;
  let complained = '';
  process.stderr.write = ((s: string) => {
    complained += s;
    return true;
  }) as typeof process.stderr.write;
  try {
    t.doesNotThrow(() => obs.onComplete({} as Req));
  } finally {
    process.stderr.write = stderr;
  }
  t.match(complained, /stats observer error/);
  await obs.close();
  const all = writes.join('');
  t.equal(all.split('\n').length - 1, 2);
  t.match(all, /" 404 NR - - "-" 0 0 3 - /);
});

t.test('workloadName: Deployment name from the pod name', async (t) => {
  t.equal(workloadName('reviews-v1-545db77b95-x7kz2', {}), 'reviews-v1');
  t.equal(workloadName('istio-ingressgateway-7d9f6b8c5d-abcde', {}), 'istio-ingressgateway');
  t.equal(workloadName('courier-router', {}), 'courier-router');
  t.equal(workloadName('db-0', {}), 'db-0');
  t.equal(workloadName('x-5d9f6b8c5d-abcde', { ISTIO_META_WORKLOAD_NAME: 'named' }), 'named');
});

type Conn = ObservedConnection &
  LoggedConnection & { flags: readonly string[]; bytesSent: number; bytesReceived: number };

function conn(over: Partial<Conn> = {}): Conn {
  return {
    listener: gatewayListener,
    cluster: reviewsV1,
    destination: { host: 'reviews.default.svc.cluster.local', subset: 'v1' },
    endpoint: { labels: { version: 'v1' } },
    flags: [],
    flagString: '-',
    bytesReceived: 0,
    bytesSent: 0,
    start: clock,
    startTime: new Date(0),
    upstreamHost: '127.0.0.1:9000',
    clusterName: reviewsV1.config.name,
    ...over,
  };
}

const sample = (text: string, name: string, flags = '-') =>
  Number(new RegExp(`^${name}\\{[^}]*response_flags="${flags}"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1]);

t.test('tcp: opened at connect, bytes at each scrape while open, the rest and closed at close', async (t) => {
  const obs = new StatsObserver({ identity: GATEWAY, now: () => clock + 7 });
  const c = conn();
  obs.onTcpOpen(c);
  let text = await obs.registry.metrics();
  t.equal(sample(text, 'istio_tcp_connections_opened_total'), 1);
  t.equal(sample(text, 'istio_tcp_connections_closed_total'), 0);
  c.bytesReceived = 5;
  c.bytesSent = 9;
  text = await obs.registry.metrics();
  t.equal(sample(text, 'istio_tcp_received_bytes_total'), 5, 'bytes so far');
  t.equal(sample(text, 'istio_tcp_sent_bytes_total'), 9);
  c.bytesReceived = 12;
  c.bytesSent = 20;
  obs.onTcpClose(c);
  text = await obs.registry.metrics();
  t.equal(sample(text, 'istio_tcp_received_bytes_total'), 12, 'never counted twice');
  t.equal(sample(text, 'istio_tcp_sent_bytes_total'), 20);
  t.equal(sample(text, 'istio_tcp_connections_opened_total'), 1);
  t.equal(sample(text, 'istio_tcp_connections_closed_total'), 1);
  const line = text.split('\n').find((l) => l.startsWith('istio_tcp_connections_closed_total{')) ?? '';
  const names = [...line.matchAll(/(\w+)="/g)].map((m) => m[1]);
  t.same(names, ISTIO_TCP_LABELS, "Istio's labels without response_code, in order");
  t.match(line, /reporter="source",source_workload="istio-ingressgateway",source_app="istio-ingressgateway"/);
  t.match(
    line,
    /destination_version="v1",destination_service="reviews\.default\.svc\.cluster\.local",destination_service_name="reviews",destination_service_namespace="default",request_protocol="tcp",response_flags="-",connection_security_policy="unknown"/,
  );
});

t.test('tcp: a connection that never reached its upstream is opened and closed at its close', async (t) => {
  const writes: string[] = [];
  const sink: LogSink = {
    write: (d, done) => {
      writes.push(d);
      done();
    },
    writeSync: () => {},
    close: async () => {},
  };
  const obs = new StatsObserver({
    identity: GATEWAY,
    accessLog: new AccessLogger(sink, 'text', { flushMs: 1 }),
    now: () => clock + 510,
  });
  obs.onTcpClose(conn({ flags: ['UF', 'URX'], flagString: 'UF,URX' }));
  obs.onTcpClose(conn({ flags: ['UO'], flagString: 'UO', endpoint: undefined, upstreamHost: '' }));
  const text = await obs.registry.metrics();
  t.equal(sample(text, 'istio_tcp_connections_opened_total', 'UF,URX'), 1);
  t.equal(sample(text, 'istio_tcp_connections_closed_total', 'UF,URX'), 1);
  t.equal(sample(text, 'istio_tcp_connections_closed_total', 'UO'), 1);
  t.notMatch(text, /response_flags="-"/, 'no series without flags');
  await obs.close();
  const all = writes.join('');
  t.match(all, /"- - -" 0 UF,URX - - "-" 0 0 510 - /);
  t.match(all, /"- - -" 0 UO - - "-" 0 0 510 - "-" "-" "-" "-" "-" outbound/);
});

t.test('tcp: workers export plain counters, summed by the agent', async (t) => {
  const w1 = new StatsObserver({ identity: GATEWAY });
  const w2 = new StatsObserver({ identity: GATEWAY });
  w1.onTcpClose(conn({ bytesReceived: 3, bytesSent: 4 }));
  // Another worker, other endpoint object, same labels.
  w2.onTcpClose(conn({ endpoint: { labels: { version: 'v1' } }, bytesReceived: 10, bytesSent: 20 }));
  const sets: MetricJSON[][] = [];
  for (const w of [w1, w2]) {
    const e = await w.exportForAgent();
    sets.push([...e.metrics, ...istioMetricsJSON(e.istio)]);
  }
  const text = await AggregatorRegistry.aggregate(sets).metrics();
  t.equal(sample(text, 'istio_tcp_connections_closed_total'), 2);
  t.equal(sample(text, 'istio_tcp_received_bytes_total'), 13);
  t.equal(sample(text, 'istio_tcp_sent_bytes_total'), 24);
  t.match(text, /# TYPE istio_tcp_sent_bytes_total counter/);
  w1.registry.resetMetrics();
  t.equal(sample(await w1.registry.metrics(), 'istio_tcp_connections_closed_total'), 0, 'reset');
});

t.test('tcp: the observer never throws', async (t) => {
  const obs = new StatsObserver({ identity: GATEWAY });
  const stderr = process.stderr.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    t.doesNotThrow(() => obs.onTcpOpen({} as Conn));
    t.doesNotThrow(() => obs.onTcpClose({} as Conn));
  } finally {
    process.stderr.write = stderr;
  }
});
