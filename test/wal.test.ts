import { Packr } from "msgpackr";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FaultHooks } from "../wal/fault-hooks.js";
import { crc32c, type LogEntry, Wal, WalError, type WalOptions } from "../wal/index.js";

const dirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "cw-wal-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

/** ~100-byte job-like record. */
function rec(i: number): { jobId: string; tenant: string; at: number; payload: string } {
  return { jobId: `job-${String(i).padStart(8, "0")}`, tenant: "acme", at: 1_735_689_600_000 + i, payload: "p".repeat(40) };
}

async function openWal(dir: string, extra: Partial<WalOptions> = {}) {
  return Wal.open({ dir, fsync: "batch", ...extra });
}

function segmentFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith(".wal")).sort();
}

function expectCode(err: unknown, code: string): void {
  expect(err).toBeInstanceOf(WalError);
  expect((err as WalError).code).toBe(code);
}

describe("crc32c", () => {
  it("matches the standard check value and continues across buffers", () => {
    const data = Buffer.from("123456789");
    expect(crc32c(data)).toBe(0xe3069283);
    expect(crc32c(data, 4, 9, crc32c(data, 0, 4))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
  });
});

describe("Wal append / flush / reopen", () => {
  it("returns the same entries after reopening", async () => {
    const dir = tmpDir();
    const { wal, entries, snapshot, report } = await openWal(dir);
    expect(entries).toEqual([]);
    expect(snapshot).toBeNull();
    expect(report).toEqual({ segments: 0, entries: 0, tornTailBytes: 0 });
    expect(wal.lastEpoch()).toBe(0);

    const records: unknown[] = [rec(1), "text", 42, null, [1, 2, { a: true }], { nested: { deep: [1.5, -3] } }, 2 ** 40];
    expect(wal.append(3, records)).toEqual({ firstIndex: 1, lastIndex: 7 });
    expect(wal.appendedIndex).toBe(7);
    expect(wal.durableIndex).toBe(0); // nothing written before flush
    expect(segmentFiles(dir)).toEqual([]);
    expect(await wal.flush()).toBe(7);
    expect(wal.durableIndex).toBe(7);
    expect(wal.append(5, [rec(8)])).toEqual({ firstIndex: 8, lastIndex: 8 });
    await wal.close();

    const reopened = await openWal(dir);
    expect(reopened.entries).toEqual([
      ...records.map((record, i) => ({ index: i + 1, epoch: 3, record })),
      { index: 8, epoch: 5, record: rec(8) },
    ]);
    expect(reopened.report).toEqual({ segments: 1, entries: 8, tornTailBytes: 0 });
    expect(reopened.wal.appendedIndex).toBe(8);
    expect(reopened.wal.durableIndex).toBe(8);
    expect(reopened.wal.lastEpoch()).toBe(5);
    expect(reopened.wal.epochAt(7)).toBe(3);
    expect(reopened.wal.epochAt(8)).toBe(5);
    expect(reopened.wal.append(5, [rec(9)]).firstIndex).toBe(9);
    await reopened.wal.close();
    expect(segmentFiles(dir)).toEqual(["00000000000000000001.wal"]);
  });

  it("shares one write and fsync among concurrent flush callers (group commit)", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir);
    const durableSeen: number[] = [];
    wal.onDurable((d) => durableSeen.push(d));
    const flushes: Array<Promise<number>> = [];
    for (let b = 0; b < 50; b++) {
      const { lastIndex } = wal.append(1, Array.from({ length: 100 }, (_, i) => rec(b * 100 + i)));
      flushes.push(wal.flush().then((d) => (expect(d).toBeGreaterThanOrEqual(lastIndex), d)));
    }
    await Promise.all(flushes);
    const s = wal.stats();
    expect(s.records).toBe(5000);
    // 50 flush calls issued back to back: far fewer batches than calls, never one per record.
    expect(s.batches).toBeLessThan(50);
    expect(durableSeen.at(-1)).toBe(5000);
    expect([...durableSeen].sort((a, b) => a - b)).toEqual(durableSeen);
    await wal.close();
    expect((await openWal(dir)).entries.length).toBe(5000);
  });

  it("startFlush commits without a promise: onDurable hears it", async () => {
    const { wal } = await openWal(tmpDir());
    const durable = new Promise<number>((resolve) => wal.onDurable(resolve));
    const { lastIndex } = wal.append(1, [rec(1), rec(2)]);
    wal.startFlush();
    expect(await durable).toBe(lastIndex);
    await wal.close();
  });

  it("a failed batch fails the log once: flush() rejects, onFailure hears it, nothing more is written", async () => {
    class DiskGone extends FaultHooks {
      override async beforeFsync(): Promise<void> {
        throw Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" });
      }
    }
    const dir = tmpDir();
    const { wal } = await openWal(dir, { faults: new DiskGone(false, 0) });
    const heard: WalError[] = [];
    wal.onFailure((failure) => heard.push(failure));
    wal.append(1, [rec(1)]);
    wal.startFlush();
    const flushed = wal.flush();
    await expect(flushed).rejects.toBeInstanceOf(WalError);
    expect(heard).toHaveLength(1);
    expectCode(heard[0], "WAL_FAILED");
    expect(heard[0]!.message).toContain("EIO");
    expect(() => wal.append(1, [rec(2)])).toThrow(WalError);
    wal.startFlush(); // a failed log does nothing, and says nothing twice
    await expect(wal.flush()).rejects.toBe(heard[0]);
    expect(heard).toHaveLength(1);
    await wal.close(); // a failed log still lets go of its files
  });

  it("always mode writes and fsyncs each append call as its own batch", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { fsync: "always" });
    const flushes: Array<Promise<number>> = [];
    for (let b = 0; b < 10; b++) {
      wal.append(1, [rec(b * 2), rec(b * 2 + 1)]);
      flushes.push(wal.flush());
    }
    await Promise.all(flushes);
    expect(wal.stats().batches).toBe(10);
    expect(wal.stats().lastBatchRecords).toBe(2);
    await wal.close();
  });

  it("off mode writes without fsync and still reopens", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { fsync: "off" });
    wal.append(1, [rec(1), rec(2)]);
    expect(await wal.flush()).toBe(2);
    expect(wal.stats().lastFsyncMs).toBe(0);
    await wal.close();
    expect((await openWal(dir, { fsync: "off" })).entries.map((e) => e.index)).toEqual([1, 2]);
  });

  it("splits a large pending backlog into batches bounded by batchBytesMax", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { batchBytesMax: 4096 });
    wal.append(1, Array.from({ length: 400 }, (_, i) => rec(i)));
    await wal.flush();
    expect(wal.stats().batches).toBeGreaterThan(5);
    expect(wal.durableIndex).toBe(400);
    await wal.close();
  });

  it("rolls over to segment files named by their first index", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { segmentBytesMax: 4096 });
    for (let b = 0; b < 10; b++) {
      wal.append(1, Array.from({ length: 30 }, (_, i) => rec(b * 30 + i)));
      await wal.flush();
    }
    await wal.close();
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThan(5);
    expect(files[0]).toBe("00000000000000000001.wal");
    for (const f of files) expect(fs.statSync(path.join(dir, f)).size).toBeLessThanOrEqual(4096);
    const reopened = await openWal(dir, { segmentBytesMax: 4096 });
    expect(reopened.entries.map((e) => e.record)).toEqual(Array.from({ length: 300 }, (_, i) => rec(i)));
    expect(reopened.report.segments).toBe(files.length);
    // the first index of every file is its name
    for (const f of files) {
      const first = Number(f.slice(0, 20));
      expect(reopened.entries[first - 1]!.index).toBe(first);
    }
    await reopened.wal.close();
  });

  it("refuses bad input with codes and keeps an append call all-or-nothing", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir);
    wal.append(5, [rec(1)]);
    expectCode(catchSync(() => wal.append(4, [rec(2)])), "WAL_BAD_ARGUMENT"); // epoch went back
    expectCode(catchSync(() => wal.append(-1, [])), "WAL_BAD_ARGUMENT");
    expectCode(catchSync(() => wal.appendEntries([{ index: 3, epoch: 5, record: 1 }])), "WAL_BAD_ARGUMENT"); // gap
    const bad = { toJSON: 1, big: 10n ** 30n }; // msgpackr cannot encode this bigint
    expectCode(catchSync(() => wal.append(5, [rec(2), rec(3), bad])), "WAL_BAD_ARGUMENT");
    expect(wal.appendedIndex).toBe(1);
    wal.append(5, [rec(2)]);
    await wal.flush();
    await wal.close();
    expectCode(catchSync(() => wal.append(5, [rec(3)])), "WAL_CLOSED");
    expect((await openWal(dir)).entries.map((e) => e.record)).toEqual([rec(1), rec(2)]);
  });

  it("pushes back when too many bytes wait for a flush", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { pendingBytesMax: 2000 });
    wal.append(1, Array.from({ length: 30 }, (_, i) => rec(i)));
    expectCode(catchSync(() => wal.append(1, [rec(99)])), "WAL_BACKPRESSURE");
    await wal.flush();
    wal.append(1, [rec(99)]);
    await wal.close();
  });
});

describe("Wal snapshots", () => {
  it("deletes covered segments and reopens with the snapshot plus later entries", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { segmentBytesMax: 2048 });
    for (let i = 1; i <= 100; i++) wal.append(i <= 50 ? 1 : 2, [rec(i)]);
    await wal.flush();
    const before = segmentFiles(dir);
    expect(before.length).toBeGreaterThan(4);

    await wal.saveSnapshot(60, 2, { jobs: Array.from({ length: 60 }, (_, i) => rec(i + 1)) });
    const after = segmentFiles(dir);
    expect(after.length).toBeLessThan(before.length);
    // no remaining segment is wholly covered, except possibly the last one
    expect(Number(after[0]!.slice(0, 20))).toBeLessThanOrEqual(61);
    expect(Number(after[1]!.slice(0, 20))).toBeGreaterThan(61);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith(".snap"))).toEqual(["00000000000000000060.snap"]);
    expect(wal.snapshotIndex).toBe(60);
    expect(wal.firstIndex).toBeLessThanOrEqual(61);
    await expect(wal.readFrom(1, 10)).rejects.toMatchObject({ code: "WAL_COMPACTED" });
    expect((await wal.readFrom(61, 5)).map((e) => e.index)).toEqual([61, 62, 63, 64, 65]);
    await expect(wal.truncateSuffix(60)).rejects.toMatchObject({ code: "WAL_BAD_ARGUMENT" });
    wal.append(2, [rec(101)]);
    await wal.close();

    const reopened = await openWal(dir, { segmentBytesMax: 2048 });
    expect(reopened.snapshot).toEqual({ index: 60, epoch: 2, state: { jobs: Array.from({ length: 60 }, (_, i) => rec(i + 1)) } });
    expect(reopened.entries.map((e) => e.index)).toEqual(Array.from({ length: 41 }, (_, i) => 61 + i));
    expect(reopened.entries.at(-1)!.record).toEqual(rec(101));
    expect(reopened.wal.epochAt(60)).toBe(2);

    // a second snapshot replaces the first
    await reopened.wal.saveSnapshot(101, 2, "state-101");
    expect(fs.readdirSync(dir).filter((n) => n.endsWith(".snap"))).toEqual(["00000000000000000101.snap"]);
    await reopened.wal.close();
    const third = await openWal(dir);
    expect(third.snapshot).toEqual({ index: 101, epoch: 2, state: "state-101" });
    expect(third.entries).toEqual([]);
    expect(third.wal.appendedIndex).toBe(101);
    expect(third.wal.lastEpoch()).toBe(2);
    expect(third.wal.append(3, ["x"]).firstIndex).toBe(102);
    await third.wal.close();
  });

  it("a follower installing a snapshot ahead of its log discards the log and continues after it", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { segmentBytesMax: 2048 });
    wal.append(1, Array.from({ length: 40 }, (_, i) => rec(i)));
    await wal.flush();
    await wal.saveSnapshot(500, 7, { leader: "state" });
    expect(wal.appendedIndex).toBe(500);
    expect(wal.lastEpoch()).toBe(7);
    expect(segmentFiles(dir)).toEqual([]);
    wal.appendEntries([
      { index: 501, epoch: 7, record: "a" },
      { index: 502, epoch: 8, record: "b" },
    ]);
    await wal.close();
    const reopened = await openWal(dir);
    expect(reopened.snapshot).toEqual({ index: 500, epoch: 7, state: { leader: "state" } });
    expect(reopened.entries).toEqual([
      { index: 501, epoch: 7, record: "a" },
      { index: 502, epoch: 8, record: "b" },
    ]);
    await reopened.wal.close();
  });

  it("a snapshot whose entry has another epoch replaces the conflicting log", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir);
    wal.append(1, Array.from({ length: 10 }, (_, i) => rec(i)));
    await wal.flush();
    await wal.saveSnapshot(5, 2, "leader-state"); // our entry 5 has epoch 1: conflict
    expect(wal.appendedIndex).toBe(5);
    await wal.close();
    const reopened = await openWal(dir);
    expect(reopened.entries).toEqual([]);
    expect(reopened.wal.appendedIndex).toBe(5);
    expect(reopened.wal.lastEpoch()).toBe(2);
    await reopened.wal.close();
  });

  it("snapshots a large state (100k jobs) and reads it back", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir);
    wal.append(1, ["x"]);
    await wal.flush();
    const jobs = Array.from({ length: 100_000 }, (_, i) => ({
      id: `job-${i}`,
      tenant: `t${i % 100}`,
      cron: "*/5 * * * *",
      nextFireAtMs: 1_735_689_600_000 + i,
      attempts: i % 5,
    }));
    await wal.saveSnapshot(1, 1, { jobs });
    await wal.close();
    const reopened = await openWal(dir);
    expect((reopened.snapshot!.state as { jobs: unknown[] }).jobs).toEqual(jobs);
    await reopened.wal.close();
  });
});

describe("Wal truncateSuffix and readFrom", () => {
  it("raw reads give each record's encoded bytes, from memory and from disk, and a follower stores them as they are", async () => {
    const { wal } = await openWal(tmpDir(), { segmentBytesMax: 2048 });
    wal.append(3, Array.from({ length: 40 }, (_, i) => rec(i + 1)));
    const fromMemory = await wal.readFrom(1, 40, { raw: true });
    await wal.flush();
    const fromDisk = await wal.readFrom(1, 40, { raw: true });
    const packr = new Packr({ useRecords: false });
    for (const entries of [fromMemory, fromDisk]) {
      expect(entries.map((e) => [e.index, e.epoch])).toEqual(Array.from({ length: 40 }, (_, i) => [i + 1, 3]));
      expect(entries.map((e) => packr.unpack(e.bytes!))).toEqual(Array.from({ length: 40 }, (_, i) => rec(i + 1)));
    }
    // A follower appends the bytes (the record object is only for applying) and reads back the same.
    const follower = (await openWal(tmpDir())).wal;
    follower.appendEntries(fromDisk.map((e) => ({ ...e, record: undefined })));
    await follower.flush();
    expect((await follower.readFrom(1, 40)).map((e) => e.record)).toEqual(Array.from({ length: 40 }, (_, i) => rec(i + 1)));
    await wal.close();
    await follower.close();
  });

  it("drops a durable suffix and continues with new entries", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { segmentBytesMax: 2048 });
    wal.append(1, Array.from({ length: 60 }, (_, i) => rec(i + 1)));
    await wal.flush();
    const filesBefore = segmentFiles(dir).length;
    await wal.truncateSuffix(20);
    expect(wal.appendedIndex).toBe(19);
    expect(wal.durableIndex).toBe(19);
    expect(segmentFiles(dir).length).toBeLessThan(filesBefore);
    wal.appendEntries([
      { index: 20, epoch: 2, record: "new-20" },
      { index: 21, epoch: 2, record: "new-21" },
    ]);
    await wal.flush();
    expect((await wal.readFrom(18, 10)).map((e) => e.record)).toEqual([rec(18), rec(19), "new-20", "new-21"]);
    await wal.close();
    const reopened = await openWal(dir);
    expect(reopened.entries.map((e) => e.record)).toEqual([
      ...Array.from({ length: 19 }, (_, i) => rec(i + 1)),
      "new-20",
      "new-21",
    ]);
    expect(reopened.wal.lastEpoch()).toBe(2);
    await reopened.wal.close();
  });

  it("truncates at a segment's first index and entries that were never written", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { segmentBytesMax: 2048 });
    wal.append(1, Array.from({ length: 40 }, (_, i) => rec(i + 1)));
    await wal.flush();
    const second = Number(segmentFiles(dir)[1]!.slice(0, 20));
    await wal.truncateSuffix(second); // the whole second segment file becomes empty, later ones go
    expect(wal.appendedIndex).toBe(second - 1);
    wal.append(1, ["a", "b", "c"]); // never flushed ...
    await wal.truncateSuffix(second + 1); // ... and partly truncated in memory only
    expect(wal.appendedIndex).toBe(second);
    expect(await wal.flush()).toBe(second);
    await wal.close();
    const reopened = await openWal(dir);
    expect(reopened.entries.length).toBe(second);
    expect(reopened.entries.at(-1)!.record).toBe("a");
    await reopened.wal.close();
  });

  it("orders a truncation issued while a batch is being written (follower pattern, no await)", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { segmentBytesMax: 2048 });
    wal.append(1, Array.from({ length: 50 }, (_, i) => rec(i + 1)));
    const f1 = wal.flush(); // batch 1..50 in flight
    wal.append(1, [rec(51), rec(52)]);
    const t = wal.truncateSuffix(30); // cuts into the in-flight batch and drops the pending frames
    wal.appendEntries([{ index: 30, epoch: 2, record: "x30" }]);
    const f2 = wal.flush();
    await Promise.all([f1, t, f2]);
    expect(wal.durableIndex).toBe(30);
    expect((await wal.readFrom(28, 5)).map((e) => e.record)).toEqual([rec(28), rec(29), "x30"]);
    await wal.close();
    const reopened = await openWal(dir);
    expect(reopened.entries.map((e) => e.record)).toEqual([...Array.from({ length: 29 }, (_, i) => rec(i + 1)), "x30"]);
    await reopened.wal.close();
  });

  it("reads from disk, from memory and across segments", async () => {
    const dir = tmpDir();
    const { wal } = await openWal(dir, { segmentBytesMax: 2048 });
    wal.append(1, Array.from({ length: 50 }, (_, i) => rec(i + 1)));
    await wal.flush();
    wal.append(2, Array.from({ length: 10 }, (_, i) => rec(i + 51))); // not flushed
    const all = await wal.readFrom(1, 1000);
    expect(all.map((e) => e.index)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    expect(all.map((e) => e.record)).toEqual(Array.from({ length: 60 }, (_, i) => rec(i + 1)));
    expect(all[55]!.epoch).toBe(2);
    expect((await wal.readFrom(45, 10)).map((e) => e.index)).toEqual([45, 46, 47, 48, 49, 50, 51, 52, 53, 54]);
    expect(await wal.readFrom(61, 10)).toEqual([]);
    expect(await wal.readFrom(10, 0)).toEqual([]);
    // a read racing the flush and a truncation still returns a consistent prefix
    const racing = wal.readFrom(40, 30);
    const f = wal.flush();
    const t = wal.truncateSuffix(55);
    const got: LogEntry[] = await racing;
    await Promise.all([f, t]);
    expect(got.map((e) => e.index)).toEqual(Array.from({ length: 21 }, (_, i) => 40 + i));
    expect((await wal.readFrom(50, 30)).map((e) => e.index)).toEqual([50, 51, 52, 53, 54]);
    await wal.close();
  });
});

function catchSync(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error("expected a throw");
}
