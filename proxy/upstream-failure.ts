// How an upstream attempt failed, in the classes the retry policy and the local replies speak
// of: a connect failure (with Envoy's reset and transport failure reasons kept on the exchange),
// a reset before headers, a protocol error, a timeout or a circuit-breaker overflow.

import type { Exchange } from './exchange.js';
import { connectFailure, type LocalOutcome } from './local-reply.js';
import { type FailureKind, failureKind } from './upstream-pool.js';

export type Failure = FailureKind | 'overflow';

/** The failure class of a transport error (one classifier, shared with the pools). */
export function classify(err: Error & { code?: string }): Failure {
  return failureKind(err);
}

export const FAILURE_OUTCOME = {
  connect: 'connect_failure',
  reset: 'connection_termination',
  timeout: 'timeout',
  overflow: 'overflow',
  protocol: 'upstream_protocol_error',
} as const;

/** The local reply for an upstream failure (connect, reset, protocol) before a response; a
 * connect failure's reset and transport failure reasons are kept on the exchange. */
export function failureOutcome(x: Exchange, err: Error & { code?: string }): LocalOutcome {
  const f = classify(err);
  noteFailure(x, f, err);
  return FAILURE_OUTCOME[f];
}

export function noteFailure(x: Exchange, f: Failure, err: (Error & { code?: string }) | undefined): void {
  if (f === 'connect') {
    const c = connectFailure(err);
    x.resetReason = c.reason;
    x.transportFailure = c.transport;
  } else {
    x.resetReason = undefined;
    x.transportFailure = undefined;
  }
}
