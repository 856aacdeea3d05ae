/**
 * The closed set of shard log records. Every change to a shard's state is exactly one of these,
 * appended to the shard's log and then applied by `ShardState.apply`. Records carry intent, not
 * outcome: `JobFired`-style decisions (misfire, overlap, idempotency) are made inside `apply`, so
 * every replica that applies the same records reaches the same state and the same answers.
 *
 * `at` is shard time (ms since epoch): the leader's clock corrected to the replicas' median clock,
 * stamped by the shard's leader whoever built the record, never decreasing within a shard
 * (docs/replication.md, "Time").
 */
import type { LogLine } from "../client/protocol.js";
import type { EnqueueSpec } from "./types.js";

export interface RecordBase {
  at: number;
}

/**
 * Who asked for a change: the token's role, and its name when the token file gives one (the audit
 * trail's principal; the tenant is the record's own). Logs written before the trail have none.
 */
export interface Actor {
  role: string;
  name?: string;
}

/** A change a user asked for: audited (audit.ts). */
export interface AuditedBase extends RecordBase {
  by?: Actor;
}

export interface JobPutRecord extends AuditedBase {
  type: "job.put";
  tenant: string;
  jobId: string;
  /**
   * The normalized JobSpec as JSON. A string, not an object: equal definitions are interned by
   * this text, and replaying a log of a million puts decodes a million short strings instead of
   * a million nested maps (restart time).
   */
  specJson: string;
  /** If-Match: the version the client expects; null for an unconditional put. */
  ifMatch: number | null;
}

export interface JobDeleteRecord extends AuditedBase {
  type: "job.delete";
  tenant: string;
  jobId: string;
  cancelRunning: boolean;
}

export interface JobPauseRecord extends AuditedBase {
  type: "job.pause" | "job.resume";
  tenant: string;
  jobId: string;
}

export interface JobTriggerRecord extends AuditedBase {
  type: "job.trigger";
  tenant: string;
  jobId: string;
  /** Chosen by the leader so that the id is the same on every replica. */
  executionId: string;
  payload: unknown;
  hasPayload: boolean;
  idempotencyKey: string | null;
}

export interface JobBackfillRecord extends AuditedBase {
  type: "job.backfill";
  tenant: string;
  jobId: string;
  fromMs: number;
  toMs: number;
}

export interface EnqueueRecord extends RecordBase {
  type: "exec.enqueue";
  tenant: string;
  executionId: string;
  spec: EnqueueSpec;
}

/**
 * Ad-hoc enqueues bound for one shard, from one batch request: one log entry for all of them (an
 * entry's framing, checksum, replication and bookkeeping cost as much as a small item's spec).
 * Applied as the same enqueues one after another at the record's time; each item has its result.
 */
export interface EnqueueBatchRecord extends RecordBase {
  type: "exec.enqueue-batch";
  tenant: string;
  items: Array<{ executionId: string; spec: EnqueueSpec }>;
}

export interface CancelRecord extends AuditedBase {
  type: "exec.cancel";
  tenant: string;
  executionId: string;
}

/** An execution (tenant + id) as records name it. */
export interface ExecutionRef {
  tenant: string;
  executionId: string;
}

/**
 * The leader hands ready executions to a worker. Each item is checked again at apply (still
 * ready, due, under its job's limit); those that pass become `claimed` with a new fence and a
 * lease. Only then does the assignment leave the node.
 */
export interface ClaimRecord extends RecordBase {
  type: "exec.claim";
  workerId: string;
  items: ExecutionRef[];
}

export type ReportKind = "started" | "heartbeat" | "succeeded" | "failed";

export interface ReportItem extends ExecutionRef {
  fence: number;
  kind: ReportKind;
  result?: unknown;
  error?: unknown;
  /** For `failed`: false makes it a dead letter at once. */
  retryable?: boolean;
  /** For `heartbeat`: the progress value it carried, if any (the attempt keeps the last). */
  progress?: unknown;
  /** For `succeeded` and `failed`: the attempt's ctx.log lines, within ATTEMPT_LOG_BOUNDS, and how many were dropped. */
  logs?: LogLine[];
  logsDropped?: number;
}

/** Worker reports, batched. Each is accepted only with the attempt's current fence. */
export interface ReportRecord extends RecordBase {
  type: "exec.report";
  workerId: string;
  items: ReportItem[];
}

/** A dead letter becomes a new execution. */
export interface ReplayRecord extends AuditedBase {
  type: "exec.replay";
  tenant: string;
  executionId: string;
  newExecutionId: string;
}

/**
 * Time passes: fire what is due by `horizon`, make due executions ready, expire old history.
 * Bounded work each. `horizon` ≥ `at` lets the leader commit fires a few ms before they are due.
 */
export interface TickRecord extends RecordBase {
  type: "tick";
  horizon?: number;
}

/**
 * A new leader's first record in its epoch. It changes nothing; committing it commits every
 * earlier entry the leader adopted (Raft counts replicas only for entries of the current epoch).
 */
export interface LeaderRecord extends RecordBase {
  type: "leader";
  nodeId: string;
  epoch: number;
}

export type ShardRecord =
  | LeaderRecord
  | JobPutRecord
  | JobDeleteRecord
  | JobPauseRecord
  | JobTriggerRecord
  | JobBackfillRecord
  | EnqueueRecord
  | EnqueueBatchRecord
  | CancelRecord
  | ClaimRecord
  | ReportRecord
  | ReplayRecord
  | TickRecord;
