import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type LogEntry, Wal, WalCorruptionError, WalError, type WalOptions } from "../wal/index.js";
import { FaultHooks, simulatePowerLoss } from "../wal/fault-hooks.js";

const dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "cw-walrec-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function rec(i: number): { jobId: string; tenant: string; at: number; payload: string } {
  return { jobId: `job-${String(i).padStart(8, "0")}`, tenant: "acme", at: 1_735_689_600_000 + i, payload: "p".repeat(40) };
}

function segmentFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith(".wal")).sort();
}

function copyDir(from: string, to: string): void {
  fs.rmSync(to, { recursive: true, force: true });
  fs.cpSync(from, to, { recursive: true });
}

/** Byte offsets where frames start in [start, end) of a segment file, plus `end`. */
function frameBoundaries(file: string, start: number): number[] {
  const buf = fs.readFileSync(file);
  const out: number[] = [];
  for (let off = start; off < buf.length; off += 8 + buf.readUInt32LE(off)) out.push(off);
  out.push(buf.length);
  return out;
}

const silent = { info() {}, warn() {} };

async function writeLog(dir: string, opts: Partial<WalOptions>, batches: number, perBatch: number): Promise<unknown[]> {
  const { wal } = await Wal.open({ dir, fsync: "batch", ...opts });
  const records: unknown[] = [];
  for (let b = 0; b < batches; b++) {
    const batch = Array.from({ length: perBatch }, (_, i) => rec(records.length + i + 1));
    wal.append(1, batch);
    records.push(...batch);
    await wal.flush();
  }
  await wal.close();
  return records;
}

describe("recovery from a torn tail", () => {
  it("recovers a prefix for EVERY byte offset at which the last batch's write could stop", async () => {
    const base = tmpDir();
    const opts = { segmentBytesMax: 4096 };
    // Acknowledged: 4 flushed batches spread over a few segments.
    const acked = await writeLog(base, opts, 4, 16);
    const lastSeg = path.join(base, segmentFiles(base).at(-1)!);
    const start = fs.statSync(lastSeg).size;
    // The last batch (~1.4 KB) must land in the same, last segment for the test to mean anything.
    const { wal } = await Wal.open({ dir: base, fsync: "batch", ...opts });
    const last = Array.from({ length: 12 }, (_, i) => rec(acked.length + i + 1));
    wal.append(1, last);
    await wal.flush();
    await wal.close();
    expect(path.join(base, segmentFiles(base).at(-1)!)).toBe(lastSeg);
    const end = fs.statSync(lastSeg).size;
    expect(end - start).toBeGreaterThan(1000);
    const boundaries = frameBoundaries(lastSeg, start);
    expect(boundaries.length).toBe(last.length + 1);
    // expected[k]: the records when k frames of the last batch survived (compared as JSON: fast)
    const expected = boundaries.map((_, k) => JSON.stringify([...acked, ...last.slice(0, k)]));

    const names = segmentFiles(base);
    const lastName = path.basename(lastSeg);
    const contents = new Map(names.map((n) => [n, fs.readFileSync(path.join(base, n))]));
    let checked = 0;
    for (let cut = start; cut <= end; cut++) {
      // copy the log dir, with the last segment cut at `cut`
      const work = fs.mkdtempSync(path.join(os.tmpdir(), "cw-walcut-"));
      for (const [n, bytes] of contents) fs.writeFileSync(path.join(work, n), n === lastName ? bytes.subarray(0, cut) : bytes);
      const whole = boundaries.filter((b) => b <= cut).length - 1; // frames fully before `cut`
      const { wal: w, entries, report } = await Wal.open({ dir: work, fsync: "batch", ...opts, logger: silent });
      if (JSON.stringify(entries.map((e) => e.record)) !== expected[whole]) {
        expect(entries.map((e) => e.record)).toEqual(JSON.parse(expected[whole]!)); // shows the diff
      }
      if (entries.some((e, i) => e.index !== i + 1)) {
        expect(entries.map((e) => e.index)).toEqual(Array.from({ length: entries.length }, (_, i) => i + 1));
      }
      expect(report.tornTailBytes).toBe(cut - boundaries[whole]!);
      expect(report.repairedAt).toBeUndefined();
      expect(fs.statSync(path.join(work, lastName)).size).toBe(boundaries[whole]);
      // the log keeps working after the cut
      const { firstIndex } = w.append(1, ["after-recovery"]);
      expect(firstIndex).toBe(acked.length + whole + 1);
      expect(await w.flush()).toBe(firstIndex);
      await w.close();
      if (cut === end || cut % 97 === 0) {
        const again = await Wal.open({ dir: work, fsync: "batch", ...opts });
        expect(again.entries.at(-1)!.record).toBe("after-recovery");
        expect(again.report.tornTailBytes).toBe(0);
        await again.wal.close();
      }
      fs.rmSync(work, { recursive: true, force: true });
      checked++;
    }
    expect(checked).toBe(end - start + 1);
  });

  it("cuts garbage appended at the tail", async () => {
    const dir = tmpDir();
    const acked = await writeLog(dir, {}, 3, 10);
    const seg = path.join(dir, segmentFiles(dir).at(-1)!);
    for (const garbage of [Buffer.from([0xff, 0x00, 0x13]), Buffer.alloc(4096), Buffer.from("not a frame at all, just text")]) {
      fs.appendFileSync(seg, garbage);
      const { wal, entries, report } = await Wal.open({ dir, fsync: "batch", logger: silent });
      expect(entries.map((e) => e.record)).toEqual(acked);
      expect(report.tornTailBytes).toBe(garbage.length);
      await wal.close();
    }
  });

  it("cuts a frame whose length field claims more bytes than the file has", async () => {
    const dir = tmpDir();
    const acked = await writeLog(dir, {}, 2, 5);
    const seg = path.join(dir, segmentFiles(dir).at(-1)!);
    const header = Buffer.alloc(12);
    header.writeUInt32LE(1000, 0);
    fs.appendFileSync(seg, header);
    const { wal, entries, report } = await Wal.open({ dir, fsync: "batch", logger: silent });
    expect(entries.map((e) => e.record)).toEqual(acked);
    expect(report.tornTailBytes).toBe(12);
    await wal.close();
  });

  it("accepts an empty last segment created at a rollover", async () => {
    const dir = tmpDir();
    const acked = await writeLog(dir, {}, 1, 5);
    fs.writeFileSync(path.join(dir, "00000000000000000006.wal"), Buffer.alloc(0));
    const { wal, entries } = await Wal.open({ dir, fsync: "batch" });
    expect(entries.map((e) => e.record)).toEqual(acked);
    expect(wal.append(1, ["x"]).firstIndex).toBe(6);
    await wal.close();
    expect((await Wal.open({ dir, fsync: "batch" })).entries.length).toBe(6);
  });
});

describe("recovery from corruption in the middle", () => {
  async function corruptAndOpen(dir: string, file: string, offset: number, repair = false) {
    const buf = fs.readFileSync(file);
    buf[offset] = buf[offset]! ^ 0x40;
    fs.writeFileSync(file, buf);
    return Wal.open({ dir, fsync: "batch", repair, logger: silent });
  }

  it("refuses a bad frame in an earlier segment, naming file and offset; repair keeps the prefix", async () => {
    const dir = tmpDir();
    const acked = await writeLog(dir, { segmentBytesMax: 2048 }, 10, 10);
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThan(3);
    const victim = path.join(dir, files[1]!);
    const firstOfVictim = Number(files[1]!.slice(0, 20));
    const bounds = frameBoundaries(victim, 0);
    const frameStart = bounds[2]!; // third frame of the second segment
    const backup = tmpDir();
    copyDir(dir, backup);

    const err = await corruptAndOpen(dir, victim, frameStart + 12).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalCorruptionError);
    const ce = err as WalCorruptionError;
    expect(ce.code).toBe("WAL_CORRUPT");
    expect(ce.file).toBe(victim);
    expect(ce.offset).toBe(frameStart);
    expect(ce.message).toContain(victim);
    expect(ce.message).toContain(`offset ${frameStart}`);

    // with repair the log is cut right before the bad frame; later segments are gone
    const { wal, entries, report } = await Wal.open({ dir, fsync: "batch", repair: true, logger: silent });
    expect(entries.map((e) => e.record)).toEqual(acked.slice(0, firstOfVictim - 1 + 2));
    expect(report.repairedAt).toEqual({ file: victim, offset: frameStart });
    expect(segmentFiles(dir)).toEqual(files.slice(0, 2));
    expect(wal.append(1, ["next"]).firstIndex).toBe(firstOfVictim + 2);
    await wal.close();
    expect((await Wal.open({ dir, fsync: "batch" })).entries.at(-1)!.record).toBe("next");

    // a bad length field in the middle is corruption too (not mistaken for a torn tail)
    const lengthCase = tmpDir();
    copyDir(backup, lengthCase);
    const lenErr = await corruptAndOpen(lengthCase, path.join(lengthCase, files[1]!), frameStart + 3).catch((e: unknown) => e);
    expect(lenErr).toBeInstanceOf(WalCorruptionError);
    expect((lenErr as WalCorruptionError).offset).toBe(frameStart);
  });

  it("refuses a bad frame in the last segment that is followed by valid frames", async () => {
    const dir = tmpDir();
    const acked = await writeLog(dir, {}, 5, 10);
    const seg = path.join(dir, segmentFiles(dir)[0]!);
    const bounds = frameBoundaries(seg, 0);
    const err = await corruptAndOpen(dir, seg, bounds[20]! + 9).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalCorruptionError);
    expect((err as WalCorruptionError).offset).toBe(bounds[20]);
    const { wal, entries, report } = await Wal.open({ dir, fsync: "batch", repair: true, logger: silent });
    expect(entries.map((e) => e.record)).toEqual(acked.slice(0, 20));
    expect(report.repairedAt).toEqual({ file: seg, offset: bounds[20] });
    await wal.close();
  });

  it("refuses a gap between segments and a log without its start", async () => {
    const dir = tmpDir();
    await writeLog(dir, { segmentBytesMax: 2048 }, 6, 10);
    const files = segmentFiles(dir);
    const backup = tmpDir();
    copyDir(dir, backup);
    fs.unlinkSync(path.join(dir, files[2]!));
    const gap = await Wal.open({ dir, fsync: "batch" }).catch((e: unknown) => e);
    expect(gap).toBeInstanceOf(WalCorruptionError);
    expect((gap as WalCorruptionError).file).toBe(path.join(dir, files[3]!));
    fs.unlinkSync(path.join(backup, files[0]!));
    const noStart = await Wal.open({ dir: backup, fsync: "batch" }).catch((e: unknown) => e);
    expect(noStart).toBeInstanceOf(WalCorruptionError);
    expect((noStart as Error).message).toContain("no snapshot");
  });

  it("refuses a corrupt snapshot", async () => {
    const dir = tmpDir();
    const { wal } = await Wal.open({ dir, fsync: "batch" });
    wal.append(1, [rec(1), rec(2)]);
    await wal.saveSnapshot(2, 1, { big: "state".repeat(100) });
    await wal.close();
    const snap = path.join(dir, "00000000000000000002.snap");
    const buf = fs.readFileSync(snap);
    buf[100] = buf[100]! ^ 1;
    fs.writeFileSync(snap, buf);
    const err = await Wal.open({ dir, fsync: "batch", repair: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalCorruptionError);
    expect((err as WalCorruptionError).file).toBe(snap);
    expect((err as Error).message).toContain("snapshot");
  });

  it("finishes an interrupted snapshot: leftover tmp file and covered segments", async () => {
    const dir = tmpDir();
    const { wal } = await Wal.open({ dir, fsync: "batch", segmentBytesMax: 2048 });
    wal.append(1, Array.from({ length: 60 }, (_, i) => rec(i + 1)));
    await wal.flush();
    const files = segmentFiles(dir);
    const backup = tmpDir();
    copyDir(dir, backup);
    await wal.saveSnapshot(45, 1, "s45");
    await wal.close();
    // crash after the snapshot was renamed but before any segment was deleted
    fs.copyFileSync(path.join(dir, "00000000000000000045.snap"), path.join(backup, "00000000000000000045.snap"));
    fs.writeFileSync(path.join(backup, "snapshot.tmp"), "half a snapshot");
    const { wal: w, snapshot, entries } = await Wal.open({ dir: backup, fsync: "batch" });
    expect(snapshot!.index).toBe(45);
    expect(entries.map((e) => e.index)).toEqual(Array.from({ length: 15 }, (_, i) => 46 + i));
    expect(fs.existsSync(path.join(backup, "snapshot.tmp"))).toBe(false);
    expect(segmentFiles(backup).length).toBeLessThan(files.length);
    await w.close();
  });

  it("finishes an interrupted snapshot install: the old conflicting log is discarded", async () => {
    const dir = tmpDir();
    const { wal } = await Wal.open({ dir, fsync: "batch", segmentBytesMax: 2048 });
    wal.append(1, Array.from({ length: 40 }, (_, i) => rec(i + 1)));
    await wal.flush();
    const backup = tmpDir();
    copyDir(dir, backup);
    await wal.saveSnapshot(25, 2, "leader-25"); // our entry 25 has epoch 1: the log is replaced
    await wal.close();
    // crash after the snapshot was installed but before the old segments were deleted
    fs.copyFileSync(path.join(dir, "00000000000000000025.snap"), path.join(backup, "00000000000000000025.snap"));
    const r = await Wal.open({ dir: backup, fsync: "batch", logger: silent });
    expect(r.snapshot).toEqual({ index: 25, epoch: 2, state: "leader-25" });
    expect(r.entries).toEqual([]);
    expect(r.wal.appendedIndex).toBe(25);
    expect(r.wal.lastEpoch()).toBe(2);
    expect(segmentFiles(backup)).toEqual([]);
    await r.wal.close();
  });
});

// ------------------------------------------------------------------ model-based property

type Cmd =
  | { t: "append"; n: number; bump: boolean; size: number }
  | { t: "flush" }
  | { t: "flushNoAwait" }
  | { t: "follower"; n: number; back: number; m: number }
  | { t: "truncate"; back: number; awaitIt: boolean }
  | { t: "snapshot"; back: number }
  | { t: "install"; ahead: number }
  | { t: "read"; back: number; max: number }
  | { t: "reopen" }
  | { t: "crashCopy" };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ t: fc.constant("append" as const), n: fc.integer({ min: 0, max: 25 }), bump: fc.boolean(), size: fc.integer({ min: 1, max: 300 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("flush" as const) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("flushNoAwait" as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("follower" as const),
      n: fc.integer({ min: 1, max: 20 }),
      back: fc.integer({ min: 1, max: 30 }),
      m: fc.integer({ min: 0, max: 10 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("truncate" as const), back: fc.integer({ min: 1, max: 40 }), awaitIt: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("snapshot" as const), back: fc.integer({ min: 0, max: 30 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("install" as const), ahead: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("read" as const), back: fc.integer({ min: 0, max: 60 }), max: fc.integer({ min: 0, max: 50 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("reopen" as const) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("crashCopy" as const) }) },
);

interface Model {
  entries: LogEntry[]; // every entry after the snapshot, index order
  snapshot: { index: number; epoch: number; state: unknown } | null;
}

function modelLast(m: Model): number {
  return m.entries.at(-1)?.index ?? m.snapshot?.index ?? 0;
}
function modelLastEpoch(m: Model): number {
  return m.entries.at(-1)?.epoch ?? m.snapshot?.epoch ?? 0;
}

describe("property: the WAL behaves like an array", () => {
  // recentEntriesKept: 0 reads every written entry from disk; 5 mixes memory and disk reads.
  it.each([0, 5])("random append/flush/truncate/snapshot/read/reopen sequences match the model (recentEntriesKept %i)", async (recentEntriesKept) => {
    const opts = { fsync: "batch" as const, segmentBytesMax: 1024, batchBytesMax: 1500, logger: silent, recentEntriesKept };
    await fc.assert(
      fc.asyncProperty(fc.array(cmdArb, { minLength: 1, maxLength: 50 }), async (cmds) => {
        const dir = tmpDir();
        let { wal } = await Wal.open({ dir, ...opts });
        const m: Model = { entries: [], snapshot: null };
        let epoch = 1;
        const pending: Array<Promise<unknown>> = [];
        const settle = async () => {
          await Promise.all(pending.splice(0));
        };
        const check = (entries: LogEntry[], snapshot: Model["snapshot"]) => {
          expect(snapshot).toEqual(m.snapshot);
          expect(entries).toEqual(m.entries);
        };
        try {
          for (const c of cmds) {
            switch (c.t) {
              case "append": {
                if (c.bump) epoch++;
                const records = Array.from({ length: c.n }, (_, i) => ({ i: modelLast(m) + i + 1, pad: "x".repeat(c.size) }));
                const { firstIndex } = wal.append(epoch, records);
                expect(firstIndex).toBe(modelLast(m) + 1);
                records.forEach((record, i) => m.entries.push({ index: firstIndex + i, epoch, record }));
                break;
              }
              case "flush": {
                const d = await wal.flush();
                await settle();
                expect(d).toBe(modelLast(m));
                break;
              }
              case "flushNoAwait": {
                // leaves a batch in flight for the next commands (truncations, reads, appends)
                pending.push(wal.flush());
                break;
              }
              case "follower": {
                // append, start writing, then replace a suffix without awaiting anything: the
                // truncation cuts into the batch in flight and the new entries queue behind it
                const first = modelLast(m) + 1;
                const old = Array.from({ length: c.n }, (_, i) => ({ old: first + i }));
                wal.append(epoch, old);
                old.forEach((record, i) => m.entries.push({ index: first + i, epoch, record }));
                pending.push(wal.flush());
                const from = modelLast(m) - c.back + 1;
                if (from <= (m.snapshot?.index ?? 0) || from < 1) break;
                pending.push(wal.truncateSuffix(from));
                m.entries = m.entries.filter((e) => e.index < from);
                epoch++;
                const fresh = Array.from({ length: c.m }, (_, i) => ({ index: from + i, epoch, record: { fresh: from + i } }));
                wal.appendEntries(fresh);
                m.entries.push(...fresh);
                break;
              }
              case "truncate": {
                const from = modelLast(m) - c.back + 1;
                if (from <= (m.snapshot?.index ?? 0) || from < 1) break;
                const p = wal.truncateSuffix(from);
                m.entries = m.entries.filter((e) => e.index < from);
                if (c.awaitIt) await p;
                else pending.push(p);
                expect(wal.appendedIndex).toBe(from - 1);
                break;
              }
              case "snapshot": {
                const index = modelLast(m) - c.back;
                if (index <= (m.snapshot?.index ?? 0)) break;
                const e = m.entries.find((x) => x.index === index)!;
                const state = { upTo: index, count: m.entries.filter((x) => x.index <= index).length };
                await wal.saveSnapshot(index, e.epoch, state);
                m.snapshot = { index, epoch: e.epoch, state };
                m.entries = m.entries.filter((x) => x.index > index);
                break;
              }
              case "install": {
                const index = modelLast(m) + c.ahead;
                epoch++;
                const state = { installed: index };
                await wal.saveSnapshot(index, epoch, state);
                m.snapshot = { index, epoch, state };
                m.entries = [];
                break;
              }
              case "read": {
                const from = Math.max(1, modelLast(m) - c.back);
                if (from < wal.firstIndex) {
                  await expect(wal.readFrom(from, c.max)).rejects.toMatchObject({ code: "WAL_COMPACTED" });
                  expect(from).toBeLessThanOrEqual(m.snapshot?.index ?? 0);
                  break;
                }
                const got = await wal.readFrom(from, c.max);
                // entries at or below the snapshot may still be readable; the model only has later ones
                const snapIndex = m.snapshot?.index ?? 0;
                expect(got.map((e) => e.index)).toEqual(
                  Array.from({ length: Math.max(0, Math.min(c.max, modelLast(m) - from + 1)) }, (_, i) => from + i),
                );
                expect(got.filter((e) => e.index > snapIndex)).toEqual(m.entries.filter((e) => e.index >= from && e.index < from + c.max));
                break;
              }
              case "reopen": {
                await settle();
                await wal.close();
                const r = await Wal.open({ dir, ...opts });
                wal = r.wal;
                check(r.entries, r.snapshot);
                expect(r.report.tornTailBytes).toBe(0);
                break;
              }
              case "crashCopy": {
                // A process crash right after a flush: the files as they are, with no close().
                await wal.flush();
                await settle();
                const copy = tmpDir();
                copyDir(dir, copy);
                const r = await Wal.open({ dir: copy, ...opts });
                check(r.entries, r.snapshot);
                await r.wal.close();
                break;
              }
            }
            expect(wal.appendedIndex).toBe(modelLast(m));
            expect(wal.lastEpoch()).toBe(modelLastEpoch(m));
            expect(wal.durableIndex).toBeLessThanOrEqual(wal.appendedIndex);
            epoch = Math.max(epoch, wal.lastEpoch());
          }
          await settle();
          await wal.close();
          const final = await Wal.open({ dir, ...opts });
          check(final.entries, final.snapshot);
          await final.wal.close();
        } finally {
          await settle().catch(() => undefined);
          await wal.close().catch(() => undefined);
        }
      }),
      { numRuns: Number(process.env.WAL_PROPERTY_RUNS ?? 100) },
    );
  });
});

describe("errors carry codes", () => {
  it("WalError codes are stable", async () => {
    const dir = tmpDir();
    const { wal } = await Wal.open({ dir, fsync: "batch" });
    const p1 = wal.saveSnapshot(1, 1, "s");
    await expect(wal.saveSnapshot(2, 1, "t")).rejects.toMatchObject({ code: "WAL_BUSY" });
    await p1;
    await wal.close();
    await expect(wal.flush()).rejects.toBeInstanceOf(WalError);
  });
});

describe("the power-loss model (fault-hooks.ts)", () => {
  it("marks each segment's synced length; a simulated power cut keeps exactly what was flushed", async () => {
    const dir = tmpDir();
    const faults = new FaultHooks(true, 0);
    const opts = { dir, fsync: "batch" as const, segmentBytesMax: 4096, faults, logger: silent };
    const { wal } = await Wal.open(opts);
    const flushed = Array.from({ length: 120 }, (_, i) => rec(i + 1));
    wal.append(1, flushed);
    await wal.flush();
    await wal.close();
    const segs = segmentFiles(dir);
    expect(segs.length).toBeGreaterThan(2);
    for (const s of segs) expect(Number(fs.readFileSync(path.join(dir, `${s}.synced`), "utf8"))).toBe(fs.statSync(path.join(dir, s)).size);
    // Bytes written but never fsynced: a tail on the last segment, and a segment never synced.
    const last = path.join(dir, segs.at(-1)!);
    const lastSize = fs.statSync(last).size;
    fs.appendFileSync(last, Buffer.alloc(300, 7));
    fs.writeFileSync(path.join(dir, "99999999999999999999.wal"), "unsynced");
    const report = await simulatePowerLoss(dir);
    expect(report.truncated).toEqual([{ file: last, bytes: 300 }]);
    expect(report.deleted).toEqual([path.join(dir, "99999999999999999999.wal")]);
    expect(fs.statSync(last).size).toBe(lastSize);
    const reopened = await Wal.open(opts);
    expect(reopened.entries.map((e) => e.record)).toEqual(flushed);
    expect(reopened.report.tornTailBytes).toBe(0);
    await reopened.wal.close();
  });

  it("a segment re-created under the name of a deleted one is not covered by the old mark before its first fsync", async () => {
    const dir = tmpDir();
    // A slow fsync (300 ms) leaves time to look at the file between its write and its fsync.
    const { wal } = await Wal.open({ dir, fsync: "batch", segmentBytesMax: 4096, faults: new FaultHooks(true, 300), logger: silent });
    const records = Array.from({ length: 80 }, (_, i) => rec(i + 1));
    wal.append(1, records);
    await wal.flush();
    const lastSeg = path.join(dir, segmentFiles(dir).at(-1)!);
    const lastFirst = Number(path.basename(lastSeg, ".wal"));
    expect(fs.existsSync(`${lastSeg}.synced`)).toBe(true);
    await wal.truncateSuffix(lastFirst - 1); // deletes the last segment, leaving its mark behind
    expect(fs.existsSync(lastSeg)).toBe(false);
    wal.append(1, records.slice(lastFirst - 2)); // the same bytes: the same segment comes back
    const flushing = wal.flush();
    await vi.waitUntil(() => fs.existsSync(lastSeg), { timeout: 2000, interval: 5 });
    expect(fs.existsSync(`${lastSeg}.synced`), "a mark while the new file is unsynced").toBe(false);
    await flushing;
    expect(Number(fs.readFileSync(`${lastSeg}.synced`, "utf8"))).toBe(fs.statSync(lastSeg).size);
    await wal.close();
  });
});
