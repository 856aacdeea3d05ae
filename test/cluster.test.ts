/**
 * A three-node cluster in separate processes with a real etcd: routing from any node, kill -9 of
 * a shard leader during a burst of writes, and what must survive it.
 */
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { jobIdOnShard, TestCluster } from "./support/cluster.js";
import { request, requestRetryingUnavailable } from "./support/server-process.js";

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3, shards: 6, name: "cluster" });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

describe("a three-node cluster", () => {
  test("every shard has a leader, three replicas, and leaderships are spread", async () => {
    const v = await cluster.view();
    expect(v.nodes.map((n) => n.id).sort()).toEqual(["n1", "n2", "n3"]);
    expect(v.shards).toHaveLength(6);
    for (const s of v.shards) expect(new Set(s.replicas).size).toBe(3);
    const leaders = new Set(v.shards.map((s) => s.leader));
    expect(leaders.size).toBeGreaterThan(1);
  });

  test("any node accepts a write for any shard and any node reads it back", async () => {
    const nodes = cluster.live();
    for (let i = 0; i < 30; i++) {
      const via = nodes[i % 3]!;
      // A leader may still move just after the cluster came up: 503 `unavailable` is retried, as the
      // contract tells clients to (a retried PUT whose first try landed answers 200).
      const put = await requestRetryingUnavailable(via.base, "PUT", `/v1/jobs/route-${i}`, { queue: "q", every: "1h" });
      expect([200, 201], JSON.stringify(put.body)).toContain(put.status);
      const get = await requestRetryingUnavailable(nodes[(i + 1) % 3]!.base, "GET", `/v1/jobs/route-${i}`);
      expect(get.status).toBe(200);
      expect(get.body.id).toBe(`route-${i}`);
    }
    const list = await requestRetryingUnavailable(nodes[2]!.base, "GET", "/v1/jobs?limit=100");
    expect(list.status).toBe(200);
    const ids = (list.body.jobs as Array<{ id: string }>).map((j) => j.id).filter((id) => id.startsWith("route-"));
    expect(ids).toHaveLength(30);
  });

  test("a batch sent to one node lands every item on its own shard, answered in order", async () => {
    const via = cluster.live()[0]!;
    // Ordering keys spread the items over every shard, most led by other nodes; keyless items stay
    // on the receiving node's shards; two items share an idempotency key, one is invalid.
    const items: Array<Record<string, unknown>> = [
      ...Array.from({ length: 40 }, (_, i) => ({ queue: "batch", orderingKey: `key-${i}`, payload: { i } })),
      ...Array.from({ length: 10 }, (_, i) => ({ queue: "batch", payload: { keyless: i } })),
      { queue: "batch", idempotencyKey: "batch-once", orderingKey: "key-0" },
      { queue: "batch", idempotencyKey: "batch-once", orderingKey: "key-0" },
      { queue: "" },
    ];
    const res = await request(via.base, "POST", "/v1/executions/batch", { executions: items });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const results = res.body.results as Array<{ status: number; execution?: { id: string; payload: unknown }; error?: { code: string } }>;
    expect(results.map((r) => r.status)).toEqual([...Array(50).fill(201), 201, 200, 400]);
    expect(results[51]!.execution!.id).toBe(results[50]!.execution!.id);
    results.slice(0, 50).forEach((r, i) => expect(r.execution!.payload).toEqual(items[i]!.payload));
    const view = await cluster.view();
    const leadersUsed = new Set<string>();
    for (const r of results.slice(0, 40)) {
      const read = await request(cluster.live()[2]!.base, "GET", `/v1/executions/${r.execution!.id}`);
      expect(read.status).toBe(200);
      const slot = Number.parseInt(r.execution!.id.slice(1, 5), 16);
      leadersUsed.add(view.shards.find((s) => slot >= s.range[0] && slot <= s.range[1])!.leader!);
    }
    // Forty fixed keys reach every shard, so every node that leads one (not only the receiving one).
    expect([...leadersUsed].sort()).toEqual([...new Set(view.shards.map((s) => s.leader!))].sort());
  });
});

describe("kill -9 of a shard leader during a burst of job creations", () => {
  test("a new leader serves within 3 s; no acknowledged job is lost; fires continue; no execution twice", async () => {
    const before = await cluster.view();
    const shard = before.shards[0]!;
    const victim = shard.leader!;
    const survivors = cluster.live().filter((n) => n.id !== victim);
    const acked = new Set<string>();
    let stop = false;
    let seq = 0;
    // Writers through every node (the victim too, until it dies), retrying what was not acknowledged.
    const writer = async (w: number) => {
      while (!stop) {
        const id = `burst-${w}-${seq++}`;
        for (let attempt = 0; attempt < 100 && !stop; attempt++) {
          const nodes = cluster.live();
          const via = nodes[(w + attempt) % nodes.length]!;
          try {
            const r = await request(via.base, "PUT", `/v1/jobs/${id}`, { queue: "burst", every: "1s" });
            if (r.status === 200 || r.status === 201) {
              acked.add(id);
              break;
            }
            expect([503, 429]).toContain(r.status);
          } catch {
            // connection refused or reset by the killed node: not acknowledged, try again
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const writers = [0, 1, 2, 3].map((w) => writer(w));
    await new Promise((r) => setTimeout(r, 500));
    const ackedBeforeKill = acked.size;
    const killedAt = Date.now();
    await cluster.kill9(victim);

    // The shard's new leader takes a write: probe with a job that routes to it.
    const probe = jobIdOnShard("probe", shard.range);
    let servedAt = 0;
    while (Date.now() - killedAt < 10_000) {
      const r = await request(survivors[0]!.base, "PUT", `/v1/jobs/${probe}`, { queue: "burst", every: "1s" }).catch(() => null);
      if (r && (r.status === 200 || r.status === 201)) {
        servedAt = Date.now();
        acked.add(probe);
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 2500));
    stop = true;
    await Promise.all(writers);
    console.log(`failover: shard served again ${servedAt - killedAt} ms after kill -9; ${acked.size} jobs acknowledged (${ackedBeforeKill} before the kill)`);
    expect(servedAt, "no leader served the shard within 10 s").toBeGreaterThan(0);
    expect(servedAt - killedAt).toBeLessThan(3000);
    expect(ackedBeforeKill).toBeGreaterThan(10);
    expect(acked.size).toBeGreaterThan(ackedBeforeKill);

    const after = await cluster.waitForLeaders(10_000);
    expect(after.shards[0]!.leader).not.toBe(victim);
    expect(after.shards[0]!.epoch!).toBeGreaterThan(shard.epoch!);

    // Every acknowledged job is there.
    for (const id of acked) {
      const r = await requestRetryingUnavailable(survivors[acked.size % 2]!.base, "GET", `/v1/jobs/${id}`);
      expect(r.status, `acknowledged job ${id} lost`).toBe(200);
    }

    // Fires continue on the shard that failed over, and no execution id appears twice.
    const fires = await requestRetryingUnavailable(survivors[1]!.base, "GET", `/v1/executions?jobId=${probe}&limit=100`);
    expect(fires.status).toBe(200);
    expect(fires.body.executions.length).toBeGreaterThanOrEqual(1);
    const all: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await requestRetryingUnavailable(survivors[0]!.base, "GET", `/v1/executions?limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
      expect(page.status).toBe(200);
      all.push(...(page.body.executions as Array<{ id: string }>).map((e) => e.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(all.length).toBeGreaterThan(0);
    expect(new Set(all).size).toBe(all.length);
  }, 60_000);
});
