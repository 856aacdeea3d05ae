/**
 * Moving replicas and leaderships: what the admin CLI's move-shard, rebalance and drain do.
 *
 * A move of shard S from node A to node B is two changes of S's replica set, one node at a time:
 *   1. add B (at the end of the preference order); the leader gives up, the next epoch's leader
 *      recovers the log from a majority of {…, A, B} and ships it to B; wait until B has caught up;
 *   2. remove A; again a new epoch, now among the set without A. A deletes its copy.
 * One node at a time keeps every majority of the old set overlapping every majority of the new
 * one, so no committed entry can be lost across the change, whichever leader wins. Clients see a
 * short 503 (Retry-After) while a new leader takes over; writes in flight are answered 503 and
 * retried, never half-applied.
 *
 * A leadership transfer reorders the replica set so the target comes first (the preferred leader
 * campaigns first); a rebalance is a list of moves and transfers computed from the map.
 *
 * A move that failed after step 1 (its target never caught up, or was killed) leaves the shard with
 * one replica more than the replication factor. Running the same move again resumes it (waits for
 * the target, then removes the source); a rebalance instead removes the extra replica first
 * (`remove` steps: a replica not live, else the newest that does not lead), one node at a time too.
 */
import { performance } from "node:perf_hooks";
import type { Logger } from "pino";
import { CronwheelError } from "../src/core/errors.js";
import type { EtcdCoordinator, ShardMap } from "./etcd-coordinator.js";
import type { PeerNetwork } from "./peer-network.js";

export type Step =
  | { kind: "move"; shard: number; from: string; to: string }
  | { kind: "leader"; shard: number; to: string }
  | { kind: "remove"; shard: number; node: string };

export interface StepResult {
  step: Step;
  ms: number;
  epoch: number;
}

/** What a shard's leader says about its replication (peer request "status"). */
export interface LeaderStatus {
  serving: boolean;
  epoch: number;
  replicas: string[];
  commitIndex: number;
  followers: Record<string, number>;
}

/** How long one step may take before it is reported as failed (catching up a big shard included). */
const STEP_TIMEOUT_MS = 120_000;

export class Rebalancer {
  constructor(
    private readonly coordinator: EtcdCoordinator,
    private readonly peers: PeerNetwork,
    private readonly logger: Logger,
  ) {}

  async run(step: Step): Promise<StepResult> {
    const started = performance.now();
    const map = await this.coordinator.readMap();
    const info = map.map.shards.find((s) => s.id === step.shard);
    if (!info) throw new CronwheelError("not_found", `shard ${step.shard} not found`);
    const nodes = new Set(this.coordinator.view().nodes.map((n) => n.id));
    const extra = info.replicas.length > map.map.replicationFactor;
    if (step.kind === "move") {
      if (!info.replicas.includes(step.from)) throw new CronwheelError("invalid_argument", `node ${step.from} holds no replica of shard ${step.shard}`);
      // Both already there with a replica to spare: an earlier run of this move stopped between its two changes.
      const resuming = info.replicas.includes(step.to) && extra;
      if (info.replicas.includes(step.to) && !resuming) throw new CronwheelError("invalid_argument", `node ${step.to} already holds a replica of shard ${step.shard}`);
      if (!nodes.has(step.to)) throw new CronwheelError("invalid_argument", `node ${step.to} is not a live member of the cluster`);
      if (!resuming) await this.changeReplicas(step.shard, (r) => (r.includes(step.to) ? r : [...r, step.to]));
      await this.waitCaughtUp(step.shard, step.to);
      await this.changeReplicas(step.shard, (r) => r.filter((x) => x !== step.from));
    } else if (step.kind === "remove") {
      if (!info.replicas.includes(step.node)) throw new CronwheelError("invalid_argument", `node ${step.node} holds no replica of shard ${step.shard}`);
      if (!extra) {
        throw new CronwheelError("invalid_argument", `shard ${step.shard} has ${info.replicas.length} replicas, no more than the replication factor (${map.map.replicationFactor}): move a replica instead`);
      }
      await this.changeReplicas(step.shard, (r) => r.filter((x) => x !== step.node));
    } else {
      if (!info.replicas.includes(step.to)) throw new CronwheelError("invalid_argument", `node ${step.to} holds no replica of shard ${step.shard}`);
      await this.changeReplicas(step.shard, (r) => [step.to, ...r.filter((x) => x !== step.to)]);
    }
    const status = await this.waitServing(step.shard, step.kind === "leader" ? step.to : null);
    const result = { step, ms: Math.round(performance.now() - started), epoch: status.epoch };
    this.logger.info(result, "rebalance step done");
    return result;
  }

  /** Steps that spread replicas, then preferred leaders, then actual leaders, evenly over the live nodes. */
  async plan(): Promise<Step[]> {
    const { map } = await this.coordinator.readMap();
    const live = this.coordinator.view().nodes.map((n) => n.id).filter((id) => !(map.drained ?? []).includes(id));
    return planBalance(map, live, (shard) => this.coordinator.leaderOf(shard)?.nodeId ?? null);
  }

  /** Steps that move every replica (and so every leadership) off `nodeId`. */
  async drainPlan(nodeId: string): Promise<Step[]> {
    const { map } = await this.coordinator.readMap();
    const others = this.coordinator.view().nodes.map((n) => n.id).filter((id) => id !== nodeId && !(map.drained ?? []).includes(id));
    return planDrain(map, nodeId, others);
  }

  /** Mark a node drained (rebalances leave it out until it registers again). */
  async markDrained(nodeId: string): Promise<void> {
    await this.editMap((map) => ({ ...map, drained: [...new Set([...(map.drained ?? []), nodeId])] }));
  }

  private async changeReplicas(shard: number, change: (replicas: string[]) => string[]): Promise<void> {
    await this.editMap((map) => ({ ...map, shards: map.shards.map((s) => (s.id === shard ? { ...s, replicas: change(s.replicas) } : s)) }));
  }

  /** Read-modify-write of the map, retried when another change got in between. */
  private async editMap(edit: (map: ShardMap) => ShardMap): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const { map, revision } = await this.coordinator.readMap();
      const next = edit(map);
      if (JSON.stringify(next) === JSON.stringify(map)) return;
      if (await this.coordinator.replaceMap(next, revision)) return;
      await sleep(50 + Math.random() * 100);
    }
    throw new CronwheelError("conflict", "the shard map kept changing under this operation; retry");
  }

  private async leaderStatus(shard: number): Promise<LeaderStatus | null> {
    const leader = this.coordinator.leaderOf(shard);
    if (!leader) return null;
    try {
      return await this.peers.request<LeaderStatus>(leader.nodeId, { t: "status", shard }, 2000);
    } catch {
      return null;
    }
  }

  /** Until the shard's leader serves with the map's current replica set (and is `leader`, if given). */
  private async waitServing(shard: number, leader: string | null): Promise<LeaderStatus> {
    const deadline = performance.now() + STEP_TIMEOUT_MS;
    let transferAsked = 0;
    for (;;) {
      const { map } = await this.coordinator.readMap();
      const replicas = map.shards.find((s) => s.id === shard)!.replicas;
      const status = await this.leaderStatus(shard);
      const current = this.coordinator.leaderOf(shard)?.nodeId ?? null;
      if (status?.serving && status.replicas.join(",") === replicas.join(",")) {
        if (leader === null || current === leader) return status;
        // The preferred replica campaigns first, but an election it did not win stays won: ask the
        // leader to step aside (a few times at most) so the preferred one can take over.
        if (transferAsked < 5 && current) {
          transferAsked++;
          await this.peers.request(current, { t: "resign", shard }, 2000).catch(() => undefined);
        }
      }
      if (performance.now() > deadline) throw new CronwheelError("unavailable", `shard ${shard} has no serving leader with replicas ${replicas.join(",")} yet`, undefined, 5);
      await sleep(100);
    }
  }

  private async waitCaughtUp(shard: number, node: string): Promise<void> {
    const deadline = performance.now() + STEP_TIMEOUT_MS;
    for (;;) {
      const status = await this.leaderStatus(shard);
      if (status?.serving && status.replicas.includes(node) && (status.followers[node] ?? 0) >= status.commitIndex - CAUGHT_UP_SLACK) return;
      if (performance.now() > deadline) throw new CronwheelError("unavailable", `node ${node} did not catch up on shard ${shard}`, undefined, 5);
      await sleep(100);
    }
  }
}

/** A new replica counts as caught up this close to the commit index (writes keep flowing meanwhile). */
const CAUGHT_UP_SLACK = 100;

// -----------------------------------------------------------------------------------------------
// planning (pure)

export function planBalance(map: ShardMap, live: string[], actualLeader: (shard: number) => string | null): Step[] {
  const steps: Step[] = [];
  const shards = map.shards.map((s) => ({ id: s.id, replicas: [...s.replicas] }));
  // Replicas beyond the replication factor (a move that stopped halfway): a dead one first, else
  // the newest (last) one that does not lead.
  for (const s of shards) {
    while (s.replicas.length > map.replicationFactor) {
      const leader = actualLeader(s.id);
      const node = s.replicas.find((r) => !live.includes(r)) ?? [...s.replicas].reverse().find((r) => r !== leader)!;
      steps.push({ kind: "remove", shard: s.id, node });
      s.replicas = s.replicas.filter((r) => r !== node);
    }
  }
  const count = (node: string) => shards.filter((s) => s.replicas.includes(node)).length;
  /**
   * The first move of a replica from one of `froms` (in that order) to one of `tos` (emptiest first)
   * that holds none of that shard yet. Off a node not live any move will do; between live nodes only
   * one that narrows a gap of more than one.
   */
  const pickMove = (froms: string[], tos: string[], fromDead: boolean) => {
    for (const from of froms) {
      for (const to of tos) {
        if (to === from || (!fromDead && count(from) - count(to) <= 1)) continue;
        const shard = shards.find((s) => s.replicas.includes(from) && !s.replicas.includes(to));
        if (shard) return { shard, from, to };
      }
    }
    return null;
  };
  // Replicas: from a node not live, else the fullest live node, to the emptiest live node that can
  // take one of its shards (holds no replica of it yet).
  for (let guard = 0; guard < 10_000; guard++) {
    const holders = new Set(shards.flatMap((s) => s.replicas));
    const dead = [...holders].filter((n) => !live.includes(n)).sort();
    const byCount = [...live].sort((a, b) => count(a) - count(b) || (a < b ? -1 : 1));
    const move = pickMove(dead.length > 0 ? dead : [...byCount].reverse(), byCount, dead.length > 0);
    if (!move) break;
    steps.push({ kind: "move", shard: move.shard.id, from: move.from, to: move.to });
    move.shard.replicas = [...move.shard.replicas.filter((r) => r !== move.from), move.to];
  }
  // Preferred leaders: the first replica; even them out.
  const prefer = (node: string) => shards.filter((s) => s.replicas[0] === node).length;
  for (let guard = 0; guard < 10_000; guard++) {
    const byCount = [...live].sort((a, b) => prefer(a) - prefer(b) || (a < b ? -1 : 1));
    const under = byCount[0]!;
    const over = byCount[byCount.length - 1]!;
    if (prefer(over) - prefer(under) <= 1) break;
    const shard = shards.find((s) => s.replicas[0] === over && s.replicas.includes(under));
    if (!shard) break;
    steps.push({ kind: "leader", shard: shard.id, to: under });
    shard.replicas = [under, ...shard.replicas.filter((r) => r !== under)];
  }
  // Actual leaders that are not the preferred one (after failovers): hand back.
  const changed = new Set(steps.map((s) => s.shard));
  for (const s of shards) {
    const leader = actualLeader(s.id);
    if (!changed.has(s.id) && leader !== null && leader !== s.replicas[0]) steps.push({ kind: "leader", shard: s.id, to: s.replicas[0]! });
  }
  return steps;
}

export function planDrain(map: ShardMap, node: string, others: string[]): Step[] {
  const shards = map.shards.map((s) => ({ id: s.id, replicas: [...s.replicas] }));
  const count = (n: string) => shards.filter((s) => s.replicas.includes(n)).length;
  const steps: Step[] = [];
  for (const s of shards) {
    if (!s.replicas.includes(node)) continue;
    const to = others.filter((o) => !s.replicas.includes(o)).sort((a, b) => count(a) - count(b) || (a < b ? -1 : 1))[0];
    if (to === undefined) {
      throw new CronwheelError("conflict", `no node can take shard ${s.id}'s replica from ${node}: every other node already holds one; add a node first`);
    }
    steps.push({ kind: "move", shard: s.id, from: node, to });
    s.replicas = [...s.replicas.filter((r) => r !== node), to];
  }
  return steps;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
