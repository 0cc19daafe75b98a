// TCP proxying for `tcp` filter chains (a Gateway TCP server, or a TLS server terminated first)
// and `tls_passthrough` chains (the still-encrypted connection, chosen by SNI): the destination is
// picked once per connection from the chain's weighted route, an endpoint by the cluster's load
// balancer, and bytes are relayed both ways (Envoy's tcp_proxy).

import type { Socket } from 'node:net';
import type { Listener, TcpFilterChain, TlsPassthroughFilterChain } from '../config/snapshot.js';
import type { ProxyDeps, Runtime } from './deps.js';

export interface TcpProxyOptions {
  readonly deps: ProxyDeps;
  /** The runtime now (a reload swaps it; a connection reads it once, at its start). */
  runtime(): Runtime | undefined;
}

export class TcpProxy {
  constructor(readonly opts: TcpProxyOptions) {}

  /**
   * Proxy one downstream connection. `head`: bytes already read from it (for passthrough, the
   * ClientHello), sent upstream first and in order. `sni`: the requested server name, if any.
   */
  serve(
    _listener: Listener,
    _chain: TcpFilterChain | TlsPassthroughFilterChain,
    down: Socket,
    _head: Buffer,
    _sni: string | undefined,
  ): void {
    down.destroy(); // not implemented yet
  }

  /** Drain: open connections are cut when the drain period ends (TCP has no drain protocol). */
  close(): void {}
}
