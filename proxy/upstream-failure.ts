// How an upstream attempt failed, in the classes the retry policy and the local replies speak
// of: a connect failure (with Envoy's reset and transport failure reasons kept on the exchange),
// a reset before headers, a protocol error, a timeout or a circuit-breaker overflow.

import type { Exchange } from './exchange.js';
import { connectFailure, type LocalOutcome } from './local-reply.js';

export type Failure = 'connect' | 'reset' | 'timeout' | 'overflow' | 'protocol';
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOENT',
]);

export function classify(err: Error & { code?: string }): Failure {
  const code = err.code ?? '';
  if (CONNECT_CODES.has(code)) return 'connect';
  if (
    err.name === 'HTTPParserError' ||
    code.startsWith('HPE_') ||
    code === 'UND_ERR_HEADERS_OVERFLOW' ||
    code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'
  )
    return 'protocol';
  return 'reset';
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
    const c = connectFailure(err?.code);
    x.resetReason = c.reason;
    x.transportFailure = c.transport;
  } else {
    x.resetReason = undefined;
    x.transportFailure = undefined;
  }
}
