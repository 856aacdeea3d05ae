/**
 * Fault scenarios 12 and 13 (docs/jepsen.md).
 *
 * 13: a replica's shard log is corrupted while the node is down (a flipped
 * byte mid-segment, a segment cut short mid-frame, a corrupt snapshot). The node starts anyway;
 * that shard's replica keeps nothing it cannot verify and repairs from the leader, and until
 * then it neither promises, leads nor counts toward a commit — so a committed entry it lost
 * cannot be lost by the cluster, even when a lagging replica is the only other one up (the NATS
 * 2.12.1 case).
 *
 * 12: power loss — a node killed and its shard logs cut back to their last fsync (the nodes run
 * with sync marks and a slow fsync, wal/fault-hooks.ts): a minority during a write burst, a
 * leader right after it acknowledged writes, then every node at once. Nothing acknowledged may
 * be lost.
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { jobIdOnShard, TestCluster, type ClusterNode } from "../support/cluster.js";
import { execFileSync } from "node:child_process";
import { BIN, request } from "../support/server-process.js";
import type { PowerLossReport } from "../../wal/fault-hooks.js";

let cluster: TestCluster;

beforeAll(async () => {
  // Small segments: the writes of a test span several, so a cut mid-log has frames after it.
  cluster = await TestCluster.start({ nodes: 3, shards: 2, name: "wal-faults", args: ["--segment-bytes", "16384", "--log-level", "info"] });
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

interface LogLine {
  time: number;
  msg: string;
  shard?: number;
  [key: string]: unknown;
}

/** The node's structured log lines (its current process only) about one shard. */
function shardLog(node: ClusterNode, shard: number): LogLine[] {
  return node
    .process!.output()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.shard === shard);
}

async function until(what: string, timeoutMs: number, cond: () => boolean | Promise<boolean>, context: () => string = () => ""): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}\n${context()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Jobs on the shard with `range`, put through `via`; every one must be acknowledged. */
async function putJobs(via: string, range: [number, number], prefix: string, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, k) => jobIdOnShard(`${prefix}-${k}`, range));
  for (let i = 0; i < ids.length; i += 25) {
    await Promise.all(
      ids.slice(i, i + 25).map(async (id) => {
        const r = await request(via, "PUT", `/v1/jobs/${id}`, { queue: "q", every: "1h", payload: { pad: "x".repeat(150) } });
        expect(r.status, `${id}: ${JSON.stringify(r.body)}`).toBeLessThan(300);
      }),
    );
  }
  return ids;
}

async function expectAllPresent(via: string, ids: string[]): Promise<void> {
  const missing: string[] = [];
  // 503 is "no leader right now" (leadership may still settle after a restart): asked again;
  // only an answer counts, and anything but 200 is a loss.
  const deadline = Date.now() + 20_000;
  const read = async (id: string): Promise<number> => {
    for (;;) {
      const status = (await request(via, "GET", `/v1/jobs/${id}`)).status;
      if (status !== 503 || Date.now() > deadline) return status;
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  for (let i = 0; i < ids.length; i += 25) {
    const statuses = await Promise.all(ids.slice(i, i + 25).map(async (id) => [id, await read(id)] as const));
    for (const [id, status] of statuses) if (status !== 200) missing.push(`${id}: ${status}`);
  }
  expect(missing, "acknowledged jobs missing").toEqual([]);
}

function shardDir(node: ClusterNode, shard: number): string {
  return path.join(node.dataDir, "shards", String(shard));
}

function segments(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith(".wal")).sort().map((n) => path.join(dir, n));
}

/** Offsets where frames start in a segment file ([u32 length][u32 crc][body]). */
function frameStarts(file: string): number[] {
  const buf = fs.readFileSync(file);
  const out: number[] = [];
  for (let off = 0; off + 8 <= buf.length; off += 8 + buf.readUInt32LE(off)) out.push(off);
  return out;
}

const corruptions = {
  /** One byte flipped in the middle of the first segment: every later frame is still valid. */
  "a flipped byte mid-segment": (dir: string) => {
    const [first] = segments(dir);
    const buf = fs.readFileSync(first!);
    buf[buf.length >> 1] ^= 0x40;
    fs.writeFileSync(first!, buf);
    return first!;
  },
  /** A segment that is not the last one cut short in the middle of a frame. */
  "a segment truncated mid-frame": (dir: string) => {
    const segs = segments(dir);
    expect(segs.length, "the log spans several segments").toBeGreaterThanOrEqual(3);
    const victim = segs[1]!;
    const starts = frameStarts(victim);
    fs.truncateSync(victim, starts[starts.length >> 1]! + 5);
    return victim;
  },
  /** One byte of the snapshot's body flipped (the node was stopped cleanly, so it has one). */
  "a corrupt snapshot": (dir: string) => {
    const snap = fs.readdirSync(dir).find((n) => n.endsWith(".snap"));
    expect(snap, "a clean stop leaves a snapshot").toBeDefined();
    const file = path.join(dir, snap!);
    const buf = fs.readFileSync(file);
    buf[40 + ((buf.length - 40) >> 1)] ^= 0x01;
    fs.writeFileSync(file, buf);
    return file;
  },
};

/** The replica's log lines (this process): it started repairing, and neither promised nor led before it was repaired. */
function expectNoVoteBeforeRepair(node: ClusterNode, shard: number): LogLine[] {
  const lines = shardLog(node, shard);
  expect(lines.find((l) => l.msg === "shard recovered")?.repairing).toBe(true);
  const repaired = lines.findIndex((l) => l.msg.startsWith("replica repaired from the leader"));
  const before = repaired < 0 ? lines : lines.slice(0, repaired);
  const votes = before.filter((l) => ["promised an epoch to a candidate", "won the election; recovering the log", "leading"].includes(l.msg));
  expect(votes, "the repairing replica promised or led").toEqual([]);
  return lines;
}

/** Every node up, a serving leader per shard, and each replica of `shard` at its leader's commit index. */
async function converge(shard: number, cluster: TestCluster): Promise<void> {
  for (const n of cluster.nodes) if (!n.process) await cluster.startNode(n.id);
  const view = await cluster.waitForLeaders(30_000);
  const leader = cluster.node(view.shards.find((s) => s.id === shard)!.leader!);
  await until("every replica caught up", 30_000, async () => {
    const target = (await cluster.view(leader)).shards.find((s) => s.id === shard)!.commitIndex!;
    const views = await Promise.all(cluster.nodes.map((n) => cluster.view(n)));
    return views.every((v) => {
      const s = v.shards.find((x) => x.id === shard)!;
      return s.commitIndex !== null && s.commitIndex >= target && !s.repairing;
    });
  });
}

describe("a replica whose shard log was corrupted while it was down", () => {
  for (const [name, corrupt] of Object.entries(corruptions)) {
    test(`${name}: it repairs from the leader before it counts, and nothing acknowledged is lost`, async () => {
      const view = await cluster.waitForLeaders(20_000);
      const shard = view.shards[0]!;
      const leader = cluster.node(shard.leader!);
      const [victim, other] = shard.replicas.filter((r) => r !== leader.id).map((id) => cluster.node(id));
      const tag = name.split(" ")[1]!;

      const written = await putJobs(leader.base, shard.range, `${tag}-x`, 300);
      if (name === "a corrupt snapshot") {
        await victim!.process!.stop(); // a clean stop snapshots every shard
        victim!.process = null;
      } else await cluster.kill9(victim!.id);
      const whileDown = await putJobs(leader.base, shard.range, `${tag}-y`, 30);
      const file = corrupt(shardDir(victim!, shard.id));

      // Restarted, it repairs from the leader; the other follower goes at once, so the leader
      // commits `after` only with the victim's acknowledgement — counted once it is repaired.
      await cluster.startNode(victim!.id);
      await cluster.kill9(other!.id);
      const after = await putJobs(leader.base, shard.range, `${tag}-z`, 30);
      await until("the victim is repaired", 30_000, () => shardLog(victim!, shard.id).some((l) => l.msg.startsWith("replica repaired")), () => victim!.process!.output().slice(-3000));
      const lines = expectNoVoteBeforeRepair(victim!, shard.id);
      expect(lines.find((l) => l.msg.startsWith("shard log is corrupt"))?.file).toBe(file);
      expect(fs.readdirSync(path.join(shardDir(victim!, shard.id), "quarantine")).length).toBeGreaterThan(0);
      // It did lose acknowledged entries: what it kept ends well before the leader's log end.
      const kept = lines.find((l) => l.msg === "shard recovered")!.lastIndex as number;
      const target = lines.find((l) => l.msg.startsWith("repairing: catching up"))!.target as number;
      expect(kept).toBeLessThan(target - written.length / 2);

      // The leader goes; the other follower (without `after`) and the repaired victim elect.
      await cluster.kill9(leader.id);
      await cluster.startNode(other!.id);
      await cluster.waitForLeaders(30_000);
      await expectAllPresent(other!.base, [...written, ...whileDown, ...after]);
      await converge(shard.id, cluster);
    }, 120_000);
  }

  test("the NATS case: the leader dies before the corrupted replica is repaired; the lagging one and it do not elect without the entry", async () => {
    const view = await cluster.waitForLeaders(20_000);
    const shard = view.shards[0]!;
    const other = view.shards[1]!;
    const leader = cluster.node(shard.leader!);
    const [victim, lagging] = shard.replicas.filter((r) => r !== leader.id).map((id) => cluster.node(id));

    await cluster.kill9(lagging!.id);
    const written = await putJobs(leader.base, shard.range, "nats", 200); // leader + victim
    await cluster.kill9(victim!.id);
    corruptions["a flipped byte mid-segment"](shardDir(victim!, shard.id));
    await cluster.kill9(leader.id);
    await Promise.all([cluster.startNode(victim!.id), cluster.startNode(lagging!.id)]);

    // The other shard (its logs intact) elects and serves on the same two nodes.
    await until("the other shard serves", 20_000, async () => (await request(victim!.base, "GET", `/v1/jobs/${jobIdOnShard("probe", other.range)}`)).status === 404);
    await putJobs(victim!.base, other.range, "nats-other", 10);

    // Shard 0 has no majority that could know `written`: it must stay without a leader, never
    // answer "not found" for an acknowledged job, and the victim must say it is repairing.
    const watchUntil = Date.now() + 8_000;
    while (Date.now() < watchUntil) {
      for (const id of [written[0]!, written[written.length - 1]!]) {
        const r = await request(lagging!.base, "GET", `/v1/jobs/${id}`);
        // 404 would be the loss; 503 (no leader) is the honest answer.
        expect(r.status, `${id} read while only the lagging and the repairing replica are up`).not.toBe(404);
      }
      const v = (await cluster.view(victim!)).shards.find((s) => s.id === shard.id)!;
      expect(v.repairing).toBe(true);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(shardLog(victim!, shard.id).some((l) => l.msg === "refusing to promise: this replica is repairing its log")).toBe(true);
    expect(String((await request(victim!.base, "GET", "/metrics")).body)).toMatch(new RegExp(`^cronwheel_shard_repairing\\{shard="${shard.id}"\\} 1$`, "m"));
    expect(shardLog(lagging!, shard.id).filter((l) => l.msg === "leader recovered the log; taking over")).toEqual([]);
    expectNoVoteBeforeRepair(victim!, shard.id);

    // Restarted again, its log now reads clean, but the marker keeps it repairing.
    await cluster.kill9(victim!.id);
    await cluster.startNode(victim!.id);
    await until("the victim's view is up", 10_000, async () => (await cluster.view(victim!).catch(() => null)) !== null);
    expect(shardLog(victim!, shard.id).some((l) => l.msg.startsWith("shard log is corrupt"))).toBe(false);
    expect((await cluster.view(victim!)).shards.find((s) => s.id === shard.id)!.repairing).toBe(true);
    // An operator sees it too: `admin status` marks the replica.
    const status = JSON.parse(execFileSync(process.execPath, [BIN, "admin", "status", "--json", "--url", victim!.base], { encoding: "utf8" })) as { shards: Array<{ id: number; repairing: string[] }> };
    expect(status.shards.find((s) => s.id === shard.id)!.repairing).toEqual([victim!.id]);
    expect(execFileSync(process.execPath, [BIN, "admin", "status", "--url", victim!.base], { encoding: "utf8" })).toContain(`${victim!.id}(repairing)`);

    // The old leader returns: a majority that knows `written` elects, and the victim is repaired.
    await cluster.startNode(leader.id);
    await cluster.waitForLeaders(30_000);
    await expectAllPresent(lagging!.base, written);
    await converge(shard.id, cluster);
    expectNoVoteBeforeRepair(victim!, shard.id);
    expect(String((await request(victim!.base, "GET", "/metrics")).body)).not.toMatch(/^cronwheel_shard_repairing\{/m);
  }, 120_000);
});

describe("power loss (unsynced bytes lost)", () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    // Marks to cut back to, and a slow disk: 20 ms between each write and its fsync, so a cut
    // "right after" an acknowledgement would find it unsynced if it had been sent too early.
    cluster = await TestCluster.start({
      nodes: 3,
      shards: 2,
      name: "power-loss",
      args: ["--segment-bytes", "65536", "--log-level", "info"],
      env: () => ({ CRONWHEEL_FAULT_SYNC_MARKS: "1", CRONWHEEL_FAULT_FSYNC_DELAY_MS: "20" }),
    });
  }, 60_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  test("on a follower during a write burst, on a leader right after it acknowledged, then on every node: every acknowledged job survives and the replicas catch up", async () => {
    const view = await cluster.waitForLeaders(20_000);
    const leaders = new Set(view.shards.map((s) => s.leader!));
    const leader = cluster.node(view.shards[0]!.leader!);
    const follower = cluster.nodes.find((n) => !leaders.has(n.id)) ?? cluster.node(view.shards[0]!.replicas.find((r) => r !== leader.id)!);
    const acked: string[] = [];
    let stop = false;
    // Writers through every live node (forwarded to the leaders), to both shards.
    const writer = async (k: number) => {
      for (let i = 0; !stop; i++) {
        const via = cluster.live()[i % 3] ?? cluster.live()[0];
        const id = `power-${k}-${i}`;
        const r = via && await request(via.base, "PUT", `/v1/jobs/${id}`, { queue: "q", every: "1h", payload: { pad: "y".repeat(100) } }).catch(() => null);
        if (r && r.status < 300) acked.push(id);
        else await new Promise((res) => setTimeout(res, 50)); // unknown outcome: fine either way
      }
    };
    const writers = Array.from({ length: 8 }, (_, k) => writer(k));
    const ackedSoon = async (more: number) => {
      const target = acked.length + more;
      await until(`${more} more writes are acknowledged`, 20_000, () => acked.length >= target);
    };

    await ackedSoon(200);
    const lostOnFollower = await cluster.powerLoss(follower.id);
    await ackedSoon(200);
    await cluster.startNode(follower.id);
    await ackedSoon(200);
    // The leader, the moment it has acknowledged more.
    await ackedSoon(1);
    const lostOnLeader = await cluster.powerLoss(leader.id);
    await ackedSoon(100);
    await cluster.startNode(leader.id);
    await ackedSoon(100);
    // And every node at once (an outage of the whole room): only what was fsynced anywhere is left.
    await ackedSoon(1);
    const lostEverywhere = await Promise.all(cluster.nodes.map((n) => cluster.powerLoss(n.id)));
    stop = true;
    await Promise.all(writers);
    const lost = [lostOnFollower, lostOnLeader, ...lostEverywhere].map(summarize);
    console.log(`power loss: follower ${follower.id}, leader ${leader.id}, then all nodes lost ${JSON.stringify(lost)}; ${acked.length} writes acknowledged`);
    await Promise.all(cluster.nodes.map((n) => cluster.startNode(n.id)));

    await cluster.waitForLeaders(30_000);
    await expectAllPresent(follower.base, acked);
    for (const s of view.shards) await converge(s.id, cluster);
  }, 120_000);
});

function summarize(r: PowerLossReport): { truncatedBytes: number; segmentsDeleted: number } {
  return { truncatedBytes: r.truncated.reduce((n, t) => n + t.bytes, 0), segmentsDeleted: r.deleted.filter((f) => f.endsWith(".wal")).length };
}
