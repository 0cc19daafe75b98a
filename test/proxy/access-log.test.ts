import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  AccessLogger,
  fileSink,
  formatAddress,
  formatJson,
  formatTcpJson,
  formatTcpText,
  formatText,
  type LoggedConnection,
  type LoggedRequest,
  type LogSink,
  openAccessLog,
  splitLines,
} from '../../dist/proxy/access-log.js';

const START = new Date('2024-01-09T15:35:47.283Z');

function forwarded(over: Partial<LoggedRequest> = {}): LoggedRequest {
  return {
    startTime: START,
    method: 'GET',
    originalPath: '/politics?x=1',
    req: {
      url: '/politics?x=1',
      httpVersion: '1.1',
      socket: {
        localAddress: '::ffff:172.30.239.16',
        localPort: 80,
        remoteAddress: '::ffff:172.30.239.55',
        remotePort: 59224,
      },
    },
    responseCode: 301,
    flagString: '-',
    details: 'via_upstream',
    bytesReceived: 0,
    bytesSent: 12,
    upstreamServiceTime: 2,
    headers: {
      'x-forwarded-for': '172.30.239.55',
      'user-agent': 'curl/7.87.0-DEV',
      'x-request-id': '6c01d65f-9d8c-4d5a-b1a2-0f0e4c1f7a11',
    },
    authority: 'edition.cnn.com',
    upstreamHost: '151.101.195.5:80',
    clusterName: 'outbound|80||edition.cnn.com',
    routeName: 'default.forward-cnn-from-egress-gateway.0',
    ...over,
  };
}

/** A local reply before any routing: no route, no cluster, no upstream, no request id. */
function noRoute(): LoggedRequest {
  return forwarded({
    method: 'POST',
    originalPath: '/nope',
    req: { url: '/nope', httpVersion: '1.1', socket: {} },
    responseCode: 404,
    flagString: 'NR',
    details: 'route_not_found',
    bytesReceived: 5,
    bytesSent: 0,
    upstreamServiceTime: -1,
    headers: {},
    authority: '',
    upstreamHost: '-',
    clusterName: '-',
    routeName: '-',
  });
}

t.test('text: Istio default format, field by field', async (t) => {
  t.equal(
    formatText(forwarded(), 2.9),
    '[2024-01-09T15:35:47.283Z] "GET /politics?x=1 HTTP/1.1" 301 - via_upstream - "-" 0 12 2 2 ' +
      '"172.30.239.55" "curl/7.87.0-DEV" "6c01d65f-9d8c-4d5a-b1a2-0f0e4c1f7a11" "edition.cnn.com" ' +
      '"151.101.195.5:80" outbound|80||edition.cnn.com - 172.30.239.16:80 172.30.239.55:59224 - ' +
      'default.forward-cnn-from-egress-gateway.0\n',
  );
});

t.test('text: every missing value prints -', async (t) => {
  t.equal(
    formatText(noRoute(), 0.4),
    '[2024-01-09T15:35:47.283Z] "POST /nope HTTP/1.1" 404 NR route_not_found - "-" 5 0 0 - ' +
      '"-" "-" "-" "-" "-" - - - - - -\n',
  );
});

t.test('text: path falls back to the raw target; multi-valued headers join with commas', async (t) => {
  const line = formatText(
    forwarded({
      originalPath: '',
      req: { url: '/raw/../x', httpVersion: '1.0', socket: {} },
      headers: { 'x-forwarded-for': ['1.1.1.1', '2.2.2.2'] },
      flagString: 'UT,URX',
    }),
    1,
  );
  t.match(line, /^\[[^\]]+\] "GET \/raw\/\.\.\/x HTTP\/1\.0" 301 UT,URX /);
  t.match(line, / "1\.1\.1\.1,2\.2\.2\.2" "-" "-" /);
});

t.test('json: Istio keys, sorted, typed numbers, null when absent', async (t) => {
  const line = formatJson(forwarded(), 2.9);
  t.ok(line.endsWith('}\n'));
  const o = JSON.parse(line);
  t.same(Object.keys(o), [...Object.keys(o)].sort(), 'keys sorted');
  t.strictSame(o, {
    authority: 'edition.cnn.com',
    bytes_received: 0,
    bytes_sent: 12,
    connection_termination_details: null,
    downstream_local_address: '172.30.239.16:80',
    downstream_remote_address: '172.30.239.55:59224',
    duration: 2,
    method: 'GET',
    path: '/politics?x=1',
    protocol: 'HTTP/1.1',
    request_id: '6c01d65f-9d8c-4d5a-b1a2-0f0e4c1f7a11',
    requested_server_name: null,
    response_code: 301,
    response_code_details: 'via_upstream',
    response_flags: '-',
    route_name: 'default.forward-cnn-from-egress-gateway.0',
    start_time: '2024-01-09T15:35:47.283Z',
    upstream_cluster: 'outbound|80||edition.cnn.com',
    upstream_host: '151.101.195.5:80',
    upstream_local_address: null,
    upstream_service_time: '2',
    upstream_transport_failure_reason: null,
    user_agent: 'curl/7.87.0-DEV',
    x_forwarded_for: '172.30.239.55',
  });
  t.equal(Object.keys(o).length, 24, 'exactly the 24 Istio keys');
});

t.test('json: a local reply', async (t) => {
  const o = JSON.parse(formatJson(noRoute(), 0));
  t.equal(o.response_code, 404);
  t.equal(o.response_flags, 'NR');
  t.equal(o.response_code_details, 'route_not_found');
  for (const k of [
    'authority',
    'downstream_local_address',
    'downstream_remote_address',
    'request_id',
    'route_name',
    'upstream_cluster',
    'upstream_host',
    'upstream_service_time',
    'user_agent',
    'x_forwarded_for',
  ])
    t.equal(o[k], null, `${k} is null`);
});

t.test('addresses as Envoy prints them', async (t) => {
  t.equal(formatAddress('::1', 8080), '[::1]:8080');
  t.equal(formatAddress('::ffff:10.0.0.1', 1), '10.0.0.1:1');
  t.equal(formatAddress('10.0.0.1', undefined), '10.0.0.1');
  t.equal(formatAddress(undefined, 80), undefined);
});

t.test('splitLines: pieces of at most PIPE_BUF, cut at line ends', async (t) => {
  const lines = Array.from({ length: 300 }, (_, i) => `${'x'.repeat(i % 97)}-${i}\n`);
  const data = lines.join('');
  const pieces = splitLines(data, 512);
  t.equal(pieces.join(''), data);
  for (const p of pieces) {
    t.ok(Buffer.byteLength(p) <= 512);
    t.ok(p.endsWith('\n'));
  }
  t.same(splitLines('short\n'), ['short\n']);
  const long = `${'y'.repeat(600)}\n`;
  t.same(splitLines(`a\n${long}b\n`, 512), ['a\n', long, 'b\n'], 'an oversize line goes alone');
});

/** A sink that records writes; completes them when told to (or at once). */
function memorySink(auto = true) {
  const writes: string[] = [];
  const pending: (() => void)[] = [];
  let closed = false;
  const sink: LogSink = {
    write: (data, done) => {
      writes.push(data);
      if (auto) setImmediate(() => done());
      else pending.push(() => done());
    },
    writeSync: (data) => {
      writes.push(`sync:${data}`);
    },
    close: async () => {
      closed = true;
    },
  };
  return { sink, writes, pending, closed: () => closed };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('logger: lines wait for the timer and go out in one write', async (t) => {
  const m = memorySink();
  const log = new AccessLogger(m.sink, 'text', { flushMs: 20 });
  log.log(forwarded(), 1);
  log.log(noRoute(), 1);
  log.log(forwarded(), 1);
  t.equal(m.writes.length, 0, 'nothing written synchronously');
  await sleep(60);
  t.equal(m.writes.length, 1, 'one batch');
  t.equal(m.writes[0]?.split('\n').length, 4, 'three lines');
  await log.close();
  t.ok(m.closed());
});

t.test('logger: size threshold writes at once; one write in flight; close drains', async (t) => {
  const m = memorySink(false);
  const log = new AccessLogger(m.sink, 'json', { flushMs: 10_000, flushBytes: 100 });
  log.log(forwarded(), 1); // > 100 chars: written now
  t.equal(m.writes.length, 1);
  log.log(forwarded(), 1);
  log.log(forwarded(), 1);
  t.equal(m.writes.length, 1, 'second batch waits for the first write');
  m.pending.shift()?.();
  t.equal(m.writes.length, 2, 'then goes out as one write');
  t.equal(m.writes[1]?.split('\n').length, 3);
  const closing = log.close();
  m.pending.shift()?.();
  await closing;
  t.ok(m.closed());
  log.log(forwarded(), 1);
  t.equal(m.writes.length, 2, 'nothing after close');
});

t.test('logger: a stuck destination costs dropped lines, never memory without bound', async (t) => {
  const m = memorySink(false);
  const log = new AccessLogger(m.sink, 'text', { flushMs: 10_000, flushBytes: 1, maxBufferedBytes: 1000 });
  let hooks = 0;
  log.onDrop(() => hooks++);
  for (let i = 0; i < 50; i++) log.log(forwarded(), 1);
  t.equal(m.writes.length, 1, 'first line in flight, the rest waiting');
  t.ok(log.dropped > 0);
  t.equal(hooks, log.dropped);
  log.flushSync();
  t.match(m.writes[1], /^sync:\[/, 'exit path writes what waits, synchronously');
});

t.test('file sink appends; openAccessLog off/-/path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'courier-al-'));
  const path = join(dir, 'access.log');
  t.equal(openAccessLog('off', 'text'), undefined);
  t.ok(openAccessLog('-', 'text'));
  const a = new AccessLogger(fileSink(path), 'text', { flushMs: 5 });
  const b = openAccessLog(path, 'json', { flushMs: 5 });
  a.log(forwarded(), 1);
  b?.log(noRoute(), 1);
  a.log(noRoute(), 1);
  await Promise.all([a.close(), b?.close()]);
  const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
  t.equal(lines.length, 3);
  t.equal(lines.filter((l) => l.startsWith('{')).length, 1);
  t.equal(lines.filter((l) => l.startsWith('[')).length, 2);
  t.throws(() => openAccessLog(join(dir, 'missing', 'x.log'), 'text'));
});

/** The tcp_proxy line of Istio's egress example: a passthrough connection with SNI. */
function tcpConnection(over: Partial<LoggedConnection> = {}): LoggedConnection {
  return {
    startTime: new Date('2021-11-10T14:49:06.792Z'),
    flagString: '-',
    bytesReceived: 892,
    bytesSent: 5620,
    upstreamHost: '172.217.6.68:443',
    clusterName: 'outbound|443||www.google.com',
    upstreamLocalAddress: '10.42.1.47',
    upstreamLocalPort: 45712,
    downstreamLocalAddress: '::ffff:10.42.1.47',
    downstreamLocalPort: 8444,
    downstreamRemoteAddress: '::ffff:10.42.1.41',
    downstreamRemotePort: 33992,
    sni: 'www.google.com',
    ...over,
  };
}

t.test('tcp text: the HTTP fields print -, code 0, bytes, duration, addresses, SNI', async (t) => {
  t.equal(
    formatTcpText(tcpConnection(), 135.7),
    '[2021-11-10T14:49:06.792Z] "- - -" 0 - - - "-" 892 5620 135 - "-" "-" "-" "-" "172.217.6.68:443" ' +
      'outbound|443||www.google.com 10.42.1.47:45712 10.42.1.47:8444 10.42.1.41:33992 www.google.com -\n',
  );
  // A refused connect: flags, the transport failure reason, no upstream local address, no SNI.
  t.equal(
    formatTcpText(
      tcpConnection({
        flagString: 'UF,URX',
        transportFailure: 'delayed connect error: Connection refused',
        bytesReceived: 0,
        bytesSent: 0,
        upstreamHost: '10.244.0.6:443',
        clusterName: 'outbound|443||httpbin.org',
        upstreamLocalAddress: undefined,
        upstreamLocalPort: undefined,
        sni: undefined,
      }),
      1,
    ),
    '[2021-11-10T14:49:06.792Z] "- - -" 0 UF,URX - - "delayed_connect_error:_Connection_refused" 0 0 1 - ' +
      '"-" "-" "-" "-" "10.244.0.6:443" outbound|443||httpbin.org - 10.42.1.47:8444 10.42.1.41:33992 - -\n',
  );
  // No cluster, no host (NC).
  t.match(
    formatTcpText(tcpConnection({ flagString: 'NC', upstreamHost: '', clusterName: '' }), 0),
    / 0 NC - - "-" 892 5620 0 - "-" "-" "-" "-" "-" - 10\.42\.1\.47:45712 /,
  );
});

t.test('tcp json: Istio keys, HTTP ones null, response_code 0', async (t) => {
  const o = JSON.parse(formatTcpJson(tcpConnection(), 135.7));
  t.same(o, {
    authority: null,
    bytes_received: 892,
    bytes_sent: 5620,
    connection_termination_details: null,
    downstream_local_address: '10.42.1.47:8444',
    downstream_remote_address: '10.42.1.41:33992',
    duration: 135,
    method: null,
    path: null,
    protocol: null,
    request_id: null,
    requested_server_name: 'www.google.com',
    response_code: 0,
    response_code_details: null,
    response_flags: '-',
    route_name: null,
    start_time: '2021-11-10T14:49:06.792Z',
    upstream_cluster: 'outbound|443||www.google.com',
    upstream_host: '172.217.6.68:443',
    upstream_local_address: '10.42.1.47:45712',
    upstream_service_time: null,
    upstream_transport_failure_reason: null,
    user_agent: null,
    x_forwarded_for: null,
  });
  t.same(Object.keys(o), Object.keys(JSON.parse(formatJson(forwarded(), 1))), 'the same keys as a request');
  const failed = JSON.parse(
    formatTcpJson(
      tcpConnection({ flagString: 'UF,URX', transportFailure: 'delayed connect error: Connection refused' }),
      1,
    ),
  );
  t.equal(failed.response_flags, 'UF,URX');
  t.equal(failed.upstream_transport_failure_reason, 'delayed_connect_error:_Connection_refused');
});

t.test('the logger writes a TCP line in its format, and drops it when full', async (t) => {
  const writes: string[] = [];
  const sink: LogSink = {
    write: (d, done) => {
      writes.push(d);
      done();
    },
    writeSync: () => {},
    close: async () => {},
  };
  const text = new AccessLogger(sink, 'text', { flushMs: 1 });
  text.logConnection(tcpConnection(), 5);
  const json = new AccessLogger(sink, 'json', { flushMs: 1 });
  json.logConnection(tcpConnection(), 5);
  const full = new AccessLogger(sink, 'text', { flushMs: 1, maxBufferedBytes: 0 });
  let dropped = 0;
  full.onDrop(() => dropped++);
  full.logConnection(tcpConnection(), 5);
  await Promise.all([text.close(), json.close(), full.close()]);
  t.match(writes[0], /^\[2021-11-10T14:49:06\.792Z\] "- - -" 0 - /);
  t.equal(JSON.parse(writes[1] as string).bytes_sent, 5620);
  t.equal(writes.length, 2);
  t.equal(dropped, 1);
  t.equal(full.dropped, 1);
});
