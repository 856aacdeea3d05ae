/**
 * The history thread: owns every shard's history file on this node (history-db.ts) and does all
 * of SQLite's work, so neither writing nor querying history ever runs on the event loop. The main
 * thread talks to it only through the messages below (history-store.ts is the other end).
 *
 * Writes are committed in groups: a commit every `commitEveryMs`, or at once when asked (a query
 * reads its own connection's uncommitted rows, so it needs no commit; a snapshot asks for a durable
 * one before the shard log drops what it covers). A crash loses at most the uncommitted rows, and
 * their watermark with them: the shard's log still holds those entries and replays them.
 *
 * With an export directory, it also writes each closed day of each file as Parquet, once
 * (exportPlan says which; parquet-export.ts writes one). DuckDB works asynchronously, so an export
 * reads its day a page at a time between pauses, and the thread goes on writing and answering in
 * between: a closed day gets no new rows, and retention and `close` wait for the export's day.
 */
import path from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import type { ExecutionFacts } from "../core/execution.js";
import { mergePages, type PagePart } from "../core/list-order.js";
import { auditPosition, type AuditRecord } from "../core/audit.js";
import type { AuditQuery, AuditRow } from "./audit-tables.js";
import { DAY_MS, HistoryDb, type FinishPlace, type HistoryListQuery, type StatsQuery } from "./history-db.js";
import { StatsTallies, type StatsWire } from "./stats.js";
import { dayExportFile, exportDate, ParquetDayWriter } from "./parquet-export.js";

export interface HistoryThreadConfig {
  dir: string;
  commitEveryMs: number;
  /** Export closed days as Parquet here (parquet-export.ts); null: export is off. */
  exportDir?: string | null;
}

/** Main → thread. Requests with an `id` are answered with that id. */
export type HistoryRequest =
  | { t: "open"; id: number; shard: number }
  | { t: "rows"; shard: number; rows: ExecutionFacts[]; through: number; audit: AuditRow[] }
  | { t: "gap"; shard: number; from: number; to: number; at: number; before: FinishPlace }
  | { t: "gaps"; id: number; shard: number }
  | { t: "range"; id: number; shard: number; query: HistoryRangeQuery }
  | { t: "fill"; id: number; shard: number; gap: number; rows: ExecutionFacts[]; audit: AuditRow[] | null; done: boolean }
  | { t: "commit"; id: number; shard: number | null; durable: boolean }
  | { t: "get"; id: number; shard: number; tenant: string; executionId: string }
  | { t: "list"; id: number; shards: number[]; query: HistoryListQuery }
  | { t: "audit"; id: number; shards: number[]; query: AuditQuery }
  | { t: "execution-stats"; id: number; shards: number[]; query: StatsQuery; scanMax: number }
  | { t: "job-runs"; id: number; shard: number; tenant: string; jobId: string }
  | { t: "retain"; id: number; cutoffMs: number }
  /** Export the closed days not exported yet; `cutoffMs` is retention's, whose days are due now. Answers DayExport[]. */
  | { t: "export"; id: number; nowMs: number; cutoffMs: number }
  | { t: "stats"; id: number; shard: number }
  | { t: "close"; id: number; shard: number | null };

/** A page of a gap, asked of a peer's file: rows after `after` and before `before`, of log entries (fromIndex, toIndex]. */
export interface HistoryRangeQuery {
  fromIndex: number;
  toIndex: number;
  after: FinishPlace;
  before: FinishPlace;
  limit: number;
}

/** `complete`: this file holds the whole range (else nothing is sent); `audit` comes with the last page (fewer rows than the limit). */
export interface HistoryRange {
  complete: boolean;
  rows: ExecutionFacts[];
  audit: AuditRow[] | null;
}

/** The answer to "execution-stats": the tallies, or how many rows a scan would read when that is over the budget. */
export type StatsAnswer = { tallies: StatsWire } | { tooMany: number };

/** Thread → main. */
export type HistoryReply =
  | { t: "reply"; id: number; value?: unknown; error?: string }
  /** Rows for a shard could not be written; the shard's history stops until restart. */
  | { t: "failed"; shard: number; error: string };

export function shardHistoryFile(dir: string, shard: number): string {
  return path.join(dir, `shard-${String(shard).padStart(4, "0")}.sqlite`);
}

class HistoryThread {
  private readonly dbs = new Map<number, HistoryDb>();
  private readonly failed = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  /** The export in progress (or the last one), and how to stop it: one runs at a time. */
  private exportRun: Promise<unknown> = Promise.resolve();
  private exportAbort: AbortController | null = null;
  /** Shard-days already reported as skipped for a gap, so the log says it once per run of the node. */
  private readonly gapSkipsReported = new Set<string>();

  constructor(private readonly config: HistoryThreadConfig, private readonly post: (m: HistoryReply) => void) {}

  handle(m: HistoryRequest): void {
    if (m.t === "rows" || m.t === "gap") return this.write(m);
    if (m.t === "export") return this.replyLater(m.id, this.export(m.nowMs, m.cutoffMs));
    // A file closes only once no export reads it: the export stops at its next pause.
    if (m.t === "close" && this.exportAbort) {
      this.exportAbort.abort();
      return this.replyLater(m.id, this.exportRun.then(() => this.answer(m)));
    }
    try {
      this.post({ t: "reply", id: m.id, value: this.answer(m) });
    } catch (error) {
      this.post({ t: "reply", id: m.id, error: (error as Error).message });
    }
  }

  private write(m: Extract<HistoryRequest, { t: "rows" | "gap" }>): void {
    if (this.failed.has(m.shard)) return;
    try {
      const db = this.db(m.shard);
      if (m.t === "rows") db.append(m.rows, m.through, m.audit);
      else db.recordGap(m.from, m.to, m.at, m.before);
      this.armCommit();
    } catch (error) {
      this.failed.add(m.shard);
      this.post({ t: "failed", shard: m.shard, error: (error as Error).stack ?? String(error) });
    }
  }

  private answer(m: Exclude<HistoryRequest, { t: "rows" | "gap" | "export" }>): unknown {
    switch (m.t) {
      case "open":
        this.failed.delete(m.shard);
        return this.db(m.shard).applied;
      case "commit": {
        for (const [shard, db] of this.dbs) if (m.shard === null || m.shard === shard) db.commit(m.durable);
        return m.shard === null ? null : (this.dbs.get(m.shard)?.applied ?? 0);
      }
      case "get":
        return this.dbs.get(m.shard)?.get(m.tenant, m.executionId) ?? null;
      case "list": {
        const parts: PagePart[] = [];
        for (const shard of m.shards) {
          const db = this.dbs.get(shard);
          if (db) parts.push(db.list(m.query));
        }
        const merged = mergePages(parts, m.query.limit);
        return { items: merged.items, stoppedAt: merged.items.length < m.query.limit ? merged.next : null };
      }
      case "audit": {
        const parts: Array<PagePart<AuditRecord>> = [];
        for (const shard of m.shards) {
          const db = this.dbs.get(shard);
          if (db) parts.push({ items: db.listAudit(shard, m.query), stoppedAt: null });
        }
        return mergePages(parts, m.query.limit, auditPosition).items;
      }
      case "gaps":
        return this.dbs.get(m.shard)?.gaps() ?? null;
      case "range": {
        const db = this.dbs.get(m.shard);
        const q = m.query;
        if (!db || !db.covers(q.fromIndex, q.toIndex)) return { complete: false, rows: [], audit: null } satisfies HistoryRange;
        const rows = db.rowsBetween(q.after, q.before, q.limit);
        return { complete: true, rows, audit: rows.length < q.limit ? db.auditBetween(q.fromIndex, q.toIndex) : null } satisfies HistoryRange;
      }
      case "fill": {
        const db = this.dbs.get(m.shard);
        if (!db) throw new Error(`shard ${m.shard}'s history is not open here`);
        db.fill(m.gap, m.rows, m.audit, m.done);
        db.commit();
        return null;
      }
      case "job-runs":
        return this.dbs.get(m.shard)?.jobRuns(m.tenant, m.jobId) ?? null;
      case "execution-stats": {
        const dbs = m.shards.flatMap((shard) => this.dbs.get(shard) ?? []);
        const scans = m.query.jobId !== undefined || m.query.by === "job";
        const toScan = scans ? dbs.reduce((n, db) => n + db.rowsToScan(m.query), 0) : 0;
        if (toScan > m.scanMax) return { tooMany: toScan };
        const tallies = new StatsTallies();
        for (const db of dbs) db.stats(m.query, tallies);
        return { tallies: tallies.toWire() };
      }
      case "retain": {
        const dropped: Record<number, number[]> = {};
        for (const [shard, db] of this.dbs) dropped[shard] = db.dropBefore(this.retentionCutoff(db, m.cutoffMs));
        for (const db of this.dbs.values()) db.commit();
        return dropped;
      }
      case "stats": {
        const db = this.dbs.get(m.shard);
        return db ? { applied: db.applied, rows: db.count(), days: db.dayTables.length, gaps: db.gaps() } : null;
      }
      case "close": {
        for (const [shard, db] of [...this.dbs]) {
          if (m.shard !== null && m.shard !== shard) continue;
          db.close();
          this.dbs.delete(shard);
        }
        return null;
      }
    }
  }

  private replyLater(id: number, value: Promise<unknown>): void {
    value.then(
      (v) => this.post({ t: "reply", id, value: v }),
      (error: Error) => this.post({ t: "reply", id, error: error.message }),
    );
  }

  /** Export closed days after any export in progress; each day's outcome is the answer. */
  private export(nowMs: number, cutoffMs: number): Promise<DayExport[]> {
    const exportDir = this.config.exportDir;
    if (!exportDir) return Promise.reject(new Error("history export is off (no export directory)"));
    const run = this.exportRun.then(async () => {
      const abort = (this.exportAbort = new AbortController());
      try {
        const outcomes = await exportClosedDays(this.dbs, { exportDir, spillDir: path.join(this.config.dir, "export-spill"), nowMs, cutoffMs, signal: abort.signal });
        this.armCommit();
        return outcomes.filter((o) => o.outcome !== "skipped" || firstTime(this.gapSkipsReported, `${o.shard}:${o.day}`));
      } finally {
        this.exportAbort = null;
      }
    });
    this.exportRun = run.catch(() => undefined);
    return run;
  }

  /**
   * Retention's cutoff for a file: with export on, a day goes only once exported (or known never
   * to be, for a gap), so a failed export keeps its day, and every day after it, until it succeeds.
   */
  private retentionCutoff(db: HistoryDb, cutoffMs: number): number {
    if (!this.config.exportDir) return cutoffMs;
    const firstUnexported = exportPlan(db, cutoffMs, cutoffMs).due[0];
    return firstUnexported === undefined ? cutoffMs : Math.min(cutoffMs, firstUnexported * DAY_MS);
  }

  private db(shard: number): HistoryDb {
    let db = this.dbs.get(shard);
    if (!db) {
      db = new HistoryDb(shardHistoryFile(this.config.dir, shard));
      this.dbs.set(shard, db);
    }
    return db;
  }

  private armCommit(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      for (const [shard, db] of this.dbs) {
        try {
          db.commit();
        } catch (error) {
          this.failed.add(shard);
          this.post({ t: "failed", shard, error: (error as Error).stack ?? String(error) });
        }
      }
    }, this.config.commitEveryMs);
  }
}

/** What an export did with one shard-day (the store logs each); `date` is the day's, YYYY-MM-DD. */
export type DayExport = { shard: number; day: number; date: string } & (
  | { outcome: "exported"; file: string; rows: number; bytes: number; ms: number }
  /** This file has a gap at `gapAt` that may cover some of the day's rows; another replica exports it. */
  | { outcome: "skipped"; gapAt: number }
  /** Retried at the next export; retention keeps the day until then. */
  | { outcome: "failed"; error: string }
);

/**
 * Which of a file's days to export now, oldest first. A day is closed once the shard's time, as
 * this replica has applied it, has passed its end: the clock is past the day, and the file holds a
 * later day's rows. (A replica still catching up — replaying its log at start, or behind its
 * leader — has not applied all of the day yet and would write a file short of rows; waiting for a
 * later row makes every replica write the same rows.) A day retention drops at `cutoffMs` is due
 * regardless: a shard idle since then has nothing later. A day that starts at or before a gap's
 * `at` may miss rows the gap skipped (they ended before the snapshot the replica installed), so it
 * is never exported from this file.
 */
export function exportPlan(db: HistoryDb, nowMs: number, cutoffMs: number): { due: number[]; gapped: Array<{ day: number; gapAt: number }> } {
  const today = Math.floor(nowMs / DAY_MS);
  const retentionDay = Math.floor(cutoffMs / DAY_MS);
  const days = db.dayTables;
  const newest = days.at(-1) ?? -Infinity;
  const exported = db.exportedDays();
  const gapAt = Math.max(-Infinity, ...db.gaps().map((g) => g.at));
  const due: number[] = [];
  const gapped: Array<{ day: number; gapAt: number }> = [];
  for (const day of days) {
    const closed = day < today && (day < newest || day < retentionDay);
    if (!closed || exported.has(day)) continue;
    if (day * DAY_MS <= gapAt) gapped.push({ day, gapAt });
    else due.push(day);
  }
  return { due, gapped };
}

export interface ExportRun {
  exportDir: string;
  /** Where DuckDB may spill a day larger than its memory limit. */
  spillDir: string;
  nowMs: number;
  cutoffMs: number;
  /** Stops the run at its next pause (a file is closing); the day in progress is left for the next run. */
  signal?: AbortSignal;
}

/**
 * Export every shard's due days (exportPlan) as Parquet files, each day once: a day written is
 * recorded in its file's `exports` table. A day that fails is reported and left for the next run;
 * the run goes on with the others.
 */
export async function exportClosedDays(dbs: ReadonlyMap<number, HistoryDb>, run: ExportRun): Promise<DayExport[]> {
  const outcomes: DayExport[] = [];
  let writer: ParquetDayWriter | null = null;
  try {
    for (const [shard, db] of [...dbs]) {
      if (run.signal?.aborted) break;
      if (dbs.get(shard) !== db) continue; // closed meanwhile
      const plan = exportPlan(db, run.nowMs, run.cutoffMs);
      for (const { day, gapAt } of plan.gapped) outcomes.push({ shard, day, date: exportDate(day), outcome: "skipped", gapAt });
      for (const day of plan.due) {
        if (run.signal?.aborted || dbs.get(shard) !== db) break;
        const started = performance.now();
        const about = { shard, day, date: exportDate(day) };
        try {
          writer ??= await ParquetDayWriter.open(run.spillDir);
          const file = dayExportFile(run.exportDir, shard, day);
          const { rows, bytes } = await writer.write(db.dayRows(day), file, run.signal);
          db.markExported(day, run.nowMs, rows);
          outcomes.push({ ...about, outcome: "exported", file, rows, bytes, ms: Math.round(performance.now() - started) });
        } catch (error) {
          if (run.signal?.aborted) return outcomes;
          outcomes.push({ ...about, outcome: "failed", error: (error as Error).message });
        }
      }
    }
  } finally {
    writer?.close();
  }
  return outcomes;
}

/** True the first time `key` is seen. */
function firstTime(seen: Set<string>, key: string): boolean {
  if (seen.has(key)) return false;
  seen.add(key);
  return true;
}

if (parentPort) {
  const port = parentPort;
  const thread = new HistoryThread(workerData as HistoryThreadConfig, (m) => port.postMessage(m));
  port.on("message", (m: HistoryRequest) => thread.handle(m));
}
