/**
 * The shard state machine: `apply(record) → result`. The only code that changes a shard's jobs and
 * executions. Deterministic: given the same records in the same order, every replica reaches the
 * same state and returns the same results (time comes from `record.at`, randomness from hashes of
 * ids). The driver in `src/node/` appends a record to the log, waits until it is committed, then
 * calls `apply` and hands the result to whoever proposed it.
 *
 * Decisions made here, and only here:
 * - misfire: a fire found more than `misfire.graceMs` late is run, skipped, or (run-once) only the
 *   latest of a run of missed fires is run; every dropped fire becomes a `skipped` execution;
 * - overlap: a fire that finds its job at its concurrency limit is allowed, skipped, queued,
 *   buffered (only the newest waits) or replaces the running ones;
 * - idempotency: an enqueue or trigger whose key was seen within the window returns the first
 *   execution instead of creating another;
 * - retention: finished executions are forgotten after `finishedRetentionMs` or beyond a count.
 *
 * Time passes only through `tick` records: a tick at `at` hands the timing wheel's due entries to
 * `fireJob` (jobs) and `makeDue` (scheduled executions), at most `tickWorkMax` units per tick so a
 * burst cannot stall the event loop; the rest stays due and the driver proposes another tick.
 */
import { AttemptLogBuffer } from "../client/protocol.js";
import { isAudited, type AuditSink } from "./audit.js";
import { CronwheelError, conflict, invalidArgument, notFound } from "./errors.js";
import { backoffDelayMs } from "./backoff.js";
import { createExecution, isLeased, isTerminal, type AttemptInfo, type Execution, type ExecutionInit } from "./execution.js";
import { Job } from "./job.js";
import { ReadyQueue } from "./ready-queue.js";
import { compareListOrder, isAfter, positionOf, type ListPosition } from "./list-order.js";
import type {
  ClaimRecord,
  JobBackfillRecord,
  JobPutRecord,
  JobTriggerRecord,
  ReplayRecord,
  ReportItem,
  ReportRecord,
  ShardRecord,
} from "./records.js";
import { hash32 } from "./hash.js";
import { InstanceLedger } from "./instance-ledger.js";
import { TenantMap } from "./tenant-map.js";
import { nextFire } from "./trigger.js";
import { TimingWheel } from "./timing-wheel.js";
import type { EnqueueSpec, JobSpec } from "./types.js";

export interface ShardLimits {
  /** Fires, skips and promotions one tick record may perform. */
  tickWorkMax: number;
  /** How long finished executions stay queryable by id. */
  finishedRetentionMs: number;
  /** At most this many finished executions are kept per shard (oldest forgotten first). */
  finishedPerShardMax: number;
  /** An idempotency key returns the first execution for this long. */
  idempotencyWindowMs: number;
  /** Fires a job may hold waiting for a concurrency slot (overlap `queue`); more are skipped. */
  jobWaitingMax: number;
  /** Fires one backfill may create. */
  backfillFiresMax: number;
  /** A deleted job's tombstone (for 409 on resume, and version continuity) is kept this long. */
  tombstoneRetentionMs: number;
  /** Which job instances were decided (so none is created twice) is remembered this long. */
  decidedRetentionMs: number;
  /**
   * BROKEN ON PURPOSE, for the jepsen-style suite's self-test only: accept a leased execution's
   * reports whatever their fence, so the checker can show it catches stale fences changing state.
   */
  unsafeAcceptStaleFences?: boolean;
}

export const DEFAULT_SHARD_LIMITS: ShardLimits = Object.freeze({
  tickWorkMax: 20_000,
  finishedRetentionMs: 24 * 3_600_000,
  finishedPerShardMax: 50_000,
  idempotencyWindowMs: 24 * 3_600_000,
  jobWaitingMax: 1_000,
  backfillFiresMax: 10_000,
  tombstoneRetentionMs: 24 * 3_600_000,
  decidedRetentionMs: 400 * 86_400_000,
});

/**
 * A lease (or an attempt's timeout) is enforced this long after its deadline: the worker was told
 * the deadline, and clocks and networks are not exact. It also bounds how far ahead a tick's
 * horizon may reach (`TICK_HORIZON_MAX_MS`), so a lease can never be expired before its deadline.
 */
export const LEASE_EXPIRY_GRACE_MS = 1_000;
export const TICK_HORIZON_MAX_MS = 100;

/**
 * A scheduled execution (a runAt, a delay, a retry's backoff) leaves the wheel this long before
 * its time and waits staged in its ready queue, handed out at its time and not before. Applying
 * the tick that makes 50,000 executions ready takes ~70 ms here: with the jobs' 10 ms lookahead
 * alone, a herd would reach workers that late. A cancel still stops a staged execution; what
 * changes is that it shows `ready` (with its `readyAt`) up to this long before its time.
 */
export const EXECUTION_STAGE_LEAD_MS = 250;

/** Hooks for metrics and dispatch; called synchronously during apply. */
export interface ShardObserver {
  /** A job fire was decided: an execution was created (maybe skipped) for a fire due at `fireAtMs`. */
  fired(execution: Execution, fireAtMs: number, atMs: number): void;
  /** An execution became ready for a worker. */
  ready(execution: Execution): void;
  /** An execution reached a terminal state. */
  finished(execution: Execution): void;
  /** A worker's attempt ended without its report (canceled, lease lost, timed out): tell the worker. */
  revoked(execution: Execution, workerId: string, fence: number, reason: string): void;
}

export const NO_OBSERVER: ShardObserver = { fired() {}, ready() {}, finished() {}, revoked() {} };

/**
 * Hears every execution that ends, on every replica, during replay too (unlike the observer, which
 * only a serving leader hears): the history store derives its rows from it. Called synchronously
 * during apply, after the execution took its terminal state and its finish sequence.
 */
export type FinishedSink = (execution: Execution) => void;

export type ApplyResult = unknown;

export interface JobPutResult {
  job: Job;
  created: boolean;
}
export interface ExecutionResult {
  execution: Execution;
  created: boolean;
}
/**
 * An idempotency key matched an execution memory has forgotten (it finished and aged out of the
 * window in front of history): nothing new is created, and the node answers with that execution
 * as history has it.
 */
export interface ForgottenDuplicate {
  duplicateOf: string;
  created: false;
}
export type EnqueueOutcome = ExecutionResult | ForgottenDuplicate;
export type ClaimOutcome =
  /** `fence`: the claim's; the execution may have moved on by the time a caller looks at it. */
  | { ok: true; execution: Execution; fence: number }
  | { ok: false; reason: "not-found" | "not-ready" | "not-due" | "job-limit" };

export type ReportOutcome = { ok: true; leaseDeadline: number } | { ok: false; reason: "stale" | "not-found" };

export interface BackfillResult {
  created: number;
  skipped: number;
  existing: number;
  truncated: boolean;
}

interface Tombstone {
  tenant: string;
  id: string;
  version: number;
  deletedAt: number;
}

interface IdempotencyEntry {
  tenant: string;
  key: string;
  executionId: string;
  at: number;
  /** What the first request asked for (requestDigest); null in entries restored from older snapshots. */
  digest: string | null;
}

export interface ListJobsQuery {
  queue?: string | undefined;
  label?: [string, string] | undefined;
  afterId?: string | undefined;
  limit: number;
}

export interface ListExecutionsQuery {
  jobId?: string | undefined;
  queue?: string | undefined;
  state?: string | undefined;
  /** Why it was skipped, canceled or failed. */
  reason?: string | undefined;
  /** The worker of its last attempt. */
  workerId?: string | undefined;
  /** Scheduled time in [fromMs, toMs). */
  fromMs?: number | undefined;
  toMs?: number | undefined;
  /** Finish time in [finishedFromMs, finishedToMs): only finished executions match. */
  finishedFromMs?: number | undefined;
  finishedToMs?: number | undefined;
  /** [key, value]: executions of the jobs that carry this label now (jobsWithLabel). */
  label?: [string, string] | undefined;
  limit: number;
}

/** The one definition of what a list query matches, for executions in memory; `labeled`: the jobs a label filter stands for. */
export function matchesListQuery(e: Execution, q: ListExecutionsQuery, labeled?: ReadonlySet<string>): boolean {
  if (q.jobId !== undefined && e.jobId !== q.jobId) return false;
  if (labeled !== undefined && (e.jobId === null || !labeled.has(e.jobId))) return false;
  if (q.queue !== undefined && e.queue !== q.queue) return false;
  if (q.state !== undefined && e.state !== q.state) return false;
  if (q.reason !== undefined && e.reason !== q.reason) return false;
  if (q.workerId !== undefined && lastWorkerOf(e) !== q.workerId) return false;
  if (q.fromMs !== undefined && e.scheduledAt < q.fromMs) return false;
  if (q.toMs !== undefined && e.scheduledAt >= q.toMs) return false;
  if (q.finishedFromMs !== undefined || q.finishedToMs !== undefined) {
    if (!isTerminal(e.state)) return false;
    if (q.finishedFromMs !== undefined && e.finishedAt! < q.finishedFromMs) return false;
    if (q.finishedToMs !== undefined && e.finishedAt! >= q.finishedToMs) return false;
  }
  return true;
}

function lastWorkerOf(e: Execution): string | null {
  const attempts = e.attempts;
  return attempts && attempts.length > 0 ? attempts[attempts.length - 1]!.workerId : null;
}

type WheelEntry = Job | Execution;

/** takeReady puts back at most this many skipped executions per call (bounds one dispatch pass). */
const TAKE_SKIPPED_MAX = 1_000;

export class ShardState {
  readonly jobs = new TenantMap<Job>();
  readonly executions = new TenantMap<Execution>();
  private readonly tombstones = new TenantMap<Tombstone>();
  private readonly tombstoneOrder: Tombstone[] = [];
  private readonly idempotency = new TenantMap<IdempotencyEntry>();
  private readonly idempotencyOrder: IdempotencyEntry[] = [];
  /** Finished executions in the order they finished, for retention. */
  private finishedOrder: Execution[] = [];
  private finishedHead = 0;
  private readonly readyQueues = new Map<string, ReadyQueue<Execution>>();
  private readonly specs = new SpecInterner();
  private wheel: TimingWheel<WheelEntry>;
  /**
   * Nothing applied yet (and not restored from a snapshot): the state takes its clock from its
   * first record. Replicas build state from the same records, so this must not be the local
   * clock — a replica that starts empty and replays (or catches up on) older records would
   * otherwise stamp them all with its start time, and decide differently (a claim refused as
   * not due, a lease that runs out at another time).
   */
  private pristine = true;
  /** Executions sharing an ordering key, in enqueue order; the head is the one that may run. */
  private readonly orderingLines = new TenantMap<string[]>();
  /** Fences only grow: each claim in this shard takes the next one. */
  private fenceSeq = 0;
  /** Numbers each job created (a job deleted and put again is a new incarnation). */
  private jobIncarnationSeq = 0;
  /** Time of the last applied record; records never move it backwards. */
  lastAt: number;
  /** Work left in the tick being applied. */
  private tickBudget = 0;
  /**
   * Finish order: executions that end at the same shard time are numbered 0, 1, 2, … in apply
   * order, so (finishedAt, finishSeq) orders a shard's finished executions the same way on every
   * replica and across restarts (the history's row key and the list's cursor).
   */
  private finishSeqAt = Number.NEGATIVE_INFINITY;
  private finishSeqNext = 0;
  private finishedSink: FinishedSink | null = null;
  private auditSink: AuditSink | null = null;
  /** Job instances decided before (closed spans; a job's open span is on the Job). */
  private ledger = new InstanceLedger();
  /** The ledger drops spans past their retention once a day of shard time. */
  private ledgerSweepAt = 0;

  constructor(
    startMs: number,
    readonly limits: ShardLimits = DEFAULT_SHARD_LIMITS,
    private observer: ShardObserver = NO_OBSERVER,
  ) {
    this.wheel = new TimingWheel<WheelEntry>(startMs);
    this.lastAt = startMs;
  }

  /** Replay uses a silent observer; the live one is set once the shard has caught up. */
  setObserver(observer: ShardObserver): void {
    this.observer = observer;
  }

  /** Every replica's history store listens here, from the first record it applies. */
  setFinishedSink(sink: FinishedSink | null): void {
    this.finishedSink = sink;
  }

  /** Every replica's history store hears each audited change here (audit.ts). */
  setAuditSink(sink: AuditSink | null): void {
    this.auditSink = sink;
  }

  // ---------------------------------------------------------------------------------------------
  // apply

  /** Apply one committed record. Returns the proposer's result, or a CronwheelError (never throws for bad requests). */
  apply(record: ShardRecord): ApplyResult {
    if (this.pristine) {
      this.pristine = false;
      this.lastAt = record.at;
      this.wheel = new TimingWheel<WheelEntry>(record.at);
    }
    const at = Math.max(this.lastAt, record.at);
    this.lastAt = at;
    const result = this.applyAt(record, at);
    if (this.auditSink !== null && isAudited(record)) this.auditSink(record, result, at);
    return result;
  }

  private applyAt(record: ShardRecord, at: number): ApplyResult {
    switch (record.type) {
      case "leader":
        return undefined;
      case "tick":
        return this.tick(at, Math.min(Math.max(at, record.horizon ?? at), at + TICK_HORIZON_MAX_MS));
      case "job.put":
        return this.putJob(record, at);
      case "job.delete":
        return this.deleteJob(record.tenant, record.jobId, record.cancelRunning, at);
      case "job.pause":
        return this.pauseJob(record.tenant, record.jobId, at);
      case "job.resume":
        return this.resumeJob(record.tenant, record.jobId, at);
      case "job.trigger":
        return this.triggerJob(record, at);
      case "job.backfill":
        return this.backfillJob(record, at);
      case "exec.enqueue":
        return this.enqueue(record.tenant, record.executionId, record.spec, at);
      case "exec.enqueue-batch":
        return record.items.map((item) => this.enqueue(record.tenant, item.executionId, item.spec, at));
      case "exec.cancel":
        return this.cancel(record.tenant, record.executionId, at);
      case "exec.claim":
        return this.claim(record, at);
      case "exec.report":
        return this.report(record, at);
      case "exec.replay":
        return this.replay(record, at);
    }
  }

  /** When the driver should next propose a tick; null when nothing waits in the wheel. */
  nextDueAt(): number | null {
    return this.wheel.nextDueAt();
  }

  // ---------------------------------------------------------------------------------------------
  // jobs

  private putJob(r: JobPutRecord, at: number): ApplyResult {
    const existing = this.jobs.get(r.tenant, r.jobId);
    const tombstone = this.tombstones.get(r.tenant, r.jobId);
    const currentVersion = existing?.version ?? tombstone?.version ?? 0;
    if (r.ifMatch !== null && (existing === undefined || existing.version !== r.ifMatch)) {
      return conflict(`job '${r.jobId}' is at version ${existing ? currentVersion : "none"}, not ${r.ifMatch}`, {
        currentVersion: existing ? currentVersion : null,
      });
    }
    if (existing) {
      this.wheel.cancel(existing);
      // The new definition fires from its own first fire on: what the old one decided is closed.
      this.closeDecidedSpan(existing);
      existing.spec = this.specForPut(r, at);
      existing.version++;
      existing.updatedAt = at;
      if (existing.state === "completed") existing.state = "active";
      this.setNextFire(existing, existing.firstFire(at));
      return { job: existing, created: false } satisfies JobPutResult;
    }
    if (tombstone) this.tombstones.delete(r.tenant, r.jobId);
    const job = new Job(r.tenant, r.jobId, this.specForPut(r, at), at, at);
    job.incarnation = ++this.jobIncarnationSeq;
    job.version = currentVersion + 1;
    this.jobs.set(r.tenant, r.jobId, job);
    this.setNextFire(job, job.firstFire(at));
    return { job, created: true } satisfies JobPutResult;
  }

  /**
   * The spec a put applied at `at` runs under: an `every` trigger without startAt is anchored at the
   * put's record time — the shard's clock, which every replica agrees on — not at the clock of the
   * node that took the request, which may be set wrong.
   */
  private specForPut(r: JobPutRecord, at: number): JobSpec {
    const spec = this.specs.fromJson(r.specJson);
    if (spec.schedule.anchorMs !== null || spec.schedule.trigger.kind !== "every") return spec;
    return this.specs.intern({ ...spec, schedule: { ...spec.schedule, anchorMs: at } });
  }

  /** Point the job at its next nominal fire, (un)scheduling it in the wheel; completes it when none is left. */
  private setNextFire(job: Job, nominal: number | null): void {
    if (job.runsExhausted) nominal = null;
    job.nextFireAt = nominal;
    if (nominal === null) {
      this.wheel.cancel(job);
      if (job.state === "active") job.state = "completed";
      return;
    }
    if (job.state === "active") this.wheel.schedule(job, job.fireAt(nominal));
  }

  private requireJob(tenant: string, jobId: string): Job | CronwheelError {
    const job = this.jobs.get(tenant, jobId);
    if (job) return job;
    if (this.tombstones.has(tenant, jobId)) return conflict(`job '${jobId}' was deleted`);
    return notFound(`job '${jobId}' not found`);
  }

  private deleteJob(tenant: string, jobId: string, cancelRunning: boolean, at: number): ApplyResult {
    const job = this.jobs.get(tenant, jobId);
    if (!job) return notFound(`job '${jobId}' not found`);
    this.wheel.cancel(job);
    this.closeDecidedSpan(job);
    this.jobs.delete(tenant, jobId);
    for (const id of job.waiting ?? []) this.finishById(tenant, id, "canceled", at, "job-deleted");
    job.waiting = null;
    if (cancelRunning) {
      for (const e of this.executions.valuesOf(tenant)) {
        if (e.jobId === jobId && !isTerminal(e.state)) this.finish(e, "canceled", at, "job-deleted");
      }
    }
    const tombstone: Tombstone = { tenant, id: jobId, version: job.version, deletedAt: at };
    this.tombstones.set(tenant, jobId, tombstone);
    this.tombstoneOrder.push(tombstone);
    return { job, created: false } satisfies JobPutResult;
  }

  private pauseJob(tenant: string, jobId: string, at: number): ApplyResult {
    const job = this.requireJob(tenant, jobId);
    if (job instanceof CronwheelError) return job;
    if (job.state === "completed") return conflict(`job '${jobId}' is completed`);
    if (job.state === "active") {
      job.state = "paused";
      job.updatedAt = at;
      this.wheel.cancel(job);
    }
    return { job, created: false } satisfies JobPutResult;
  }

  private resumeJob(tenant: string, jobId: string, at: number): ApplyResult {
    const job = this.requireJob(tenant, jobId);
    if (job instanceof CronwheelError) return job;
    if (job.state === "completed") return conflict(`job '${jobId}' is completed`);
    if (job.state === "paused") {
      job.state = "active";
      job.updatedAt = at;
      // Fires missed while paused are now overdue: the next tick's misfire policy decides them.
      this.setNextFire(job, job.nextFireAt);
    }
    return { job, created: false } satisfies JobPutResult;
  }

  private triggerJob(r: JobTriggerRecord, at: number): ApplyResult {
    const job = this.requireJob(r.tenant, r.jobId);
    if (job instanceof CronwheelError) return job;
    // A trigger's request is its job and payload: the same key for another job is another request.
    const digest = r.idempotencyKey === null ? null : requestDigest(`trigger\u0000${r.jobId}\u0000${r.hasPayload ? JSON.stringify(r.payload) : ""}`);
    const seen = this.idempotentAnswer(r.tenant, r.idempotencyKey, digest, at);
    if (seen) return seen;
    const payload = r.hasPayload ? r.payload : job.spec.payload;
    const execution = this.createJobExecution(job, r.executionId, at, at, payload, r.idempotencyKey);
    this.rememberIdempotent(r.tenant, r.idempotencyKey, execution.id, at, digest);
    return { execution, created: true } satisfies ExecutionResult;
  }

  private backfillJob(r: JobBackfillRecord, at: number): ApplyResult {
    const job = this.requireJob(r.tenant, r.jobId);
    if (job instanceof CronwheelError) return job;
    if (job.spec.schedule.trigger.kind === "none") return invalidArgument(`job '${r.jobId}' has no trigger to backfill`);
    const result: BackfillResult = { created: 0, skipped: 0, existing: 0, truncated: false };
    const schedule = job.spec.schedule;
    let first: number | null = null;
    let last: number | null = null;
    for (let nominal = nextFire(schedule, r.fromMs - 1); nominal !== null && nominal < r.toMs; ) {
      if (result.created + result.skipped >= this.limits.backfillFiresMax) {
        result.truncated = true;
        break;
      }
      if (this.isDecided(job, nominal)) {
        result.existing++;
      } else {
        const e = this.createJobExecution(job, job.fireId(nominal), nominal, at, job.spec.payload, null);
        if (e.state === "skipped") result.skipped++;
        else result.created++;
      }
      first ??= nominal;
      last = nominal;
      nominal = nextFire(schedule, nominal);
    }
    if (first !== null) this.ledger.add(job.tenant, job.id, schedule, first, last!);
    return result;
  }

  // ---------------------------------------------------------------------------------------------
  // time

  /**
   * Hand out the wheel's entries due by `horizon` (≥ at). A horizon past `at` commits fires a few
   * ms ahead of their time (the driver's lookahead), so they are durable when they are due; each
   * becomes ready at its own due time (`readyAt`), and nothing is handed to a worker before that.
   */
  private tick(at: number, horizon: number): ApplyResult {
    const due = this.collectDue(horizon, this.limits.tickWorkMax);
    due.sort(compareWheelEntries);
    this.tickBudget = this.limits.tickWorkMax;
    for (const entry of due) {
      if (entry instanceof Job) this.fireJob(entry, at, horizon);
      else if (isLeased(entry.state)) this.expireAttempt(entry, at);
      else this.makeDue(entry, at);
    }
    this.forgetExpired(at);
    return null;
  }

  /**
   * The `max` earliest wheel entries due by `until`, plus every entry due at the same ms as the last of them.
   * Which of several equal-time entries a wheel hands out first depends on the wheel's history,
   * and a replica restored from a snapshot has another history: completing the tie group (and
   * sorting it by key) makes the set and order of a tick's work a function of state alone.
   */
  private collectDue(until: number, max: number): WheelEntry[] {
    const due: WheelEntry[] = [];
    if (this.wheel.advance(until, max, (e) => due.push(e)) < max) return due;
    const tieAt = due[due.length - 1]!.dueAt;
    const putBack: WheelEntry[] = [];
    const chunk = 1024;
    while (putBack.length === 0) {
      const handed = this.wheel.advance(until, chunk, (e) => (e.dueAt === tieAt && putBack.length === 0 ? due.push(e) : putBack.push(e)));
      if (handed < chunk) break;
    }
    for (const e of putBack) this.wheel.schedule(e, e.dueAt);
    return due;
  }

  /**
   * Fire every due fire of `job` up to `at`, applying its misfire policy. The first due fire always
   * happens; catching up further stops when the tick's budget is spent (the job stays due).
   */
  private fireJob(job: Job, at: number, horizon: number): void {
    for (let first = true; job.nextFireAt !== null && (first || this.tickBudget > 0); first = false) {
      const nominal = job.nextFireAt;
      const fireAt = job.fireAt(nominal);
      if (fireAt > horizon) break;
      this.tickBudget--;
      const next = job.fireAfter(nominal);
      const id = job.fireId(nominal);
      if (!this.isDecided(job, nominal)) {
        const misfired = at - fireAt > job.spec.misfire.graceMs;
        if (misfired && this.dropsMissedFire(job, next, horizon)) {
          this.observer.fired(this.recordSkipped(job, id, nominal, at, "misfire"), fireAt, at);
        } else {
          const e = this.createJobExecution(job, id, nominal, at, job.spec.payload, null, Math.max(at, fireAt));
          this.observer.fired(e, fireAt, at);
        }
      }
      job.decidedFrom ??= nominal;
      job.decidedTo = nominal;
      job.nextFireAt = job.runsExhausted ? null : next;
    }
    this.setNextFire(job, job.nextFireAt);
  }

  /**
   * Whether the instance of `job` at `nominal` was decided before: by the job's own firing under
   * its current spec, by a span in the ledger (an earlier spec, an earlier incarnation, a backfill),
   * or — for state restored from a snapshot older than the ledger — by an execution in memory.
   */
  private isDecided(job: Job, nominal: number): boolean {
    if (job.decidedFrom !== null && nominal >= job.decidedFrom && nominal <= job.decidedTo!) return true;
    if (this.ledger.has(job.tenant, job.id) && this.ledger.isDecided(job.tenant, job.id, job.spec.schedule, nominal)) return true;
    return this.executions.has(job.tenant, job.fireId(nominal));
  }

  /** Move the job's own decided span into the ledger (its spec is about to change, or it is deleted). */
  private closeDecidedSpan(job: Job): void {
    if (job.decidedFrom === null) return;
    this.ledger.add(job.tenant, job.id, job.spec.schedule, job.decidedFrom, job.decidedTo!);
    job.decidedFrom = job.decidedTo = null;
  }

  /** Whether the misfire policy drops a missed fire whose successor is `next`. */
  private dropsMissedFire(job: Job, next: number | null, horizon: number): boolean {
    switch (job.spec.misfire.policy) {
      case "run-all":
        return false;
      case "skip":
        return true;
      case "run-once":
        // Run only the latest of the missed fires: drop this one if the next is also already due.
        return next !== null && job.fireAt(next) <= horizon;
    }
  }

  /**
   * A scheduled execution's time is near (EXECUTION_STAGE_LEAD_MS). Its wheel time is `readyAt`
   * minus the lead; a snapshot written before the lead existed has `readyAt` unset and the wheel
   * time equal to the execution's time, hence the max.
   */
  private makeDue(e: Execution, at: number): void {
    this.tickBudget--;
    if (e.state !== "scheduled") return;
    this.makeReady(e, Math.max(at, e.dueAt, e.readyAt), at);
  }

  /** `readyAt` may be ahead of `at` (see tick): it waits staged in the ready queue, and a worker gets it no earlier. */
  private makeReady(e: Execution, readyAt: number, at: number): void {
    e.state = "ready";
    e.readyAt = readyAt;
    this.readyQueue(e.queue).push(e, at);
    this.observer.ready(e);
  }

  /** Ready now, or at its time if that is still ahead. */
  private readyOrSchedule(e: Execution, at: number): void {
    if (e.scheduledAt > at) this.scheduleReady(e, e.scheduledAt);
    else this.makeReady(e, at, at);
  }

  /**
   * Wait in the wheel until EXECUTION_STAGE_LEAD_MS before `readyAt`: the tick that hands it out
   * is then applied ahead of its time, however many are due together.
   */
  private scheduleReady(e: Execution, readyAt: number): void {
    e.state = "scheduled";
    e.readyAt = readyAt;
    this.wheel.schedule(e, readyAt - EXECUTION_STAGE_LEAD_MS);
  }

  // ---------------------------------------------------------------------------------------------
  // executions

  /** A new execution of `job`, under its concurrency limit and overlap policy. */
  private createJobExecution(
    job: Job,
    id: string,
    scheduledAt: number,
    at: number,
    payload: unknown,
    idempotencyKey: string | null,
    readyAt = at,
  ): Execution {
    const spec = job.spec;
    const e = this.newExecution(jobExecutionInit(job.tenant, job.id, id, spec, scheduledAt, at, payload, idempotencyKey));
    e.jobIncarnation = job.incarnation;
    const { limit, overlap } = spec.concurrency;
    const atLimit = limit !== null && job.activeCount >= limit;
    if (atLimit && overlap === "skip") return this.markSkipped(e, at, "overlap");
    if (atLimit && (overlap === "queue" || overlap === "buffer-one")) {
      const waiting = (job.waiting ??= []);
      if (overlap === "buffer-one") {
        for (const older of waiting.splice(0)) this.finishById(job.tenant, older, "skipped", at, "superseded");
      } else if (waiting.length >= this.limits.jobWaitingMax) {
        return this.markSkipped(e, at, "overlap");
      }
      e.waitingForSlot = true;
      waiting.push(e.id);
      job.runs++;
      return e;
    }
    if (atLimit && overlap === "replace") {
      for (const other of this.executions.valuesOf(job.tenant)) {
        if (other !== e && other.jobId === job.id && !isTerminal(other.state) && !other.waitingForSlot) this.finish(other, "canceled", at, "replaced");
      }
    }
    job.activeCount++;
    job.runs++;
    this.makeReady(e, readyAt, at);
    return e;
  }

  private recordSkipped(job: Job, id: string, nominal: number, at: number, reason: string): Execution {
    const e = this.newExecution(jobExecutionInit(job.tenant, job.id, id, job.spec, nominal, at, job.spec.payload, null));
    e.jobIncarnation = job.incarnation;
    return this.markSkipped(e, at, reason);
  }

  private markSkipped(e: Execution, at: number, reason: string): Execution {
    e.state = "skipped";
    e.reason = reason;
    this.ended(e, at);
    return e;
  }

  /**
   * Where the next execution to end will be in finish order: every execution that ended so far is
   * before (ms, seq). A replica that skipped entries by installing a snapshot fills its history
   * with the rows of other replicas up to this place (history-fill.ts).
   */
  finishBoundary(): { ms: number; seq: number } {
    return Number.isFinite(this.finishSeqAt) ? { ms: this.finishSeqAt, seq: this.finishSeqNext } : { ms: 0, seq: 0 };
  }

  /** The one place an execution's end is recorded: its finish time and order, retention, listeners. */
  private ended(e: Execution, at: number): void {
    if (at !== this.finishSeqAt) {
      this.finishSeqAt = at;
      this.finishSeqNext = 0;
    }
    e.finishedAt = at;
    e.finishSeq = this.finishSeqNext++;
    this.finishedOrder.push(e);
    this.observer.finished(e);
    this.finishedSink?.(e);
    // Memory is a window in front of history: kept to its bounds as work ends, not only in ticks
    // (a shard with only ad-hoc work may go long without one).
    this.forgetExpired(at);
  }

  private newExecution(init: ExecutionInit): Execution {
    const e = createExecution(init);
    this.executions.set(e.tenant, e.id, e);
    return e;
  }

  private enqueue(tenant: string, executionId: string, s: EnqueueSpec, at: number): EnqueueOutcome | CronwheelError {
    const dedupKey = enqueueDedupKey(s.idempotencyKey, s.orderingKey);
    const digest = dedupKey === null ? null : requestDigest(`enqueue\u0000${JSON.stringify(s)}`);
    const seen = this.idempotentAnswer(tenant, dedupKey, digest, at);
    if (seen) return seen;
    if (this.executions.has(tenant, executionId)) {
      return conflict(`execution '${executionId}' already exists`);
    }
    const runAt = enqueueRunAt(s, at);
    const e = this.newExecution({
      id: executionId,
      tenant,
      jobId: null,
      queue: s.queue,
      scheduledAt: runAt,
      createdAt: at,
      payload: s.payload,
      priority: s.priority,
      retry: s.retry,
      timeoutMs: s.timeoutMs,
      leaseMs: s.leaseMs,
      orderingKey: s.orderingKey,
      idempotencyKey: s.idempotencyKey,
    });
    if (this.joinOrderingLine(e)) this.readyOrSchedule(e, at);
    this.rememberIdempotent(tenant, dedupKey, e.id, at, digest);
    return { execution: e, created: true } satisfies ExecutionResult;
  }

  private cancel(tenant: string, executionId: string, at: number): ApplyResult {
    const e = this.executions.get(tenant, executionId);
    if (!e) return notFound(`execution '${executionId}' not found`);
    if (isTerminal(e.state)) return conflict(`execution '${executionId}' is already ${e.state}`, { state: e.state });
    this.finish(e, "canceled", at, "canceled");
    return { execution: e, created: false } satisfies ExecutionResult;
  }

  private finishById(tenant: string, id: string, state: "canceled" | "skipped", at: number, reason: string): void {
    const e = this.executions.get(tenant, id);
    if (e && !isTerminal(e.state)) this.finish(e, state, at, reason);
  }

  /** Move a live execution to a terminal state and release what it held. */
  private finish(e: Execution, state: "succeeded" | "failed" | "canceled" | "skipped", at: number, reason: string | null): void {
    if (isTerminal(e.state)) throw new Error(`finish: execution ${e.id} is already ${e.state}`);
    const wasLeased = isLeased(e.state);
    if (wasLeased) this.endLease(e, at, state === "succeeded" ? "succeeded" : state === "failed" ? "failed" : "canceled", reason);
    if (wasLeased && state === "canceled") this.observer.revoked(e, e.workerId!, e.fence, reason ?? "canceled");
    this.wheel.cancel(e);
    this.readyQueue(e.queue).forget(e);
    e.state = state;
    e.reason = reason;
    if (e.jobId !== null) this.releaseSlot(e, at);
    if (e.orderingKey !== null) this.leaveOrderingLine(e, at);
    this.ended(e, at);
  }

  /**
   * The job an execution counts against: its job, if that is still the incarnation that created
   * it. A job deleted (its runs left running) and put again under the same id starts with fresh
   * counters, which the old runs must not touch.
   */
  private jobOf(e: Execution): Job | undefined {
    if (e.jobId === null) return undefined;
    const job = this.jobs.get(e.tenant, e.jobId);
    return job !== undefined && job.incarnation === e.jobIncarnation ? job : undefined;
  }

  /** A job execution ended: give its slot (or its place in the waiting line) to the next one. */
  private releaseSlot(e: Execution, at: number): void {
    const job = this.jobOf(e);
    if (!job) return;
    if (e.waitingForSlot) {
      e.waitingForSlot = false;
      const i = job.waiting?.indexOf(e.id) ?? -1;
      if (i >= 0) job.waiting!.splice(i, 1);
      return;
    }
    job.activeCount--;
    if (job.activeCount < 0) throw new Error(`job ${job.id}: active count below zero`);
    const limit = job.spec.concurrency.limit;
    while (job.waiting && job.waiting.length > 0 && (limit === null || job.activeCount < limit)) {
      const next = this.executions.get(job.tenant, job.waiting.shift()!);
      if (!next || isTerminal(next.state)) continue;
      next.waitingForSlot = false;
      job.activeCount++;
      this.makeReady(next, at, at);
    }
  }

  private readyQueue(queue: string): ReadyQueue<Execution> {
    let q = this.readyQueues.get(queue);
    if (!q) {
      q = new ReadyQueue<Execution>();
      this.readyQueues.set(queue, q);
    }
    return q;
  }

  // ---------------------------------------------------------------------------------------------
  // ordering keys

  /** Put `e` at the back of its ordering key's line; true when it is the head (it may run). */
  private joinOrderingLine(e: Execution): boolean {
    if (e.orderingKey === null) return true;
    let line = this.orderingLines.get(e.tenant, e.orderingKey);
    if (!line) {
      line = [];
      this.orderingLines.set(e.tenant, e.orderingKey, line);
    }
    line.push(e.id);
    if (line.length === 1) return true;
    e.waitingForOrder = true;
    return false;
  }

  /** `e` ended: take it out of its line; when it was the head, the next one may run. */
  private leaveOrderingLine(e: Execution, at: number): void {
    const line = this.orderingLines.get(e.tenant, e.orderingKey!);
    if (!line) return;
    const i = line.indexOf(e.id);
    if (i < 0) return;
    line.splice(i, 1);
    e.waitingForOrder = false;
    if (line.length === 0) {
      this.orderingLines.delete(e.tenant, e.orderingKey!);
      return;
    }
    if (i !== 0) return;
    const next = this.executions.get(e.tenant, line[0]!);
    if (!next || !next.waitingForOrder) return;
    next.waitingForOrder = false;
    this.readyOrSchedule(next, at);
  }

  // ---------------------------------------------------------------------------------------------
  // workers: claims, reports, leases, retries

  private claim(r: ClaimRecord, at: number): ClaimOutcome[] {
    return r.items.map((item) => this.claimOne(item.tenant, item.executionId, r.workerId, at));
  }

  private claimOne(tenant: string, id: string, workerId: string, at: number): ClaimOutcome {
    const e = this.executions.get(tenant, id);
    if (!e) return { ok: false, reason: "not-found" };
    if (e.state !== "ready") return { ok: false, reason: "not-ready" };
    if (e.readyAt > at) return { ok: false, reason: "not-due" };
    const job = this.jobOf(e);
    const limit = job?.spec.concurrency.limit ?? null;
    if (job && limit !== null && job.leasedCount >= limit) return { ok: false, reason: "job-limit" };
    this.readyQueue(e.queue).forget(e);
    e.state = "claimed";
    e.attempt++;
    e.fence = ++this.fenceSeq;
    e.workerId = workerId;
    e.leaseDeadline = at + e.leaseMs;
    e.attemptDeadline = at + e.timeoutMs;
    const info: AttemptInfo = { attempt: e.attempt, workerId, claimedAt: at, finishedAt: null, outcome: null, error: null };
    // The first attempt's array is made to size: a push onto [] reserves room for 17.
    if (e.attempts === null) e.attempts = [info];
    else e.attempts.push(info);
    if (job) job.leasedCount++;
    this.scheduleExpiry(e);
    return { ok: true, execution: e, fence: e.fence };
  }

  /** The wheel wakes a leased execution when its lease or its run time ends, whichever is first. */
  private scheduleExpiry(e: Execution): void {
    this.wheel.schedule(e, Math.min(e.leaseDeadline, e.attemptDeadline) + LEASE_EXPIRY_GRACE_MS);
  }

  private report(r: ReportRecord, at: number): ReportOutcome[] {
    return r.items.map((item) => this.reportOne(item, at));
  }

  private reportOne(item: ReportItem, at: number): ReportOutcome {
    const e = this.executions.get(item.tenant, item.executionId);
    if (!e) return { ok: false, reason: "not-found" };
    if (!isLeased(e.state) || (e.fence !== item.fence && !this.limits.unsafeAcceptStaleFences)) return { ok: false, reason: "stale" };
    if (item.logs !== undefined || item.logsDropped !== undefined) this.keepAttemptLogs(e, item);
    switch (item.kind) {
      case "started":
        if (e.state === "claimed") e.state = "running";
        e.startedAt ??= at;
        break;
      case "heartbeat": {
        e.leaseDeadline = at + e.leaseMs;
        this.scheduleExpiry(e);
        const info = e.attempts?.[e.attempts.length - 1];
        if (item.progress !== undefined && info) info.progress = item.progress;
        break;
      }
      case "succeeded": {
        // A short handler's worker may skip `started`: it ran from (about) its claim.
        e.startedAt ??= e.attempts?.[e.attempts.length - 1]?.claimedAt ?? at;
        e.result = item.result ?? null;
        const job = this.jobOf(e);
        if (job) job.lastResult = e.result;
        this.finish(e, "succeeded", at, null);
        break;
      }
      case "failed":
        this.failAttempt(e, at, "failed", item.error ?? null, item.retryable !== false);
        break;
    }
    return { ok: true, leaseDeadline: e.leaseDeadline };
  }

  /**
   * The current attempt's ctx.log lines from its final report, held to ATTEMPT_LOG_BOUNDS again
   * here (the gateway does; a record is what every replica applies, so the bound is kept in one
   * deterministic place too).
   */
  private keepAttemptLogs(e: Execution, item: ReportItem): void {
    const info = e.attempts?.[e.attempts.length - 1];
    if (!info || info.finishedAt !== null) return;
    const kept = new AttemptLogBuffer();
    for (const line of item.logs ?? []) kept.add(line);
    if (kept.lines.length > 0) info.logs = kept.lines;
    const dropped = kept.dropped + (item.logsDropped ?? 0);
    if (dropped > 0) info.logsDropped = dropped;
  }

  /** A leased attempt's lease or run time ran out. */
  private expireAttempt(e: Execution, at: number): void {
    this.tickBudget--;
    const timedOut = e.attemptDeadline <= e.leaseDeadline;
    const deadline = Math.min(e.leaseDeadline, e.attemptDeadline);
    if (deadline + LEASE_EXPIRY_GRACE_MS > at) {
      this.scheduleExpiry(e); // reached through the horizon only; leases end on real time
      return;
    }
    const outcome = timedOut ? "timed-out" : "lease-expired";
    this.observer.revoked(e, e.workerId!, e.fence, outcome);
    this.failAttempt(e, at, outcome, { message: timedOut ? `attempt ran past timeoutMs (${e.timeoutMs})` : `no heartbeat within leaseMs (${e.leaseMs})` }, true);
  }

  /** An attempt failed: retry after the backoff, or make the execution a dead letter. */
  private failAttempt(e: Execution, at: number, outcome: "failed" | "timed-out" | "lease-expired", error: unknown, retryable: boolean): void {
    const attempt = e.attempt;
    if (!retryable || attempt >= e.retry.maxAttempts) {
      this.endLease(e, at, outcome, error);
      // A dead letter says why: its last attempt timed out or lost its lease, the worker said not
      // to retry, or it failed with every attempt spent.
      this.finish(e, "failed", at, outcome !== "failed" ? outcome : retryable ? "retries-exhausted" : "non-retryable");
      this.pauseOnFailure(e, at);
      return;
    }
    this.endLease(e, at, outcome, error);
    this.wheel.cancel(e);
    this.scheduleReady(e, at + backoffDelayMs(e.retry, attempt, e.id));
  }

  /** Close the current attempt's record and give back what the lease held. */
  private endLease(e: Execution, at: number, outcome: NonNullable<AttemptInfo["outcome"]>, error: unknown): void {
    if (!isLeased(e.state)) return;
    const info = e.attempts?.[e.attempts.length - 1];
    if (info && info.finishedAt === null) {
      info.finishedAt = at;
      info.outcome = outcome;
      if (outcome !== "succeeded") info.error = error;
    }
    const job = this.jobOf(e);
    if (job) job.leasedCount--;
    e.state = "scheduled"; // not leased any more; the caller sets the real next state
  }

  private pauseOnFailure(e: Execution, at: number): void {
    const job = this.jobOf(e);
    if (job && job.spec.pauseOnFailure && job.state === "active") {
      job.state = "paused";
      job.updatedAt = at;
      this.wheel.cancel(job);
    }
  }

  private replay(r: ReplayRecord, at: number): ApplyResult {
    const old = this.executions.get(r.tenant, r.executionId);
    if (!old) return notFound(`execution '${r.executionId}' not found`);
    if (old.state !== "failed") return conflict(`only a dead letter (state failed) can be replayed; '${r.executionId}' is ${old.state}`, { state: old.state });
    if (this.executions.has(r.tenant, r.newExecutionId)) return conflict(`execution '${r.newExecutionId}' already exists`);
    const job = old.jobId !== null ? this.jobs.get(r.tenant, old.jobId) : undefined;
    if (job) {
      const execution = this.createJobExecution(job, r.newExecutionId, at, at, old.payload, null);
      return { execution, created: true } satisfies ExecutionResult;
    }
    const e = this.newExecution({
      id: r.newExecutionId,
      tenant: r.tenant,
      jobId: old.jobId,
      queue: old.queue,
      scheduledAt: at,
      createdAt: at,
      payload: old.payload,
      priority: old.priority,
      retry: old.retry,
      timeoutMs: old.timeoutMs,
      leaseMs: old.leaseMs,
      orderingKey: old.orderingKey,
      idempotencyKey: null,
    });
    if (this.joinOrderingLine(e)) this.readyOrSchedule(e, at);
    return { execution: e, created: true } satisfies ExecutionResult;
  }

  // ---------------------------------------------------------------------------------------------
  // dispatch (leader only; changes no replicated state)

  /**
   * Take up to `max` ready executions of `queue` for a worker (of `tenant`, or of every tenant when
   * null), in ready-queue order, skipping those not due yet or whose job is at its limit (they are
   * put back). The leader proposes a claim record for what it took and puts back what the record
   * refuses. `retryAt` is the earliest readyAt of an execution still staged (not due yet).
   */
  takeReady(queue: string, tenant: string | null, max: number, now: number): { items: Execution[]; retryAt: number | null } {
    const q = this.readyQueues.get(queue);
    const items: Execution[] = [];
    if (!q) return { items, retryAt: null };
    let skipped: Execution[] | null = null;
    // Made only when a job with a limit shows up: dispatch calls this for every shard and queue, often.
    let pending: Map<Job, number> | null = null;
    while (items.length < max && (skipped === null || skipped.length < TAKE_SKIPPED_MAX)) {
      const e = q.pop(tenant, now);
      if (!e) break;
      const job = this.jobOf(e);
      const limit = job?.spec.concurrency.limit ?? null;
      if (job && limit !== null) {
        const taken = (pending ??= new Map()).get(job) ?? 0;
        if (job.leasedCount + taken >= limit) {
          (skipped ??= []).push(e);
          continue;
        }
        pending.set(job, taken + 1);
      }
      items.push(e);
    }
    if (skipped !== null) for (const e of skipped) q.push(e, now);
    return { items, retryAt: q.nextStagedAt() };
  }

  /** Put back an execution the leader took but could not claim (still ready, not queued). */
  requeue(e: Execution): void {
    if (e.state === "ready" && !e.queued) this.readyQueue(e.queue).push(e, this.lastAt);
  }

  /** Executions waiting in `queue`'s ready queue. */
  readyDepth(queue: string): number {
    return this.readyQueues.get(queue)?.size ?? 0;
  }

  /** Whether `queue` has executions ready or staged (so a dispatch pass has something to look at). */
  hasQueued(queue: string): boolean {
    const q = this.readyQueues.get(queue);
    return q !== undefined && q.size + q.stagedSize > 0;
  }

  /** Queue names with ready work. */
  readyQueueNames(): IterableIterator<string> {
    return this.readyQueues.keys();
  }

  // ---------------------------------------------------------------------------------------------
  // idempotency and retention

  /**
   * A key seen within the window answers for its first request: that execution (from memory, or
   * as a ForgottenDuplicate for the node to read from history), or 409 when this request asks for
   * something else. The window is time, not a count: entries expire only by age.
   */
  private idempotentAnswer(tenant: string, key: string | null, digest: string | null, at: number): EnqueueOutcome | CronwheelError | undefined {
    if (key === null) return undefined;
    const entry = this.idempotency.get(tenant, key);
    if (!entry || at - entry.at >= this.limits.idempotencyWindowMs) return undefined;
    if (entry.digest !== null && entry.digest !== digest) {
      return conflict(`idempotency key '${key}' was used for another request (execution '${entry.executionId}') within its window`, { executionId: entry.executionId });
    }
    const execution = this.executions.get(tenant, entry.executionId);
    return execution ? { execution, created: false } : { duplicateOf: entry.executionId, created: false };
  }

  private rememberIdempotent(tenant: string, key: string | null, executionId: string, at: number, digest: string | null): void {
    if (key === null) return;
    const entry: IdempotencyEntry = { tenant, key, executionId, at, digest };
    this.idempotency.set(tenant, key, entry);
    this.idempotencyOrder.push(entry);
  }

  /** Forget finished executions, idempotency keys and tombstones past their windows. */
  private forgetExpired(at: number): void {
    const limits = this.limits;
    while (this.finishedHead < this.finishedOrder.length) {
      const e = this.finishedOrder[this.finishedHead]!;
      const live = this.finishedOrder.length - this.finishedHead;
      if (at - e.finishedAt! < limits.finishedRetentionMs && live <= limits.finishedPerShardMax) break;
      if (this.executions.get(e.tenant, e.id) === e) this.executions.delete(e.tenant, e.id);
      this.finishedHead++;
    }
    if (this.finishedHead > 4096 && this.finishedHead * 2 > this.finishedOrder.length) {
      this.finishedOrder = this.finishedOrder.slice(this.finishedHead);
      this.finishedHead = 0;
    }
    expireFifo(this.idempotencyOrder, at, limits.idempotencyWindowMs, (e) => e.at, (e) => {
      if (this.idempotency.get(e.tenant, e.key) === e) this.idempotency.delete(e.tenant, e.key);
    });
    expireFifo(this.tombstoneOrder, at, limits.tombstoneRetentionMs, (t) => t.deletedAt, (t) => {
      if (this.tombstones.get(t.tenant, t.id) === t) this.tombstones.delete(t.tenant, t.id);
    });
    if (at >= this.ledgerSweepAt) {
      this.ledger.forgetBefore(at - limits.decidedRetentionMs);
      this.ledgerSweepAt = at + 86_400_000;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // reads (no record needed)

  getJob(tenant: string, jobId: string): Job | undefined {
    return this.jobs.get(tenant, jobId);
  }

  getExecution(tenant: string, id: string): Execution | undefined {
    return this.executions.get(tenant, id);
  }

  /** Jobs of a tenant in id order, after `afterId`, filtered. */
  listJobs(tenant: string, q: ListJobsQuery): Job[] {
    const matches: Job[] = [];
    for (const job of this.jobs.valuesOf(tenant)) {
      if (q.afterId !== undefined && job.id <= q.afterId) continue;
      if (q.queue !== undefined && job.spec.queue !== q.queue) continue;
      if (q.label !== undefined && job.spec.labels[q.label[0]] !== q.label[1]) continue;
      matches.push(job);
    }
    matches.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return matches.slice(0, q.limit);
  }

  /** The ids of a tenant's jobs that carry the label [key, value] now (what a label filter on executions stands for). */
  jobsWithLabel(tenant: string, [key, value]: [string, string]): Set<string> {
    const ids = new Set<string>();
    for (const job of this.jobs.valuesOf(tenant)) if (job.spec.labels[key] === value) ids.add(job.id);
    return ids;
  }

  /** Executions of a tenant in list order (live first, then finished; see list-order.ts), filtered. */
  listExecutions(tenant: string, q: ListExecutionsQuery, after?: ListPosition): Execution[] {
    const matches: Execution[] = [];
    const labeled = q.label === undefined ? undefined : this.jobsWithLabel(tenant, q.label);
    for (const e of this.executions.valuesOf(tenant)) {
      if (matchesListQuery(e, q, labeled) && isAfter(e, after)) matches.push(e);
    }
    matches.sort((a, b) => compareListOrder(positionOf(a), positionOf(b)));
    return matches.slice(0, q.limit);
  }

  /**
   * A tenant's ready executions per queue and the oldest one's ready time (stats). Walks the
   * tenant's executions in memory: a request's cost, not the hot path's.
   */
  readyBacklog(tenant: string): Array<{ queue: string; ready: number; oldestReadyAt: number | null }> {
    const byQueue = new Map<string, { queue: string; ready: number; oldestReadyAt: number | null }>();
    for (const e of this.executions.valuesOf(tenant)) {
      if (e.state !== "ready") continue;
      let b = byQueue.get(e.queue);
      if (!b) byQueue.set(e.queue, (b = { queue: e.queue, ready: 0, oldestReadyAt: null }));
      b.ready++;
      if (b.oldestReadyAt === null || e.readyAt < b.oldestReadyAt) b.oldestReadyAt = e.readyAt;
    }
    return [...byQueue.values()];
  }

  /** Ready depth and oldest ready time per queue, for metrics. */
  readyStats(): Array<{ queue: string; depth: number; oldestReadyAt: number | null }> {
    const out = [];
    for (const [queue, q] of this.readyQueues) out.push({ queue, depth: q.size, oldestReadyAt: q.oldestReadyAt() });
    return out;
  }

  get scheduledCount(): number {
    return this.wheel.size;
  }

  // ---------------------------------------------------------------------------------------------
  // snapshots

  /**
   * The state as plain tuples. Nothing in it is shared with the live state (mutable arrays and
   * attempt records are copied), so it can be encoded later, bit by bit, while the shard goes on.
   */
  toSnapshot(): ShardSnapshot {
    const jobs: JobSnapshot[] = [];
    const specs: JobSpec[] = [];
    const specIndex = new Map<JobSpec, number>();
    for (const j of this.jobs.values()) {
      let index = specIndex.get(j.spec);
      if (index === undefined) {
        index = specs.push(j.spec) - 1;
        specIndex.set(j.spec, index);
      }
      jobs.push([j.tenant, j.id, index, j.version, j.state, j.createdAt, j.updatedAt, j.nextFireAt, j.runs, j.activeCount, j.waiting && [...j.waiting], j.leasedCount, j.lastResult ?? null, j.incarnation, j.decidedFrom, j.decidedTo]);
    }
    const executions: ExecutionSnapshot[] = [];
    const ready: Execution[] = [];
    for (const e of this.executions.values()) {
      executions.push(executionToSnapshot(e, this.wheel.isScheduled(e) ? e.dueAt : null));
      if (e.state === "ready") ready.push(e);
    }
    // readySeq is stamped per queue: order within each queue is what a restart must keep.
    ready.sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : a.readySeq - b.readySeq));
    const orderingLines = [...this.orderingLines.entries()].map(([tenant, key, line]): [string, string, string[]] => [tenant, key, [...line]]);
    return {
      v: 1,
      lastAt: this.lastAt,
      fenceSeq: this.fenceSeq,
      jobIncarnationSeq: this.jobIncarnationSeq,
      finishSeq: [this.finishSeqAt, this.finishSeqNext],
      decided: this.ledger.toSnapshot(),
      decidedSweepAt: this.ledgerSweepAt,
      specs,
      jobs,
      executions,
      finishedOrder: this.finishedOrder.slice(this.finishedHead).map((e) => [e.tenant, e.id] as [string, string]),
      idempotency: this.idempotencyOrder.map((e) => [e.tenant, e.key, e.executionId, e.at, e.digest] as [string, string, string, number, string | null]),
      tombstones: this.tombstoneOrder.map((t) => [t.tenant, t.id, t.version, t.deletedAt] as [string, string, number, number]),
      orderingLines,
      readyOrder: ready.map((e) => [e.tenant, e.id]),
    };
  }

  static fromSnapshot(s: ShardSnapshot, limits: ShardLimits = DEFAULT_SHARD_LIMITS, observer: ShardObserver = NO_OBSERVER): ShardState {
    if (s.v !== 1) throw new Error(`shard snapshot: unknown version ${String(s.v)}`);
    const state = new ShardState(s.lastAt, limits, observer);
    state.pristine = false;
    state.fenceSeq = s.fenceSeq;
    state.jobIncarnationSeq = s.jobIncarnationSeq ?? 0;
    if (s.finishSeq) [state.finishSeqAt, state.finishSeqNext] = s.finishSeq;
    if (s.decided) state.ledger = InstanceLedger.fromSnapshot(s.decided);
    state.ledgerSweepAt = s.decidedSweepAt ?? 0;
    const specs = s.specs.map((spec) => state.specs.intern(spec));
    for (const [tenant, id, specIndex, version, jobState, createdAt, updatedAt, nextFireAt, runs, activeCount, waiting, leasedCount, lastResult, incarnation, decidedFrom, decidedTo] of s.jobs) {
      const job = new Job(tenant, id, specs[specIndex]!, createdAt, updatedAt);
      job.incarnation = incarnation ?? 0;
      job.decidedFrom = decidedFrom ?? null;
      job.decidedTo = decidedTo ?? null;
      job.version = version;
      job.state = jobState;
      job.runs = runs;
      job.activeCount = activeCount;
      job.leasedCount = leasedCount;
      if (lastResult !== null) job.lastResult = lastResult;
      job.waiting = waiting;
      job.nextFireAt = nextFireAt;
      state.jobs.set(tenant, id, job);
      if (jobState === "active" && nextFireAt !== null) state.wheel.schedule(job, job.fireAt(nextFireAt));
    }
    for (const snap of s.executions) {
      const e = executionFromSnapshot(snap);
      state.executions.set(e.tenant, e.id, e);
      const wheelDueAt = snap[EXECUTION_WHEEL_DUE_AT];
      if (wheelDueAt !== null) state.wheel.schedule(e, wheelDueAt);
    }
    for (const [tenant, id] of s.readyOrder) {
      const e = state.executions.get(tenant, id)!;
      state.readyQueue(e.queue).push(e, state.lastAt);
    }
    for (const [tenant, id] of s.finishedOrder) {
      const e = state.executions.get(tenant, id);
      if (e) state.finishedOrder.push(e);
    }
    for (const [tenant, key, executionId, at, digest] of s.idempotency) state.rememberIdempotent(tenant, key, executionId, at, digest ?? null);
    for (const [tenant, id, version, deletedAt] of s.tombstones) {
      const t: Tombstone = { tenant, id, version, deletedAt };
      state.tombstones.set(tenant, id, t);
      state.tombstoneOrder.push(t);
    }
    for (const [tenant, key, line] of s.orderingLines) state.orderingLines.set(tenant, key, line);
    return state;
  }
}

/** Tick order: by due time, then jobs before executions, then tenant and id. */
function compareWheelEntries(a: WheelEntry, b: WheelEntry): number {
  if (a.dueAt !== b.dueAt) return a.dueAt - b.dueAt;
  const aJob = a instanceof Job;
  if (aJob !== b instanceof Job) return aJob ? -1 : 1;
  if (a.tenant !== b.tenant) return a.tenant < b.tenant ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function jobExecutionInit(
  tenant: string,
  jobId: string,
  id: string,
  spec: JobSpec,
  scheduledAt: number,
  at: number,
  payload: unknown,
  idempotencyKey: string | null,
): ExecutionInit {
  return {
    id,
    tenant,
    jobId,
    queue: spec.queue,
    scheduledAt,
    createdAt: at,
    payload,
    priority: spec.priority,
    retry: spec.retry,
    timeoutMs: spec.timeoutMs,
    leaseMs: spec.leaseMs,
    orderingKey: null,
    idempotencyKey,
  };
}

/** Drop entries from the front of a time-ordered FIFO once they are older than `windowMs`. */
function expireFifo<T>(fifo: T[], at: number, windowMs: number, timeOf: (t: T) => number, drop: (t: T) => void): void {
  let n = 0;
  while (n < fifo.length && at - timeOf(fifo[n]!) >= windowMs) drop(fifo[n++]!);
  if (n > 0) fifo.splice(0, n);
}

/**
 * Jobs with equal definitions share one spec object: a million jobs made from a few templates
 * cost a few specs, which is most of the per-job heap budget. Bounded, so a stream of unique
 * definitions (distinct payloads) stops being interned instead of growing the table forever.
 */
class SpecInterner {
  private static readonly distinctSpecsMax = 10_000;
  private readonly byJson = new Map<string, JobSpec>();

  fromJson(json: string): JobSpec {
    const shared = this.byJson.get(json);
    if (shared) return shared;
    const spec = JSON.parse(json) as JobSpec;
    if (this.byJson.size < SpecInterner.distinctSpecsMax) this.byJson.set(json, spec);
    return spec;
  }

  intern(spec: JobSpec): JobSpec {
    return this.fromJson(JSON.stringify(spec));
  }
}

// Snapshots are positional tuples: a million jobs encode noticeably smaller and faster than objects.
export type JobSnapshot = [
  tenant: string,
  id: string,
  specIndex: number,
  version: number,
  state: Job["state"],
  createdAt: number,
  updatedAt: number,
  nextFireAt: number | null,
  runs: number,
  activeCount: number,
  waiting: string[] | null,
  leasedCount: number,
  lastResult: unknown,
  /** Absent in snapshots written before incarnations existed (then 0, as every execution's). */
  incarnation?: number,
  /** The job's own decided span (Job.decidedFrom/To); absent before the instance ledger. */
  decidedFrom?: number | null,
  decidedTo?: number | null,
];

export type ExecutionSnapshot = [
  init: ExecutionInit,
  state: Execution["state"],
  reason: string | null,
  waitingForSlot: boolean,
  waitingForOrder: boolean,
  readyAt: number,
  startedAt: number | null,
  finishedAt: number | null,
  attempt: number,
  attempts: Execution["attempts"],
  result: unknown,
  workerId: string | null,
  fence: number,
  leaseDeadline: number,
  attemptDeadline: number,
  /** Where it waits in the wheel (scheduled, retry backoff, lease expiry), or null. */
  wheelDueAt: number | null,
  jobIncarnation?: number,
  finishSeq?: number,
];

const EXECUTION_WHEEL_DUE_AT = 15;
const EXECUTION_JOB_INCARNATION = 16;
const EXECUTION_FINISH_SEQ = 17;

export interface ShardSnapshot {
  v: 1;
  lastAt: number;
  fenceSeq: number;
  /** Absent in snapshots written before incarnations existed. */
  jobIncarnationSeq?: number;
  /** The finish order's position: [shard time of the last finish, next sequence]; absent before history. */
  finishSeq?: [number, number];
  /** The instance ledger's closed spans, and its next sweep; absent before it existed. */
  decided?: ReturnType<InstanceLedger["toSnapshot"]>;
  decidedSweepAt?: number;
  /** Distinct job definitions; jobs refer to them by index. */
  specs: JobSpec[];
  jobs: JobSnapshot[];
  executions: ExecutionSnapshot[];
  finishedOrder: Array<[string, string]>;
  /** [tenant, key, executionId, at, digest]; the digest is absent in snapshots from before it. */
  idempotency: Array<[string, string, string, number, (string | null)?]>;
  tombstones: Array<[string, string, number, number]>;
  orderingLines: Array<[tenant: string, orderingKey: string, ids: string[]]>;
  /** Ready executions in ready-queue order (the order is not replicated state, but a restart keeps it). */
  readyOrder: Array<[tenant: string, id: string]>;
}

function executionToSnapshot(e: Execution, wheelDueAt: number | null): ExecutionSnapshot {
  const init: ExecutionInit = {
    id: e.id,
    tenant: e.tenant,
    jobId: e.jobId,
    queue: e.queue,
    scheduledAt: e.scheduledAt,
    createdAt: e.createdAt,
    payload: e.payload,
    priority: e.priority,
    retry: e.retry,
    timeoutMs: e.timeoutMs,
    leaseMs: e.leaseMs,
    orderingKey: e.orderingKey,
    idempotencyKey: e.idempotencyKey,
  };
  return [
    init, e.state, e.reason, e.waitingForSlot, e.waitingForOrder, e.readyAt, e.startedAt, e.finishedAt,
    e.attempt, e.attempts && e.attempts.map((a) => ({ ...a })), e.result, e.workerId, e.fence, e.leaseDeadline, e.attemptDeadline, wheelDueAt,
    e.jobIncarnation, e.finishSeq,
  ];
}

function executionFromSnapshot(s: ExecutionSnapshot): Execution {
  const e = createExecution(s[0]);
  [
    , e.state, e.reason, e.waitingForSlot, e.waitingForOrder, e.readyAt, e.startedAt, e.finishedAt,
    e.attempt, e.attempts, e.result, e.workerId, e.fence, e.leaseDeadline, e.attemptDeadline,
  ] = s;
  e.jobIncarnation = s[EXECUTION_JOB_INCARNATION] ?? 0;
  e.finishSeq = s[EXECUTION_FINISH_SEQ] ?? 0;
  return e;
}

/** When an enqueue applied at `at` becomes due: its runAt, else `delayMs` after `at`, else at once. */
export function enqueueRunAt(spec: EnqueueSpec, at: number): number {
  return spec.runAtMs ?? (spec.delayMs !== null ? at + spec.delayMs : at);
}

/**
 * An enqueue's idempotency key deduplicates among enqueues with the same ordering key (or none):
 * an ordering key decides the shard the execution lives on, so the key is only unique there.
 */
function enqueueDedupKey(idempotencyKey: string | null, orderingKey: string | null): string | null {
  if (idempotencyKey === null) return null;
  return orderingKey === null ? idempotencyKey : `${idempotencyKey}\u0000ordering:${orderingKey}`;
}

export { isTerminal };

/** A 64-bit fingerprint of a request, as two 32-bit hashes: equal bodies give equal digests. */
function requestDigest(text: string): string {
  return `${hash32(text).toString(36)}.${hash32(`\u0001${text}`).toString(36)}`;
}
