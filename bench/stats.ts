/** Small statistics shared by every benchmark scenario. */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

export function round(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The p-th percentile of an ascending array (nearest rank); NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export function sortedCopy(values: ArrayLike<number>, count = values.length): Float64Array {
  return Float64Array.from({ length: count }, (_, i) => values[i]!).sort();
}

/** p50/p90/p99/p99.9/max of an ascending array, as `${prefix}P50` … `${prefix}Max`. */
export function distribution(prefix: string, sorted: ArrayLike<number>): Record<string, number> {
  return {
    [`${prefix}P50`]: round(percentile(sorted, 50)),
    [`${prefix}P90`]: round(percentile(sorted, 90)),
    [`${prefix}P99`]: round(percentile(sorted, 99)),
    [`${prefix}P999`]: round(percentile(sorted, 99.9)),
    [`${prefix}Max`]: round(percentile(sorted, 100)),
  };
}

/** Wall-clock epoch ms with sub-ms resolution, comparable across processes on one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * Before a measured part, each system runs this many no-op executions through the very worker
 * the part uses, unmeasured: a production scheduler (and its workers) runs warm, and a cold start
 * would time V8's compiler instead (the first herd through a fresh server took ~0.2 s longer).
 * BENCH_WARMUP=0 measures from cold.
 */
export const WARMUP_EXECUTIONS = Number(process.env.BENCH_WARMUP ?? 20_000);
/** The latency workloads run at their fixed rate this long, unmeasured, before they measure (same reason). */
export const WARMUP_LATENCY_SEC = WARMUP_EXECUTIONS > 0 ? 3 : 0;
/** What a warm-up execution carries, so handlers can tell it from measured work. */
export const WARMUP_PAYLOAD = { warmup: true } as const;
export function isWarmup(payload: unknown): boolean {
  return typeof payload === "object" && payload !== null && (payload as { warmup?: unknown }).warmup === true;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * The repeat workload of the benchmarks: `jobs` interval jobs every second, their phases spread
 * over the second (like BullMQ's per-scheduler offsets), starting `leadMs` from now; lateness is
 * collected by the caller's handler while `measuring()` says so, for `seconds`.
 */
export async function repeatWorkload(
  putJob: (id: string, spec: { queue: string; every: number; startAt: number }) => Promise<unknown>,
  opts: { jobs: number; seconds: number; leadMs: number; setMeasuring: (on: boolean) => void },
): Promise<{ elapsedSec: number }> {
  const base = Math.ceil(Date.now() / 1000) * 1000 + opts.leadMs;
  for (let i = 0; i < opts.jobs; i += 500) {
    await Promise.all(
      Array.from({ length: Math.min(500, opts.jobs - i) }, (_, k) =>
        putJob(`repeat-${i + k}`, { queue: "repeat", every: 1000, startAt: base + Math.floor(((i + k) * 1000) / opts.jobs) }),
      ),
    );
  }
  await sleep(Math.max(0, base + 1000 - Date.now()));
  opts.setMeasuring(true);
  const t0 = nowMs();
  await sleep(opts.seconds * 1000);
  opts.setMeasuring(false);
  return { elapsedSec: (nowMs() - t0) / 1000 };
}

let clkTck = 0;
function clockTicksPerSec(): number {
  if (!clkTck) clkTck = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;
  return clkTck;
}

/** CPU seconds (user + system) process `pid` has used so far, from /proc/<pid>/stat; NaN where unreadable. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / clockTicksPerSec();
  } catch {
    return NaN;
  }
}

/**
 * Wait until an fsync on the data directories' filesystem is quick again; returns the seconds
 * waited. This VM mounts / with `discard`: after files are deleted (a closing server compacts its
 * log into a snapshot and deletes the segments; a side's data directory is removed) fsyncs stall,
 * off and on, for up to ~0.5 s each over the next ~20 s while the disk trims. A side measured in
 * that window measures the previous side's trim. Probes: a small write and fdatasync every ~5 ms;
 * quiet means `quietMs` with no probe slower than `stallMs`.
 */
export async function waitForQuietDisk({ quietMs = 10_000, stallMs = 5, maxWaitMs = 120_000 } = {}): Promise<number> {
  const file = path.join(os.tmpdir(), `cronwheel-bench-disk-probe-${process.pid}`);
  const fd = fs.openSync(file, "w");
  const block = Buffer.alloc(512, 1);
  const start = performance.now();
  let quietSince = start;
  try {
    while (performance.now() - quietSince < quietMs && performance.now() - start < maxWaitMs) {
      fs.writeSync(fd, block, 0, block.length, 0);
      const t0 = performance.now();
      fs.fdatasyncSync(fd);
      if (performance.now() - t0 > stallMs) quietSince = performance.now();
      await sleep(5);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  return round((performance.now() - start - quietMs) / 1000);
}
