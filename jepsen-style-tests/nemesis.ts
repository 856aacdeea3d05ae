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
 *   worker-link  one worker's links to one node or to all (each worker reaches each node through
 *              its own proxy): reset again and again (a reconnect storm), half-open (the worker's
 *              heartbeat rule must find them; their assignments come back after the lease), or
 *              slowed to 2 KB/s with 100 ms of delay (reports and heartbeats arrive late). Targets:
 *              the worker, the mode, the nodes
 */
import type { ChildProcess } from "node:child_process";
import fs from "node:fs";
import type { TestCluster } from "../test/support/cluster.js";
import type { TcpProxy } from "../test/support/tcp-proxy.js";
import { monoNow, type HistoryWriter } from "./history.js";
import type { Random } from "./random.js";

export const FAULTS = ["kill", "kill-majority", "pause", "partition", "skew", "pause-worker", "one-way", "half-open", "worker-link"] as const;
export type Fault = (typeof FAULTS)[number];

/** A worker process and its links: node id → the proxy it reaches that node through. */
export interface WorkerHandle {
  id: string;
  process: ChildProcess;
  links: Map<string, TcpProxy>;
}

/** Rate limit and delay of a slowed worker link. */
const SLOW_LINK_BYTES_PER_SEC = 2_000;
const SLOW_LINK_DELAY_MS = 100;
/** Period of the resets in a reconnect storm (the worker redials within its 1 s cluster poll). */
const RESET_STORM_MS = 700;

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
    private readonly workers: readonly WorkerHandle[],
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
        const way = this.random.pick(["peers-out", "peers-in", "etcd-out", "etcd-in"] as const);
        const etcd = c.node(target).etcdProxy;
        if (way === "etcd-out") etcd.blackhole("to-server");
        else if (way === "etcd-in") etcd.blackhole("to-client");
        else c.oneWay(target, way === "peers-out" ? "out" : "in");
        return { fault, targets: [target, way], undo: async () => (way.startsWith("etcd") ? etcd.heal() : c.healLinks()) };
      }
      case "half-open": {
        const target = await this.leaderOrRandom();
        const etcd = this.random.chance(0.5) ? c.node(target).etcdProxy : null;
        if (etcd) etcd.halfOpen();
        else c.halfOpenLinks(target);
        return { fault, targets: [target, etcd ? "etcd" : "peers"], undo: async () => (etcd ? etcd.heal() : c.healLinks()) };
      }
      case "worker-link": {
        const w = this.random.pick(this.workers);
        const all = [...w.links];
        const hit = this.random.chance(0.5) ? all : [this.random.pick(all)];
        const proxies = hit.map(([, p]) => p);
        const mode = this.random.pick(["reset", "half-open", "slow"] as const);
        let storm: NodeJS.Timeout | null = null;
        if (mode === "reset") {
          const resetAll = () => proxies.forEach((p) => p.reset());
          resetAll();
          storm = setInterval(resetAll, RESET_STORM_MS);
        } else if (mode === "half-open") {
          proxies.forEach((p) => p.halfOpen());
        } else {
          proxies.forEach((p) => (p.rateLimit(SLOW_LINK_BYTES_PER_SEC), p.delay(SLOW_LINK_DELAY_MS)));
        }
        const undo = async () => {
          if (storm) clearInterval(storm);
          proxies.forEach((p) => p.heal());
        };
        return { fault, targets: [w.id, mode, ...hit.map(([node]) => node)], undo };
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
