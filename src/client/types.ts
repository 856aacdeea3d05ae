/**
 * The wire shapes of Cronwheel's HTTP API (docs/api.md), as TypeScript types
 * for the SDK. These are written from the contract, not imported from the server's core: the SDK
 * must keep compiling for users who never load the server.
 *
 * Times: on input any `TimeInput` (a `Date`, integer milliseconds since the epoch, or an RFC 3339
 * string WITH an offset — the server refuses offset-less strings). On output every time is the
 * server's RFC 3339 UTC string (`"2025-03-30T01:00:00.000Z"`), returned as is; parse it with
 * `new Date(s)` or `Date.parse(s)` when you need arithmetic.
 */

/** A time as the SDK accepts it: a Date, ms since the epoch, or RFC 3339 with `Z` or an offset. */
export type TimeInput = Date | number | string;

/** An interval: milliseconds, or a duration string such as `"30s"`, `"5m"`, `"1h30m"`. */
export type DurationInput = number | string;

/** An RFC 3339 UTC time string as the server writes it. */
export type Timestamp = string;

// ---------------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------------

export type DstRepeated = "first" | "last" | "both";
export type DstMissing = "shift" | "skip";

export interface DstPolicy {
  /** A local time that happens twice (autumn): fire at the first, the last, or both instants. */
  repeated: DstRepeated;
  /** A local time that does not exist (spring): fire at the transition, or not at all. */
  missing: DstMissing;
}

export type BackoffType = "exponential" | "fixed" | "linear";
export type BackoffJitter = "none" | "full" | "equal";

export interface BackoffPolicy {
  type: BackoffType;
  initialMs: number;
  maxMs: number;
  multiplier: number;
  jitter: BackoffJitter;
}

/** How failed attempts are retried (server side; unrelated to the SDK's HTTP retries). */
export interface RetryPolicy {
  maxAttempts: number;
  backoff: BackoffPolicy;
}

/** On input, nested policies may be partial: missing members take the server's defaults. */
export interface RetryPolicyInput {
  maxAttempts?: number;
  backoff?: Partial<BackoffPolicy>;
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

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

/**
 * The body of `PUT /v1/jobs/{jobId}`. At most one of `cron`, `every`, `at` (none: the job only
 * runs when triggered). Unknown fields are refused by the server (400 `invalid_argument`).
 */
export interface JobInput {
  /** `[A-Za-z0-9._-]{1,128}`. */
  queue: string;
  /** 5 fields, or 6 with seconds first. */
  cron?: string | null;
  /** IANA zone of the cron; default `UTC`. */
  timezone?: string;
  every?: DurationInput | null;
  at?: TimeInput | null;
  startAt?: TimeInput | null;
  endAt?: TimeInput | null;
  jitterMs?: number;
  dst?: Partial<DstPolicy>;
  maxRuns?: number | null;
  payload?: unknown;
  /** 0–9, default 5. */
  priority?: number;
  retry?: RetryPolicyInput;
  timeoutMs?: number;
  leaseMs?: number;
  concurrency?: Partial<ConcurrencyPolicy>;
  pauseOnFailure?: boolean;
  misfire?: Partial<MisfirePolicy>;
  labels?: Record<string, string>;
}

export type JobState = "active" | "paused" | "completed";

/**
 * A job as the server answers it: the definition with every default filled in, triggers in the
 * shape they were written (`every` always as milliseconds), plus read-only fields. Not a valid
 * PUT body as is: use `jobToInput(job)`.
 */
export interface Job {
  id: string;
  queue: string;
  /** Present for cron jobs, with `timezone` and `dst`. */
  cron?: string;
  timezone?: string;
  dst?: DstPolicy;
  /** Present for interval jobs, in milliseconds. */
  every?: number;
  /** Present for one-time jobs. */
  at?: Timestamp;
  startAt?: Timestamp;
  endAt?: Timestamp;
  jitterMs: number;
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
  version: number;
  state: JobState;
  /** Jitter included; null when paused, completed, or the trigger has no further fire. */
  nextFireAt: Timestamp | null;
  /** Fires that ran. */
  runs: number;
  createdAt: Timestamp;
  updatedAt: Timestamp;
  /** `GET /v1/jobs/{id}` with history on: how its executions ended, since its history began (docs/api.md). */
  counts?: { succeeded: number; failed: number; canceled: number; skipped: number };
  /** `GET /v1/jobs/{id}` with history on: the execution that ended last (skipped fires too), or null. */
  lastRun?: { executionId: string; state: ExecutionState; reason: string | null; scheduledAt: Timestamp; finishedAt: Timestamp; durationMs: number | null } | null;
}

/** `DELETE /v1/jobs/{jobId}` answers the job as it was, marked deleted. */
export interface DeletedJob extends Job {
  deleted: true;
}

export interface PutJobResult {
  job: Job;
  /** true: 201, a new job; false: 200, an existing job was replaced. */
  created: boolean;
}

export interface PutJobOptions {
  /** The version the job must have now (`If-Match`); a mismatch, or no such job, is `conflict`. */
  ifMatch?: number | string;
}

export interface DeleteJobOptions {
  /** Cancel the job's ready and running executions too (default: they finish). */
  cancelRunning?: boolean;
}

export interface TriggerOptions {
  /** The execution's payload; omitted (undefined) means the job's own payload. `null` is a payload. */
  payload?: unknown;
  /** The same key within 24 h returns the first execution (`created: false`). */
  idempotencyKey?: string;
}

export interface JobFilter {
  queue?: string;
  /** One label filter, `"key=value"`. */
  label?: string;
  cursor?: string;
  /** Page size, 1–1000 (server default 100). */
  limit?: number;
}

export interface JobPage {
  jobs: Job[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

export type PreviewMark = "dst-repeated" | "dst-shifted" | "jitter" | "window-start";

export interface PreviewFire {
  /** When it fires (jitter included). */
  at: Timestamp;
  /** The trigger's own time. */
  nominal: Timestamp;
  marks: PreviewMark[];
}

export interface Preview {
  fires: PreviewFire[];
}

export interface BackfillInput {
  from: TimeInput;
  /** Not in the future; `to - from` at most 366 days. */
  to: TimeInput;
}

export interface BackfillResult {
  created: number;
  skipped: number;
  existing: number;
  /** More than 10,000 fires: the rest were not created. */
  truncated: boolean;
}

// ---------------------------------------------------------------------------------------------
// Executions
// ---------------------------------------------------------------------------------------------

export type ExecutionState = "scheduled" | "ready" | "claimed" | "running" | "succeeded" | "failed" | "canceled" | "skipped";

export type AttemptOutcome = "succeeded" | "failed" | "timed-out" | "lease-expired" | "canceled";

export interface ExecutionAttempt {
  attempt: number;
  workerId: string;
  claimedAt: Timestamp;
  finishedAt?: Timestamp;
  outcome?: AttemptOutcome;
  error?: unknown;
  /** The last progress a heartbeat of this attempt carried (`ctx.heartbeat(progress)`). */
  progress?: unknown;
  /** What the handler logged with `ctx.log` (sent with the attempt's final report), oldest first. */
  logs?: Array<{ at: Timestamp; level: "debug" | "info" | "warn" | "error"; msg: string }>;
  /** Lines logged past the bound (100 lines, 16 KiB) and dropped. */
  logsDropped?: number;
}

/** Why an execution was skipped or canceled, or (a dead letter) how its last attempt failed. */
export type ExecutionReason = "misfire" | "overlap" | "superseded" | "replaced" | "job-deleted" | "canceled" | "retries-exhausted" | "non-retryable" | "timed-out" | "lease-expired";

export interface Execution {
  id: string;
  /** Absent for ad-hoc executions. */
  jobId?: string;
  queue: string;
  state: ExecutionState;
  scheduledAt: Timestamp;
  createdAt: Timestamp;
  /** When it became (or becomes) available to workers. */
  readyAt?: Timestamp;
  startedAt?: Timestamp;
  finishedAt?: Timestamp;
  attempt: number;
  attempts: ExecutionAttempt[];
  result?: unknown;
  payload: unknown;
  priority: number;
  reason?: ExecutionReason | string;
  orderingKey?: string;
  idempotencyKey?: string;
}

/** The body of `POST /v1/executions`. */
export interface EnqueueInput {
  queue: string;
  payload?: unknown;
  /** Exclusive with `delayMs`; a past time runs now. */
  runAt?: TimeInput | null;
  delayMs?: number | null;
  /** The same key within 24 h returns the first execution (`created: false`). */
  idempotencyKey?: string | null;
  priority?: number;
  retry?: RetryPolicyInput;
  timeoutMs?: number;
  leaseMs?: number;
  /** Executions with the same key run one at a time, in enqueue order. */
  orderingKey?: string | null;
}

export interface ExecutionResult {
  execution: Execution;
  /** true: 201, a new execution; false: 200, an idempotency key matched an earlier one. */
  created: boolean;
}

/**
 * Filters of `GET /v1/executions`. Memory and history are listed as one: executions not finished
 * first (newest created first), then finished ones (newest finished first). A page may be short
 * while `nextCursor` is not null (a request reads a bounded number of history rows): keep paging.
 */
export interface ExecutionFilter {
  jobId?: string;
  queue?: string;
  /** "key=value": executions of the jobs that carry this label now. */
  label?: string;
  state?: ExecutionState;
  /** Why it was skipped, canceled or failed (`misfire`, `overlap`, `timed-out`, …). */
  reason?: string;
  /** The worker of its last attempt. */
  workerId?: string;
  /** On `scheduledAt`. */
  from?: TimeInput;
  to?: TimeInput;
  /** On `finishedAt` (finished executions only). */
  finishedFrom?: TimeInput;
  finishedTo?: TimeInput;
  cursor?: string;
  limit?: number;
}

/** Filters of `GET /v1/dead-letters`: as for executions, the state being `failed`. */
export type DeadLetterFilter = Omit<ExecutionFilter, "state">;

export interface ExecutionPage {
  executions: Execution[];
  nextCursor: string | null;
}

// ---------------------------------------------------------------------------------------------
// Audit trail
// ---------------------------------------------------------------------------------------------

/** The changes `GET /v1/audit` records (docs/api.md, "Audit trail"). */
export type AuditAction = "job.put" | "job.delete" | "job.pause" | "job.resume" | "job.trigger" | "job.backfill" | "exec.cancel" | "exec.replay";

/** One change to a job or an execution: who asked, when, and what came of it. */
export interface AuditEntry {
  /** Unique in the cluster; entries list newest first, then by id. */
  id: string;
  at: string;
  action: AuditAction;
  jobId: string | null;
  /** The execution a trigger made (or matched), or that a cancel or replay named. */
  executionId: string | null;
  /** Who asked: the token's tenant and role, and its name when the token file gives one. Null for changes older than the trail. */
  principal: { tenant: string; role: string; name?: string } | null;
  /** "ok", or the error code the change was refused with. */
  outcome: string;
  /** Per action: a put's version, created and spec; a backfill's range and counts; a replay's new execution id; … */
  details: Record<string, unknown>;
}

/** Filters of `GET /v1/audit`; `from`/`to` are on the change's time. */
export interface AuditFilter {
  jobId?: string;
  action?: AuditAction;
  from?: TimeInput;
  to?: TimeInput;
  cursor?: string;
  limit?: number;
}

export interface AuditPage {
  entries: AuditEntry[];
  nextCursor: string | null;
}

// ---------------------------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------------------------

/** `GET /v1/stats` query (docs/api.md, "Stats"). */
export interface StatsFilter {
  /** Default: 24 h before `to`. */
  from?: TimeInput;
  /** Default: now. */
  to?: TimeInput;
  /** "1m", "15m", "1h", "1d" or ms, whole minutes; default 1 h. */
  interval?: string | number;
  by?: "queue" | "job" | "state" | "reason" | "tenant";
  queue?: string;
  jobId?: string;
}

export interface Percentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface StatsSummary {
  count: number;
  byState: { succeeded: number; failed: number; canceled: number; skipped: number };
  /** From the scheduled time to the hand-over to a worker (first attempt). */
  latenessMs: Percentiles;
  /** From the last attempt's start to the finish. */
  runMs: Percentiles;
}

export interface Stats {
  from: string;
  to: string;
  intervalMs: number;
  by: StatsFilter["by"] | null;
  total: StatsSummary;
  /** One point per interval, oldest first: executions that finished in it. */
  series: Array<{ at: string; count: number; perSecond: number; byState: StatsSummary["byState"] }>;
  /** With `by`: one per group, largest first. */
  groups?: Array<StatsSummary & { key: string }>;
  /** The most frequent reasons of failed, canceled and skipped executions. */
  topReasons: Array<{ state: string; reason: string; count: number }>;
  /** Now, from memory: ready executions per queue and how long the oldest has waited. */
  backlog: Array<{ queue: string; ready: number; oldestReadyAgeMs: number | null }>;
}

// ---------------------------------------------------------------------------------------------
// Cluster and operations
// ---------------------------------------------------------------------------------------------

export interface ClusterNode {
  id: string;
  address: string;
  state: string;
}

/**
 * A shard as ONE node sees it: each node answers `GET /v1/cluster` with its own view, so
 * `commitIndex` is that node's replica's (null when it holds none) and `followers` is present only
 * on the node that leads the shard.
 */
export interface ClusterShard {
  id: number;
  /** Inclusive routing slot range `[lo, hi]`. */
  range: [number, number];
  /** Node ids holding a replica; the first is the preferred leader. */
  replicas: string[];
  /** null while the shard has no leader. */
  leader: string | null;
  /** The leader's epoch; null while there is no leader. */
  epoch: number | null;
  /** The answering node's replica's commit index; null when it holds no replica of the shard. */
  commitIndex: number | null;
  /** On the leader's own view only: each follower's match index (its lag is `commitIndex - match`). */
  followers?: Record<string, number>;
  /**
   * Present (true) when the answering node's replica is repairing a corrupt log from the leader:
   * until repaired it neither leads, promises nor counts toward a commit.
   */
  repairing?: boolean;
}

export interface ClusterView {
  nodes: ClusterNode[];
  shards: ClusterShard[];
}

/** One admin change: a replica moved from one node to another, or a shard's leadership handed over. */
export type RebalanceStep =
  | { kind: "move"; shard: number; from: string; to: string }
  | { kind: "leader"; shard: number; to: string }
  /** Only for a shard with more replicas than the replication factor (a move that stopped halfway). */
  | { kind: "remove"; shard: number; node: string };

/** A step done: how long it took and the epoch of the shard's leader afterwards. */
export interface RebalanceStepResult {
  step: RebalanceStep;
  ms: number;
  epoch: number;
}

/** The answer of a dry run (`?dryRun=true`): the steps that would run, in order. */
export interface RebalancePlan {
  steps: RebalanceStep[];
}

/** The answer of a run: the steps and one result per step, in order. */
export interface RebalanceRun {
  steps: RebalanceStep[];
  results: RebalanceStepResult[];
}

export interface Health {
  status: string;
}

export interface Readiness {
  ready: boolean;
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** The fields a job answer has that a PUT body must not (the CLI's `jobs put --file` drops them too). */
export const READ_ONLY_JOB_FIELDS = ["id", "version", "state", "nextFireAt", "runs", "createdAt", "updatedAt", "deleted", "counts", "lastRun"] as const;

/**
 * A job as read, turned back into a PUT body: drops the read-only fields (`id`, `version`,
 * `state`, `nextFireAt`, `runs`, `createdAt`, `updatedAt`, `deleted`). For read-modify-write:
 *   const job = await client.getJob("j");
 *   await client.putJob("j", { ...jobToInput(job), priority: 9 }, { ifMatch: job.version });
 */
export function jobToInput(job: Job): JobInput {
  const input: Record<string, unknown> = { ...job };
  for (const key of READ_ONLY_JOB_FIELDS) delete input[key];
  return input as unknown as JobInput;
}
