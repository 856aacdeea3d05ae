/**
 * The node's execution history, from the main thread's side: it starts the history thread
 * (history-thread.ts, which owns the SQLite files), hands it each shard's finished executions, and
 * asks it questions. Every call here is a message; nothing blocks the event loop.
 *
 * Each shard replica feeds its `ShardHistory` as it applies committed log entries — on every
 * replica, leader or follower, and during the replay at start — so history is derived from the
 * replicated log: a node that dies loses none (its peers have theirs, and its own log replays what
 * its file had not committed), and the watermark (the last applied log index the file holds) makes
 * sure no entry's rows are written twice. Rows wait in memory for the end of the event-loop turn,
 * then go to the thread in one message per shard.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import { CronwheelError } from "../core/errors.js";
import { factsOf, type Execution, type ExecutionFacts } from "../core/execution.js";
import { auditEntryOf, type AuditedRecord, type AuditRecord } from "../core/audit.js";
import type { AuditQuery, AuditRow } from "./audit-tables.js";
import type { FinishPlace, HistoryGap, HistoryListQuery, HistoryPage, StatsQuery } from "./history-db.js";
import { StatsTallies } from "./stats.js";
import type { JobRuns } from "./job-runs.js";
import type { DayExport, HistoryRange, HistoryRangeQuery, HistoryReply, HistoryRequest, HistoryThreadConfig, StatsAnswer } from "./history-thread.js";

/** How often the thread commits what it was given (a crash replays at most this much from the log). */
export const HISTORY_COMMIT_EVERY_MS_DEFAULT = 1_000;
/** How often retention drops expired day tables (after the export, when on, wrote the closed days). */
const RETENTION_EVERY_MS = 3_600_000;
/** The first export after start: the days that closed while the node was down need not wait an hour. */
const FIRST_EXPORT_AFTER_MS = 60_000;
/** Rows a stats query by job, or for one job, may read (the others read rollups); more answers 400. */
export const STATS_SCAN_MAX = 1_000_000;
/** Rows one list request may read from history before it answers with a shorter page and a cursor. */
export const HISTORY_EXAMINE_MAX = 50_000;

export interface HistoryOptions {
  dir: string;
  retentionMs: number;
  commitEveryMs?: number;
  /** Export each closed day of each shard as Parquet here (docs/history.md); absent or null: off. */
  exportDir?: string | null;
}

type Pending = { resolve: (value: unknown) => void; reject: (error: Error) => void };

/** The thread's script: next to this file once built; tests running the sources use the build. */
function threadScript(): URL {
  const here = import.meta.url;
  return here.endsWith(".ts") ? new URL("../../dist/src/history/history-thread.js", here) : new URL("./history-thread.js", here);
}

export class HistoryStore {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Pending>();
  private nextId = 1;
  private readonly shards = new Map<number, ShardHistory>();
  private flushScheduled = false;
  private retentionTimer: NodeJS.Timeout | null = null;
  private firstExportTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** The thread died: every question is answered `unavailable` from now on, never left waiting. */
  private dead: Error | null = null;

  private constructor(
    readonly opts: HistoryOptions,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    const config: HistoryThreadConfig = {
      dir: path.resolve(opts.dir),
      commitEveryMs: opts.commitEveryMs ?? HISTORY_COMMIT_EVERY_MS_DEFAULT,
      exportDir: opts.exportDir ? path.resolve(opts.exportDir) : null,
    };
    this.worker = new Worker(fileURLToPath(threadScript()), { workerData: config, name: "cronwheel-history" });
    this.worker.on("message", (m: HistoryReply) => this.onMessage(m));
    const died = (error: Error) => {
      if (this.dead) return;
      this.dead = error;
      if (!this.closed) this.logger.error({ err: error }, "history thread failed; history stops until restart");
      for (const p of this.waiting.values()) p.reject(historyUnavailable(error));
      this.waiting.clear();
      for (const s of this.shards.values()) s.failed = true;
    };
    this.worker.on("error", died);
    this.worker.on("exit", (code) => died(new Error(`the history thread exited (${code})`)));
  }

  static start(opts: HistoryOptions, logger: Logger, now: () => number): HistoryStore {
    const store = new HistoryStore(opts, logger, now);
    store.retentionTimer = setInterval(() => void store.housekeeping(), RETENTION_EVERY_MS);
    store.retentionTimer.unref();
    if (opts.exportDir) {
      store.firstExportTimer = setTimeout(() => void store.exportLogged(store.now()), FIRST_EXPORT_AFTER_MS);
      store.firstExportTimer.unref();
    }
    return store;
  }

  /** Open (or create) a shard's history file; its watermark tells the replica what to skip on replay. */
  async openShard(shard: number): Promise<ShardHistory> {
    const applied = (await this.request({ t: "open", id: 0, shard })) as number;
    const history = new ShardHistory(shard, applied, this);
    this.shards.set(shard, history);
    return history;
  }

  /** Close a shard's file (its replica left this node); the file stays. */
  async closeShard(shard: number): Promise<void> {
    this.flushNow();
    this.shards.delete(shard);
    await this.request({ t: "close", id: 0, shard });
  }

  async get(shard: number, tenant: string, executionId: string): Promise<ExecutionFacts | null> {
    this.flushNow();
    return (await this.request({ t: "get", id: 0, shard, tenant, executionId })) as ExecutionFacts | null;
  }

  /** Finished executions of these shards in list order (see list-order.ts). */
  async list(shards: number[], query: HistoryListQuery): Promise<HistoryPage> {
    if (shards.length === 0) return { items: [], stoppedAt: null };
    this.flushNow();
    return (await this.request({ t: "list", id: 0, shards, query })) as HistoryPage;
  }

  /** The audit trail of these shards, newest first (audit-tables.ts). */
  async listAudit(shards: number[], query: AuditQuery): Promise<AuditRecord[]> {
    if (shards.length === 0) return [];
    this.flushNow();
    return (await this.request({ t: "audit", id: 0, shards, query })) as AuditRecord[];
  }

  /** A job's counts and last run (job-runs.ts); null when the shard has no history file here. */
  async jobRuns(shard: number, tenant: string, jobId: string): Promise<JobRuns | null> {
    this.flushNow();
    return (await this.request({ t: "job-runs", id: 0, shard, tenant, jobId })) as JobRuns | null;
  }

  /** A shard's gaps not filled yet. */
  async gaps(shard: number): Promise<HistoryGap[]> {
    this.flushNow();
    return ((await this.request({ t: "gaps", id: 0, shard })) as HistoryGap[] | null) ?? [];
  }

  /** A page of a peer's gap from this node's file of the shard (history-fill.ts). */
  async range(shard: number, q: HistoryRangeQuery): Promise<HistoryRange> {
    this.flushNow();
    return ((await this.request({ t: "range", id: 0, shard, query: q })) as HistoryRange | null) ?? { complete: false, rows: [], audit: null };
  }

  /** Write a page a peer sent into a gap, committed. */
  async fill(shard: number, gapId: number, rows: ExecutionFacts[], audit: AuditRow[] | null, done: boolean): Promise<void> {
    this.flushNow();
    await this.request({ t: "fill", id: 0, shard, gap: gapId, rows, audit, done });
  }

  /** Called when a replica records a gap: the node's filler starts on it (history-fill.ts). */
  onGap: (shard: number) => void = () => {};

  gapRecorded(shard: number): void {
    this.onGap(shard);
  }

  /** Stats of these shards' history (stats.ts); a query that would scan more than `scanMax` rows answers `tooMany`. */
  async executionStats(shards: number[], query: StatsQuery, scanMax: number): Promise<StatsAnswer> {
    if (shards.length === 0) return { tallies: new StatsTallies().toWire() };
    this.flushNow();
    return (await this.request({ t: "execution-stats", id: 0, shards, query, scanMax })) as StatsAnswer;
  }

  /** Commit a shard's rows, fsynced when `durable`; resolves to its watermark. */
  async commit(shard: number, durable: boolean): Promise<number> {
    this.flushNow();
    return (await this.request({ t: "commit", id: 0, shard, durable })) as number;
  }

  async stats(shard: number): Promise<{ applied: number; rows: number; days: number; gaps: Array<{ from: number; to: number; at: number }> } | null> {
    this.flushNow();
    return (await this.request({ t: "stats", id: 0, shard })) as never;
  }

  /**
   * Export the closed days not exported yet as Parquet (with `exportDir`), each logged: rows,
   * bytes and time of a day written, a day skipped for a gap (once), a day that failed (retried at
   * the next export; retention keeps it until then).
   */
  async exportClosedDays(nowMs = this.now()): Promise<DayExport[]> {
    const outcomes = (await this.request({ t: "export", id: 0, nowMs, cutoffMs: nowMs - this.opts.retentionMs })) as DayExport[];
    for (const o of outcomes) {
      const fields = { shard: o.shard, date: o.date };
      if (o.outcome === "exported") this.logger.info({ ...fields, rows: o.rows, bytes: o.bytes, ms: o.ms, file: o.file }, "history day exported as Parquet");
      else if (o.outcome === "skipped") this.logger.warn({ ...fields, gapAt: new Date(o.gapAt).toISOString() }, "history day not exported: this replica's file has a gap that may cover it (a replica without one exports it)");
      else this.logger.error({ ...fields, err: o.error }, "history day export failed; retried at the next export, and kept by retention until then");
    }
    return outcomes;
  }

  /** Drop the day tables wholly older than the retention. */
  async enforceRetention(nowMs = this.now()): Promise<void> {
    const cutoffMs = nowMs - this.opts.retentionMs;
    const dropped = (await this.request({ t: "retain", id: 0, cutoffMs })) as Record<number, number[]>;
    const days = Object.values(dropped).reduce((n, d) => n + d.length, 0);
    if (days > 0) this.logger.info({ cutoff: new Date(cutoffMs).toISOString(), dropped }, "history retention dropped day tables");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    if (this.firstExportTimer) clearTimeout(this.firstExportTimer);
    this.flushNow();
    await this.request({ t: "close", id: 0, shard: null }).catch(() => undefined);
    await this.worker.terminate();
  }

  // ---------------------------------------------------------------------------------------------

  /** The hourly chores: export the days that closed (when on), then retention, which needs them exported. */
  private async housekeeping(): Promise<void> {
    const nowMs = this.now();
    if (this.opts.exportDir) await this.exportLogged(nowMs);
    await this.enforceRetention(nowMs).catch(() => undefined);
  }

  /** An export whose failure as a whole (each day's is logged already) is logged, not thrown. */
  private async exportLogged(nowMs: number): Promise<void> {
    try {
      await this.exportClosedDays(nowMs);
    } catch (error) {
      if (!this.dead && !this.closed) this.logger.error({ err: error }, "history export failed; retried at the next export");
    }
  }

  /** A shard has rows or a new watermark to send: send them all at the end of this turn. */
  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushNow());
  }

  private flushNow(): void {
    this.flushScheduled = false;
    for (const s of this.shards.values()) {
      const batch = s.takeBatch();
      if (batch) this.post(batch);
    }
  }

  post(m: HistoryRequest): void {
    if (!this.closed && !this.dead) this.worker.postMessage(m);
  }

  private request(m: HistoryRequest & { id: number }): Promise<unknown> {
    if (this.dead) return Promise.reject(historyUnavailable(this.dead));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ ...m, id });
    });
  }

  private onMessage(m: HistoryReply): void {
    if (m.t === "failed") {
      this.logger.error({ shard: m.shard, err: m.error }, "history writer failed for a shard; its history stops until restart");
      const s = this.shards.get(m.shard);
      if (s) s.failed = true;
      return;
    }
    const p = this.waiting.get(m.id);
    if (!p) return;
    this.waiting.delete(m.id);
    if (m.error !== undefined) p.reject(historyUnavailable(new Error(m.error)));
    else p.resolve(m.value);
  }
}

/**
 * One shard's feed into history, used by its replica: `applying(index)` before each entry is
 * applied, `finished(e)` for each execution that ends while it is applied (the shard state's
 * finished sink), `audited(entry)` for each change it applies (its audit sink), `applied(index)`
 * after a run of entries. Entries at or below the watermark were
 * written before (a replay after restart) and add nothing.
 */
export class ShardHistory {
  private rows: ExecutionFacts[] = [];
  private audit: AuditRow[] = [];
  private through: number;
  private sent: number;
  private current = 0;
  /** The writer failed for this shard: rows are dropped (logged once by the store) until restart. */
  failed = false;

  constructor(
    readonly shard: number,
    /** The last log index whose rows the file held when it was opened. */
    readonly watermark: number,
    private readonly store: HistoryStore,
  ) {
    this.through = this.sent = watermark;
  }

  applying(index: number): void {
    this.current = index;
  }

  readonly finished = (e: Execution): void => {
    if (this.current <= this.watermark) return;
    this.rows.push(factsOf(e));
  };

  readonly audited = (record: AuditedRecord, result: unknown, at: number): void => {
    if (this.current <= this.watermark) return;
    this.audit.push({ ...auditEntryOf(record, result, at), index: this.current });
  };

  applied(index: number): void {
    if (index <= this.through) return;
    this.through = index;
    this.store.scheduleFlush();
  }

  /**
   * The replica jumped to `index` by installing a snapshot: the entries it skipped are not applied
   * here, so their executions are not in this file. Recorded as a gap, with the snapshot's place in
   * finish order (`before`): the node fills it from a peer's file (history-fill.ts).
   */
  skipTo(index: number, at: number, before: FinishPlace): void {
    if (index <= this.through) return;
    const batch = this.takeBatch();
    if (batch) this.store.post(batch);
    this.store.post({ t: "gap", shard: this.shard, from: this.through + 1, to: index, at, before });
    this.store.gapRecorded(this.shard);
    this.through = this.sent = index;
  }

  /** Commit through the applied index (durably before a snapshot drops the log behind it). */
  commit(durable: boolean): Promise<number> {
    return this.store.commit(this.shard, durable);
  }

  takeBatch(): HistoryRequest | null {
    if (this.through === this.sent && this.rows.length === 0 && this.audit.length === 0) return null;
    const { rows, audit } = this;
    this.rows = [];
    this.audit = [];
    this.sent = this.through;
    if (this.failed) return null;
    return { t: "rows", shard: this.shard, rows, through: this.through, audit };
  }
}

/** What a reader is told when history cannot answer (the contract's 503: retry later). */
function historyUnavailable(cause: Error): CronwheelError {
  return new CronwheelError("unavailable", `history is unavailable: ${cause.message}`, undefined, 5);
}
