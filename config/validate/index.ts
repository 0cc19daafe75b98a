// Validate one raw document of a known Istio networking (or security) kind into a typed Resource.

import {
  type AnyResource,
  type ConfigError,
  type DocSource,
  type IstioKind,
  SECURITY_KINDS,
} from '../types.js';
import { Checker, isDns1123Label, isDns1123Subdomain, isObj } from './checker.js';
import { validateDestinationRule } from './destination-rule.js';
import { validateGateway } from './gateway.js';
import { checkKnownFields } from './known-fields.js';
import {
  validateAuthorizationPolicy,
  validatePeerAuthentication,
  validateRequestAuthentication,
} from './security.js';
import { validateServiceEntry, validateSidecar, validateWorkloadEntry } from './service-entry.js';
import { validateVirtualService } from './virtual-service.js';

const BY_KIND: Record<IstioKind, (c: Checker, spec: Record<string, unknown>) => void> = {
  Gateway: validateGateway,
  VirtualService: validateVirtualService,
  DestinationRule: validateDestinationRule,
  ServiceEntry: validateServiceEntry,
  WorkloadEntry: validateWorkloadEntry,
  Sidecar: validateSidecar,
  AuthorizationPolicy: validateAuthorizationPolicy,
  PeerAuthentication: validatePeerAuthentication,
  RequestAuthentication: validateRequestAuthentication,
};

export interface DocResult {
  resource?: AnyResource;
  errors: ConfigError[];
  warnings: ConfigError[];
}

export function validateDocument(doc: Record<string, unknown>, source: DocSource): DocResult {
  const kind = doc.kind as IstioKind;
  const c = new Checker();
  const meta = c.obj(doc.metadata, 'metadata', true);
  const name = meta ? c.str(meta.name, 'metadata.name', true) : undefined;
  if (name !== undefined && !isDns1123Subdomain(name))
    c.err('metadata.name', `invalid name ${JSON.stringify(name)} (must be a lowercase RFC 1123 subdomain)`);
  else if (name !== undefined && kind === 'Gateway' && !isDns1123Label(name))
    c.err('metadata.name', `invalid gateway name ${JSON.stringify(name)} (must be a DNS label: no dots)`);
  const nsRaw = meta ? c.str(meta.namespace, 'metadata.namespace') : undefined;
  if (nsRaw !== undefined && nsRaw !== '' && !isDns1123Label(nsRaw))
    c.err('metadata.namespace', `invalid namespace ${JSON.stringify(nsRaw)}`);
  const namespace = nsRaw || 'default';
  const labels = meta ? (c.labels(meta.labels, 'metadata.labels') ?? {}) : {};
  // A security policy may have no spec at all (Istio reads it as an empty one: for an
  // AuthorizationPolicy, "allow nothing").
  const security = SECURITY_KINDS.includes(kind);
  const spec = security && doc.spec === undefined ? {} : c.obj(doc.spec, 'spec', true);
  if (spec) BY_KIND[kind](c, spec);
  checkKnownFields(c, doc, kind);
  const resource = `${kind}/${namespace}/${name ?? '?'}`;
  const wrap = (e: { path: string; message: string }): ConfigError => ({
    file: source.file,
    index: source.index,
    resource,
    path: e.path,
    message: e.message,
  });
  // Security kinds are only listed as not enforced: what is wrong in them is a warning, and they
  // load as far as they can be identified, so that none is left out of that list.
  const errors = security ? [] : c.errors.map(wrap);
  const warnings = [...(security ? c.errors.map(wrap) : []), ...c.warnings.map(wrap)];
  if (errors.length > 0 || !spec || !isObj(spec)) return { errors, warnings };
  if (name === undefined && !security) return { errors, warnings };
  return {
    errors,
    warnings,
    resource: {
      kind,
      apiVersion: String(doc.apiVersion),
      name: name ?? '?',
      namespace,
      labels,
      spec,
      source,
    } as unknown as AnyResource,
  };
}
