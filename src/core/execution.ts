/**
 * One execution: a fire of a job, a manual trigger, or an ad-hoc enqueue.
 *
 *   scheduled ──(its time comes / a concurrency slot frees)──► ready ──► claimed ──► running
 *       │                                                        │          │          │
 *       └──────────────► canceled ◄──────────────────────────────┴──────────┴──────────┤
 *   skipped (dropped by a misfire or overlap policy, recorded for the audit)            ▼
 *                                                                        succeeded | failed
 *
 * The class doubles as a timing-wheel node (scheduled executions wait in the shard's wheel), so
 * waiting costs no extra allocation.
 */
import type { WheelTimer } from "./timing-wheel.js";
import { DEFAULT_RETRY, type RetryPolicy } from "./types.js";

export type ExecutionState =
  | "scheduled"
  | "ready"
  | "claimed"
  | "running"
  | "succeeded"
  | "failed"
  | "canceled"
  | "skipped";

const TERMINAL: ReadonlySet<ExecutionState> = new Set(["succeeded", "failed", "canceled", "skipped"]);

export function isTerminal(state: ExecutionState): boolean {
  return TERMINAL.has(state);
}

/** Held by a worker under a lease. */
export function isLeased(state: ExecutionState): boolean {
  return state === "claimed" || state === "running";
}

export interface AttemptInfo {
  attempt: number;
  workerId: string;
  claimedAt: number;
  finishedAt: number | null;
  outcome: "succeeded" | "failed" | "timed-out" | "lease-expired" | "canceled" | null;
  error: unknown;
}

export interface ExecutionInit {
  id: string;
  tenant: string;
  jobId: string | null;
  queue: string;
  scheduledAt: number;
  createdAt: number;
  payload: unknown;
  priority: number;
  retry: RetryPolicy;
  timeoutMs: number;
  leaseMs: number;
  orderingKey: string | null;
  idempotencyKey: string | null;
}

/**
 * Most executions take the default retry policy. A replayed or restored one carries its own
 * decoded copy; sharing the one frozen default saves two objects per execution held in memory.
 */
function isDefaultRetry(r: RetryPolicy): boolean {
  if (r === DEFAULT_RETRY) return true;
  const b = r.backoff;
  const d = DEFAULT_RETRY.backoff;
  return r.maxAttempts === DEFAULT_RETRY.maxAttempts && b.type === d.type && b.initialMs === d.initialMs && b.maxMs === d.maxMs && b.multiplier === d.multiplier && b.jitter === d.jitter;
}

export class Execution implements WheelTimer {
  // Timing-wheel links, owned by the wheel.
  dueAt = 0;
  wheelNext: WheelTimer | null = null;
  wheelPrev: WheelTimer | null = null;
  wheelSlot: unknown | null = null;

  readonly id: string;
  readonly tenant: string;
  readonly jobId: string | null;
  readonly queue: string;
  readonly scheduledAt: number;
  readonly createdAt: number;
  readonly payload: unknown;
  readonly priority: number;
  readonly retry: RetryPolicy;
  readonly timeoutMs: number;
  readonly leaseMs: number;
  readonly orderingKey: string | null;
  readonly idempotencyKey: string | null;

  state: ExecutionState = "scheduled";
  /** Why it was skipped or canceled (`misfire`, `overlap`, `superseded`, `replaced`, `job-deleted`, `canceled`). */
  reason: string | null = null;
  /** When its time comes, it still waits for a slot under its job's concurrency limit. */
  waitingForSlot = false;
  /** It waits behind an earlier execution with the same ordering key. */
  waitingForOrder = false;
  readyAt = 0;
  /** Ready-queue bookkeeping (see ready-queue.ts); not part of the replicated state. */
  readySeq = 0;
  queued = false;
  staged = false;
  /** The current attempt's holder, its fence, and when its lease and its run time end. */
  workerId: string | null = null;
  fence = 0;
  /** The incarnation of its job that created it (0 for ad-hoc work); see ShardState.jobOf. */
  jobIncarnation = 0;
  leaseDeadline = 0;
  attemptDeadline = 0;
  startedAt: number | null = null;
  finishedAt: number | null = null;
  attempt = 0;
  attempts: AttemptInfo[] | null = null;
  result: unknown = undefined;

  constructor(init: ExecutionInit) {
    this.id = init.id;
    this.tenant = init.tenant;
    this.jobId = init.jobId;
    this.queue = init.queue;
    this.scheduledAt = init.scheduledAt;
    this.createdAt = init.createdAt;
    this.payload = init.payload;
    this.priority = init.priority;
    this.retry = isDefaultRetry(init.retry) ? DEFAULT_RETRY : init.retry;
    this.timeoutMs = init.timeoutMs;
    this.leaseMs = init.leaseMs;
    this.orderingKey = init.orderingKey;
    this.idempotencyKey = init.idempotencyKey;
  }

  get terminal(): boolean {
    return isTerminal(this.state);
  }

  get leased(): boolean {
    return isLeased(this.state);
  }
}
