/**
 * The offline WAL checker (jepsen-style-tests/wal-checker.ts) on replica directories built with
 * the wal/ module: it passes logs that agree (including a lagging replica, a snapshot and an old
 * epoch's uncommitted leftover), and catches a divergent committed entry, a committed entry
 * replaced in a later epoch, a decreasing epoch, an epoch above the promise and a corrupt frame —
 * without changing a byte of what it reads.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Packr } from "msgpackr";
import { afterEach, describe, expect, it } from "vitest";
import { checkFolder, DATA_COPIES } from "../jepsen-style-tests/check.js";
import { checkWalDir, type WalInvariant, type WalVerdict } from "../jepsen-style-tests/wal-checker.js";
import { COMMIT_HINT_FILE, PROMISE_FILE } from "../src/node/shard-replica.js";
import { segmentFileName } from "../wal/files.js";
import { frameBytesFor, writeFrame } from "../wal/frame.js";
import { Wal } from "../wal/index.js";

const roots: string[] = [];
afterEach(() => {
  for (const d of roots.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
function tmpRoot(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), "cw-walcheck-"));
  roots.push(d);
  return d;
}

/** [epoch, record] per index from 1. */
type Entries = Array<[number, string]>;

interface ReplicaSpec {
  entries: Entries;
  commitHint: number;
  promised: number;
  /** Snapshot at this index (after writing the entries). */
  snapshotAt?: number;
}

/** A replica's shard directory, written through the WAL as a node writes it. */
async function writeReplica(root: string, node: string, shard: number, spec: ReplicaSpec): Promise<string> {
  const dir = path.join(root, node, "shards", String(shard));
  const { wal } = await Wal.open({ dir, fsync: "batch", segmentBytesMax: 1024 });
  for (const [epoch, record] of spec.entries) wal.append(epoch, [record]);
  await wal.flush();
  if (spec.snapshotAt !== undefined) await wal.saveSnapshot(spec.snapshotAt, spec.entries[spec.snapshotAt - 1]![0], { state: "s" });
  await wal.close();
  fs.writeFileSync(path.join(dir, COMMIT_HINT_FILE), String(spec.commitHint));
  fs.writeFileSync(path.join(dir, PROMISE_FILE), String(spec.promised));
  return dir;
}

/** A segment written frame by frame, for logs the WAL itself refuses to write (epochs going down). */
function writeRawSegment(dir: string, entries: Array<[index: number, epoch: number, record: string]>): void {
  const packr = new Packr({ useRecords: false });
  const frames = entries.map(([index, epoch, record]) => {
    const body = packr.pack(record);
    const buf = Buffer.alloc(frameBytesFor(index, epoch, body.length));
    writeFrame(buf, 0, index, epoch, body);
    return buf;
  });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, segmentFileName(entries[0]![0])), Buffer.concat(frames));
}

const committed: Entries = [
  [1, "leader n1"],
  [1, "put a"],
  [1, "put b"],
  [2, "leader n2"],
  [2, "put c"],
  [2, "put d"],
  [2, "put e"],
];

function result(v: WalVerdict, name: WalInvariant) {
  return v.results.find((r) => r.name === name)!;
}

/** Every file's bytes under `root`, to prove the checker changed nothing. */
function snapshotTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of fs.readdirSync(root, { recursive: true }) as string[]) {
    const p = path.join(root, f);
    if (fs.statSync(p).isFile()) out.set(f, fs.readFileSync(p).toString("base64"));
  }
  return out;
}

/** Three replicas of shard 0 that agree: one lagging with a snapshot, one with an old epoch's leftover. */
async function agreeingReplicas(root: string): Promise<void> {
  await writeReplica(root, "n1", 0, { entries: committed, commitHint: 6, promised: 2 });
  await writeReplica(root, "n2", 0, { entries: committed.slice(0, 5), commitHint: 4, promised: 2, snapshotAt: 3 });
  // n3 was cut off with the epoch-1 leader: two entries nobody committed, never overwritten yet.
  await writeReplica(root, "n3", 0, { entries: [...committed.slice(0, 3), [1, "lost x"], [1, "lost y"]], commitHint: 3, promised: 2 });
}

describe("the WAL checker", () => {
  it("passes replicas that agree, and reads without changing a byte", async () => {
    const root = tmpRoot();
    await agreeingReplicas(root);
    await writeReplica(root, "n1", 1, { entries: committed.slice(0, 2), commitHint: 2, promised: 1 });
    const before = snapshotTree(root);
    const { verdict, summary } = checkWalDir(root);
    expect(verdict.valid, summary).toBe(true);
    expect(result(verdict, "wal-committed-prefix").stats.committedEntries).toBeGreaterThanOrEqual(6);
    expect(result(verdict, "wal-log-matching").stats.indexesCompared).toBeGreaterThan(10);
    expect(snapshotTree(root)).toEqual(before);
  });

  it("catches a committed entry that differs between replicas (same epoch, other bytes)", async () => {
    const root = tmpRoot();
    await agreeingReplicas(root);
    const forked = committed.map((e, i): [number, string] => (i === 4 ? [2, "put C"] : e));
    await writeReplica(root, "n4", 0, { entries: forked, commitHint: 6, promised: 2 });
    const { verdict, summary } = checkWalDir(root);
    expect(verdict.valid).toBe(false);
    expect(result(verdict, "wal-committed-prefix").violations.join("\n"), summary).toMatch(/committed entry 5 is epoch 2 on n1 but epoch 2 with other bytes on n4/);
    expect(result(verdict, "wal-log-matching").violations.join("\n")).toMatch(/entry 5 of epoch 2 differs between n1 and n4/);
  });

  it("catches a committed entry replaced by a later epoch on a replica that does not know it committed", async () => {
    const root = tmpRoot();
    await agreeingReplicas(root);
    await writeReplica(root, "n4", 0, { entries: [...committed.slice(0, 4), [3, "overwrote c"]], commitHint: 4, promised: 3 });
    const { verdict } = checkWalDir(root);
    expect(result(verdict, "wal-committed-prefix").violations.join("\n")).toMatch(/n4 holds epoch 3 at committed index 5 \(committed: epoch 2 on n1\)/);
    expect(verdict.valid).toBe(false);
  });

  it("catches an epoch that goes down along a log", async () => {
    const root = tmpRoot();
    await agreeingReplicas(root);
    const dir = path.join(root, "n4", "shards", "0");
    writeRawSegment(dir, [[1, 1, "leader n1"], [2, 2, "leader n2"], [3, 1, "older epoch after a newer one"]]);
    fs.writeFileSync(path.join(dir, PROMISE_FILE), "2");
    const { verdict } = checkWalDir(root);
    expect(result(verdict, "wal-epochs").violations).toEqual(["n4 shard 0: entry 3 has epoch 1 after epoch 2"]);
    expect(verdict.valid).toBe(false);
  });

  it("catches an entry from an epoch above the replica's promise", async () => {
    const root = tmpRoot();
    await writeReplica(root, "n1", 0, { entries: committed, commitHint: 6, promised: 1 });
    const { verdict } = checkWalDir(root);
    expect(result(verdict, "wal-epochs").violations).toEqual(["n1 shard 0: holds epoch 2 but promised only 1"]);
  });

  it("reports a corrupt frame mid-log as unreadable, a torn tail only as a note", async () => {
    const root = tmpRoot();
    const dir = await writeReplica(root, "n1", 0, { entries: committed, commitHint: 6, promised: 2 });
    const seg = path.join(dir, fs.readdirSync(dir).filter((n) => n.endsWith(".wal")).sort()[0]!);
    fs.appendFileSync(seg, Buffer.from([9, 0, 0, 0, 1, 2])); // half a header: a write cut short
    let { verdict } = checkWalDir(root);
    expect(verdict.valid).toBe(true);
    expect(result(verdict, "wal-readable").notes.join("\n")).toMatch(/torn tail/);
    const buf = fs.readFileSync(seg);
    buf[12] ^= 0xff; // inside the first frame: every later frame is still valid
    fs.writeFileSync(seg, buf);
    ({ verdict } = checkWalDir(root));
    expect(result(verdict, "wal-readable").violations.join("\n")).toMatch(/unreadable at 00000000000000000001\.wal:0: checksum mismatch/);
    expect(verdict.valid).toBe(false);
  });

  it("joins a run's verdict (check.ts), and --check-wal checks a folder on its own", async () => {
    const run = tmpRoot();
    fs.writeFileSync(path.join(run, "history.jsonl"), "");
    const data = path.join(run, DATA_COPIES);
    await agreeingReplicas(data);
    const ok = checkFolder(run);
    expect(ok.verdict.wal?.valid).toBe(true);
    expect(ok.summary).toMatch(/wal verdict: valid/);
    await writeReplica(data, "n4", 0, { entries: [...committed.slice(0, 4), [3, "overwrote c"]], commitHint: 4, promised: 3 });
    const bad = checkFolder(run);
    expect(bad.verdict.valid).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(run, "verdict.json"), "utf8")).wal.valid).toBe(false);
    // The compiled CLI (npm test builds first), exit code 1 on a violation.
    const cli = path.join(import.meta.dirname, "..", "dist", "jepsen-style-tests", "check.js");
    let status = 0;
    try {
      execFileSync(process.execPath, [cli, "--check-wal", data], { stdio: "pipe" });
    } catch (error) {
      status = (error as { status: number }).status;
      expect(String((error as { stdout: Buffer }).stdout)).toMatch(/BAD wal-committed-prefix/);
    }
    expect(status).toBe(1);
  });
});
