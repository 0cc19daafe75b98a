// Typed outcomes of the request path that end in a local reply: one status, one body and one
// Envoy response flag per outcome, in one table, so runbooks written for Envoy keep working.

import { tlsFailureReason } from './upstream-tls.js';

export type LocalOutcome =
  | 'no_route'
  | 'no_cluster'
  | 'no_healthy_upstream'
  | 'connect_failure'
  | 'connection_termination'
  | 'overflow'
  | 'timeout'
  | 'fault_abort'
  | 'registry_only'
  | 'bad_request'
  | 'upstream_protocol_error'
  | 'rbac_denied';

interface Reply {
  status: number;
  body: string;
  flag: string;
  details: string;
  /** Envoy's reset reason, for a failure of the upstream request before its response headers. */
  reset?: string;
}

const BEFORE_HEADERS = 'upstream connect error or disconnect/reset before headers. ';
const RESET = `${BEFORE_HEADERS}reset reason: `;

/** An upstream reset before headers, in Envoy's words (router.cc, resetReasonToString). */
function resetReply(flag: string, reason: string): Reply {
  return {
    status: 503,
    body: `${RESET}${reason}`,
    flag,
    details: `upstream_reset_before_response_started{${reason.replaceAll(' ', '_')}}`,
    reset: reason,
  };
}

/**
 * Body and details of an upstream reset as Envoy words them for this request: `retried and the
 * latest reset reason` once a retry went out, the reset reason of the last attempt (a connect
 * timeout is `connection timeout`), and the transport failure reason when there is one, e.g.
 * `... reset reason: remote connection failure, transport failure reason: delayed connect error:
 * Connection refused` and details
 * `upstream_reset_before_response_started{remote_connection_failure|delayed_connect_error:_Connection_refused}`.
 */
export function resetWords(
  r: Reply,
  retried: boolean,
  reason: string | undefined,
  transportFailure: string | undefined,
): { body: string; details: string } {
  const why = reason ?? (r.reset as string);
  const tail = transportFailure ? `, transport failure reason: ${transportFailure}` : '';
  const detail = `${why}${transportFailure ? `|${transportFailure}` : ''}`.replaceAll(' ', '_');
  return {
    body: `${BEFORE_HEADERS}${retried ? 'retried and the latest ' : ''}reset reason: ${why}${tail}`,
    details: `upstream_reset_before_response_started{${detail}}`,
  };
}

/** errno names to the strerror text Envoy puts after `delayed connect error: `. */
const CONNECT_ERRORS: Record<string, string> = {
  ECONNREFUSED: 'Connection refused',
  EHOSTUNREACH: 'No route to host',
  ENETUNREACH: 'Network is unreachable',
  ECONNRESET: 'Connection reset by peer',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  ENOENT: 'No such file or directory',
  EACCES: 'Permission denied',
};

/**
 * The reset reason and transport failure reason of a connect failure, from its error (or just its
 * code): a TCP connect error as `delayed connect error: <strerror>`, a TLS handshake or certificate
 * failure as Envoy's `TLS_error:|<code>:SSL routines:OPENSSL_internal:<REASON>:TLS_error_end`.
 */
export function connectFailure(
  e: string | (Error & { code?: string | undefined; transportFailure?: string | undefined }) | undefined,
): { reason: string; transport?: string } {
  const code = typeof e === 'string' ? e : e?.code;
  if (code === 'ETIMEDOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') return { reason: 'connection timeout' };
  const tls =
    typeof e === 'object' ? (e.transportFailure ?? tlsFailureReason(e)) : tlsFailureReason({ code });
  if (tls !== undefined) return { reason: 'remote connection failure', transport: tls };
  const text = code ? CONNECT_ERRORS[code] : undefined;
  if (text) return { reason: 'remote connection failure', transport: `delayed connect error: ${text}` };
  return { reason: 'remote connection failure' };
}

export const LOCAL_REPLIES: Readonly<Record<LocalOutcome, Reply>> = Object.freeze({
  no_route: { status: 404, body: '', flag: 'NR', details: 'route_not_found' },
  no_cluster: { status: 503, body: '', flag: 'NC', details: 'cluster_not_found' },
  no_healthy_upstream: {
    status: 503,
    body: 'no healthy upstream',
    flag: 'UH',
    details: 'no_healthy_upstream',
  },
  connect_failure: resetReply('UF', 'remote connection failure'),
  connection_termination: resetReply('UC', 'connection termination'),
  overflow: resetReply('UO', 'overflow'),
  timeout: { status: 504, body: 'upstream request timeout', flag: 'UT', details: 'response_timeout' },
  fault_abort: { status: 503, body: 'fault filter abort', flag: 'FI', details: 'fault_filter_abort' },
  registry_only: { status: 502, body: '', flag: 'NR', details: 'block_all' },
  bad_request: { status: 400, body: 'Bad Request', flag: 'DPE', details: 'http1.codec_error' },
  upstream_protocol_error: resetReply('UPE', 'protocol error'),
  // Envoy's RBAC filter sets no response flag; the details name the policy (once there is one).
  rbac_denied: { status: 403, body: 'RBAC: access denied', flag: '', details: 'rbac_access_denied' },
});
