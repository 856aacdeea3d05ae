/**
 * One shard-day of execution history written as a Parquet file, for users past one machine: a
 * data team points DuckDB, ClickHouse or Spark at the export directory and reads it as it is
 * (docs/history.md, "Export to Parquet"). The history thread decides which days to write and when
 * (history-thread.ts); this file only knows how to write one.
 *
 * Layout, Hive-style so readers discover the partitions: `{exportDir}/shard=NNNN/date=YYYY-MM-DD/part.parquet`.
 * Columns are flat and typed, one per thing a query filters or sums on (EXPORT_COLUMNS); JSON
 * values (payload, result, attempts) are JSON text.
 *
 * DuckDB writes the file: an in-memory instance, a staging table filled through its appender a
 * data chunk at a time (with a pause after each, so the history thread goes on answering), then
 * `COPY … TO` a temporary name in the same directory, renamed into place once whole, so a reader
 * never sees half a file. One DuckDB thread and rows in key order make the bytes the same on every
 * replica. DuckDB (a 70 MB native module) is imported only when an export runs.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { DuckDBConnection, DuckDBInstance, DuckDBType } from "@duckdb/node-api";
import type { ExecutionFacts } from "../core/execution.js";
import { DAY_MS } from "./history-db.js";

type DuckDB = typeof import("@duckdb/node-api");

/**
 * Rows handed to DuckDB at once, then a pause: DuckDB's vector size, about 25 ms of the thread's
 * time, so its other messages never wait longer than that.
 */
const ROWS_PER_CHUNK = 2048;
/**
 * DuckDB's buffer memory for one export; more of a day spills to the spill directory. (The process
 * still grew by 0.3–0.6 GB while exporting a day of 1,000,000 rows, and gave it back: docs/history.md.)
 */
const DUCKDB_MEMORY_LIMIT = "256MB";

/**
 * How a column is written to Parquet. Staged as VARCHAR, INTEGER or DOUBLE (a JS number holds any
 * millisecond count exactly): DuckDB's data chunks take numbers without a call into DuckDB per value.
 */
type ColumnKind =
  /** VARCHAR (UTF-8 BYTE_ARRAY in Parquet). */
  | "text"
  /** INTEGER (INT32). */
  | "int"
  /** BIGINT (INT64), milliseconds. */
  | "ms"
  /** TIMESTAMP_MS, UTC (INT64 TIMESTAMP(MILLIS) in Parquet), from epoch milliseconds. */
  | "timestamp";

interface ExportColumn {
  name: string;
  kind: ColumnKind;
  value(f: ExecutionFacts): string | number | null;
}

const json = (v: unknown): string | null => (v === null || v === undefined ? null : JSON.stringify(v));

/** The file's columns, in order. docs/history.md lists them for users; keep the two in step. */
const EXPORT_COLUMNS: readonly ExportColumn[] = [
  { name: "id", kind: "text", value: (f) => f.id },
  { name: "tenant", kind: "text", value: (f) => f.tenant },
  { name: "job_id", kind: "text", value: (f) => f.jobId },
  { name: "queue", kind: "text", value: (f) => f.queue },
  { name: "state", kind: "text", value: (f) => f.state },
  { name: "reason", kind: "text", value: (f) => f.reason },
  { name: "scheduled_at", kind: "timestamp", value: (f) => f.scheduledAt },
  { name: "created_at", kind: "timestamp", value: (f) => f.createdAt },
  { name: "ready_at", kind: "timestamp", value: (f) => (f.readyAt === 0 ? null : f.readyAt) },
  { name: "started_at", kind: "timestamp", value: (f) => f.startedAt },
  { name: "finished_at", kind: "timestamp", value: (f) => f.finishedAt },
  { name: "attempt", kind: "int", value: (f) => f.attempt },
  { name: "worker_id", kind: "text", value: (f) => f.attempts?.at(-1)?.workerId ?? null },
  { name: "lateness_ms", kind: "ms", value: (f) => (f.startedAt === null ? null : f.startedAt - f.scheduledAt) },
  { name: "run_ms", kind: "ms", value: (f) => (f.startedAt === null || f.finishedAt === null ? null : f.finishedAt - f.startedAt) },
  { name: "priority", kind: "int", value: (f) => f.priority },
  { name: "ordering_key", kind: "text", value: (f) => f.orderingKey },
  { name: "idempotency_key", kind: "text", value: (f) => f.idempotencyKey },
  { name: "payload", kind: "text", value: (f) => json(f.payload) },
  { name: "result", kind: "text", value: (f) => json(f.result) },
  { name: "attempts", kind: "text", value: (f) => json(f.attempts) },
];

const STAGED_TYPE: Record<ColumnKind, "VARCHAR" | "INTEGER" | "DOUBLE"> = { text: "VARCHAR", int: "INTEGER", ms: "DOUBLE", timestamp: "DOUBLE" };
const WRITTEN_AS: Record<ColumnKind, (column: string) => string> = {
  text: (c) => c,
  int: (c) => c,
  ms: (c) => `${c}::BIGINT AS ${c}`,
  timestamp: (c) => `epoch_ms(${c}::BIGINT)::TIMESTAMP_MS AS ${c}`,
};
const STAGING_TABLE = "export_day";

/** Where a shard-day's file goes. */
export function dayExportFile(exportDir: string, shard: number, day: number): string {
  return path.join(exportDir, `shard=${String(shard).padStart(4, "0")}`, `date=${exportDate(day)}`, "part.parquet");
}

/** A day (days since the epoch, UTC) as its partition's date, YYYY-MM-DD. */
export function exportDate(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

export interface WrittenFile {
  rows: number;
  bytes: number;
}

/** Writes shard-days as Parquet files; open one for an export run, close it after. */
export class ParquetDayWriter {
  private readonly stagedTypes: DuckDBType[];

  private constructor(
    private readonly duckdb: DuckDB,
    private readonly instance: DuckDBInstance,
    private readonly connection: DuckDBConnection,
  ) {
    this.stagedTypes = EXPORT_COLUMNS.map((c) => duckdb[STAGED_TYPE[c.kind]]);
  }

  /** `spillDir`: where DuckDB may spill a day that does not fit its memory limit. */
  static async open(spillDir: string): Promise<ParquetDayWriter> {
    const duckdb = await import("@duckdb/node-api");
    const instance = await duckdb.DuckDBInstance.create(":memory:", {
      threads: "1",
      memory_limit: DUCKDB_MEMORY_LIMIT,
      temp_directory: spillDir,
      // Parquet is built in; never fetch an extension from the network in a server.
      autoinstall_known_extensions: "false",
    });
    try {
      return new ParquetDayWriter(duckdb, instance, await instance.connect());
    } catch (error) {
      instance.closeSync();
      throw error;
    }
  }

  /**
   * Write `rows` (one shard-day, in key order) to `file`, replacing it whole. The rows are pulled
   * a chunk at a time with a pause between chunks; `signal` stops the write at the next pause.
   */
  async write(rows: Iterable<ExecutionFacts>, file: string, signal?: AbortSignal): Promise<WrittenFile> {
    const dir = path.dirname(file);
    // Not `*.parquet`: a reader's glob never picks up a file being written.
    const temporary = path.join(dir, `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString("hex")}.tmp`);
    const staged = EXPORT_COLUMNS.map((c) => `${c.name} ${STAGED_TYPE[c.kind]}`).join(", ");
    const written = EXPORT_COLUMNS.map((c) => WRITTEN_AS[c.kind](c.name)).join(", ");
    await this.connection.run(`CREATE OR REPLACE TABLE ${STAGING_TABLE} (${staged})`);
    try {
      const count = await this.stage(rows, signal);
      fs.mkdirSync(dir, { recursive: true });
      await this.connection.run(`COPY (SELECT ${written} FROM ${STAGING_TABLE}) TO ${sqlString(temporary)} (FORMAT parquet, COMPRESSION zstd)`);
      signal?.throwIfAborted();
      const bytes = fs.statSync(temporary).size;
      fs.renameSync(temporary, file);
      return { rows: count, bytes };
    } finally {
      fs.rmSync(temporary, { force: true });
      await this.connection.run(`DROP TABLE IF EXISTS ${STAGING_TABLE}`);
    }
  }

  close(): void {
    this.connection.closeSync();
    this.instance.closeSync();
  }

  /** Append `rows` to the staging table in data chunks, column by column. */
  private async stage(rows: Iterable<ExecutionFacts>, signal: AbortSignal | undefined): Promise<number> {
    const appender = await this.connection.createAppender(STAGING_TABLE);
    const columns = EXPORT_COLUMNS.map(() => new Array<string | number | null>(ROWS_PER_CHUNK));
    // One chunk, reused: the appender copies it, and chunks left to the GC hold their native
    // memory until it runs (hundreds of MB over a million rows).
    const chunk = this.duckdb.DuckDBDataChunk.create(this.stagedTypes);
    const appendChunk = (size: number) => {
      chunk.reset();
      chunk.rowCount = size;
      chunk.setColumns(size === ROWS_PER_CHUNK ? columns : columns.map((values) => values.slice(0, size)));
      appender.appendDataChunk(chunk);
    };
    let count = 0;
    let inChunk = 0;
    try {
      for (const f of rows) {
        for (let i = 0; i < EXPORT_COLUMNS.length; i++) columns[i]![inChunk] = EXPORT_COLUMNS[i]!.value(f);
        count++;
        if (++inChunk === ROWS_PER_CHUNK) {
          appendChunk(inChunk);
          inChunk = 0;
          await new Promise((resolve) => setImmediate(resolve));
          signal?.throwIfAborted();
        }
      }
      if (inChunk > 0) appendChunk(inChunk);
    } finally {
      // Flushes what was appended; after an error the staging table is dropped anyway.
      appender.closeSync();
    }
    return count;
  }
}

function sqlString(s: string): string {
  return `'${s.replaceAll("'", "''")}'`;
}
