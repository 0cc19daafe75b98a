// TLS passed through by SNI at a gateway (Istio's "Ingress Gateway without TLS Termination" task),
// through the real pilot-agent: the client sees the BACKEND's certificate, which is the black-box
// proof that the gateway did not terminate; unknown SNI and no SNI are closed; a PASSTHROUGH server
// with no VirtualService (or one whose match is for another port) has no listener; a weighted tls
// route splits connections (counted by the certificate each one saw); the connection is logged in
// the TCP format with the SNI and counted in istio_tcp_*. And one port shared by a TLS server that
// terminates (SIMPLE, a Secret, a VS tcp route to a plaintext echo) and a PASSTHROUGH one.

import { readFileSync } from 'node:fs';
import { createServer as httpsServer } from 'node:https';
import { createServer as netServer, type Server } from 'node:net';
import { join } from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import t from 'tap';
import { makeCa, tlsSecretYaml } from '../helpers/certs.js';
import { type L4Destination, l4VirtualService } from '../helpers/l4-yaml.js';
import { freePort, sleep, startAgent, writeConfigDir } from '../helpers/procs.js';

const ca = await makeCa('example.com');
const nginxCert = await ca.issue({ cn: 'nginx.example.com', dns: ['nginx.example.com'] });
const v1Cert = await ca.issue({ cn: 'v1.shop.example.com', dns: ['shop.example.com'] });
const v2Cert = await ca.issue({ cn: 'v2.shop.example.com', dns: ['shop.example.com'] });
const pCert = await ca.issue({ cn: 'p.example.com', dns: ['p.example.com'] });
const gwCert = await ca.issue({ cn: 't.example.com', dns: ['t.example.com'] });

/** A TLS backend with its own certificate, answering every HTTP request with its name. */
async function backend(
  name: string,
  pem: { cert: string; key: string },
): Promise<{ port: number; server: Server }> {
  const server = httpsServer({ cert: pem.cert, key: pem.key }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
    res.end(`Welcome to ${name}! (${req.headers.host})\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { port: (server.address() as { port: number }).port, server };
}

/** A plaintext line echo (Istio's tcp-echo). */
async function echo(prefix: string): Promise<number> {
  const server = netServer({ allowHalfOpen: true }, (sock) => {
    let buf = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        sock.write(`${prefix} ${buf.slice(0, i + 1)}`);
        buf = buf.slice(i + 1);
      }
    });
    sock.on('end', () => sock.end());
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  return (server.address() as { port: number }).port;
}

const nginx = await backend('nginx', nginxCert);
const shopV1 = await backend('shop v1', v1Cert);
const shopV2 = await backend('shop v2', v2Cert);
const pBackend = await backend('p', pCert);
const echoPort = await echo('one');

const P = {
  nginx: await freePort(),
  noVs: await freePort(),
  otherPort: await freePort(),
  weighted: await freePort(),
  mixed: await freePort(),
};

function gateway(name: string, port: number, servers: string): string {
  return `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ${name}, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
${servers.replaceAll('PORT', String(port))}`;
}

const passthroughServer = (hosts: string[], proto = 'HTTPS', portName = 'https') =>
  `  - port: {number: PORT, name: ${portName}, protocol: ${proto}}
    tls: {mode: PASSTHROUGH}
    hosts: ${JSON.stringify(hosts)}
`;

function serviceEntry(
  name: string,
  endpoints: { port: number; version?: string }[],
  proto = 'HTTPS',
): string {
  const eps = endpoints
    .map((e) => `  - {address: 127.0.0.1, ports: {p: ${e.port}}, labels: {version: ${e.version ?? 'v1'}}}`)
    .join('\n');
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${name}, namespace: default}
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 443, name: p, protocol: ${proto}}]
  resolution: STATIC
  endpoints:
${eps}
`;
}

function tlsVirtualService(
  name: string,
  gw: string,
  hosts: string[],
  matchPort: number,
  routes: L4Destination[],
): string {
  const match = `{port: ${matchPort}, sniHosts: ${JSON.stringify(hosts)}}`;
  return l4VirtualService({ name, gw, kind: 'tls', hosts, match, port: 443, routes });
}

const files: Record<string, string> = {
  // The task, as written: Gateway mygateway, VS nginx, Service my-nginx:443.
  'nginx.yaml': [
    gateway('mygateway', P.nginx, passthroughServer(['nginx.example.com'])),
    serviceEntry('my-nginx', [{ port: nginx.port }]),
    tlsVirtualService('nginx', 'mygateway', ['nginx.example.com'], P.nginx, [{ host: 'my-nginx' }]),
  ].join('---\n'),
  'no-vs.yaml': gateway('gw-novs', P.noVs, passthroughServer(['nginx.example.com'])),
  'other-port.yaml': [
    gateway('gw-other', P.otherPort, passthroughServer(['nginx.example.com'])),
    tlsVirtualService('other', 'gw-other', ['nginx.example.com'], P.otherPort + 1, [{ host: 'my-nginx' }]),
  ].join('---\n'),
  'weighted.yaml': [
    gateway('gw-weighted', P.weighted, passthroughServer(['shop.example.com'], 'TLS', 'tls')),
    serviceEntry(
      'shop',
      [
        { port: shopV1.port, version: 'v1' },
        { port: shopV2.port, version: 'v2' },
      ],
      'TLS',
    ),
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: shop, namespace: default}
spec:
  host: shop
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`,
    tlsVirtualService('shop', 'gw-weighted', ['shop.example.com'], P.weighted, [
      { host: 'shop', subset: 'v1', weight: 80 },
      { host: 'shop', subset: 'v2', weight: 20 },
    ]),
  ].join('---\n'),
  // One port, two TLS servers: t.example.com terminated here (then TCP to a plaintext echo),
  // p.example.com passed through to its backend.
  'mixed.yaml': [
    gateway(
      'gw-mixed',
      P.mixed,
      `  - port: {number: PORT, name: tls-t, protocol: TLS}
    tls: {mode: SIMPLE, credentialName: t-cred}
    hosts: [t.example.com]
${passthroughServer(['p.example.com'], 'TLS', 'tls-p')}`,
    ),
    tlsSecretYaml('t-cred', { 'tls.crt': gwCert.cert, 'tls.key': gwCert.key }),
    serviceEntry('tcp-echo', [{ port: echoPort }], 'TCP'),
    serviceEntry('p', [{ port: pBackend.port }], 'TLS'),
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: t, namespace: default}
spec:
  hosts: [t.example.com]
  gateways: [gw-mixed]
  tcp:
  - route: [{destination: {host: tcp-echo, port: {number: 443}}}]
`,
    tlsVirtualService('p', 'gw-mixed', ['p.example.com'], P.mixed, [{ host: 'p' }]),
  ].join('---\n'),
};

const dir = writeConfigDir(files);
const logFile = join(dir, '..', `${dir.split('/').pop()}-access.log`);
const agent = await startAgent({ configDir: dir, args: ['--access-log', logFile] });
t.teardown(() => agent.stop());

interface Outcome {
  /** Subject CN of the certificate the client was shown; undefined without a handshake. */
  cn: string | undefined;
  /** Everything read after the handshake. */
  body: string;
  /** How it ended: `end`, an error code, or `timeout`. */
  how: string;
}

/**
 * A TLS client (trusting the test CA), `servername` as SNI ('' sends none), writing `send` after
 * the handshake and half-closing when `end`; resolves when the connection is over.
 */
function tlsTalk(port: number, servername: string, send: string, end = false): Promise<Outcome> {
  return new Promise((resolve) => {
    const o: Outcome = { cn: undefined, body: '', how: 'closed' };
    const s: TLSSocket = tlsConnect({
      host: '127.0.0.1',
      port,
      servername,
      ca: ca.cert,
      checkServerIdentity: () => undefined,
    });
    s.setEncoding('latin1');
    s.once('secureConnect', () => {
      const cn = s.getPeerCertificate().subject?.CN;
      o.cn = Array.isArray(cn) ? cn.join(',') : cn;
      s.write(send);
      if (end) s.end();
    });
    s.on('data', (d: string) => {
      o.body += d;
    });
    s.on('end', () => {
      o.how = 'end';
      s.end();
    });
    s.on('error', (e: Error & { code?: string }) => {
      o.how = e.code ?? e.message;
    });
    const timer = setTimeout(() => {
      o.how = 'timeout';
      s.destroy();
    }, 5000);
    s.on('close', () => {
      clearTimeout(timer);
      resolve(o);
    });
  });
}

const get = (host: string) => `GET / HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`;

function refused(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'nginx.example.com', ca: ca.cert });
    s.once('secureConnect', () => {
      s.destroy();
      resolve('handshake');
    });
    s.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
  });
}

async function logLine(re: RegExp, ms = 3000): Promise<string | undefined> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    let text = '';
    try {
      text = readFileSync(logFile, 'utf8');
    } catch {}
    const l = text.split('\n').find((x) => re.test(x));
    if (l) return l;
    await sleep(25);
  }
  return undefined;
}

async function opened(cluster: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${agent.status}/stats/prometheus`)).text();
  let n = 0;
  for (const m of text.matchAll(/^istio_tcp_connections_opened_total\{([^}]*)\} (\S+)$/gm))
    if ((m[1] as string).includes(`destination_service="${cluster}"`)) n += Number(m[2]);
  return n;
}

t.test('PASSTHROUGH: the client sees the backend certificate and gets its answer', async (t) => {
  const before = await opened('my-nginx.default.svc.cluster.local');
  const r = await tlsTalk(P.nginx, 'nginx.example.com', get('nginx.example.com'));
  t.equal(r.cn, 'nginx.example.com', "the backend's certificate (verified against the CA)");
  t.match(r.body, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(r.body, /Welcome to nginx! \(nginx\.example\.com\)/);
  t.equal(r.how, 'end');

  const line = await logLine(/outbound\|443\|\|my-nginx\.default\.svc\.cluster\.local/);
  t.match(
    line,
    new RegExp(
      `^\\[\\S+\\] "- - -" 0 - - - "-" (\\d+) (\\d+) \\d+ - "-" "-" "-" "-" "127\\.0\\.0\\.1:${nginx.port}" ` +
        `outbound\\|443\\|\\|my-nginx\\.default\\.svc\\.cluster\\.local 127\\.0\\.0\\.1:\\d+ 127\\.0\\.0\\.1:${P.nginx} ` +
        '127\\.0\\.0\\.1:\\d+ nginx\\.example\\.com -$',
    ),
    'TCP access log line with the SNI as requested server name',
  );
  const [, rx, tx] = / 0 - - - "-" (\d+) (\d+) /.exec(line ?? '') ?? [];
  t.ok(Number(rx) > 200 && Number(tx) > 500, `encrypted bytes counted both ways (${rx} in, ${tx} out)`);
  let after = await opened('my-nginx.default.svc.cluster.local');
  for (let i = 0; i < 20 && after === before; i++) {
    await sleep(25);
    after = await opened('my-nginx.default.svc.cluster.local');
  }
  t.equal(after, before + 1, 'istio_tcp_connections_opened_total +1');
});

t.test('an SNI no VirtualService routes, or no SNI at all: closed without a handshake', async (t) => {
  const other = await tlsTalk(P.nginx, 'other.example.com', get('other.example.com'));
  t.equal(other.cn, undefined, 'no certificate seen');
  t.equal(other.body, '');
  t.not(other.how, 'timeout');
  const none = await tlsTalk(P.nginx, '', get('nginx.example.com'));
  t.equal(none.cn, undefined);
  t.equal(none.body, '');
  t.not(none.how, 'timeout');
  // The port still serves the routed name.
  t.equal((await tlsTalk(P.nginx, 'nginx.example.com', get('nginx.example.com'))).cn, 'nginx.example.com');
});

t.test(
  'a PASSTHROUGH server without a VirtualService, or with one for another port: no listener',
  async (t) => {
    t.equal(await refused(P.noVs), 'ECONNREFUSED');
    t.equal(await refused(P.otherPort), 'ECONNREFUSED');
  },
);

t.test('weighted tls route 80/20: connections split by weight, counted by certificate', async (t) => {
  const N = 200;
  const cns: (string | undefined)[] = [];
  for (let i = 0; i < N; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: 25 }, () => tlsTalk(P.weighted, 'shop.example.com', get('shop.example.com'))),
    );
    for (const r of batch) {
      cns.push(r.cn);
      if (!r.body.includes('Welcome to shop')) t.fail(`no answer: ${JSON.stringify(r)}`);
    }
  }
  const v1 = cns.filter((c) => c === 'v1.shop.example.com').length;
  const v2 = cns.filter((c) => c === 'v2.shop.example.com').length;
  t.equal(v1 + v2, N, 'every connection reached a backend');
  t.ok(Math.abs(v2 / N - 0.2) <= 0.1, `about 20% to v2 (${v2}/${N})`);
  t.comment(`80/20 passthrough split: ${v1} v1, ${v2} v2 of ${N}`);
});

t.test('one port: SNI t is terminated here (TCP to a plaintext echo), SNI p passed through', async (t) => {
  const term = await tlsTalk(P.mixed, 't.example.com', 'hello\n', true);
  t.equal(term.cn, 't.example.com', "the gateway's certificate");
  t.equal(term.body, 'one hello\n', 'the bytes reached the echo in plaintext; its answer came back');
  t.equal(term.how, 'end', 'half-closed over TLS, then the echo closed');
  const pass = await tlsTalk(P.mixed, 'p.example.com', get('p.example.com'));
  t.equal(pass.cn, 'p.example.com', "the backend's certificate");
  t.match(pass.body, /Welcome to p!/);
  const line = await logLine(/outbound\|443\|\|tcp-echo\.default\.svc\.cluster\.local/);
  t.match(line, /"- - -" 0 - - - "-" 6 10 \d+ .* t\.example\.com -$/, 'plaintext bytes, SNI logged');
  t.match(await logLine(/outbound\|443\|\|p\.default\.svc\.cluster\.local/), / p\.example\.com -$/);
});
