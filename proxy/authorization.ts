// The authorization stage: after the route is chosen and before any upstream work, as Envoy's
// RBAC filter runs after routing. It decides nothing yet (AuthorizationPolicy is reported as not
// enforced, config/not-enforced.ts); mesh security will decide here, from the request and the
// connection's peer identity.

import type { Exchange } from './exchange.js';

export type AuthzDecision = 'allow' | 'deny';

export function authorize(_x: Exchange): AuthzDecision {
  return 'allow';
}
