/**
 * The driver of one shard replica on this node: it owns the shard's log and state and does the
 * I/O the pure state machine must not do. A replica is a leader or a follower.
 *
 * Leader (the only role in standalone mode, where the replica set is this node alone):
 *   1. propose(record): append to the log in the leader's epoch, remember who waits for it;
 *   2. once per event-loop turn, flush: one write + one fsync for everything appended (group
 *      commit); the replicator (cluster/) ships the same entries to the followers meanwhile;
 *   3. an entry is committed when a majority of the replica set has it durable and it (or a later
 *      entry) is of the leader's epoch; committed entries are applied in log order, and only then
 *      is each proposer answered;
 *   4. re-arm the one timer at the wheel's next due time; when it rings, propose a `tick`.
 * Follower: stores what its leader sends (after the previous-index/epoch check), applies what the
 * leader says is committed, and never ticks: its wheel stays warm for a failover.
 *
 * appliedIndex ≤ commitIndex and appliedIndex ≤ appendedIndex hold at all times. A log write or
 * fsync failure is fatal for the replica (its state may no longer match its disk): every waiter
 * is failed and it stops serving until the process restarts and recovers from the log.
 */
import fs from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { STANDALONE_EPOCH } from "../../cluster/coordinator.js";
import { Wal, WalCorruptionError, WalError, type FsyncMode, type LogEntry } from "../../wal/index.js";
import { fsyncDir, parseSegmentFileName, parseSnapshotFileName } from "../../wal/files.js";
import type { Clock } from "../core/clock.js";
import { CronwheelError } from "../core/errors.js";
import type { ShardRecord } from "../core/records.js";
import { NO_OBSERVER, ShardState, type ShardLimits, type ShardObserver } from "../core/shard-state.js";
import { decodeSnapshotChunks, encodeSnapshotChunks, type ChunkedShardSnapshot } from "./snapshot-chunks.js";
import type { ShardHistory } from "../history/history-store.js";

/**
 * A tick timer never sleeps longer than this on one reading of shard time. Shard time is a clock
 * that can step (the local clock set, a new replica clock sample moving the median), and a timer
 * armed on the old reading would fire that much late.
 */
const TIMER_DELAY_MAX_MS = 1_000;

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
export const SHARD_SEGMENT_BYTES_DEFAULT = 16 * 1024 * 1024;

/** Written entries a replicated shard keeps in memory for shipping (see WalOptions.recentEntriesKept). */
const RECENT_ENTRIES_KEPT = 4096;


export interface ShardReplicaOptions {
  shardId: number;
  dir: string;
  fsync: FsyncMode;
  clock: Clock;
  logger: Logger;
  limits: ShardLimits;
  /** What a serving leader reports live events to; followers report nothing (no double counts). */
  observer: ShardObserver;
  /** Take a snapshot (and drop covered log segments) after this many applied records. */
  snapshotEveryRecords: number;
  /** Log segment size; a snapshot lets only whole covered segments go. */
  segmentBytesMax?: number;
  repair: boolean;
  /** Serializes snapshots across the node's shards. */
  snapshotTurns: SnapshotTurns;
  /**
   * standalone: this node is the whole replica set, every durable entry is committed.
   * replicated: entries commit by majority; the log may end in entries that never will.
   */
  mode: "standalone" | "replicated";
  /** Called after each durable batch, for metrics. */
  onBatch?: (records: number, fsyncMs: number) => void;
  /** Where this replica's finished executions go (every replica derives history from its log); none without. */
  history?: ShardHistory | null;
}

/** One snapshot at a time per node: each captures synchronously, so several at once would stall it. */
export class SnapshotTurns {
  private tail: Promise<void> = Promise.resolve();
  run(take: () => Promise<void>): void {
    this.tail = this.tail.then(take, take);
  }
}

/** An appended entry not yet applied; a leader's own proposals carry their proposer. */
interface PendingEntry {
  index: number;
  record: ShardRecord;
  resolve?: (value: unknown) => void;
  reject?: (error: Error) => void;
}

/** A shard state captured at an applied index, ready to ship to another replica. */
export interface TransferSnapshot {
  index: number;
  epoch: number;
  state: ChunkedShardSnapshot;
}

export type Role = "leader" | "follower";

export class ShardReplica {
  private pending: PendingEntry[] = [];
  private pendingHead = 0;
  private appliedIndex: number;
  private commit: number;
  private lastSnapshotIndex: number;
  private lastProposedAt: number;
  private flushScheduled = false;
  private snapshotting = false;
  private failure: Error | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private timerDueAt = Number.POSITIVE_INFINITY;
  private tickInFlight = false;
  private _role: Role = "follower";
  private _epoch = 0;
  private _serving = false;
  /** Highest epoch this replica promised to; appends and prepares of lower epochs are refused. */
  private promised: number;
  private commitHintWritten = 0;
  private commitHintTimer: NodeJS.Timeout | null = null;
  /** Serializes follower-side log changes (appends, snapshot installs) of this shard. */
  private logTurn: Promise<unknown> = Promise.resolve();
  /** Leader: the quorum rule, fed by the replicator; null in standalone mode. */
  private quorum: ((ownDurable: number) => number) | null = null;
  /** Told when the leader appended entries (the replicator ships them). */
  private appendedListener: (() => void) | null = null;
  /** Leader: ms to add to this node's clock to get the replicas' median clock (0 standalone). */
  private clockCorrection: (local: number) => number = () => 0;
  /**
   * Its log lost entries it may have acknowledged (corruption found at start): it neither
   * promises, leads nor counts toward a commit until a leader has brought it up to the end of
   * the leader's log (`repairTarget`). Durable: a marker file keeps it across restarts.
   */
  private _repairing = false;
  /** The leader's last index, from the first message of the epoch that is repairing this replica. */
  private repairTarget: { epoch: number; index: number } | null = null;
  /** performance.now() of the last append or snapshot accepted from a leader (for deposing). */
  lastLeaderContact = 0;
  private readonly servingListeners: Array<(serving: boolean) => void> = [];

  private constructor(
    private readonly opts: ShardReplicaOptions,
    private readonly wal: Wal,
    public state: ShardState,
    appliedIndex: number,
    pending: PendingEntry[],
    promised: number,
  ) {
    this.appliedIndex = appliedIndex;
    this.commit = appliedIndex;
    this.lastSnapshotIndex = appliedIndex;
    this.lastProposedAt = state.lastAt;
    this.pending = pending;
    this.promised = promised;
  }

  static async open(opts: ShardReplicaOptions, replayObserver: ShardObserver): Promise<ShardReplica> {
    const started = Date.now();
    const { wal, snapshot, entries, report, repairing } = opts.mode === "standalone" ? { ...(await openWal(opts, opts.repair)), repairing: false } : await openReplicatedWal(opts);
    // Replayed records rebuild state; they are not new events, so metrics do not see them.
    const state = snapshot
      ? ShardState.fromSnapshot(decodeSnapshotChunks(snapshot.state as ChunkedShardSnapshot), opts.limits, replayObserver)
      : new ShardState(opts.clock.now(), opts.limits, replayObserver);
    let applied = snapshot?.index ?? 0;
    const history = opts.history ?? null;
    if (history) {
      state.setFinishedSink(history.finished);
      state.setAuditSink(history.audited);
      // A history file behind the snapshot (new, lost, or its writer failed) misses what the log dropped.
      if (history.watermark < applied) {
        opts.logger.warn({ shard: opts.shardId, historyAt: history.watermark, snapshotIndex: applied }, "history is behind the shard's snapshot: the entries between are recorded as a gap");
        history.skipTo(applied, state.lastAt, state.finishBoundary());
      }
    }
    // Standalone: every durable entry is committed. Replicated: only up to what this replica last
    // knew was committed; the rest waits for a leader to say so (or to cut it).
    const committed = opts.mode === "standalone" ? Number.POSITIVE_INFINITY : readNumberFile(commitHintPath(opts.dir));
    const pending: PendingEntry[] = [];
    for (const entry of entries) {
      if (entry.index <= committed) {
        history?.applying(entry.index);
        state.apply(entry.record as ShardRecord);
        applied = entry.index;
      } else {
        pending.push({ index: entry.index, record: entry.record as ShardRecord });
      }
    }
    history?.applied(applied);
    const promised = Math.max(readNumberFile(promisePath(opts.dir)), wal.lastEpoch());
    const replica = new ShardReplica(opts, wal, state, applied, pending, promised);
    replica._repairing = repairing;
    wal.onDurable(() => replica.onDurable());
    wal.onFailure((failure) => replica.fail(failure));
    opts.logger.info(
      {
        shard: opts.shardId,
        snapshotIndex: snapshot?.index ?? 0,
        lastIndex: wal.appendedIndex,
        ...(history ? { historyAt: history.watermark } : {}),
        replayed: entries.length,
        unapplied: pending.length,
        ...report,
        repairing,
        ms: Date.now() - started,
      },
      "shard recovered",
    );
    if (opts.mode === "standalone") {
      replica._role = "leader";
      replica._epoch = STANDALONE_EPOCH;
      replica.setServing(true);
    }
    return replica;
  }

  get shardId(): number {
    return this.opts.shardId;
  }

  get healthy(): boolean {
    return this.failure === null && !this.closed;
  }

  get role(): Role {
    return this._role;
  }

  /** The epoch this replica leads in (leader) or last followed (follower). */
  get epoch(): number {
    return this._epoch;
  }

  /** A leader whose own epoch record is committed and applied: it takes writes and dispatches. */
  get serving(): boolean {
    return this._serving && this.healthy;
  }

  get repairing(): boolean {
    return this._repairing;
  }

  get promisedEpoch(): number {
    return this.promised;
  }

  get commitIndex(): number {
    return this.commit;
  }

  get indexes(): { applied: number; committed: number; durable: number; appended: number; first: number; lastEpoch: number } {
    return {
      applied: this.appliedIndex,
      committed: this.commit,
      durable: this.wal.durableIndex,
      appended: this.wal.appendedIndex,
      first: this.wal.firstIndex,
      lastEpoch: this.wal.lastEpoch(),
    };
  }

  /** The log, for the replicator: entries from `from`, and the epoch of an index (undefined if compacted). */
  get log(): Pick<Wal, "readFrom" | "epochAt" | "firstIndex" | "appendedIndex" | "durableIndex" | "snapshotIndex"> {
    return this.wal;
  }

  onServingChange(listener: (serving: boolean) => void): void {
    this.servingListeners.push(listener);
  }

  // ---------------------------------------------------------------------------------------------
  // leader: proposing

  /** Append `record`, wait until it is committed and applied, and return what apply returned. */
  propose(record: ShardRecord): Promise<unknown> {
    if (this.failure) return Promise.reject(unavailable(this.failure));
    if (this.closed) return Promise.reject(new CronwheelError("unavailable", "shard is closing", undefined, 1));
    if (!this._serving) return Promise.reject(notLeader(this.opts.shardId));
    return this.appendAsLeader(record).then(throwIfError);
  }

  /**
   * The shard's time on this leader: its clock corrected to the median of the replicas' clocks,
   * so one node with a clock set wrong (a minority) cannot make its shards fire early or late.
   */
  clusterNow(): number {
    const local = this.opts.clock.now(); // read once: the correction is relative to this reading
    return local + this.clockCorrection(local);
  }

  /** This node's own clock (what followers report for the median). */
  localNow(): number {
    return this.opts.clock.now();
  }

  private appendAsLeader(record: ShardRecord): Promise<unknown> {
    // The leader stamps every record with the shard's (median) time. A caller's stamp may come
    // from another node's clock (a worker report forwarded by a node whose clock is wrong), and
    // a record's time is the shard's clock: it can never go back once the log holds it.
    const now = this.clusterNow();
    if (record.type === "tick" && record.horizon !== undefined) record.horizon += now - record.at;
    record.at = this.nextAt(now); // before append: the log stores the record as encoded now
    let lastIndex: number;
    try {
      ({ lastIndex } = this.wal.append(this._epoch, [record]));
    } catch (error) {
      // The log's write queue is full (the disk cannot keep up): push back instead of buffering more.
      if (error instanceof WalError && error.code === "WAL_BACKPRESSURE") {
        return Promise.reject(new CronwheelError("resource_exhausted", "shard log is behind; retry shortly", undefined, 1));
      }
      return Promise.reject(unavailable(error as Error));
    }
    const promise = new Promise<unknown>((resolve, reject) => {
      this.pending.push({ index: lastIndex, record, resolve, reject });
    });
    this.scheduleFlush();
    this.appendedListener?.();
    return promise;
  }

  /** Records carry the leader's time, never decreasing within a shard even if the clock steps back. */
  private nextAt(requested: number): number {
    const at = Math.max(requested, this.lastProposedAt, this.state.lastAt);
    this.lastProposedAt = at;
    return at;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(this.flushNow);
  }

  // Durability arrives through onDurable, a failure through onFailure: no promise per commit.
  private readonly flushNow = (): void => {
    this.flushScheduled = false;
    this.wal.startFlush();
  };

  private onDurable(): void {
    if (this.opts.onBatch) {
      const stats = this.wal.stats();
      this.opts.onBatch(stats.lastBatchRecords, stats.lastFsyncMs);
    }
    if (this._role === "leader") this.recomputeCommit();
  }

  /** Leader: the commit index follows the quorum (own durable index alone in standalone mode). */
  recomputeCommit(): void {
    if (this._role !== "leader") return;
    const durable = this.wal.durableIndex;
    const candidate = this.quorum ? this.quorum(durable) : durable;
    // Raft's rule: replicas are counted only for an entry of the current epoch; earlier ones
    // commit with it. (A standalone log is all one epoch.)
    if (candidate > this.commit && this.wal.epochAt(candidate) === this._epoch) this.advanceCommit(candidate);
  }

  /** Apply every committed entry in order; answer proposers; snapshot and re-arm the timer. */
  private advanceCommit(index: number): void {
    if (index <= this.commit) return;
    this.commit = index;
    while (this.pendingHead < this.pending.length) {
      const p = this.pending[this.pendingHead]!;
      if (p.index > this.commit) break;
      if (p.index !== this.appliedIndex + 1) {
        this.fail(new Error(`shard ${this.opts.shardId}: apply order broken at ${p.index} after ${this.appliedIndex}`));
        return;
      }
      // Let the applied record and its answer go now, not at the next compaction (up to 1,024
      // entries later): kept that long they outlive a scavenge or two and get promoted.
      (this.pending as (PendingEntry | undefined)[])[this.pendingHead] = undefined;
      this.pendingHead++;
      let result: unknown;
      try {
        this.opts.history?.applying(p.index);
        result = this.state.apply(p.record);
      } catch (error) {
        // A bug in apply: the state may be half-changed, so stop serving rather than diverge.
        this.fail(error as Error);
        p.reject?.(error as Error);
        return;
      }
      this.appliedIndex = p.index;
      p.resolve?.(result);
    }
    this.opts.history?.applied(this.appliedIndex);
    this.compactPending();
    this.scheduleCommitHint();
    this.maybeSnapshot();
    this.armTimer();
  }

  private compactPending(): void {
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.opts.logger.error({ shard: this.opts.shardId, err: error }, "shard failed; it stops serving until restart");
    this.clearTimer();
    this.rejectWaiters(unavailable(error));
    this.setServing(false);
  }

  private rejectWaiters(error: CronwheelError): void {
    for (let i = this.pendingHead; i < this.pending.length; i++) {
      const p = this.pending[i]!;
      p.reject?.(error);
      p.resolve = p.reject = undefined;
    }
  }

  private setServing(serving: boolean): void {
    if (this._serving === serving) return;
    this._serving = serving;
    // Only a serving leader reports live events: a follower applying the same records must not
    // count fires twice or wake the worker gateway.
    this.state.setObserver(serving ? this.opts.observer : NO_OBSERVER);
    if (serving) {
      this.lastProposedAt = Math.max(this.lastProposedAt, this.state.lastAt);
      this.armTimer();
    } else {
      this.clearTimer();
    }
    for (const l of this.servingListeners) l(serving);
  }

  // ---------------------------------------------------------------------------------------------
  // leadership changes (cluster mode; driven by the coordinator and the replicator)

  /**
   * Become leader in `epoch` with an adopted log (see recoverAndLead in cluster/replication.ts): append this
   * epoch's first record; the replica serves once that record is committed and applied.
   * `quorum` maps this replica's durable index to the index a majority has durable.
   */
  async lead(nodeId: string, epoch: number, quorum: (ownDurable: number) => number, onAppended: () => void, clockCorrection: (local: number) => number = () => 0): Promise<void> {
    if (this.failure) throw unavailable(this.failure);
    if (this._repairing) throw new CronwheelError("unavailable", `shard ${this.opts.shardId}: this replica is repairing its log and cannot lead`);
    if (epoch < this.promised) throw new CronwheelError("unavailable", `epoch ${epoch} is older than promised ${this.promised}`);
    await this.promise(epoch);
    this._role = "leader";
    this._epoch = epoch;
    this.quorum = quorum;
    this.appendedListener = onAppended;
    this.clockCorrection = clockCorrection;
    // Not this node's clock: it may be the one set wrong. Its records are corrected to the
    // replicas' median clock (clockCorrection) from the first one on.
    this.lastProposedAt = Math.max(this.lastProposedAt, this.state.lastAt);
    const record: ShardRecord = { type: "leader", at: this.opts.clock.now(), nodeId, epoch };
    await this.appendAsLeader(record);
    if (this._role === "leader" && this._epoch === epoch && !this.failure) this.setServing(true);
  }

  /** Stop leading (lease lost, deposed, no quorum, a higher epoch seen): answer waiters, stop ticking. */
  stepDown(reason: string): void {
    if (this._role !== "leader") return;
    this.opts.logger.warn({ shard: this.opts.shardId, epoch: this._epoch, reason }, "stepping down");
    this._role = "follower";
    this.quorum = null;
    this.appendedListener = null;
    this.clockCorrection = () => 0;
    this.setServing(false);
    // Their entries may still commit under the next leader; the client cannot know, so: retry.
    this.rejectWaiters(new CronwheelError("unavailable", `shard ${this.opts.shardId} lost its leader (${reason}); the outcome is unknown, retry`, undefined, 1));
  }

  /** Refuse every epoch below `epoch` from now on; durable before it returns. */
  async promise(epoch: number): Promise<void> {
    if (epoch <= this.promised) return;
    this.promised = epoch;
    if (this._role === "leader" && epoch > this._epoch) this.stepDown(`epoch ${epoch} seen`);
    await writeNumberFileDurably(promisePath(this.opts.dir), epoch);
  }

  /** Note the current leader's epoch (for followers; the routing layer reads leaders from etcd). */
  follow(epoch: number): void {
    if (this._role === "follower" && epoch > this._epoch) this._epoch = epoch;
  }

  // ---------------------------------------------------------------------------------------------
  // follower: storing what a leader sends

  /**
   * Store entries after (prevIndex, prevEpoch) from a leader of `epoch`, replacing a conflicting
   * suffix. Returns the index up to which this log now matches the leader's (durable), or a
   * refusal. Runs one at a time per shard.
   */
  storeEntries(epoch: number, prevIndex: number, prevEpoch: number, entries: LogEntry[], leaderCommit: number, leaderLast?: number): Promise<StoreResult> {
    return this.inLogTurn(async () => {
      const refused = await this.acceptLeader(epoch, leaderLast);
      if (refused) return refused;
      // Everything applied is committed, hence on the leader's log too: skip it.
      let from = 0;
      while (from < entries.length && entries[from]!.index <= this.appliedIndex) from++;
      const base = from === 0 ? prevIndex : entries[from - 1]!.index;
      const baseEpoch = from === 0 ? prevEpoch : entries[from - 1]!.epoch;
      if (base > this.wal.appendedIndex) return { ok: false, reason: "gap", hint: this.wal.appendedIndex };
      if (base > this.appliedIndex && this.wal.epochAt(base) !== baseEpoch) return { ok: false, reason: "mismatch", hint: this.appliedIndex };
      let i = from;
      for (; i < entries.length; i++) {
        const e = entries[i]!;
        if (e.index > this.wal.appendedIndex) break;
        if (this.wal.epochAt(e.index) === e.epoch) continue;
        // A suffix from an older epoch that never committed: cut it here.
        await this.truncateFrom(e.index);
        break;
      }
      const rest = entries.slice(i);
      if (rest.length > 0) {
        this.wal.appendEntries(rest);
        for (const e of rest) this.pending.push({ index: e.index, record: e.record as ShardRecord });
      }
      const matched = entries.length > 0 ? Math.max(base, entries[entries.length - 1]!.index) : base;
      await this.wal.flush();
      if (this.promised > epoch) return { ok: false, reason: "stale", promised: this.promised };
      this.advanceCommit(Math.min(leaderCommit, matched));
      await this.checkRepaired(epoch, matched);
      return { ok: true, matched, clock: this.opts.clock.now(), ...(this._repairing ? { repairing: true } : {}) };
    });
  }

  /** A leader of `epoch` speaks: refuse it if a newer epoch was promised, else follow it. */
  private async acceptLeader(epoch: number, leaderLast: number | undefined): Promise<StoreResult | null> {
    if (this.failure) throw unavailable(this.failure);
    if (epoch < this.promised) return { ok: false, reason: "stale", promised: this.promised };
    await this.promise(epoch);
    this.follow(epoch);
    this.lastLeaderContact = performance.now();
    // The first word of each epoch fixes the target: this leader's log end at that moment holds
    // every committed entry, and every entry its commit could still count our lost acks for.
    if (this._repairing && leaderLast !== undefined && (this.repairTarget === null || epoch > this.repairTarget.epoch)) {
      this.repairTarget = { epoch, index: leaderLast };
      this.opts.logger.info({ shard: this.opts.shardId, epoch, target: leaderLast }, "repairing: catching up to the leader's log end");
    }
    return null;
  }

  /** Repaired once this log durably matches the target leader's up to the target index. */
  private async checkRepaired(epoch: number, matched: number): Promise<void> {
    const target = this.repairTarget;
    if (!this._repairing || target === null || target.epoch !== epoch || matched < target.index) return;
    await removeRepairMarker(this.opts.dir);
    this._repairing = false;
    this.repairTarget = null;
    this.opts.logger.warn({ shard: this.opts.shardId, epoch, index: matched }, "replica repaired from the leader; it promises and counts again");
  }

  /** Replace state and log with a snapshot from the leader (the follower is behind its log). */
  installSnapshot(epoch: number, snapshot: TransferSnapshot, leaderLast?: number): Promise<StoreResult> {
    return this.inLogTurn(async () => {
      const refused = await this.acceptLeader(epoch, leaderLast);
      if (refused) return refused;
      if (snapshot.index <= this.appliedIndex) return { ok: true, matched: this.appliedIndex, ...(this._repairing ? { repairing: true } : {}) };
      const state = ShardState.fromSnapshot(decodeSnapshotChunks(snapshot.state), this.opts.limits, NO_OBSERVER);
      // If this log holds the snapshot's entry, the WAL keeps what follows it, and so do we.
      const keepsLog = snapshot.index <= this.wal.appendedIndex && this.wal.epochAt(snapshot.index) === snapshot.epoch;
      this.pending = keepsLog ? this.pending.slice(this.pendingHead).filter((p) => p.index > snapshot.index) : [];
      this.pendingHead = 0;
      await this.wal.saveSnapshot(snapshot.index, snapshot.epoch, snapshot.state);
      this.state = state;
      if (this.opts.history) {
        state.setFinishedSink(this.opts.history.finished);
        state.setAuditSink(this.opts.history.audited);
        this.opts.history.skipTo(snapshot.index, state.lastAt, state.finishBoundary());
      }
      this.appliedIndex = this.commit = this.lastSnapshotIndex = snapshot.index;
      this.scheduleCommitHint();
      this.opts.logger.info({ shard: this.opts.shardId, index: snapshot.index }, "installed a snapshot from the leader");
      await this.checkRepaired(epoch, snapshot.index);
      return { ok: true, matched: snapshot.index, ...(this._repairing ? { repairing: true } : {}) };
    });
  }

  /** This replica's applied state as a snapshot another replica can install. */
  async transferSnapshot(): Promise<TransferSnapshot> {
    const index = this.appliedIndex;
    const epoch = this.wal.epochAt(index) ?? 0;
    return { index, epoch, state: await encodeSnapshotChunks(this.state.toSnapshot()) };
  }

  private async truncateFrom(index: number): Promise<void> {
    if (index <= this.commit) throw new Error(`shard ${this.opts.shardId}: refusing to cut committed entry ${index}`);
    const cut = this.wal.truncateSuffix(index);
    let k = this.pending.length;
    while (k > this.pendingHead && this.pending[k - 1]!.index >= index) k--;
    for (let j = k; j < this.pending.length; j++) this.pending[j]!.reject?.(notLeader(this.opts.shardId));
    this.pending.length = k;
    await cut;
  }

  private inLogTurn<T>(work: () => Promise<T>): Promise<T> {
    const run = this.logTurn.then(work, work);
    this.logTurn = run.catch(() => undefined);
    return run;
  }

  /**
   * Where a restart may apply up to without asking a leader: a lower bound of the commit index,
   * written now and then without fsync (a lost hint only means a longer catch-up).
   */
  private scheduleCommitHint(): void {
    if (this.opts.mode === "standalone" || this.commitHintTimer || this.closed) return;
    this.commitHintTimer = setTimeout(() => {
      this.commitHintTimer = null;
      const value = this.appliedIndex;
      if (value === this.commitHintWritten) return;
      this.commitHintWritten = value;
      fs.promises.writeFile(commitHintPath(this.opts.dir), String(value)).catch(() => undefined);
    }, COMMIT_HINT_EVERY_MS);
    this.commitHintTimer.unref();
  }

  // ---------------------------------------------------------------------------------------------
  // time

  private armTimer(): void {
    if (!this._serving || this.failure || this.closed || this.tickInFlight) return;
    const due = this.state.nextDueAt();
    if (due === null) {
      this.clearTimer();
      return;
    }
    if (this.timer && this.timerDueAt <= due) return;
    this.clearTimer();
    const delay = Math.min(Math.max(0, due - TICK_LOOKAHEAD_MS - this.clusterNow()), TIMER_DELAY_MAX_MS);
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
    const now = this.clusterNow();
    if (due === null || !this._serving) return;
    if (due > now + TICK_LOOKAHEAD_MS) {
      this.armTimer();
      return;
    }
    this.tickInFlight = true;
    const local = this.opts.clock.now(); // appendAsLeader restamps it, keeping the lookahead
    this.propose({ type: "tick", at: local, horizon: local + TICK_LOOKAHEAD_MS })
      .catch(() => undefined) // failures are logged by fail(); a replica that stepped down stops ticking
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
    const epoch = this.wal.epochAt(index);
    const started = Date.now();
    try {
      if (epoch === undefined) throw new Error(`no epoch known for applied index ${index}`);
      // Captured synchronously, so it is exactly the state after `index`; encoded in chunks after.
      const captured = this.state.toSnapshot();
      const captureMs = Date.now() - started;
      // The snapshot lets the log drop entries up to `index`: their history must be on disk first.
      if (this.opts.history) {
        const historyAt = await this.opts.history.commit(true).catch(() => -1);
        if (historyAt < index) this.opts.logger.error({ shard: this.opts.shardId, index, historyAt }, "history is behind the snapshot; the entries between will be a gap in it");
      }
      await this.wal.saveSnapshot(index, epoch, await encodeSnapshotChunks(captured));
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
      await this.logTurn;
      // Standalone: what was proposed commits with this flush and its proposers are answered.
      await this.wal.flush().catch((error: Error) => this.fail(error));
      this.stepDown("closing");
      this.closed = true;
      if (!this.failure) await this.snapshot();
    }
    this.closed = true;
    if (this.commitHintTimer) clearTimeout(this.commitHintTimer);
    if (this.opts.mode === "replicated") await fs.promises.writeFile(commitHintPath(this.opts.dir), String(this.appliedIndex)).catch(() => undefined);
    await this.wal.close();
  }
}

export type StoreResult =
  /**
   * `clock`: the follower's clock when it answered (the leader takes the replicas' median).
   * `repairing`: the follower holds `matched` but lost entries before; not counted for commits yet.
   */
  | { ok: true; matched: number; clock?: number; repairing?: boolean }
  | { ok: false; reason: "stale"; promised: number }
  | { ok: false; reason: "gap" | "mismatch"; hint: number };

/** How often a replica records its commit index for the next restart. */
const COMMIT_HINT_EVERY_MS = 1000;

/** Files a replica keeps next to its log (offline checkers read them too). */
export const COMMIT_HINT_FILE = "commit-hint";
export const PROMISE_FILE = "promised-epoch";

function commitHintPath(dir: string): string {
  return path.join(dir, COMMIT_HINT_FILE);
}

function promisePath(dir: string): string {
  return path.join(dir, PROMISE_FILE);
}

/** Present while the replica is repairing: a restart must not forget that its log lost entries. */
function repairMarkerPath(dir: string): string {
  return path.join(dir, "repairing");
}

async function removeRepairMarker(dir: string): Promise<void> {
  await fs.promises.rm(repairMarkerPath(dir), { force: true });
  await fsyncDir(dir);
}

type OpenedWal = Awaited<ReturnType<typeof Wal.open>>;

function openWal(opts: ShardReplicaOptions, repair: boolean): Promise<OpenedWal> {
  return Wal.open({
    dir: opts.dir,
    fsync: opts.fsync,
    segmentBytesMax: opts.segmentBytesMax ?? SHARD_SEGMENT_BYTES_DEFAULT,
    // A follower one or two batches behind is shipped from memory, not re-read from disk.
    recentEntriesKept: opts.mode === "replicated" ? RECENT_ENTRIES_KEPT : 0,
    repair,
    logger: opts.logger,
  });
}

/**
 * A replica's log in a cluster. Corruption does not stop the node: the replica keeps the verified
 * prefix before the first bad frame (or nothing, when the snapshot is bad), its untrusted files
 * go to `quarantine/<time>/` for an operator, and it starts repairing (see `repairing`). The
 * marker is durable before anything is cut, so a crash midway still restarts it repairing.
 * Keeping the prefix is safe because the replica counts for nothing until the leader has
 * brought it to the leader's log end; the prefix only shortens that catch-up.
 */
async function openReplicatedWal(opts: ShardReplicaOptions): Promise<OpenedWal & { repairing: boolean }> {
  const repairing = fs.existsSync(repairMarkerPath(opts.dir));
  let corruption: WalCorruptionError;
  try {
    return { ...(await openWal(opts, false)), repairing };
  } catch (error) {
    if (!(error instanceof WalCorruptionError)) throw error;
    corruption = error;
  }
  opts.logger.error({ shard: opts.shardId, file: corruption.file, offset: corruption.offset, reason: corruption.reason }, "shard log is corrupt; repairing this replica from the leader");
  await writeNumberFileDurably(repairMarkerPath(opts.dir), Date.now());
  const quarantine = path.join(opts.dir, "quarantine", new Date().toISOString().replace(/[:.]/g, "-"));
  const wholeLog = parseSnapshotFileName(path.basename(corruption.file)) !== null;
  await quarantineLog(opts.dir, quarantine, wholeLog ? null : corruption.file, corruption.message);
  if (!wholeLog) {
    try {
      return { ...(await openWal(opts, true)), repairing: true };
    } catch (error) {
      // A defect the cut cannot get past (a log without its start): keep nothing.
      if (!(error instanceof WalCorruptionError)) throw error;
      opts.logger.error({ shard: opts.shardId, err: error.message }, "no usable prefix; discarding the whole log");
      await quarantineLog(opts.dir, quarantine, null, error.message);
    }
  }
  return { ...(await openWal(opts, false)), repairing: true };
}

/**
 * Keep the log's files in `to` for inspection. `keep` null: move every segment and snapshot out
 * (the replica starts empty). Otherwise they stay for the repair cut: hard links to the files it
 * may delete, a copy of `keep`, the one it truncates in place.
 */
async function quarantineLog(dir: string, to: string, keep: string | null, reason: string): Promise<void> {
  await fs.promises.mkdir(to, { recursive: true });
  await fs.promises.writeFile(path.join(to, "reason.txt"), `${reason}\n`, { flag: "a" });
  for (const name of await fs.promises.readdir(dir)) {
    if (parseSegmentFileName(name) === null && parseSnapshotFileName(name) === null) continue;
    const from = path.join(dir, name);
    const dest = path.join(to, name);
    if (keep === null) await fs.promises.rename(from, dest);
    else if (from === keep) await fs.promises.copyFile(from, dest);
    else await fs.promises.link(from, dest).catch(() => fs.promises.copyFile(from, dest));
  }
  await fsyncDir(to);
  await fsyncDir(dir);
}

function readNumberFile(file: string): number {
  try {
    const n = Number(fs.readFileSync(file, "utf8").trim());
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  } catch {
    return 0;
  }
}

/** Write, fsync, rename, fsync the directory: a promise must survive a crash. */
async function writeNumberFileDurably(file: string, value: number): Promise<void> {
  const tmp = `${file}.tmp`;
  const h = await fs.promises.open(tmp, "w");
  try {
    await h.writeFile(String(value));
    await h.sync();
  } finally {
    await h.close();
  }
  await fs.promises.rename(tmp, file);
  const d = await fs.promises.open(path.dirname(file), "r");
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

function throwIfError(result: unknown): unknown {
  if (result instanceof CronwheelError) throw result;
  return result;
}

function unavailable(cause: Error): CronwheelError {
  return new CronwheelError("unavailable", `shard is not serving: ${cause.message}`, undefined, 5);
}

export function notLeader(shardId: number): CronwheelError {
  return new CronwheelError("unavailable", `this node does not lead shard ${shardId} right now; retry`, undefined, 1);
}
