/**
 * What a shard keeps in memory after it has answered a proposal. A node holds executions for their
 * retention, so anything else it keeps per record (the log's in-memory tail, the replica's line of
 * proposals) outlives a young-generation collection or two, is promoted, and then has to be
 * collected by a full one: at 1,000 executions/s that was most of the node's GC work.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, parseEnqueueBody } from "../src/api/validation.js";
import type { ShardRecord } from "../src/core/records.js";
import { DEFAULT_SHARD_LIMITS, NO_OBSERVER } from "../src/core/shard-state.js";
import { ShardReplica, SnapshotTurns } from "../src/node/shard-replica.js";

// A full collection on demand (a context made after the flag is set gets `gc`).
v8.setFlagsFromString("--expose-gc");
const collectGarbage = vm.runInNewContext("gc") as () => void;

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

async function standaloneShard(): Promise<ShardReplica> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cw-retention-"));
  dirs.push(dir);
  return ShardReplica.open(
    {
      shardId: 0,
      dir,
      fsync: "batch",
      clock: { now: () => Date.now() },
      logger: pino({ level: "silent" }),
      limits: DEFAULT_SHARD_LIMITS,
      observer: NO_OBSERVER,
      snapshotEveryRecords: 1_000_000,
      repair: false,
      snapshotTurns: new SnapshotTurns(),
      mode: "standalone",
    },
    NO_OBSERVER,
  );
}

/** Propose one enqueue and wait for its answer; only a weak reference to the record comes back. */
async function enqueueOnce(shard: ShardReplica, i: number): Promise<WeakRef<ShardRecord>> {
  const record: ShardRecord = {
    type: "exec.enqueue",
    at: Date.now(),
    tenant: "t",
    executionId: `x0000${String(i).padStart(6, "0")}`,
    spec: parseEnqueueBody({ queue: "q", payload: { i } }, DEFAULT_LIMITS),
  };
  const ref = new WeakRef(record);
  await shard.propose(record);
  return ref;
}

describe("a shard's memory after it answered", () => {
  it("keeps no applied record: the log's tail and the line of proposals let each go", async () => {
    const shard = await standaloneShard();
    const refs: WeakRef<ShardRecord>[] = [];
    // Concurrent proposals share group commits, as under load; sequential ones each commit alone.
    for (let round = 0; round < 10; round++) refs.push(...(await Promise.all(Array.from({ length: 20 }, (_, k) => enqueueOnce(shard, round * 20 + k)))));
    await new Promise((resolve) => setImmediate(resolve)); // the last batch's callbacks have returned
    collectGarbage();
    const kept = refs.filter((ref) => ref.deref() !== undefined).length;
    expect(kept).toBe(0);
    // The executions themselves are kept (their retention is the point of holding them).
    expect([...shard.state.executions.valuesOf("t")]).toHaveLength(200);
    await shard.close();
  });
});
