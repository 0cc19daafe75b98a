// security.istio.io kinds (AuthorizationPolicy, PeerAuthentication, RequestAuthentication):
// courier does not enforce them yet, so they are loaded only to be listed as not enforced
// (config/not-enforced.ts). Their checks are minimal and every finding is a warning (see
// validateDocument): a policy courier does not enforce must not reject a config directory that
// loaded before security kinds were read.

import { type Checker, keyPath, type Obj } from './checker.js';

const ACTIONS = ['ALLOW', 'DENY', 'AUDIT', 'CUSTOM'] as const;
const MTLS_MODES = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;

/** `selector` (workload labels) and `targetRef`/`targetRefs`, which exclude each other. */
function checkSelection(c: Checker, spec: Obj): void {
  const sel = c.obj(spec.selector, 'spec.selector');
  if (sel) c.labels(sel.matchLabels, 'spec.selector.matchLabels');
  const refs = [
    ...(c.obj(spec.targetRef, 'spec.targetRef') ? ['targetRef'] : []),
    ...((c.arr(spec.targetRefs, 'spec.targetRefs')?.length ?? 0) > 0 ? ['targetRefs'] : []),
  ];
  if (sel && refs.length > 0) c.err('spec', `only one of selector or ${refs.join(', ')} may be set`);
}

export function validateAuthorizationPolicy(c: Checker, spec: Obj): void {
  checkSelection(c, spec);
  const action = c.oneOf(spec.action, 'spec.action', ACTIONS);
  c.arr(spec.rules, 'spec.rules');
  const provider = c.obj(spec.provider, 'spec.provider');
  if (provider) c.str(provider.name, 'spec.provider.name');
  if (action === 'CUSTOM' && !provider) c.err('spec.provider', 'is required for action CUSTOM');
  if (action !== 'CUSTOM' && provider) c.err('spec.provider', 'must only be set for action CUSTOM');
}

export function validatePeerAuthentication(c: Checker, spec: Obj): void {
  const sel = c.obj(spec.selector, 'spec.selector');
  if (sel) c.labels(sel.matchLabels, 'spec.selector.matchLabels');
  const mtls = c.obj(spec.mtls, 'spec.mtls');
  if (mtls) c.oneOf(mtls.mode, 'spec.mtls.mode', MTLS_MODES);
  const ports = c.obj(spec.portLevelMtls, 'spec.portLevelMtls');
  if (!ports) return;
  if (!sel) c.err('spec.portLevelMtls', 'requires a workload selector');
  for (const [port, v] of Object.entries(ports)) {
    const p = keyPath('spec.portLevelMtls', port);
    c.port(port, p);
    const o = c.obj(v, p);
    if (o) c.oneOf(o.mode, `${p}.mode`, MTLS_MODES);
  }
}

export function validateRequestAuthentication(c: Checker, spec: Obj): void {
  checkSelection(c, spec);
  c.arr(spec.jwtRules, 'spec.jwtRules')?.forEach((r, i) => {
    const o = c.obj(r, `spec.jwtRules[${i}]`);
    if (o) c.str(o.issuer, `spec.jwtRules[${i}].issuer`, true);
  });
}
