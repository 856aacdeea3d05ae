/**
 * Raft-style log replication of one shard, over the peer network.
 *
 * Leader side (`Replicator`): per follower a next index and a match index. Entries ship in batches
 * with the previous index and epoch; a follower whose log does not continue there answers with a
 * hint (its applied index, which is committed and so on the leader's log too) and the leader
 * resends from it; a follower behind the leader's snapshot is sent a snapshot. The commit index
 * is the highest index a majority (the leader counted) has durable. A leader that hears from no
 * majority for CLUSTER_TIMING.quorumTimeoutMs (cluster/timing.ts), or is refused for a higher epoch, steps down.
 *
 * Leader recovery (`recoverAndLead`), run by an election's winner before it serves: it makes a
 * majority promise its epoch (they refuse older leaders from then on), takes the most up-to-date
 * log among them (highest last epoch, then highest index), appends its epoch's first record and
 * serves once that record is committed — so every entry a majority had stored survives.
 *
 * Follower side (`handleReplication`): requests from leaders and recovering leaders, checked
 * against the replica's promised epoch.
 */
import { performance } from "node:perf_hooks";
import { Packr } from "msgpackr";
import type { Logger } from "pino";
import { WalError, type LogEntry } from "../wal/index.js";
import type { ShardReplica, StoreResult, TransferSnapshot } from "../src/node/shard-replica.js";
import type { PeerNetwork } from "./peer-network.js";
import { CLUSTER_TIMING, withDeadline } from "./timing.js";

/** A follower's clock reading older than this no longer counts toward the median. */
const CLOCK_SAMPLE_STALE_MS = 60_000;

/**
 * A replica's clock reading and the leader's monotonic time when the answer carrying it arrived.
 * Carried forward on the leader's monotonic clock, it says what that replica's clock reads now —
 * whatever the leader's own wall clock does meanwhile (a jump is seen at once, not on the next
 * answer). The reading is taken when the replica answers, after its own write and fsync: taking
 * it as read mid round trip put a slow replica's clock ahead by half the round trip (two slow
 * followers under load moved a shard's median time 177 ms ahead, and a fire went out that early).
 * Dated at arrival it can only be behind, by the way back: late, which a shard's time catches up.
 */
interface ClockSample {
  clock: number;
  mono: number;
}

function estimateClock(sample: ClockSample | null, mono: number): number | null {
  if (sample === null) return null;
  const age = mono - sample.mono;
  return age < CLOCK_SAMPLE_STALE_MS ? sample.clock + age : null;
}

/** Entries per append: bounds a frame (records are at most ~256 KiB). */
const APPEND_BATCH_MAX = 1024;

/** An entry on the wire: index, epoch and the record's bytes as its frame holds them (no re-encoding). */
export type WireEntry = [index: number, epoch: number, bytes: Uint8Array];

export type ReplicationRequest =
  /** `last`: the leader's last index when it sent this (a repairing follower's target). */
  | { t: "append"; shard: number; epoch: number; prevIndex: number; prevEpoch: number; entries: WireEntry[]; commit: number; last?: number }
  | { t: "snapshot"; shard: number; epoch: number; snapshot: TransferSnapshot; last?: number }
  | { t: "prepare"; shard: number; epoch: number }
  | { t: "fetch"; shard: number; epoch: number; from: number; max: number };

export interface PrepareReply {
  ok: boolean;
  promised: number;
  lastIndex: number;
  lastEpoch: number;
  /** The replica's clock when it answered: a new leader knows the replicas' median from the start. */
  clock: number;
  /** Refused because the replica is repairing its log (it may lack entries it acknowledged). */
  repairing?: boolean;
}

export type FetchReply =
  | { kind: "entries"; prevIndex: number; prevEpoch: number; entries: WireEntry[] }
  | { kind: "snapshot"; snapshot: TransferSnapshot }
  | { kind: "stale"; promised: number };

/** Serve a replication request for a local replica (null: this node holds no replica of it). */
export async function handleReplication(replica: ShardReplica | undefined, req: ReplicationRequest, logger?: Logger): Promise<unknown> {
  if (!replica) throw new Error(`no replica of shard ${req.shard} here`);
  switch (req.t) {
    case "append":
      return replica.storeEntries(req.epoch, req.prevIndex, req.prevEpoch, fromWire(req.entries), req.commit, req.last);
    case "snapshot":
      return replica.installSnapshot(req.epoch, req.snapshot, req.last);
    case "prepare": {
      // Its log may lack entries it acknowledged: counted in a majority, it could hide a commit.
      if (replica.repairing) {
        logger?.warn({ shard: req.shard, epoch: req.epoch }, "refusing to promise: this replica is repairing its log");
        return { ...prepareReply(replica, false), repairing: true } satisfies PrepareReply;
      }
      if (req.epoch < replica.promisedEpoch) return prepareReply(replica, false);
      await replica.promise(req.epoch);
      logger?.info({ shard: req.shard, epoch: req.epoch }, "promised an epoch to a candidate");
      return prepareReply(replica, replica.promisedEpoch === req.epoch);
    }
    case "fetch": {
      if (req.epoch < replica.promisedEpoch) return { kind: "stale", promised: replica.promisedEpoch } satisfies FetchReply;
      return fetchFrom(replica, req.from, req.max);
    }
  }
}

function prepareReply(replica: ShardReplica, ok: boolean): PrepareReply {
  const ix = replica.indexes;
  return { ok, promised: replica.promisedEpoch, lastIndex: ix.appended, lastEpoch: ix.lastEpoch, clock: replica.localNow() };
}

async function fetchFrom(replica: ShardReplica, from: number, max: number): Promise<FetchReply> {
  const log = replica.log;
  const prevEpoch = log.epochAt(from - 1);
  if (from < log.firstIndex || prevEpoch === undefined) return { kind: "snapshot", snapshot: await replica.transferSnapshot() };
  try {
    const entries = await log.readFrom(from, Math.min(max, APPEND_BATCH_MAX), { raw: true });
    return { kind: "entries", prevIndex: from - 1, prevEpoch, entries: toWire(entries) };
  } catch (error) {
    if (error instanceof WalError && error.code === "WAL_COMPACTED") return { kind: "snapshot", snapshot: await replica.transferSnapshot() };
    throw error;
  }
}

/** Records decode with their binary fields copied: the frame they arrived in is not kept. */
const recordPackr = new Packr({ useRecords: false, copyBuffers: true });

function toWire(entries: LogEntry[]): WireEntry[] {
  return entries.map((e) => [e.index, e.epoch, e.bytes ?? recordPackr.pack(e.record)]);
}

/** Entries as the follower stores them: bytes for its log, the decoded record to apply. */
function fromWire(entries: WireEntry[]): LogEntry[] {
  return entries.map(([index, epoch, bytes]) => ({ index, epoch, bytes, record: recordPackr.unpack(bytes) }));
}

// -----------------------------------------------------------------------------------------------
// leader side

interface Progress {
  next: number;
  match: number;
  /** The follower said it is repairing its log: its match does not count for commits yet. */
  repairing: boolean;
  /** The follower's clock reading from its last answer, and when (monotonic) it was read. */
  clockSample: ClockSample | null;
  inflight: boolean;
  /** performance.now() of the last answer (any answer: the follower is reachable). */
  lastHeard: number;
  retryAt: number;
}

export class Replicator {
  private readonly progress = new Map<string, Progress>();
  /** clockCorrection's working space: this node's offset and one per follower. */
  private readonly offsetScratch: number[];
  private heartbeat: NodeJS.Timeout | null = null;
  private kickScheduled = false;
  private stopped = false;

  constructor(
    private readonly replica: ShardReplica,
    private readonly peers: PeerNetwork,
    private readonly followers: string[],
    private readonly epoch: number,
    private readonly logger: Logger,
    private readonly onLost: (reason: string) => void,
    /** Clock readings taken during leader recovery, so the first tick already uses the median. */
    initialClockSamples: ReadonlyMap<string, ClockSample> = new Map(),
  ) {
    const next = replica.indexes.appended + 1;
    this.offsetScratch = new Array<number>(followers.length + 1).fill(0);
    const now = performance.now();
    for (const f of followers) {
      this.progress.set(f, { next, match: 0, repairing: false, clockSample: initialClockSamples.get(f) ?? null, inflight: false, lastHeard: now, retryAt: 0 });
    }
  }

  /** Replicas counted for a majority: the followers and the leader. */
  private get size(): number {
    return this.followers.length + 1;
  }

  /** The highest index a majority has durable, given the leader's own durable index. */
  quorum(ownDurable: number): number {
    const matches = [ownDurable, ...[...this.progress.values()].map((p) => (p.repairing ? 0 : p.match))].sort((a, b) => b - a);
    return matches[Math.floor(this.size / 2)]!;
  }

  start(): void {
    this.heartbeat = setInterval(() => this.onHeartbeat(), CLUSTER_TIMING.heartbeatMs);
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
  }

  /** New entries (or a new commit index) to ship: once per event-loop turn. */
  kick(): void {
    if (this.kickScheduled || this.stopped) return;
    this.kickScheduled = true;
    setImmediate(() => {
      this.kickScheduled = false;
      for (const [id, p] of this.progress) if (!p.inflight && p.next <= this.replica.log.appendedIndex) void this.ship(id, p, false);
    });
  }

  /**
   * What to add to `local` (this node's clock, read once by the caller) to get the median of the
   * replicas' clocks: this node's counted as offset 0, a follower's estimated from its last
   * reading carried forward on the monotonic clock. With one clock wrong in three, the median is a
   * right one; with two known, the earlier. Computed afresh from the caller's reading each time:
   * a correction kept from before a step of the local clock, added to a reading after it, would
   * put the shard's time ahead by the step — and a record's time can never go back.
   */
  clockCorrection(local: number): number {
    // Asked for every record and every dispatch pass: no allocation, an insertion sort of ≤ 5.
    const mono = performance.now();
    const offsets = this.offsetScratch;
    let n = 0;
    offsets[n++] = 0;
    for (const p of this.progress.values()) {
      const estimate = estimateClock(p.clockSample, mono);
      if (estimate === null) continue;
      let i = n++;
      for (; i > 0 && offsets[i - 1]! > estimate - local; i--) offsets[i] = offsets[i - 1]!;
      offsets[i] = estimate - local;
    }
    // With an even count, the lower middle: between two clocks that disagree, the earlier one —
    // a shard whose time ran ahead would fire early and could not take it back; late can catch up.
    // Whole ms: record times are integers (the timing wheel refuses fractions).
    return Math.round(offsets[(n - 1) >> 1]!);
  }

  /** Follower → match index, for `admin status` (replication lag). */
  matchIndexes(): Record<string, number> {
    return Object.fromEntries([...this.progress].map(([id, p]) => [id, p.match]));
  }

  private onHeartbeat(): void {
    if (this.stopped) return;
    const now = performance.now();
    let reachable = 1;
    for (const p of this.progress.values()) if (now - p.lastHeard < CLUSTER_TIMING.quorumTimeoutMs) reachable++;
    if (reachable * 2 <= this.size) {
      this.onLost(`no majority heard from in ${CLUSTER_TIMING.quorumTimeoutMs} ms`);
      return;
    }
    // Empty appends keep followers from deposing us and carry the commit index.
    for (const [id, p] of this.progress) if (!p.inflight && now >= p.retryAt) void this.ship(id, p, true);
  }

  private async ship(id: string, p: Progress, heartbeat: boolean): Promise<void> {
    p.inflight = true;
    try {
      let first = true;
      while (!this.stopped && (first || p.next <= this.replica.log.appendedIndex)) {
        first = false;
        const reply = await this.shipOnce(id, p, heartbeat);
        p.lastHeard = performance.now();
        if (reply.ok && reply.clock !== undefined) p.clockSample = { clock: reply.clock, mono: p.lastHeard };
        if (reply.ok) {
          p.repairing = reply.repairing === true;
          p.match = Math.max(p.match, reply.matched);
          p.next = Math.max(p.next, reply.matched + 1);
          this.replica.recomputeCommit();
        } else if (reply.reason === "stale") {
          this.onLost(`follower ${id} promised epoch ${reply.promised}`);
          return;
        } else {
          p.next = Math.max(1, reply.hint + 1);
          p.match = Math.min(p.match, reply.hint);
        }
      }
    } catch (error) {
      p.retryAt = performance.now() + CLUSTER_TIMING.heartbeatMs;
      this.logger.debug({ shard: this.replica.shardId, follower: id, err: (error as Error).message }, "append failed");
    } finally {
      p.inflight = false;
    }
  }

  private async shipOnce(id: string, p: Progress, heartbeat: boolean): Promise<StoreResult> {
    const log = this.replica.log;
    const shard = this.replica.shardId;
    const prevIndex = p.next - 1;
    const prevEpoch = log.epochAt(prevIndex);
    if (prevIndex > log.appendedIndex) {
      p.next = log.appendedIndex + 1;
      return this.shipOnce(id, p, heartbeat);
    }
    let entries: LogEntry[] | null = null;
    if (prevEpoch !== undefined && p.next >= log.firstIndex) {
      try {
        entries = heartbeat && p.next > log.appendedIndex ? [] : await log.readFrom(p.next, APPEND_BATCH_MAX, { raw: true });
      } catch (error) {
        if (!(error instanceof WalError && error.code === "WAL_COMPACTED")) throw error;
      }
    }
    if (entries === null || prevEpoch === undefined) {
      const snapshot = await this.replica.transferSnapshot();
      this.logger.info({ shard, follower: id, index: snapshot.index }, "sending a snapshot to a follower behind the log");
      return this.peers.request<StoreResult>(id, { t: "snapshot", shard, epoch: this.epoch, snapshot, last: log.appendedIndex } satisfies ReplicationRequest, CLUSTER_TIMING.snapshotTimeoutMs);
    }
    const req: ReplicationRequest = { t: "append", shard, epoch: this.epoch, prevIndex, prevEpoch, entries: toWire(entries), commit: this.replica.commitIndex, last: log.appendedIndex };
    return this.peers.request<StoreResult>(id, req, CLUSTER_TIMING.appendTimeoutMs);
  }
}

// -----------------------------------------------------------------------------------------------
// leader recovery

/**
 * Run by the winner of the shard's election in `epoch`: collect a majority's promises, adopt the
 * most up-to-date log among them, then lead. Resolves when the replica serves; throws (after
 * stepping down) when it cannot.
 */
export async function recoverAndLead(opts: {
  nodeId: string;
  replica: ShardReplica;
  replicas: string[];
  epoch: number;
  peers: PeerNetwork;
  logger: Logger;
  onLost: (reason: string) => void;
}): Promise<Replicator> {
  const { nodeId, replica, epoch, peers, logger } = opts;
  const shard = replica.shardId;
  const others = opts.replicas.filter((r) => r !== nodeId);
  if (replica.repairing) throw new Error("this replica is repairing its log; it cannot lead");
  await replica.promise(epoch);
  if (replica.promisedEpoch !== epoch) throw new Error(`epoch ${epoch} is older than promised ${replica.promisedEpoch}`);
  const own: PrepareReply & { node: string } = { node: nodeId, ...prepareReply(replica, true) };
  const clockSamples = new Map<string, ClockSample>();
  const promises = await majorityOf(
    others.map((peer) =>
      peers.request<PrepareReply>(peer, { t: "prepare", shard, epoch } satisfies ReplicationRequest, CLUSTER_TIMING.prepareTimeoutMs).then((r) => {
        if (r.repairing) throw new Error(`${peer} is repairing its log`);
        if (!r.ok) throw new Error(`${peer} promised epoch ${r.promised}`);
        clockSamples.set(peer, { clock: r.clock, mono: performance.now() });
        return { node: peer, ...r };
      }),
    ),
    Math.floor(opts.replicas.length / 2), // plus our own promise
  );
  const best = [own, ...promises].reduce((a, b) => (b.lastEpoch > a.lastEpoch || (b.lastEpoch === a.lastEpoch && b.lastIndex > a.lastIndex) ? b : a));
  if (best.node !== nodeId) await adoptLog(replica, best.node, best.lastIndex, epoch, peers);
  logger.info({ shard, epoch, promisedBy: promises.map((p) => p.node), adoptedFrom: best.node, lastIndex: best.lastIndex, lastEpoch: best.lastEpoch }, "leader recovered the log; taking over");
  const replicator = new Replicator(replica, peers, others, epoch, logger, opts.onLost, clockSamples);
  const leading = replica.lead(
    nodeId,
    epoch,
    (d) => replicator.quorum(d),
    () => replicator.kick(),
    (local) => replicator.clockCorrection(local),
  );
  replicator.start();
  try {
    await withDeadline(leading, CLUSTER_TIMING.prepareTimeoutMs * 2, "committing the epoch's first record");
  } catch (error) {
    replicator.stop();
    replica.stepDown((error as Error).message);
    throw error;
  }
  return replicator;
}

/** Pull the entries `from` has beyond our applied index (or its snapshot) until we end where it does. */
async function adoptLog(replica: ShardReplica, from: string, lastIndex: number, epoch: number, peers: PeerNetwork): Promise<void> {
  const shard = replica.shardId;
  let next = replica.indexes.applied + 1;
  while (next <= lastIndex) {
    const reply = await peers.request<FetchReply>(from, { t: "fetch", shard, epoch, from: next, max: APPEND_BATCH_MAX } satisfies ReplicationRequest, CLUSTER_TIMING.snapshotTimeoutMs);
    let stored: StoreResult;
    if (reply.kind === "stale") throw new Error(`${from} promised epoch ${reply.promised}`);
    if (reply.kind === "snapshot") stored = await replica.installSnapshot(epoch, reply.snapshot);
    else {
      if (reply.entries.length === 0) throw new Error(`${from} has no entries from ${next} though it reported ${lastIndex}`);
      stored = await replica.storeEntries(epoch, reply.prevIndex, reply.prevEpoch, fromWire(reply.entries), 0);
    }
    if (!stored.ok) throw new Error(`adopting the log of ${from} failed at ${next}: ${stored.reason}`);
    next = stored.matched + 1;
  }
}

/** Resolves with the first `needed` successes; rejects once that is impossible. */
function majorityOf<T>(attempts: Promise<T>[], needed: number): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const ok: T[] = [];
    const errors: string[] = [];
    if (needed <= 0) return resolve(ok);
    for (const a of attempts) {
      a.then(
        (v) => {
          ok.push(v);
          if (ok.length === needed) resolve(ok);
        },
        (e: Error) => {
          errors.push(e.message);
          if (attempts.length - errors.length < needed) reject(new Error(`no majority: ${errors.join("; ")}`));
        },
      );
    }
  });
}
