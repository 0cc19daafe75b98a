// A CPU quota per proxy (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`; needs root): every target
// is capped to the same fraction of a core, so each saturates below what the load generator and
// the upstream can drive, and req/s compares CPU efficiency instead of the load side's ceiling.
//
// A target enters its group before it execs (a `sh -c 'echo $$ > .../cgroup.procs; exec ...'`
// prefix), so courier's workers and nginx's worker, forked later, are in it too.

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** CFS period: short, so a capped proxy runs in 2-5 ms slices instead of 25-50 ms bursts. */
export const PERIOD_US = 10_000;
/**
 * CPU weight of a capped proxy's group (v1 cpu.shares; v2 cpu.weight, default 1024 / 100): on a
 * shared machine the proxy then gets its quota before other processes on its core do, so each
 * target's req/s is its quota's worth, not what the neighbours left over. The quota bounds what
 * the weight can take from them.
 */
const WEIGHT = { v1: 16_384, v2: 1600 };

const V2 = '/sys/fs/cgroup';
const V1 = '/sys/fs/cgroup/cpu';

function writable(base) {
  const probe = join(base, `courier-bench-probe-${process.pid}`);
  try {
    mkdirSync(probe);
    rmdirSync(probe);
    return true;
  } catch {
    return false;
  }
}

/** 'v2', 'v1' or a reason why no quota can be set. */
export function detectCgroups() {
  try {
    if (readFileSync(join(V2, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('cpu')) {
      if (!writable(V2)) return { ok: false, why: `${V2} is not writable (not root?)` };
      const ctl = join(V2, 'cgroup.subtree_control');
      if (!readFileSync(ctl, 'utf8').split(/\s+/).includes('cpu')) writeFileSync(ctl, '+cpu');
      return { ok: true, kind: 'v2', base: V2 };
    }
  } catch {}
  if (existsSync(join(V1, 'cpu.cfs_quota_us'))) {
    if (!writable(V1)) return { ok: false, why: `${V1} is not writable (not root?)` };
    return { ok: true, kind: 'v1', base: V1 };
  }
  return { ok: false, why: 'no cgroup cpu controller (neither v2 cpu.max nor v1 cpu.cfs_quota_us)' };
}

/**
 * One cgroup for one target: `prefix` starts a command inside it, `set(cores)` caps it (null:
 * no cap), `throttled()` reads how often it was throttled, `remove()` deletes it once empty.
 */
export function cpuGroup(cg, name) {
  const dir = join(cg.base, `courier-bench-${process.pid}-${name.replace(/[^a-z0-9-]/gi, '_')}`);
  mkdirSync(dir, { recursive: true });
  const set = (cores) => {
    if (cg.kind === 'v2') {
      const quota = cores === null ? 'max' : String(Math.max(1000, Math.round(cores * PERIOD_US)));
      writeFileSync(join(dir, 'cpu.max'), `${quota} ${PERIOD_US}`);
    } else {
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
      const quota = cores === null ? -1 : Math.max(1000, Math.round(cores * PERIOD_US));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota));
    }
  };
  set(null);
  try {
    if (cg.kind === 'v2') writeFileSync(join(dir, 'cpu.weight'), String(WEIGHT.v2));
    else writeFileSync(join(dir, 'cpu.shares'), String(WEIGHT.v1));
  } catch {}
  return {
    dir,
    prefix: ['sh', '-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', dir],
    set,
    /** { periods, throttled } so far. */
    throttled() {
      try {
        const stat = readFileSync(join(dir, 'cpu.stat'), 'utf8');
        const get = (k) => Number(new RegExp(`^${k} (\\d+)$`, 'm').exec(stat)?.[1] ?? 0);
        return { periods: get('nr_periods'), throttled: get('nr_throttled') };
      } catch {
        return { periods: 0, throttled: 0 };
      }
    },
    /** Delete the group; retried for a second while its last processes exit. */
    remove() {
      for (let i = 0; i < 20; i++) {
        try {
          rmdirSync(dir);
          return;
        } catch (e) {
          if (e.code === 'ENOENT') return;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
        }
      }
    },
  };
}

/**
 * The quota (cores) at which the fastest target would serve `directRps / headroom`: req/s is its
 * CPU share divided by its CPU time per request while it is CPU-bound. Rounded down to 0.05 core,
 * between 0.05 and 1.
 */
export function autoQuota(directRps, fastestCpuUsPerReq, headroom = 2) {
  if (!directRps || !fastestCpuUsPerReq) return 0.25;
  const q = (directRps * fastestCpuUsPerReq) / 1e6 / headroom;
  return Math.min(1, Math.max(0.05, Math.floor(q * 20 + 1e-9) / 20));
}
