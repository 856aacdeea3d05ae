/**
 * The driver of one shard on this node: it owns the shard's log and state and does the I/O the
 * pure state machine must not do. The order of the driver loop, asserted below:
 *
 *   1. propose(record): append to the log (in memory), remember who waits for it;
 *   2. once per event-loop turn, flush: one write + one fsync for everything appended (group commit);
 *   3. when the log is durable up to index i (committed, on a single node), apply every record
 *      up to i in log order, and only then answer each proposer;
 *   4. re-arm the one timer at the wheel's next due time; when it rings, propose a `tick`.
 *
 * appliedIndex ≤ durableIndex ≤ appendedIndex holds at all times. A log write or fsync failure
 * is fatal for the shard (its state may no longer match its disk): every waiter is failed and the
 * shard stops serving until the process restarts and recovers from the log.
 */
import type { Logger } from "pino";
import { Wal, WalError, type FsyncMode } from "../../wal/index.js";
import type { Clock } from "../core/clock.js";
import { CronwheelError } from "../core/errors.js";
import type { ShardRecord } from "../core/records.js";
import { ShardState, type ShardLimits, type ShardObserver } from "../core/shard-state.js";
import { decodeSnapshotChunks, encodeSnapshotChunks, type ChunkedShardSnapshot } from "./snapshot-chunks.js";

/** Node's setTimeout overflows past 2^31-1 ms; far timers are re-armed in steps of this. */
const TIMER_DELAY_MAX_MS = 3_600_000;

/**
 * Ticks are proposed this long before their work is due, with that horizon, so a fire's record is
 * durable (one write + fsync, a few ms at p99 here) by its due time instead of after it. The fire
 * becomes ready at its own time; what it costs is that a pause, delete or replace arriving within
 * this window before a fire no longer stops that fire.
 */
export const TICK_LOOKAHEAD_MS = 10;

/**
 * Segment size for shard logs. Smaller than the WAL's default: a restart scans the segment a
 * snapshot covers only partly, so this bounds the bytes read past the snapshot per shard.
 */
const SHARD_SEGMENT_BYTES_MAX = 16 * 1024 * 1024;

/** The leader's epoch on a single node; cluster mode (etcd) replaces it. */
const STANDALONE_EPOCH = 1;

export interface ShardReplicaOptions {
  shardId: number;
  dir: string;
  fsync: FsyncMode;
  clock: Clock;
  logger: Logger;
  limits: ShardLimits;
  observer: ShardObserver;
  /** Take a snapshot (and drop covered log segments) after this many applied records. */
  snapshotEveryRecords: number;
  repair: boolean;
  /** Serializes snapshots across the node's shards. */
  snapshotTurns: SnapshotTurns;
  /** Called after each durable batch, for metrics. */
  onBatch?: (records: number, fsyncMs: number) => void;
}

/** One snapshot at a time per node: each captures synchronously, so several at once would stall it. */
export class SnapshotTurns {
  private tail: Promise<void> = Promise.resolve();
  run(take: () => Promise<void>): void {
    this.tail = this.tail.then(take, take);
  }
}

interface Waiter {
  index: number;
  record: ShardRecord;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

export class ShardReplica {
  private readonly waiters: Waiter[] = [];
  private waitersHead = 0;
  private appliedIndex: number;
  private lastSnapshotIndex: number;
  private lastProposedAt: number;
  private flushScheduled = false;
  private snapshotting = false;
  private failure: Error | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private timerDueAt = Number.POSITIVE_INFINITY;
  private tickInFlight = false;

  private constructor(
    private readonly opts: ShardReplicaOptions,
    private readonly wal: Wal,
    readonly state: ShardState,
    appliedIndex: number,
  ) {
    this.appliedIndex = appliedIndex;
    this.lastSnapshotIndex = appliedIndex;
    this.lastProposedAt = state.lastAt;
  }

  static async open(opts: ShardReplicaOptions, replayObserver: ShardObserver): Promise<ShardReplica> {
    const started = Date.now();
    const { wal, snapshot, entries, report } = await Wal.open({
      dir: opts.dir,
      fsync: opts.fsync,
      segmentBytesMax: SHARD_SEGMENT_BYTES_MAX,
      repair: opts.repair,
      logger: opts.logger,
    });
    // Replayed records rebuild state; they are not new events, so metrics do not see them.
    const state = snapshot
      ? ShardState.fromSnapshot(decodeSnapshotChunks(snapshot.state as ChunkedShardSnapshot), opts.limits, replayObserver)
      : new ShardState(opts.clock.now(), opts.limits, replayObserver);
    let applied = snapshot?.index ?? 0;
    for (const entry of entries) {
      state.apply(entry.record as ShardRecord);
      applied = entry.index;
    }
    state.setObserver(opts.observer);
    const replica = new ShardReplica(opts, wal, state, applied);
    wal.onDurable(() => replica.onDurable());
    opts.logger.info(
      { shard: opts.shardId, snapshotIndex: snapshot?.index ?? 0, replayed: entries.length, ...report, ms: Date.now() - started },
      "shard recovered",
    );
    replica.armTimer();
    return replica;
  }

  get healthy(): boolean {
    return this.failure === null && !this.closed;
  }

  get indexes(): { applied: number; durable: number; appended: number } {
    return { applied: this.appliedIndex, durable: this.wal.durableIndex, appended: this.wal.appendedIndex };
  }

  /** Append `record`, wait until it is durable and applied, and return what apply returned. */
  propose(record: ShardRecord): Promise<unknown> {
    if (this.failure) return Promise.reject(unavailable(this.failure));
    if (this.closed) return Promise.reject(new CronwheelError("unavailable", "shard is closing", undefined, 1));
    record.at = this.nextAt(record.at); // before append: the log stores the record as encoded now
    let lastIndex: number;
    try {
      ({ lastIndex } = this.wal.append(STANDALONE_EPOCH, [record]));
    } catch (error) {
      // The log's write queue is full (the disk cannot keep up): push back instead of buffering more.
      if (error instanceof WalError && error.code === "WAL_BACKPRESSURE") {
        return Promise.reject(new CronwheelError("resource_exhausted", "shard log is behind; retry shortly", undefined, 1));
      }
      return Promise.reject(unavailable(error as Error));
    }
    const promise = new Promise<unknown>((resolve, reject) => {
      this.waiters.push({ index: lastIndex, record, resolve, reject });
    });
    this.scheduleFlush();
    return promise.then(throwIfError);
  }

  /** Records carry the leader's time, never decreasing within a shard even if the clock steps back. */
  private nextAt(requested: number): number {
    const at = Math.max(requested, this.lastProposedAt);
    this.lastProposedAt = at;
    return at;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.wal.flush().catch((error: Error) => this.fail(error));
    });
  }

  private onDurable(): void {
    const durable = this.wal.durableIndex;
    if (this.opts.onBatch) {
      const stats = this.wal.stats();
      this.opts.onBatch(stats.lastBatchRecords, stats.lastFsyncMs);
    }
    while (this.waitersHead < this.waiters.length) {
      const w = this.waiters[this.waitersHead]!;
      if (w.index > durable) break;
      if (w.index !== this.appliedIndex + 1) throw new Error(`shard ${this.opts.shardId}: apply order broken at ${w.index}`);
      this.waitersHead++;
      let result: unknown;
      try {
        result = this.state.apply(w.record);
      } catch (error) {
        // A bug in apply: the state may be half-changed, so stop serving rather than diverge.
        this.fail(error as Error);
        w.reject(error as Error);
        return;
      }
      this.appliedIndex = w.index;
      w.resolve(result);
    }
    if (this.waitersHead > 1024 && this.waitersHead * 2 > this.waiters.length) {
      this.waiters.splice(0, this.waitersHead);
      this.waitersHead = 0;
    }
    if (this.appliedIndex > durable) throw new Error("appliedIndex passed durableIndex");
    this.maybeSnapshot();
    this.armTimer();
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.opts.logger.error({ shard: this.opts.shardId, err: error }, "shard failed; it stops serving until restart");
    this.clearTimer();
    for (let i = this.waitersHead; i < this.waiters.length; i++) this.waiters[i]!.reject(unavailable(error));
    this.waiters.length = 0;
    this.waitersHead = 0;
  }

  // ---------------------------------------------------------------------------------------------
  // time

  private armTimer(): void {
    if (this.failure || this.closed || this.tickInFlight) return;
    const due = this.state.nextDueAt();
    if (due === null) {
      this.clearTimer();
      return;
    }
    if (this.timer && this.timerDueAt <= due) return;
    this.clearTimer();
    const delay = Math.min(Math.max(0, due - TICK_LOOKAHEAD_MS - this.opts.clock.now()), TIMER_DELAY_MAX_MS);
    this.timerDueAt = due;
    this.timer = setTimeout(() => this.onTimer(), delay);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerDueAt = Number.POSITIVE_INFINITY;
  }

  private onTimer(): void {
    this.timer = null;
    this.timerDueAt = Number.POSITIVE_INFINITY;
    const due = this.state.nextDueAt();
    const now = this.opts.clock.now();
    if (due === null) return;
    if (due > now + TICK_LOOKAHEAD_MS) {
      this.armTimer();
      return;
    }
    this.tickInFlight = true;
    this.propose({ type: "tick", at: now, horizon: now + TICK_LOOKAHEAD_MS })
      .catch(() => undefined) // failures are logged by fail(); the shard stops ticking then
      .finally(() => {
        this.tickInFlight = false;
        this.armTimer();
      });
  }

  // ---------------------------------------------------------------------------------------------
  // snapshots and shutdown

  private maybeSnapshot(): void {
    if (this.snapshotting || this.appliedIndex - this.lastSnapshotIndex < this.opts.snapshotEveryRecords) return;
    // Shards under even load reach their thresholds together: take their snapshots one after another.
    this.snapshotting = true;
    this.opts.snapshotTurns.run(() => this.snapshot(true));
  }

  /** Write a snapshot of the applied state and let the log drop what it covers. */
  async snapshot(reserved = false): Promise<void> {
    // A turn reserved before close() finds the shard closed and gives up; close() itself snapshots.
    if ((reserved ? this.closed : this.snapshotting) || this.failure || this.appliedIndex === this.lastSnapshotIndex) {
      if (reserved) this.snapshotting = false;
      return;
    }
    this.snapshotting = true;
    const index = this.appliedIndex;
    const started = Date.now();
    try {
      // Captured synchronously, so it is exactly the state after `index`; encoded in chunks after.
      const captured = this.state.toSnapshot();
      const captureMs = Date.now() - started;
      await this.wal.saveSnapshot(index, STANDALONE_EPOCH, await encodeSnapshotChunks(captured));
      this.lastSnapshotIndex = index;
      this.opts.logger.info({ shard: this.opts.shardId, index, captureMs, ms: Date.now() - started }, "snapshot written");
    } catch (error) {
      this.opts.logger.warn({ shard: this.opts.shardId, err: error }, "snapshot failed; the log keeps everything");
    } finally {
      this.snapshotting = false;
    }
  }

  /** Stop ticking, finish what was proposed, snapshot (so the next start is fast), close the log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.clearTimer();
    if (!this.failure) {
      await this.wal.flush().catch((error: Error) => this.fail(error));
      this.closed = true;
      if (!this.failure) await this.snapshot();
    }
    this.closed = true;
    await this.wal.close();
  }
}

function throwIfError(result: unknown): unknown {
  if (result instanceof CronwheelError) throw result;
  return result;
}

function unavailable(cause: Error): CronwheelError {
  return new CronwheelError("unavailable", `shard is not serving: ${cause.message}`, undefined, 5);
}
