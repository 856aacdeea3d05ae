/**
 * Issue 13's history benchmark, against the real server: what keeping every finished execution on
 * disk (src/history/: SQLite, a file per shard, written by a worker thread) costs a node at the
 * issue's rate, and how many bytes a row takes — the two things the engine benchmark
 * (history-engines.ts) could only estimate without the server around it.
 *
 * `npm run build && node dist/bench/history-ingest.js` runs four phases, each in a process of its
 * own (as run.ts/side.ts do: a second workload in the same process measured 10–30 % slower) with a
 * fresh `cronwheel server --standalone --shards 8 --log-level warn` and data directory, after
 * waiting for the disk to be quiet (stats.ts, waitForQuietDisk). `… history-ingest.js <phase>`
 * runs one phase alone.
 *
 * - ingest-on, ingest-off (`--history off`): a producer enqueues ad-hoc executions (no payload)
 *   at a paced 20,000/s — a batch of 1,000 every 50 ms through the SDK Client's enqueueBatch, at
 *   most 4 batches in flight — for BENCH_SECONDS (default 120), and an SDK Worker (concurrency
 *   100, prefetch 300 as the throughput benchmark's better side; a no-op handler returning
 *   undefined, so no result is stored) runs them. Figures: completions per second over the steady
 *   window (the first 10 s skipped), the enqueue rate achieved, lateness (handler start − the
 *   execution's scheduledAt, for executions scheduled in the steady window) p50/p99/max, the
 *   server's CPU (whole process, main thread, other threads; per 10 s too), disk writes, shard-log
 *   fsyncs, RSS; with history on, how far the history files lag behind, and after a clean stop
 *   (SIGTERM) the history directory's bytes (every file, -wal and -shm included), its rows
 *   (HistoryDb.count()), distinct ids, and bytes per row. Goal: throughput and lateness p99
 *   within 10 % of history off.
 * - skipped: 200 jobs `every: "100ms"` with `concurrency: { limit: 1, overlap: "skip" }` and no
 *   worker for BENCH_SKIPPED_SECONDS (default 60): each job's first fire stays ready, every later
 *   one is recorded `skipped` (reason overlap). Bytes per skipped fire.
 * - noop-jobs: the same 200 jobs without a limit, run by a no-op worker, for
 *   BENCH_NOOP_JOBS_SECONDS (default 60): bytes per no-op execution of a job (an id the row need
 *   not store, unlike an ad-hoc execution's), the case the ≤ 60 B goal and the engine benchmark's
 *   43 B are about.
 *
 * Rows are checked against what the server says finished (cronwheel_executions_finished_total)
 * and, for the ingest, against the completions the worker saw: a mismatch is a bug, not noise.
 * Prints one JSON document with the phases and the on/off ratios.
 */
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { Client } from "../src/client/client.js";
import { CronwheelApiError } from "../src/client/errors.js";
import { Worker } from "../src/client/worker.js";
import { DAY_MS, HistoryDb } from "../src/history/history-db.js";
import { startServer, tempDir, type ServerProcess } from "../test/support/server-process.js";
import { distribution, nowMs, percentile, processCpuSeconds, round, sleep, sortedCopy, waitForQuietDisk } from "./stats.js";

type Figures = Record<string, unknown>;

const SECONDS = Number(process.env.BENCH_SECONDS ?? 120);
const SKIPPED_SECONDS = Number(process.env.BENCH_SKIPPED_SECONDS ?? 60);
const NOOP_JOBS_SECONDS = Number(process.env.BENCH_NOOP_JOBS_SECONDS ?? 60);
const STEADY_AFTER_SEC = 10;
const RATE_PER_SEC = 20_000;
const BATCH = 1_000;
const BATCH_EVERY_MS = (BATCH * 1000) / RATE_PER_SEC; // 50 ms
const MAX_BATCHES_IN_FLIGHT = 4;
const CONCURRENCY = 100;
const PREFETCH = 300;
const JOBS = 200;
// BENCH_SERVER_ARGS: extra server flags, for sensitivity runs (e.g. "--history-dir /dev/shm/h" puts
// the history files on tmpfs, off the disk the shard logs fsync on).
const EXTRA_ARGS = (process.env.BENCH_SERVER_ARGS ?? "").split(/\s+/).filter(Boolean);
const SERVER_ARGS = ["--shards", "8", "--log-level", "warn", ...EXTRA_ARGS];

/** Where the server keeps its history files: --history-dir, else DATA-DIR/history. */
function historyDirOf(dataDir: string): string {
  const i = EXTRA_ARGS.indexOf("--history-dir");
  return i >= 0 ? path.resolve(EXTRA_ARGS[i + 1]!) : path.join(dataDir, "history");
}

// ---------------------------------------------------------------------------------------------
// the server process, from /proc

let clkTck = 0;
function ticksPerSec(): number {
  return (clkTck ||= Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100);
}

/** CPU seconds each thread of `pid` has used so far (the main thread's tid is the pid). */
function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      out.set(Number(tid), (Number(fields[11]) + Number(fields[12])) / ticksPerSec());
    } catch {
      // the thread ended
    }
  }
  return out;
}

/** CPU seconds the whole machine has been busy (all cores; /proc/stat's first line, less idle and iowait). */
function machineBusySeconds(): number {
  const [user, nice, system, , , irq, softirq, steal] = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / ticksPerSec();
}

/** Bytes `pid` has caused to be written to storage so far (/proc/<pid>/io write_bytes). */
function writtenBytes(pid: number): number {
  return Number(/^write_bytes: (\d+)$/m.exec(fs.readFileSync(`/proc/${pid}/io`, "utf8"))?.[1] ?? NaN);
}

/** VmRSS and VmHWM (peak) of `pid`, in MiB. */
function memoryMiB(pid: number): { rssMiB: number; peakRssMiB: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
  return { rssMiB: round(kib("VmRSS") / 1024), peakRssMiB: round(kib("VmHWM") / 1024) };
}

/**
 * The server's CPU from now on: the whole process, its main thread, and its other threads with
 * more than 0.5 s, busiest first (with history on, the history thread is the one the history-off
 * run does not have; the rest are V8's and libuv's). Also this process's (producer and worker)
 * and what the rest of the machine used: the 2 cores are shared with whatever else runs.
 */
function cpuMeter(server: ServerProcess): () => Figures {
  const pid = server.child.pid!;
  const process0 = processCpuSeconds(pid);
  const threads0 = threadCpuSeconds(pid);
  const self0 = process.cpuUsage();
  const machine0 = machineBusySeconds();
  const written0 = writtenBytes(pid);
  const t0 = nowMs();
  return () => {
    const wallSec = (nowMs() - t0) / 1000;
    const serverCpuSec = processCpuSeconds(pid) - process0;
    const perThread = [...threadCpuSeconds(pid)].map(([tid, sec]) => ({ tid, sec: sec - (threads0.get(tid) ?? 0) }));
    const main = perThread.find((t) => t.tid === pid)?.sec ?? NaN;
    const others = perThread.filter((t) => t.tid !== pid && t.sec > 0.5).sort((a, b) => b.sec - a.sec);
    const self = process.cpuUsage(self0);
    const benchCpuSec = (self.user + self.system) / 1e6;
    const machineCpuSec = machineBusySeconds() - machine0;
    return {
      wallSec: round(wallSec),
      serverCpuSec: round(serverCpuSec),
      serverCores: round(serverCpuSec / wallSec),
      serverMainThreadCpuSec: round(main),
      serverMainThreadCores: round(main / wallSec),
      serverOtherThreadsCpuSec: others.map((t) => round(t.sec)),
      serverDiskWriteMiB: round((writtenBytes(pid) - written0) / 2 ** 20),
      benchProcessCpuSec: round(benchCpuSec),
      machineBusyCores: round(machineCpuSec / wallSec),
      restOfMachineCpuSec: round(machineCpuSec - serverCpuSec - benchCpuSec),
    };
  };
}

async function metricsText(server: ServerProcess): Promise<string> {
  return (await fetch(`${server.base}/metrics`)).text();
}

/** Shard-log group commits so far, and those slower than 10, 100 and 500 ms (cronwheel_wal_fsync_seconds). */
function fsyncCounts(text: string): Record<string, number> {
  const count = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const total = count(/^cronwheel_wal_fsync_seconds_count (\S+)$/m);
  return {
    fsyncs: total,
    fsyncsOver10Ms: total - count(/^cronwheel_wal_fsync_seconds_bucket\{le="0\.01"\} (\S+)$/m),
    fsyncsOver100Ms: total - count(/^cronwheel_wal_fsync_seconds_bucket\{le="0\.1"\} (\S+)$/m),
    fsyncsOver500Ms: total - count(/^cronwheel_wal_fsync_seconds_bucket\{le="0\.5"\} (\S+)$/m),
  };
}

/**
 * How far behind the history files are: now − the newest finish time committed to any of them,
 * for the shard furthest behind (read-only connections; in WAL mode a reader does not hold up
 * the writer). Before a shard's first row its lag counts from when this started. Closed before the
 * server stops: the last connection to a file is the one that checkpoints and removes its -wal.
 */
function historyLagMeter(dir: string): { lagMs: () => number; close: () => void } {
  const since = Date.now();
  const dbs = fs
    .readdirSync(dir)
    .filter((n) => /^shard-\d+\.sqlite$/.test(n))
    .map((n) => new Database(path.join(dir, n), { readonly: true, fileMustExist: true }));
  const newest = (db: Database.Database): number => {
    const table = (db.prepare("SELECT max(name) AS t FROM sqlite_master WHERE type = 'table' AND name GLOB 'd[0-9]*'").get() as { t: string | null }).t;
    if (table === null) return since;
    const k = (db.prepare(`SELECT max(k) AS k FROM ${table}`).get() as { k: number | null }).k;
    return k === null ? since : Number(table.slice(1)) * DAY_MS + Math.floor(k / 2 ** 20);
  };
  return { lagMs: () => Date.now() - Math.min(...dbs.map(newest)), close: () => dbs.forEach((db) => db.close()) };
}

/**
 * The server while `fn` runs, in 10-second windows from now: its main thread's and its busiest
 * other thread's cores (with history on, the history thread), the machine's busy cores, the
 * server's disk writes; over the whole time, its shard-log fsyncs (count and slow ones), the
 * longest event-loop stall it reported (cronwheel_event_loop_stall_max_seconds, a 1-minute max
 * read every 10 s), and with `historyDir` the history's lag (historyLagMeter, read every second).
 */
async function watchServer<T>(server: ServerProcess, historyDir: string | null, fn: () => Promise<T>): Promise<[T, Figures]> {
  const pid = server.child.pid!;
  const before = fsyncCounts(await metricsText(server));
  const lag = historyDir === null ? null : historyLagMeter(historyDir);
  const samples: Array<{ at: number; threads: Map<number, number>; machine: number; written: number }> = [];
  const sample = () => samples.push({ at: nowMs(), threads: threadCpuSeconds(pid), machine: machineBusySeconds(), written: writtenBytes(pid) });
  let stallMaxSec = 0;
  const lagMaxByTen: number[] = [];
  let sampling = true;
  sample();
  const sampler = (async () => {
    for (let sec = 1; sampling; sec++) {
      await sleep(samples[0]!.at + sec * 1000 - nowMs());
      if (lag) lagMaxByTen[Math.floor((sec - 1) / 10)] = Math.max(lagMaxByTen[Math.floor((sec - 1) / 10)] ?? 0, lag.lagMs());
      if (sec % 10 !== 0) continue;
      sample();
      const m = /^cronwheel_event_loop_stall_max_seconds (\S+)$/m.exec(await metricsText(server));
      stallMaxSec = Math.max(stallMaxSec, Number(m?.[1] ?? 0));
    }
  })();
  const result = await fn();
  sampling = false;
  await sampler;
  lag?.close();
  const after = fsyncCounts(await metricsText(server));
  const last = samples[samples.length - 1]!;
  const busiestOther = [...last.threads.keys()].filter((tid) => tid !== pid).sort((a, b) => (last.threads.get(b)! - (samples[0]!.threads.get(b) ?? 0)) - (last.threads.get(a)! - (samples[0]!.threads.get(a) ?? 0)))[0];
  const series = (f: (a: (typeof samples)[number], b: (typeof samples)[number]) => number) => samples.slice(1).map((b, i) => round(f(samples[i]!, b) / ((b.at - samples[i]!.at) / 1000)));
  const threadSec = (s: (typeof samples)[number], tid: number | undefined) => (tid === undefined ? 0 : (s.threads.get(tid) ?? 0));
  return [
    result,
    {
      ...Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - before[k]!])),
      eventLoopStallMaxMs: round(stallMaxSec * 1000),
      byTenSeconds: {
        serverMainThreadCores: series((a, b) => threadSec(b, pid) - threadSec(a, pid)),
        serverBusiestOtherThreadCores: series((a, b) => threadSec(b, busiestOther) - threadSec(a, busiestOther)),
        machineBusyCores: series((a, b) => b.machine - a.machine),
        serverDiskWriteMiBPerSec: series((a, b) => (b.written - a.written) / 2 ** 20),
        ...(lag ? { historyLagMaxSec: lagMaxByTen.map((ms) => round(ms / 1000)) } : {}),
      },
    },
  ];
}

/** cronwheel_executions_finished_total, summed by state. */
async function finishedByState(server: ServerProcess): Promise<Record<string, number>> {
  const text = await metricsText(server);
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^cronwheel_executions_finished_total\{([^}]*)\} (\S+)$/gm)) {
    const state = /state="([^"]*)"/.exec(m[1]!)?.[1] ?? "?";
    out[state] = (out[state] ?? 0) + Number(m[2]);
  }
  return out;
}

/**
 * Stop the server with SIGTERM; its exit code, how long it took (a clean stop writes the history
 * rows still queued for its thread and commits them), and any error-level lines it logged.
 */
async function stopCleanly(server: ServerProcess): Promise<Figures> {
  const t0 = nowMs();
  const exitCode = await server.stop();
  const stopSec = round((nowMs() - t0) / 1000);
  const errors = server
    .output()
    .split("\n")
    .filter((line) => /"level":(50|60)/.test(line))
    .slice(0, 5);
  return { serverExitCode: exitCode, serverStopSec: stopSec, serverErrorLines: errors };
}

// ---------------------------------------------------------------------------------------------
// the history files

/** Bytes of every file in the history directory (-wal and -shm included), after the server stopped. */
function directoryBytes(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const name of fs.readdirSync(dir)) {
    const st = fs.statSync(path.join(dir, name));
    if (st.isFile()) (bytes += st.size), files++;
  }
  return { bytes, files };
}

/**
 * Rows in the history files (HistoryDb.count()), and the distinct executions among them: an id
 * is `xid` when stored, else `{job}:{scheduledAt}` (history-db.ts's layout). Also the mean stored
 * id length (what an ad-hoc row pays over a job's fire), and where the pages go (SQLite's dbstat):
 * the day tables, their indexes, and the rest (schema, meta, names, free pages).
 */
function historyRows(dir: string): { rows: number; distinctIds: number; byState: Record<string, number>; meanStoredIdChars: number; pageBytes: Record<string, number> } {
  let rows = 0;
  let distinctIds = 0;
  let idChars = 0;
  const byState: Record<string, number> = {};
  const pageBytes = { dayTables: 0, dayIndexes: 0, rest: 0 };
  const STATES = ["succeeded", "failed", "canceled", "skipped"];
  for (const name of fs.readdirSync(dir).filter((n) => /^shard-\d+\.sqlite$/.test(n))) {
    const file = path.join(dir, name);
    const db = new HistoryDb(file);
    rows += db.count();
    const days = db.dayTables;
    db.close();
    const raw = new Database(file, { readonly: true });
    for (const { name, bytes } of raw.prepare("SELECT name, sum(pgsize) AS bytes FROM dbstat GROUP BY name").all() as Array<{ name: string; bytes: number }>) {
      if (/^d\d+$/.test(name)) pageBytes.dayTables += bytes;
      else if (/^d\d+_/.test(name)) pageBytes.dayIndexes += bytes;
      else pageBytes.rest += bytes;
    }
    for (const day of days) {
      const t = `d${day}`;
      const r = raw.prepare(`SELECT count(DISTINCT coalesce(xid, job || ':' || ((k >> 20) - sched))) AS n, coalesce(sum(length(xid)), 0) AS chars FROM ${t}`).get() as { n: number; chars: number };
      distinctIds += r.n;
      idChars += r.chars;
      for (const s of raw.prepare(`SELECT state, count(*) AS n FROM ${t} GROUP BY state`).all() as Array<{ state: number; n: number }>) {
        byState[STATES[s.state]!] = (byState[STATES[s.state]!] ?? 0) + s.n;
      }
    }
    raw.close();
  }
  return { rows, distinctIds, byState, meanStoredIdChars: rows ? round(idChars / rows) : 0, pageBytes };
}

/** Bytes and rows of a stopped server's history directory (measured before anything reopens it). */
function historyFigures(dataDir: string, expectedRows: number): Figures {
  const dir = historyDirOf(dataDir);
  const { bytes, files } = directoryBytes(dir);
  const rows = historyRows(dir);
  return {
    historyFiles: files,
    historyBytes: bytes,
    historyRows: rows.rows,
    historyRowsByState: rows.byState,
    historyDistinctIds: rows.distinctIds,
    historyMeanStoredIdChars: rows.meanStoredIdChars,
    bytesPerRow: round(bytes / rows.rows),
    // The marginal cost of a row: its day table's and indexes' pages, without the files' fixed part.
    bytesPerRowInDayTables: round(rows.pageBytes.dayTables / rows.rows),
    bytesPerRowInDayIndexes: round(rows.pageBytes.dayIndexes / rows.rows),
    historyOtherPageBytes: rows.pageBytes.rest,
    rowsExpected: expectedRows,
    rowsMatch: rows.rows === expectedRows && rows.distinctIds === rows.rows,
  };
}

// ---------------------------------------------------------------------------------------------
// phases

async function ingest(history: "on" | "off"): Promise<Figures> {
  const dataDir = tempDir(`history-ingest-${history}`);
  const server = await startServer(dataDir, [...SERVER_ARGS, "--history", history]);
  const queue = "ingest";
  const client = new Client({ url: server.base });
  // Set once the worker is connected, when the producer starts.
  let t0 = Infinity;
  let steadyFrom = Infinity;
  let producingUntil = Infinity;

  let completed = 0;
  const completedPerSec: number[] = [];
  const lateness = new Float64Array(Math.ceil(RATE_PER_SEC * SECONDS * 1.2));
  const latenessAtSec = new Float32Array(lateness.length); // when each was scheduled, seconds after t0
  let latenessCount = 0;
  const worker = new Worker({
    url: server.base,
    queues: [queue],
    concurrency: CONCURRENCY,
    prefetch: PREFETCH,
    shutdownSignals: false,
    handler: async (ctx) => {
      const scheduledAt = ctx.scheduledAt.getTime();
      if (scheduledAt >= steadyFrom && scheduledAt < producingUntil && latenessCount < lateness.length) {
        latenessAtSec[latenessCount] = (scheduledAt - t0) / 1000;
        lateness[latenessCount++] = nowMs() - scheduledAt;
      }
      return undefined;
    },
  });
  worker.on("completed", () => {
    completed++;
    const sec = Math.floor((nowMs() - t0) / 1000);
    completedPerSec[sec] = (completedPerSec[sec] ?? 0) + 1;
  });

  try {
    await worker.start();
    t0 = nowMs();
    steadyFrom = t0 + STEADY_AFTER_SEC * 1000;
    producingUntil = t0 + SECONDS * 1000;
    const cpu = cpuMeter(server);

    // The producer: batch i is sent at t0 + i·50 ms, or as soon as fewer than 4 are in flight.
    let enqueued = 0;
    let failed = 0;
    let inFlight = 0;
    let lastAnswerAt = t0;
    let maxBehindMs = 0;
    const items = Array.from({ length: BATCH }, () => ({ queue }));
    const batches = Math.round((SECONDS * 1000) / BATCH_EVERY_MS);
    const [, serverWatch] = await watchServer(server, history === "on" ? historyDirOf(dataDir) : null, async () => {
      for (let i = 0; i < batches; i++) {
        const due = t0 + i * BATCH_EVERY_MS;
        if (due - nowMs() > 1) await sleep(due - nowMs());
        while (inFlight >= MAX_BATCHES_IN_FLIGHT) await sleep(1);
        maxBehindMs = Math.max(maxBehindMs, nowMs() - due);
        inFlight++;
        client.enqueueBatch(items).then(
          (results) => {
            const bad = results.filter((r) => r instanceof CronwheelApiError).length;
            failed += bad;
            enqueued += results.length - bad;
            inFlight--;
            lastAnswerAt = nowMs();
          },
          () => {
            failed += BATCH;
            inFlight--;
            lastAnswerAt = nowMs();
          },
        );
      }
      while (inFlight > 0) await sleep(5);
    });
    const producedAt = nowMs();
    const backlogAtEnd = enqueued - completed;
    const cpuFigures = cpu();
    const memory = memoryMiB(server.child.pid!);

    const drainDeadline = nowMs() + 300_000;
    while (completed < enqueued && nowMs() < drainDeadline) await sleep(10);
    const drainSec = (nowMs() - producedAt) / 1000;
    const finished = await finishedByState(server);

    await worker.close({ graceful: true }).catch(() => undefined);
    const stopped = await stopCleanly(server);

    const steadySec = SECONDS - STEADY_AFTER_SEC;
    const steadyCompleted = completedPerSec.slice(STEADY_AFTER_SEC, SECONDS).reduce((a, b) => a + (b ?? 0), 0);
    const byTen: number[] = [];
    for (let s = 0; s < SECONDS; s += 10) byTen.push(Math.round(completedPerSec.slice(s, s + 10).reduce((a, b) => a + (b ?? 0), 0) / 10));
    const sorted = sortedCopy(lateness, latenessCount);
    const p99ByTen: number[] = [];
    for (let s = STEADY_AFTER_SEC; s < SECONDS; s += 10) {
      const inBucket = lateness.slice(0, latenessCount).filter((_, i) => latenessAtSec[i]! >= s && latenessAtSec[i]! < s + 10);
      p99ByTen.push(round(percentile(inBucket.sort(), 99)));
    }
    return {
      history,
      seconds: SECONDS,
      enqueued,
      enqueueFailed: failed,
      enqueuePerSec: Math.round(enqueued / ((lastAnswerAt - t0) / 1000)),
      producerMaxBehindMs: round(maxBehindMs),
      completed,
      completedPerSecSteady: Math.round(steadyCompleted / steadySec),
      completedPerSecByTenSeconds: byTen,
      backlogAtProducerEnd: backlogAtEnd,
      drainSec: round(drainSec),
      latenessSamples: latenessCount,
      ...distribution("latenessMs", sorted),
      latenessMsP99ByTenSeconds: p99ByTen,
      ...serverWatch,
      ...cpuFigures,
      serverCpuUsPerExecution: round(((cpuFigures.serverCpuSec as number) * 1e6) / enqueued),
      ...memory,
      serverFinished: finished,
      ...stopped,
      ...(history === "on" ? historyFigures(dataDir, completed) : {}),
    };
  } finally {
    await worker.close({ graceful: false }).catch(() => undefined);
    if (server.child.exitCode === null) await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(historyDirOf(dataDir), { recursive: true, force: true });
  }
}

/**
 * History on, 200 jobs every 100 ms for `seconds`, then paused: `skipped` (overlap skip at limit
 * 1, no worker: every fire after a job's first is skipped) or `noop` (no limit, a worker with a
 * no-op handler runs every fire). Bytes per row of the history the clean stop leaves.
 */
async function jobsPhase(kind: "skipped" | "noop", seconds: number): Promise<Figures> {
  const dataDir = tempDir(`history-${kind}`);
  const server = await startServer(dataDir, [...SERVER_ARGS, "--history", "on"]);
  const client = new Client({ url: server.base });
  const queue = kind;
  const worker =
    kind === "noop" ? new Worker({ url: server.base, queues: [queue], concurrency: CONCURRENCY, shutdownSignals: false, handler: async () => undefined }) : null;
  const ids = Array.from({ length: JOBS }, (_, i) => `${kind}-${i}`);
  try {
    await worker?.start();
    const spec = kind === "skipped" ? { queue, every: "100ms", concurrency: { limit: 1, overlap: "skip" as const } } : { queue, every: "100ms" };
    await Promise.all(ids.map((id) => client.putJob(id, spec)));
    const cpu = cpuMeter(server);
    await sleep(seconds * 1000);
    const cpuFigures = cpu();
    await Promise.all(ids.map((id) => client.pauseJob(id)));
    await sleep(1_000); // fires committed before the pause are applied, and run
    await worker?.close({ graceful: true });
    const finished = await finishedByState(server);
    const stopped = await stopCleanly(server);
    const expected = Object.values(finished).reduce((a, b) => a + b, 0);
    return {
      jobs: JOBS,
      every: "100ms",
      seconds,
      ...cpuFigures,
      serverFinished: finished,
      ...stopped,
      ...historyFigures(dataDir, expected),
    };
  } finally {
    await worker?.close({ graceful: false }).catch(() => undefined);
    if (server.child.exitCode === null) await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(historyDirOf(dataDir), { recursive: true, force: true });
  }
}

const PHASES: Record<string, () => Promise<Figures>> = {
  "ingest-on": () => ingest("on"),
  "ingest-off": () => ingest("off"),
  skipped: () => jobsPhase("skipped", SKIPPED_SECONDS),
  "noop-jobs": () => jobsPhase("noop", NOOP_JOBS_SECONDS),
};

// ---------------------------------------------------------------------------------------------
// the run: each phase in a child process of this same script

function runPhase(name: string): Promise<Figures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), name], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`history-ingest phase ${name} exited with ${code}`));
      resolve(JSON.parse(out.trim().split("\n").pop()!) as Figures);
    });
  });
}

async function main(): Promise<void> {
  const phase = process.argv[2];
  if (phase !== undefined) {
    const run = PHASES[phase];
    if (!run) throw new Error(`unknown phase '${phase}'; known: ${Object.keys(PHASES).join(", ")}`);
    process.stdout.write(`${JSON.stringify({ serverArgs: SERVER_ARGS.join(" "), ...(await run()) })}\n`);
    return;
  }
  const results: Record<string, Figures> = {};
  for (const name of Object.keys(PHASES)) {
    const diskSettleSec = await waitForQuietDisk();
    process.stderr.write(`history-ingest: ${name} (disk quiet after ${diskSettleSec} s)\n`);
    results[name] = { ...(await runPhase(name)), diskSettleSec };
  }
  const on = results["ingest-on"]!;
  const off = results["ingest-off"]!;
  const ratio = (key: string) => round(Number(on[key]) / Number(off[key]));
  const document = {
    benchmark: "history-ingest",
    at: new Date().toISOString(),
    ratePerSec: RATE_PER_SEC,
    seconds: SECONDS,
    ...results,
    onOverOff: {
      completedPerSecSteady: ratio("completedPerSecSteady"),
      latenessMsP99: ratio("latenessMsP99"),
      serverCpuSec: ratio("serverCpuSec"),
      serverMainThreadCpuSec: ratio("serverMainThreadCpuSec"),
    },
  };
  process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
}

main().then(
  () => process.exit(0), // the SDK's leftover keep-alive sockets must not hold the process open
  (error: unknown) => {
    process.stderr.write(`history-ingest failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
