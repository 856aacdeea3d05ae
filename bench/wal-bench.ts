/**
 * WAL benchmark: records/s appended and made durable with ~100-byte records, for each fsync mode,
 * with several appenders issuing batches concurrently (each: append a batch, await flush, repeat)
 * — the shape of a shard leader under load. Also fsync and flush latency percentiles, and the
 * cost of a snapshot of a million jobs.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/wal-bench.js   (prints JSON)
 * or import { runWalBench } and call it (bench/run.js).
 */

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { type FsyncMode, Wal } from "../wal/index.js";

export interface WalBenchOptions {
  /** Measuring time per fsync mode. */
  durationMs?: number;
  /** Concurrent appenders. */
  appenders?: number;
  /** Records per append call. */
  batchRecords?: number;
  /** Jobs in the snapshot benchmark; 0 skips it. */
  snapshotJobs?: number;
  /** Parent of the temporary log directories. */
  baseDir?: string;
}

interface ModeResult {
  recordsPerSec: number;
  records: number;
  seconds: number;
  batches: number;
  avgRecordsPerBatch: number;
  fsyncP50Ms: number | null;
  fsyncP99Ms: number | null;
  flushP50Ms: number;
  flushP99Ms: number;
}

function jobRecord(i: number): Record<string, unknown> {
  return {
    t: "ExecutionCreated",
    id: `job-${i % 100_000}:${1_735_689_600_000 + i}`,
    tenant: "acme",
    queue: "emails",
    at: 1_735_689_600_000 + i,
    attempt: 1,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const round = (n: number, digits = 3) => Math.round(n * 10 ** digits) / 10 ** digits;

async function benchMode(mode: FsyncMode, o: Required<WalBenchOptions>): Promise<ModeResult> {
  const dir = fs.mkdtempSync(path.join(o.baseDir, `cw-walbench-${mode}-`));
  try {
    const { wal } = await Wal.open({ dir, fsync: mode });
    const fsyncMs: number[] = [];
    wal.onDurable(() => {
      const s = wal.stats();
      if (s.lastFsyncMs > 0) fsyncMs.push(s.lastFsyncMs);
    });
    // records are prebuilt so the measurement is the WAL, not the record factory
    const batches = Array.from({ length: 64 }, (_, b) =>
      Array.from({ length: o.batchRecords }, (_, i) => jobRecord(b * o.batchRecords + i)),
    );
    const flushMs: number[] = [];
    const startRecords = wal.stats().records;
    const t0 = performance.now();
    const deadline = t0 + o.durationMs;
    const appender = async (id: number) => {
      for (let n = id; performance.now() < deadline; n += o.appenders) {
        wal.append(1, batches[n % batches.length]!);
        const f0 = performance.now();
        await wal.flush();
        flushMs.push(performance.now() - f0);
      }
    };
    await Promise.all(Array.from({ length: o.appenders }, (_, id) => appender(id)));
    const seconds = (performance.now() - t0) / 1000;
    const s = wal.stats();
    await wal.close();
    const records = s.records - startRecords;
    fsyncMs.sort((a, b) => a - b);
    flushMs.sort((a, b) => a - b);
    return {
      recordsPerSec: Math.round(records / seconds),
      records,
      seconds: round(seconds),
      batches: s.batches,
      avgRecordsPerBatch: round(records / Math.max(1, s.batches), 1),
      fsyncP50Ms: fsyncMs.length > 0 ? round(percentile(fsyncMs, 50)) : null,
      fsyncP99Ms: fsyncMs.length > 0 ? round(percentile(fsyncMs, 99)) : null,
      flushP50Ms: round(percentile(flushMs, 50)),
      flushP99Ms: round(percentile(flushMs, 99)),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Bytes of one frame for the benchmark record, measured from the file. */
async function frameBytes(baseDir: string): Promise<number> {
  const dir = fs.mkdtempSync(path.join(baseDir, "cw-walbench-size-"));
  try {
    const { wal } = await Wal.open({ dir, fsync: "off" });
    wal.append(1, Array.from({ length: 1000 }, (_, i) => jobRecord(i)));
    await wal.close();
    const file = fs.readdirSync(dir).find((n) => n.endsWith(".wal"))!;
    return round(fs.statSync(path.join(dir, file)).size / 1000, 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function benchSnapshot(jobs: number, baseDir: string): Promise<Record<string, number>> {
  const dir = fs.mkdtempSync(path.join(baseDir, "cw-walbench-snap-"));
  try {
    const state = {
      jobs: Array.from({ length: jobs }, (_, i) => ({
        id: `job-${i}`,
        tenant: `t${i % 100}`,
        queue: `q${i % 10}`,
        cron: "*/5 * * * *",
        timezone: "UTC",
        nextFireAtMs: 1_735_689_600_000 + i,
        attempts: i % 5,
        payload: { k: i },
      })),
    };
    const { wal } = await Wal.open({ dir, fsync: "batch" });
    wal.append(1, ["x"]);
    await wal.flush();
    const t0 = performance.now();
    await wal.saveSnapshot(1, 1, state);
    const saveMs = performance.now() - t0;
    await wal.close();
    const snapFile = fs.readdirSync(dir).find((n) => n.endsWith(".snap"))!;
    const bytes = fs.statSync(path.join(dir, snapFile)).size;
    const t1 = performance.now();
    const reopened = await Wal.open({ dir, fsync: "batch" });
    const loadMs = performance.now() - t1;
    await reopened.wal.close();
    return { jobs, bytes, saveMs: Math.round(saveMs), loadMs: Math.round(loadMs) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function runWalBench(options: WalBenchOptions = {}): Promise<Record<string, unknown>> {
  const o: Required<WalBenchOptions> = {
    durationMs: options.durationMs ?? 3000,
    appenders: options.appenders ?? 4,
    batchRecords: options.batchRecords ?? 250,
    snapshotJobs: options.snapshotJobs ?? 1_000_000,
    baseDir: options.baseDir ?? os.tmpdir(),
  };
  const modes: Record<string, ModeResult> = {};
  for (const mode of ["batch", "always", "off"] as const) modes[mode] = await benchMode(mode, o);
  const result: Record<string, unknown> = {
    bench: "wal",
    node: process.version,
    cpus: os.cpus().length,
    frameBytes: await frameBytes(o.baseDir),
    appenders: o.appenders,
    batchRecords: o.batchRecords,
    durationMsPerMode: o.durationMs,
    modes,
  };
  if (o.snapshotJobs > 0) result["snapshot"] = await benchSnapshot(o.snapshotJobs, o.baseDir);
  return result;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href;
if (invokedDirectly) {
  runWalBench().then(
    (r) => console.log(JSON.stringify(r, null, 2)),
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
