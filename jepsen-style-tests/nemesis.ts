/**
 * Faults, each with a start and a stop, recorded in the history. One fault at a time, chosen by
 * the seeded generator from the run's list, every few seconds:
 *
 *   kill       kill -9 of a shard's leader (or, half the time, of a random node); restarted at stop
 *   kill-majority  kill -9 of two of three nodes; restarted at stop
 *   pause      SIGSTOP of a shard's leader for longer than its etcd lease; SIGCONT at stop
 *   partition  cut a leader off from the other nodes (node-to-node proxies), or a node off from
 *              etcd (its etcd proxy); healed at stop
 *   skew       move one node's clock by ±(5 s … 2 min) through its clock-offset file; back at stop
 *   pause-worker  SIGSTOP a worker process for 3–6 s (past its 2 s leases); SIGCONT at stop: its
 *              executions go to the other worker, and its late reports must change nothing
 *   one-way    asymmetric loss at a leader (or a random node): everything it sends to its peers is
 *              dropped (it still hears them), or everything it receives from them, or one
 *              direction of its etcd link; the sockets stay open. Healed at stop
 *   half-open  a leader's peer links, or its etcd link, stop passing anything without FIN or RST;
 *              at stop they are reset (new connections work at once)
 */
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import type { TestCluster } from "../test/support/cluster.js";
import { monoNow, type HistoryWriter } from "./history.js";
import type { Random } from "./random.js";

export const FAULTS = ["kill", "kill-majority", "pause", "partition", "skew", "pause-worker", "one-way", "half-open"] as const;
export type Fault = (typeof FAULTS)[number];

interface Active {
  fault: Fault;
  targets: string[];
  undo: () => Promise<void>;
}

export class Nemesis {
  private active: Active | null = null;

  constructor(
    private readonly cluster: TestCluster,
    private readonly history: HistoryWriter,
    private readonly random: Random,
    private readonly faults: readonly Fault[],
    /** Node id → the file its clock offset is read from. */
    private readonly clockFile: (nodeId: string) => string,
    private readonly workers: ReadonlyArray<{ id: string; process: ChildProcess }>,
  ) {}

  async start(): Promise<void> {
    if (this.active || this.faults.length === 0) return;
    const fault = this.random.pick(this.faults);
    const active = await this.inflict(fault);
    this.active = active;
    this.history.record({ type: "nemesis", action: "start", fault, targets: active.targets, t: monoNow() });
  }

  async stop(): Promise<void> {
    const active = this.active;
    if (!active) return;
    this.active = null;
    await active.undo();
    this.history.record({ type: "nemesis", action: "stop", fault: active.fault, targets: active.targets, t: monoNow() });
  }

  private async leaderOrRandom(): Promise<string> {
    const live = this.cluster.live();
    try {
      const view = await this.cluster.view();
      const leaders = view.shards.map((s) => s.leader).filter((l): l is string => l !== null && live.some((n) => n.id === l));
      if (leaders.length > 0 && this.random.chance(0.5)) return this.random.pick(leaders);
    } catch {
      // no view: any node
    }
    return this.random.pick(live).id;
  }

  private async inflict(fault: Fault): Promise<Active> {
    const c = this.cluster;
    switch (fault) {
      case "kill": {
        const target = await this.leaderOrRandom();
        await c.kill9(target);
        return { fault, targets: [target], undo: () => c.startNode(target) };
      }
      case "kill-majority": {
        const targets = [...c.live()].sort(() => this.random.next() - 0.5).slice(0, 2).map((n) => n.id);
        for (const t of targets) await c.kill9(t);
        return { fault, targets, undo: async () => void (await Promise.all(targets.map((t) => c.startNode(t)))) };
      }
      case "pause": {
        const target = await this.leaderOrRandom();
        c.pause(target);
        return { fault, targets: [target], undo: async () => c.resume(target) };
      }
      case "partition": {
        const target = await this.leaderOrRandom();
        if (this.random.chance(0.5)) {
          c.node(target).etcdProxy.cut();
          return { fault, targets: [target, "etcd"], undo: async () => c.node(target).etcdProxy.heal() };
        }
        const others = c.nodes.map((n) => n.id).filter((id) => id !== target);
        c.partition([[target], others]);
        return { fault, targets: [target], undo: async () => c.healLinks() };
      }
      case "one-way": {
        const target = await this.leaderOrRandom();
        const links = c.linksOf(target);
        // What the target sends travels to-server on the links it dialed and to-client on those
        // its peers dialed; what it receives, the other way round.
        const way = this.random.pick(["peers-out", "peers-in", "etcd-out", "etcd-in"] as const);
        const proxies = way.startsWith("etcd") ? [c.node(target).etcdProxy] : [...links.dialed, ...links.accepted];
        if (way === "etcd-out") c.node(target).etcdProxy.blackhole("to-server");
        else if (way === "etcd-in") c.node(target).etcdProxy.blackhole("to-client");
        else {
          for (const p of links.dialed) p.blackhole(way === "peers-out" ? "to-server" : "to-client");
          for (const p of links.accepted) p.blackhole(way === "peers-out" ? "to-client" : "to-server");
        }
        return { fault, targets: [target, way], undo: async () => proxies.forEach((p) => p.heal()) };
      }
      case "half-open": {
        const target = await this.leaderOrRandom();
        const links = c.linksOf(target);
        const etcd = this.random.chance(0.5);
        const proxies = etcd ? [c.node(target).etcdProxy] : [...links.dialed, ...links.accepted];
        for (const p of proxies) p.halfOpen();
        return { fault, targets: [target, etcd ? "etcd" : "peers"], undo: async () => proxies.forEach((p) => p.heal()) };
      }
      case "pause-worker": {
        const w = this.random.pick(this.workers);
        w.process.kill("SIGSTOP");
        return { fault, targets: [w.id], undo: async () => void w.process.kill("SIGCONT") };
      }
      case "skew": {
        const target = this.random.pick(c.live()).id;
        const offset = (this.random.chance(0.5) ? 1 : -1) * this.random.int(5_000, 120_000);
        fs.writeFileSync(this.clockFile(target), String(offset));
        return { fault, targets: [target], undo: async () => fs.writeFileSync(this.clockFile(target), "0") };
      }
    }
  }
}
