/**
 * Recovery: turn a directory of segment and snapshot files back into a log, deciding for every
 * defect whether it is a torn write (cut it, carry on) or corruption (refuse, or cut with repair).
 *
 * The rules, in order:
 * 1. Leftover "snapshot.tmp" is an interrupted snapshot: delete it. Of several snapshots the newest
 *    wins and the older ones are deleted. A defective newest snapshot is corruption, always.
 * 2. Segments wholly covered by the snapshot (the next segment starts at or before snapshot+1)
 *    are deleted without being read: their bytes no longer matter.
 * 3. Every other segment is read frame by frame. Indexes must be consecutive within and across
 *    segments (each file's name is its first index), epochs must never decrease, and without a
 *    snapshot the log must start at index 1.
 * 4. A bad frame (short header, bad length, bad checksum) in the LAST segment with no valid frame
 *    anywhere after it is a torn tail: the write of an unacknowledged batch was interrupted. The
 *    file is truncated at the frame start and the cut is reported in tornTailBytes.
 * 5. Any other defect is corruption: WalCorruptionError(file, offset). With repair: true the log
 *    is cut there instead (later segments deleted, newest first) and reported in repairedAt.
 *    (A cluster replica cuts too, but then repairs from its peers before it counts again:
 *    src/node/shard-replica.ts, openReplicatedWal.)
 * 6. Against the snapshot (index S, epoch E): if the log ends before S, or its entry S has an epoch
 *    other than E, the log predates the snapshot (a crash while a follower installed a leader's
 *    snapshot): every segment is deleted and the log restarts at S + 1. Otherwise entries after S
 *    are returned.
 *
 * Caveat (documented, not solved): a crash can persist pages of an unacknowledged write out of
 * order, leaving a hole followed by valid frames at the tail. Rule 5 then refuses to start even
 * though nothing acknowledged was lost; `repair: true` recovers it. We prefer a loud stop to
 * silently dropping frames that might have been acknowledged.
 */

import { promises as fsp } from "node:fs";
import path from "node:path";
import type { Packr } from "msgpackr";
import { WalCorruptionError } from "./errors.js";
import { fsyncDir, parseSegmentFileName, parseSnapshotFileName, SNAPSHOT_TMP_NAME } from "./files.js";
import { type LogEntry, parseFrameAt, validFrameFollows } from "./frame.js";
import { readSnapshotFile, type Snapshot } from "./snapshot.js";
import type { FaultHooks } from "./fault-hooks.js";

export interface WalLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface RecoveryReport {
  segments: number;
  entries: number;
  tornTailBytes: number;
  repairedAt?: { file: string; offset: number };
}

export interface EpochRun {
  firstIndex: number;
  epoch: number;
}

export interface RecoveredSegment {
  firstIndex: number;
  path: string;
  frameOffsets: number[];
  sizeBytes: number;
}

export interface RecoveredLog {
  snapshot: Snapshot | null;
  segments: RecoveredSegment[];
  epochRuns: EpochRun[];
  /** Last index in the log, or the snapshot's index when no entry follows it. */
  lastIndex: number;
  entries: LogEntry[];
  report: RecoveryReport;
}

interface SegmentFile {
  firstIndex: number;
  path: string;
}

interface ScanState {
  expected: number;
  lastEpoch: number;
  epochAtSnapshot: number | undefined;
  segments: RecoveredSegment[];
  epochRuns: EpochRun[];
  entries: LogEntry[];
  tornTailBytes: number;
  repairedAt?: { file: string; offset: number };
  /** A segment already truncated and fsynced during this recovery. */
  syncedPath?: string;
  faults: FaultHooks | null;
}

export async function recoverLog(dir: string, repair: boolean, logger: WalLogger, packr: Packr, faults: FaultHooks | null = null): Promise<RecoveredLog> {
  const names = await fsp.readdir(dir);
  if (names.includes(SNAPSHOT_TMP_NAME)) await fsp.unlink(path.join(dir, SNAPSHOT_TMP_NAME));
  const snapshot = await loadNewestSnapshot(dir, names);
  const snapshotIndex = snapshot?.index ?? 0;
  const files = names
    .map((name) => ({ firstIndex: parseSegmentFileName(name), path: path.join(dir, name) }))
    .filter((f): f is SegmentFile => f.firstIndex !== null)
    .sort((a, b) => a.firstIndex - b.firstIndex);

  let firstRead = 0;
  while (firstRead + 1 < files.length && files[firstRead + 1]!.firstIndex <= snapshotIndex + 1) firstRead++;
  const covered = files.slice(0, firstRead);
  const toRead = files.slice(firstRead);
  checkLogStart(toRead, snapshot);

  const scan: ScanState = {
    expected: toRead[0]?.firstIndex ?? snapshotIndex + 1,
    lastEpoch: 0,
    epochAtSnapshot: snapshotIndex === 0 ? 0 : undefined,
    segments: [],
    epochRuns: [],
    entries: [],
    tornTailBytes: 0,
    faults,
  };
  for (let k = 0; k < toRead.length; k++) {
    const keepGoing = await scanSegment(toRead, k, snapshotIndex, scan, repair, logger, packr);
    if (!keepGoing) break;
  }

  let lastIndex = scan.expected - 1;
  const toDelete = covered.map((f) => f.path);
  if (snapshot && predatesSnapshot(scan, snapshot, lastIndex)) {
    if (scan.segments.length > 0) {
      logger.warn({ dir, snapshotIndex, lastIndex }, "wal: log does not continue the snapshot; discarding its segments");
    }
    toDelete.push(...scan.segments.map((s) => s.path));
    scan.segments = [];
    scan.epochRuns = [];
    scan.entries = [];
    lastIndex = snapshotIndex;
  }
  if (toDelete.length > 0) {
    await unlinkNewestFirst(toDelete);
    await fsyncDir(dir);
  }
  // What we report as the log must be durable, even if the process that wrote it never fsynced.
  const last = scan.segments.at(-1);
  if (last && last.path !== scan.syncedPath) await fsyncFile(last.path);
  // Every segment read is durable now (earlier ones were fsynced before the next was created).
  if (faults) for (const seg of scan.segments) await faults.synced(seg.path, seg.sizeBytes);
  const report: RecoveryReport = {
    segments: scan.segments.length,
    entries: scan.entries.length,
    tornTailBytes: scan.tornTailBytes,
  };
  if (scan.repairedAt) report.repairedAt = scan.repairedAt;
  return { snapshot, segments: scan.segments, epochRuns: scan.epochRuns, lastIndex, entries: scan.entries, report };
}

async function loadNewestSnapshot(dir: string, names: string[]): Promise<Snapshot | null> {
  const snaps = names
    .map((name) => ({ index: parseSnapshotFileName(name), path: path.join(dir, name) }))
    .filter((s): s is { index: number; path: string } => s.index !== null)
    .sort((a, b) => a.index - b.index);
  const newest = snaps.at(-1);
  if (!newest) return null;
  const snapshot = await readSnapshotFile(newest.path, newest.index);
  // Older snapshots are left over from a crash between installing a new one and deleting them.
  if (snaps.length > 1) {
    await unlinkNewestFirst(snaps.slice(0, -1).map((s) => s.path));
    await fsyncDir(dir);
  }
  return snapshot;
}

function checkLogStart(toRead: SegmentFile[], snapshot: Snapshot | null): void {
  const first = toRead[0];
  if (!first) return;
  if (!snapshot && first.firstIndex !== 1) {
    throw new WalCorruptionError(first.path, 0, `log starts at index ${first.firstIndex} but there is no snapshot`);
  }
  if (snapshot && first.firstIndex > snapshot.index + 1) {
    throw new WalCorruptionError(
      first.path,
      0,
      `log starts at index ${first.firstIndex}, leaving a gap after snapshot index ${snapshot.index}`,
    );
  }
}

/** Reads segment k into `scan`. Returns false when the log was cut here (nothing after it counts). */
async function scanSegment(
  files: SegmentFile[],
  k: number,
  snapshotIndex: number,
  scan: ScanState,
  repair: boolean,
  logger: WalLogger,
  packr: Packr,
): Promise<boolean> {
  const file = files[k]!;
  const isLast = k === files.length - 1;
  if (file.firstIndex !== scan.expected) {
    const reason = `segment starts at index ${file.firstIndex}, expected ${scan.expected} (gap or overlap)`;
    if (!repair) throw new WalCorruptionError(file.path, 0, reason);
    await repairCut(files, k, 0, reason, scan, logger, true);
    return false;
  }
  const buf = await fsp.readFile(file.path);
  const seg: RecoveredSegment = { firstIndex: file.firstIndex, path: file.path, frameOffsets: [], sizeBytes: 0 };
  let off = 0;
  while (off < buf.length) {
    const parsed = parseFrameAt(buf, off, packr, snapshotIndex);
    let reason: string | null = null;
    let torn = false;
    if (!parsed.ok) {
      reason = parsed.reason;
      torn = parsed.torn;
    } else if (parsed.entry.index !== scan.expected) {
      reason = `frame has index ${parsed.entry.index}, expected ${scan.expected}`;
    } else if (parsed.entry.epoch < scan.lastEpoch) {
      reason = `epoch ${parsed.entry.epoch} is lower than the previous ${scan.lastEpoch}`;
    }
    if (reason !== null) {
      if (isLast && torn && !validFrameFollows(buf, off + 1)) {
        scan.tornTailBytes = buf.length - off;
        logger.warn({ file: file.path, offset: off, bytes: buf.length - off, reason }, "wal: cutting torn tail");
        await truncateFile(file.path, off, scan.faults);
        scan.syncedPath = file.path;
      } else if (!repair) {
        throw new WalCorruptionError(file.path, off, reason);
      } else {
        seg.sizeBytes = off;
        scan.segments.push(seg);
        await repairCut(files, k, off, reason, scan, logger, false);
        return false;
      }
      break;
    }
    const entry = (parsed as { entry: LogEntry }).entry;
    seg.frameOffsets.push(off);
    if (scan.epochRuns.at(-1)?.epoch !== entry.epoch) scan.epochRuns.push({ firstIndex: entry.index, epoch: entry.epoch });
    if (entry.index === snapshotIndex) scan.epochAtSnapshot = entry.epoch;
    if (entry.index > snapshotIndex) scan.entries.push(entry);
    scan.lastEpoch = entry.epoch;
    scan.expected++;
    off = (parsed as { end: number }).end;
  }
  seg.sizeBytes = off;
  scan.segments.push(seg);
  return true;
}

/**
 * repair: true — cut the log at (files[k], offset): delete later segments newest first (a crash
 * midway leaves a consistent prefix), then truncate this one (or delete it when `dropWhole`).
 */
async function repairCut(
  files: SegmentFile[],
  k: number,
  offset: number,
  reason: string,
  scan: ScanState,
  logger: WalLogger,
  dropWhole: boolean,
): Promise<void> {
  const file = files[k]!;
  const later = files.slice(k + 1).map((f) => f.path);
  await unlinkNewestFirst(dropWhole ? [file.path, ...later] : later);
  if (!dropWhole) {
    await truncateFile(file.path, offset, scan.faults);
    scan.syncedPath = file.path;
  }
  await fsyncDir(path.dirname(file.path));
  scan.repairedAt = { file: file.path, offset };
  logger.warn({ file: file.path, offset, reason, deletedSegments: later.length }, "wal: repair cut the log at corruption");
}

function predatesSnapshot(scan: ScanState, snapshot: Snapshot, lastIndex: number): boolean {
  if (lastIndex < snapshot.index) return true;
  const first = scan.segments[0];
  if (!first || first.firstIndex > snapshot.index) return false;
  return scan.epochAtSnapshot !== snapshot.epoch;
}

async function truncateFile(file: string, length: number, faults: FaultHooks | null): Promise<void> {
  const h = await fsp.open(file, "r+");
  try {
    await h.truncate(length);
    await h.sync();
  } finally {
    await h.close();
  }
  if (faults) await faults.synced(file, length);
}

async function fsyncFile(file: string): Promise<void> {
  const h = await fsp.open(file, "r+");
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

export async function unlinkNewestFirst(paths: string[]): Promise<void> {
  const sorted = [...paths].sort().reverse();
  for (const p of sorted) await fsp.unlink(p);
}
