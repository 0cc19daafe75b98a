// npm does not link a package's own bins into its node_modules/.bin; the README promises
// node_modules/.bin/pilot-agent and node_modules/.bin/courier after `npm install`, so link them here.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const binDir = join(root, 'node_modules', '.bin');
mkdirSync(binDir, { recursive: true });
for (const [name, target] of Object.entries(pkg.bin)) {
  const abs = join(root, target);
  if (!existsSync(abs)) throw new Error(`bin target missing after build: ${target}`);
  chmodSync(abs, 0o755);
  const link = join(binDir, name);
  rmSync(link, { force: true });
  symlinkSync(relative(binDir, abs), link);
}
