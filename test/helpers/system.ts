// Tests that drive a system program npm cannot install (the real httpbin under gunicorn, dnsmasq):
// find the program on PATH, or record why not. On a developer's machine a missing program skips
// those tests, with the reason and the apt-get line in the tap output and the skip count in the
// summary; with COURIER_REQUIRE_SYSTEM_TESTS=1 (set by .ci/run, which installs them) it fails.

import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Test } from 'tap';

export interface Requirement {
  /** The Debian/Ubuntu package(s) that provide the program, space-separated: the apt-get line. */
  apt: string;
  /** A further check once the program is found (e.g. that it can load what the test needs); returns why it cannot be used. */
  check?: (path: string) => string | undefined;
}

/** System directories that ordinary users' PATH leaves out; named in the reason when the program sits there. */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function executable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The first executable `name` on `path` (default: this process's PATH), like `command -v`. */
export function findProgram(name: string, path = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    if (executable(file)) return file;
  }
  return undefined;
}

/** Why `name` cannot be used, or undefined with its path when it can. */
export function programStatus(name: string, req: Requirement): { path?: string; missing?: string } {
  const install = `apt-get install -y ${req.apt}`;
  const path = findProgram(name);
  if (!path) {
    const elsewhere = SBIN.map((d) => join(d, name)).find(executable);
    return {
      missing: elsewhere
        ? `${name} is not on PATH (found ${elsewhere}: add its directory to PATH)`
        : `${name} is not installed (${install})`,
    };
  }
  const why = req.check?.(path);
  return why ? { missing: `${why} (${install})` } : { path };
}

/** True when missing system programs fail the run instead of skipping (CI). */
export const systemTestsRequired = (): boolean => process.env.COURIER_REQUIRE_SYSTEM_TESTS === '1';

/**
 * The path of system program `name` when it can be used. Otherwise undefined, after recording on
 * `t` a skip that gives the reason and the apt-get line, or a failure when
 * COURIER_REQUIRE_SYSTEM_TESTS=1. Callers register their tests only when a path comes back.
 */
export function requireProgram(t: Test, name: string, req: Requirement): string | undefined {
  const s = programStatus(name, req);
  if (s.path) return s.path;
  const reason = s.missing as string;
  if (systemTestsRequired()) t.fail(`${reason}; COURIER_REQUIRE_SYSTEM_TESTS=1 makes this a failure`);
  else t.skip(reason, () => {});
  return undefined;
}
