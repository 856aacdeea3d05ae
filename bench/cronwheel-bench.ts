/**
 * The Cronwheel side of the Cronwheel-vs-BullMQ benchmarks: the same four workloads as
 * bullmq-bench.ts, against a real `cronwheel server` process (standalone, 8 shards, fsync batch)
 * with the SDK's Worker (concurrency 100, no-op handler) and Client in this process — the same
 * shape as the BullMQ side (redis-server a separate process; producer and worker in this one).
 *
 * - cronwheelThroughput: N executions enqueued through the batch endpoint, processed end to end;
 *   run with the SDK's default prefetch 0 and with prefetch = concurrency (both are reported).
 * - cronwheelLatency: one enqueue each at a fixed rate; enqueue-to-start latency.
 * - cronwheelHerd: N executions all due at the same millisecond T; lateness = handler start − T.
 * - cronwheelRepeat: N interval jobs every second for S seconds; fires/s and lateness.
 * Each scenario's worker first runs WARMUP_EXECUTIONS no-op executions, unmeasured, as the BullMQ
 * side does (stats.ts); the latency workload also runs WARMUP_LATENCY_SEC at its rate first.
 */
import fs from "node:fs";
import { Client } from "../src/client/client.js";
import { Worker, type ExecutionContext } from "../src/client/worker.js";
import { startServer, tempDir, type ServerProcess } from "../test/support/server-process.js";
import { distribution, isWarmup, nowMs, processCpuSeconds, repeatWorkload, round, sleep, sortedCopy, WARMUP_EXECUTIONS, WARMUP_LATENCY_SEC, WARMUP_PAYLOAD } from "./stats.js";

type Figures = Record<string, unknown> & { system: "cronwheel" };

const SHARDS = 8;

async function withCronwheel<T>(
  queue: string,
  concurrency: number,
  prefetch: number,
  handler: (ctx: ExecutionContext) => void,
  fn: (h: { server: ServerProcess; client: Client; worker: Worker; completed: () => number }) => Promise<T>,
): Promise<T> {
  // BENCH_SERVER_ARGS: extra server flags, for sensitivity runs (e.g. "--snapshot-every 1000000").
  const extra = (process.env.BENCH_SERVER_ARGS ?? "").split(/\s+/).filter(Boolean);
  const dataDir = tempDir("vs-bullmq");
  const server = await startServer(dataDir, ["--shards", String(SHARDS), "--fsync", "batch", "--log-level", "warn", ...extra]);
  let completed = 0;
  const worker = new Worker({
    url: server.base,
    queues: [queue],
    concurrency,
    prefetch,
    shutdownSignals: false,
    handler: async (ctx) => {
      if (!isWarmup(ctx.payload)) handler(ctx);
      return null;
    },
  });
  worker.on("completed", () => completed++);
  try {
    await worker.start();
    const client = new Client({ url: server.base });
    await warmUp(client, queue, () => completed); // nothing else is enqueued yet: every completion is the warm-up's
    completed = 0;
    return await fn({ server, client, worker, completed: () => completed });
  } finally {
    await worker.close({ graceful: false }).catch(() => undefined);
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true }); // the next side first waits out the trim this causes (run.ts)
  }
}

/** WARMUP_EXECUTIONS no-op executions through the scenario's own queue and worker, unmeasured (see stats.ts). */
async function warmUp(client: Client, queue: string, done: () => number): Promise<void> {
  for (let i = 0; i < WARMUP_EXECUTIONS; i += 1000) {
    await client.enqueueBatch(Array.from({ length: Math.min(1000, WARMUP_EXECUTIONS - i) }, () => ({ queue, payload: WARMUP_PAYLOAD })));
  }
  await until("the warm-up", () => done() >= WARMUP_EXECUTIONS, 120_000);
}

/**
 * CPU seconds used from now on by the server and by this process (the SDK worker and client), and
 * per execution: which side's work bounds a workload, and whether a change made the work cheaper,
 * read with less noise than a wall-clock figure.
 */
function cpuMeter(server: ServerProcess): (executions: number) => Record<string, number> {
  const pid = server.child.pid!;
  const server0 = processCpuSeconds(pid);
  const self0 = process.cpuUsage();
  return (executions) => {
    const serverCpuSec = processCpuSeconds(pid) - server0;
    const self = process.cpuUsage(self0);
    const benchCpuSec = (self.user + self.system) / 1e6;
    return {
      serverCpuSec: round(serverCpuSec),
      benchProcessCpuSec: round(benchCpuSec),
      serverCpuUsPerExecution: round((serverCpuSec * 1e6) / executions),
      benchProcessCpuUsPerExecution: round((benchCpuSec * 1e6) / executions),
    };
  };
}

interface FsyncCounts {
  over10Ms: number;
  over100Ms: number;
}

/** Group-commit fsyncs so far slower than 10 and 100 ms, from the server's cronwheel_wal_fsync_seconds. */
async function slowFsyncs(server: ServerProcess): Promise<FsyncCounts> {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const count = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const total = count(/^cronwheel_wal_fsync_seconds_count (\S+)$/m);
  return {
    over10Ms: total - count(/^cronwheel_wal_fsync_seconds_bucket\{le="0\.01"\} (\S+)$/m),
    over100Ms: total - count(/^cronwheel_wal_fsync_seconds_bucket\{le="0\.1"\} (\S+)$/m),
  };
}

async function until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`cronwheel bench: timed out waiting for ${what}`);
    await sleep(5);
  }
}

export async function cronwheelThroughput({ executions = 100_000, batch = 1000, concurrency = 100, prefetch = 0, timeoutMs = 300_000 } = {}): Promise<Figures> {
  return withCronwheel("throughput", concurrency, prefetch, () => {}, async ({ server, client, completed }) => {
    const cpu = cpuMeter(server);
    const started = nowMs();
    let enqueued = 0;
    // Two batches in flight keep the node busy without queueing requests unboundedly.
    const producer = async () => {
      while (enqueued < executions) {
        const n = Math.min(batch, executions - enqueued);
        enqueued += n;
        const results = await client.enqueueBatch(Array.from({ length: n }, () => ({ queue: "throughput", payload: null })));
        const failed = results.filter((r) => r instanceof Error).length;
        if (failed > 0) throw new Error(`${failed} enqueues failed`);
      }
    };
    await Promise.all([producer(), producer()]);
    const enqueueSec = (nowMs() - started) / 1000;
    await until("all completions", () => completed() >= executions, timeoutMs);
    const totalSec = (nowMs() - started) / 1000;
    return {
      system: "cronwheel",
      executions,
      batch,
      concurrency,
      prefetch,
      enqueuePerSec: Math.round(executions / enqueueSec),
      executionsPerSec: Math.round(executions / totalSec),
      totalSec: round(totalSec),
      ...cpu(executions),
    };
  });
}

export async function cronwheelLatency({ ratePerSec = 1000, seconds = 15, concurrency = 100 } = {}): Promise<Figures> {
  const latencies: number[] = [];
  return withCronwheel(
    "latency",
    concurrency,
    0,
    (ctx) => {
      const p = ctx.payload as { t: number; measured: boolean };
      if (p.measured) latencies.push(nowMs() - p.t);
    },
    async ({ server, client, completed }) => {
      const warmup = ratePerSec * WARMUP_LATENCY_SEC;
      const total = warmup + ratePerSec * seconds;
      const start = nowMs();
      let fsyncsBefore: FsyncCounts | null = null;
      let issued = 0;
      // Counted, not kept (as the BullMQ side does): 18,000 kept answers were ~18 MB this process
      // kept alive, whose old-generation GCs landed in the measured latencies.
      let answered = 0;
      let failure: unknown = null;
      while (issued < total) {
        const due = start + (issued * 1000) / ratePerSec;
        const wait = due - nowMs();
        if (wait > 1) await sleep(wait);
        if (issued === warmup) fsyncsBefore = await slowFsyncs(server);
        client.enqueue({ queue: "latency", payload: { t: nowMs(), measured: issued >= warmup } }).then(
          () => answered++,
          (error: unknown) => ((failure ??= error), answered++),
        );
        issued++;
      }
      await until("every enqueue's answer", () => answered >= total, 60_000);
      if (failure !== null) throw failure;
      await until("all completions", () => completed() >= total, 60_000);
      const fsyncsAfter = await slowFsyncs(server);
      const sorted = sortedCopy(latencies);
      return {
        system: "cronwheel",
        ratePerSec,
        seconds,
        warmupSec: WARMUP_LATENCY_SEC,
        executions: total - warmup,
        ...distribution("latencyMs", sorted),
        // Every enqueue waits for an fsync: how many of the server's took over 10 / 100 ms while this measured.
        fsyncsOver10Ms: fsyncsAfter.over10Ms - fsyncsBefore!.over10Ms,
        fsyncsOver100Ms: fsyncsAfter.over100Ms - fsyncsBefore!.over100Ms,
      };
    },
  );
}

export async function cronwheelHerd({ executions = 50_000, batch = 1000, concurrency = 100, prefetch = 0, slackMs = 2_000 } = {}): Promise<Figures> {
  const starts: number[] = [];
  return withCronwheel(
    "herd",
    concurrency,
    prefetch,
    () => starts.push(nowMs()),
    async ({ server, client, completed }) => {
      // Estimate the enqueue time with a small probe batch, then place T after all will be in.
      const probeStart = nowMs();
      await client.enqueueBatch(Array.from({ length: batch }, () => ({ queue: "herd-probe", payload: null })));
      const perItemMs = (nowMs() - probeStart) / batch;
      const dueAt = Math.ceil(nowMs() + perItemMs * executions * 1.5 + slackMs);
      const enqueueStart = nowMs();
      for (let i = 0; i < executions; i += batch) {
        const n = Math.min(batch, executions - i);
        await client.enqueueBatch(Array.from({ length: n }, () => ({ queue: "herd", payload: null, runAt: dueAt })));
      }
      const enqueueEnd = nowMs();
      // CPU from shortly before the staging tick (EXECUTION_STAGE_LEAD_MS ahead) to the last completion.
      await sleep(dueAt - 400 - nowMs());
      const cpu = cpuMeter(server);
      await until("the herd", () => completed() >= executions, 120_000);
      const lateness = sortedCopy(starts.map((s) => s - dueAt));
      return {
        system: "cronwheel",
        executions,
        prefetch,
        enqueuePerSec: Math.round(executions / ((enqueueEnd - enqueueStart) / 1000)),
        dueMsAfterEnqueueEnded: round(dueAt - enqueueEnd),
        startedBeforeDue: lateness.filter((l) => l < 0).length,
        firstStartedAfterDueMs: round(lateness[0]!),
        ...distribution("latenessMs", lateness),
        lastStartedAfterDueSec: round(lateness[lateness.length - 1]! / 1000),
        ...cpu(executions),
      };
    },
  );
}

export async function cronwheelRepeat({ jobs = 10_000, seconds = 15, concurrency = 100 } = {}): Promise<Figures> {
  const lateness: number[] = [];
  let measuring = false;
  return withCronwheel(
    "repeat",
    concurrency,
    0,
    (ctx) => {
      if (measuring) lateness.push(nowMs() - ctx.scheduledAt.getTime());
    },
    async ({ client }) => {
      const { elapsedSec: elapsed } = await repeatWorkload((id, spec) => client.putJob(id, spec), { jobs, seconds, leadMs: 3_000, setMeasuring: (on) => (measuring = on) });
      const sorted = sortedCopy(lateness);
      return { system: "cronwheel", jobs, seconds, firesPerSec: Math.round(lateness.length / elapsed), ...distribution("latenessMs", sorted) };
    },
  );
}
