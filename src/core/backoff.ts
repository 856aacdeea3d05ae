/**
 * Retry backoff: the delay before attempt n+1 after attempt n failed.
 *
 * Deterministic: the "random" part of jitter comes from a hash of the execution id and attempt,
 * so every replica that applies the same failure computes the same retry time.
 *
 *   exponential: initialMs * multiplier^(attempt-1), capped at maxMs
 *   linear:      initialMs * attempt, capped at maxMs
 *   fixed:       initialMs
 *   jitter full:  uniform in [0, d];  equal: d/2 + uniform in [0, d/2];  none: d
 *
 * Example: exponential 1 s, multiplier 2, max 5 min, no jitter → 1 s, 2 s, 4 s, 8 s, … 300 s.
 */
import { unitInterval } from "./hash.js";
import type { RetryPolicy } from "./types.js";

/** Delay in ms after failed attempt `attempt` (1-based). */
export function backoffDelayMs(policy: RetryPolicy, attempt: number, executionId: string): number {
  const b = policy.backoff;
  let delay: number;
  switch (b.type) {
    case "fixed":
      delay = b.initialMs;
      break;
    case "linear":
      delay = b.initialMs * attempt;
      break;
    case "exponential":
      delay = b.initialMs * Math.pow(b.multiplier, attempt - 1);
      break;
  }
  delay = Math.min(delay, b.maxMs);
  if (b.jitter === "none") return Math.round(delay);
  const u = unitInterval(`${executionId}#${attempt}`);
  return Math.round(b.jitter === "full" ? u * delay : delay / 2 + (u * delay) / 2);
}

/** Whether a failed attempt may be retried. */
export function canRetry(policy: RetryPolicy, attempt: number, retryable: boolean): boolean {
  return retryable && attempt < policy.maxAttempts;
}
