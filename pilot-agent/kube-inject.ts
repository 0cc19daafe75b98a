// `courier kube-inject -f FILE`: add the courier sidecar (container, ports, probe, downward-API
// env, config volume) to every Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob and
// Pod of a multi-document manifest. Other documents are printed exactly as they were (comments
// included). Honours `sidecar.istio.io/inject: "false"`; already injected workloads are left
// unchanged, so running it twice gives the same output.

import { readFileSync } from 'node:fs';
import { type Document, isMap, parseAllDocuments, type YAMLMap } from 'yaml';
import { UsageError } from './options.js';

export const SIDECAR_NAME = 'courier-proxy';
export const CONFIG_VOLUME = 'courier-config';
const STATUS_ANNOTATION = 'sidecar.istio.io/status';
const INJECT_ANNOTATION = 'sidecar.istio.io/inject';

export interface InjectOptions {
  image: string;
  configMap: string;
}

export const DEFAULT_INJECT: InjectOptions = {
  image: 'ghcr.io/courier-proxy/courier:0.1.0',
  configMap: 'courier-mesh-config',
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Path from the document root to the pod template's `metadata`/`spec` parent, per kind. */
const POD_PATHS: Record<string, string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

function sidecarContainer(opts: InjectOptions, labels: Obj, appPort: number | undefined, podSpec: Obj): Obj {
  const labelArg = Object.entries(labels)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(',');
  const args = ['proxy', 'sidecar', '--config-dir', '/etc/courier/config'];
  if (labelArg) args.push('--labels', labelArg);
  if (appPort) args.push('--app-port', String(appPort));
  void podSpec;
  return {
    name: SIDECAR_NAME,
    image: opts.image,
    args,
    ports: [
      { containerPort: 15090, name: 'http-envoy-prom', protocol: 'TCP' },
      { containerPort: 15021, name: 'health', protocol: 'TCP' },
    ],
    env: [
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'INSTANCE_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'SERVICE_ACCOUNT', valueFrom: { fieldRef: { fieldPath: 'spec.serviceAccountName' } } },
    ],
    readinessProbe: {
      httpGet: { path: '/healthz/ready', port: 15021 },
      initialDelaySeconds: 0,
      periodSeconds: 15,
      timeoutSeconds: 3,
      failureThreshold: 4,
    },
    securityContext: {
      runAsUser: 1337,
      runAsGroup: 1337,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
    },
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '2', memory: '1Gi' } },
    volumeMounts: [{ name: CONFIG_VOLUME, mountPath: '/etc/courier/config', readOnly: true }],
  };
}

function getIn(o: unknown, path: string[]): unknown {
  let cur = o;
  for (const k of path) {
    if (!isObj(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

/** Inject into one parsed document (plain JS). Returns the new object, or undefined to keep the original. */
export function injectObject(doc: unknown, opts: InjectOptions): Obj | undefined {
  if (!isObj(doc) || typeof doc.kind !== 'string') return undefined;
  const path = POD_PATHS[doc.kind];
  if (!path) return undefined;
  const out = structuredClone(doc);
  const template = path.length ? getIn(out, path) : out;
  if (!isObj(template)) return undefined;
  if (!isObj(template.metadata)) template.metadata = {};
  const meta = template.metadata as Obj;
  const spec = template.spec;
  if (!isObj(spec) || !Array.isArray(spec.containers)) return undefined;
  const annotations = isObj(meta.annotations) ? meta.annotations : undefined;
  const workloadAnn = isObj(getIn(doc, ['metadata', 'annotations']))
    ? (getIn(doc, ['metadata', 'annotations']) as Obj)
    : {};
  if (
    String(annotations?.[INJECT_ANNOTATION] ?? workloadAnn[INJECT_ANNOTATION] ?? '').toLowerCase() === 'false'
  )
    return undefined;
  if (spec.hostNetwork === true) return undefined; // Istio does not inject host-network pods
  const containers = spec.containers as Obj[];
  if (containers.some((c) => c.name === SIDECAR_NAME)) return undefined; // already injected
  const labels = isObj(meta.labels) ? meta.labels : {};
  const firstPort = containers
    .flatMap((c) => (Array.isArray(c.ports) ? (c.ports as Obj[]) : []))
    .map((p) => p.containerPort)
    .find((p): p is number => typeof p === 'number');
  containers.push(sidecarContainer(opts, labels, firstPort, spec));
  if (!Array.isArray(spec.volumes)) spec.volumes = [];
  (spec.volumes as Obj[]).push({ name: CONFIG_VOLUME, configMap: { name: opts.configMap } });
  meta.annotations = {
    ...(annotations ?? {}),
    [STATUS_ANNOTATION]: JSON.stringify({ containers: [SIDECAR_NAME], volumes: [CONFIG_VOLUME] }),
    'prometheus.io/scrape': 'true',
    'prometheus.io/port': '15020',
    'prometheus.io/path': '/stats/prometheus',
  };
  meta.labels = { ...labels, 'security.istio.io/tlsMode': 'istio' };
  return out;
}

/** Inject into a multi-document manifest; untouched documents keep their exact text. */
export function injectManifest(text: string, opts: InjectOptions = DEFAULT_INJECT): string {
  const docs = parseAllDocuments(text) as Document[] | { errors: unknown[] };
  if (!Array.isArray(docs)) throw new Error('not a YAML manifest');
  // The source text of each document, so untouched documents are printed byte for byte.
  let chunks = text.split(/^---[ \t]*$/m);
  if (chunks.length === docs.length + 1 && chunks[0]?.trim() === '') chunks = chunks.slice(1);
  const sources = chunks.length === docs.length ? chunks : undefined;
  const parts: string[] = [];
  for (const [i, d] of docs.entries()) {
    if (d.errors.length > 0) throw new Error(`document ${i}: ${d.errors[0]?.message.split('\n')[0]}`);
    const js = d.toJS() as unknown;
    const injected = injectObject(js, opts);
    if (!injected) {
      const src = sources?.[i]?.replace(/^\n/, '');
      parts.push((src ?? String(d)).replace(/\n+$/, '\n'));
      continue;
    }
    // Keep the document's leading comments; re-render its body.
    const fresh = d.clone();
    fresh.contents = fresh.createNode(injected) as YAMLMap;
    if (isMap(d.contents) && d.contents.commentBefore)
      fresh.contents.commentBefore = d.contents.commentBefore;
    parts.push(String(fresh).replace(/\n+$/, '\n'));
  }
  return parts
    .map((p) => p.replace(/^---\n/, ''))
    .filter((p) => p.trim() !== '')
    .join('---\n');
}

export function kubeInjectCommand(argv: string[], out: (s: string) => void): number {
  let file: string | undefined;
  const opts = { ...DEFAULT_INJECT };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-f' || a === '--filename') file = argv[++i];
    else if (a === '--image') opts.image = argv[++i] ?? opts.image;
    else if (a === '--config-map') opts.configMap = argv[++i] ?? opts.configMap;
    else throw new UsageError(`kube-inject: unknown argument ${JSON.stringify(a)}`);
  }
  if (!file) throw new UsageError('courier kube-inject -f FILE [--image IMAGE] [--config-map NAME]');
  const text = readFileSync(file === '-' ? 0 : file, 'utf8');
  out(injectManifest(text, opts).replace(/\n$/, ''));
  return 0;
}
