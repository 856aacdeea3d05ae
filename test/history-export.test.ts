/**
 * Closed days of history exported as Parquet (src/history/parquet-export.ts, driven by the history
 * thread's exportClosedDays), on real SQLite files and real Parquet files, read back by a fresh
 * DuckDB as a data team would: every row of every closed day is there with its fields, each day is
 * written once and only once it is closed, replicas write the same bytes, a file with a gap skips
 * the days it may cover, and a failed export keeps its day from retention. The last tests go through
 * HistoryStore and its thread, the path the server uses.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import pino from "pino";
import { afterAll, describe, expect, it } from "vitest";
import type { AttemptInfo, Execution, ExecutionFacts } from "../src/core/execution.js";
import { DEFAULT_PRIORITY } from "../src/core/types.js";
import { DAY_MS, HistoryDb } from "../src/history/history-db.js";
import { HistoryStore } from "../src/history/history-store.js";
import { exportClosedDays, type DayExport } from "../src/history/history-thread.js";
import { dayExportFile } from "../src/history/parquet-export.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cronwheel-history-export-"));
  dirs.push(dir);
  return dir;
}

const RETENTION_MS = 400 * DAY_MS;
/** 2026-12-01, 02, 03, 04 (UTC), as day numbers. */
const D0 = Math.floor(Date.UTC(2026, 11, 1) / DAY_MS);
const [D1, D2, D3] = [D0 + 1, D0 + 2, D0 + 3];
const dateOf = (day: number) => new Date(day * DAY_MS).toISOString().slice(0, 10);

/**
 * A day of a shard's finished executions in apply order, of four kinds in turn: a job's fire that
 * succeeded, a fire that failed after two attempts, a fire skipped for a misfire, an ad-hoc
 * execution with a payload, a result and keys. Two end in each millisecond (finishSeq 0 and 1).
 */
function dayOfExecutions(day: number, count: number): ExecutionFacts[] {
  const out: ExecutionFacts[] = [];
  for (let k = 0; k < count; k++) {
    const finishedAt = day * DAY_MS + 3_600_000 + Math.floor(k / 2) * 5_000;
    const scheduledAt = finishedAt - 500 - k;
    const createdAt = scheduledAt - 1_000;
    const plain = (workerId: string): AttemptInfo[] => [{ attempt: 1, workerId, claimedAt: finishedAt - 40, finishedAt, outcome: "succeeded", error: null }];
    const base = { tenant: "default", queue: "q1", scheduledAt, createdAt, readyAt: scheduledAt + 2, finishedAt, finishSeq: k % 2, payload: null, priority: DEFAULT_PRIORITY, result: undefined, orderingKey: null, idempotencyKey: null };
    const job = `job-${k % 3}`;
    switch (k % 4) {
      case 0:
        out.push({ ...base, id: `${job}:${scheduledAt}`, jobId: job, state: "succeeded", reason: null, startedAt: finishedAt - 30, attempt: 1, attempts: plain("w1") });
        break;
      case 1:
        out.push({
          ...base,
          id: `${job}:${scheduledAt}`,
          jobId: job,
          state: "failed",
          reason: "retries-exhausted",
          startedAt: finishedAt - 20,
          attempt: 2,
          attempts: [
            { attempt: 1, workerId: "w1", claimedAt: finishedAt - 90, finishedAt: finishedAt - 60, outcome: "failed", error: { message: "boom", k } },
            { attempt: 2, workerId: "w2", claimedAt: finishedAt - 25, finishedAt, outcome: "failed", error: { message: "boom again" } },
          ],
          payload: { k },
        });
        break;
      case 2:
        out.push({ ...base, id: `${job}:${scheduledAt}`, jobId: job, state: "skipped", reason: "misfire", readyAt: 0, startedAt: null, attempt: 0, attempts: null });
        break;
      default:
        out.push({
          ...base,
          id: `x00a1${createdAt.toString(36)}${k.toString(36).padStart(4, "0")}`,
          jobId: null,
          queue: "q2",
          tenant: "acme",
          state: "succeeded",
          reason: null,
          startedAt: finishedAt - 35,
          attempt: 1,
          attempts: plain("w3"),
          payload: { order: k, tags: ["a", "é"], note: "it's" },
          result: { ok: true, k },
          priority: 3,
          orderingKey: `ok-${k % 5}`,
          idempotencyKey: `idem-${day}-${k}`,
        });
    }
  }
  return out;
}

/** What a data team reads back for an execution: the export's columns, times as epoch ms. */
function expectedRow(shard: number, f: ExecutionFacts): Record<string, unknown> {
  const last = f.attempts?.at(-1);
  return {
    shard,
    date: dateOf(Math.floor(f.finishedAt! / DAY_MS)),
    id: f.id,
    tenant: f.tenant,
    job_id: f.jobId,
    queue: f.queue,
    state: f.state,
    reason: f.reason,
    scheduled_at: f.scheduledAt,
    created_at: f.createdAt,
    ready_at: f.readyAt === 0 ? null : f.readyAt,
    started_at: f.startedAt,
    finished_at: f.finishedAt,
    attempt: f.attempt,
    worker_id: last ? last.workerId : null,
    lateness_ms: f.startedAt === null ? null : f.startedAt - f.scheduledAt,
    run_ms: f.startedAt === null ? null : f.finishedAt! - f.startedAt,
    priority: f.priority,
    ordering_key: f.orderingKey,
    idempotency_key: f.idempotencyKey,
    payload: f.payload === null ? null : f.payload,
    result: f.result === undefined ? null : f.result,
    attempts: f.attempts,
  };
}

/** A query on a fresh DuckDB, rows as plain JS objects. */
async function duck(sql: string): Promise<Array<Record<string, unknown>>> {
  const instance = await DuckDBInstance.create(":memory:", { threads: "1" });
  const connection = await instance.connect();
  try {
    return (await connection.runAndReadAll(sql)).getRowObjectsJS() as Array<Record<string, unknown>>;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

const ALL = (dir: string) => `read_parquet('${dir}/**/*.parquet', hive_partitioning = true, file_row_number = true)`;
const ms = (column: string) => `epoch_ms(${column})::DOUBLE AS ${column}`;
/** Every exported row as expectedRow gives it, files by shard and date, each in its own order (key order). */
async function exportedRows(dir: string): Promise<Array<Record<string, unknown>>> {
  const rows = await duck(`SELECT shard::INTEGER AS shard, date::VARCHAR AS date, id, tenant, job_id, queue, state, reason,
      ${["scheduled_at", "created_at", "ready_at", "started_at", "finished_at"].map(ms).join(", ")},
      attempt, worker_id, lateness_ms::DOUBLE AS lateness_ms, run_ms::DOUBLE AS run_ms, priority, ordering_key, idempotency_key, payload, result, attempts
    FROM ${ALL(dir)} ORDER BY shard, date, file_row_number`);
  return rows.map((r) => ({ ...r, payload: parse(r.payload), result: parse(r.result), attempts: parse(r.attempts) }));
}
const parse = (v: unknown) => (v === null ? null : JSON.parse(v as string));

/** Counts by date and state, from the export. */
async function exportedCounts(dir: string): Promise<Record<string, number>> {
  const rows = await duck(`SELECT date::VARCHAR AS date, state, count(*)::INTEGER AS n FROM ${ALL(dir)} GROUP BY ALL`);
  return Object.fromEntries(rows.map((r) => [`${r.date} ${r.state}`, r.n as number]));
}
function countsOf(rows: ExecutionFacts[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const f of rows) {
    const key = `${dateOf(Math.floor(f.finishedAt! / DAY_MS))} ${f.state}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** Every file under `dir`, relative. */
function filesUnder(dir: string): string[] {
  return fs.existsSync(dir) ? (fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name))).sort()) : [];
}

/** A shard's history file holding these days of executions, one log entry per day. */
function historyFile(dir: string, shard: number, days: ExecutionFacts[][]): HistoryDb {
  const db = new HistoryDb(path.join(dir, `shard-${String(shard).padStart(4, "0")}.sqlite`));
  days.forEach((rows, i) => db.append(rows, i + 1));
  db.commit();
  return db;
}

function runAt(exportDir: string, nowMs: number, cutoffMs = nowMs - RETENTION_MS) {
  return { exportDir, spillDir: path.join(exportDir, "..", "spill"), nowMs, cutoffMs };
}
const summary = (outcomes: DayExport[]) => outcomes.map((o) => `${o.shard} ${o.date} ${o.outcome}${o.outcome === "exported" ? ` ${o.rows}` : ""}`);

describe("history export to Parquet", () => {
  it("exports each closed day once, Hive-style, every row and field as written, readable by DuckDB as it is", async () => {
    const dir = tempDir();
    const exportDir = path.join(dir, "export");
    const days = [dayOfExecutions(D0, 37), dayOfExecutions(D1, 64), dayOfExecutions(D2, 11)];
    const db = historyFile(dir, 3, days);
    const now = D2 * DAY_MS + 5 * 3_600_000;

    const outcomes = await exportClosedDays(new Map([[3, db]]), runAt(exportDir, now));
    expect(summary(outcomes)).toEqual([`3 ${dateOf(D0)} exported 37`, `3 ${dateOf(D1)} exported 64`]);
    for (const o of outcomes) if (o.outcome === "exported") expect(o.bytes).toBe(fs.statSync(o.file).size);
    // The open day is not exported; nothing but the two files is left behind (no temporary file).
    expect(filesUnder(exportDir)).toEqual([`shard=0003/date=${dateOf(D0)}/part.parquet`, `shard=0003/date=${dateOf(D1)}/part.parquet`]);

    // Counts by day and state, then every row, field by field, in key order within each file.
    const closed = [...days[0]!, ...days[1]!];
    expect(await exportedCounts(exportDir)).toEqual(countsOf(closed));
    expect(await exportedRows(exportDir)).toEqual(closed.map((f) => expectedRow(3, f)));

    // Typed columns: times are millisecond timestamps, counts integers.
    const schema = await duck(`SELECT name, type, logical_type::VARCHAR AS logical FROM parquet_schema('${dayExportFile(exportDir, 3, D0)}')`);
    const typeOf = (name: string) => schema.find((c) => c.name === name)!;
    for (const t of ["scheduled_at", "created_at", "ready_at", "started_at", "finished_at"]) expect(typeOf(t).logical).toMatch(/^TimestampType\(.*MILLIS=MilliSeconds\(\)/);
    expect(typeOf("attempt").type).toBe("INT32");
    expect(typeOf("lateness_ms").type).toBe("INT64");
    expect(typeOf("payload").type).toBe("BYTE_ARRAY");

    // Again: nothing new, the files untouched; and the file remembers it across a reopen.
    const mtimes = filesUnder(exportDir).map((f) => fs.statSync(path.join(exportDir, f)).mtimeMs);
    expect(await exportClosedDays(new Map([[3, db]]), runAt(exportDir, now + 3_600_000))).toEqual([]);
    db.close();
    const reopened = new HistoryDb(db.file);
    expect([...reopened.exportedDays()].sort()).toEqual([D0, D1]);
    expect(await exportClosedDays(new Map([[3, reopened]]), runAt(exportDir, now + 7_200_000))).toEqual([]);
    expect(filesUnder(exportDir).map((f) => fs.statSync(path.join(exportDir, f)).mtimeMs)).toEqual(mtimes);
    reopened.close();
  });

  it("writes the same bytes on every replica of a shard", async () => {
    const dir = tempDir();
    const days = [dayOfExecutions(D0, 50), dayOfExecutions(D1, 3)];
    const files: Buffer[] = [];
    for (const replica of ["a", "b"]) {
      const db = historyFile(path.join(dir, replica), 5, days);
      const [o] = await exportClosedDays(new Map([[5, db]]), runAt(path.join(dir, replica, "export"), D1 * DAY_MS + 1));
      expect(o?.outcome).toBe("exported");
      files.push(fs.readFileSync(dayExportFile(path.join(dir, replica, "export"), 5, D0)));
      db.close();
    }
    expect(files[0]!.equals(files[1]!)).toBe(true);
  });

  it("exports a day only once this file holds a later day, or when retention would drop it", async () => {
    const dir = tempDir();
    const exportDir = path.join(dir, "export");
    const db = historyFile(dir, 0, [dayOfExecutions(D0, 8), dayOfExecutions(D1, 8)]);
    const now = D3 * DAY_MS + 1;
    // D1 is past on the clock, but nothing later has been applied here: this replica may not have all of it.
    expect(summary(await exportClosedDays(new Map([[0, db]]), runAt(exportDir, now)))).toEqual([`0 ${dateOf(D0)} exported 8`]);
    db.append(dayOfExecutions(D2, 4), 3);
    expect(summary(await exportClosedDays(new Map([[0, db]]), runAt(exportDir, now)))).toEqual([`0 ${dateOf(D1)} exported 8`]);
    // The shard went idle after D2: retention dropping D2 now exports it first.
    expect(summary(await exportClosedDays(new Map([[0, db]]), runAt(exportDir, now, D3 * DAY_MS)))).toEqual([`0 ${dateOf(D2)} exported 4`]);
    expect(await exportedCounts(exportDir)).toEqual(countsOf([...dayOfExecutions(D0, 8), ...dayOfExecutions(D1, 8), ...dayOfExecutions(D2, 4)]));
    db.close();
  });

  it("skips the days a gap may cover (a replica that installed a snapshot), and exports the days after it", async () => {
    const dir = tempDir();
    const exportDir = path.join(dir, "export");
    const db = new HistoryDb(path.join(dir, "shard-0002.sqlite"));
    db.append(dayOfExecutions(D0, 6), 1);
    // Entries 2..40 were skipped by a snapshot installed at 01:00 on D1: rows of D0 and of D1 up to then may be missing.
    db.recordGap(2, 40, D1 * DAY_MS + 3_600_000);
    db.append(dayOfExecutions(D1, 6).filter((f) => f.finishedAt! > D1 * DAY_MS + 3_600_000), 41);
    db.append(dayOfExecutions(D2, 5), 42);
    db.append(dayOfExecutions(D3, 1), 43);
    db.commit();
    const outcomes = await exportClosedDays(new Map([[2, db]]), runAt(exportDir, D3 * DAY_MS + 1));
    expect(summary(outcomes)).toEqual([`2 ${dateOf(D0)} skipped`, `2 ${dateOf(D1)} skipped`, `2 ${dateOf(D2)} exported 5`]);
    expect(outcomes[0]).toMatchObject({ gapAt: D1 * DAY_MS + 3_600_000 });
    expect(filesUnder(exportDir)).toEqual([`shard=0002/date=${dateOf(D2)}/part.parquet`]);
    expect(await exportedCounts(exportDir)).toEqual(countsOf(dayOfExecutions(D2, 5)));
    db.close();
  });
});

describe("history export through the history thread (the server's path)", () => {
  /** A store on a settable clock, its log lines kept. */
  function startStore(dir: string, exportDir: string) {
    const clock = { now: D2 * DAY_MS + 3_600_000 };
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const store = HistoryStore.start({ dir, retentionMs: RETENTION_MS, exportDir }, logger, () => clock.now);
    return { store, clock, lines };
  }
  /** Feed days of executions to a shard as its replica does: one log entry per day. */
  async function feed(store: HistoryStore, shard: number, days: ExecutionFacts[][], firstIndex = 1): Promise<void> {
    const history = await store.openShard(shard);
    days.forEach((rows, i) => {
      history.applying(firstIndex + i);
      for (const f of rows) history.finished(f as Execution);
      history.applied(firstIndex + i);
    });
    await history.commit(false);
  }

  it("exports the closed days of every shard, logs each, and exports nothing twice", async () => {
    const dir = tempDir();
    const exportDir = path.join(dir, "export");
    const { store, lines } = startStore(path.join(dir, "history"), exportDir);
    try {
      const shard0 = [dayOfExecutions(D0, 21), dayOfExecutions(D1, 30), dayOfExecutions(D2, 9)];
      const shard1 = [dayOfExecutions(D1, 12), dayOfExecutions(D2, 2)];
      await feed(store, 0, shard0);
      await feed(store, 1, shard1);
      expect(summary(await store.exportClosedDays())).toEqual([`0 ${dateOf(D0)} exported 21`, `0 ${dateOf(D1)} exported 30`, `1 ${dateOf(D1)} exported 12`]);
      const logged = lines.filter((l) => l.msg === "history day exported as Parquet");
      expect(logged.map((l) => [l.shard, l.date, l.rows])).toEqual([[0, dateOf(D0), 21], [0, dateOf(D1), 30], [1, dateOf(D1), 12]]);
      for (const l of logged) expect(l).toMatchObject({ bytes: expect.any(Number), ms: expect.any(Number) });

      expect(await exportedCounts(exportDir)).toEqual(countsOf([...shard0[0]!, ...shard0[1]!, ...shard1[0]!]));
      expect(await exportedRows(exportDir)).toEqual([...shard0[0]!, ...shard0[1]!].map((f) => expectedRow(0, f)).concat(shard1[0]!.map((f) => expectedRow(1, f))));
      expect(await store.exportClosedDays()).toEqual([]);
      // History is still written and read while and after exporting.
      expect((await store.stats(0))?.rows).toBe(60);
    } finally {
      await store.close();
    }
  });

  it("logs a failed export, retries it at the next one, keeps the day from retention meanwhile, and history goes on", async () => {
    const dir = tempDir();
    const exportDir = path.join(dir, "export");
    fs.writeFileSync(exportDir, "not a directory");
    const { store, clock, lines } = startStore(path.join(dir, "history"), exportDir);
    try {
      await feed(store, 4, [dayOfExecutions(D0, 10), dayOfExecutions(D1, 10)]);
      expect(summary(await store.exportClosedDays())).toEqual([`4 ${dateOf(D0)} failed`]);
      expect(lines.filter((l) => l.msg === "history day export failed; retried at the next export, and kept by retention until then")).toHaveLength(1);

      // Retention would drop both days, but D0 is not exported yet (and D1 comes after it).
      clock.now = D2 * DAY_MS + RETENTION_MS;
      await store.enforceRetention();
      expect((await store.stats(4))?.days).toBe(2);
      await feed(store, 4, [dayOfExecutions(D2, 3)], 3);
      expect((await store.stats(4))?.rows).toBe(23);

      fs.rmSync(exportDir);
      expect(summary(await store.exportClosedDays())).toEqual([`4 ${dateOf(D0)} exported 10`, `4 ${dateOf(D1)} exported 10`]);
      await store.enforceRetention();
      expect((await store.stats(4))?.days).toBe(1);
    } finally {
      await store.close();
    }
  });

  it("a close during an export stops it without a file or a record, and the next start exports the day whole", async () => {
    const dir = tempDir();
    const exportDir = path.join(dir, "export");
    const days = [dayOfExecutions(D0, 10_000), dayOfExecutions(D1, 1)];
    const first = startStore(path.join(dir, "history"), exportDir);
    await feed(first.store, 6, days);
    const interrupted = first.store.exportClosedDays();
    await first.store.close();
    expect(await interrupted).toEqual([]);
    expect(filesUnder(exportDir)).toEqual([]);

    const second = startStore(path.join(dir, "history"), exportDir);
    try {
      await second.store.openShard(6);
      expect(summary(await second.store.exportClosedDays())).toEqual([`6 ${dateOf(D0)} exported 10000`]);
      expect(await exportedCounts(exportDir)).toEqual(countsOf(days[0]!));
    } finally {
      await second.store.close();
    }
  });
});
