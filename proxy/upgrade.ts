// Upgrade requests (WebSocket and others): routed like any request, then the two sockets are
// piped both ways once the upstream answers 101.

import { type IncomingMessage, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import { splitHostPort } from '../config/names.js';
import type { Listener } from '../config/snapshot.js';
import { connectionTokens, HOP_BY_HOP, normalizePath } from './http-util.js';
import { LOCAL_REPLIES, type LocalOutcome } from './local-reply.js';
import { matchRoute, type ProxyDeps, pickDestination, type Runtime } from './request-path.js';

function reject(sock: Socket, outcome: LocalOutcome): void {
  const r = LOCAL_REPLIES[outcome];
  sock.end(
    `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status]}\r\ncontent-length: ${r.body.length}\r\nconnection: close\r\n\r\n${r.body}`,
  );
}

export function handleUpgrade(
  rt: Runtime,
  listener: Listener,
  req: IncomingMessage,
  sock: Socket,
  head: Buffer,
  deps: ProxyDeps,
): void {
  sock.on('error', () => sock.destroy());
  const authority = req.headers.host ?? '';
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = normalizePath(q < 0 ? url : url.slice(0, q));
  if (!path) return reject(sock, 'bad_request');
  const vh = listener.routes.lookup(authority);
  if (!vh) return reject(sock, 'no_route');
  const view = {
    method: req.method ?? 'GET',
    path,
    query: q < 0 ? '' : url.slice(q + 1),
    authority,
    scheme: 'http',
    headers: req.headers,
  };
  let pool: Dispatcher | undefined;
  let timeoutMs = 0;
  if (vh.fallback === 'passthrough') {
    const { host, port } = splitHostPort(authority);
    pool = deps.manager.passthroughPool(host, port ?? 80);
  } else {
    const route = vh.fallback ? undefined : matchRoute(vh, view as never);
    if (route?.action.kind !== 'route') return reject(sock, 'no_route');
    const dest = pickDestination(route.action, deps.random);
    const cluster = dest ? rt.clusters.get(dest.cluster) : undefined;
    if (!cluster) return reject(sock, 'no_cluster');
    const ep = cluster.lb.pick({});
    if (!ep) return reject(sock, 'no_healthy_upstream');
    pool = deps.manager.pool(cluster.config, ep);
    timeoutMs = route.timeoutMs;
  }
  const headers: Record<string, string | string[]> = {};
  const drop = connectionTokens(req.headers.connection);
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k) || drop.includes(k)) continue;
    headers[k] = v;
  }
  const upgrade = String(req.headers.upgrade ?? 'websocket');
  // Until the upstream answers, the route timeout applies and a client that leaves cancels it.
  let abort: ((err?: Error) => void) | undefined;
  let settled = false;
  let timer: NodeJS.Timeout | undefined;
  const settle = () => {
    settled = true;
    if (timer) clearTimeout(timer);
    sock.off('close', onDownstreamClose);
  };
  const onDownstreamClose = () => {
    settle();
    abort?.();
  };
  sock.once('close', onDownstreamClose);
  if (timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)
    timer = setTimeout(() => {
      settle();
      abort?.();
      reject(sock, 'timeout');
    }, timeoutMs);
  pool.dispatch(
    { method: req.method ?? 'GET', path: url, headers, upgrade } as Dispatcher.DispatchOptions,
    {
      onConnect(a: (err?: Error) => void) {
        abort = a;
        if (settled) a();
      },
      onHeaders() {
        return true;
      },
      onData() {
        return true;
      },
      onComplete() {
        if (settled) return;
        settle();
        reject(sock, 'connection_termination');
      },
      onUpgrade(status: number, raw: Buffer[] | string[] | null, up: Socket) {
        if (settled) return void up.destroy();
        settle();
        let out = `HTTP/1.1 ${status} Switching Protocols\r\n`;
        const r = raw ?? [];
        for (let i = 0; i < r.length; i += 2) out += `${String(r[i])}: ${String(r[i + 1])}\r\n`;
        sock.write(`${out}\r\n`);
        if (head.length > 0) up.write(head);
        up.on('error', () => sock.destroy());
        sock.on('error', () => up.destroy());
        up.pipe(sock);
        sock.pipe(up);
      },
      onError() {
        if (settled) return;
        settle();
        reject(sock, 'connect_failure');
      },
    } as unknown as Dispatcher.DispatchHandler,
  );
}
