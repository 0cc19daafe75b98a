// Where config comes from. Today a directory (polled, plus SIGHUP); later the Kubernetes API.
// The watcher compares a cheap signature (paths, sizes, mtimes, inodes) so a ConfigMap `..data`
// symlink swap is seen like any edit.

import { statSync } from 'node:fs';
import { type LoadResult, listConfigFiles, loadConfig } from '../config/load.js';
import type { ConfigError } from '../config/types.js';

export interface ConfigSource {
  readonly description: string;
  load(): LoadResult;
  /** Calls `onChange` (debounced) when the source may have changed. Returns a stop function. */
  watch(onChange: () => void): () => void;
  /** Files and directories outside the source that the config refers to (TLS material): watched too. */
  watchAlso(paths: readonly string[]): void;
  /** Where relative file paths in the config are read from, if anywhere. */
  readonly baseDir?: string;
}

export class DirectorySource implements ConfigSource {
  private lastSig = '';
  private extra: readonly string[] = [];

  constructor(
    readonly dir: string,
    private readonly pollMs = 500,
  ) {}

  get baseDir(): string {
    return this.dir;
  }

  watchAlso(paths: readonly string[]): void {
    this.extra = paths;
    this.lastSig = this.signature();
  }

  get description(): string {
    return `directory ${this.dir}`;
  }

  load(): LoadResult {
    this.lastSig = this.signature();
    return loadConfig([this.dir], { displayBase: this.dir });
  }

  private signature(): string {
    const errs: ConfigError[] = [];
    const files = [...listConfigFiles(this.dir, errs), ...this.extra];
    const parts = files.map((f) => {
      try {
        const st = statSync(f);
        return `${f}:${st.size}:${st.mtimeMs}:${st.ino}`;
      } catch {
        return `${f}:gone`;
      }
    });
    return parts.join('|') + errs.map((e) => e.message).join('|');
  }

  watch(onChange: () => void): () => void {
    let debounce: NodeJS.Timeout | undefined;
    const t = setInterval(() => {
      const sig = this.signature();
      if (sig === this.lastSig) return;
      this.lastSig = sig;
      if (debounce) clearTimeout(debounce);
      debounce = setTimeout(onChange, 200);
    }, this.pollMs);
    t.unref();
    return () => {
      clearInterval(t);
      if (debounce) clearTimeout(debounce);
    };
  }
}
