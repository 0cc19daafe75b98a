// Outlier detection (Envoy's consecutive_5xx / consecutive_gateway_failure /
// consecutive_local_origin_failure as Istio configures them): an endpoint that fails the
// configured number of times in a row is ejected for baseEjectionTime × ejections, never more
// than maxEjectionPercent of the cluster; ejected endpoints are skipped by every load balancer
// (they carry `ejected = true`). A sweep every `interval` returns endpoints whose time is up.
// Success-rate ejection is off, as in Istio. Istio's default minHealthPercent 0 disables panic.

import type { OutlierDetectionConfig } from '../config/snapshot.js';
import type { Endpoint } from './lb/types.js';

interface HostState {
  /** Ejected by the detector (the truth); `Endpoint.ejected` is the effective flag LBs read. */
  out: boolean;
  consecutive5xx: number;
  consecutiveGateway: number;
  consecutiveLocal: number;
  ejections: number;
  ejectedUntil: number;
}

/** Result of one attempt against an endpoint: an HTTP status, or a local-origin failure. */
export type AttemptResult = number | 'local';

const MAX_EJECTION_MS = 300_000;

export class OutlierDetector {
  private readonly state = new WeakMap<Endpoint, HostState>();
  ejectionsTotal = 0;

  constructor(private readonly now: () => number) {}

  private host(ep: Endpoint): HostState {
    let s = this.state.get(ep);
    if (!s) {
      s = {
        out: false,
        consecutive5xx: 0,
        consecutiveGateway: 0,
        consecutiveLocal: 0,
        ejections: 0,
        ejectedUntil: 0,
      };
      this.state.set(ep, s);
    }
    return s;
  }

  /** Record an attempt's result; may eject the endpoint. */
  record(cfg: OutlierDetectionConfig, endpoints: readonly Endpoint[], ep: Endpoint, r: AttemptResult): void {
    const s = this.host(ep);
    let status: number;
    if (r === 'local') {
      if (cfg.splitExternalLocalOriginErrors) {
        s.consecutiveLocal++;
        if (
          cfg.consecutiveLocalOriginFailures > 0 &&
          s.consecutiveLocal >= cfg.consecutiveLocalOriginFailures
        )
          this.eject(cfg, endpoints, s);
        return;
      }
      status = 503; // without the split, local-origin failures count as a 503 from the host
    } else status = r;
    if (status >= 500) {
      s.consecutive5xx++;
      if (status >= 502 && status <= 504) s.consecutiveGateway++;
      else s.consecutiveGateway = 0;
      const by5xx = cfg.consecutive5xxErrors > 0 && s.consecutive5xx >= cfg.consecutive5xxErrors;
      const byGw = cfg.consecutiveGatewayErrors > 0 && s.consecutiveGateway >= cfg.consecutiveGatewayErrors;
      if (by5xx || byGw) this.eject(cfg, endpoints, s);
    } else {
      s.consecutive5xx = 0;
      s.consecutiveGateway = 0;
      if (r !== 'local') s.consecutiveLocal = 0;
    }
  }

  private eject(cfg: OutlierDetectionConfig, endpoints: readonly Endpoint[], s: HostState): void {
    s.consecutive5xx = 0;
    s.consecutiveGateway = 0;
    s.consecutiveLocal = 0;
    if (s.out) return;
    const ejected = endpoints.filter((e) => this.state.get(e)?.out).length;
    // Envoy: eject only while the ejected share stays within maxEjectionPercent, but always allow one.
    if (ejected > 0 && ((ejected + 1) / endpoints.length) * 100 > cfg.maxEjectionPercent) return;
    s.ejections++;
    s.ejectedUntil =
      this.now() +
      Math.min(cfg.baseEjectionTimeMs * s.ejections, Math.max(MAX_EJECTION_MS, cfg.baseEjectionTimeMs));
    s.out = true;
    this.ejectionsTotal++;
    this.applyPanic(cfg, endpoints);
  }

  /**
   * Envoy's panic threshold, which Istio sets to minHealthPercent (default 0: never): while the
   * healthy share is below it, every endpoint takes traffic again, ejected or not.
   */
  private applyPanic(cfg: OutlierDetectionConfig, endpoints: readonly Endpoint[]): void {
    let out = 0;
    for (const e of endpoints) if (this.state.get(e)?.out) out++;
    const panic =
      cfg.minHealthPercent > 0 && ((endpoints.length - out) / endpoints.length) * 100 < cfg.minHealthPercent;
    for (const e of endpoints) e.ejected = !panic && this.state.get(e)?.out === true;
  }

  /** The interval sweep: return endpoints whose ejection time has passed; decay the multiplier. */
  sweep(endpoints: readonly Endpoint[], cfg?: OutlierDetectionConfig): void {
    const now = this.now();
    for (const ep of endpoints) {
      const s = this.state.get(ep);
      if (!s) continue;
      if (s.out) {
        if (now >= s.ejectedUntil) {
          s.out = false;
          ep.ejected = false;
        }
      } else if (s.ejections > 0 && s.consecutive5xx === 0 && s.consecutiveLocal === 0) s.ejections--;
    }
    if (cfg) this.applyPanic(cfg, endpoints);
  }

  describe(ep: Endpoint): { ejections: number; ejected_until_ms: number } | undefined {
    const s = this.state.get(ep);
    return s
      ? {
          ejections: s.ejections,
          ejected_until_ms: s.out ? Math.max(0, s.ejectedUntil - this.now()) : 0,
        }
      : undefined;
  }
}
