/**
 * The rebalance planner (pure): what `admin rebalance` will do from a given shard map. The steps
 * run one node at a time against the real cluster in test/cluster-admin.test.ts; here, their
 * outcome on the map is checked against what a balanced map must be, for random maps (fast-check).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ShardMap } from "../cluster/etcd-coordinator.js";
import { planBalance, type Step } from "../cluster/rebalancer.js";

function mapOf(replicationFactor: number, replicas: string[][]): ShardMap {
  return { shardCount: replicas.length, replicationFactor, shards: replicas.map((r, id) => ({ id, range: [id, id], replicas: r })) } as ShardMap;
}

/** The replica sets after the steps, as the rebalancer would leave them. */
function apply(map: ShardMap, steps: Step[]): string[][] {
  const sets = map.shards.map((s) => [...s.replicas]);
  for (const step of steps) {
    const r = sets[step.shard]!;
    if (step.kind === "move") {
      expect(r).toContain(step.from);
      expect(r).not.toContain(step.to);
      sets[step.shard] = [...r.filter((x) => x !== step.from), step.to];
    } else if (step.kind === "remove") {
      expect(r).toContain(step.node);
      expect(r.length).toBeGreaterThan(map.replicationFactor);
      sets[step.shard] = r.filter((x) => x !== step.node);
    } else {
      expect(r).toContain(step.to);
      sets[step.shard] = [step.to, ...r.filter((x) => x !== step.to)];
    }
  }
  return sets;
}

describe("rebalance plan", () => {
  it("a shard left with a replica too many by a move that stopped halfway loses it first: a dead one, else the newest that does not lead", () => {
    const map = mapOf(3, [
      ["n1", "n2", "n3", "n4"],
      ["n2", "n3", "n1", "n5"],
      ["n3", "n1", "n2"],
    ]);
    const steps = planBalance(map, ["n1", "n2", "n3", "n4"], (shard) => (shard === 0 ? "n4" : map.shards[shard]!.replicas[0]!));
    expect(steps.slice(0, 2)).toEqual([
      { kind: "remove", shard: 0, node: "n3" }, // n4 leads shard 0 right now: the newest other one goes
      { kind: "remove", shard: 1, node: "n5" }, // n5 is not live
    ]);
    for (const r of apply(map, steps)) expect(r).toHaveLength(3);
  });

  it("an even map needs no step", () => {
    const map = mapOf(3, [
      ["n1", "n2", "n3"],
      ["n2", "n3", "n1"],
      ["n3", "n1", "n2"],
    ]);
    expect(planBalance(map, ["n1", "n2", "n3"], (shard) => map.shards[shard]!.replicas[0]!)).toEqual([]);
  });

  it("for any map, leaves every shard at the replication factor, on live nodes only, evenly spread", () => {
    const nodes = ["n1", "n2", "n3", "n4", "n5"];
    const arb = fc
      .record({
        live: fc.subarray(nodes, { minLength: 3 }),
        rf: fc.constantFrom(1, 3),
        shards: fc.array(fc.tuple(fc.shuffledSubarray(nodes, { minLength: 1, maxLength: 5 }), fc.nat()), { minLength: 1, maxLength: 12 }),
      })
      .filter(({ rf, shards }) => shards.every(([r]) => r.length >= rf));
    fc.assert(
      fc.property(arb, ({ live, rf, shards }) => {
        const map = mapOf(rf, shards.map(([r]) => r));
        const leaderOf = (shard: number) => {
          const r = map.shards[shard]!.replicas;
          return r[shards[shard]![1] % r.length]!;
        };
        const after = apply(map, planBalance(map, live, leaderOf));
        for (const r of after) {
          expect(r).toHaveLength(rf);
          expect(new Set(r).size).toBe(rf);
          for (const n of r) expect(live).toContain(n);
        }
        const counts = live.map((n) => after.filter((r) => r.includes(n)).length);
        expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
      }),
      { numRuns: 300 },
    );
  });
});
