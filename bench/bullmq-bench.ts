/**
 * The BullMQ side of the Cronwheel-vs-BullMQ benchmarks. Each scenario starts its own private
 * redis-server (bench/redis-server.ts: Debian's, loopback, no persistence) and returns a JSON-able
 * figures object `{ system: "bullmq", … }`:
 *
 * - bullmqThroughput: N no-op jobs enqueued with `queue.addBulk` in batches while one Worker
 *   (concurrency 100) runs them; end-to-end executions/s from the first enqueue to the last completion.
 * - bullmqLatency: one `queue.add` each at a fixed rate, paced by a timer; enqueue-to-start latency
 *   (the job data carries the epoch time of the `add` call; start = the processor is invoked).
 * - bullmqHerd: N delayed jobs all due at the same millisecond T; lateness = processor start − T.
 * - bullmqRepeat: N job schedulers (`queue.upsertJobScheduler(id, { every: 1000, offset })`) for S
 *   seconds; fires/s seen by the worker and lateness = processor start − the fire's scheduled time.
 *
 * Choices that shape the figures (same in every scenario):
 * - Each worker first runs WARMUP_EXECUTIONS no-op jobs, unmeasured, as the Cronwheel side does
 *   (stats.ts); the latency workload also runs WARMUP_LATENCY_SEC at its rate before measuring.
 * - Jobs use `removeOnComplete: true` (and `removeOnFail: 1000`) through the queue's
 *   defaultJobOptions / the scheduler template. That is what a BullMQ user tuning for throughput
 *   picks: the completed job's hash is deleted inside the same moveToFinished script instead of
 *   being kept in the `completed` sorted set (BullMQ's default keeps every job forever) or trimmed
 *   by count. It is also the fastest setting and keeps Redis memory flat.
 * - Producer and Worker live in this one Node process (an in-process Cronwheel worker is the
 *   fair counterpart); redis-server is a separate single-threaded process. On this 2-core machine
 *   that is one core for Node (producer + worker + ioredis) and one for redis-server; both are
 *   reported as CPU seconds so the split can be read off the figures.
 * - Everything else is BullMQ's default (ioredis connections from {host, port}, lock duration,
 *   stalled checks, event stream max length 10,000, no auto-pipelining).
 *
 * Run through bench/run.ts (`npm run bench -- vs-throughput vs-latency vs-herd vs-repeat`), which
 * runs each workload on both systems and prints the ratio.
 */
import fs from "node:fs";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Queue, Worker, type Job, type QueueOptions, type WorkerOptions } from "bullmq";
import { startRedis, type RedisHandle } from "./redis-server.js";
import { distribution, isWarmup, nowMs, round, sleep, sortedCopy, WARMUP_EXECUTIONS, WARMUP_LATENCY_SEC, WARMUP_PAYLOAD } from "./stats.js";

type Figures = Record<string, unknown> & { system: "bullmq" };

const JOB_OPTIONS = { removeOnComplete: true, removeOnFail: 1000 } as const;
const CLOSE_TIMEOUT_MS = 10_000;

/** Busy CPU seconds of the whole machine so far (all cores, from /proc/stat); NaN where unreadable. */
function machineBusyCpuSec(): number {
  try {
    const fields = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: busy = all but idle and iowait
    const busy = fields.slice(0, 8).reduce((a, b, i) => (i === 3 || i === 4 ? a : a + b), 0);
    return busy / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

function withTimeoutOf<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)))]).finally(() => clearTimeout(timer));
}

/** What one scenario owns: its redis, queues and workers, closed (bounded) whatever happens. */
class Harness {
  readonly errors: string[] = [];
  private readonly closables: Array<{ close(force?: boolean): Promise<void> }> = [];
  private readonly intervals: NodeJS.Timeout[] = [];
  private aborted: Error | null = null;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });
  private cpuStart = { node: process.cpuUsage(), redis: 0, machine: 0, wall: 0 };

  constructor(readonly redis: RedisHandle) {}

  get connection() {
    return { host: "127.0.0.1", port: this.redis.port };
  }

  queue(name: string, opts: Partial<QueueOptions> = {}): Queue {
    const queue = new Queue(name, { connection: this.connection, defaultJobOptions: JOB_OPTIONS, ...opts });
    queue.on("error", (error) => this.recordError(`queue ${name}`, error));
    this.closables.push(queue);
    return queue;
  }

  /**
   * A worker for `name`; it first runs WARMUP_EXECUTIONS no-op jobs (see stats.ts), which
   * `processor` and the worker's `completed` listeners added after this resolves never see.
   */
  async worker(name: string, processor: (job: Job) => Promise<void>, opts: Partial<WorkerOptions> = {}): Promise<Worker> {
    const run = async (job: Job) => {
      if (!isWarmup(job.data)) await processor(job);
    };
    // maxRetriesPerRequest: null is what BullMQ requires of a Worker's connection.
    const worker = new Worker(name, run, { connection: { ...this.connection, maxRetriesPerRequest: null }, ...opts });
    worker.on("error", (error) => this.recordError(`worker ${name}`, error));
    worker.on("failed", (_job, error) => this.recordError(`job failed in ${name}`, error));
    this.closables.unshift(worker); // workers close before queues
    await worker.waitUntilReady();
    if (WARMUP_EXECUTIONS > 0) {
      let warmedUp = 0;
      const count = (job: Job) => void (isWarmup(job.data) && warmedUp++);
      worker.on("completed", count);
      const queue = this.queue(name);
      for (let i = 0; i < WARMUP_EXECUTIONS; i += 1000) {
        await queue.addBulk(Array.from({ length: Math.min(1000, WARMUP_EXECUTIONS - i) }, () => ({ name: "warmup", data: WARMUP_PAYLOAD })));
      }
      await this.until(() => warmedUp >= WARMUP_EXECUTIONS, 120_000, () => `the warm-up (${warmedUp} of ${WARMUP_EXECUTIONS})`);
      worker.off("completed", count);
    }
    return worker;
  }

  every(ms: number, fn: () => void): NodeJS.Timeout {
    const timer = setInterval(fn, ms);
    this.intervals.push(timer);
    return timer;
  }

  private recordError(where: string, error: unknown): void {
    if (this.errors.length < 20) this.errors.push(`${where}: ${(error as Error)?.message ?? String(error)}`);
  }

  /** Throws if the scenario timed out (so long loops stop promptly). */
  check(): void {
    if (this.aborted) throw this.aborted;
  }

  abort(error: Error): void {
    this.aborted = error;
  }

  /** Polls `done` every 5 ms until it holds; throws after `timeoutMs` with `describe()` in the message. */
  async until(done: () => boolean, timeoutMs: number, describe: () => string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      this.check();
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${describe()}`);
      await sleep(5);
    }
  }

  startMeasuring(): void {
    this.loopDelay.reset();
    this.loopDelay.enable();
    this.cpuStart = { node: process.cpuUsage(), redis: this.redis.cpuSeconds(), machine: machineBusyCpuSec(), wall: performance.now() };
  }

  /** CPU and event-loop figures since startMeasuring(). */
  measured(): Record<string, number> {
    this.loopDelay.disable();
    const node = process.cpuUsage(this.cpuStart.node);
    const nodeCpuSec = (node.user + node.system) / 1e6;
    const redisCpuSec = this.redis.cpuSeconds() - this.cpuStart.redis;
    return {
      measuredWallSec: round((performance.now() - this.cpuStart.wall) / 1000),
      nodeCpuSec: round(nodeCpuSec),
      redisCpuSec: round(redisCpuSec),
      // Anything else on the machine (other test runs, builds) competing for the 2 cores: should be ≈ 0.
      otherProcessesCpuSec: round(Math.max(0, machineBusyCpuSec() - this.cpuStart.machine - nodeCpuSec - redisCpuSec)),
      eventLoopDelayMsP99: round(this.loopDelay.percentile(99) / 1e6),
      eventLoopDelayMsMax: round(this.loopDelay.max / 1e6),
    };
  }

  async redisMemory(): Promise<Record<string, number>> {
    try {
      const memory = await this.redis.info("memory");
      return {
        redisUsedMemoryMiB: round(Number(memory.used_memory) / 2 ** 20),
        redisPeakMemoryMiB: round(Number(memory.used_memory_peak) / 2 ** 20),
      };
    } catch {
      return {};
    }
  }

  async close(force: boolean): Promise<void> {
    for (const timer of this.intervals) clearInterval(timer);
    this.loopDelay.disable();
    for (const closable of this.closables) {
      const result = await withTimeoutOf(
        closable.close(force).catch((error: unknown) => this.recordError("close", error)),
        CLOSE_TIMEOUT_MS,
      );
      if (result === "timeout") process.stderr.write(`bullmq-bench: a queue/worker did not close within ${CLOSE_TIMEOUT_MS} ms\n`);
    }
  }
}

/** Runs `body` against a fresh redis-server, failing after `timeoutMs`; always closes BullMQ objects and stops redis. */
/**
 * Extra redis-server arguments for sensitivity runs, e.g. BENCH_REDIS_ARGS="--hz 100" (Redis checks
 * blocking-command timeouts on its `hz` tick, 10/s by default, which BullMQ's delayed jobs wait on).
 * None by default: Debian's redis-server as installed.
 */
function redisArgs(): string[] {
  return (process.env.BENCH_REDIS_ARGS ?? "").split(/\s+/).filter((a) => a.length > 0);
}

async function scenario(name: string, timeoutMs: number, body: (h: Harness) => Promise<Record<string, unknown>>): Promise<Figures> {
  const extraArgs = redisArgs();
  const redis = await startRedis({ extraArgs });
  const harness = new Harness(redis);
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        const error = new Error(`bullmq ${name}: timed out after ${(timeoutMs / 1000).toFixed(1)} s`);
        harness.abort(error);
        reject(error);
      }, timeoutMs);
    });
    const figures = await Promise.race([body(harness), timeout]);
    return { system: "bullmq", ...figures, ...(extraArgs.length > 0 ? { redisArgs: extraArgs.join(" ") } : {}), ...(harness.errors.length > 0 ? { errors: harness.errors } : {}) };
  } catch (error) {
    if (harness.errors.length > 0) (error as Error).message += ` (BullMQ errors: ${harness.errors.join("; ")})`;
    throw error;
  } finally {
    clearTimeout(timer);
    await harness.close(timedOut);
    await redis.stop();
  }
}

export interface ThroughputOptions {
  executions?: number;
  batch?: number;
  concurrency?: number;
  timeoutMs?: number;
}

/** N no-op jobs via addBulk while one Worker (in this process) runs them; end-to-end executions/s. */
export async function bullmqThroughput({
  executions = 100_000,
  batch = 1000,
  concurrency = 100,
  timeoutMs = 60_000 + executions * 2,
}: ThroughputOptions = {}): Promise<Figures> {
  return scenario("throughput", timeoutMs, async (h) => {
    const queue = h.queue("throughput");
    let completed = 0;
    let lastCompletion = 0;
    const worker = await h.worker("throughput", async () => {}, { concurrency });
    worker.on("completed", () => {
      completed++;
      lastCompletion = nowMs();
    });

    h.startMeasuring();
    const started = nowMs();
    for (let i = 0; i < executions; i += batch) {
      h.check();
      const jobs = [];
      for (let j = i; j < Math.min(executions, i + batch); j++) jobs.push({ name: "noop", data: { i: j } });
      await queue.addBulk(jobs);
    }
    const enqueued = nowMs();
    const completedAtEnqueueEnd = completed;
    await h.until(() => completed >= executions, timeoutMs, () => `${executions} completions (have ${completed})`);
    const cpu = h.measured();
    const totalSec = (lastCompletion - started) / 1000;
    return {
      executions,
      batch,
      concurrency,
      removeOnComplete: true,
      executionsPerSec: Math.round(executions / totalSec),
      totalSec: round(totalSec),
      enqueuePerSec: Math.round(executions / ((enqueued - started) / 1000)),
      enqueueSec: round((enqueued - started) / 1000),
      completedWhenEnqueueEnded: completedAtEnqueueEnd,
      drainAfterEnqueueSec: round((lastCompletion - enqueued) / 1000),
      ...cpu,
      ...(await h.redisMemory()),
    };
  });
}

export interface LatencyOptions {
  ratePerSec?: number;
  seconds?: number;
  concurrency?: number;
  timeoutMs?: number;
}

/** One `add` each at a fixed rate (timer-paced); enqueue-to-start latency. */
export async function bullmqLatency({
  ratePerSec = 1000,
  seconds = 15,
  concurrency = 100,
  timeoutMs = seconds * 1000 + 60_000,
}: LatencyOptions = {}): Promise<Figures> {
  return scenario("latency", timeoutMs, async (h) => {
    const warmup = Math.round(ratePerSec * WARMUP_LATENCY_SEC);
    const measured = Math.round(ratePerSec * seconds);
    const total = warmup + measured;
    const queue = h.queue("latency");
    const latencies = new Float64Array(measured);
    let started = 0;
    let startedMeasured = 0;
    await h.worker(
      "latency",
      async (job) => {
        const data = job.data as { t: number; measured: boolean };
        const latency = nowMs() - data.t;
        if (data.measured && startedMeasured < measured) latencies[startedMeasured++] = latency;
        started++;
      },
      { concurrency },
    );
    await queue.waitUntilReady();

    // Pacing: a 1 ms timer issues the adds that are due by now (the ideal schedule is i / rate);
    // each add is its own call, not awaited before the next one.
    let issued = 0;
    let addsDone = 0;
    let addErrors = 0;
    let producerLagMax = 0; // how far behind its ideal time an add was issued
    let inFlightMax = 0;
    h.startMeasuring();
    const t0 = nowMs();
    await new Promise<void>((resolve) => {
      const timer = h.every(1, () => {
        const now = nowMs();
        const due = Math.min(total, Math.floor(((now - t0) * ratePerSec) / 1000) + 1);
        while (issued < due) {
          producerLagMax = Math.max(producerLagMax, now - (t0 + (issued * 1000) / ratePerSec));
          issued++;
          queue.add("tick", { t: nowMs(), measured: issued > warmup }).then(
            () => addsDone++,
            () => {
              addsDone++;
              addErrors++;
            },
          );
        }
        inFlightMax = Math.max(inFlightMax, issued - addsDone);
        if (issued >= total) {
          clearInterval(timer);
          resolve();
        }
      });
    });
    const issuedSec = (nowMs() - t0) / 1000;
    await h.until(() => started >= total - addErrors, 30_000, () => `${total} starts (have ${started})`);
    const cpu = h.measured();
    const sorted = sortedCopy(latencies, startedMeasured);
    return {
      ratePerSec,
      seconds,
      warmupSec: WARMUP_LATENCY_SEC,
      concurrency,
      jobs: measured,
      achievedRatePerSec: Math.round(total / issuedSec),
      ...distribution("latencyMs", sorted),
      latencyMsMean: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
      producerLagMsMax: round(producerLagMax),
      addsInFlightMax: inFlightMax,
      addErrors,
      ...cpu,
    };
  });
}

export interface HerdOptions {
  executions?: number;
  batch?: number;
  concurrency?: number;
  /** Added to the estimated enqueue time to place T. */
  slackMs?: number;
  timeoutMs?: number;
}

/** N delayed jobs all due at the same millisecond T; lateness = processor start − T. */
export async function bullmqHerd({
  executions = 50_000,
  batch = 1000,
  concurrency = 100,
  slackMs = 2000,
  timeoutMs = 120_000 + executions * 3,
}: HerdOptions = {}): Promise<Figures> {
  return scenario("herd", timeoutMs, async (h) => {
    const enqueueBatches = async (queue: Queue, count: number, optsFor: () => { delay: number; timestamp: number }) => {
      for (let i = 0; i < count; i += batch) {
        h.check();
        const jobs = [];
        for (let j = i; j < Math.min(count, i + batch); j++) jobs.push({ name: "herd", data: { i: j }, opts: optsFor() });
        await queue.addBulk(jobs);
      }
    };

    // Calibrate: how fast do delayed addBulk batches go here? T = now + 1.5 × the estimate + slack.
    const calibration = h.queue("herd-calibration");
    const calibrationJobs = Math.min(5_000, executions);
    const calibrationStart = nowMs();
    await enqueueBatches(calibration, calibrationJobs, () => ({ delay: 3_600_000, timestamp: Date.now() }));
    const calibrationPerMs = calibrationJobs / (nowMs() - calibrationStart);
    await calibration.obliterate({ force: true });
    const estimateMs = executions / calibrationPerMs;

    const queue = h.queue("herd");
    const lateness = new Float64Array(executions);
    let startedCount = 0;
    let completed = 0;
    let lastCompletion = 0;
    let dueAt = Infinity;
    const worker = await h.worker(
      "herd",
      async () => {
        const late = nowMs() - dueAt;
        if (startedCount < executions) lateness[startedCount] = late;
        startedCount++;
      },
      { concurrency },
    );
    worker.on("completed", () => {
      completed++;
      lastCompletion = nowMs();
    });

    h.startMeasuring();
    const enqueueStart = Date.now();
    dueAt = Math.ceil(enqueueStart + 1.5 * estimateMs + slackMs);
    await enqueueBatches(queue, executions, () => {
      const timestamp = Date.now();
      return { timestamp, delay: Math.max(0, dueAt - timestamp) };
    });
    const enqueueEnd = Date.now();
    await h.until(
      () => startedCount >= executions && completed >= executions,
      Math.max(0, dueAt - Date.now()) + timeoutMs,
      () => `${executions} starts/completions (have ${startedCount}/${completed})`,
    );
    const cpu = h.measured();
    const sorted = sortedCopy(lateness);
    return {
      executions,
      batch,
      concurrency,
      enqueueSec: round((enqueueEnd - enqueueStart) / 1000),
      enqueuePerSec: Math.round(executions / ((enqueueEnd - enqueueStart) / 1000)),
      dueMsAfterEnqueueEnded: dueAt - enqueueEnd, // < 0 would mean T passed before all were enqueued
      startedBeforeDue: sorted.filter((l) => l < 0).length,
      latenessMsMin: round(sorted[0]!),
      ...distribution("latenessMs", sorted),
      lastStartedAfterDueSec: round(sorted[sorted.length - 1]! / 1000),
      lastCompletedAfterDueSec: round((lastCompletion - dueAt) / 1000),
      executionsPerSecAfterDue: Math.round(executions / ((lastCompletion - dueAt) / 1000)),
      ...cpu,
    };
  });
}

export interface RepeatOptions {
  jobs?: number;
  seconds?: number;
  concurrency?: number;
  timeoutMs?: number;
}

/**
 * N job schedulers firing every second for S seconds. Each scheduler gets `offset = ⌊i·1000/N⌋`
 * so the fires are spread evenly over the second (as the Cronwheel lateness bench spreads its
 * jobs' phases). A fire's scheduled time is the millisecond in its job id `repeat:<id>:<millis>`,
 * which BullMQ sets to the slot (prevMillis + every) when it creates the fire; `job.timestamp +
 * job.delay` is not used because BullMQ clamps the delay at 0, which would hide lateness. BullMQ
 * creates a scheduler's next fire when the current one is moved to active, and when it finds
 * the next slot already past it skips to the next future slot: such skipped slots are counted.
 */
export async function bullmqRepeat({
  jobs = 10_000,
  seconds = 15,
  concurrency = 100,
  timeoutMs = seconds * 1000 + 120_000 + jobs * 10,
}: RepeatOptions = {}): Promise<Figures> {
  return scenario("repeat", timeoutMs, async (h) => {
    const queue = h.queue("repeat");
    let measuring = false;
    let measureFrom = 0;
    const capacity = jobs * (seconds + 2);
    const lateness = new Float64Array(capacity);
    const perSecond = new Array<number>(seconds + 1).fill(0);
    let fires = 0;
    let allFires = 0;
    const lastSlot = new Map<string, number>();
    let skippedSlots = 0;
    let repeatedSlots = 0; // a slot fired twice (or out of order) for one scheduler: should stay 0
    await h.worker(
      "repeat",
      async (job) => {
        const start = nowMs();
        allFires++;
        const id = job.id ?? "";
        const cut = id.lastIndexOf(":");
        const scheduler = id.slice(0, cut);
        const slot = Number(id.slice(cut + 1));
        if (measuring) {
          if (fires < capacity) lateness[fires] = start - slot;
          fires++;
          const bucket = Math.floor((start - measureFrom) / 1000);
          if (bucket >= 0 && bucket < perSecond.length) perSecond[bucket]!++;
          const previous = lastSlot.get(scheduler);
          if (previous !== undefined && slot - previous > 1000) skippedSlots += Math.round((slot - previous) / 1000) - 1;
          if (previous !== undefined && slot <= previous) repeatedSlots++;
        }
        lastSlot.set(scheduler, slot);
      },
      { concurrency },
    );

    const createStart = nowMs();
    const parallel = 100;
    for (let i = 0; i < jobs; i += parallel) {
      h.check();
      const upserts = [];
      for (let j = i; j < Math.min(jobs, i + parallel); j++) {
        upserts.push(
          queue.upsertJobScheduler(`s${j}`, { every: 1000, offset: Math.floor((j * 1000) / jobs) }, { name: "tick", data: {}, opts: JOB_OPTIONS }),
        );
      }
      await Promise.all(upserts);
    }
    const createSec = (nowMs() - createStart) / 1000;
    await sleep(1500); // every scheduler has fired at least once
    h.check();

    h.startMeasuring();
    measureFrom = nowMs();
    measuring = true;
    await sleep(seconds * 1000);
    measuring = false;
    const elapsed = (nowMs() - measureFrom) / 1000;
    h.check();
    const cpu = h.measured();
    const memory = await h.redisMemory();
    const sorted = sortedCopy(lateness, Math.min(fires, capacity));
    const fullSeconds = perSecond.slice(0, seconds);
    return {
      jobs,
      seconds,
      concurrency,
      createSec: round(createSec),
      createPerSec: Math.round(jobs / createSec),
      expectedFiresPerSec: jobs,
      firesPerSec: Math.round(fires / elapsed),
      firesPerSecMin: Math.min(...fullSeconds),
      firesPerSecMax: Math.max(...fullSeconds),
      skippedSlots,
      repeatedSlots,
      ...distribution("latenessMs", sorted),
      latenessMsMin: round(sorted[0] ?? NaN),
      ...cpu,
      ...memory,
    };
  });
}
