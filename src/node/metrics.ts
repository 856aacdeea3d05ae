/**
 * The node's Prometheus metrics (prom-client). One registry per node, so tests can run several
 * nodes in one process without clashing.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { Clock } from "../core/clock.js";
import type { Execution } from "../core/execution.js";
import type { ShardObserver } from "../core/shard-state.js";

/** How often the stall probe expects to run; stalls shorter than STALL_RECORDED_MS are noise. */
const STALL_PROBE_MS = 100;
const STALL_RECORDED_MS = 20;
const STALL_WINDOW_MS = 60_000;

export class NodeMetrics {
  readonly registry = new Registry();
  readonly fireLateness = new Histogram({
    name: "cronwheel_fire_lateness_seconds",
    help: "Time from a fire's due time (jitter included) to its execution being committed and ready",
    buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 30, 60],
    registers: [this.registry],
  });
  /**
   * Finishes counted since the last scrape, by state and reason: a labelled inc() hashes its
   * labels into a string, and at tens of thousands of finishes a second that showed in profiles.
   */
  private readonly finishedSinceScrape = new Map<string, Map<string, number>>();
  readonly executionsFinished = new Counter({
    name: "cronwheel_executions_finished_total",
    help: "Executions that reached a terminal state, by state and reason",
    labelNames: ["state", "reason"],
    registers: [this.registry],
    collect: () => {
      for (const [state, byReason] of this.finishedSinceScrape) for (const [reason, n] of byReason) this.executionsFinished.inc({ state, reason }, n);
      this.finishedSinceScrape.clear();
    },
  });
  readonly executionsReady = new Counter({
    name: "cronwheel_executions_ready_total",
    help: "Executions that became ready for a worker",
    registers: [this.registry],
  });
  readonly attemptsRevoked = new Counter({
    name: "cronwheel_attempts_revoked_total",
    help: "Attempts taken from their worker without its report, by reason (lease-expired, timed-out, canceled, replaced)",
    labelNames: ["reason"],
    registers: [this.registry],
  });
  readonly walBatchRecords = new Histogram({
    name: "cronwheel_wal_batch_records",
    help: "Records per group-commit batch",
    buckets: [1, 2, 5, 10, 50, 100, 500, 1000, 5000, 20000],
    registers: [this.registry],
  });
  readonly walFsyncSeconds = new Histogram({
    name: "cronwheel_wal_fsync_seconds",
    help: "Duration of one group-commit write + fsync",
    buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly readyDepth: Gauge;
  readonly oldestReadyAge: Gauge;

  constructor(
    clock: Clock,
    readyStats: () => Array<{ queue: string; depth: number; oldestReadyAt: number | null }>,
    repairingShards: () => number[] = () => [],
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: "cronwheel_process_" });
    this.trackStalls();
    new Gauge({
      name: "cronwheel_shard_repairing",
      help: "1 for each shard replica on this node that is repairing its log (it neither votes, leads nor counts until a leader has caught it up)",
      labelNames: ["shard"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const shard of repairingShards()) this.set({ shard: String(shard) }, 1);
      },
    });
    // Depth and age are read at scrape time from the shards, not tracked per event.
    const perQueue = () => {
      const merged = new Map<string, { depth: number; oldest: number | null }>();
      for (const s of readyStats()) {
        const m = merged.get(s.queue) ?? { depth: 0, oldest: null };
        m.depth += s.depth;
        if (s.oldestReadyAt !== null && (m.oldest === null || s.oldestReadyAt < m.oldest)) m.oldest = s.oldestReadyAt;
        merged.set(s.queue, m);
      }
      return merged;
    };
    this.readyDepth = new Gauge({
      name: "cronwheel_ready_depth",
      help: "Executions ready and waiting for a worker, per queue",
      labelNames: ["queue"],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [queue, m] of perQueue()) this.set({ queue }, m.depth);
      },
    });
    this.oldestReadyAge = new Gauge({
      name: "cronwheel_oldest_ready_age_seconds",
      help: "Age of the oldest ready execution, per queue",
      labelNames: ["queue"],
      registers: [this.registry],
      collect() {
        this.reset();
        const now = clock.now();
        for (const [queue, m] of perQueue()) this.set({ queue }, m.oldest === null ? 0 : Math.max(0, now - m.oldest) / 1000);
      },
    });
  }

  /** The observer the shards report live events to. */
  observer(clock: Clock): ShardObserver {
    return {
      fired: (e: Execution, fireAtMs: number) => {
        if (e.state === "skipped") return;
        this.fireLateness.observe(Math.max(0, clock.now() - fireAtMs) / 1000);
      },
      ready: () => this.executionsReady.inc(),
      finished: (e: Execution) => {
        let byReason = this.finishedSinceScrape.get(e.state);
        if (!byReason) this.finishedSinceScrape.set(e.state, (byReason = new Map()));
        const reason = e.reason ?? "";
        byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
      },
      revoked: (_e: Execution, _workerId: string, _fence: number, reason: string) => this.attemptsRevoked.inc({ reason }),
    };
  }

  onWalBatch(records: number, fsyncMs: number): void {
    this.walBatchRecords.observe(records);
    this.walFsyncSeconds.observe(fsyncMs / 1000);
  }

  /**
   * `cronwheel_event_loop_stall_max_seconds`: the longest time the process did not run its event
   * loop in the last minute — a starved CPU, a long GC, a stopped process (SIGSTOP, a paused VM).
   * Node's own event-loop-delay histogram does not see a stopped process; a timer that notices it
   * fired late does. A stall near the etcd lease explains a lost leadership. A window rather than
   * "since the last scrape": scrapes queued during the stall would reset it unseen.
   */
  private trackStalls(): void {
    const stalls: Array<{ at: number; ms: number }> = [];
    let last = performance.now();
    setInterval(() => {
      const now = performance.now();
      const late = now - last - STALL_PROBE_MS;
      last = now;
      if (late >= STALL_RECORDED_MS) stalls.push({ at: now, ms: late });
      while (stalls.length > 0 && stalls[0]!.at < now - STALL_WINDOW_MS) stalls.shift();
    }, STALL_PROBE_MS).unref();
    new Gauge({
      name: "cronwheel_event_loop_stall_max_seconds",
      help: "Longest time the event loop did not run in the last minute",
      registers: [this.registry],
      collect() {
        const recent = stalls.filter((s) => s.at >= performance.now() - STALL_WINDOW_MS);
        this.set(recent.reduce((max, s) => Math.max(max, s.ms), 0) / 1000);
      },
    });
  }
}
