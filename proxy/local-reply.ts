// Typed outcomes of the request path that end in a local reply: one status, one body and one
// Envoy response flag per outcome, in one table, so runbooks written for Envoy keep working.

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
  | 'upstream_protocol_error';

interface Reply {
  status: number;
  body: string;
  flag: string;
  details: string;
}

const RESET = 'upstream connect error or disconnect/reset before headers. reset reason: ';

export const LOCAL_REPLIES: Readonly<Record<LocalOutcome, Reply>> = Object.freeze({
  no_route: { status: 404, body: '', flag: 'NR', details: 'route_not_found' },
  no_cluster: { status: 503, body: '', flag: 'NC', details: 'cluster_not_found' },
  no_healthy_upstream: {
    status: 503,
    body: 'no healthy upstream',
    flag: 'UH',
    details: 'no_healthy_upstream',
  },
  connect_failure: {
    status: 503,
    body: `${RESET}connection failure`,
    flag: 'UF',
    details: 'upstream_reset_before_response_started{connection_failure}',
  },
  connection_termination: {
    status: 503,
    body: `${RESET}connection termination`,
    flag: 'UC',
    details: 'upstream_reset_before_response_started{connection_termination}',
  },
  overflow: {
    status: 503,
    body: `${RESET}overflow`,
    flag: 'UO',
    details: 'upstream_reset_before_response_started{overflow}',
  },
  timeout: { status: 504, body: 'upstream request timeout', flag: 'UT', details: 'response_timeout' },
  fault_abort: { status: 503, body: 'fault filter abort', flag: 'FI', details: 'fault_filter_abort' },
  registry_only: { status: 502, body: '', flag: 'NR', details: 'block_all' },
  bad_request: { status: 400, body: 'Bad Request', flag: 'DPE', details: 'http1.codec_error' },
  upstream_protocol_error: {
    status: 503,
    body: `${RESET}protocol error`,
    flag: 'UPE',
    details: 'upstream_reset_before_response_started{protocol_error}',
  },
});
