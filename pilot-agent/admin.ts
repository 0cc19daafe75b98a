// The admin API on 127.0.0.1:15000, Envoy's paths: /config_dump, /clusters, /listeners, /ready,
// /server_info, /stats, POST /quitquitquit, /drain_listeners, /logging.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { compile } from '../config/compile/index.js';
import type { Snapshot } from '../config/snapshot.js';
import type { Agent } from './agent.js';

const LOG_LEVELS: Record<string, string> = {
  trace: 'debug',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  warning: 'warn',
  error: 'error',
  critical: 'error',
  off: 'off',
};

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

let cached: { version: string; snap: Snapshot } | undefined;
function snapshotOf(agent: Agent): Snapshot | undefined {
  const a = agent.active;
  if (!a) return undefined;
  if (cached?.version !== a.version)
    cached = { version: a.version, snap: compile(a.resources, agent.identity) };
  return cached.snap;
}

export function describeListeners(s: Snapshot) {
  return s.listeners.map((l) => ({
    name: l.name,
    address: l.address,
    port: l.port,
    protocol: l.protocol,
    kind: l.kind,
    // Envoy's filter_chains: what a connection's first bytes (and SNI) select on this port.
    filter_chains: l.filterChains.map((c) => ({
      transport: c.transport,
      transport_protocol: c.match.transportProtocol,
      server_names: c.match.serverNames,
    })),
    virtual_hosts: l.routes.virtualHosts.map((vh) => ({
      name: vh.name,
      domains: vh.domains,
      routes: vh.routes.map((r) => ({
        name: r.name,
        virtual_service: r.virtualService,
        action:
          r.action.kind === 'route'
            ? { route: r.action.destinations.map((d) => ({ cluster: d.cluster, weight: d.weight })) }
            : r.action.kind === 'redirect'
              ? { redirect: { code: r.action.code } }
              : { direct_response: { status: r.action.status } },
      })),
    })),
  }));
}

export function describeClusters(s: Snapshot, ejected: ReadonlySet<string> = new Set()) {
  return [...s.clusters.values()].map((c) => ({
    name: c.name,
    service: c.host,
    port: c.port,
    subset: c.subset,
    discovery: c.discovery,
    lb_policy: c.lb.kind,
    hash_policy: c.hashPolicy ?? null,
    destination_rule: c.destinationRule ?? null,
    endpoints: c.endpoints.map((e) => {
      const address = e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
      const out = ejected.has(`${c.name}|${address}`);
      return { address, labels: e.labels, weight: e.weight, health: out ? 'EJECTED' : 'HEALTHY' };
    }),
  }));
}

export function adminHandler(agent: Agent) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const post = req.method === 'POST';
    const snap = snapshotOf(agent);
    switch (path) {
      case '/ready':
        res.writeHead(agent.ready ? 200 : 503, { 'content-type': 'text/plain' });
        return res.end(agent.draining ? 'DRAINING\n' : agent.ready ? 'LIVE\n' : 'PRE_INITIALIZING\n');
      case '/server_info':
        return json(res, 200, {
          version: 'courier/0.1.0',
          state: agent.draining ? 'DRAINING' : agent.ready ? 'LIVE' : 'PRE_INITIALIZING',
          uptime_current_epoch: `${Math.floor((Date.now() - agent.startedAt) / 1000)}s`,
          command_line_options: { concurrency: agent.opts.concurrency, mode: agent.opts.mode },
          node: { id: agent.opts.podName, namespace: agent.opts.namespace, labels: agent.opts.labels },
        });
      case '/config_dump':
        return json(res, 200, {
          version: agent.active?.version ?? null,
          loaded_at: agent.active?.loadedAt ?? null,
          identity: agent.identity,
          resources: agent.active?.resources.map((r) => ({
            kind: r.kind,
            namespace: r.namespace,
            name: r.name,
            source: `${r.source.file}[${r.source.index}]`,
            spec: r.spec,
          })),
          warnings: agent.active?.warnings ?? [],
          // TLS material in use: certificates described, keys never shown.
          secrets: agent.secrets(),
          // Each: kind, namespace, name, file, index (document), path (field), message.
          not_enforced: agent.active?.notEnforced ?? [],
          last_rejection: agent.lastRejection ?? null,
          workers: [...agent.workers.values()].map((w) => ({
            id: w.worker.id,
            version: w.version,
            bound: w.bound,
          })),
        });
      case '/certs':
        return json(res, 200, { certificates: agent.secrets() });
      case '/listeners':
        return json(res, 200, snap ? describeListeners(snap) : []);
      case '/clusters': {
        if (!snap) return json(res, 200, []);
        void agent.ejectedEndpoints().then(
          (ejected) => json(res, 200, describeClusters(snap, ejected)),
          () => json(res, 200, describeClusters(snap)),
        );
        return;
      }
      case '/stats':
      case '/stats/prometheus':
        void agent.promText().then(
          (text) => {
            res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
            res.end(text);
          },
          (e: Error) => {
            res.writeHead(500, { 'content-type': 'text/plain' });
            res.end(`${e.message}\n`);
          },
        );
        return;
      case '/quitquitquit':
        if (!post) break;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('OK\n');
        void agent.shutdown(0).then(() => process.exit(0));
        return;
      case '/drain_listeners':
        if (!post) break;
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('OK\n');
        void agent.shutdown(agent.opts.drainMs).then(() => process.exit(0));
        return;
      case '/logging':
        if (!post) break;
        {
          const asked = url.searchParams.get('level');
          // Envoy's level names, mapped onto the agent's four (and off).
          const level = asked === null ? agent.opts.logLevel : LOG_LEVELS[asked];
          if (level === undefined) {
            res.writeHead(400, { 'content-type': 'text/plain' });
            return res.end(
              `error: unknown logger level "${asked}" (trace, debug, info, warning, error, critical, off)\n`,
            );
          }
          agent.opts.logLevel = level;
          res.writeHead(200, { 'content-type': 'text/plain' });
          return res.end(`active loggers: level ${agent.opts.logLevel}\n`);
        }
    }
    res.writeHead(post ? 404 : 404, { 'content-type': 'text/plain' });
    res.end('invalid path\n');
  };
}
