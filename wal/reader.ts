/**
 * A read-only view of a log directory, for offline checkers (jepsen-style-tests/wal-checker.ts):
 * every frame as stored (index, epoch, record bytes) and every defect found, reported rather than
 * repaired. Unlike recovery it never writes, truncates or deletes, and it never throws on a bad
 * file: it reads what it can and says what it could not.
 */
import fs from "node:fs";
import path from "node:path";
import { WalCorruptionError } from "./errors.js";
import { parseSegmentFileName, parseSnapshotFileName } from "./files.js";
import { parseFrameRaw, validFrameFollows } from "./frame.js";
import { parseSnapshot } from "./snapshot.js";

export interface StoredEntry {
  index: number;
  epoch: number;
  /** The record as encoded in its frame. */
  bytes: Uint8Array;
}

export interface LogDefect {
  file: string;
  offset: number;
  reason: string;
  /** A bad frame at the very end of the log with nothing valid after it: a torn write. */
  tornTail: boolean;
}

export interface StoredLog {
  /** The newest snapshot's position (its body checksummed, not decoded). */
  snapshot: { index: number; epoch: number } | null;
  /** Frames in file order; a segment is read up to its first bad frame. */
  entries: StoredEntry[];
  defects: LogDefect[];
}

export function readStoredLog(dir: string): StoredLog {
  const names = fs.readdirSync(dir);
  const log: StoredLog = { snapshot: null, entries: [], defects: [] };
  const snaps = names.map((n) => ({ n, index: parseSnapshotFileName(n) })).filter((s) => s.index !== null).sort((a, b) => a.index! - b.index!);
  const newest = snaps.at(-1);
  if (newest) {
    const file = path.join(dir, newest.n);
    try {
      const s = parseSnapshot(fs.readFileSync(file), file, newest.index!, false);
      log.snapshot = { index: s.index, epoch: s.epoch };
    } catch (error) {
      if (!(error instanceof WalCorruptionError)) throw error;
      log.defects.push({ file, offset: error.offset, reason: error.reason, tornTail: false });
    }
  }
  const segments = names.map((n) => ({ n, first: parseSegmentFileName(n) })).filter((s) => s.first !== null).sort((a, b) => a.first! - b.first!);
  segments.forEach((seg, k) => {
    const file = path.join(dir, seg.n);
    const buf = fs.readFileSync(file);
    for (let off = 0; off < buf.length; ) {
      const parsed = parseFrameRaw(buf, off);
      if (!parsed.ok) {
        const tornTail = k === segments.length - 1 && parsed.torn && !validFrameFollows(buf, off + 1);
        log.defects.push({ file, offset: off, reason: parsed.reason, tornTail });
        break;
      }
      const { index, epoch, bytes } = parsed.entry;
      log.entries.push({ index, epoch, bytes: Buffer.from(bytes!) });
      off = parsed.end;
    }
  });
  return log;
}
