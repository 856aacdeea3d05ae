/**
 * `cronwheel admin …` as an operator runs it — the real binary against a real cluster (etcd and
 * server processes): status merged from every node's view, move-shard, rebalance and drain with
 * their plans and progress lines, errors and exit codes, and a standalone node's refusal.
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jobIdOnShard, TestCluster, type ClusterView } from "./support/cluster.js";
import { BIN, request, requestRetryingUnavailable, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

let cluster: TestCluster;
let standalone: ServerProcess;

beforeAll(async () => {
  [cluster, standalone] = await Promise.all([
    TestCluster.start({ nodes: 4, initial: 3, shards: 4, name: "cli-admin" }),
    startServer(path.join(tempDir("cli-admin-standalone"), "data"), ["--shards", "2"]),
  ]);
  // Some writes, so that the shards' logs and the followers' match indexes are not all zero.
  for (let i = 0; i < 20; i++) {
    const r = await requestRetryingUnavailable(cluster.node("n2").base, "PUT", `/v1/jobs/admin-cli-${i}`, { queue: "q", every: "1h" });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  }
}, 90_000);

afterAll(async () => {
  await Promise.all([cluster?.stop(), standalone?.stop()]);
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `cronwheel admin ARGS` against `url` (default: n2, which is never drained or killed here). */
function admin(args: string[], url = cluster.node("n2").base): Promise<Run> {
  const env = { ...process.env, CRONWHEEL_URL: url, CRONWHEEL_TOKEN: "" };
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, "admin", ...args], { env }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

async function ok(args: string[], url?: string): Promise<string> {
  const r = await admin(args, url);
  expect(r.code, `cronwheel admin ${args.join(" ")}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  return r.stdout;
}

function replicaCounts(v: ClusterView): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(v.nodes.map((n) => [n.id, 0]));
  for (const s of v.shards) for (const r of s.replicas) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

/** The progress lines of a run: `[i/n] shard S: … … done in N ms (epoch E)`. */
function progressLines(out: string): string[] {
  return out.split("\n").filter((l) => l.startsWith("["));
}

describe("cronwheel admin", () => {
  it("status: a table of nodes and one of shards, with every follower's lag; --json merges the views", async () => {
    const lines = (await ok(["status"])).trimEnd().split("\n");
    const blank = lines.indexOf("");
    const [nodeHeader, ...nodeRows] = lines.slice(0, blank);
    const [shardHeader, ...shardRows] = lines.slice(blank + 1);
    expect(nodeHeader).toMatch(/^NODE\s+ADDRESS\s+STATE\s+HELD\s+LEADS\s+VIEW$/);
    expect(nodeRows).toHaveLength(3);
    for (const [i, row] of nodeRows.entries()) expect(row).toMatch(new RegExp(`^n${i + 1}\\s+127\\.0\\.0\\.1:\\d+\\s+ready\\s+4 \\(0,1,2,3\\)\\s+\\d.*\\s+ok$`));
    expect(shardHeader).toMatch(/^SHARD\s+RANGE\s+LEADER\s+EPOCH\s+REPLICAS\s+COMMIT\s+LAG$/);
    expect(shardRows).toHaveLength(4);
    for (const row of shardRows) expect(row).toMatch(/^\d\s+\d+-\d+\s+n[123]\s+\d+\s+n\d,n\d,n\d\s+\d+\s+n\d=\d+ n\d=\d+$/);

    const status = JSON.parse(await ok(["status", "--json"]));
    expect(status.nodes.map((n: { id: string; reachable: boolean }) => [n.id, n.reachable])).toEqual([["n1", true], ["n2", true], ["n3", true]]);
    expect(status.nodes.reduce((sum: number, n: { leads: number[] }) => sum + n.leads.length, 0)).toBe(4);
    for (const s of status.shards) {
      expect(typeof s.commitIndex).toBe("number");
      expect(Object.keys(s.lag).sort()).toEqual(s.replicas.filter((r: string) => r !== s.leader).sort());
      for (const lag of Object.values(s.lag)) expect(lag).toBeGreaterThanOrEqual(0);
      // Every replica answered with its own commit index.
      for (const r of s.replicas) expect(typeof s.commitIndexes[r]).toBe("number");
    }
  }, 60_000);

  it("move-shard moves a replica to a node that just joined and prints the time and the new epoch", async () => {
    await cluster.startNode("n4");
    let view = await cluster.view(cluster.node("n2"));
    for (let i = 0; i < 50 && !view.nodes.some((n) => n.id === "n4"); i++) {
      await new Promise((r) => setTimeout(r, 100));
      view = await cluster.view(cluster.node("n2"));
    }
    const from = view.shards[0]!.leader!;
    const out = await ok(["move-shard", "0", "--from", from, "--to", "n4"]);
    expect(out).toMatch(new RegExp(`^shard 0: move ${from} → n4 … done in \\d+ ms \\(epoch \\d+\\)\\n$`));
    view = await cluster.view(cluster.node("n2"));
    expect(view.shards[0]!.replicas).toContain("n4");
    expect(view.shards[0]!.replicas).not.toContain(from);
    const status = JSON.parse(await ok(["status", "--json"]));
    expect(status.nodes.find((n: { id: string }) => n.id === "n4")).toMatchObject({ reachable: true, held: [0] });
  }, 120_000);

  it("a move that waits 20 s for its target to catch up (the target paused) still ends with its done line", async () => {
    const view = await cluster.view(cluster.node("n2"));
    const shard = view.shards.find((s) => !s.replicas.includes("n4"))!;
    const from = shard.replicas.find((r) => r !== "n2")!;
    // More entries than a new replica may lag by and still count as caught up.
    for (let i = 0; i < 150; i += 50) {
      await Promise.all(Array.from({ length: 50 }, async (_, k) => {
        const r = await requestRetryingUnavailable(cluster.node("n2").base, "PUT", `/v1/jobs/${jobIdOnShard(`long-move-${i + k}`, shard.range)}`, { queue: "q", every: "1h" });
        expect(r.status, JSON.stringify(r.body)).toBe(201);
      }));
    }
    // Stopped, n4 stays a registered member until its etcd lease runs out (3 s): the move adds it,
    // then waits for it to catch up, which it does only once it runs again.
    cluster.pause("n4");
    const started = Date.now();
    const run = admin(["move-shard", String(shard.id), "--from", from, "--to", "n4"]).then((r) => ({ ...r, ms: Date.now() - started }));
    await new Promise((r) => setTimeout(r, 20_000));
    cluster.resume("n4");
    const r = await run;
    expect(r.code, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^shard ${shard.id}: move ${from} → n4 … done in \\d+ ms \\(epoch \\d+\\)\\n$`));
    expect(r.ms).toBeGreaterThan(20_000);
    const after = await cluster.view(cluster.node("n2"));
    expect(after.shards.find((s) => s.id === shard.id)!.replicas).toContain("n4");
    // Back where it was: the rebalance test below plans from the layout the first move left.
    await ok(["move-shard", String(shard.id), "--from", "n4", "--to", from]);
  }, 120_000);

  it("a move whose coordinating node died halfway leaves a replica too many: rebalance plans to remove it, the same move resumes", async () => {
    const view = await cluster.view(cluster.node("n2"));
    const shard = view.shards.find((s) => !s.replicas.includes("n4"))!;
    const from = shard.replicas.find((r) => r !== "n2")!;
    const coordinator = cluster.live().find((n) => n.id !== "n2" && n.id !== "n4")!;
    // The target cannot catch up while stopped: the move (run by `coordinator`) adds it and waits.
    cluster.pause("n4");
    const run = admin(["move-shard", String(shard.id), "--from", from, "--to", "n4"], coordinator.base);
    const replicasOf = async () => (await cluster.view(cluster.node("n2"))).shards.find((s) => s.id === shard.id)!.replicas;
    for (let i = 0; i < 100 && !(await replicasOf()).includes("n4"); i++) await new Promise((r) => setTimeout(r, 100));
    await cluster.kill9(coordinator.id);
    cluster.resume("n4");
    expect((await run).code).not.toBe(0);
    await cluster.startNode(coordinator.id);
    await cluster.waitForLeaders(30_000);
    expect(await replicasOf()).toHaveLength(4);

    const plan = await ok(["rebalance", "--dry-run"]);
    expect(plan).toMatch(new RegExp(`^1\\s+${shard.id}\\s+remove the extra replica on n\\d$`, "m"));
    const resumed = await ok(["move-shard", String(shard.id), "--from", from, "--to", "n4"]);
    expect(resumed).toMatch(new RegExp(`^shard ${shard.id}: move ${from} → n4 … done in \\d+ ms \\(epoch \\d+\\)\\n$`));
    expect((await replicasOf()).sort()).toEqual([...shard.replicas.filter((r) => r !== from), "n4"].sort());
    // A shard at its replication factor has no replica to spare.
    const refused = await admin(["move-shard", String(shard.id), "--from", "n4", "--to", shard.replicas.find((r) => r !== from)!]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/already holds a replica/);
    // Back where it was, for the tests below.
    await ok(["move-shard", String(shard.id), "--from", "n4", "--to", from]);
    for (let i = 0; i < 20; i++) {
      const r = await request(cluster.node("n2").base, "GET", `/v1/jobs/admin-cli-${i}`);
      expect(r.status).toBe(200);
    }
  }, 120_000);

  it("a bad shard id, an unknown node or a missing flag: a clear message and a non-zero exit", async () => {
    const notANumber = await admin(["move-shard", "abc", "--from", "n1", "--to", "n4"]);
    expect(notANumber.code).toBe(2);
    expect(notANumber.stderr).toBe("cronwheel: admin move-shard: SHARD: expected a shard number, got 'abc'\nsee: cronwheel admin --help\n");

    const missing = await admin(["move-shard", "1", "--to", "n4"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("admin move-shard: --from NODE is required");

    const noShard = await admin(["move-shard", "99", "--from", "n1", "--to", "n4"]);
    expect(noShard.code).toBe(1);
    expect(noShard.stdout).toBe("shard 99: move n1 → n4 … failed\n");
    expect(noShard.stderr).toBe("cronwheel: not_found: shard 99 not found\n");

    const noNode = await admin(["move-shard", "1", "--from", "n1", "--to", "n9"]);
    expect(noNode.code).toBe(1);
    expect(noNode.stderr).toContain("cronwheel: invalid_argument: node n9 is not a live member of the cluster\n");

    const noDrain = await admin(["drain", "n9"]);
    expect(noDrain.code).toBe(1);
    expect(noDrain.stderr).toBe("cronwheel: not_found: node 'n9' is not a member of the cluster and holds no replica (members: n1, n2, n3, n4)\n");
  }, 60_000);

  it("rebalance: --dry-run prints the plan and changes nothing; the run shows a line per step and spreads replicas within one", async () => {
    const before = await cluster.view(cluster.node("n2"));
    const plan = await ok(["rebalance", "--dry-run"]);
    const count = Number(/^rebalance: (\d+) steps?\n/.exec(plan)?.[1]);
    expect(count).toBeGreaterThan(0);
    expect(plan.trimEnd().split("\n")).toHaveLength(count + 2);
    expect(plan).toMatch(/^STEP\s+SHARD\s+CHANGE$/m);
    expect(plan).toMatch(/^1\s+\d\s+move n\d → n4$/m);
    expect(JSON.parse(await ok(["rebalance", "--dry-run", "--json"])).steps).toHaveLength(count);
    expect((await cluster.view(cluster.node("n2"))).shards.map((s) => s.replicas)).toEqual(before.shards.map((s) => s.replicas));

    const out = await ok(["rebalance"]);
    const steps = Number(/^rebalance: (\d+) steps?\n/.exec(out)?.[1]);
    const progress = progressLines(out);
    expect(progress).toHaveLength(steps);
    progress.forEach((line, i) => expect(line).toMatch(new RegExp(`^\\[${i + 1}/${steps}\\] shard \\d: (move n\\d → n\\d|leader → n\\d) … done in \\d+ ms \\(epoch \\d+\\)$`)));
    expect(out).toMatch(/\nrebalanced: \d+ steps? in \d+ ms\n$/);

    const counts = Object.values(replicaCounts(await cluster.waitForLeaders(10_000)));
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);

    // --json: the plan and its results (what is left to do once balanced: at most leader hand-backs).
    const again = JSON.parse(await ok(["rebalance", "--json"]));
    expect(again.results).toHaveLength(again.steps.length);
    for (const s of again.steps) expect(s.kind).toBe("leader");
  }, 180_000);

  it("drain: the plan, a line per step, and the node ends with no replica and no leadership", async () => {
    const plan = await ok(["drain", "n1", "--dry-run"]);
    const count = Number(/^drain n1: (\d+) steps?\n/.exec(plan)?.[1]);
    expect(count).toBeGreaterThan(0);
    expect(plan.match(/move n1 → n\d$/gm)).toHaveLength(count);

    const out = await ok(["drain", "n1"]);
    expect(progressLines(out)).toHaveLength(count);
    expect(out).toMatch(/\nnode n1 is drained: it holds no replica, and rebalances leave it out until it restarts\n$/);
    const view = await cluster.waitForLeaders(10_000);
    expect(replicaCounts(view).n1).toBe(0);
    expect(view.shards.every((s) => s.leader !== "n1")).toBe(true);

    // Again: nothing to move; the node stays drained.
    expect(JSON.parse(await ok(["drain", "n1", "--json"]))).toEqual({ steps: [], results: [] });
    // A rebalance leaves the drained node out.
    const rebalance = JSON.parse(await ok(["rebalance", "--dry-run", "--json"]));
    expect(rebalance.steps.filter((s: { to: string }) => s.to === "n1")).toEqual([]);
  }, 180_000);

  it("status shows a node that does not answer as unreachable, and still exits 0", async () => {
    // etcd paused first: the nodes keep their last view, which lists n1 (drained: it holds nothing),
    // however long the CLI takes; otherwise n1 would drop out when its lease ran out.
    cluster.etcd.pause();
    let r;
    try {
      await cluster.kill9("n1");
      r = await admin(["status"]);
    } finally {
      cluster.etcd.resume();
    }
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^n1\s+127\.0\.0\.1:\d+\s+ready\s+0\s+0\s+unreachable: GET http:\/\/127\.0\.0\.1:\d+\/v1\/cluster: cannot reach the server: ECONNREFUSED$/m);
    expect(r.stdout).toMatch(/^n2\s.*\sok$/m);
  }, 60_000);

  // Last of the cluster tests: n3's registration lapses while it is cut off, and comes back later.
  it("a node cut off from etcd answers an admin step with unavailable, not an internal error", async () => {
    cluster.cutFromEtcd("n3");
    try {
      const r = await admin(["move-shard", "1", "--from", "n1", "--to", "n4"], cluster.node("n3").base);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(/^cronwheel: unavailable: cannot read the shard map: etcd does not answer this node/);
    } finally {
      cluster.healEtcdLinks("n3");
    }
  }, 60_000);

  it("a standalone node: status works; move-shard, rebalance and drain get its invalid_argument", async () => {
    const lines = (await ok(["status"], standalone.base)).trimEnd().split("\n");
    expect(lines[1]).toMatch(/^node-1\s+127\.0\.0\.1:\d+\s+ready\s+2 \(0,1\)\s+2 \(0,1\)\s+ok$/);
    expect(lines.slice(-2).every((l) => /^\d\s+\d+-\d+\s+node-1\s+1\s+node-1\s+\d+\s+-$/.test(l))).toBe(true);

    const refusal = "cronwheel: invalid_argument: this is a standalone node: there are no other nodes to move shards to\n";
    for (const args of [["move-shard", "0", "--from", "node-1", "--to", "node-2"], ["rebalance"], ["drain", "node-1"]]) {
      const r = await admin(args, standalone.base);
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stderr.endsWith(refusal), r.stderr).toBe(true);
      expect(r.stderr.split("\n").filter((l) => l.startsWith("cronwheel:"))).toHaveLength(1);
    }
  }, 60_000);
});
