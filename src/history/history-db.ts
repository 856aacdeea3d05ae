/**
 * One shard's execution history: a SQLite file of the executions that ended, a table per UTC day
 * of their finish time, so retention drops whole tables (docs/history.md has the engine choice and
 * its figures). Synchronous, as better-sqlite3 is: it runs in the history thread
 * (history-thread.ts), never on the event loop. Tests drive it directly.
 *
 * Layout of a day table `d{day}`:
 *   k        the row key: (finishedAt − the day's start) × 2^20 + finishSeq, so a time range is a
 *            key range, the table is written in key order, and every replica writes the same key
 *            for the same execution (finishSeq is the shard state's finish order).
 *   tenant, job, queue, reason, worker   keys into `names` (one small integer per distinct string)
 *   state    0 succeeded, 1 failed, 2 canceled, 3 skipped
 *   sched    finishedAt − scheduledAt;  created: scheduledAt − createdAt;  ready: readyAt −
 *            scheduledAt (null: never ready);  run: finishedAt − startedAt (null: never started);
 *            claim: finishedAt − its one attempt's claim time (when the attempt is not in detail)
 *   attempt  attempts made;  xid: the id when it is not `{jobId}:{scheduledAt}`, xh its lookup key
 *            (idKey: the creation time the id carries, then a hash of the id, so new keys land at
 *            the index's end as rows come in time order, instead of on random pages: a random
 *            hash made every commit rewrite most of the index, 4x the disk writes at 20,000/s)
 *   detail   JSON of what is rarely there: payload, result, attempts that are not one plain
 *            success, ordering and idempotency keys, a priority other than the default (JSON, not
 *            msgpack: these values came in as JSON, and JSON gives them back exactly)
 * Indexes: (job) for a job's executions, (state) for the rare states, (xh) for ids not derived
 * from the job and time. Integers are bound as BigInt-free JS integers into INTEGER columns.
 *
 * The watermark: `meta.applied` is the last shard log index whose finished executions are in the
 * file, written in the same transaction as the rows, so a restart knows exactly where to resume
 * and no row is written twice.
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import type { AttemptInfo, ExecutionFacts, ExecutionState } from "../core/execution.js";
import type { ListPosition } from "../core/list-order.js";
import { DEFAULT_PRIORITY } from "../core/types.js";
import type { AuditRecord } from "../core/audit.js";
import { AuditTables, type AuditQuery, type AuditRow, type NameTable } from "./audit-tables.js";
import { JobRunsTable, type JobRuns } from "./job-runs.js";
import { StatementCache } from "./statement-cache.js";
import { HOUR_MS, MINUTE_MS, MINUTE_ROLLUP_DAYS, Rollups } from "./rollups.js";
import { groupOf, reasonKey, Tally, tallyInputOf, type StatsGroupBy, type StatsTallies } from "./stats.js";

export const DAY_MS = 86_400_000;
/** A row key's finish-sequence part: 2^20 executions may end in one millisecond of one shard. */
const SEQ_SPAN = 2 ** 20;
/** Columns of a day table's row; rows are inserted INSERT_BATCH_ROWS to a statement. */
const ROW_COLUMNS = 16;
const INSERT_BATCH_ROWS = 64;
/** The layout below; a file of another layout is refused, never misread. */
const SCHEMA_VERSION = 2;

const STATE_CODES: Record<string, number> = { succeeded: 0, failed: 1, canceled: 2, skipped: 3 };
const STATES: ExecutionState[] = ["succeeded", "failed", "canceled", "skipped"];
export type FinishedState = "succeeded" | "failed" | "canceled" | "skipped";

export interface HistoryListQuery {
  tenant: string;
  jobId?: string | undefined;
  queue?: string | undefined;
  state?: FinishedState | undefined;
  reason?: string | undefined;
  /** The worker of its last attempt. */
  workerId?: string | undefined;
  /** Only executions of these jobs (a label filter, resolved by the node to the jobs that carry it). */
  jobIds?: string[] | undefined;
  /** Finish time in [finishedFromMs, finishedToMs). */
  finishedFromMs?: number | undefined;
  finishedToMs?: number | undefined;
  /** Scheduled time in [scheduledFromMs, scheduledToMs). */
  scheduledFromMs?: number | undefined;
  scheduledToMs?: number | undefined;
  /** Only what comes after this in list order: finished before it, or at the same ms with a smaller id. */
  before?: FinishedPosition | undefined;
  limit: number;
  /** Rows read at most (whole milliseconds are always finished); the page says where it stopped. */
  examineMax: number;
}

/** A stats question for one shard's file (stats.ts, rollups.ts). */
export interface StatsQuery {
  tenant: string;
  queue?: string | undefined;
  jobId?: string | undefined;
  fromMs: number;
  toMs: number;
  intervalMs: number;
  by: StatsGroupBy | null;
}

/** A place in a shard's finish order: its finish time, then its number among those that ended in that ms. */
export interface FinishPlace {
  ms: number;
  seq: number;
}

export function comparePlaces(a: FinishPlace, b: FinishPlace): number {
  return a.ms - b.ms || a.seq - b.seq;
}

/** Log entries this file skipped (gaps table); `after`/`before` bound its missing rows (null: recorded before fills existed). */
export interface HistoryGap {
  id: number;
  from: number;
  to: number;
  at: number;
  after: FinishPlace | null;
  before: FinishPlace | null;
}

/** A place in the finished part of the list's order (finishedAt descending, then id descending). */
export type FinishedPosition = Extract<ListPosition, { live: false }>;

export interface HistoryPage {
  items: ExecutionFacts[];
  /**
   * Set when the examine budget ran out before `limit` items matched: nothing at or after this
   * position is missing from `items`, and the next page continues before it.
   */
  stoppedAt: FinishedPosition | null;
}

interface Detail {
  a?: AttemptInfo[];
  p?: unknown;
  r?: unknown;
  o?: string;
  i?: string;
  pr?: number;
}

type RawRow = [
  k: number, tenant: number, job: number | null, queue: number, state: number, reason: number | null, sched: number,
  created: number, ready: number | null, run: number | null, attempt: number, worker: number | null, claim: number | null,
  xid: string | null, detail: string | null,
];
const COLUMNS = "k, tenant, job, queue, state, reason, sched, created, ready, run, attempt, worker, claim, xid, detail";

export class HistoryDb {
  private readonly db: Database.Database;
  private readonly nameIds = new Map<string, number>();
  private readonly names: string[] = [];
  /** Days with a table, ascending, and the last key written in each. */
  private days: number[] = [];
  private readonly lastKey = new Map<number, number>();
  private readonly statements: StatementCache;
  private inTransaction = false;
  private appliedIndex: number;
  private readonly insertName: Database.Statement;
  private readonly setApplied: Database.Statement;
  /** The audit trail's day tables, in this file (audit-tables.ts). */
  private readonly audit: AuditTables;
  /** Row values waiting for writeQueued, all of day `queuedDay`. */
  private queued: Array<number | string | null> = [];
  private queuedDay = -1;
  /** Minute and hour rollups of the rows, in this file (rollups.ts). */
  private readonly rollups: Rollups;
  /** Each job's counts and last run, in this file (job-runs.ts). */
  private readonly jobRunsTable: JobRunsTable;

  constructor(readonly file: string) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    this.statements = new StatementCache(this.db);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("cache_size = -65536");
    // A checkpoint copies the WAL's pages into the file and syncs both: every 64 MiB of WAL rather
    // than SQLite's 4 MiB, a page rewritten by many commits is copied once (bench/RESULTS.md, issue 13).
    this.db.pragma("wal_autocheckpoint = 16384");
    this.db.exec(`CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS names (n INTEGER PRIMARY KEY, s TEXT NOT NULL UNIQUE);
      CREATE TABLE IF NOT EXISTS gaps (from_index INTEGER, to_index INTEGER, at INTEGER);
      CREATE TABLE IF NOT EXISTS exports (day INTEGER PRIMARY KEY, at INTEGER NOT NULL, rows INTEGER NOT NULL);
      INSERT OR IGNORE INTO meta VALUES ('applied', 0);
      INSERT OR IGNORE INTO meta VALUES ('schema', ${SCHEMA_VERSION});`);
    const schema = (this.db.prepare("SELECT value FROM meta WHERE key = 'schema'").get() as { value: number }).value;
    // Gaps gained the bounds of their missing rows (history-fill): files from before get the columns.
    const gapColumns = (this.db.prepare("PRAGMA table_info(gaps)").all() as Array<{ name: string }>).map((c) => c.name);
    for (const column of ["after_ms", "after_seq", "before_ms", "before_seq", "filled_at"]) {
      if (!gapColumns.includes(column)) this.db.exec(`ALTER TABLE gaps ADD COLUMN ${column} INTEGER`);
    }
    if (schema !== SCHEMA_VERSION) throw new Error(`history file ${file} has schema ${schema}; this version reads ${SCHEMA_VERSION}`);
    for (const { n, s } of this.db.prepare("SELECT n, s FROM names").all() as Array<{ n: number; s: string }>) {
      this.names[n] = s;
      this.nameIds.set(s, n);
    }
    this.appliedIndex = (this.db.prepare("SELECT value FROM meta WHERE key = 'applied'").get() as { value: number }).value;
    for (const { name } of this.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'd[0-9]*'").all() as Array<{ name: string }>) {
      const day = Number(name.slice(1));
      this.days.push(day);
      const last = this.db.prepare(`SELECT max(k) AS k FROM ${name}`).get() as { k: number | null };
      this.lastKey.set(day, last.k ?? -1);
    }
    this.days.sort((a, b) => a - b);
    this.insertName = this.db.prepare("INSERT INTO names (n, s) VALUES (?, ?)");
    this.setApplied = this.db.prepare("UPDATE meta SET value = ? WHERE key = 'applied'");
    const names: NameTable = { idOf: (s) => this.nameId(s), find: (s) => this.nameIds.get(s), nameOf: (n) => this.names[n]! };
    this.audit = new AuditTables(this.db, names);
    this.rollups = new Rollups(this.db, names);
    this.jobRunsTable = new JobRunsTable(this.db, names);
  }

  /** The last log index whose finished executions are stored (committed or in the open transaction). */
  get applied(): number {
    return this.appliedIndex;
  }

  get dayTables(): readonly number[] {
    return this.days;
  }

  /**
   * Store executions that ended, and the audited changes made, in log entries after the watermark,
   * up to and including `through`. Rows come in apply order; a row whose key is not after the last
   * one written is a broken invariant (a replay that was not skipped, or records applied out of
   * order) and throws.
   */
  append(rows: ExecutionFacts[], through: number, audit: AuditRow[] = []): void {
    if (through < this.appliedIndex) throw new Error(`history: rows through ${through} arrived after ${this.appliedIndex}`);
    this.begin();
    for (const f of rows) this.insert(f);
    this.writeQueued();
    for (const a of audit) {
      if (a.index <= this.appliedIndex || a.index > through) throw new Error(`history: audit entry at ${a.index} outside (${this.appliedIndex}, ${through}]`);
      this.audit.insert(a);
    }
    this.appliedIndex = through;
    this.setApplied.run(through);
  }

  /**
   * A replica that skipped log entries (it installed a snapshot): their history is not here. The
   * rows missing are those after this file's last row and before `before`, the snapshot's place in
   * finish order; the audit entries missing, those of the skipped indexes. fill() brings them.
   */
  recordGap(fromIndex: number, toIndex: number, at: number, before: FinishPlace | null = null): void {
    this.begin();
    const after = this.lastPlace();
    this.db
      .prepare("INSERT INTO gaps (from_index, to_index, at, after_ms, after_seq, before_ms, before_seq) VALUES (?, ?, ?, ?, ?, ?, ?)")
      .run(fromIndex, toIndex, at, after.ms, after.seq, before?.ms ?? null, before?.seq ?? null);
    this.appliedIndex = toIndex;
    this.setApplied.run(toIndex);
  }

  /** The gaps not filled yet, oldest first. */
  gaps(): HistoryGap[] {
    const rows = this.db.prepare("SELECT rowid, from_index, to_index, at, after_ms, after_seq, before_ms, before_seq FROM gaps WHERE filled_at IS NULL ORDER BY from_index").raw(true).all() as Array<Array<number | null>>;
    return rows.map(([id, from, to, at, afterMs, afterSeq, beforeMs, beforeSeq]) => ({
      id: id!,
      from: from!,
      to: to!,
      at: at!,
      after: afterMs === null ? null : { ms: afterMs, seq: afterSeq! },
      before: beforeMs === null ? null : { ms: beforeMs, seq: beforeSeq! },
    }));
  }

  /** Whether this file holds every row and audit entry of log entries (fromIndex, toIndex]: a peer may fill a gap from it. */
  covers(fromIndex: number, toIndex: number): boolean {
    return this.appliedIndex >= toIndex && !this.gaps().some((g) => g.from <= toIndex && g.to > fromIndex);
  }

  /** Rows after `after` and before `before` in finish order, at most `limit`, oldest first (a peer's gap, from this file). */
  rowsBetween(after: FinishPlace, before: FinishPlace, limit: number): ExecutionFacts[] {
    const out: ExecutionFacts[] = [];
    for (const day of this.days) {
      const start = day * DAY_MS;
      if (start + DAY_MS <= after.ms || start > before.ms || out.length >= limit) continue;
      const kLow = after.ms < start ? -1 : (after.ms - start) * SEQ_SPAN + after.seq;
      const kHigh = before.ms >= start + DAY_MS ? DAY_MS * SEQ_SPAN : (before.ms - start) * SEQ_SPAN + before.seq;
      const rows = this.statements.get(`SELECT ${COLUMNS} FROM d${day} WHERE k > ? AND k < ? ORDER BY k LIMIT ?`).all(kLow, kHigh, limit - out.length) as RawRow[];
      for (const row of rows) out.push(this.decode(day, row));
    }
    return out;
  }

  /** The audit entries of log entries (fromIndex, toIndex] (a peer's gap, from this file). */
  auditBetween(fromIndex: number, toIndex: number): AuditRow[] {
    return this.audit.between(fromIndex, toIndex);
  }

  /**
   * Fill a gap with rows a peer sent (rowsBetween's, in order, from where the gap's filling
   * stands); `audit` and `done` with the last of them. Each row must fall inside the gap: a row
   * outside it would be one written twice, and throws.
   */
  fill(gapId: number, rows: ExecutionFacts[], audit: AuditRow[] | null, done: boolean): void {
    const gap = this.gaps().find((g) => g.id === gapId);
    if (!gap || gap.after === null || gap.before === null) throw new Error(`history: no gap ${gapId} to fill`);
    // Everything is checked before anything is written: a page is written whole or not at all.
    let after = gap.after;
    for (const f of rows) {
      const place = { ms: f.finishedAt!, seq: f.finishSeq };
      if (comparePlaces(place, after) <= 0 || comparePlaces(place, gap.before) >= 0) throw new Error(`history: row ${f.id} falls outside gap ${gapId}`);
      after = place;
    }
    for (const a of audit ?? []) {
      if (a.index < gap.from || a.index > gap.to) throw new Error(`history: audit entry at ${a.index} falls outside gap ${gapId}`);
    }
    this.begin();
    for (const f of rows) this.insert(f, true);
    this.writeQueued();
    for (const a of audit ?? []) this.audit.insert(a);
    this.db.prepare("UPDATE gaps SET after_ms = ?, after_seq = ?, filled_at = ? WHERE rowid = ?").run(after.ms, after.seq, done ? Date.now() : null, gapId);
  }

  /** This file's last row's place in finish order ({0, -1} when it has none). */
  private lastPlace(): FinishPlace {
    for (let i = this.days.length - 1; i >= 0; i--) {
      const day = this.days[i]!;
      const k = this.lastKey.get(day)!;
      if (k >= 0) return { ms: day * DAY_MS + Math.floor(k / SEQ_SPAN), seq: k % SEQ_SPAN };
    }
    return { ms: 0, seq: -1 };
  }

  /**
   * Commit what was appended. `durable`: make it survive a power cut too (a snapshot is about to
   * drop the log behind it): with synchronous = NORMAL a commit reaches the WAL file unsynced, and
   * a checkpoint syncs the WAL before it copies it into the database (and syncs that). The safety
   * level itself cannot change inside a transaction, so it stays NORMAL.
   */
  commit(durable = false): void {
    if (this.inTransaction) {
      this.flushAggregates();
      this.db.exec("COMMIT");
      this.inTransaction = false;
    }
    if (durable) this.db.pragma("wal_checkpoint(FULL)");
  }

  get uncommitted(): boolean {
    return this.inTransaction;
  }

  /** Drop every day table (executions and audit) wholly before `cutoffMs` (retention); returns the days dropped. */
  dropBefore(cutoffMs: number): number[] {
    const cutoffDay = Math.floor(cutoffMs / DAY_MS);
    const expired = this.days.filter((d) => d < cutoffDay);
    const newestDay = this.days[this.days.length - 1] ?? cutoffDay;
    const minuteCutoffDay = newestDay - MINUTE_ROLLUP_DAYS;
    const rollupsExpire = (this.rollups.oldestMinuteDay ?? Infinity) < Math.max(cutoffDay, minuteCutoffDay);
    if (expired.length === 0 && !rollupsExpire && !this.audit.dayTables.some((d) => d < cutoffDay)) return [];
    this.begin();
    this.flushAggregates();
    for (const day of expired) {
      this.db.exec(`DROP TABLE d${day}`);
      this.lastKey.delete(day);
      this.statements.forgetTable(`d${day}`);
    }
    this.days = this.days.filter((d) => d >= cutoffDay);
    const dropped = new Set([...expired, ...this.audit.dropBefore(cutoffDay), ...this.rollups.dropBefore(cutoffDay, minuteCutoffDay)]);
    return [...dropped].sort((a, b) => a - b);
  }


  close(): void {
    this.commit();
    this.db.close();
  }

  // ---------------------------------------------------------------------------------------------
  // reads

  /** The finished execution with this id, or null. */
  get(tenant: string, id: string): ExecutionFacts | null {
    const tenantN = this.nameIds.get(tenant);
    if (tenantN === undefined) return null;
    const colon = id.indexOf(":");
    const jobN = colon > 0 ? this.nameIds.get(id.slice(0, colon)) : undefined;
    const scheduled = colon > 0 && /^\d{1,16}$/.test(id.slice(colon + 1)) ? Number(id.slice(colon + 1)) : null;
    if (colon > 0 && jobN === undefined) return null;
    // Every id carries a time it cannot have ended before, less a day (a fire's id its scheduled
    // time; other ids the creating node's clock in base 36); without one, every day is searched.
    const hint = scheduled ?? idTimeHint(id, colon);
    const fromDay = hint === null ? -Infinity : Math.floor(hint / DAY_MS) - 1;
    for (let i = this.days.length - 1; i >= 0 && this.days[i]! >= fromDay; i--) {
      const day = this.days[i]!;
      const row =
        scheduled !== null
          ? (this.statements.get(`SELECT ${COLUMNS} FROM d${day} WHERE job = ? AND xid IS NULL AND (k >> 20) - sched = ?`).get(jobN, scheduled - day * DAY_MS) as RawRow | undefined)
          : (this.statements.get(`SELECT ${COLUMNS} FROM d${day} WHERE xh = ? AND xid = ?`).get(idKey(id, colon), id) as RawRow | undefined);
      if (row && row[1] === tenantN) return this.decode(day, row);
    }
    return null;
  }

  /** Finished executions in list order (newest finish first, then id descending). */
  list(q: HistoryListQuery): HistoryPage {
    const items: ExecutionFacts[] = [];
    const none: HistoryPage = { items, stoppedAt: null };
    const tenantN = this.nameIds.get(q.tenant);
    const jobN = q.jobId === undefined ? null : this.nameIds.get(q.jobId);
    const queueN = q.queue === undefined ? null : this.nameIds.get(q.queue);
    const reasonN = q.reason === undefined ? null : this.nameIds.get(q.reason);
    const workerN = q.workerId === undefined ? null : this.nameIds.get(q.workerId);
    if (tenantN === undefined || jobN === undefined || queueN === undefined || reasonN === undefined || workerN === undefined) return none;
    const jobsN = q.jobIds === undefined ? null : new Set(q.jobIds.flatMap((id) => this.nameIds.get(id) ?? []));
    if (jobsN !== null && jobsN.size === 0) return none;
    const stateN = q.state === undefined ? null : STATE_CODES[q.state]!;
    // The newest millisecond that may hold a match, and the oldest.
    // (A cursor at a millisecond with id "" — where an examine budget ran out — has nothing left in it.)
    const beforeMs = q.before === undefined ? Infinity : q.before.id === "" ? q.before.finishedAt - 1 : q.before.finishedAt;
    const top = Math.min(beforeMs, (q.finishedToMs ?? Infinity) - 1);
    const bottom = q.finishedFromMs ?? -Infinity;
    if (top < bottom) return none;
    let examined = 0;
    let group: ExecutionFacts[] = [];
    let groupMs = NaN;
    const flush = (): boolean => {
      group.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
      for (const f of group) items.push(f);
      group = [];
      return items.length >= q.limit;
    };
    for (let i = this.days.length - 1; i >= 0; i--) {
      const day = this.days[i]!;
      const start = day * DAY_MS;
      if (start + DAY_MS <= bottom) break;
      if (start > top) continue;
      const kHigh = (Math.min(top - start, DAY_MS - 1) + 1) * SEQ_SPAN;
      const kLow = Math.max(0, bottom - start) * SEQ_SPAN;
      const where = [`k >= ? AND k < ?`];
      const params: number[] = [kLow, kHigh];
      if (jobN !== null) {
        where.push("job = ?");
        params.push(jobN);
      }
      if (stateN !== null) {
        where.push(stateN === 0 ? "state = 0" : "state = ? AND state <> 0");
        if (stateN !== 0) params.push(stateN);
      }
      const rows = this.statements.get(`SELECT ${COLUMNS} FROM d${day} WHERE ${where.join(" AND ")} ORDER BY k DESC`).iterate(...params) as IterableIterator<RawRow>;
      for (const row of rows) {
        const ms = start + Math.floor(row[0] / SEQ_SPAN);
        if (ms !== groupMs) {
          if (group.length > 0 && flush()) return { items: items.slice(0, q.limit), stoppedAt: null };
          if (examined >= q.examineMax) return { items, stoppedAt: { live: false, finishedAt: groupMs, id: "" } };
          groupMs = ms;
        }
        examined++;
        if (row[1] !== tenantN) continue;
        if (queueN !== null && row[3] !== queueN) continue;
        if (reasonN !== null && row[5] !== reasonN) continue;
        if (workerN !== null && row[11] !== workerN) continue;
        if (jobsN !== null && (row[2] === null || !jobsN.has(row[2]))) continue;
        const scheduledAt = ms - row[6];
        if (q.scheduledFromMs !== undefined && scheduledAt < q.scheduledFromMs) continue;
        if (q.scheduledToMs !== undefined && scheduledAt >= q.scheduledToMs) continue;
        const facts = this.decode(day, row);
        if (q.before && ms === q.before.finishedAt && !(facts.id < q.before.id)) continue;
        group.push(facts);
      }
    }
    flush();
    return { items: items.slice(0, q.limit), stoppedAt: null };
  }

  /**
   * Add the stats of [fromMs, toMs) to `into`: from the rollups, or — for one job, or grouped by
   * job, which rollups do not keep — from the rows themselves (rowsToScan says how many first).
   */
  stats(q: StatsQuery, into: StatsTallies): void {
    this.flushAggregates();
    if (q.jobId === undefined && q.by !== "job") {
      const spanMs = q.fromMs % HOUR_MS === 0 && q.toMs % HOUR_MS === 0 && q.intervalMs % HOUR_MS === 0 ? HOUR_MS : MINUTE_MS;
      return this.rollups.query({ ...q, by: q.by as Exclude<StatsGroupBy, "job"> | null, spanMs }, into);
    }
    const tenantN = this.nameIds.get(q.tenant);
    const jobN = q.jobId === undefined ? null : this.nameIds.get(q.jobId);
    const queueN = q.queue === undefined ? null : this.nameIds.get(q.queue);
    if (tenantN === undefined || jobN === undefined || queueN === undefined) return;
    for (const day of this.days) {
      const start = day * DAY_MS;
      if (start + DAY_MS <= q.fromMs || start >= q.toMs) continue;
      const kLow = Math.max(0, q.fromMs - start) * SEQ_SPAN;
      const kHigh = Math.min(DAY_MS, q.toMs - start) * SEQ_SPAN;
      const byJob = jobN === null ? "" : " AND job = ?";
      const rows = this.statements.get(`SELECT ${COLUMNS} FROM d${day} WHERE k >= ? AND k < ?${byJob}`).iterate(...(jobN === null ? [kLow, kHigh] : [kLow, kHigh, jobN])) as IterableIterator<RawRow>;
      for (const row of rows) {
        if (row[1] !== tenantN || (queueN !== null && row[3] !== queueN)) continue;
        const f = this.decode(day, row);
        const x = tallyInputOf(f);
        const one = new Tally();
        one.add(x);
        const bucket = q.fromMs + Math.floor((f.finishedAt! - q.fromMs) / q.intervalMs) * q.intervalMs;
        into.add(bucket, groupOf(q.by, { ...f, state: x.state }), f.reason === null ? null : reasonKey(x.state, f.reason), one);
      }
    }
  }

  /** The rows `stats` would read for this query (a bound from the hour rollups unless it names a job). */
  rowsToScan(q: StatsQuery): number {
    this.flushAggregates();
    const jobN = q.jobId === undefined ? null : this.nameIds.get(q.jobId);
    if (jobN === undefined) return 0;
    if (jobN === null) return this.rollups.count(q.tenant, q.fromMs, q.toMs);
    let n = 0;
    for (const day of this.days) {
      const start = day * DAY_MS;
      if (start + DAY_MS <= q.fromMs || start >= q.toMs) continue;
      const kLow = Math.max(0, q.fromMs - start) * SEQ_SPAN;
      const kHigh = Math.min(DAY_MS, q.toMs - start) * SEQ_SPAN;
      n += (this.statements.get(`SELECT count(*) FROM d${day} WHERE job = ? AND k >= ? AND k < ?`).get(jobN, kLow, kHigh) as [number])[0];
    }
    return n;
  }

  /** A job's counts and last run (job-runs.ts). */
  jobRuns(tenant: string, jobId: string): JobRuns {
    this.flushAggregates();
    return this.jobRunsTable.get(tenant, jobId);
  }

  /** Aggregates collected in the open transaction are written (a query sees its own connection's writes). */
  private flushAggregates(): void {
    if (!this.inTransaction) return;
    this.rollups.flush();
    this.jobRunsTable.flush();
  }

  /** The audit trail of this shard (its id is part of each entry's id), newest first. */
  listAudit(shard: number, q: AuditQuery): AuditRecord[] {
    return this.audit.list(shard, q);
  }

  /** Audit entries in the file (tests). */
  auditCount(): number {
    return this.audit.count();
  }

  // Parquet export (parquet-export.ts; the history thread picks the days): a day's rows, and
  // which days went out. `exports` (created with the file) remembers them: each day once.

  /**
   * One day's executions in key order (finish time, then finish order). Read a page at a time,
   * each page whole, so no statement stays open between pages: the caller may pause between rows
   * while the thread writes and reads other rows. Throws if the day is dropped meanwhile.
   */
  *dayRows(day: number, pageRows = 4096): Generator<ExecutionFacts> {
    let afterKey = -1;
    for (;;) {
      if (!this.lastKey.has(day)) throw new Error(`history: day ${day} is not in ${this.file}`);
      const page = this.statements.get(`SELECT ${COLUMNS} FROM d${day} WHERE k > ? ORDER BY k LIMIT ?`).all(afterKey, pageRows) as RawRow[];
      for (const row of page) yield this.decode(day, row);
      if (page.length < pageRows) return;
      afterKey = page[page.length - 1]![0];
    }
  }

  /** The days exported so far. */
  exportedDays(): Set<number> {
    return new Set((this.db.prepare("SELECT day FROM exports").raw(true).all() as number[][]).map(([day]) => day!));
  }

  /** Remember that a day went out (`at`: when, `rows`: how many); committed with the next commit. */
  markExported(day: number, at: number, rows: number): void {
    this.begin();
    this.db.prepare("INSERT OR REPLACE INTO exports VALUES (?, ?, ?)").run(day, at, rows);
  }

  /** Rows in the file (tests and the benchmark). */
  count(): number {
    let n = 0;
    for (const day of this.days) n += (this.db.prepare(`SELECT count(*) AS n FROM d${day}`).get() as { n: number }).n;
    return n;
  }

  // ---------------------------------------------------------------------------------------------
  // encoding

  private begin(): void {
    if (this.inTransaction) return;
    this.db.exec("BEGIN");
    this.inTransaction = true;
  }

  private nameId(s: string): number {
    let n = this.nameIds.get(s);
    if (n === undefined) {
      n = this.names.length;
      this.insertName.run(n, s);
      this.names.push(s);
      this.nameIds.set(s, n);
    }
    return n;
  }

  private table(day: number): void {
    if (this.lastKey.has(day)) return;
    const d = `d${day}`;
    this.db.exec(`CREATE TABLE ${d} (k INTEGER PRIMARY KEY, tenant INTEGER NOT NULL, job INTEGER, queue INTEGER NOT NULL, state INTEGER NOT NULL,
        reason INTEGER, sched INTEGER NOT NULL, created INTEGER NOT NULL, ready INTEGER, run INTEGER, attempt INTEGER NOT NULL,
        worker INTEGER, claim INTEGER, xid TEXT, xh INTEGER, detail TEXT);
      CREATE INDEX ${d}_job ON ${d} (job) WHERE job IS NOT NULL;
      CREATE INDEX ${d}_state ON ${d} (state) WHERE state <> 0;
      CREATE INDEX ${d}_xh ON ${d} (xh) WHERE xh IS NOT NULL;`);
    this.lastKey.set(day, -1);
    this.days.push(day);
    this.days.sort((a, b) => a - b);
  }

  /** `filling`: a row of a gap, before rows already written (fill checked its place). */
  private insert(f: ExecutionFacts, filling = false): void {
    const finishedAt = f.finishedAt;
    const state = STATE_CODES[f.state];
    if (finishedAt === null || state === undefined) throw new Error(`history: execution ${f.id} has not ended (${f.state})`);
    const day = Math.floor(finishedAt / DAY_MS);
    this.table(day);
    const last = this.lastKey.get(day)!;
    let k = (finishedAt - day * DAY_MS) * SEQ_SPAN + Math.min(f.finishSeq, SEQ_SPAN - 1);
    if (filling) {
      if (k > last) this.lastKey.set(day, k);
    } else if (k <= last) {
      // Only a millisecond with more than 2^20 ends runs past its sequence span; anything else is
      // a row out of order or written twice.
      if (f.finishSeq < SEQ_SPAN - 1) throw new Error(`history: execution ${f.id} (key ${k}) does not follow key ${last}`);
      k = last + 1;
    }
    if (!filling) this.lastKey.set(day, k);
    const plainId = f.jobId !== null && f.id === `${f.jobId}:${f.scheduledAt}`;
    const attempts = f.attempts ?? [];
    const only = attempts.length === 1 ? attempts[0]! : null;
    const plainAttempt =
      only !== null && f.state === "succeeded" && only.outcome === "succeeded" && only.attempt === 1 && f.attempt === 1 && only.finishedAt === finishedAt && (only.error === null || only.error === undefined) && only.logs === undefined && only.logsDropped === undefined && only.progress === undefined;
    const detail: Detail = {};
    let hasDetail = false;
    if (attempts.length > 0 && !plainAttempt) (detail.a = attempts), (hasDetail = true);
    if (f.payload !== null && f.payload !== undefined) (detail.p = f.payload), (hasDetail = true);
    if (f.result !== undefined) (detail.r = f.result), (hasDetail = true);
    if (f.orderingKey !== null) (detail.o = f.orderingKey), (hasDetail = true);
    if (f.idempotencyKey !== null) (detail.i = f.idempotencyKey), (hasDetail = true);
    if (f.priority !== DEFAULT_PRIORITY) (detail.pr = f.priority), (hasDetail = true);
    const lastAttempt = attempts.length > 0 ? attempts[attempts.length - 1]! : null;
    const tenantN = this.nameId(f.tenant);
    const queueN = this.nameId(f.queue);
    const reasonN = f.reason === null ? null : this.nameId(f.reason);
    this.rollups.add(finishedAt, tenantN, queueN, reasonN ?? -1, tallyInputOf(f));
    if (f.jobId !== null) this.jobRunsTable.add(tenantN, this.nameId(f.jobId), state, reasonN, f);
    this.queueInsert(
      day,
      k,
      tenantN,
      f.jobId === null ? null : this.nameId(f.jobId),
      queueN,
      state,
      reasonN,
      finishedAt - f.scheduledAt,
      f.scheduledAt - f.createdAt,
      f.readyAt === 0 ? null : f.readyAt - f.scheduledAt,
      f.startedAt === null ? null : finishedAt - f.startedAt,
      f.attempt,
      lastAttempt === null ? null : this.nameId(lastAttempt.workerId),
      plainAttempt ? finishedAt - only!.claimedAt : null,
      plainId ? null : f.id,
      plainId ? null : idKey(f.id, f.id.indexOf(":")),
      hasDetail ? JSON.stringify(detail) : null,
    );
  }

  /**
   * Rows wait here and go to SQLite INSERT_BATCH_ROWS at a time, one statement each: a statement
   * run costs better-sqlite3 about as much as a row's own insert. Written at the end of every
   * append and fill, before anything reads.
   */
  private queueInsert(day: number, ...values: Array<number | string | null>): void {
    if (this.queuedDay !== day) this.writeQueued();
    this.queuedDay = day;
    for (const v of values) this.queued.push(v);
    if (this.queued.length >= INSERT_BATCH_ROWS * ROW_COLUMNS) this.writeQueued();
  }

  private writeQueued(): void {
    const day = this.queuedDay;
    const values = this.queued;
    if (values.length === 0) return;
    const rows = values.length / ROW_COLUMNS;
    const one = `(${new Array(ROW_COLUMNS).fill("?").join(", ")})`;
    this.statements.get(`INSERT INTO d${day} VALUES ${new Array(rows).fill(one).join(", ")}`).run(...values);
    this.queued = [];
  }

  private decode(day: number, row: RawRow): ExecutionFacts {
    const [k, tenant, job, queue, state, reason, sched, created, ready, run, attempt, worker, claim, xid, detailText] = row;
    const finishedAt = day * DAY_MS + Math.floor(k / SEQ_SPAN);
    const scheduledAt = finishedAt - sched;
    const jobId = job === null ? null : this.names[job]!;
    const detail: Detail = detailText === null ? {} : (JSON.parse(detailText) as Detail);
    const workerId = worker === null ? null : this.names[worker]!;
    const attempts: AttemptInfo[] | null =
      detail.a ?? (claim !== null && workerId !== null ? [{ attempt: 1, workerId, claimedAt: finishedAt - claim, finishedAt, outcome: "succeeded", error: null }] : null);
    return {
      id: xid ?? `${jobId}:${scheduledAt}`,
      tenant: this.names[tenant]!,
      jobId,
      queue: this.names[queue]!,
      state: STATES[state]!,
      reason: reason === null ? null : this.names[reason]!,
      scheduledAt,
      createdAt: scheduledAt - created,
      readyAt: ready === null ? 0 : scheduledAt + ready,
      startedAt: run === null ? null : finishedAt - run,
      finishedAt,
      finishSeq: k % SEQ_SPAN,
      attempt,
      attempts,
      payload: detail.p ?? null,
      priority: detail.pr ?? DEFAULT_PRIORITY,
      result: "r" in detail ? detail.r : undefined,
      orderingKey: detail.o ?? null,
      idempotencyKey: detail.i ?? null,
    };
  }


}

/**
 * The xh index's key for an id: its creation time (idTimeHint) × 2^12 plus 12 bits of its hash, so
 * keys grow with time; ids without a time get their hash alone (small keys, apart from the rest).
 * An integer of at most 53 bits: 8 bytes in the index instead of the ~25 of the id.
 */
function idKey(id: string, colon: number): number {
  const time = idTimeHint(id, colon);
  const hash = idHash(id);
  return time === null ? hash : time * 4096 + (hash & 4095);
}

/** 32-bit FNV-1a of an id. */
function idHash(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The creating node's clock in an id made by `uniquePart` (node.ts): ad-hoc `x` + 4 hex digits of
 * slot, or a job's `m` (manual trigger) or `r` (replay) after the colon, then the time in base 36
 * (8 digits until 2059). Null when the id does not have that shape.
 */
function idTimeHint(id: string, colon: number): number | null {
  const start = colon > 0 ? colon + 2 : 5;
  const digits = id.slice(start, start + 8);
  if (!/^[0-9a-z]{8}$/.test(digits)) return null;
  const ms = parseInt(digits, 36);
  return Number.isSafeInteger(ms) ? ms : null;
}
