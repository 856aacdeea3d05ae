/**
 * Cluster benchmarks (issue 4): three `cronwheel server` processes with replication factor 3 and a
 * real etcd, all on this machine, driven by the SDK from this process.
 *
 * - clusterThroughput: N ad-hoc executions enqueued in batches through every node (each node puts
 *   key-less work on the shards it leads), run end to end by one SDK Worker (no-op handler) that
 *   holds a connection to every leader.
 * - clusterLateness: interval jobs every second; lateness = handler start − scheduled time.
 * - clusterFailover: K rounds of kill -9 of a shard's leader; failover = kill to the first write
 *   the new leader commits (probed with a write routed to that shard every 10 ms); the node is
 *   restarted and the cluster settles before the next round.
 */
import { Client } from "../src/client/client.js";
import { Worker, type ExecutionContext } from "../src/client/worker.js";
import { jobIdOnShard, TestCluster } from "../test/support/cluster.js";
import { request } from "../test/support/server-process.js";
import { distribution, nowMs, repeatWorkload, round, sleep, sortedCopy } from "./stats.js";

type Figures = Record<string, unknown>;

const SHARDS = Number(process.env.BENCH_CLUSTER_SHARDS ?? 12);

async function withCluster<T>(name: string, fn: (c: TestCluster) => Promise<T>): Promise<T> {
  const extra = (process.env.BENCH_SERVER_ARGS ?? "").split(/\s+/).filter(Boolean);
  const cluster = await TestCluster.start({ nodes: 3, shards: SHARDS, replicationFactor: 3, name, args: ["--fsync", "batch", ...extra] });
  try {
    return await fn(cluster);
  } finally {
    await cluster.stop();
  }
}

async function withWorker<T>(cluster: TestCluster, queue: string, onStart: (ctx: ExecutionContext) => void, prefetch: number, fn: (completed: () => number) => Promise<T>): Promise<T> {
  let completed = 0;
  const worker = new Worker({
    url: cluster.live().map((n) => n.base),
    queues: [queue],
    concurrency: 100,
    prefetch,
    shutdownSignals: false,
    handler: async (ctx) => {
      onStart(ctx);
      return null;
    },
  });
  worker.on("completed", () => completed++);
  await worker.start();
  // Let it open a connection to every leader before the clock starts.
  await sleep(1500);
  try {
    return await fn(() => completed);
  } finally {
    await worker.close({ graceful: false }).catch(() => undefined);
  }
}

async function until(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`cluster bench: timed out waiting for ${what}`);
    await sleep(5);
  }
}

export async function clusterThroughput({ executions = 100_000, batch = 1000, prefetch = 100 } = {}): Promise<Figures> {
  return withCluster("bench-throughput", (cluster) =>
    withWorker(cluster, "throughput", () => {}, prefetch, async (completed) => {
      const clients = cluster.live().map((n) => new Client({ url: n.base }));
      const started = nowMs();
      let enqueued = 0;
      const producer = async (client: Client) => {
        while (enqueued < executions) {
          const n = Math.min(batch, executions - enqueued);
          enqueued += n;
          const results = await client.enqueueBatch(Array.from({ length: n }, () => ({ queue: "throughput", payload: null })));
          const failed = results.filter((r) => r instanceof Error).length;
          if (failed > 0) throw new Error(`${failed} enqueues failed`);
        }
      };
      await Promise.all(clients.map(producer));
      const enqueueSec = (nowMs() - started) / 1000;
      await until("all completions", () => completed() >= executions, 600_000);
      const totalSec = (nowMs() - started) / 1000;
      return {
        nodes: 3,
        replicationFactor: 3,
        shards: SHARDS,
        executions,
        batch,
        concurrency: 100,
        prefetch,
        enqueuePerSec: Math.round(executions / enqueueSec),
        executionsPerSec: Math.round(executions / totalSec),
        totalSec: round(totalSec),
      };
    }),
  );
}

export async function clusterLateness({ jobs = 5_000, seconds = 15, prefetch = Number(process.env.BENCH_PREFETCH ?? 100) } = {}): Promise<Figures> {
  const lateness: number[] = [];
  let measuring = false;
  return withCluster("bench-lateness", (cluster) =>
    withWorker(
      cluster,
      "repeat",
      (ctx) => {
        if (measuring) lateness.push(nowMs() - ctx.scheduledAt.getTime());
      },
      prefetch,
      async () => {
        const client = new Client({ url: cluster.live().map((n) => n.base) });
        const { elapsedSec: elapsed } = await repeatWorkload((id, spec) => client.putJob(id, spec), { jobs, seconds, leadMs: 5_000, setMeasuring: (on) => (measuring = on) });
        return { nodes: 3, replicationFactor: 3, jobs, seconds, prefetch, firesPerSec: Math.round(lateness.length / elapsed), ...distribution("latenessMs", sortedCopy(lateness)) };
      },
    ),
  );
}

export async function clusterFailover({ rounds = 20 } = {}): Promise<Figures> {
  return withCluster("bench-failover", async (cluster) => {
    const failovers: number[] = [];
    for (let round = 0; round < rounds; round++) {
      const view = await cluster.waitForLeaders(30_000);
      const shard = view.shards[round % view.shards.length]!;
      const victim = shard.leader!;
      const survivor = cluster.live().find((n) => n.id !== victim)!;
      const probe = jobIdOnShard(`failover-${round}`, shard.range);
      const killedAt = nowMs();
      await cluster.kill9(victim);
      for (;;) {
        const r = await request(survivor.base, "PUT", `/v1/jobs/${probe}`, { queue: "probe", every: "1h" }).catch(() => null);
        if (r && r.status < 300) break;
        if (nowMs() - killedAt > 30_000) throw new Error(`round ${round}: no leader for shard ${shard.id} after 30 s`);
        await sleep(10);
      }
      failovers.push(nowMs() - killedAt);
      process.stderr.write(`bench: failover round ${round + 1}/${rounds}: ${Math.round(failovers[failovers.length - 1]!)} ms\n`);
      await cluster.startNode(victim);
      await sleep(1000);
    }
    return { nodes: 3, replicationFactor: 3, rounds, ...distribution("failoverMs", sortedCopy(failovers)) };
  });
}
