/**
 * The shapes the core works with, after the API edge has validated and normalized the input.
 * Times are milliseconds since the epoch (UTC). Nothing here does I/O.
 */

export type DstRepeated = "first" | "last" | "both";
export type DstMissing = "shift" | "skip";

export interface DstPolicy {
  /** A local time that happens twice (autumn): fire at the first, the last, or both instants. */
  repeated: DstRepeated;
  /** A local time that does not exist (spring): fire at the transition instant, or not at all. */
  missing: DstMissing;
}

export type Trigger =
  | { kind: "cron"; expr: string; timezone: string; dst: DstPolicy }
  | { kind: "every"; everyMs: number }
  | { kind: "at"; atMs: number }
  | { kind: "none" };

/** When and how often a job fires; everything `nextFire` and `preview` need. */
export interface Schedule {
  trigger: Trigger;
  /**
   * `every` fires at anchorMs + k * everyMs, k ≥ 0; the anchor is startAtMs, else the time the
   * shard applied the put that set this spec (null until then: see `anchoredAt`; other triggers
   * leave it null). A job's first fire is the anchor itself only when startAt was given; without
   * it the first fire is one interval after the put (see Job.firstFire).
   */
  anchorMs: number | null;
  startAtMs: number | null;
  endAtMs: number | null;
  jitterMs: number;
}

export type BackoffType = "exponential" | "fixed" | "linear";
export type BackoffJitter = "none" | "full" | "equal";

export interface RetryPolicy {
  maxAttempts: number;
  backoff: {
    type: BackoffType;
    initialMs: number;
    maxMs: number;
    multiplier: number;
    jitter: BackoffJitter;
  };
}

export type OverlapPolicy = "allow" | "skip" | "buffer-one" | "queue" | "replace";

export interface ConcurrencyPolicy {
  /** null: no limit. */
  limit: number | null;
  overlap: OverlapPolicy;
}

export type MisfirePolicyName = "run-once" | "skip" | "run-all";

export interface MisfirePolicy {
  policy: MisfirePolicyName;
  graceMs: number;
}

/** A job definition as the state machine stores it (normalized: every default filled in). */
export interface JobSpec {
  queue: string;
  schedule: Schedule;
  maxRuns: number | null;
  payload: unknown;
  priority: number;
  retry: RetryPolicy;
  timeoutMs: number;
  leaseMs: number;
  concurrency: ConcurrencyPolicy;
  pauseOnFailure: boolean;
  misfire: MisfirePolicy;
  labels: Record<string, string>;
}

/**
 * An ad-hoc enqueue, normalized. `runAtMs` is `runAt` as given; `delayMs` counts from the
 * enqueue's time on its shard (`enqueueRunAt`). Records written before that carry both.
 */
export interface EnqueueSpec {
  queue: string;
  payload: unknown;
  runAtMs: number | null;
  delayMs: number | null;
  idempotencyKey: string | null;
  priority: number;
  retry: RetryPolicy;
  timeoutMs: number;
  leaseMs: number;
  orderingKey: string | null;
}

export const DEFAULT_RETRY: RetryPolicy = Object.freeze({
  maxAttempts: 3,
  backoff: Object.freeze({
    type: "exponential",
    initialMs: 1_000,
    maxMs: 300_000,
    multiplier: 2,
    jitter: "full",
  }),
}) as RetryPolicy;

export const DEFAULT_DST: DstPolicy = Object.freeze({ repeated: "first", missing: "shift" }) as DstPolicy;
export const DEFAULT_CONCURRENCY: ConcurrencyPolicy = Object.freeze({ limit: null, overlap: "allow" }) as ConcurrencyPolicy;
export const DEFAULT_MISFIRE: MisfirePolicy = Object.freeze({ policy: "run-once", graceMs: 60_000 }) as MisfirePolicy;
export const DEFAULT_PRIORITY = 5;
export const DEFAULT_TIMEOUT_MS = 300_000;
export const DEFAULT_LEASE_MS = 30_000;
