/**
 * FAULTS scenario 15, the thundering herd with a failover: 10,000 executions due at the same
 * millisecond across every shard of a three-node cluster, and the leader of the shard holding the
 * most of them killed -9 at that millisecond (restarted 5 s later). An SDK worker connected to
 * every leader runs them. Nothing may be lost; an execution may run twice only if it lived on
 * the killed leader's shard (its success report did not commit before the kill); the lateness
 * and the nodes' worst event-loop stall are printed (the figures belong to bench/, not to an
 * assertion).
 */
import { afterAll, beforeAll, expect, test } from "vitest";
import { Client, Worker } from "../../src/client/index.js";
import { slotOfExecution } from "../../src/core/routing.js";
import { TestCluster } from "../support/cluster.js";
import { request } from "../support/server-process.js";

const HERD = 10_000;
const QUEUE = "herd";

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, shards: 6, name: "herd" });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

test("10,000 due at one millisecond, their biggest shard's leader killed then: none lost, repeats only from that shard", async () => {
  const urls = cluster.nodes.map((n) => n.base);
  const client = new Client({ url: urls, timeoutMs: 30_000 });
  const dueAt = Date.now() + 10_000;
  const ids: string[] = [];
  for (let i = 0; i < HERD; i += 500) {
    const results = await client.enqueueBatch(Array.from({ length: 500 }, (_, k) => ({ queue: QUEUE, runAt: new Date(dueAt), payload: { n: i + k } })));
    for (const r of results) {
      if (r instanceof Error) throw r;
      ids.push(r.execution.id);
    }
  }
  expect(Date.now()).toBeLessThan(dueAt - 1_000); // the herd is all in before it is due

  // The shard holding the most of them, and its leader.
  const view = await cluster.waitForLeaders(10_000);
  const perShard = new Map<number, string[]>();
  for (const id of ids) {
    const slot = slotOfExecution("default", id)!;
    const shard = view.shards.find((s) => slot >= s.range[0] && slot <= s.range[1])!;
    perShard.set(shard.id, [...(perShard.get(shard.id) ?? []), id]);
  }
  const [victimShard, victimIds] = [...perShard].sort((a, b) => b[1].length - a[1].length)[0]!;
  const victim = view.shards.find((s) => s.id === victimShard)!.leader!;

  const runs = new Map<string, number>();
  const startedAt = new Map<string, number>();
  const worker = new Worker({
    url: urls,
    queues: [QUEUE],
    concurrency: 100,
    prefetch: 100,
    shutdownSignals: false,
    handler: async (ctx) => {
      runs.set(ctx.id, (runs.get(ctx.id) ?? 0) + 1);
      if (!startedAt.has(ctx.id)) startedAt.set(ctx.id, Date.now());
    },
  });
  worker.on("error", () => {}); // connections to the killed node fail; the worker reconnects
  await worker.start();
  try {
    await new Promise((r) => setTimeout(r, dueAt - Date.now()));
    await cluster.kill9(victim);
    await new Promise((r) => setTimeout(r, 5_000));
    await cluster.startNode(victim);
    const deadline = Date.now() + 60_000;
    while (startedAt.size < HERD && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  } finally {
    await worker.close();
  }

  const lost = ids.filter((id) => !runs.has(id));
  expect(lost.slice(0, 5), `${lost.length} of the herd never ran`).toEqual([]);
  const repeated = [...runs].filter(([, n]) => n > 1).map(([id]) => id);
  const fromVictim = new Set(victimIds);
  expect(repeated.filter((id) => !fromVictim.has(id))).toEqual([]);
  // Every execution ended succeeded (a sample: the listing of 10,000 is not the point here).
  for (const id of ids.filter((_, i) => i % 250 === 0)) expect((await client.getExecution(id)).state).toBe("succeeded");

  const lateness = [...startedAt.values()].map((t) => t - dueAt).sort((a, b) => a - b);
  const survivors = cluster.live().filter((n) => n.id !== victim);
  const stalls = await Promise.all(
    survivors.map(async (n) => {
      const text = String((await request(n.base, "GET", "/metrics")).body ?? "");
      return Number(/^cronwheel_event_loop_stall_max_seconds (\S+)$/m.exec(text)?.[1] ?? NaN);
    }),
  );
  console.log(
    `herd of ${HERD} (${victimIds.length} on shard ${victimShard}, leader ${victim} killed at the due ms): ` +
      `started late by p50 ${quantile(lateness, 0.5)} ms, p99 ${quantile(lateness, 0.99)} ms, max ${lateness[lateness.length - 1]} ms; ` +
      `${repeated.length} ran twice; survivors' worst event-loop stall ${stalls.map((s) => `${(s * 1000).toFixed(0)} ms`).join(", ")}`,
  );
}, 180_000);
