/**
 * Node-level benchmarks, in process (no HTTP in the way, so the figures are the scheduler's own):
 *
 * - jobs: 1,000,000 active jobs in one node — heap bytes per job, creation rate;
 * - restart (in a fresh process, as an operator sees it): the same node restarted after a clean stop (from the final snapshot) and from the
 *   directory as a crash leaves it (periodic snapshots plus the log after them);
 * - lateness: N jobs firing every second with fsync batch — fires per second and lateness: from a
 *   fire's due time to its execution being available to workers, i.e. max(0, committed − due),
 *   since a fire committed ahead of time (the tick lookahead) becomes ready exactly at its time.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { parseJobBody, DEFAULT_LIMITS } from "../src/api/validation.js";
import { NO_OBSERVER, type ShardObserver } from "../src/core/shard-state.js";
import { SystemClock } from "../src/node/clock.js";
import { percentile, round } from "./stats.js";
import { CronwheelNode } from "../src/node/node.js";

const logger = pino({ level: "warn" });
const SHARDS = 8;

function gcHeap(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with node --expose-gc");
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

function tempDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `cronwheel-bench-${name}-`));
}


async function startNode(dataDir: string, observer?: ShardObserver): Promise<CronwheelNode> {
  return CronwheelNode.start({
    address: "127.0.0.1:0",
    nodeId: "bench",
    dataDir,
    shardCount: SHARDS,
    fsync: "batch",
    clock: new SystemClock(),
    logger,
    ...(observer ? { observer } : {}),
  });
}

/** A realistic spread of definitions: 100 templates over 10 queues, hourly-or-slower triggers so nothing fires during the run. */
function templates(now: number) {
  const out = [];
  for (let i = 0; i < 100; i++) {
    const body =
      i % 2 === 0
        ? { queue: `q${i % 10}`, cron: `${i % 60} ${i % 24} * * *`, timezone: i % 4 === 0 ? "Europe/Berlin" : "UTC", labels: { team: `t${i % 5}` } }
        : { queue: `q${i % 10}`, every: `${1 + (i % 12)}h`, retry: { maxAttempts: 1 + (i % 5) } };
    out.push(parseJobBody(body, DEFAULT_LIMITS));
  }
  return out;
}

export async function runJobsAndRestartBench(jobCount = 1_000_000): Promise<Record<string, unknown>> {
  const dataDir = tempDir("jobs");
  const crashCopy = `${dataDir}-crash`;
  const node = await startNode(dataDir);
  const specs = templates(Date.now());
  const heapBefore = gcHeap();
  const started = performance.now();
  const inFlightMax = 5_000;
  for (let i = 0; i < jobCount; i += inFlightMax) {
    const batch = [];
    for (let j = i; j < Math.min(jobCount, i + inFlightMax); j++) {
      batch.push(node.putJob("default", `job-${j}`, specs[j % specs.length]!, null));
    }
    await Promise.all(batch);
  }
  const createSec = (performance.now() - started) / 1000;
  const heapAfter = gcHeap();
  const bytesPerJob = (heapAfter - heapBefore) / jobCount;

  // The directory as a crash would leave it: the periodic snapshots plus the log after them.
  fs.cpSync(dataDir, crashCopy, { recursive: true });
  const stopStarted = performance.now();
  await node.close();
  const cleanStopSec = (performance.now() - stopStarted) / 1000;

  const timedRestart = (dir: string) => {
    const child = path.join(path.dirname(fileURLToPath(import.meta.url)), "restart-child.js");
    const out = execFileSync(process.execPath, [child, dir, String(SHARDS)], { encoding: "utf8" });
    return JSON.parse(out) as { sec: number; jobs: number };
  };
  const fromSnapshot = timedRestart(dataDir);
  const fromLog = timedRestart(crashCopy);
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.rmSync(crashCopy, { recursive: true, force: true });
  return {
    jobs: jobCount,
    createPerSec: Math.round(jobCount / createSec),
    heapBytesPerJob: Math.round(bytesPerJob),
    cleanStopWithSnapshotSec: round(cleanStopSec),
    restartFromSnapshotSec: round(fromSnapshot.sec),
    restartFromSnapshotJobs: fromSnapshot.jobs,
    restartAfterCrashSec: round(fromLog.sec),
    restartAfterCrashJobs: fromLog.jobs,
  };
}

export async function runLatenessBench(jobCount = 20_000, seconds = 15): Promise<Record<string, unknown>> {
  const dataDir = tempDir("lateness");
  const lateness: number[] = [];
  const clock = new SystemClock();
  let measuring = false;
  const observer: ShardObserver = {
    ...NO_OBSERVER,
    fired: (e, fireAtMs) => {
      if (measuring && e.state !== "skipped") lateness.push(clock.now() - fireAtMs); // < 0: committed early
    },
  };
  const node = await startNode(dataDir, observer);
  // Spread the jobs' phases over the second, as real interval jobs created over time are.
  const spec = parseJobBody({ queue: "lateness", every: 1000 }, DEFAULT_LIMITS);
  const base = Math.ceil(Date.now() / 1000) * 1000 + 2000;
  const puts = [];
  for (let i = 0; i < jobCount; i++) {
    const startAtMs = base + Math.floor((i * 1000) / jobCount);
    puts.push(node.putJob("default", `late-${i}`, { ...spec, schedule: { ...spec.schedule, startAtMs, anchorMs: startAtMs } }, null));
  }
  await Promise.all(puts);
  await new Promise((r) => setTimeout(r, Math.max(0, base + 1000 - Date.now())));
  measuring = true;
  const loopDelays: number[] = [];
  let last = performance.now();
  const probe = setInterval(() => {
    const now = performance.now();
    loopDelays.push(now - last - 10);
    last = now;
  }, 10);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  clearInterval(probe);
  const elapsed = (performance.now() - t0) / 1000;
  await node.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
  lateness.sort((a, b) => a - b);
  loopDelays.sort((a, b) => a - b);
  const available = (p: number) => Math.max(0, percentile(lateness, p));
  return {
    jobs: jobCount,
    seconds,
    firesPerSec: Math.round(lateness.length / elapsed),
    latenessMsP50: available(50),
    latenessMsP99: available(99),
    latenessMsP999: available(99.9),
    latenessMsMax: available(100),
    committedBeforeDuePct: round((100 * lateness.filter((l) => l <= 0).length) / Math.max(1, lateness.length)),
    commitLeadMsP50: -percentile(lateness, 50),
    eventLoopDelayMsP99: round(percentile(loopDelays, 99)),
    eventLoopDelayMsMax: round(percentile(loopDelays, 100)),
  };
}

