// Helpers shared by the LB policies: effective weights, availability, and retry host avoidance.
import type { Endpoint } from './types.js';

/** Envoy's `host_selection_retry_max_attempts` as Istio sets it (with the `previous_hosts`
 * predicate): a retry re-picks up to this many times to find a host it has not tried yet, then
 * accepts a repeat. */
export const HOST_SELECTION_MAX_ATTEMPTS = 5;

/** A policy's single, non-avoiding pick. */
export interface SinglePicker {
  pickOnce(): Endpoint | undefined;
}

/** Weight used for balancing: WorkloadEntry weights are positive integers; an unset (0), negative or
 * non-finite weight counts as the default 1, as Istio does for weight 0. */
export function effectiveWeight(e: Endpoint): number {
  const w = e.weight;
  return w > 0 && Number.isFinite(w) ? w : 1;
}

export function allWeightsEqual(endpoints: readonly Endpoint[]): boolean {
  const first = endpoints[0];
  if (first === undefined) return true;
  const w = effectiveWeight(first);
  for (const e of endpoints) if (effectiveWeight(e) !== w) return false;
  return true;
}

/** Endpoint indices sorted by `key` (code-unit order, not locale; index breaks ties), so tables
 * built in this order depend on the endpoint set, not on the order a snapshot lists it in. */
export function keyOrder(endpoints: readonly Endpoint[]): number[] {
  return endpoints
    .map((_, i) => i)
    .sort((a, b) => {
      const ka = endpoints[a]!.key;
      const kb = endpoints[b]!.key;
      return ka < kb ? -1 : ka > kb ? 1 : a - b;
    });
}

/** First non-ejected endpoint at or after `start`, wrapping; -1 when all are ejected. O(n): for rare
 * fallback paths only. */
export function nextAvailable(endpoints: readonly Endpoint[], start: number): number {
  const n = endpoints.length;
  for (let k = 0; k < n; k++) {
    const i = (start + k) % n;
    if (!endpoints[i]!.ejected) return i;
  }
  return -1;
}

/**
 * Picks with retry avoidance: when `attempted` is non-empty, re-pick (at most
 * HOST_SELECTION_MAX_ATTEMPTS picks in all) while the pick is a host already tried, then accept the
 * last pick. No allocation; the common case (`attempted` empty) is one `pickOnce`.
 */
export function pickAvoiding(
  picker: SinglePicker,
  attempted: ReadonlySet<Endpoint> | undefined,
): Endpoint | undefined {
  let e = picker.pickOnce();
  if (e === undefined || attempted === undefined || attempted.size === 0) return e;
  for (let i = 1; i < HOST_SELECTION_MAX_ATTEMPTS && attempted.has(e); i++) {
    e = picker.pickOnce() ?? e;
  }
  return e;
}
