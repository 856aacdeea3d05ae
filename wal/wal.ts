/**
 * The write-ahead log of one shard replica: segment files of checksummed frames, group commit
 * with one write and one fsync per batch, snapshots that let covered segments go, and recovery
 * that cuts a torn tail but refuses a corrupt middle (see recovery.ts for the rules).
 *
 * Driver order (the shard driver in src/node/ follows it; the WAL asserts what it can):
 *
 *   1. append(epoch, records)   synchronous: assigns indexes, encodes and frames into memory.
 *                               Nothing is on disk yet; appendedIndex moves.
 *   2. flush()                  group commit: everything appended before the call is written and
 *                               fsynced in as few batches as possible; concurrent callers share a
 *                               batch; appends made while an fsync runs form the next batch.
 *   3. durable                  flush() resolves / onDurable fires with durableIndex. Only now may
 *                               the entries count toward a quorum (and be acknowledged).
 *   4. caller applies           the state machine applies committed entries; the WAL never does.
 *
 * Invariant, checked after every change: durableIndex <= writtenIndex <= appendedIndex.
 *
 * Example (a leader):
 *   const { wal, snapshot, entries } = await Wal.open({ dir, fsync: "batch" });
 *   const { lastIndex } = wal.append(epoch, [record1, record2]);
 *   await wal.flush();                // wal.durableIndex >= lastIndex
 *
 * A follower (src/node/shard-replica.ts, storeEntries) uses truncateSuffix(i) + appendEntries(entries)
 * to replace a conflicting suffix; a leader's replicator (cluster/replication.ts) and a recovering
 * leader use readFrom(i, n) to ship entries. All file changes (batch
 * writes, truncations, deletions of compacted segments, snapshot installs) run one at a time, in
 * call order, on a single writer queue; reads run beside it and destructive steps wait for them.
 *
 * Crash-safety choices, and why:
 * - A segment is fsynced before the next segment file is created, so a torn write can only ever
 *   be at the tail of the last segment (what recovery tolerates).
 * - Truncation deletes later segments (newest first) before cutting the segment that keeps the
 *   prefix, so a crash midway leaves a contiguous log, never a gap.
 * - A snapshot is written to a temporary file, fsynced, renamed and the directory fsynced before
 *   any segment it covers is deleted.
 * - If a write or fsync fails the WAL stops (WAL_FAILED): after a failed fsync the page cache may
 *   not match the disk, so the only safe continuation is reopening, which re-reads the disk.
 * - fsync "off" skips every fsync of appends and truncations (snapshots are still fsynced): a
 *   process crash loses nothing, an OS crash may need `repair: true`.
 *
 * Records are plain data: msgpack has no Map or Set, so they come back from disk as an object and
 * an array (Dates, Uint8Arrays and bigints round-trip). One process per directory: there is no
 * lock file, the node that owns the shard must ensure it.
 */

import fs, { promises as fsp } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { Packr } from "msgpackr";
import { WalCorruptionError, WalError, walAssert } from "./errors.js";
import { ensureDirDurable, fsyncDir, readRange, segmentFileName, snapshotFileName, syncHandle, writeAll, WRITE_CALL_BYTES_MAX } from "./files.js";
import { FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, frameBytesFor, isLogPosition, type LogEntry, parseFrameAt, parseFrameRaw, writeFrame } from "./frame.js";
import { type EpochRun, type RecoveredLog, type RecoveryReport, recoverLog, type WalLogger } from "./recovery.js";
import { encodeSnapshot, type EncodedSnapshot, type Snapshot, writeSnapshotFile } from "./snapshot.js";
import { FaultHooks } from "./fault-hooks.js";

export type FsyncMode = "always" | "batch" | "off";

export interface WalOptions {
  /** One directory per shard log; created if missing. */
  dir: string;
  /** always: one write+fsync per append() call; batch: group commit; off: write, never fsync. */
  fsync: FsyncMode;
  /** Roll to a new segment file before one would grow beyond this. Default 64 MiB. */
  segmentBytesMax?: number;
  /** Bound on the bytes of one group-commit write. Default 4 MiB. */
  batchBytesMax?: number;
  /** append() refuses (WAL_BACKPRESSURE) while this many bytes wait to be written. Default 256 MiB. */
  pendingBytesMax?: number;
  /** Cut the log at a corrupt frame in the middle instead of refusing to start. */
  repair?: boolean;
  /**
   * Written entries kept in memory (with their bytes) besides the unwritten ones, so a leader
   * shipping to followers a little behind reads memory, not disk. Default 0.
   */
  recentEntriesKept?: number;
  /** pino-compatible. */
  logger?: WalLogger;
  /** Test-only storage faults (fault-hooks.ts); default: what the environment asks for. */
  faults?: FaultHooks | null;
}

export interface WalStats {
  batches: number;
  records: number;
  lastBatchRecords: number;
  lastFsyncMs: number;
}

export const SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
export const BATCH_BYTES_MAX_DEFAULT = 4 * 1024 * 1024;
export const PENDING_BYTES_MAX_DEFAULT = 256 * 1024 * 1024;
const SEGMENT_BYTES_MIN = 1024;
const CHUNK_BYTES_INITIAL = 64 * 1024;
const CHUNK_POOL_BUFFERS_MAX = 4;
/** Drop consumed entries from the front of the in-memory tail once this many accumulate. */
const MEM_TAIL_COMPACT_ENTRIES_MIN = 4096;

const SILENT_LOGGER: WalLogger = { info() {}, warn() {} };

/** One segment file as the WAL sees it (its logical content may be ahead of the disk). */
interface Segment {
  readonly firstIndex: number;
  readonly path: string;
  /** frameOffsets[i] is the byte offset of entry firstIndex + i. */
  frameOffsets: number[];
  /** Logical size: written bytes plus bytes queued for this file. */
  sizeBytes: number;
  /** Bytes handed to the OS (written, maybe not yet fsynced). */
  writtenBytes: number;
  fileExists: boolean;
  /** Open O_APPEND handle while the writer uses it; closed once a later segment exists. */
  handle: FileHandle | null;
}

/** Consecutive frames for one segment, encoded and waiting in memory for the writer. */
class Chunk {
  readonly kind = "chunk" as const;
  buf: Buffer;
  used = 0;
  lastIndex: number;

  constructor(
    readonly seg: Segment,
    readonly fileOffset: number,
    readonly firstSeq: number,
    readonly firstIndex: number,
    buf: Buffer,
  ) {
    this.buf = buf;
    this.lastIndex = firstIndex - 1;
  }

  appendFrame(index: number, epoch: number, record: Uint8Array, frameBytes: number): void {
    if (this.used + frameBytes > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + frameBytes));
      this.buf.copy(grown, 0, 0, this.used);
      this.buf = grown;
    }
    const end = writeFrame(this.buf, this.used, index, epoch, record);
    walAssert(end === this.used + frameBytes, "frame size mismatch");
    this.used = end;
    this.lastIndex = index;
  }
}

/** A file operation other than a batch write, run in queue order by the writer. */
interface Op {
  readonly kind: "op";
  readonly firstSeq: number;
  exec(): Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

type QueueItem = Chunk | Op;

interface Inflight {
  firstSeq: number;
  /** Last index of the batch, lowered if a truncation cuts into it while it is written. */
  lastIndex: number;
  /** Set when a snapshot install discarded the whole log under this batch. */
  voided: boolean;
}

interface FlushWaiter {
  seq: number;
  resolve(durableIndex: number): void;
  reject(err: unknown): void;
}

interface TruncatePlan {
  seg: Segment;
  cutOffset: number;
  removed: Segment[];
}

export class Wal {
  private readonly dir: string;
  private readonly fsyncMode: FsyncMode;
  private readonly fsyncOn: boolean;
  private readonly segmentBytesMax: number;
  private readonly batchBytesMax: number;
  private readonly pendingBytesMax: number;
  private readonly logger: WalLogger;
  private readonly packr: Packr;
  /** Test-only storage faults (null: off, and nothing is done). */
  private readonly faults: FaultHooks | null;

  private segments: Segment[];
  /** Writer FIFO: chunks of frames and file operations, in the order they must reach the disk. */
  private queue: QueueItem[] = [];
  /** The queued chunk new frames go into; null forces a new chunk (after an op, in "always" mode). */
  private openChunk: Chunk | null = null;
  private inflight: Inflight | null = null;
  private runningOpSeq: number | null = null;
  private pendingBytes = 0;
  private readonly bufferPool: Buffer[] = [];

  /** Entries in (writtenIndex, appendedIndex], served by readFrom before they reach the file. */
  private memTail: LogEntry[] = [];
  private memTailHead = 0;
  private readonly recentEntriesKept: number;
  private epochRuns: EpochRun[];

  private _appendedIndex: number;
  private _durableIndex: number;
  /** Last index whose frame the OS has (written; fsynced only if <= durableIndex). */
  private writtenIndex: number;
  /** Last index handed to the writer (written or being written). */
  private takenIndex: number;

  private _snapshotIndex: number;
  private snapshotEpoch: number;
  private snapshotFile: string | null;
  /** While a snapshot at this index is being saved, nothing at or below it may be truncated. */
  private snapshotFloor = 0;
  private snapshotInProgress: Promise<void> | null = null;

  /** Every append call and op takes a sequence number; flush() waits for durableSeq to reach it. */
  private opSeq = 0;
  private durableSeq = 0;
  private waiters: FlushWaiter[] = [];
  private readonly listeners: Array<(durableIndex: number) => void> = [];
  private readonly failureListeners: Array<(failure: WalError) => void> = [];
  private writerRunning = false;
  private readonly readsInFlight = new Set<Promise<unknown>>();

  private closing = false;
  private closed = false;
  private closePromise: Promise<void> | null = null;
  private failure: Error | null = null;

  private statBatches = 0;
  private statRecords = 0;
  private statLastBatchRecords = 0;
  private statLastFsyncMs = 0;

  static async open(
    opts: WalOptions,
  ): Promise<{ wal: Wal; snapshot: Snapshot | null; entries: LogEntry[]; report: RecoveryReport }> {
    validateOptions(opts);
    const logger = opts.logger ?? SILENT_LOGGER;
    const started = performance.now();
    await ensureDirDurable(opts.dir);
    // Plain msgpack (no records extension): a frame decodes on its own. copyBuffers: binary
    // fields of recovered records must not pin whole segment reads in memory.
    const packr = new Packr({ useRecords: false, copyBuffers: true });
    const faults = opts.faults === undefined ? FaultHooks.fromEnv() : opts.faults;
    const recovered = await recoverLog(opts.dir, opts.repair ?? false, logger, packr, faults);
    const wal = new Wal(opts, logger, packr, recovered, faults);
    logger.info(
      {
        dir: opts.dir,
        ...recovered.report,
        snapshotIndex: recovered.snapshot?.index ?? 0,
        lastIndex: recovered.lastIndex,
        durationMs: Math.round(performance.now() - started),
      },
      "wal: recovered",
    );
    return { wal, snapshot: recovered.snapshot, entries: recovered.entries, report: recovered.report };
  }

  private constructor(opts: WalOptions, logger: WalLogger, packr: Packr, recovered: RecoveredLog, faults: FaultHooks | null) {
    this.faults = faults;
    this.dir = opts.dir;
    this.fsyncMode = opts.fsync;
    this.fsyncOn = opts.fsync !== "off";
    this.segmentBytesMax = opts.segmentBytesMax ?? SEGMENT_BYTES_MAX_DEFAULT;
    this.recentEntriesKept = opts.recentEntriesKept ?? 0;
    this.batchBytesMax = opts.batchBytesMax ?? BATCH_BYTES_MAX_DEFAULT;
    this.pendingBytesMax = opts.pendingBytesMax ?? PENDING_BYTES_MAX_DEFAULT;
    this.logger = logger;
    this.packr = packr;
    this.segments = recovered.segments.map((s) => ({
      firstIndex: s.firstIndex,
      path: s.path,
      frameOffsets: s.frameOffsets,
      sizeBytes: s.sizeBytes,
      writtenBytes: s.sizeBytes,
      fileExists: true,
      handle: null,
    }));
    this.epochRuns = recovered.epochRuns;
    this._appendedIndex = recovered.lastIndex;
    this._durableIndex = recovered.lastIndex;
    this.writtenIndex = recovered.lastIndex;
    this.takenIndex = recovered.lastIndex;
    this._snapshotIndex = recovered.snapshot?.index ?? 0;
    this.snapshotEpoch = recovered.snapshot?.epoch ?? 0;
    this.snapshotFile = recovered.snapshot ? path.join(this.dir, snapshotFileName(recovered.snapshot.index)) : null;
    this.trimEpochRuns();
    this.checkPositions();
  }

  // ---------------------------------------------------------------- positions

  /** Last index appended (in memory or on disk). */
  get appendedIndex(): number {
    return this._appendedIndex;
  }

  /** Last index known durable (fsynced; or written, with fsync "off"). */
  get durableIndex(): number {
    return this._durableIndex;
  }

  /** Lowest index readFrom can return; lower ones are only in the snapshot. */
  get firstIndex(): number {
    return this.segments[0]?.firstIndex ?? this._appendedIndex + 1;
  }

  /** Index of the newest snapshot, 0 if none. */
  get snapshotIndex(): number {
    return this._snapshotIndex;
  }

  /** Epoch of the last entry (or of the snapshot when no entry follows it), 0 if empty. */
  lastEpoch(): number {
    const run = this.epochRuns[this.epochRuns.length - 1];
    if (run !== undefined) return run.epoch;
    return this._appendedIndex === this._snapshotIndex ? this.snapshotEpoch : 0;
  }

  /**
   * Epoch of the entry at `index`: for the replication consistency check (previous index/epoch).
   * Defined for the snapshot's index and for [firstIndex, appendedIndex]; index 0 has epoch 0.
   */
  epochAt(index: number): number | undefined {
    if (!isLogPosition(index) || index > this._appendedIndex) return undefined;
    if (index === this._snapshotIndex) return this.snapshotEpoch;
    if (index < this.firstIndex) return undefined;
    const runs = this.epochRuns;
    let lo = 0;
    let hi = runs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (runs[mid]!.firstIndex <= index) lo = mid;
      else hi = mid - 1;
    }
    const run = runs[lo];
    return run !== undefined && run.firstIndex <= index ? run.epoch : undefined;
  }

  stats(): WalStats {
    return {
      batches: this.statBatches,
      records: this.statRecords,
      lastBatchRecords: this.statLastBatchRecords,
      lastFsyncMs: this.statLastFsyncMs,
    };
  }

  onDurable(listener: (durableIndex: number) => void): void {
    this.listeners.push(listener);
  }

  /** Called once, if the log fails: how a startFlush() caller learns of it. */
  onFailure(listener: (failure: WalError) => void): void {
    this.failureListeners.push(listener);
  }

  // ---------------------------------------------------------------- appending

  /** Appends records at the next indexes with one epoch. Synchronous; nothing is written yet. */
  append(epoch: number, records: readonly unknown[]): { firstIndex: number; lastIndex: number } {
    this.checkWritable();
    if (!isLogPosition(epoch)) throw badArgument(`epoch must be a non-negative safe integer, got ${epoch}`);
    if (!Array.isArray(records)) throw badArgument("records must be an array");
    const lastEpoch = this.lastEpoch();
    if (epoch < lastEpoch) throw badArgument(`epoch ${epoch} is lower than the log's last epoch ${lastEpoch}`);
    this.checkBackpressure();
    const firstIndex = this._appendedIndex + 1;
    const seq = ++this.opSeq;
    try {
      for (let i = 0; i < records.length; i++) this.appendOne(this._appendedIndex + 1, epoch, records[i], seq);
    } catch (err) {
      this.rollBackAppend(firstIndex, err);
    }
    if (this.fsyncMode === "always") this.openChunk = null; // one append call per write+fsync
    this.checkPositions();
    return { firstIndex, lastIndex: this._appendedIndex };
  }

  /**
   * Appends entries that already carry indexes and epochs (a follower storing what its leader
   * sent). They must continue appendedIndex consecutively with non-decreasing epochs.
   */
  appendEntries(entries: readonly LogEntry[]): void {
    this.checkWritable();
    if (!Array.isArray(entries)) throw badArgument("entries must be an array");
    let expected = this._appendedIndex + 1;
    let epoch = this.lastEpoch();
    for (const e of entries) {
      if (!e || e.index !== expected) throw badArgument(`entry index ${e?.index} does not continue the log at ${expected}`);
      if (!isLogPosition(e.epoch) || e.epoch < epoch) throw badArgument(`entry ${e.index} has epoch ${e.epoch} below ${epoch}`);
      expected++;
      epoch = e.epoch;
    }
    this.checkBackpressure();
    const firstIndex = this._appendedIndex + 1;
    const seq = ++this.opSeq;
    try {
      for (const e of entries) this.appendOne(e.index, e.epoch, e.record, seq, e.bytes);
    } catch (err) {
      this.rollBackAppend(firstIndex, err);
    }
    if (this.fsyncMode === "always") this.openChunk = null;
    this.checkPositions();
  }

  /** `encoded`: the record's bytes when they are at hand (a follower storing what it was sent). */
  private appendOne(index: number, epoch: number, record: unknown, seq: number, encoded: Uint8Array = this.packr.pack(record)): void {
    const frameBytes = frameBytesFor(index, epoch, encoded.length);
    if (frameBytes - FRAME_HEADER_BYTES > FRAME_BODY_BYTES_MAX) {
      throw badArgument(`record at index ${index} encodes to ${encoded.length} bytes, over ${FRAME_BODY_BYTES_MAX}`);
    }
    const seg = this.segmentFor(index, frameBytes);
    const chunk = this.chunkFor(seg, frameBytes, seq, index);
    const offset = seg.sizeBytes;
    walAssert(chunk.fileOffset + chunk.used === offset, "chunk does not end where its segment ends");
    chunk.appendFrame(index, epoch, encoded, frameBytes);
    seg.frameOffsets.push(offset);
    seg.sizeBytes += frameBytes;
    this.pendingBytes += frameBytes;
    const lastRun = this.epochRuns[this.epochRuns.length - 1];
    if (lastRun === undefined || lastRun.epoch !== epoch) this.epochRuns.push({ firstIndex: index, epoch });
    this.memTail.push({ index, epoch, record, bytes: encoded });
    this._appendedIndex = index;
  }

  /** The segment the frame of `index` goes into, rolling over when the current one is full. */
  private segmentFor(index: number, frameBytes: number): Segment {
    const last = this.segments[this.segments.length - 1];
    if (last !== undefined) {
      walAssert(last.firstIndex + last.frameOffsets.length === index, `segment ${last.path} does not end at ${index - 1}`);
      if (last.sizeBytes === 0 || last.sizeBytes + frameBytes <= this.segmentBytesMax) return last;
    }
    const seg: Segment = {
      firstIndex: index,
      path: path.join(this.dir, segmentFileName(index)),
      frameOffsets: [],
      sizeBytes: 0,
      writtenBytes: 0,
      fileExists: false,
      handle: null,
    };
    this.segments.push(seg);
    return seg;
  }

  private chunkFor(seg: Segment, frameBytes: number, seq: number, index: number): Chunk {
    const open = this.openChunk;
    if (open !== null && open.seg === seg && open.used + frameBytes <= this.batchBytesMax) return open;
    const buf = this.bufferPool.pop() ?? Buffer.allocUnsafe(Math.max(CHUNK_BYTES_INITIAL, frameBytes));
    const chunk = new Chunk(seg, seg.sizeBytes, seq, index, buf);
    this.queue.push(chunk);
    this.openChunk = chunk;
    return chunk;
  }

  /** An append call is all or nothing: undo the frames it queued, then report the cause. */
  private rollBackAppend(firstIndex: number, err: unknown): never {
    if (this._appendedIndex >= firstIndex) {
      walAssert(firstIndex > this.takenIndex, "rolled-back frames reached the writer");
      this.cutInMemory(firstIndex);
    }
    if (err instanceof WalError) throw err;
    throw badArgument(`append: cannot encode record: ${(err as Error)?.message ?? String(err)}`, err);
  }

  private checkBackpressure(): void {
    if (this.pendingBytes >= this.pendingBytesMax) {
      throw new WalError(
        "WAL_BACKPRESSURE",
        `${this.pendingBytes} bytes wait to be written (pendingBytesMax ${this.pendingBytesMax}); flush first`,
      );
    }
  }

  // ---------------------------------------------------------------- group commit

  /**
   * Resolves with durableIndex once everything appended (or truncated) before the call is on
   * disk. Callers that overlap share batches; this never issues an fsync per record.
   */
  /**
   * flush() for a caller that learns of durability from onDurable and of failure from onFailure:
   * no promise and no waiter per commit (a leader commits thousands of times a second).
   */
  startFlush(): void {
    if (!this.failure && !this.closed) this.kick();
  }

  flush(): Promise<number> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(closedError());
    const seq = this.opSeq;
    if (seq <= this.durableSeq) return Promise.resolve(this._durableIndex);
    return new Promise<number>((resolve, reject) => {
      this.waiters.push({ seq, resolve, reject });
      this.kick();
    });
  }

  /** Starts the writer if it is idle; with nothing queued, settles waiters whose work vanished. */
  private kick(): void {
    if (this.writerRunning || this.failure) return;
    if (this.queue.length === 0) {
      this.advanceDurableSeq();
      return;
    }
    this.writerRunning = true;
    this.pump();
  }

  /**
   * The writer: one queued item at a time, until the queue is empty or the log failed. The usual
   * batch (one chunk for the open segment, no fault hooks) goes through fs callbacks alone; a
   * thousand commits a second through async functions and promises was most of a node's garbage
   * at 1,000 executions/s. Everything else (ops, new files, several chunks) takes the async path.
   */
  private pump(): void {
    if (this.failure || this.queue.length === 0) {
      this.writerRunning = false;
      return;
    }
    const head = this.queue[0]!;
    if (head.kind === "chunk" && this.isPlainBatch(head)) return this.writePlainBatch();
    (head.kind === "op" ? this.runOp(head) : this.writeBatch()).then(this.stepDone, this.stepFailed);
  }

  private readonly stepDone = (): void => {
    this.advanceDurableSeq();
    this.pump();
  };

  private readonly stepFailed = (err: unknown): void => {
    this.fail(err);
    this.writerRunning = false;
  };

  /** The next batch is this one chunk, for the open file of the active segment, with no fault hooks. */
  private isPlainBatch(head: Chunk): boolean {
    const next = this.queue[1];
    return (
      this.faults === null &&
      (next === undefined || next.kind !== "chunk") &&
      head.seg === this.segments[this.segments.length - 1] &&
      head.seg.fileExists &&
      head.seg.handle !== null &&
      head.used <= WRITE_CALL_BYTES_MAX
    );
  }

  /** The batch writePlainBatch has in flight (the writer runs one at a time). */
  private plain: { chunk: Chunk; inflight: Inflight; written: number; syncStartedAt: number } | null = null;

  // Each step of the plain batch runs in an fs callback: what it throws (an invariant) fails the
  // log, as a rejection does on the async path, instead of escaping into the event loop.

  private writePlainBatch(): void {
    try {
      const { taken, inflight } = this.beginBatch();
      const chunk = taken[0]!;
      walAssert(chunk.seg.writtenBytes === chunk.fileOffset, `write to ${chunk.seg.path} at ${chunk.fileOffset}, file has ${chunk.seg.writtenBytes}`);
      this.plain = { chunk, inflight, written: 0, syncStartedAt: 0 };
      fs.write(chunk.seg.handle!.fd, chunk.buf, 0, chunk.used, null, this.onPlainWritten);
    } catch (err) {
      this.stepFailed(err);
    }
  }

  private readonly onPlainWritten = (err: Error | null, n: number): void => {
    const p = this.plain!;
    if (err) return this.stepFailed(err);
    try {
      p.written += n;
      if (p.written < p.chunk.used) {
        fs.write(p.chunk.seg.handle!.fd, p.chunk.buf, p.written, p.chunk.used - p.written, null, this.onPlainWritten);
        return;
      }
      p.chunk.seg.writtenBytes += p.written;
      if (!this.fsyncOn) return this.onPlainSynced(null);
      p.syncStartedAt = performance.now();
      fs.fsync(p.chunk.seg.handle!.fd, this.onPlainSynced);
    } catch (error) {
      this.stepFailed(error);
    }
  };

  private readonly onPlainSynced = (err: Error | null): void => {
    const p = this.plain!;
    this.plain = null;
    if (err) return this.stepFailed(err);
    try {
      this.endBatch([p.chunk], p.inflight, this.fsyncOn ? performance.now() - p.syncStartedAt : 0);
      this.checkPositions();
      if (!p.inflight.voided) this.notifyDurable();
    } catch (error) {
      return this.stepFailed(error);
    }
    this.stepDone();
  };

  /** Takes the next batch's chunks from the queue and marks them in flight. */
  private beginBatch(): { taken: Chunk[]; inflight: Inflight } {
    const taken = this.takeBatch();
    const inflight: Inflight = { firstSeq: taken[0]!.firstSeq, lastIndex: taken[taken.length - 1]!.lastIndex, voided: false };
    this.inflight = inflight;
    this.takenIndex = inflight.lastIndex;
    return { taken, inflight };
  }

  /** A batch is on disk (fsynced, when fsync is on): publish it, count it, reuse its buffers. */
  private endBatch(taken: Chunk[], inflight: Inflight, fsyncMs: number): void {
    this.inflight = null;
    if (!inflight.voided) {
      this.writtenIndex = Math.max(this.writtenIndex, inflight.lastIndex);
      this._durableIndex = Math.max(this._durableIndex, inflight.lastIndex);
      this.trimMemTail();
    }
    const records = inflight.lastIndex - taken[0]!.firstIndex + 1;
    this.statBatches++;
    this.statRecords += records;
    this.statLastBatchRecords = records;
    this.statLastFsyncMs = fsyncMs;
    for (const c of taken) this.releaseBuffer(c.buf);
  }

  /** Takes queued chunks (bounded by batchBytesMax), writes them, fsyncs once, publishes. */
  private async writeBatch(): Promise<void> {
    const { taken, inflight } = this.beginBatch();

    let fsyncMs = 0;
    let createdFile = false;
    let handle: FileHandle | null = null;
    for (let i = 0; i < taken.length; ) {
      const seg = taken[i]!.seg;
      const bufs: Buffer[] = [];
      let j = i;
      for (; j < taken.length && taken[j]!.seg === seg; j++) bufs.push(taken[j]!.buf.subarray(0, taken[j]!.used));
      walAssert(seg.writtenBytes === taken[i]!.fileOffset, `write to ${seg.path} at ${taken[i]!.fileOffset}, file has ${seg.writtenBytes}`);
      if (!seg.fileExists) {
        createdFile = true;
        if (this.faults) await this.faults.creating(seg.path);
      }
      handle = seg.handle ?? (await this.writeHandle(seg));
      seg.writtenBytes += await writeAll(handle, bufs);
      // A full segment is durable before the next file exists: torn writes stay in the last file.
      if (this.fsyncOn && j < taken.length) fsyncMs += await timedSync(handle);
      i = j;
    }
    if (this.fsyncOn) {
      if (this.faults) await this.faults.beforeFsync();
      fsyncMs += await timedSync(handle!);
      if (createdFile) {
        const t0 = performance.now();
        await fsyncDir(this.dir);
        fsyncMs += performance.now() - t0;
      }
      // Before the entries count as durable: a mark never lags what was acknowledged.
      if (this.faults) for (const seg of new Set(taken.map((c) => c.seg))) await this.faults.synced(seg.path, seg.writtenBytes);
    }

    this.endBatch(taken, inflight, fsyncMs);
    await this.closeRetiredHandles(taken);
    this.checkPositions();
    if (!inflight.voided) this.notifyDurable();
  }

  private takeBatch(): Chunk[] {
    const taken: Chunk[] = [];
    let bytes = 0;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.kind !== "chunk") break;
      if (taken.length > 0) {
        if (bytes + head.used > this.batchBytesMax) break;
        if (this.fsyncMode === "always" && head.firstSeq !== taken[0]!.firstSeq) break;
      }
      this.queue.shift();
      taken.push(head);
      bytes += head.used;
      if (head === this.openChunk) this.openChunk = null;
    }
    walAssert(taken.length > 0, "writeBatch without a queued chunk");
    this.pendingBytes -= bytes;
    return taken;
  }

  private async runOp(op: Op): Promise<void> {
    this.queue.shift();
    this.runningOpSeq = op.firstSeq;
    try {
      await op.exec();
    } catch (err) {
      op.reject(err);
      throw err;
    } finally {
      this.runningOpSeq = null;
    }
    op.resolve();
  }

  /** Queues a file operation behind everything appended so far; appends after it come after it. */
  private enqueueOp(exec: () => Promise<void>): Promise<void> {
    const seq = ++this.opSeq;
    this.openChunk = null;
    return new Promise<void>((resolve, reject) => {
      if (this.failure) {
        reject(this.failure);
        return;
      }
      this.queue.push({ kind: "op", firstSeq: seq, exec, resolve, reject });
      this.kick();
    });
  }

  /** durableSeq = the highest sequence number with nothing at or below it still pending. */
  private advanceDurableSeq(): void {
    let seq = this.opSeq;
    if (this.inflight) seq = Math.min(seq, this.inflight.firstSeq - 1);
    if (this.runningOpSeq !== null) seq = Math.min(seq, this.runningOpSeq - 1);
    const head = this.queue[0];
    if (head) seq = Math.min(seq, head.firstSeq - 1);
    if (seq <= this.durableSeq) return;
    this.durableSeq = seq;
    let n = 0;
    while (n < this.waiters.length && this.waiters[n]!.seq <= seq) n++;
    if (n === 0) return;
    const done = this.waiters.slice(0, n);
    this.waiters = this.waiters.slice(n);
    for (const w of done) w.resolve(this._durableIndex);
  }

  private notifyDurable(): void {
    for (const listener of this.listeners) {
      try {
        listener(this._durableIndex);
      } catch (err) {
        this.logger.warn({ err, dir: this.dir }, "wal: onDurable listener threw");
      }
    }
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    const failure =
      err instanceof WalError && err.code === "WAL_INVARIANT"
        ? err
        : new WalError("WAL_FAILED", `WAL in ${this.dir} failed, reopen to recover: ${(err as Error)?.message ?? err}`, {
            cause: err,
          });
    this.failure = failure;
    this.logger.warn({ err, dir: this.dir }, "wal: failed; refusing further writes");
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(failure);
    const queue = this.queue;
    this.queue = [];
    this.openChunk = null;
    for (const item of queue) if (item.kind === "op") item.reject(failure);
    for (const listener of this.failureListeners) {
      try {
        listener(failure);
      } catch (error) {
        this.logger.warn({ err: error, dir: this.dir }, "wal: onFailure listener threw");
      }
    }
  }

  // ---------------------------------------------------------------- truncation

  /**
   * Drops entries >= fromIndex (a follower's conflicting suffix). The in-memory log changes at
   * once, so appendEntries may follow without awaiting; the promise resolves when the cut is
   * durable on disk.
   */
  async truncateSuffix(fromIndex: number): Promise<void> {
    this.checkWritable();
    if (!isLogPosition(fromIndex) || fromIndex < 1) throw badArgument(`fromIndex must be a positive integer, got ${fromIndex}`);
    const floor = Math.max(this._snapshotIndex, this.snapshotFloor);
    if (fromIndex <= floor) throw badArgument(`cannot truncate from ${fromIndex}: entries up to ${floor} are in a snapshot`);
    if (fromIndex > this._appendedIndex) return;
    const onDisk = fromIndex <= this.takenIndex;
    const plan = this.cutInMemory(fromIndex);
    this.checkPositions();
    if (!onDisk) {
      this.kick(); // flush() waiters whose frames were all dropped can resolve now
      return;
    }
    await this.enqueueOp(() => this.execTruncate(plan));
  }

  /** Makes the in-memory log end at fromIndex - 1; returns what must change on disk. */
  private cutInMemory(fromIndex: number): TruncatePlan {
    const k = this.segmentIndexOf(fromIndex);
    const seg = this.segments[k]!;
    const cutOffset = seg.frameOffsets[fromIndex - seg.firstIndex];
    walAssert(cutOffset !== undefined, `no frame offset for index ${fromIndex}`);
    const removed = this.segments.splice(k + 1);
    seg.frameOffsets.length = fromIndex - seg.firstIndex;
    seg.sizeBytes = cutOffset;

    const kept: QueueItem[] = [];
    for (const item of this.queue) {
      if (item.kind === "chunk" && item.firstIndex >= fromIndex) {
        this.pendingBytes -= item.used;
        this.releaseBuffer(item.buf);
        if (item === this.openChunk) this.openChunk = null;
        continue;
      }
      if (item.kind === "chunk" && item.lastIndex >= fromIndex) {
        walAssert(item.seg === seg, "chunk spanning the cut is not in the cut segment");
        const used = cutOffset - item.fileOffset;
        this.pendingBytes -= item.used - used;
        item.used = used;
        item.lastIndex = fromIndex - 1;
      }
      kept.push(item);
    }
    this.queue = kept;
    if (this.inflight && this.inflight.lastIndex >= fromIndex) this.inflight.lastIndex = fromIndex - 1;

    while (this.memTail.length > this.memTailHead && this.memTail[this.memTail.length - 1]!.index >= fromIndex) {
      this.memTail.pop();
    }
    while (this.epochRuns.length > 0 && this.epochRuns[this.epochRuns.length - 1]!.firstIndex >= fromIndex) {
      this.epochRuns.pop();
    }
    const last = fromIndex - 1;
    this._appendedIndex = last;
    this.takenIndex = Math.min(this.takenIndex, last);
    this.writtenIndex = Math.min(this.writtenIndex, last);
    this._durableIndex = Math.min(this._durableIndex, last);
    return { seg, cutOffset, removed };
  }

  private async execTruncate(plan: TruncatePlan): Promise<void> {
    await this.drainReads();
    const { seg, cutOffset, removed } = plan;
    // Later segments go first, newest first, so a crash midway leaves a log without gaps.
    let dirChanged = false;
    for (const r of [...removed].reverse()) {
      await closeHandle(r);
      if (r.fileExists) {
        await fsp.unlink(r.path);
        r.fileExists = false;
        dirChanged = true;
      }
    }
    if (dirChanged && this.fsyncOn) await fsyncDir(this.dir);
    walAssert(seg.writtenBytes >= cutOffset, `truncate ${seg.path} to ${cutOffset} but only ${seg.writtenBytes} written`);
    if (seg.writtenBytes > cutOffset) {
      const h = await this.writeHandle(seg);
      await h.truncate(cutOffset);
      seg.writtenBytes = cutOffset;
      if (this.fsyncOn) {
        await h.sync();
        if (this.faults) await this.faults.synced(seg.path, cutOffset);
      }
    }
  }

  // ---------------------------------------------------------------- snapshots

  /**
   * Saves the state as of `index` (whose entry has `epoch`) atomically, then deletes the segments
   * it covers. If the log holds that entry, later entries are kept. Otherwise (a follower
   * installing its leader's snapshot) the whole log is discarded and restarts at index + 1.
   */
  async saveSnapshot(index: number, epoch: number, state: unknown): Promise<void> {
    this.checkWritable();
    if (!isLogPosition(index) || index < 1) throw badArgument(`snapshot index must be a positive integer, got ${index}`);
    if (!isLogPosition(epoch)) throw badArgument(`snapshot epoch must be a non-negative integer, got ${epoch}`);
    if (this.snapshotInProgress) throw new WalError("WAL_BUSY", "a snapshot is already being saved");
    if (index <= this._snapshotIndex) throw badArgument(`snapshot index ${index} is not after the current ${this._snapshotIndex}`);
    this.snapshotFloor = index;
    const keepLog = index <= this._appendedIndex && this.epochAt(index) === epoch;
    const work = keepLog ? this.snapshotKeepingLog(index, epoch, state) : this.snapshotReplacingLog(index, epoch, state);
    this.snapshotInProgress = work;
    try {
      await work;
    } finally {
      this.snapshotInProgress = null;
      this.snapshotFloor = 0;
    }
  }

  private async snapshotKeepingLog(index: number, epoch: number, state: unknown): Promise<void> {
    await this.flush(); // entries up to `index` are durable before the snapshot supersedes them
    walAssert(this.epochAt(index) === epoch, `entry ${index} changed while its snapshot was being saved`);
    const encoded = encodeSnapshot(index, epoch, state);
    const file = await writeSnapshotFile(this.dir, encoded);
    if (this.failure) throw this.failure;
    const oldFile = this.snapshotFile;
    this.snapshotFile = file;
    this._snapshotIndex = index;
    this.snapshotEpoch = epoch;
    // Every covered segment goes, the last one too when nothing was appended after `index`: the
    // next append then starts a new segment at index + 1, and a restart reads no covered frame.
    const covered: Segment[] = [];
    while (this.segments.length > 0 && segmentLastIndex(this.segments[0]!) <= index) covered.push(this.segments.shift()!);
    if (this.openChunk !== null && covered.includes(this.openChunk.seg)) this.openChunk = null;
    this.trimEpochRuns();
    await this.enqueueOp(() => this.execCompact(covered, oldFile));
  }

  private async execCompact(covered: Segment[], oldSnapshotFile: string | null): Promise<void> {
    await this.drainReads();
    for (const seg of covered) {
      await closeHandle(seg);
      if (seg.fileExists) await fsp.unlink(seg.path);
      seg.fileExists = false;
    }
    if (oldSnapshotFile) await unlinkIfExists(oldSnapshotFile);
    if (covered.length > 0 || oldSnapshotFile) await fsyncDir(this.dir);
  }

  private async snapshotReplacingLog(index: number, epoch: number, state: unknown): Promise<void> {
    const encoded = encodeSnapshot(index, epoch, state); // before any change: may throw on bad state
    const oldSegments = this.segments;
    const oldFile = this.snapshotFile;
    this.discardInMemory(index, epoch);
    this.snapshotFile = path.join(this.dir, snapshotFileName(index));
    this.checkPositions();
    await this.enqueueOp(() => this.execInstall(encoded, oldSegments, oldFile));
  }

  /** The log becomes empty, continuing the snapshot at index + 1. */
  private discardInMemory(index: number, epoch: number): void {
    for (const item of this.queue) if (item.kind === "chunk") this.releaseBuffer(item.buf);
    this.queue = this.queue.filter((item) => item.kind === "op");
    this.pendingBytes = 0;
    this.openChunk = null;
    if (this.inflight) this.inflight.voided = true;
    this.segments = [];
    this.memTail = [];
    this.memTailHead = 0;
    this.epochRuns = [];
    this._snapshotIndex = index;
    this.snapshotEpoch = epoch;
    this._appendedIndex = index;
    this.takenIndex = index;
    this.writtenIndex = index;
    this._durableIndex = Math.min(this._durableIndex, index);
  }

  private async execInstall(encoded: EncodedSnapshot, oldSegments: Segment[], oldSnapshotFile: string | null): Promise<void> {
    await this.drainReads();
    await writeSnapshotFile(this.dir, encoded);
    // Newest first: a crash midway leaves a prefix of the old log, which recovery recognises
    // (by the epoch at the snapshot index, or by ending before it) and discards.
    for (const seg of [...oldSegments].reverse()) {
      await closeHandle(seg);
      if (seg.fileExists) await fsp.unlink(seg.path);
      seg.fileExists = false;
    }
    if (oldSnapshotFile && oldSnapshotFile !== path.join(this.dir, snapshotFileName(encoded.index))) {
      await unlinkIfExists(oldSnapshotFile);
    }
    await fsyncDir(this.dir);
    this._durableIndex = Math.max(this._durableIndex, encoded.index);
    this.checkPositions();
    this.notifyDurable();
  }

  // ---------------------------------------------------------------- reading

  /**
   * Up to maxEntries entries from fromIndex on, for shipping to followers. Entries not yet written
   * come from memory (the caller's record objects); written ones are read and verified from disk.
   * Throws WAL_COMPACTED when fromIndex is below firstIndex (send the snapshot instead).
   */
  async readFrom(fromIndex: number, maxEntries: number, opts: { raw?: boolean } = {}): Promise<LogEntry[]> {
    if (this.failure) throw this.failure;
    if (this.closed) throw closedError();
    if (!isLogPosition(fromIndex) || fromIndex < 1) throw badArgument(`fromIndex must be a positive integer, got ${fromIndex}`);
    if (!isLogPosition(maxEntries)) throw badArgument(`maxEntries must be a non-negative integer, got ${maxEntries}`);
    if (fromIndex < this.firstIndex) {
      throw new WalError("WAL_COMPACTED", `entries before ${this.firstIndex} are compacted into snapshot ${this._snapshotIndex}`);
    }
    const last = Math.min(this._appendedIndex, fromIndex + maxEntries - 1);
    if (last < fromIndex) return [];
    // Memory holds every unwritten entry and the most recent written ones (recentEntriesKept).
    const memLow = this.memTailHead < this.memTail.length ? this.memTail[this.memTailHead]!.index : this._appendedIndex + 1;
    const inMemory = this.memorySlice(Math.max(fromIndex, memLow), last, memLow);
    // Entries keep their encoded bytes in memory; a plain read returns what a disk read would.
    const fromMemory = opts.raw === true ? inMemory : inMemory.map(({ index, epoch, record }) => ({ index, epoch, record }));
    const diskLast = Math.min(last, memLow - 1);
    if (diskLast < fromIndex) return fromMemory;
    // Plan synchronously against the current state; destructive file ops wait for this read.
    const read = this.readRanges(this.diskRanges(fromIndex, diskLast), opts.raw === true);
    this.readsInFlight.add(read);
    try {
      const fromDisk = await read;
      return fromMemory.length > 0 ? fromDisk.concat(fromMemory) : fromDisk;
    } finally {
      this.readsInFlight.delete(read);
    }
  }

  private memorySlice(from: number, to: number, memLow: number): LogEntry[] {
    if (to < from) return [];
    const base = this.memTailHead + (from - memLow);
    const out = this.memTail.slice(base, base + (to - from + 1));
    walAssert(out.length === to - from + 1 && out[0]!.index === from, "in-memory tail out of step with the log");
    return out;
  }

  private diskRanges(from: number, to: number): Array<{ path: string; start: number; end: number; firstIndex: number; count: number }> {
    const ranges = [];
    let k = this.segmentIndexOf(from);
    for (let i = from; i <= to; k++) {
      const seg = this.segments[k]!;
      const segLast = Math.min(to, segmentLastIndex(seg));
      const a = i - seg.firstIndex;
      const b = segLast - seg.firstIndex;
      const start = seg.frameOffsets[a]!;
      const end = b + 1 < seg.frameOffsets.length ? seg.frameOffsets[b + 1]! : seg.sizeBytes;
      ranges.push({ path: seg.path, start, end, firstIndex: i, count: segLast - i + 1 });
      i = segLast + 1;
    }
    return ranges;
  }

  private async readRanges(
    ranges: Array<{ path: string; start: number; end: number; firstIndex: number; count: number }>,
    raw: boolean,
  ): Promise<LogEntry[]> {
    const out: LogEntry[] = [];
    for (const r of ranges) {
      const buf = await readRange(r.path, r.start, r.end);
      let off = 0;
      for (let n = 0; n < r.count; n++) {
        const parsed = raw ? parseFrameRaw(buf, off) : parseFrameAt(buf, off, this.packr);
        if (!parsed.ok) throw new WalCorruptionError(r.path, r.start + off, parsed.reason);
        if (parsed.entry.index !== r.firstIndex + n) {
          throw new WalCorruptionError(r.path, r.start + off, `frame has index ${parsed.entry.index}, expected ${r.firstIndex + n}`);
        }
        out.push(parsed.entry);
        off = parsed.end;
      }
    }
    return out;
  }

  private async drainReads(): Promise<void> {
    if (this.readsInFlight.size > 0) await Promise.allSettled([...this.readsInFlight]);
  }

  // ---------------------------------------------------------------- closing

  /** Flushes, waits for file operations, closes files. Further calls throw WAL_CLOSED. */
  close(): Promise<void> {
    if (this.closePromise) return this.closePromise;
    this.closing = true;
    this.closePromise = (async () => {
      try {
        if (this.snapshotInProgress) await this.snapshotInProgress.catch(() => undefined);
        if (!this.failure) await this.flush();
        await this.drainReads();
      } finally {
        this.closed = true;
        for (const seg of this.segments) await closeHandle(seg).catch(() => undefined);
      }
    })();
    return this.closePromise;
  }

  // ---------------------------------------------------------------- helpers

  /** Index in this.segments of the segment holding `index` (must be in the log). */
  private segmentIndexOf(index: number): number {
    const segs = this.segments;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (segs[mid]!.firstIndex <= index) lo = mid;
      else hi = mid - 1;
    }
    walAssert(segs.length > 0 && segs[lo]!.firstIndex <= index, `no segment holds index ${index}`);
    return lo;
  }

  private async writeHandle(seg: Segment): Promise<FileHandle> {
    if (seg.handle) return seg.handle;
    const h = await fsp.open(seg.path, "a");
    seg.handle = h;
    seg.fileExists = true;
    return h;
  }

  /** Segments that are no longer last will not be written again: release their descriptors. */
  private async closeRetiredHandles(taken: Chunk[]): Promise<void> {
    const active = this.segments[this.segments.length - 1];
    if (taken[0]!.seg === active && taken[taken.length - 1]!.seg === active) return; // the usual batch: nothing retired
    let prev: Segment | null = null;
    for (const c of taken) {
      if (c.seg === prev) continue;
      prev = c.seg;
      if (c.seg !== active && c.seg.handle && this.segments.includes(c.seg)) await closeHandle(c.seg);
    }
  }

  private trimMemTail(): void {
    const tail = this.memTail;
    let head = this.memTailHead;
    const keepFrom = this.writtenIndex + 1 - this.recentEntriesKept;
    while (head < tail.length && tail[head]!.index < keepFrom) {
      // Nothing reads below the head: let the record and its bytes go now, not at the next
      // compaction (up to MEM_TAIL_COMPACT_ENTRIES_MIN entries later, each a whole batch of items).
      (tail as (LogEntry | undefined)[])[head] = undefined;
      head++;
    }
    if (head >= MEM_TAIL_COMPACT_ENTRIES_MIN && head * 2 >= tail.length) {
      this.memTail = tail.slice(head);
      head = 0;
    }
    this.memTailHead = head;
  }

  /** Epoch runs wholly below firstIndex can no longer be asked about. */
  private trimEpochRuns(): void {
    const first = this.firstIndex;
    let drop = 0;
    while (drop + 1 < this.epochRuns.length && this.epochRuns[drop + 1]!.firstIndex <= first) drop++;
    if (drop > 0) this.epochRuns = this.epochRuns.slice(drop);
  }

  private releaseBuffer(buf: Buffer): void {
    if (this.bufferPool.length < CHUNK_POOL_BUFFERS_MAX && buf.length <= 2 * this.batchBytesMax) this.bufferPool.push(buf);
  }

  private checkWritable(): void {
    if (this.failure) throw this.failure;
    if (this.closing || this.closed) throw closedError();
  }

  /** The ordering of the named positions; a violation is a bug, so it stops the WAL. */
  private checkPositions(): void {
    walAssert(
      this._durableIndex <= this.writtenIndex && this.writtenIndex <= this._appendedIndex,
      `positions out of order: durable ${this._durableIndex}, written ${this.writtenIndex}, appended ${this._appendedIndex}`,
    );
    walAssert(this.takenIndex <= this._appendedIndex, `taken ${this.takenIndex} > appended ${this._appendedIndex}`);
  }
}

function validateOptions(opts: WalOptions): void {
  if (!opts || typeof opts.dir !== "string" || opts.dir.length === 0) throw badArgument("dir must be a non-empty string");
  if (opts.fsync !== "always" && opts.fsync !== "batch" && opts.fsync !== "off") {
    throw badArgument(`fsync must be "always", "batch" or "off", got ${String(opts.fsync)}`);
  }
  const positive = (name: string, v: number | undefined, min: number) => {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < min)) throw badArgument(`${name} must be an integer >= ${min}, got ${v}`);
  };
  positive("segmentBytesMax", opts.segmentBytesMax, SEGMENT_BYTES_MIN);
  positive("batchBytesMax", opts.batchBytesMax, 1);
  positive("pendingBytesMax", opts.pendingBytesMax, 1);
}

function segmentLastIndex(seg: Segment): number {
  return seg.firstIndex + seg.frameOffsets.length - 1;
}

async function closeHandle(seg: Segment): Promise<void> {
  const h = seg.handle;
  seg.handle = null;
  if (h) await h.close();
}

async function unlinkIfExists(file: string): Promise<void> {
  try {
    await fsp.unlink(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}

/** fsync `handle`; resolves to the ms it took. */
async function timedSync(handle: FileHandle): Promise<number> {
  const t0 = performance.now();
  await syncHandle(handle);
  return performance.now() - t0;
}

function badArgument(message: string, cause?: unknown): WalError {
  return new WalError("WAL_BAD_ARGUMENT", message, cause === undefined ? undefined : { cause });
}

function closedError(): WalError {
  return new WalError("WAL_CLOSED", "the WAL is closed");
}
