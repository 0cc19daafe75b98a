/** Node's largest timer delay: a longer one fires at once (with a warning), so cap or skip it. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
