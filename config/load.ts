// Load a config directory (or files): every *.yaml, *.yml, *.json below it, recursively, hidden
// entries skipped (so a Kubernetes ConfigMap volume with its `..data` symlink works as mounted),
// multi-document YAML. Returns validated resources plus every error, each with file, document
// index, resource and field path. Pure apart from reading the files.
// Kinds: networking.istio.io (validated and served), security.istio.io (loaded so that they are
// listed as not enforced: config/not-enforced.ts), other kinds that change traffic (EnvoyFilter,
// the Gateway API's; kept in `ignored` for that list) and anything else (skipped with a note).

import { readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { SecretDoc } from './credentials.js';
import { type IgnoredDoc, isUnservedKind } from './not-enforced.js';
import {
  type AnyResource,
  type ConfigError,
  ISTIO_KINDS,
  type IstioKind,
  NETWORKING_API_VERSIONS,
  SECURITY_API_VERSIONS,
  SECURITY_KINDS,
} from './types.js';
import { validateDocument } from './validate/index.js';

export interface LoadResult {
  resources: AnyResource[];
  errors: ConfigError[];
  warnings: ConfigError[];
  /** Documents skipped because courier neither uses their kind nor needs to report it. */
  notes: string[];
  /** Documents of kinds courier does not load but which change traffic: listed as not enforced. */
  ignored: IgnoredDoc[];
  files: string[];
  /** `v1` Secret documents (TLS material for `credentialName`), decoded; never listed as resources. */
  secrets: SecretDoc[];
}

const EXT = /\.(ya?ml|json)$/i;

/** networking.istio.io kinds courier knows of but does not load (EnvoyFilter is reported as not
 *  enforced, the others are skipped with a note). */
const OTHER_NETWORKING_KINDS = new Set(['EnvoyFilter', 'WorkloadGroup', 'ProxyConfig']);

function fsMessage(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  switch (err.code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
      return 'permission denied';
    default:
      return err.message;
  }
}

/**
 * Every config file below `path` (or `path` itself), sorted for determinism. Symlinks are
 * followed; a file or directory reached twice (by its real path) is read once.
 */
export function listConfigFiles(
  path: string,
  errors: ConfigError[],
  seenFiles = new Set<string>(),
): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const walk = (p: string, top: boolean) => {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch (e) {
      // A dangling symlink inside a directory is skipped; a missing top-level path is an error.
      if (top) errors.push({ file: p, index: 0, resource: '', path: '', message: fsMessage(e) });
      return;
    }
    if (st.isDirectory()) {
      let real: string;
      try {
        real = realpathSync(p);
      } catch {
        return;
      }
      if (seen.has(real)) return;
      seen.add(real);
      let names: string[];
      try {
        names = readdirSync(p).sort();
      } catch (e) {
        errors.push({ file: p, index: 0, resource: '', path: '', message: fsMessage(e) });
        return;
      }
      for (const n of names) if (!n.startsWith('.')) walk(join(p, n), false);
    } else if (st.isFile() && (top || EXT.test(p))) {
      let real = p;
      try {
        real = realpathSync(p);
      } catch {
        // keep p
      }
      if (seenFiles.has(real)) return;
      seenFiles.add(real);
      out.push(p);
    }
  };
  walk(path, true);
  return out;
}

/** Parse one file's text into raw documents (YAML multi-doc, or JSON). */
export function parseFile(file: string, text: string, errors: ConfigError[]): unknown[] {
  text = text.replace(/^\uFEFF/, '');
  if (/\.json$/i.test(file)) {
    try {
      const v = JSON.parse(text) as unknown;
      return Array.isArray(v) ? v : [v];
    } catch (e) {
      errors.push({
        file,
        index: 0,
        resource: '',
        path: '',
        message: `invalid JSON: ${(e as Error).message}`,
      });
      return [];
    }
  }
  const docs = parseAllDocuments(text, { uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: unknown[] = [];
  list.forEach((d, i) => {
    if (d.errors.length > 0) {
      const e = d.errors[0];
      const where = e?.linePos?.[0] ? ` (line ${e.linePos[0].line}, column ${e.linePos[0].col})` : '';
      errors.push({
        file,
        index: i,
        resource: '',
        path: '',
        message: `invalid YAML: ${e?.message.split('\n')[0] ?? 'parse error'}${where}`,
      });
      out.push(undefined);
      return;
    }
    try {
      out.push(d.toJS({ maxAliasCount: 100 }));
    } catch (e) {
      errors.push({
        file,
        index: i,
        resource: '',
        path: '',
        message: `invalid YAML: ${(e as Error).message}`,
      });
      out.push(undefined);
    }
  });
  return out;
}

const BASE64 = /^[A-Za-z0-9+/\s]*={0,2}\s*$/;

/**
 * A core `v1` Secret: `data` (base64) and `stringData` (text, winning over `data` as the API
 * server merges them). No namespace: the proxy's own (resolved with the credential).
 */
function readSecret(
  doc: Record<string, unknown>,
  at: { file: string; index: number },
  errors: ConfigError[],
): SecretDoc | undefined {
  const meta = isPlainObject(doc.metadata) ? doc.metadata : {};
  const resource = describe(doc);
  const fail = (path: string, message: string) => {
    errors.push({ ...at, resource, path, message });
    return undefined;
  };
  if (typeof meta.name !== 'string' || meta.name === '') return fail('metadata.name', 'is required');
  const data: Record<string, string> = {};
  for (const field of ['data', 'stringData'] as const) {
    const v = doc[field];
    if (v === undefined || v === null) continue;
    if (!isPlainObject(v)) return fail(field, 'must be a mapping of key to value');
    for (const [k, raw] of Object.entries(v)) {
      if (typeof raw !== 'string') return fail(`${field}.${k}`, 'must be a string');
      if (field === 'stringData') data[k] = raw;
      else if (!BASE64.test(raw)) return fail(`${field}.${k}`, 'is not base64');
      else data[k] = Buffer.from(raw, 'base64').toString('utf8');
    }
  }
  const namespace = typeof meta.namespace === 'string' ? meta.namespace : '';
  return Object.freeze({ name: meta.name, namespace, data: Object.freeze(data), source: at });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Namespace and name as far as the raw document says. */
function identify(doc: Record<string, unknown>): { namespace: string; name: string } {
  const meta = isPlainObject(doc.metadata) ? doc.metadata : {};
  return {
    namespace: typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : 'default',
    name: typeof meta.name === 'string' && meta.name ? meta.name : '?',
  };
}

/** `Kind/namespace/name` as far as the raw document says. */
function describe(doc: Record<string, unknown>): string {
  const { namespace, name } = identify(doc);
  return `${String(doc.kind ?? '?')}/${namespace}/${name}`;
}

function isIstioKind(k: unknown): k is IstioKind {
  return typeof k === 'string' && (ISTIO_KINDS as readonly string[]).includes(k);
}

function isSecurityKind(k: unknown): k is IstioKind {
  return typeof k === 'string' && (SECURITY_KINDS as readonly string[]).includes(k);
}

/** Load and validate files and directories. `displayBase` makes file names relative in messages. */
export function loadConfig(
  paths: string[],
  opts: { displayBase?: string; duplicates?: 'error' | 'warning' } = {},
): LoadResult {
  const errors: ConfigError[] = [];
  const warnings: ConfigError[] = [];
  const notes: string[] = [];
  const ignored: IgnoredDoc[] = [];
  const resources: AnyResource[] = [];
  const secrets: SecretDoc[] = [];
  const seenFiles = new Set<string>();
  const files = paths.flatMap((p) => listConfigFiles(p, errors, seenFiles));
  for (const f of files) {
    const display = opts.displayBase ? relative(opts.displayBase, f) || f : f;
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      errors.push({ file: display, index: 0, resource: '', path: '', message: (e as Error).message });
      continue;
    }
    const docs = parseFile(display, text, errors);
    docs.forEach((raw, index) => {
      if (raw === undefined || raw === null) return; // empty document or already reported
      const items =
        typeof raw === 'object' && (raw as { kind?: unknown }).kind === 'List'
          ? ((raw as { items?: unknown[] }).items ?? [])
          : [raw];
      for (const doc of items) {
        const at = { file: display, index };
        if (!isPlainObject(doc)) {
          errors.push({
            ...at,
            resource: '',
            path: '',
            message: 'document is not a mapping (expected a Kubernetes object)',
          });
          continue;
        }
        const { kind, apiVersion } = doc;
        const group = typeof apiVersion === 'string' ? apiVersion.split('/')[0] : undefined;
        if (kind === 'Secret' && apiVersion === 'v1') {
          const sec = readSecret(doc, at, errors);
          if (sec) secrets.push(sec);
          continue;
        }
        if (isUnservedKind(apiVersion, kind)) {
          ignored.push({ kind: String(kind), apiVersion: String(apiVersion), ...identify(doc), source: at });
          continue;
        }
        if (group === 'security.istio.io' && isSecurityKind(kind)) {
          // Listed as not enforced, never rejected: an unknown version is a warning.
          if (!SECURITY_API_VERSIONS.includes(apiVersion as string))
            warnings.push({
              ...at,
              resource: describe(doc),
              path: 'apiVersion',
              message: `unsupported version ${JSON.stringify(apiVersion)} (expected ${SECURITY_API_VERSIONS.join(', ')})`,
            });
          const r = validateDocument(doc, at);
          warnings.push(...r.errors, ...r.warnings);
          if (r.resource) resources.push(r.resource);
          continue;
        }
        if (group === 'networking.istio.io' && !isIstioKind(kind)) {
          if (typeof kind === 'string' && OTHER_NETWORKING_KINDS.has(kind))
            notes.push(
              `${display}[${index}]: skipped ${kind} (${String(apiVersion)}): courier does not use this kind`,
            );
          else
            errors.push({
              ...at,
              resource: describe(doc),
              path: 'kind',
              message: `unknown networking.istio.io kind ${JSON.stringify(kind ?? null)} (expected one of ${ISTIO_KINDS.join(', ')})`,
            });
          continue;
        }
        if (isIstioKind(kind) && apiVersion === undefined) {
          errors.push({ ...at, resource: describe(doc), path: 'apiVersion', message: 'is required' });
          continue;
        }
        if (!isIstioKind(kind) || group !== 'networking.istio.io') {
          notes.push(
            `${display}[${index}]: skipped ${String(kind ?? 'document without kind')}${apiVersion ? ` (${String(apiVersion)})` : ''}: not a networking.istio.io kind courier validates`,
          );
          continue;
        }
        if (!NETWORKING_API_VERSIONS.includes(apiVersion as string)) {
          errors.push({
            ...at,
            resource: describe(doc),
            path: 'apiVersion',
            message: `unsupported version ${JSON.stringify(apiVersion)} (expected ${NETWORKING_API_VERSIONS.join(', ')})`,
          });
          continue;
        }
        const r = validateDocument(doc, at);
        errors.push(...r.errors);
        warnings.push(...r.warnings);
        if (r.resource) resources.push(r.resource);
      }
    });
  }
  checkDuplicates(resources, opts.duplicates === 'warning' ? warnings : errors, warnings);
  return { resources, errors, warnings, notes, ignored, files, secrets };
}

/** A repeated `Kind/namespace/name`; for security kinds (never rejected) always a warning. */
function checkDuplicates(resources: AnyResource[], errors: ConfigError[], warnings: ConfigError[]): void {
  const seen = new Map<string, AnyResource>();
  for (const r of resources) {
    const key = `${r.kind}/${r.namespace}/${r.name}`;
    const prev = seen.get(key);
    if (prev) {
      (isSecurityKind(r.kind) ? warnings : errors).push({
        file: r.source.file,
        index: r.source.index,
        resource: key,
        path: 'metadata.name',
        message: `duplicate resource (also defined in ${prev.source.file}[${prev.source.index}])`,
      });
    } else seen.set(key, r);
  }
}
