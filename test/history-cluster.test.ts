/**
 * History in a three-node cluster: every replica derives it from the log it applies, so after
 * the leader of every shard is killed (-9), the new leaders — followers until then — answer every
 * finished execution from their own history files, each once. Memory keeps one finished
 * execution per shard here (--finished-in-memory 1), so the answers come from history.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Worker } from "../src/client/index.js";
import { TestCluster } from "./support/cluster.js";
import { requestRetryingUnavailable } from "./support/server-process.js";

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, shards: 2, name: "history-cluster", args: ["--finished-in-memory", "1"] });
}, 60_000);
afterAll(async () => {
  await cluster?.stop();
});

async function listAll(base: string, query: string): Promise<Array<{ id: string; state: string; result?: unknown; payload: { n: number } }>> {
  const items = [];
  let cursor: string | null = null;
  do {
    const res = await requestRetryingUnavailable(base, "GET", `${query}&limit=97${cursor ? `&cursor=${cursor}` : ""}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    items.push(...res.body.executions);
    cursor = res.body.nextCursor;
  } while (cursor);
  return items;
}

describe("history in a cluster", () => {
  it("a new leader answers every finished execution from the history it derived as a follower", async () => {
    const base = cluster.nodes[0]!.base;
    const res = await requestRetryingUnavailable(base, "POST", "/v1/executions/batch", { executions: Array.from({ length: 300 }, (_, n) => ({ queue: "hc", payload: { n } })) });
    expect(res.status).toBe(200);
    const ids: string[] = res.body.results.map((r: { status: number; execution: { id: string } }) => {
      expect(r.status).toBe(201);
      return r.execution.id;
    });
    const worker = new Worker({ url: cluster.nodes.map((n) => n.base), queues: ["hc"], concurrency: 32, shutdownSignals: false, handler: async (ctx) => ({ n: (ctx.payload as { n: number }).n }) });
    worker.on("error", () => {});
    await worker.start();
    try {
      const deadline = Date.now() + 30_000;
      while ((await listAll(base, "/v1/executions?queue=hc&state=succeeded")).length < 300) {
        if (Date.now() > deadline) throw new Error("the 300 executions did not all succeed");
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await worker.close({ graceful: false });
    }

    // Kill every shard's leader, one node at a time, keeping a majority.
    const view = await cluster.waitForLeaders();
    const leaders = [...new Set(view.shards.map((s) => s.leader!))];
    const killed = leaders[0]!;
    await cluster.kill9(killed);
    const after = await cluster.waitForLeaders(30_000, [killed]);
    expect(after.shards.filter((s) => view.shards.find((v) => v.id === s.id)!.leader === killed).every((s) => s.leader !== killed)).toBe(true);

    const survivor = cluster.nodes.find((n) => n.id !== killed)!.base;
    const listed = await listAll(survivor, "/v1/executions?queue=hc");
    expect(listed.map((e) => e.id).sort()).toEqual([...ids].sort());
    for (const e of listed) {
      expect(e.state).toBe("succeeded");
      expect(e.result).toEqual({ n: e.payload.n });
    }
    for (const id of ids.slice(0, 5)) {
      const one = await requestRetryingUnavailable(survivor, "GET", `/v1/executions/${id}`);
      expect(one.status, JSON.stringify(one.body)).toBe(200);
      expect(one.body.state).toBe("succeeded");
    }
  }, 120_000);
});
