// Durations as Istio's CRDs accept them: Go-style `1h30m`, `1.5s`, `500ms`, `24h` (and the
// protobuf JSON form `1.5s`, which is a subset). Parsed to milliseconds.

const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Go's time.Duration limit (2^63-1 ns), which Kubernetes' CEL duration() also enforces. */
const MAX_MS = 9_223_372_036_854;

const PART = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/y;

/** Milliseconds, or undefined when the text is not a duration. Negative durations are rejected. */
export function parseDuration(text: unknown): number | undefined {
  if (typeof text !== 'string' || text.length === 0) return undefined;
  if (text === '0') return 0;
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const at = PART.lastIndex;
    const m = PART.exec(text);
    if (!m || m.index !== at) return undefined;
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  }
  return total;
}

/** Istio's ValidateDuration: at least 1ms and whole milliseconds. Returns an error message or undefined. */
export function checkDuration(text: unknown, opts: { allowZero?: boolean } = {}): string | undefined {
  const ms = parseDuration(text);
  if (ms === undefined) return `invalid duration ${JSON.stringify(text)} (use forms like 1.5s, 500ms, 24h)`;
  if (ms > MAX_MS) return `invalid duration ${JSON.stringify(text)} (out of range)`;
  if (ms === 0 && opts.allowZero) return undefined;
  if (ms < 1) return 'duration must be greater than 1ms';
  if (Math.abs(ms - Math.round(ms)) > 1e-9) return 'only durations to ms precision are supported';
  return undefined;
}
