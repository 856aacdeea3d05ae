/**
 * A shard move gives the new replica the shard's history: it installs a snapshot (the leader's log
 * no longer holds the early entries), records the skipped entries as a gap, and fills the gap from
 * a peer's file. Checked in the files themselves after the cluster stops: the new replica holds
 * exactly the rows, audit entries, rollups and job counts of an old replica, each row once.
 */
import path from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { Worker } from "../src/client/index.js";
import { HistoryDb } from "../src/history/history-db.js";
import { shardHistoryFile } from "../src/history/history-thread.js";
import { StatsTallies } from "../src/history/stats.js";
import { TestCluster } from "./support/cluster.js";
import { request, requestRetryingUnavailable } from "./support/server-process.js";

let cluster: TestCluster | undefined;
afterAll(async () => {
  await cluster?.stop();
});

const historyFileOf = (node: { dataDir: string }) => shardHistoryFile(path.join(node.dataDir, "history"), 0);

describe("history and a shard move", () => {
  it("the new replica fills the gap its snapshot left from a peer: the same rows, once, and the same audit trail", async () => {
    // Small segments and frequent snapshots: the leader's log soon drops the early entries.
    cluster = await TestCluster.start({ nodes: 4, initial: 3, shards: 1, name: "history-move", args: ["--snapshot-every", "40", "--segment-bytes", "8192", "--finished-in-memory", "1"] });
    const base = cluster.nodes[0]!.base;
    expect((await requestRetryingUnavailable(base, "PUT", "/v1/jobs/mover", { queue: "hm", every: "1h" })).status).toBe(201);
    expect((await requestRetryingUnavailable(base, "POST", "/v1/jobs/mover/trigger", {})).status).toBe(201);
    for (let n = 0; n < 250; n++) {
      const r = await requestRetryingUnavailable(base, "POST", "/v1/executions", { queue: "hm", payload: { n } });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    const worker = new Worker({ url: cluster.nodes.slice(0, 3).map((n) => n.base), queues: ["hm"], concurrency: 8, shutdownSignals: false, handler: async (ctx) => ({ n: (ctx.payload as { n?: number } | null)?.n ?? -1 }) });
    worker.on("error", () => {});
    await worker.start();
    try {
      for (const deadline = Date.now() + 60_000; ; ) {
        const r = await request(base, "GET", "/v1/stats?by=queue");
        if (r.body.total?.count === 251) break;
        if (Date.now() > deadline) throw new Error(`not all 251 executions finished: ${JSON.stringify(r.body.total)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await worker.close({ graceful: false });
    }
    expect((await requestRetryingUnavailable(base, "POST", "/v1/jobs/mover/pause")).status).toBe(200);

    // n4 joins and takes a follower's replica: it catches up by snapshot.
    await cluster.startNode("n4");
    let view = await cluster.view();
    for (let i = 0; i < 50 && !view.nodes.some((n) => n.id === "n4"); i++) {
      await new Promise((r) => setTimeout(r, 100));
      view = await cluster.view();
    }
    const from = view.shards[0]!.replicas.find((r) => r !== view.shards[0]!.leader)!;
    const moved = await request(base, "POST", "/v1/cluster/shards/0/move", { from, to: "n4" });
    expect(moved.status, JSON.stringify(moved.body)).toBe(200);

    // Wait for n4's file to have its gap recorded and filled (read-only, while n4 runs).
    const n4File = historyFileOf(cluster.node("n4"));
    let gaps: Array<{ filled_at: number | null }> = [];
    for (const deadline = Date.now() + 30_000; ; ) {
      try {
        const db = new Database(n4File, { readonly: true, fileMustExist: true });
        gaps = db.prepare("SELECT filled_at FROM gaps").all() as typeof gaps;
        db.close();
      } catch {
        gaps = [];
      }
      if (gaps.length > 0 && gaps.every((g) => g.filled_at !== null)) break;
      if (Date.now() > deadline) throw new Error(`n4's history gap was not filled: ${JSON.stringify(gaps)}\n${cluster.node("n4").process?.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const keeperFile = historyFileOf(cluster.node(view.shards[0]!.leader!));
    await cluster.stop();
    cluster = undefined;

    const mine = new HistoryDb(n4File);
    const theirs = new HistoryDb(keeperFile);
    try {
      const all = (db: HistoryDb) => db.list({ tenant: "default", limit: 1_000_000, examineMax: Number.MAX_SAFE_INTEGER }).items;
      const rows = all(mine);
      expect(rows).toHaveLength(251);
      expect(new Set(rows.map((e) => e.id)).size).toBe(251);
      expect(mine.count()).toBe(251);
      expect(rows).toEqual(all(theirs));
      expect(mine.gaps()).toEqual([]);
      const trail = (db: HistoryDb) => db.listAudit(0, { tenant: "default", limit: 1000 });
      expect(trail(mine).map((e) => e.action)).toEqual(["job.pause", "job.trigger", "job.put"]);
      expect(trail(mine)).toEqual(trail(theirs));
      const stats = (db: HistoryDb) => {
        const t = new StatsTallies();
        db.stats({ tenant: "default", fromMs: 0, toMs: 4e12, intervalMs: 3_600_000, by: "queue" }, t);
        return t.toWire();
      };
      expect(stats(mine)).toEqual(stats(theirs));
      expect(stats(mine).total.s).toEqual([251, 0, 0, 0]);
      expect(mine.jobRuns("default", "mover")).toEqual(theirs.jobRuns("default", "mover"));
    } finally {
      mine.close();
      theirs.close();
    }
  }, 180_000);
});
