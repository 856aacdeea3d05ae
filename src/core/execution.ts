/**
 * One execution: a fire of a job, a manual trigger, or an ad-hoc enqueue.
 *
 *   scheduled ──(its time comes / a concurrency slot frees)──► ready ──► claimed ──► running
 *       │                                                        │          │          │
 *       └──────────────► canceled ◄──────────────────────────────┴──────────┴──────────┤
 *   skipped (dropped by a misfire or overlap policy, recorded for the audit)            ▼
 *                                                                        succeeded | failed
 *
 * An execution doubles as a timing-wheel node (scheduled executions wait in the shard's wheel), so
 * waiting costs no extra allocation.
 */
import type { LogLine } from "../client/protocol.js";
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
  /** The last progress value a heartbeat of this attempt carried (ctx.heartbeat(progress)). */
  progress?: unknown;
  /** What the handler logged (ctx.log), as its final report brought it; bounded (ATTEMPT_LOG_BOUNDS). */
  logs?: LogLine[];
  logsDropped?: number;
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

export interface Execution extends WheelTimer {
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

  state: ExecutionState;
  /** Why it was skipped or canceled (`misfire`, `overlap`, `superseded`, `replaced`, `job-deleted`, `canceled`). */
  reason: string | null;
  /** When its time comes, it still waits for a slot under its job's concurrency limit. */
  waitingForSlot: boolean;
  /** It waits behind an earlier execution with the same ordering key. */
  waitingForOrder: boolean;
  readyAt: number;
  /** Ready-queue bookkeeping (see ready-queue.ts); not part of the replicated state. */
  readySeq: number;
  queued: boolean;
  staged: boolean;
  /** The current attempt's holder, its fence, and when its lease and its run time end. */
  workerId: string | null;
  fence: number;
  /** The incarnation of its job that created it (0 for ad-hoc work); see ShardState.jobOf. */
  jobIncarnation: number;
  leaseDeadline: number;
  attemptDeadline: number;
  startedAt: number | null;
  finishedAt: number | null;
  /** Its place among the shard's executions that ended at the same `finishedAt` (see ShardState). */
  finishSeq: number;
  attempt: number;
  attempts: AttemptInfo[] | null;
  result: unknown;
}

/**
 * A new execution, made by an object literal rather than a class on purpose: V8 tracks where
 * literals are allocated and, once most objects from one site outlive their first scavenges,
 * allocates that site's objects in the old generation at once (allocation-site pretenuring).
 * Executions stay in memory for their retention, so as class instances every one was copied
 * twice by the young-generation GC, and those copies were most of a node's scavenge pauses at
 * 1,000 executions/s. Class instances get no such tracking.
 */
export function createExecution(init: ExecutionInit): Execution {
  return {
    // Timing-wheel links, owned by the wheel.
    dueAt: 0,
    wheelNext: null,
    wheelPrev: null,
    wheelSlot: null,
    id: init.id,
    tenant: init.tenant,
    jobId: init.jobId,
    queue: init.queue,
    scheduledAt: init.scheduledAt,
    createdAt: init.createdAt,
    payload: init.payload,
    priority: init.priority,
    retry: isDefaultRetry(init.retry) ? DEFAULT_RETRY : init.retry,
    timeoutMs: init.timeoutMs,
    leaseMs: init.leaseMs,
    orderingKey: init.orderingKey,
    idempotencyKey: init.idempotencyKey,
    state: "scheduled",
    reason: null,
    waitingForSlot: false,
    waitingForOrder: false,
    readyAt: 0,
    readySeq: 0,
    queued: false,
    staged: false,
    workerId: null,
    fence: 0,
    jobIncarnation: 0,
    leaseDeadline: 0,
    attemptDeadline: 0,
    startedAt: null,
    finishedAt: null,
    finishSeq: 0,
    attempt: 0,
    attempts: null,
    result: undefined,
  };
}

/**
 * What a finished execution is remembered by: the fields its view shows. An `Execution` is one;
 * so is what the history store reads back from disk. `shard` is where it lived (the history's
 * file), absent for a live execution read from memory.
 */
export type ExecutionFacts = Pick<
  Execution,
  | "id" | "tenant" | "jobId" | "queue" | "state" | "reason" | "scheduledAt" | "createdAt" | "readyAt" | "startedAt"
  | "finishedAt" | "finishSeq" | "attempt" | "attempts" | "payload" | "priority" | "result" | "orderingKey" | "idempotencyKey"
>;

/** A plain copy of a finished execution's facts, safe to hand to another thread. */
export function factsOf(e: Execution): ExecutionFacts {
  return {
    id: e.id,
    tenant: e.tenant,
    jobId: e.jobId,
    queue: e.queue,
    state: e.state,
    reason: e.reason,
    scheduledAt: e.scheduledAt,
    createdAt: e.createdAt,
    readyAt: e.readyAt,
    startedAt: e.startedAt,
    finishedAt: e.finishedAt,
    finishSeq: e.finishSeq,
    attempt: e.attempt,
    attempts: e.attempts,
    payload: e.payload,
    priority: e.priority,
    result: e.result,
    orderingKey: e.orderingKey,
    idempotencyKey: e.idempotencyKey,
  };
}
