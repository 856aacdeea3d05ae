/**
 * What the history file's aggregates cost its writer: the minute and hour rollups (rollups.ts) and
 * the per-job counts and last run (job-runs.ts) are kept as rows are appended, in the history
 * thread. This appends no-op rows straight into a HistoryDb (no server: the writer's own cost,
 * which the ingest benchmark, history-ingest.ts, sees only through a node's CPU and lateness), in
 * commits of 20,000 as the thread does at 20,000 executions/s, with each aggregate on and off.
 *
 * `npm run build && node dist/bench/history-aggregates.js` runs, for ad-hoc executions (no job) and
 * for fires of 100,000 different jobs (20,000 different ones in every commit, the worst case for
 * job-runs), each variant BENCH_ROUNDS times (default 3) in a fresh file, alternating, and prints
 * the median rows/s and bytes per row (file and WAL, after a close) as one JSON document.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { ExecutionFacts } from "../src/core/execution.js";
import { HistoryDb } from "../src/history/history-db.js";

const ROWS = 400_000;
const COMMIT_ROWS = 20_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const T0 = Date.UTC(2026, 11, 7);

type Variant = "none" | "rollups" | "job-runs" | "all";
type Kind = "ad-hoc" | "jobs";

function row(kind: Kind, n: number, seq: number): ExecutionFacts {
  const finishedAt = T0 + Math.floor(n / 20);
  const jobId = kind === "jobs" ? `job-${n % 100_000}` : null;
  const scheduledAt = finishedAt - 5;
  return {
    id: jobId ? `${jobId}:${scheduledAt}` : `x00a1${finishedAt.toString(36)}${n.toString(36).padStart(4, "0")}`,
    tenant: "default",
    jobId,
    queue: "q",
    state: "succeeded",
    reason: null,
    scheduledAt,
    createdAt: scheduledAt,
    readyAt: scheduledAt,
    startedAt: finishedAt - 2,
    finishedAt,
    finishSeq: seq,
    attempt: 1,
    attempts: [{ attempt: 1, workerId: "w1", claimedAt: finishedAt - 3, finishedAt, outcome: "succeeded", error: null }],
    payload: null,
    priority: 5,
    result: undefined,
    orderingKey: null,
    idempotencyKey: null,
  };
}

function once(kind: Kind, variant: Variant): { rowsPerSec: number; bytesPerRow: number } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cronwheel-aggregates-"));
  const file = path.join(dir, "shard-0000.sqlite");
  const db = new HistoryDb(file);
  // Turn an aggregate off by making its collector a no-op (the benchmark's switch, not a setting).
  const internals = db as unknown as { rollups: { add: () => void }; jobRunsTable: { add: () => void } };
  if (variant === "none" || variant === "job-runs") internals.rollups.add = () => {};
  if (variant === "none" || variant === "rollups") internals.jobRunsTable.add = () => {};
  let seq = 0;
  let lastMs = -1;
  const start = process.hrtime.bigint();
  for (let c = 0; c < ROWS / COMMIT_ROWS; c++) {
    const rows: ExecutionFacts[] = [];
    for (let i = 0; i < COMMIT_ROWS; i++) {
      const n = c * COMMIT_ROWS + i;
      const ms = T0 + Math.floor(n / 20);
      seq = ms === lastMs ? seq + 1 : 0;
      lastMs = ms;
      rows.push(row(kind, n, seq));
    }
    db.append(rows, c + 1);
    db.commit();
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  db.close();
  const bytes = ["", "-wal"].reduce((sum, suffix) => sum + (fs.existsSync(file + suffix) ? fs.statSync(file + suffix).size : 0), 0);
  fs.rmSync(dir, { recursive: true, force: true });
  return { rowsPerSec: Math.round(ROWS / seconds), bytesPerRow: Math.round((bytes / ROWS) * 10) / 10 };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results: Record<string, unknown> = {};
for (const kind of ["ad-hoc", "jobs"] as const) {
  const runs: Record<Variant, Array<{ rowsPerSec: number; bytesPerRow: number }>> = { none: [], rollups: [], "job-runs": [], all: [] };
  for (let r = 0; r < ROUNDS; r++) for (const v of ["none", "rollups", "job-runs", "all"] as const) runs[v].push(once(kind, v));
  results[kind] = Object.fromEntries(
    Object.entries(runs).map(([v, rs]) => [v, { rowsPerSec: median(rs.map((x) => x.rowsPerSec)), bytesPerRow: median(rs.map((x) => x.bytesPerRow)), runs: rs.map((x) => x.rowsPerSec) }]),
  );
}
console.log(JSON.stringify({ rows: ROWS, commitRows: COMMIT_ROWS, rounds: ROUNDS, results }, null, 2));
