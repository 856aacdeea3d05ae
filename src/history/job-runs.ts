/**
 * Per job: how many of its executions ended in each state, and its last run — what
 * `GET /v1/jobs/{id}` shows as `counts` and `lastRun` — kept in the shard's history file as history
 * is written, so reading them is one lookup whatever the job's age or rate.
 *
 * Like the rollups, a job's changes collect in memory and are written when the history transaction
 * commits, with the rows and the watermark (one upsert per job that ran since the last commit).
 * The counts are the job id's since its history began in this file: retention does not subtract
 * the days it drops, and a job deleted and created again under the same id goes on counting.
 */
import type Database from "better-sqlite3";
import type { ExecutionFacts } from "../core/execution.js";
import type { NameTable } from "./audit-tables.js";
import { FINISHED_STATES } from "./stats.js";

export interface JobRuns {
  counts: { succeeded: number; failed: number; canceled: number; skipped: number };
  /** The execution that ended last (skipped fires included), or null. */
  lastRun: { executionId: string; state: string; reason: string | null; scheduledAt: number; finishedAt: number; durationMs: number | null } | null;
}

interface Pending {
  tenant: number;
  job: number;
  states: number[];
  last: ExecutionFacts;
  /** The last run's state and reason as names-table keys. */
  lastState: number;
  lastReason: number | null;
}

/** The upserted run ended after the stored last run, in finish order (time, then finish sequence). */
const NEWER = "job_runs.finished IS NULL OR excluded.finished > job_runs.finished OR (excluded.finished = job_runs.finished AND excluded.fseq > job_runs.fseq)";

type RawJobRuns = [succeeded: number, failed: number, canceled: number, skipped: number, state: number | null, reason: number | null, sched: number | null, finished: number | null, run: number | null, xid: string | null];

/**
 * Table `job_runs`, one row per (tenant, job): the four counts, then the last run as integers —
 * state, reason (a names key), scheduled and finished times and finish sequence, its run ms — and its id only when it
 * is not `{jobId}:{scheduledAt}`: about 40 bytes a job.
 */
export class JobRunsTable {
  private readonly pending = new Map<string, Pending>();
  private readonly read: Database.Statement;
  private readonly write: Database.Statement;

  constructor(db: Database.Database, private readonly names: NameTable) {
    db.exec(`CREATE TABLE IF NOT EXISTS job_runs (tenant INTEGER NOT NULL, job INTEGER NOT NULL, succeeded INTEGER NOT NULL, failed INTEGER NOT NULL,
      canceled INTEGER NOT NULL, skipped INTEGER NOT NULL, state INTEGER, reason INTEGER, sched INTEGER, finished INTEGER, fseq INTEGER, run INTEGER, xid TEXT,
      PRIMARY KEY (tenant, job)) WITHOUT ROWID`);
    this.read = db.prepare("SELECT succeeded, failed, canceled, skipped, state, reason, sched, finished, run, xid FROM job_runs WHERE tenant = ? AND job = ?").raw(true);
    // One statement a job, no read: the counts add up in SQLite; the last run is replaced unless the
    // stored one is newer (rows filled into a gap come after newer ones: history-fill.ts).
    this.write = db.prepare(`INSERT INTO job_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, job) DO UPDATE SET
      succeeded = succeeded + excluded.succeeded, failed = failed + excluded.failed, canceled = canceled + excluded.canceled, skipped = skipped + excluded.skipped,
      ${["state", "reason", "sched", "finished", "fseq", "run", "xid"].map((c) => `${c} = CASE WHEN ${NEWER} THEN excluded.${c} ELSE job_runs.${c} END`).join(", ")}`);
  }

  /** A job's execution ended (`state` its index in FINISHED_STATES, `reason` a names key; rows come in finish order). */
  add(tenant: number, job: number, state: number, reason: number | null, f: ExecutionFacts): void {
    const key = `${tenant} ${job}`;
    let p = this.pending.get(key);
    if (!p) this.pending.set(key, (p = { tenant, job, states: [0, 0, 0, 0], last: f, lastState: state, lastReason: reason }));
    p.states[state]!++;
    if (f.finishedAt! < p.last.finishedAt! || (f.finishedAt === p.last.finishedAt && f.finishSeq < p.last.finishSeq)) return;
    p.last = f;
    p.lastState = state;
    p.lastReason = reason;
  }

  /** Write what collected since the last flush, inside the caller's transaction. */
  flush(): void {
    for (const p of this.pending.values()) {
      const f = p.last;
      const plainId = f.id === `${f.jobId}:${f.scheduledAt}`;
      this.write.run(
        p.tenant, p.job,
        p.states[0]!, p.states[1]!, p.states[2]!, p.states[3]!,
        p.lastState, p.lastReason, f.scheduledAt, f.finishedAt, f.finishSeq, f.startedAt === null ? null : f.finishedAt! - f.startedAt, plainId ? null : f.id,
      );
    }
    this.pending.clear();
  }

  get(tenant: string, jobId: string): JobRuns {
    const tenantN = this.names.find(tenant);
    const jobN = this.names.find(jobId);
    const row = tenantN === undefined || jobN === undefined ? undefined : (this.read.get(tenantN, jobN) as RawJobRuns | undefined);
    if (!row) return NO_RUNS;
    const [succeeded, failed, canceled, skipped, state, reason, sched, finished, run, xid] = row;
    return {
      counts: { succeeded, failed, canceled, skipped },
      lastRun:
        state === null
          ? null
          : { executionId: xid ?? `${jobId}:${sched}`, state: FINISHED_STATES[state]!, reason: reason === null ? null : this.names.nameOf(reason), scheduledAt: sched!, finishedAt: finished!, durationMs: run },
    };
  }
}

export const NO_RUNS: JobRuns = { counts: { succeeded: 0, failed: 0, canceled: 0, skipped: 0 }, lastRun: null };
