// The `courier` command. Each subcommand returns an exit code; nothing here throws to the user.

import { loadConfig } from '../config/load.js';
import { formatNotEnforced, notEnforced } from '../config/not-enforced.js';
import { formatError } from '../config/types.js';
import { explain, parseExplainArgs } from './explain.js';
import { kubeInjectCommand } from './kube-inject.js';
import { UsageError } from './options.js';
import { proxyConfigCommand } from './proxy-config.js';

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

const stdio: Io = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
};

const USAGE = `usage:
  courier validate PATH...
  courier explain --config-dir DIR [--mode router|sidecar] [--labels k=v,...] [--namespace NS]
                  [--sni NAME] [--credentials-dir DIR] METHOD URL [-H 'name: value']...
  courier explain --config-dir DIR [...] tcp://HOST:PORT | tls://SNI:PORT
  courier kube-inject -f FILE
  courier proxy-config routes|clusters|listeners|endpoints|secrets [--admin URL] [-o json]`;

export function validateCommand(paths: string[], io: Io = stdio): number {
  if (paths.length === 0) {
    io.err('courier validate: at least one file or directory is required');
    return 2;
  }
  // Files given together may be alternatives (like Istio's samples): a repeated name is a warning here,
  // while a running proxy's config directory rejects it.
  const r = loadConfig(paths, { duplicates: 'warning' });
  for (const n of r.notes) io.err(`note: ${n}`);
  for (const w of r.warnings) io.err(`warning: ${formatError(w)}`);
  // What would change security or traffic but is not done yet, for any proxy this config may serve.
  for (const n of notEnforced(r)) io.err(`warning: ${formatNotEnforced(n)}`);
  for (const e of r.errors) io.out(formatError(e));
  if (r.errors.length > 0) {
    io.err(`${r.errors.length} error(s) in ${r.files.length} file(s)`);
    return 1;
  }
  io.err(`${r.resources.length} resource(s) in ${r.files.length} file(s) valid`);
  return 0;
}

export async function runCourier(argv: string[], io: Io = stdio): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'validate':
        return validateCommand(rest, io);
      case 'explain': {
        const r = explain(parseExplainArgs(rest));
        for (const l of r.lines) (r.ok ? io.out : io.err)(l);
        return r.ok ? 0 : 1;
      }
      case 'kube-inject':
        return kubeInjectCommand(rest, io.out);
      case 'proxy-config':
        return await proxyConfigCommand(rest, io.out);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        io.out(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        io.err(`courier: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    io.err(`courier ${cmd}: ${(e as Error).message}`);
    return e instanceof UsageError ? 2 : 1;
  }
}
