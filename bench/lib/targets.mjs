// The targets of the benchmark, each started in its own process group on free ports: the upstream,
// courier (pilot-agent in router mode with a realistic Istio config), the Node forwarders
// (http-proxy, http-proxy-3, fastify + @fastify/reply-from, the bare undici forwarder) and nginx.
// `prefix` is what the harness puts in front of each command (taskset, a cgroup entry shell).

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  COURIER_CLI,
  freePort,
  launch,
  pilotAgentArgs,
  sleep,
  waitHttp200,
  waitJson,
} from '../../scripts/lib/procs.mjs';

const BENCH = join(import.meta.dirname, '..');
export const EXPECTED_BODY = 'hello world\n';
export const PATH = '/api/v1/items';
// Sent to every target; they make courier evaluate (and reject) the header matches.
export const HEADERS = { 'end-user': 'bench-user', 'x-tenant': 'acme' };

/** Display name, kind and the file of each Node forwarder. */
export const FORWARDERS = {
  'http-proxy': { name: 'http-proxy', file: 'http-proxy.mjs' },
  'http-proxy-3': { name: 'http-proxy-3', file: 'http-proxy-3.mjs' },
  fastify: { name: 'fastify/reply-from', file: 'fastify-reply-from.mjs' },
  bare: { name: 'bare forwarder', file: 'bare-forwarder.mjs' },
};

/** The raw-socket upstream (bench/upstream.mjs) on two ports: v1 and v2. */
export async function startUpstream(prefix) {
  const h = launch('upstream', process.execPath, [join(BENCH, 'upstream.mjs'), '0', '0'], { prefix });
  const { ports } = await waitJson(h);
  return { h, ports };
}

/**
 * courier's bench config: one HTTP gateway server, ten rules that do not match, a 90/10 split.
 * `extra.servers` (Gateway server YAML items) and `extra.files` (more documents) are how the TLS
 * rows (bench/lib/tls-rows.mjs) add their HTTPS and TCP servers to the same routes.
 */
export function courierConfig(gatewayPort, v1Port, v2Port, extra = {}) {
  const rules = [];
  for (let i = 0; i < 10; i++) {
    // Half the rules match the URI and fail on a header the request carries with another value,
    // so the header matchers are really evaluated; none matches.
    const uri = [
      '{prefix: /api/v1/}',
      `{exact: /api/v1/items/${i}}`,
      `{regex: "/api/v[0-9]+/orders/[0-9]+/${i}"}`,
    ][i % 3];
    const header = [
      `end-user: {exact: user-${i}}`,
      `x-tenant: {prefix: tenant-${i}-}`,
      `x-canary: {regex: "beta-[a-z]+-${i}"}`,
      `end-user: {exact: vip-${i}}`,
    ][i % 4];
    rules.push(`  - name: rule-${i}
    match:
    - uri: ${uri}
      headers: {${header}}
    route:
    - destination: {host: bench, subset: v2}`);
  }
  return {
    'gateway.yaml': `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${gatewayPort}, name: http, protocol: HTTP}
    hosts: ["*"]
${extra.servers ?? ''}`,
    'service-entry.yaml': `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench, namespace: default}
spec:
  hosts: [bench.default.svc.cluster.local]
  location: MESH_INTERNAL
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {http: ${v1Port}}
    labels: {version: v1}
  - address: 127.0.0.1
    ports: {http: ${v2Port}}
    labels: {version: v2}
`,
    'destination-rule.yaml': `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bench, namespace: default}
spec:
  host: bench
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`,
    'virtual-service.yaml': `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench, namespace: default}
spec:
  hosts: ["*"]
  gateways: [bench-gateway]
  http:
${rules.join('\n')}
  - name: split
    route:
    - destination: {host: bench, subset: v1}
      weight: 90
    - destination: {host: bench, subset: v2}
      weight: 10
`,
    ...extra.files,
  };
}

/** courier (pilot-agent router) on the bench config; `extra` as courierConfig takes it. */
export async function startCourier(tmp, upstream, { concurrency, prefix, label, profile, extra }) {
  const dir = join(tmp, `courier-c${concurrency}-${label}`);
  mkdirSync(dir);
  const port = await freePort();
  for (const [name, text] of Object.entries(courierConfig(port, upstream.ports[0], upstream.ports[1], extra)))
    writeFileSync(join(dir, name), text);
  const check = spawnSync(process.execPath, [COURIER_CLI, 'validate', dir], { encoding: 'utf8' });
  if (check.status !== 0)
    throw new Error(`courier validate rejected the bench config:\n${check.stdout}${check.stderr}`);
  // Workers inherit the agent's node flags, so each writes its own .cpuprofile when it exits.
  const nodeFlags = profile ? ['--cpu-prof', `--cpu-prof-dir=${join(BENCH, 'results', 'profiles')}`] : [];
  const { args, ports } = await pilotAgentArgs({
    configDir: dir,
    concurrency,
    nodeFlags,
    extra: ['--drain-duration', '1s'],
  });
  const h = launch(`courier c${concurrency}`, process.execPath, args, { prefix });
  try {
    await waitHttp200(`http://127.0.0.1:${ports.health}/healthz/ready`, {
      exited: () => h.exited,
      what: 'courier',
    });
  } catch (e) {
    throw new Error(`${e.message} (exit ${h.code}):\n${h.out}`);
  }
  const name = `courier${concurrency > 1 ? ` c${concurrency}` : ''}`;
  return { name, kind: 'courier', h, port, status: ports.status, dir, upstream };
}

/** One of FORWARDERS, straight to v1. */
export async function startForwarder(kind, upstream, prefix) {
  const { name, file } = FORWARDERS[kind];
  const target = `http://127.0.0.1:${upstream.ports[0]}`;
  const h = launch(name, process.execPath, [join(BENCH, file), String(await freePort()), target], { prefix });
  const { port } = await waitJson(h);
  return { name, kind, h, port };
}

export function nginxBinary() {
  for (const bin of ['nginx', '/usr/sbin/nginx']) {
    const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
    if (!r.error) return { bin, version: (r.stderr || r.stdout).trim().replace(/^nginx version: /, '') };
  }
  return undefined;
}

/** nginx in the foreground from a generated config: one worker, upstream keep-alive, 9:1 weights. */
export async function startNginx(bin, tmp, upstream, prefix, extra = {}) {
  const dir = join(tmp, extra.dirName ?? 'nginx');
  mkdirSync(dir);
  chmodSync(tmp, 0o755); // the worker runs as an unprivileged user when we are root
  chmodSync(dir, 0o755);
  const port = await freePort();
  const conf = `${extra.main ?? ''}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream bench {
    server 127.0.0.1:${upstream.ports[0]} weight=9;
    server 127.0.0.1:${upstream.ports[1]} weight=1;
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
${extra.http ?? ''}}
${extra.top ?? ''}`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const args = ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'];
  const h = launch('nginx', bin, args, { prefix });
  await waitServing(h, port);
  return { name: 'nginx', kind: 'nginx', h, port };
}

async function waitServing(h, port, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline && !h.exited) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}${PATH}`, { headers: HEADERS });
      await r.text();
      if (r.status === 200) return;
    } catch {}
    await sleep(50);
  }
  throw new Error(`${h.name} not serving on ${port} (exit ${h.code}):\n${h.out}`);
}

/** One request through the target: must be a 200 with the upstream's body. */
export async function preflight(t) {
  const r = await fetch(`http://127.0.0.1:${t.port}${PATH}`, { headers: HEADERS });
  const body = await r.text();
  if (r.status !== 200 || body !== EXPECTED_BODY)
    throw new Error(`${t.name}: preflight got ${r.status} ${JSON.stringify(body.slice(0, 200))}`);
}

/** Per-port request counts of the upstream (v1, v2). */
export async function upstreamCounts(upstream) {
  const r = await fetch(`http://127.0.0.1:${upstream.ports[0]}/__counts`);
  return r.json();
}

/** Sum of courier's istio_requests_total by response code, from the agent's merged stats. */
export async function courierRequestsByCode(t) {
  try {
    const text = await (await fetch(`http://127.0.0.1:${t.status}/stats/prometheus`)).text();
    const byCode = {};
    for (const line of text.split('\n')) {
      if (!line.startsWith('istio_requests_total{')) continue;
      const code = /response_code="(\d+)"/.exec(line)?.[1] ?? '?';
      byCode[code] = (byCode[code] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    return byCode;
  } catch {
    return undefined;
  }
}
