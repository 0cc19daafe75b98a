// Filter chains shared by the gateway and sidecar listener builders.

import type { HttpFilterChain, RouteTable } from '../snapshot.js';

/** The chains of a plaintext HTTP listener: one `http` chain, taking every non-TLS connection. */
export function plaintextHttpChains(routes: RouteTable): readonly HttpFilterChain[] {
  return Object.freeze([
    Object.freeze({
      transport: 'http',
      name: routes.name,
      match: Object.freeze({ transportProtocol: 'raw_buffer', serverNames: Object.freeze([]) }),
      routes,
    } as const),
  ]);
}
