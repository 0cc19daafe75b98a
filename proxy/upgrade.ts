// Upgrade requests (WebSocket and others) take the request path like any request -- virtual
// host, route, CORS, redirects and direct responses, faults, the weighted destination, the hash
// key, rewrites, header operations and forwarding headers -- and are counted and logged like any
// request (code 101, logged when the tunnel closes). Only the last step differs: the request goes
// upstream with its Upgrade header, and once the upstream answers 101 the two sockets are piped
// both ways. An upstream that answers without upgrading has its response passed on; local
// replies are written to the raw socket, which then closes.

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Listener } from '../config/snapshot.js';
import type { ProxyDeps, Runtime } from './deps.js';
import { handleRequest } from './request-path.js';
import { SocketResponse } from './tunnel.js';

/** Entry from the listener's 'upgrade' event. */
export function handleUpgrade(
  rt: Runtime,
  listener: Listener,
  req: IncomingMessage,
  sock: Socket,
  head: Buffer,
  deps: ProxyDeps,
): void {
  sock.on('error', () => sock.destroy());
  handleRequest(rt, listener, req, new SocketResponse(sock), deps, { sock, head });
}
