/**
 * Test-only storage faults for the WAL (fault scenario 12, docs/jepsen.md), off unless the environment asks:
 *
 * - CRONWHEEL_FAULT_SYNC_MARKS=1 — after every fsync of a segment the WAL writes the synced
 *   length next to it, in `<segment>.synced`, without fsync: the mark is in the page cache, so it
 *   survives a kill -9 of the process (not of the machine, which is what it stands for).
 *   `simulatePowerLoss(dir)`, run on a killed node's shard directory, then does what a power cut
 *   could: each segment goes back to its last synced length, a segment never synced disappears,
 *   temporary files go. The mark is written after the fsync and before the entries count as
 *   durable, so it never claims more than the disk has nor less than anything acknowledged. A
 *   mark left by a deleted segment is dropped when a segment of that name is created again.
 * - CRONWHEEL_FAULT_FSYNC_DELAY_MS=N — a slow disk: every batch waits N ms between its write and
 *   its fsync, so written-but-unsynced bytes exist long enough for a power cut to find them (an
 *   acknowledgement sent before its fsync would then be caught, not missed by a 0.3 ms window).
 *
 * Not modelled: directory entries (a created or deleted file whose directory was not fsynced),
 * and the commit hint (not fsynced), which keeps whatever it last held.
 */
import { promises as fsp } from "node:fs";
import path from "node:path";
import { parseSegmentFileName } from "./files.js";

const SUFFIX = ".synced";

export class FaultHooks {
  constructor(
    readonly syncMarks: boolean,
    readonly fsyncDelayMs: number,
  ) {}

  /** The hooks the environment asks for, or null (the WAL then does nothing extra). */
  static fromEnv(): FaultHooks | null {
    const marks = process.env.CRONWHEEL_FAULT_SYNC_MARKS === "1";
    const delay = Number(process.env.CRONWHEEL_FAULT_FSYNC_DELAY_MS ?? 0);
    return marks || delay > 0 ? new FaultHooks(marks, delay > 0 ? delay : 0) : null;
  }

  /** Between a batch's write and its fsync. */
  async beforeFsync(): Promise<void> {
    if (this.fsyncDelayMs > 0) await new Promise((r) => setTimeout(r, this.fsyncDelayMs));
  }

  /** `file` is durable up to `length` bytes. */
  async synced(file: string, length: number): Promise<void> {
    if (this.syncMarks) await fsp.writeFile(file + SUFFIX, String(length));
  }

  /** `file` is about to be created: a mark from an earlier file of that name is not about it. */
  async creating(file: string): Promise<void> {
    if (this.syncMarks) await fsp.rm(file + SUFFIX, { force: true });
  }
}

export interface PowerLossReport {
  /** Segments cut back to their synced length, with the bytes lost. */
  truncated: Array<{ file: string; bytes: number }>;
  /** Segments never synced, and temporary files. */
  deleted: string[];
}

/** What a power cut could leave of a (stopped) shard directory, per its sync marks. */
export async function simulatePowerLoss(dir: string): Promise<PowerLossReport> {
  const report: PowerLossReport = { truncated: [], deleted: [] };
  for (const name of await fsp.readdir(dir)) {
    const file = path.join(dir, name);
    if (name.endsWith(".tmp")) {
      await fsp.rm(file, { force: true });
      report.deleted.push(file);
      continue;
    }
    if (parseSegmentFileName(name) === null) continue;
    const mark = await fsp.readFile(file + SUFFIX, "utf8").then(Number, () => null);
    if (mark === null) {
      await fsp.rm(file);
      report.deleted.push(file);
      continue;
    }
    const size = (await fsp.stat(file)).size;
    if (size > mark) {
      await fsp.truncate(file, mark);
      report.truncated.push({ file, bytes: size - mark });
    }
  }
  return report;
}
