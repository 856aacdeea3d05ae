/**
 * Issue 13, step 1: which embedded engine keeps the execution history. Finished executions live in
 * memory only today (24 h / 50,000 per shard); the history store must keep them 400 days, off the
 * heap, queryable, retained by dropping whole time partitions. This file measures the candidates
 * on the same generated history so the choice is made on figures, not on reputation. It builds no
 * part of the feature: each design here is the smallest store that answers the issue's query
 * shapes, and src/ does not use it.
 *
 * Designs (argv picks some; default all):
 * - `sqlite`: better-sqlite3, one rowid table per day whose key is (ms since the day's start) × 256
 *   + a sequence (so the key is the finish time and a time range is a key range), an index on the
 *   job (its entries are (job, key): a job's newest first for free) and a partial index on the
 *   state for the rare states; WAL, synchronous=NORMAL. Drop = DROP TABLE.
 * - `duckdb-native`: @duckdb/node-api, one table in time order (zone maps prune time ranges),
 *   appended with data chunks. DuckDB has no partition drop for a table: drop = DELETE + CHECKPOINT.
 * - `duckdb-parquet`: today's rows appended to a DuckDB table (the hot part, durable), compacted at
 *   the end of the day into one Parquet file per day per shard sorted by (job, finish time), so the
 *   row-group statistics find one job's rows; DuckDB queries the files. Drop = unlink the file.
 *   A small DuckDB table `job_days` (job, day), filled at compaction, says which days' files hold
 *   a job, so a lookup opens those files only (about 0.5 ms per file otherwise, for 400 files).
 * - `mix`: SQLite for today (the `sqlite` schema), compacted at the end of the day into the same
 *   Parquet files as `duckdb-parquet` (rows read from SQLite, appended to DuckDB, written sorted).
 *
 * Every design keeps hourly and daily rollups (hour or day, queue, state → count, run ms) written as
 * hours close (counts over ≤ 2 days read the hourly one, longer ranges the daily one),
 * and a dictionary of jobs (job key → tenant, queue, job id): a row holds the job's key, and the
 * execution id `{jobId}:{scheduledAtMs}` is rebuilt from it; ad-hoc ids (`x…`) are kept as text.
 *
 * Figures per design: bulk ingest (rows/s, CPU µs per row: process CPU, engine threads included,
 * row generation excluded), ingest in batches of 2,000 rows each committed on its own (as fast as
 * it goes, and paced at 20,000 rows/s), bytes per row on disk (the mixed history; no-op
 * executions; skipped fires), the query shapes' p50/p99, and the time to drop the oldest day.
 * Plus, once, the main-thread cost of handing 2,000 finished executions to a writer thread.
 *
 * Run: npm run build && node dist/bench/history-engines.js [sqlite duckdb-native duckdb-parquet mix]
 * Environment: HISTORY_ROWS (10,000,000), HISTORY_DAYS (400), HISTORY_JOBS (100,000),
 * HISTORY_QUERIES (200 per page shape), HISTORY_BATCH_ROWS (1,000,000), HISTORY_PACED_SEC (10),
 * HISTORY_SIZE_ROWS (1,000,000), HISTORY_DUCKDB_THREADS (2), HISTORY_ROW_GROUP (16,384),
 * HISTORY_JOB_DAYS (1: the Parquet designs keep the job → days directory; 0: without it),
 * HISTORY_DIR (the OS temp dir; each design's files are deleted when it ends, unless HISTORY_KEEP=1).
 * Each design runs in its own process; prints one JSON document. Standalone on purpose, not a
 * scenario of bench/run.ts: at 10 M rows the four designs take several minutes, and `npm run
 * bench` with no argument runs every scenario. Figures: bench/RESULTS.md, issue 13.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import {
  BIGINT,
  DuckDBAppender,
  DuckDBConnection,
  DuckDBDataChunk,
  DuckDBInstance,
  INTEGER,
  USMALLINT,
  UTINYINT,
  VARCHAR,
} from "@duckdb/node-api";
import { percentile, round, sleep } from "./stats.js";

const env = (name: string, dflt: number) => Number(process.env[name] ?? dflt);
const ROWS = env("HISTORY_ROWS", 10_000_000);
const DAYS = env("HISTORY_DAYS", 400);
const JOBS = env("HISTORY_JOBS", 100_000);
const QUERIES = env("HISTORY_QUERIES", 200);
const BATCH_ROWS = env("HISTORY_BATCH_ROWS", 1_000_000);
const PACED_SEC = env("HISTORY_PACED_SEC", 10);
const SIZE_ROWS = env("HISTORY_SIZE_ROWS", 1_000_000);
const DUCK_THREADS = env("HISTORY_DUCKDB_THREADS", 2);
const ROW_GROUP = env("HISTORY_ROW_GROUP", 16_384);
/** 1: the Parquet designs keep a directory of the days each job ran on (0: a lookup reads every day's file). */
const JOB_DAYS = env("HISTORY_JOB_DAYS", 1) === 1;
const BASE_DIR = process.env.HISTORY_DIR ?? os.tmpdir();

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
/** Day 0 of the generated history; DAYS days follow it. */
const BASE_MS = Date.UTC(2025, 10, 3);
const BATCH = 2_000;
const TARGET_RATE = 20_000;
const PAGE = 50;

// States and reasons as small integers; the view maps them back.
const SUCCEEDED = 0;
const FAILED = 1;
const CANCELED = 2;
const SKIPPED = 3;
const STATES = ["succeeded", "failed", "canceled", "skipped"] as const;
const REASONS = [null, "misfire", "overlap", "canceled"] as const;
const TENANTS = 20;
const QUEUES = 40;
const WORKERS = 500;

// ---------------------------------------------------------------------------------------------
// The generated history

/** Deterministic PRNG (mulberry32): the same rows for every design. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Jobs {
  ids: string[];
  tenant: Uint16Array;
  queue: Uint16Array;
}

function makeJobs(n: number): Jobs {
  const r = rng(7);
  const names = ["report", "sync", "cleanup", "email-digest", "billing", "etl", "ping", "backup"];
  const ids: string[] = [];
  const tenant = new Uint16Array(n);
  const queue = new Uint16Array(n);
  for (let j = 0; j < n; j++) {
    ids.push(`${names[j % names.length]}-${j}`);
    tenant[j] = Math.floor(TENANTS * r() ** 2);
    queue[j] = Math.floor(QUEUES * r() ** 2);
  }
  return { ids, tenant, queue };
}

/** Rows in columns, in finish-time order. job/worker -1 = none; reason 0 = none. */
interface Batch {
  n: number;
  t: Float64Array;
  job: Int32Array;
  wait: Int32Array;
  run: Int32Array;
  tenant: Uint16Array;
  queue: Uint16Array;
  state: Uint8Array;
  reason: Uint8Array;
  attempts: Uint8Array;
  worker: Int32Array;
  result: (string | null)[];
  adhoc: (string | null)[];
}

type Kind = "mix" | "noop" | "skipped";

function emptyBatch(n: number): Batch {
  return {
    n,
    t: new Float64Array(n),
    job: new Int32Array(n),
    wait: new Int32Array(n),
    run: new Int32Array(n),
    tenant: new Uint16Array(n),
    queue: new Uint16Array(n),
    state: new Uint8Array(n),
    reason: new Uint8Array(n),
    attempts: new Uint8Array(n),
    worker: new Int32Array(n),
    result: new Array<string | null>(n),
    adhoc: new Array<string | null>(n),
  };
}

/**
 * `n` finished executions over [start, start + spanMs). Mixed history: 80 % fires of jobs (job
 * chosen with a skew: job j gets ∝ j^-2/3 of them, so a few fire every second and half fire less
 * than once a week), 20 % ad-hoc; fires 4 % skipped (misfire/overlap), 3 % failed (3 attempts),
 * 0.5 % canceled; 40 % of successes are no-ops (null result, 0–2 ms), the rest return a small
 * result and run a log-normal time (median ~20 ms); lateness mostly a few ms with a 1 % tail.
 */
function generate(jobs: Jobs, seed: number, start: number, spanMs: number, n: number, kind: Kind): Batch {
  const r = rng(seed);
  const b = emptyBatch(n);
  const nJobs = jobs.ids.length;
  const tag = ((seed * 2654435761) >>> 0).toString(16).padStart(8, "0");
  let seq = 0;
  for (let i = 0; i < n; i++) {
    const t = start + Math.floor(((i + r()) * spanMs) / n);
    b.t[i] = t;
    const isJob = kind !== "mix" || r() < 0.8;
    let state = SUCCEEDED;
    let reason = 0;
    const u = r();
    if (kind === "skipped") state = SKIPPED;
    else if (kind === "mix") {
      if (isJob) state = u < 0.04 ? SKIPPED : u < 0.07 ? FAILED : u < 0.075 ? CANCELED : SUCCEEDED;
      else state = u < 0.04 ? FAILED : u < 0.05 ? CANCELED : SUCCEEDED;
    }
    if (state === SKIPPED) reason = r() < 0.7 ? 1 : 2;
    else if (state === CANCELED) reason = 3;
    const noop = kind === "noop" || (state === SUCCEEDED && r() < 0.4);
    let wait: number;
    let run: number;
    if (state === SKIPPED) {
      wait = 1000 + Math.floor(r() * 60_000);
      run = 0;
    } else {
      wait = Math.floor(-Math.log(1 - r()) * 3) + (r() < 0.01 ? Math.floor(r() * 2000) : 0);
      if (noop || state === CANCELED) run = Math.floor(r() * 3);
      else {
        const g = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
        run = Math.min(3_600_000, Math.floor(Math.exp(3 + 1.5 * g)));
      }
    }
    b.wait[i] = wait;
    b.run[i] = run;
    b.state[i] = state;
    b.reason[i] = reason;
    b.attempts[i] = state === SKIPPED ? 0 : state === FAILED ? 3 : state === SUCCEEDED && r() < 0.02 ? 2 : 1;
    b.worker[i] = state === SKIPPED ? -1 : Math.floor(WORKERS * r());
    if (state === FAILED) {
      b.result[i] = r() < 0.5 ? `{"message":"connect ECONNREFUSED 10.0.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}:5432"}` : `{"message":"timed out after 30000 ms"}`;
    } else if (state === SUCCEEDED && !noop) {
      const v = r();
      b.result[i] = v < 0.4 ? `{"sent":${Math.floor(r() * 100)}}` : v < 0.7 ? `{"ok":true}` : `{"rows":${Math.floor(r() * 100_000)}}`;
    } else b.result[i] = null;
    if (isJob) {
      const j = Math.min(nJobs - 1, Math.floor(nJobs * r() ** 3));
      b.job[i] = j;
      b.tenant[i] = jobs.tenant[j]!;
      b.queue[i] = jobs.queue[j]!;
      b.adhoc[i] = null;
    } else {
      b.job[i] = -1;
      b.tenant[i] = Math.floor(TENANTS * r() ** 2);
      b.queue[i] = Math.floor(QUEUES * r() ** 2);
      const created = t - run - wait;
      seq = (seq + 1) % 1_679_616;
      b.adhoc[i] = `x${Math.floor(r() * 65536).toString(16).padStart(4, "0")}${created.toString(36)}${tag}${seq.toString(36).padStart(4, "0")}`;
    }
  }
  return b;
}

function slice(b: Batch, off: number, len: number): Batch {
  return {
    n: len,
    t: b.t.subarray(off, off + len),
    job: b.job.subarray(off, off + len),
    wait: b.wait.subarray(off, off + len),
    run: b.run.subarray(off, off + len),
    tenant: b.tenant.subarray(off, off + len),
    queue: b.queue.subarray(off, off + len),
    state: b.state.subarray(off, off + len),
    reason: b.reason.subarray(off, off + len),
    attempts: b.attempts.subarray(off, off + len),
    worker: b.worker.subarray(off, off + len),
    result: b.result.slice(off, off + len),
    adhoc: b.adhoc.slice(off, off + len),
  };
}

/** What a page returns: the execution as the API would show it. */
interface View {
  id: string;
  jobId: string | null;
  queue: number;
  tenant: number;
  state: string;
  reason: string | null;
  attempts: number;
  workerId: number | null;
  scheduledAt: number;
  startedAt: number;
  finishedAt: number;
  result: string | null;
}

/** Row: [finishedAt, job, wait, run, tenant, queue, state, reason, attempts, worker, result, adhoc]. */
type Row = unknown[];
const COLS = "job, wait, run, tenant, queue, state, reason, attempts, worker, result, adhoc";
/** INTEGER affinity matters: better-sqlite3 binds a JS number as a REAL, stored in 8 bytes in an untyped column. */
const SQLITE_COLS =
  "job INTEGER, wait INTEGER, run INTEGER, tenant INTEGER, queue INTEGER, state INTEGER, reason INTEGER, attempts INTEGER, worker INTEGER, result TEXT, adhoc TEXT";

function view(jobs: Jobs, finishedAt: number, r: Row, from: number): View {
  const job = r[from] as number | null;
  const wait = Number(r[from + 1]);
  const run = Number(r[from + 2]);
  const startedAt = finishedAt - run;
  const scheduledAt = startedAt - wait;
  return {
    id: job === null ? (r[from + 10] as string) : `${jobs.ids[job]}:${scheduledAt}`,
    jobId: job === null ? null : jobs.ids[job]!,
    tenant: Number(r[from + 3]),
    queue: Number(r[from + 4]),
    state: STATES[Number(r[from + 5])]!,
    reason: REASONS[Number(r[from + 6] ?? 0)] ?? null,
    attempts: Number(r[from + 7]),
    workerId: r[from + 8] === null ? null : Number(r[from + 8]),
    scheduledAt,
    startedAt,
    finishedAt,
    result: r[from + 9] as string | null,
  };
}

/** Hourly rollup (hour, queue, state → count, run ms), handed to the store when an hour closes. */
class Rollup {
  private readonly open = new Map<number, Map<number, [number, number]>>();
  add(b: Batch): void {
    for (let i = 0; i < b.n; i++) {
      const hour = Math.floor(b.t[i]! / HOUR_MS);
      let m = this.open.get(hour);
      if (!m) this.open.set(hour, (m = new Map()));
      const key = b.queue[i]! * 8 + b.state[i]!;
      const e = m.get(key);
      if (e) {
        e[0]++;
        e[1] += b.run[i]!;
      } else m.set(key, [1, b.run[i]!]);
    }
  }
  /** Rows [hour, queue, state, n, runMs] of the hours before `beforeHour` (all when Infinity). */
  close(beforeHour: number): number[][] {
    const out: number[][] = [];
    for (const [hour, m] of this.open) {
      if (hour >= beforeHour) continue;
      for (const [key, [n, runMs]] of m) out.push([hour, Math.floor(key / 8), key % 8, n, runMs]);
      this.open.delete(hour);
    }
    return out;
  }
}

/** Hour rows [hour, queue, state, n, runMs] summed into day rows [day, queue, state, n, runMs]. */
function byDay(rows: number[][]): number[][] {
  const m = new Map<string, number[]>();
  for (const [hour, queue, state, n, runMs] of rows) {
    const day = dayOf(hour! * HOUR_MS);
    const key = `${day}|${queue}|${state}`;
    const e = m.get(key);
    if (e) {
      e[3]! += n!;
      e[4]! += runMs!;
    } else m.set(key, [day, queue!, state!, n!, runMs!]);
  }
  return [...m.values()];
}

/** Counts over at most this many days come from the hourly rollup; longer ranges from the daily one. */
const ROLLUP_HOURS_UP_TO_DAYS = 2;

// ---------------------------------------------------------------------------------------------
// The designs

interface Store {
  open(dir: string, jobs: Jobs): Promise<void>;
  /** Rows of one day, in time order, committed together or in several commits. */
  write(b: Batch): Promise<void>;
  /** The end of a day: the parquet designs compact it. */
  endDay(day: number): Promise<void>;
  /** Make everything durable and compact (checkpoint). */
  settle(): Promise<void>;
  jobPage(job: number): Promise<View[]>;
  statePage(state: number, from: number, to: number): Promise<View[]>;
  /** Counts by queue over whole days [fromDay, toDay), read from the rows. */
  countsRaw(fromDay: number, toDay: number): Promise<Map<number, number>>;
  /** Same, from the hourly rollup. */
  countsRollup(fromDay: number, toDay: number): Promise<Map<number, number>>;
  dropDay(day: number): Promise<void>;
  close(): Promise<void>;
}

const dayOf = (t: number) => Math.floor((t - BASE_MS) / DAY_MS);
const dayStart = (day: number) => BASE_MS + day * DAY_MS;

function countsInto(m: Map<number, number>, rows: Row[]): void {
  for (const r of rows) m.set(Number(r[0]), (m.get(Number(r[0])) ?? 0) + Number(r[1]));
}

class SqliteStore implements Store {
  private db!: Database.Database;
  private jobs!: Jobs;
  /** Days with a table, ascending. */
  readonly days: number[] = [];
  private readonly inserts = new Map<number, Database.Statement>();
  private readonly lastKey = new Map<number, number>();
  private readonly stmts = new Map<string, Database.Statement>();
  private readonly rollup = new Rollup();
  private insertRollup!: Database.Statement;
  private insertRollupDay!: Database.Statement;

  private writeRollup(rows: number[][]): void {
    for (const r of rows) this.insertRollup.run(r[0], r[1], r[2], r[3], r[4]);
    for (const r of byDay(rows)) this.insertRollupDay.run(r[0], r[1], r[2], r[3], r[4]);
  }

  async open(dir: string, jobs: Jobs): Promise<void> {
    this.jobs = jobs;
    this.db = new Database(path.join(dir, "history.db"));
    this.db.pragma("page_size = 4096");
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("cache_size = -262144");
    this.db.pragma("temp_store = MEMORY");
    this.db.exec(`CREATE TABLE IF NOT EXISTS jobs (job INTEGER PRIMARY KEY, tenant INTEGER, queue INTEGER, job_id TEXT);
      CREATE TABLE IF NOT EXISTS rollup_hour (hour INTEGER, queue INTEGER, state INTEGER, n INTEGER, run_ms INTEGER, PRIMARY KEY (hour, queue, state)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS rollup_day (day INTEGER, queue INTEGER, state INTEGER, n INTEGER, run_ms INTEGER, PRIMARY KEY (day, queue, state)) WITHOUT ROWID;`);
    const ins = this.db.prepare("INSERT INTO jobs VALUES (?, ?, ?, ?)");
    this.db.transaction(() => {
      for (let j = 0; j < jobs.ids.length; j++) ins.run(j, jobs.tenant[j], jobs.queue[j], jobs.ids[j]);
    })();
    this.writeTx = this.db.transaction(this.insertRows);
    this.insertRollup = this.db.prepare(
      "INSERT INTO rollup_hour VALUES (?, ?, ?, ?, ?) ON CONFLICT (hour, queue, state) DO UPDATE SET n = n + excluded.n, run_ms = run_ms + excluded.run_ms",
    );
    this.insertRollupDay = this.db.prepare(
      "INSERT INTO rollup_day VALUES (?, ?, ?, ?, ?) ON CONFLICT (day, queue, state) DO UPDATE SET n = n + excluded.n, run_ms = run_ms + excluded.run_ms",
    );
  }

  private table(day: number): Database.Statement {
    let ins = this.inserts.get(day);
    if (!ins) {
      const d = `d${day}`;
      this.db.exec(`CREATE TABLE ${d} (k INTEGER PRIMARY KEY, ${SQLITE_COLS});
        CREATE INDEX ${d}_job ON ${d} (job) WHERE job IS NOT NULL;
        CREATE INDEX ${d}_state ON ${d} (state) WHERE state <> 0;`);
      ins = this.db.prepare(`INSERT INTO ${d} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
      this.inserts.set(day, ins);
      this.lastKey.set(day, -1);
      this.days.push(day);
      this.days.sort((a, b) => a - b);
    }
    return ins;
  }

  /** Writes rows, each day's to its table; one transaction (the caller's commit). */
  insertRows = (b: Batch) => {
    let day = -1;
    let ins: Database.Statement | undefined;
    let start = 0;
    let last = -1;
    for (let i = 0; i < b.n; i++) {
      const t = b.t[i]!;
      if (t >= start + DAY_MS || t < start || !ins) {
        if (ins) this.lastKey.set(day, last);
        day = dayOf(t);
        start = dayStart(day);
        ins = this.table(day);
        last = this.lastKey.get(day)!;
      }
      const k = Math.max(last + 1, (t - start) * 256);
      last = k;
      const job = b.job[i]!;
      const worker = b.worker[i]!;
      const reason = b.reason[i]!;
      ins.run(k, job < 0 ? null : job, b.wait[i], b.run[i], b.tenant[i], b.queue[i], b.state[i], reason === 0 ? null : reason, b.attempts[i], worker < 0 ? null : worker, b.result[i], b.adhoc[i]);
    }
    if (ins) this.lastKey.set(day, last);
    this.rollup.add(b);
    const lastHour = Math.floor(b.t[b.n - 1]! / HOUR_MS);
    this.writeRollup(this.rollup.close(lastHour));
  };
  private writeTx!: (b: Batch) => void;

  async write(b: Batch): Promise<void> {
    this.writeTx(b);
  }

  async endDay(): Promise<void> {}

  async settle(): Promise<void> {
    this.db.transaction(() => {
      this.writeRollup(this.rollup.close(Infinity));
    })();
    this.db.pragma("wal_checkpoint(TRUNCATE)");
  }

  private stmt(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) this.stmts.set(sql, (s = this.db.prepare(sql).raw(true)));
    return s;
  }

  private views(day: number, rows: Row[]): View[] {
    const start = dayStart(day);
    return rows.map((r) => view(this.jobs, start + Math.floor(Number(r[0]) / 256), r, 1));
  }

  async jobPage(job: number): Promise<View[]> {
    const out: View[] = [];
    for (let i = this.days.length - 1; i >= 0 && out.length < PAGE; i--) {
      const day = this.days[i]!;
      const rows = this.stmt(`SELECT k, ${COLS} FROM d${day} WHERE job = ? ORDER BY k DESC LIMIT ?`).all(job, PAGE - out.length) as Row[];
      out.push(...this.views(day, rows));
    }
    return out;
  }

  async statePage(state: number, from: number, to: number): Promise<View[]> {
    const out: View[] = [];
    for (let i = this.days.length - 1; i >= 0 && out.length < PAGE; i--) {
      const day = this.days[i]!;
      const start = dayStart(day);
      if (start > to || start + DAY_MS <= from) continue;
      const lo = Math.max(0, (from - start) * 256);
      const hi = (to - start) * 256 + 255;
      const sql =
        state === SUCCEEDED
          ? `SELECT k, ${COLS} FROM d${day} WHERE k BETWEEN ? AND ? AND state = 0 ORDER BY k DESC LIMIT ?`
          : `SELECT k, ${COLS} FROM d${day} WHERE state = ${state} AND state <> 0 AND k BETWEEN ? AND ? ORDER BY k DESC LIMIT ?`;
      out.push(...this.views(day, this.stmt(sql).all(lo, hi, PAGE - out.length) as Row[]));
    }
    return out;
  }

  async countsRaw(fromDay: number, toDay: number): Promise<Map<number, number>> {
    const m = new Map<number, number>();
    for (const day of this.days) if (day >= fromDay && day < toDay) countsInto(m, this.stmt(`SELECT queue, count(*) FROM d${day} GROUP BY queue`).all() as Row[]);
    return m;
  }

  async countsRollup(fromDay: number, toDay: number): Promise<Map<number, number>> {
    const m = new Map<number, number>();
    if (toDay - fromDay > ROLLUP_HOURS_UP_TO_DAYS) countsInto(m, this.stmt("SELECT queue, sum(n) FROM rollup_day WHERE day >= ? AND day < ? GROUP BY queue").all(fromDay, toDay) as Row[]);
    else countsInto(m, this.stmt("SELECT queue, sum(n) FROM rollup_hour WHERE hour >= ? AND hour < ? GROUP BY queue").all(dayStart(fromDay) / HOUR_MS, dayStart(toDay) / HOUR_MS) as Row[]);
    return m;
  }

  /** Drops the day's table (and, unless the day moves to Parquet, its rollup hours). */
  async dropDay(day: number, rollupToo = true): Promise<void> {
    this.db.transaction(() => {
      this.db.exec(`DROP TABLE d${day}`);
      if (rollupToo) this.dropRollupNow(day);
    })();
    this.inserts.delete(day);
    this.days.splice(this.days.indexOf(day), 1);
    for (const sql of [...this.stmts.keys()]) if (sql.includes(`d${day} `)) this.stmts.delete(sql);
  }

  private dropRollupNow(day: number): void {
    this.db.prepare("DELETE FROM rollup_hour WHERE hour < ?").run(dayStart(day + 1) / HOUR_MS);
    this.db.prepare("DELETE FROM rollup_day WHERE day <= ?").run(day);
  }

  async dropRollup(day: number): Promise<void> {
    this.dropRollupNow(day);
  }

  /** One day's rows in key order, raw, for the mix design's compaction. */
  *dayRows(day: number): IterableIterator<Row> {
    yield* this.db.prepare(`SELECT k, ${COLS} FROM d${day} ORDER BY k`).raw(true).iterate() as IterableIterator<Row>;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

const DUCK_TYPES = [BIGINT, INTEGER, INTEGER, INTEGER, USMALLINT, USMALLINT, UTINYINT, UTINYINT, UTINYINT, INTEGER, VARCHAR, VARCHAR];
const DUCK_SCHEMA =
  "t BIGINT, job INTEGER, wait INTEGER, run INTEGER, tenant USMALLINT, queue USMALLINT, state UTINYINT, reason UTINYINT, attempts UTINYINT, worker INTEGER, result VARCHAR, adhoc VARCHAR";

/** Rows into DuckDB data chunks (≤ 2,048 rows each) and through an appender. */
function appendBatch(appender: DuckDBAppender, b: Batch): void {
  const max = 2048;
  for (let off = 0; off < b.n; off += max) {
    const n = Math.min(max, b.n - off);
    const chunk = DuckDBDataChunk.create(DUCK_TYPES, n);
    const col = (c: number, f: (i: number) => unknown) => {
      const v = chunk.getColumnVector(c);
      for (let i = 0; i < n; i++) v.setItem(i, f(off + i) as never);
      v.flush();
    };
    col(0, (i) => BigInt(b.t[i]!));
    col(1, (i) => (b.job[i]! < 0 ? null : b.job[i]!));
    col(2, (i) => b.wait[i]!);
    col(3, (i) => b.run[i]!);
    col(4, (i) => b.tenant[i]!);
    col(5, (i) => b.queue[i]!);
    col(6, (i) => b.state[i]!);
    col(7, (i) => (b.reason[i] === 0 ? null : b.reason[i]!));
    col(8, (i) => b.attempts[i]!);
    col(9, (i) => (b.worker[i]! < 0 ? null : b.worker[i]!));
    col(10, (i) => b.result[i]);
    col(11, (i) => b.adhoc[i]);
    appender.appendDataChunk(chunk);
  }
}

async function duckOpen(file: string): Promise<{ instance: DuckDBInstance; conn: DuckDBConnection }> {
  const instance = await DuckDBInstance.create(file, { threads: String(DUCK_THREADS) });
  const conn = await instance.connect();
  return { instance, conn };
}

async function duckJobsAndRollup(conn: DuckDBConnection, jobs: Jobs): Promise<void> {
  await conn.run("CREATE TABLE jobs (job INTEGER, tenant USMALLINT, queue USMALLINT, job_id VARCHAR)");
  await conn.run("CREATE TABLE rollup_hour (hour INTEGER, queue USMALLINT, state UTINYINT, n BIGINT, run_ms BIGINT)");
  // Appended as hours close (several rows per key), summed when read.
  await conn.run("CREATE TABLE rollup_day (day INTEGER, queue USMALLINT, state UTINYINT, n BIGINT, run_ms BIGINT)");
  const a = await conn.createAppender("jobs");
  for (let j = 0; j < jobs.ids.length; j++) {
    a.appendInteger(j);
    a.appendUSmallInt(jobs.tenant[j]!);
    a.appendUSmallInt(jobs.queue[j]!);
    a.appendVarchar(jobs.ids[j]!);
    a.endRow();
  }
  a.closeSync();
}

async function duckRollup(conn: DuckDBConnection, rows: number[][]): Promise<void> {
  if (rows.length === 0) return;
  await duckRollupInto(conn, "rollup_hour", rows);
  await duckRollupInto(conn, "rollup_day", byDay(rows));
}

async function duckRollupInto(conn: DuckDBConnection, table: string, rows: number[][]): Promise<void> {
  const a = await conn.createAppender(table);
  for (const r of rows) {
    a.appendInteger(r[0]!);
    a.appendUSmallInt(r[1]!);
    a.appendUTinyInt(r[2]!);
    a.appendBigInt(BigInt(r[3]!));
    a.appendBigInt(BigInt(r[4]!));
    a.endRow();
  }
  a.closeSync();
}

async function duckCountsRollup(conn: DuckDBConnection, fromDay: number, toDay: number): Promise<Map<number, number>> {
  const m = new Map<number, number>();
  const r = await conn.runAndReadAll(
    toDay - fromDay > ROLLUP_HOURS_UP_TO_DAYS
      ? `SELECT queue, sum(n) FROM rollup_day WHERE day >= ${fromDay} AND day < ${toDay} GROUP BY queue`
      : `SELECT queue, sum(n) FROM rollup_hour WHERE hour >= ${dayStart(fromDay) / HOUR_MS} AND hour < ${dayStart(toDay) / HOUR_MS} GROUP BY queue`,
  );
  countsInto(m, r.getRows() as Row[]);
  return m;
}

const duckViews = (jobs: Jobs, rows: Row[]) => rows.map((r) => view(jobs, Number(r[0]), r, 1));

class DuckNativeStore implements Store {
  private instance!: DuckDBInstance;
  private conn!: DuckDBConnection;
  private appender!: DuckDBAppender;
  private jobs!: Jobs;
  private readonly rollup = new Rollup();

  async open(dir: string, jobs: Jobs): Promise<void> {
    this.jobs = jobs;
    ({ instance: this.instance, conn: this.conn } = await duckOpen(path.join(dir, "history.duckdb")));
    await this.conn.run(`CREATE TABLE history (${DUCK_SCHEMA})`);
    await duckJobsAndRollup(this.conn, jobs);
    this.appender = await this.conn.createAppender("history");
  }

  async write(b: Batch): Promise<void> {
    appendBatch(this.appender, b);
    this.appender.flushSync();
    this.rollup.add(b);
    await duckRollup(this.conn, this.rollup.close(Math.floor(b.t[b.n - 1]! / HOUR_MS)));
  }

  async endDay(): Promise<void> {}

  async settle(): Promise<void> {
    this.appender.flushSync();
    await duckRollup(this.conn, this.rollup.close(Infinity));
    await this.conn.run("CHECKPOINT");
  }

  async jobPage(job: number): Promise<View[]> {
    const r = await this.conn.runAndReadAll(`SELECT t, ${COLS} FROM history WHERE job = ${job} ORDER BY t DESC LIMIT ${PAGE}`);
    return duckViews(this.jobs, r.getRows() as Row[]);
  }

  async statePage(state: number, from: number, to: number): Promise<View[]> {
    const r = await this.conn.runAndReadAll(`SELECT t, ${COLS} FROM history WHERE state = ${state} AND t BETWEEN ${from} AND ${to} ORDER BY t DESC LIMIT ${PAGE}`);
    return duckViews(this.jobs, r.getRows() as Row[]);
  }

  async countsRaw(fromDay: number, toDay: number): Promise<Map<number, number>> {
    const m = new Map<number, number>();
    const r = await this.conn.runAndReadAll(`SELECT queue, count(*) FROM history WHERE t >= ${dayStart(fromDay)} AND t < ${dayStart(toDay)} GROUP BY queue`);
    countsInto(m, r.getRows() as Row[]);
    return m;
  }

  countsRollup(fromDay: number, toDay: number): Promise<Map<number, number>> {
    return duckCountsRollup(this.conn, fromDay, toDay);
  }

  async dropDay(day: number): Promise<void> {
    this.appender.flushSync();
    await this.conn.run(`DELETE FROM history WHERE t < ${dayStart(day + 1)}`);
    await this.conn.run(`DELETE FROM rollup_hour WHERE hour < ${dayStart(day + 1) / HOUR_MS}; DELETE FROM rollup_day WHERE day <= ${day}`);
    await this.conn.run("CHECKPOINT");
  }

  async close(): Promise<void> {
    this.appender.closeSync();
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

/**
 * Cold days as Parquet files (one per day; one shard), sorted by (job, t), read through DuckDB.
 * Shared by `duckdb-parquet` (hot = a DuckDB table per day) and `mix` (hot = SQLite).
 */
class ParquetCold {
  conn!: DuckDBConnection;
  private instance!: DuckDBInstance;
  private coldDir!: string;
  private jobs!: Jobs;
  /** Compacted days, ascending. */
  readonly days: number[] = [];

  async open(dir: string, jobs: Jobs, dbFile: string): Promise<void> {
    this.jobs = jobs;
    this.coldDir = path.join(dir, "cold");
    fs.mkdirSync(this.coldDir, { recursive: true });
    ({ instance: this.instance, conn: this.conn } = await duckOpen(dbFile));
    await this.conn.run("SET parquet_metadata_cache = true");
    await this.conn.run("CREATE TABLE job_days (job INTEGER, day USMALLINT)");
    await duckJobsAndRollup(this.conn, jobs);
  }

  file(day: number): string {
    return path.join(this.coldDir, `day-${String(day).padStart(5, "0")}-s0.parquet`);
  }

  /** Writes `table`'s rows to the day's file, sorted for the job lookup. */
  async compactFrom(table: string, day: number): Promise<void> {
    await this.conn.run(`COPY (SELECT * FROM ${table} ORDER BY job, t) TO '${this.file(day)}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE ${ROW_GROUP})`);
    if (JOB_DAYS) await this.conn.run(`INSERT INTO job_days SELECT DISTINCT job, ${day} FROM ${table} WHERE job IS NOT NULL ORDER BY job`);
    this.days.push(day);
    this.days.sort((a, b) => a - b);
  }

  private files(days: number[]): string {
    return `read_parquet([${days.map((d) => `'${this.file(d)}'`).join(", ")}])`;
  }

  /** Newest first, in widening groups of days (7, 56, the rest), until the page is full. */
  async jobPage(job: number, want: number): Promise<View[]> {
    const out: View[] = [];
    let desc = [...this.days].reverse();
    if (JOB_DAYS) {
      const have = new Set(this.days);
      const r = await this.conn.runAndReadAll(`SELECT day FROM job_days WHERE job = ${job} ORDER BY day DESC`);
      desc = (r.getRows() as Row[]).map((x) => Number(x[0])).filter((d) => have.has(d));
    }
    for (const [a, z] of [[0, 7], [7, 63], [63, Infinity]] as const) {
      if (out.length >= want || a >= desc.length) break;
      const group = desc.slice(a, z === Infinity ? undefined : z);
      const r = await this.conn.runAndReadAll(`SELECT t, ${COLS} FROM ${this.files(group)} WHERE job = ${job} ORDER BY t DESC LIMIT ${want - out.length}`);
      out.push(...duckViews(this.jobs, r.getRows() as Row[]));
    }
    return out;
  }

  async statePage(state: number, from: number, to: number, want: number): Promise<View[]> {
    const out: View[] = [];
    const inRange = this.days.filter((d) => dayStart(d) <= to && dayStart(d) + DAY_MS > from).reverse();
    for (const [a, z] of [[0, 1], [1, Infinity]] as const) {
      if (out.length >= want || a >= inRange.length) break;
      const group = inRange.slice(a, z === Infinity ? undefined : z);
      const r = await this.conn.runAndReadAll(`SELECT t, ${COLS} FROM ${this.files(group)} WHERE state = ${state} AND t BETWEEN ${from} AND ${to} ORDER BY t DESC LIMIT ${want - out.length}`);
      out.push(...duckViews(this.jobs, r.getRows() as Row[]));
    }
    return out;
  }

  async countsRaw(fromDay: number, toDay: number, m: Map<number, number>): Promise<void> {
    const days = this.days.filter((d) => d >= fromDay && d < toDay);
    if (days.length === 0) return;
    const r = await this.conn.runAndReadAll(`SELECT queue, count(*) FROM ${this.files(days)} GROUP BY queue`);
    countsInto(m, r.getRows() as Row[]);
  }

  /** The day's file and its entries in the job directory. */
  async dropFile(day: number): Promise<void> {
    fs.rmSync(this.file(day), { force: true });
    this.days.splice(this.days.indexOf(day), 1);
    await this.conn.run(`DELETE FROM job_days WHERE day = ${day}`);
  }

  async dropDay(day: number): Promise<void> {
    await this.dropFile(day);
    await this.conn.run(`DELETE FROM rollup_hour WHERE hour < ${dayStart(day + 1) / HOUR_MS}; DELETE FROM rollup_day WHERE day <= ${day}`);
  }

  async close(): Promise<void> {
    this.conn.closeSync();
    this.instance.closeSync();
  }
}

class DuckParquetStore implements Store {
  private readonly cold = new ParquetCold();
  private readonly appenders = new Map<number, DuckDBAppender>();
  private readonly rollup = new Rollup();
  private jobs!: Jobs;

  async open(dir: string, jobs: Jobs): Promise<void> {
    this.jobs = jobs;
    await this.cold.open(dir, jobs, path.join(dir, "hot.duckdb"));
  }

  private get conn(): DuckDBConnection {
    return this.cold.conn;
  }

  async write(b: Batch): Promise<void> {
    let off = 0;
    while (off < b.n) {
      const day = dayOf(b.t[off]!);
      let end = off;
      while (end < b.n && dayOf(b.t[end]!) === day) end++;
      let a = this.appenders.get(day);
      if (!a) {
        await this.conn.run(`CREATE TABLE hot_${day} (${DUCK_SCHEMA})`);
        this.appenders.set(day, (a = await this.conn.createAppender(`hot_${day}`)));
      }
      appendBatch(a, off === 0 && end === b.n ? b : slice(b, off, end - off));
      a.flushSync();
      off = end;
    }
    this.rollup.add(b);
    await duckRollup(this.conn, this.rollup.close(Math.floor(b.t[b.n - 1]! / HOUR_MS)));
  }

  async endDay(day: number): Promise<void> {
    const a = this.appenders.get(day);
    if (!a) return;
    a.closeSync();
    this.appenders.delete(day);
    await this.cold.compactFrom(`hot_${day}`, day);
    await this.conn.run(`DROP TABLE hot_${day}`);
  }

  async settle(): Promise<void> {
    for (const a of this.appenders.values()) a.flushSync();
    await duckRollup(this.conn, this.rollup.close(Infinity));
    await this.conn.run("CHECKPOINT");
  }

  private hotDaysDesc(): number[] {
    return [...this.appenders.keys()].sort((a, b) => b - a);
  }

  async jobPage(job: number): Promise<View[]> {
    const out: View[] = [];
    for (const day of this.hotDaysDesc()) {
      if (out.length >= PAGE) break;
      const r = await this.conn.runAndReadAll(`SELECT t, ${COLS} FROM hot_${day} WHERE job = ${job} ORDER BY t DESC LIMIT ${PAGE - out.length}`);
      out.push(...duckViews(this.jobs, r.getRows() as Row[]));
    }
    if (out.length < PAGE) out.push(...(await this.cold.jobPage(job, PAGE - out.length)));
    return out;
  }

  async statePage(state: number, from: number, to: number): Promise<View[]> {
    const out: View[] = [];
    for (const day of this.hotDaysDesc()) {
      if (out.length >= PAGE) break;
      const r = await this.conn.runAndReadAll(`SELECT t, ${COLS} FROM hot_${day} WHERE state = ${state} AND t BETWEEN ${from} AND ${to} ORDER BY t DESC LIMIT ${PAGE - out.length}`);
      out.push(...duckViews(this.jobs, r.getRows() as Row[]));
    }
    if (out.length < PAGE) out.push(...(await this.cold.statePage(state, from, to, PAGE - out.length)));
    return out;
  }

  async countsRaw(fromDay: number, toDay: number): Promise<Map<number, number>> {
    const m = new Map<number, number>();
    for (const day of this.hotDaysDesc()) {
      if (day >= fromDay && day < toDay) countsInto(m, (await this.conn.runAndReadAll(`SELECT queue, count(*) FROM hot_${day} GROUP BY queue`)).getRows() as Row[]);
    }
    await this.cold.countsRaw(fromDay, toDay, m);
    return m;
  }

  countsRollup(fromDay: number, toDay: number): Promise<Map<number, number>> {
    return duckCountsRollup(this.conn, fromDay, toDay);
  }

  dropDay(day: number): Promise<void> {
    return this.cold.dropDay(day);
  }

  async close(): Promise<void> {
    for (const a of this.appenders.values()) a.closeSync();
    await this.cold.close();
  }
}

/** SQLite for the days not yet compacted, Parquet (through DuckDB) for the rest. */
class MixStore implements Store {
  private readonly hot = new SqliteStore();
  private readonly cold = new ParquetCold();

  async open(dir: string, jobs: Jobs): Promise<void> {
    await this.hot.open(dir, jobs);
    // The rollup and the jobs live in SQLite; DuckDB's file only holds the compaction's staging.
    await this.cold.open(dir, jobs, path.join(dir, "compact.duckdb"));
    await this.cold.conn.run(`DROP TABLE jobs; DROP TABLE rollup_hour; DROP TABLE rollup_day`);
  }

  write(b: Batch): Promise<void> {
    return this.hot.write(b);
  }

  /** SQLite rows → DuckDB staging table → sorted Parquet; then the SQLite day is dropped. */
  async endDay(day: number): Promise<void> {
    if (!this.hot.days.includes(day)) return;
    const conn = this.cold.conn;
    await conn.run(`CREATE TEMP TABLE staging (${DUCK_SCHEMA})`);
    const a = await conn.createAppender("staging", "main", "temp");
    const start = dayStart(day);
    let b = emptyBatch(BATCH * 8);
    let n = 0;
    const flush = () => {
      if (n === 0) return;
      appendBatch(a, n === b.n ? b : slice(b, 0, n));
      n = 0;
    };
    for (const r of this.hot.dayRows(day)) {
      b.t[n] = start + Math.floor(Number(r[0]) / 256);
      b.job[n] = r[1] === null ? -1 : Number(r[1]);
      b.wait[n] = Number(r[2]);
      b.run[n] = Number(r[3]);
      b.tenant[n] = Number(r[4]);
      b.queue[n] = Number(r[5]);
      b.state[n] = Number(r[6]);
      b.reason[n] = r[7] === null ? 0 : Number(r[7]);
      b.attempts[n] = Number(r[8]);
      b.worker[n] = r[9] === null ? -1 : Number(r[9]);
      b.result[n] = r[10] as string | null;
      b.adhoc[n] = r[11] as string | null;
      if (++n === b.n) flush();
    }
    flush();
    a.closeSync();
    b = emptyBatch(0);
    await this.cold.compactFrom("temp.main.staging", day);
    await conn.run("DROP TABLE temp.main.staging");
    await this.hot.dropDay(day, false);
  }

  settle(): Promise<void> {
    return this.hot.settle();
  }

  async jobPage(job: number): Promise<View[]> {
    const out = await this.hot.jobPage(job);
    if (out.length < PAGE) out.push(...(await this.cold.jobPage(job, PAGE - out.length)));
    return out;
  }

  async statePage(state: number, from: number, to: number): Promise<View[]> {
    const out = await this.hot.statePage(state, from, to);
    if (out.length < PAGE) out.push(...(await this.cold.statePage(state, from, to, PAGE - out.length)));
    return out;
  }

  async countsRaw(fromDay: number, toDay: number): Promise<Map<number, number>> {
    const m = await this.hot.countsRaw(fromDay, toDay);
    await this.cold.countsRaw(fromDay, toDay, m);
    return m;
  }

  countsRollup(fromDay: number, toDay: number): Promise<Map<number, number>> {
    return this.hot.countsRollup(fromDay, toDay);
  }

  async dropDay(day: number): Promise<void> {
    if (this.hot.days.includes(day)) await this.hot.dropDay(day);
    else {
      await this.cold.dropFile(day);
      await this.hot.dropRollup(day);
    }
  }

  async close(): Promise<void> {
    await this.hot.close();
    await this.cold.close();
  }
}

const DESIGNS: Record<string, () => Store> = {
  sqlite: () => new SqliteStore(),
  "duckdb-native": () => new DuckNativeStore(),
  "duckdb-parquet": () => new DuckParquetStore(),
  mix: () => new MixStore(),
};
/** Designs that keep today hot and compact the days before it. */
const COMPACTS = new Set(["duckdb-parquet", "mix"]);

// ---------------------------------------------------------------------------------------------
// Measuring

function cpuSec(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    total += e.isDirectory() ? dirBytes(p) : fs.statSync(p).size;
  }
  return total;
}

function dist(ms: number[]): { p50: number; p99: number; max: number } {
  const s = Float64Array.from(ms).sort();
  return { p50: round(percentile(s, 50)), p99: round(percentile(s, 99)), max: round(percentile(s, 100)) };
}

async function timed<T>(f: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const v = await f();
  return [performance.now() - t0, v];
}

/** Loads `days` days of `perDay` rows through `store`, timing the store only. */
async function load(store: Store, design: string, jobs: Jobs, days: number, perDay: number, kind: Kind, seedBase: number) {
  let wall = 0;
  let cpu = 0;
  let compactWall = 0;
  let compactCpu = 0;
  let rows = 0;
  for (let d = 0; d < days; d++) {
    const b = generate(jobs, seedBase + d, dayStart(d), DAY_MS, perDay, kind);
    const c0 = cpuSec();
    const t0 = performance.now();
    await store.write(b);
    wall += performance.now() - t0;
    cpu += cpuSec() - c0;
    rows += b.n;
    // Today (the last day) stays hot; the days before it are compacted as the next one starts.
    if (COMPACTS.has(design) && d < days - 1) {
      const c1 = cpuSec();
      const t1 = performance.now();
      await store.endDay(d);
      compactWall += performance.now() - t1;
      compactCpu += cpuSec() - c1;
    }
    if (d % 50 === 49) process.stderr.write(`history-engines: ${design}: day ${d + 1}/${days}\n`);
  }
  const c0 = cpuSec();
  const t0 = performance.now();
  await store.settle();
  const settleMs = performance.now() - t0;
  const settleCpu = cpuSec() - c0;
  return {
    rows,
    rowsPerSec: Math.round(rows / ((wall + compactWall + settleMs) / 1000)),
    cpuUsPerRow: round(((cpu + compactCpu + settleCpu) / rows) * 1e6),
    writeCpuUsPerRow: round((cpu / rows) * 1e6),
    compactCpuUsPerRow: round((compactCpu / rows) * 1e6),
    settleSec: round(settleMs / 1000),
  };
}

async function withStore<T>(design: string, jobs: Jobs, f: (store: Store, dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(BASE_DIR, `cw-history-${design}-`));
  const store = DESIGNS[design]!();
  try {
    await store.open(dir, jobs);
    return await f(store, dir);
  } finally {
    await store.close().catch(() => {});
    if (process.env.HISTORY_KEEP) process.stderr.write(`history-engines: kept ${dir}\n`);
    else fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Bytes per row of `kind` rows: one day of SIZE_ROWS rows in a fresh store, less the empty store.
 * The compacting designs: the Parquet file's bytes per row (what the 400 days are made of), and
 * `hot`, what the row cost in the hot store before compaction (today only).
 */
async function bytesPerRow(design: string, jobs: Jobs, kind: Kind): Promise<{ perRow: number; hotPerRow?: number }> {
  return withStore(design, jobs, async (store, dir) => {
    await store.settle();
    const empty = dirBytes(dir);
    const b = generate(jobs, 999, dayStart(0), DAY_MS, SIZE_ROWS, kind);
    await store.write(b);
    await store.settle();
    const hot = round((dirBytes(dir) - empty) / SIZE_ROWS);
    if (!COMPACTS.has(design)) return { perRow: hot };
    await store.endDay(0);
    return { perRow: round(dirBytes(path.join(dir, "cold")) / SIZE_ROWS), hotPerRow: hot };
  });
}

/** Batches of 2,000 rows, each committed on its own: as fast as they go, then paced at 20,000 rows/s. */
async function batched(design: string, jobs: Jobs) {
  return withStore(design, jobs, async (store) => {
    const span = (BATCH_ROWS / TARGET_RATE) * 1000;
    const b = generate(jobs, 4242, dayStart(DAYS), span, BATCH_ROWS, "mix");
    const c0 = cpuSec();
    const t0 = performance.now();
    const lat: number[] = [];
    // CPU per row over each tenth of the run: does the cost grow as the day's table does?
    const tenths: number[] = [];
    let tc = c0;
    for (let off = 0; off < b.n; off += BATCH) {
      const s = slice(b, off, Math.min(BATCH, b.n - off));
      const t1 = performance.now();
      await store.write(s);
      lat.push(performance.now() - t1);
      if ((off + BATCH) % (b.n / 10) < BATCH) {
        const c = cpuSec();
        tenths.push(round(((c - tc) / (b.n / 10)) * 1e6));
        tc = c;
      }
    }
    const wall = (performance.now() - t0) / 1000;
    const cpu = cpuSec() - c0;
    // Paced: 2,000 rows every 100 ms (20,000 rows/s), the next minutes of the same day.
    const paced = generate(jobs, 4343, dayStart(DAYS) + span, PACED_SEC * 1000, PACED_SEC * TARGET_RATE, "mix");
    const pc0 = cpuSec();
    const pt0 = performance.now();
    const plat: number[] = [];
    for (let i = 0, off = 0; off < paced.n; i++, off += BATCH) {
      const due = pt0 + i * 100;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const t1 = performance.now();
      await store.write(slice(paced, off, Math.min(BATCH, paced.n - off)));
      plat.push(performance.now() - t1);
    }
    const pwall = (performance.now() - pt0) / 1000;
    const pcpu = cpuSec() - pc0;
    // The compaction of this day (1 M + paced rows), for the designs that compact.
    let compactCpuUsPerRow: number | undefined;
    if (COMPACTS.has(design)) {
      const c1 = cpuSec();
      await store.endDay(DAYS);
      compactCpuUsPerRow = round(((cpuSec() - c1) / (b.n + paced.n)) * 1e6);
    }
    return {
      rows: b.n,
      rowsPerSec: Math.round(b.n / wall),
      cpuUsPerRow: round((cpu / b.n) * 1e6),
      cpuUsPerRowByTenth: tenths,
      batchMs: dist(lat),
      paced: {
        rowsPerSec: Math.round(paced.n / pwall),
        cpuUsPerRow: round((pcpu / paced.n) * 1e6),
        coreShare: round(pcpu / pwall),
        batchMs: dist(plat),
      },
      ...(compactCpuUsPerRow !== undefined ? { compactCpuUsPerRow } : {}),
    };
  });
}

async function queries(store: Store, jobs: Jobs, days: number) {
  const r = rng(31337);
  const end = dayStart(days);
  // A job chosen uniformly (half of them fire less than once a week: the deep, slow lookups), and
  // one chosen by how often it runs (what a busy UI mostly asks for).
  const jobUniform: number[] = [];
  const jobWeighted: number[] = [];
  let rowsSeen = 0;
  for (let i = 0; i < QUERIES; i++) {
    const [ms, v] = await timed(() => store.jobPage(Math.floor(r() * jobs.ids.length)));
    jobUniform.push(ms);
    rowsSeen += v.length;
  }
  for (let i = 0; i < QUERIES; i++) {
    const [ms] = await timed(() => store.jobPage(Math.min(jobs.ids.length - 1, Math.floor(jobs.ids.length * r() ** 3))));
    jobWeighted.push(ms);
  }
  // State + a time range: a state (succeeded, failed, canceled or skipped) and a window ending at
  // a random time, of 24 h or of 30 days; newest 50 first.
  const state24h: number[] = [];
  const state30d: number[] = [];
  for (const [windowMs, into] of [[DAY_MS, state24h], [30 * DAY_MS, state30d]] as const) {
    for (let i = 0; i < QUERIES; i++) {
      const to = dayStart(0) + windowMs + Math.floor(r() * (end - dayStart(0) - windowMs));
      const [ms] = await timed(() => store.statePage(Math.floor(r() * 4), to - windowMs, to));
      into.push(ms);
    }
  }
  const dayRaw: number[] = [];
  const dayRollup: number[] = [];
  let checked = true;
  for (let i = 0; i < 20; i++) {
    const d = Math.floor(r() * days);
    const [ms1, a] = await timed(() => store.countsRaw(d, d + 1));
    const [ms2, b] = await timed(() => store.countsRollup(d, d + 1));
    dayRaw.push(ms1);
    dayRollup.push(ms2);
    for (const [q, n] of a) if (b.get(q) !== n) checked = false;
  }
  const allRaw: number[] = [];
  const allRollup: number[] = [];
  for (let i = 0; i < 3; i++) {
    const [ms1, a] = await timed(() => store.countsRaw(0, days));
    const [ms2, b] = await timed(() => store.countsRollup(0, days));
    allRaw.push(ms1);
    allRollup.push(ms2);
    for (const [q, n] of a) if (b.get(q) !== n) checked = false;
  }
  return {
    jobPageUniformMs: dist(jobUniform),
    jobPageUniformRowsAvg: round(rowsSeen / QUERIES),
    jobPageWeightedMs: dist(jobWeighted),
    statePage24hMs: dist(state24h),
    statePage30dMs: dist(state30d),
    dayCountsByQueueRawMs: dist(dayRaw),
    dayCountsByQueueRollupMs: dist(dayRollup),
    allDaysCountsByQueueRawMs: dist(allRaw),
    allDaysCountsByQueueRollupMs: dist(allRollup),
    rollupMatchesRows: checked,
  };
}

async function runDesign(design: string): Promise<Record<string, unknown>> {
  const jobs = makeJobs(JOBS);
  const perDay = Math.ceil(ROWS / DAYS);
  const main = await withStore(design, jobs, async (store, dir) => {
    const ingest = await load(store, design, jobs, DAYS, perDay, "mix", 1);
    const bytes = dirBytes(dir);
    process.stderr.write(`history-engines: ${design}: loaded ${JSON.stringify(ingest)}; ${bytes} B\n`);
    const q = await queries(store, jobs, DAYS);
    process.stderr.write(`history-engines: ${design}: queries ${JSON.stringify(q)}\n`);
    const drops: number[] = [];
    for (let d = 0; d < Math.min(3, DAYS - 1); d++) drops.push((await timed(() => store.dropDay(d)))[0]);
    const cold = COMPACTS.has(design) ? { coldBytesPerRow: round(dirBytes(path.join(dir, "cold")) / ingest.rows) } : {};
    return { ingest, bytes, bytesPerRow: round(bytes / ingest.rows), ...cold, queries: q, dropOldestDayMs: drops.map(round) };
  });
  const bytesPerNoop = await bytesPerRow(design, jobs, "noop");
  const bytesPerSkipped = await bytesPerRow(design, jobs, "skipped");
  const batch = await batched(design, jobs);
  return { design, rows: ROWS, days: DAYS, rowsPerDay: perDay, ...main, bytesPerNoopExecution: bytesPerNoop, bytesPerSkippedFire: bytesPerSkipped, batched: batch };
}

// ---------------------------------------------------------------------------------------------
// The main thread's share: handing finished executions to a writer thread

interface FinishedLike {
  id: string;
  tenant: string;
  jobId: string | null;
  queue: string;
  scheduledAt: number;
  startedAt: number | null;
  finishedAt: number;
  state: string;
  reason: string | null;
  attempt: number;
  workerId: string | null;
  result: unknown;
  attempts: { attempt: number; workerId: string; claimedAt: number; finishedAt: number; outcome: string; error: unknown }[];
}

async function handoff(): Promise<Record<string, unknown>> {
  const worker = new Worker("const { parentPort } = require('node:worker_threads'); let n = 0; parentPort.on('message', (m) => { n += m.n ?? m.length; if (m.done) parentPort.postMessage(n); });", { eval: true });
  const r = rng(5);
  const now = Date.now();
  const execs: FinishedLike[] = Array.from({ length: BATCH }, (_, i) => {
    const sched = now + i;
    return {
      id: `report-${i}:${sched}`,
      tenant: `t${i % 20}`,
      jobId: `report-${i}`,
      queue: `q${i % 40}`,
      scheduledAt: sched,
      startedAt: sched + 2,
      finishedAt: sched + 20,
      state: "succeeded",
      reason: null,
      attempt: 1,
      workerId: `w-${i % 500}`,
      result: r() < 0.4 ? { sent: i } : null,
      attempts: [{ attempt: 1, workerId: `w-${i % 500}`, claimedAt: sched + 1, finishedAt: sched + 20, outcome: "succeeded", error: undefined }],
    };
  });
  const states = new Map(STATES.map((s, i) => [s as string, i]));
  /** Columns into transferable buffers; strings (id, tenant, queue, worker, result JSON) in one array. */
  const pack = () => {
    const n = execs.length;
    const nums = new Float64Array(n * 4);
    const small = new Uint8Array(n * 3);
    const strs: (string | null)[] = new Array(n * 5);
    for (let i = 0; i < n; i++) {
      const e = execs[i]!;
      nums[i * 4] = e.finishedAt;
      nums[i * 4 + 1] = e.scheduledAt;
      nums[i * 4 + 2] = e.startedAt ?? -1;
      nums[i * 4 + 3] = e.attempt;
      small[i * 3] = states.get(e.state)!;
      small[i * 3 + 1] = e.reason === null ? 0 : 1;
      small[i * 3 + 2] = e.attempts.length;
      strs[i * 5] = e.id;
      strs[i * 5 + 1] = e.tenant;
      strs[i * 5 + 2] = e.queue;
      strs[i * 5 + 3] = e.workerId;
      strs[i * 5 + 4] = e.result === null || e.result === undefined ? null : JSON.stringify(e.result);
    }
    worker.postMessage({ n, nums, small, strs }, [nums.buffer, small.buffer]);
  };
  const plain = () => worker.postMessage(execs);
  const measure = (f: () => void) => {
    for (let i = 0; i < 50; i++) f();
    const ms: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t0 = performance.now();
      f();
      ms.push(performance.now() - t0);
    }
    const d = dist(ms);
    return { batchMsP50: d.p50, batchMsP99: d.p99, usPerRowP50: round((d.p50 * 1000) / BATCH) };
  };
  const columnar = measure(pack);
  const cloned = measure(plain);
  await new Promise<void>((resolve) => {
    worker.once("message", () => resolve());
    worker.postMessage({ n: 0, done: true });
  });
  await worker.terminate();
  return { batchRows: BATCH, columnarTransfer: columnar, structuredCloneOfObjects: cloned };
}

// ---------------------------------------------------------------------------------------------

function child(design: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "--child", design], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    proc.stdout.on("data", (c: Buffer) => (out += c.toString()));
    proc.on("error", reject);
    proc.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`history-engines ${design} exited with ${code}`));
      resolve(JSON.parse(out.trim().split("\n").pop()!) as Record<string, unknown>);
    });
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === "--child") {
    process.stdout.write(`${JSON.stringify(await runDesign(args[1]!))}\n`);
    return;
  }
  const designs = args.length > 0 ? args : Object.keys(DESIGNS);
  const unknown = designs.filter((d) => !DESIGNS[d]);
  if (unknown.length > 0) throw new Error(`unknown design(s) ${unknown.join(", ")}; known: ${Object.keys(DESIGNS).join(", ")}`);
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    date: new Date().toISOString(),
  };
  const params = { rows: ROWS, days: DAYS, jobs: JOBS, queries: QUERIES, batchRows: BATCH_ROWS, pacedSec: PACED_SEC, sizeRows: SIZE_ROWS, duckdbThreads: DUCK_THREADS, rowGroup: ROW_GROUP };
  const results: Record<string, unknown> = { handoff: await handoff() };
  process.stderr.write(`history-engines: handoff ${JSON.stringify(results.handoff)}\n`);
  for (const d of designs) {
    process.stderr.write(`history-engines: ${d}…\n`);
    const t0 = performance.now();
    results[d] = { ...(await child(d)), runSec: round((performance.now() - t0) / 1000) };
    process.stderr.write(`history-engines: ${d}: ${JSON.stringify(results[d])}\n`);
  }
  process.stdout.write(`${JSON.stringify({ machine, params, results }, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`history-engines failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
