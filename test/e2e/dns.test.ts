// End to end: a ServiceEntry `resolution: DNS` for a made-up host, served by a real local DNS
// server (Debian's dnsmasq on a loopback port, TTL 1 s) that the real pilot-agent is pointed at
// with COURIER_DNS_SERVERS. The record moves from 127.0.0.2 to 127.0.0.3 (hosts file rewritten,
// SIGHUP) and traffic follows; with the DNS server gone, the last good address keeps serving.

import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { freePort, gatewayYaml, request, sleep, startAgent, writeConfigDir } from '../helpers/procs.js';
import { requireProgram } from '../helpers/system.js';

const HOST = 'svc.courier.test';

/** A named upstream on `address` (a 127/8 loopback address); port 0 picks one. */
async function upstreamOn(name: string, address: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': name });
      res.end(name);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => resolve());
  });
  return server;
}

/** Two upstreams on the same port, one on 127.0.0.2 and one on 127.0.0.3. */
async function upstreamPair(): Promise<{ port: number; a: Server; b: Server }> {
  for (let i = 0; ; i++) {
    const a = await upstreamOn('a', '127.0.0.2', 0);
    const port = (a.address() as { port: number }).port;
    try {
      return { port, a, b: await upstreamOn('b', '127.0.0.3', port) };
    } catch (e) {
      a.close();
      if (i >= 5) throw e;
    }
  }
}

interface Dnsmasq {
  port: number;
  proc: ChildProcess;
  output: () => string;
  point: (address: string) => void;
  stop: () => Promise<void>;
}

async function startDnsmasq(bin: string, address: string): Promise<Dnsmasq> {
  // dnsmasq drops root privileges after start-up: the hosts file must stay readable on SIGHUP.
  const dir = mkdtempSync(join(tmpdir(), 'courier-dns-'));
  chmodSync(dir, 0o755);
  const hosts = join(dir, 'hosts');
  const write = (a: string) => {
    writeFileSync(hosts, `${a} ${HOST}\n`);
    chmodSync(hosts, 0o644);
  };
  write(address);
  for (let i = 0; ; i++) {
    const port = await freePort();
    const proc = spawn(
      bin,
      [
        '--keep-in-foreground',
        '--conf-file=/dev/null',
        '--pid-file=',
        `--port=${port}`,
        '--listen-address=127.0.0.1',
        '--bind-interfaces',
        '--no-resolv',
        '--no-hosts',
        `--addn-hosts=${hosts}`,
        '--local-ttl=1',
        '--log-facility=-',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    proc.stdout?.on('data', (d) => {
      out += d;
    });
    proc.stderr?.on('data', (d) => {
      out += d;
    });
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    // Ready when it answers.
    const { Resolver } = await import('node:dns/promises');
    const r = new Resolver({ timeout: 200, tries: 1 });
    r.setServers([`127.0.0.1:${port}`]);
    let up = false;
    for (let k = 0; k < 50 && proc.exitCode === null && proc.signalCode === null; k++) {
      try {
        if ((await r.resolve4(HOST)).includes(address)) {
          up = true;
          break;
        }
      } catch {
        await sleep(50);
      }
    }
    if (up)
      return {
        port,
        proc,
        output: () => out,
        point: (a) => {
          write(a);
          proc.kill('SIGHUP');
        },
        stop: async () => {
          if (proc.exitCode !== null || proc.signalCode !== null) return;
          proc.kill('SIGTERM');
          await exited;
        },
      };
    proc.kill('SIGKILL');
    await exited;
    if (i >= 3) throw new Error(`dnsmasq did not come up:\n${out}`);
  }
}

// dnsmasq-base is Debian's dnsmasq binary without the system service. Without it these tests are
// skipped with that line, or fail under COURIER_REQUIRE_SYSTEM_TESTS=1 (CI).
const bin = requireProgram(t, 'dnsmasq', { apt: 'dnsmasq-base' });
if (bin) {
  const { port, a, b } = await upstreamPair();
  const dns = await startDnsmasq(bin, '127.0.0.2');
  const gwPort = await freePort();
  const config = `${gatewayYaml(gwPort)}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: svc, namespace: default}
spec:
  hosts: [${HOST}]
  location: MESH_EXTERNAL
  ports: [{number: ${port}, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: svc, namespace: default}
spec:
  hosts: ["*"]
  gateways: [gw]
  http:
  - route: [{destination: {host: ${HOST}, port: {number: ${port}}}}]
`;
  const agent = await startAgent({
    configDir: writeConfigDir({ 'config.yaml': config }),
    env: { COURIER_DNS_SERVERS: `127.0.0.1:${dns.port}` },
  });
  t.teardown(async () => {
    await agent.stop();
    await dns.stop();
    a.closeAllConnections();
    b.closeAllConnections();
    a.close();
    b.close();
  });

  const who = async () => {
    const r = await request(gwPort, '/', { host: HOST });
    return r.status === 200 ? r.body : `${r.status}`;
  };
  /** Poll until `want` answers; returns the milliseconds it took. */
  const waitFor = async (want: string, ms: number) => {
    const start = Date.now();
    let last = '';
    while (Date.now() - start < ms) {
      last = await who();
      if (last === want) return Date.now() - start;
      await sleep(50);
    }
    throw new Error(`no answer from ${want} within ${ms}ms (last ${last})\n${agent.logs()}\n${dns.output()}`);
  };
  const burst = async (n: number) => {
    const seen: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const w = await who();
      seen[w] = (seen[w] ?? 0) + 1;
    }
    return seen;
  };

  t.test('traffic goes to the address the record names', async (t) => {
    await waitFor('a', 5_000);
    t.strictSame(await burst(20), { a: 20 });
  });

  t.test('traffic follows a changed record within the TTL', async (t) => {
    dns.point('127.0.0.3');
    const took = await waitFor('b', 5_000);
    t.ok(took < 5_000, `followed the record in ${took}ms`);
    t.strictSame(await burst(20), { b: 20 }, 'only the new address once switched');
  });

  t.test('with the DNS server gone, the last good address keeps serving', async (t) => {
    await dns.stop();
    await sleep(2_500); // a couple of failed refreshes (TTL 1 s)
    t.strictSame(await burst(20), { b: 20 });
    t.notMatch(agent.logs(), /uncaught|unhandled/i);
  });
}
