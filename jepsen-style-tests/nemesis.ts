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
 *   rebalance  `cronwheel admin move-shard` (the real CLI, run by a random node) moves a shard's
 *              replica to a node that holds none (runs use four nodes); 0.2–1.5 s in, the move's
 *              source or target is killed -9 or cut off from etcd, or nothing happens to it;
 *              restarted or healed at stop (the CLI runs on: a move can outlive its fault)
 *   power-loss kill -9 of a shard's leader (or a random node), then its shard logs cut back to
 *              their last fsync, as a power cut could leave them (runs with this fault start the
 *              nodes with the WAL's sync marks and a 5 ms fsync, so unsynced bytes exist);
 *              restarted at stop
 *   ring       (five nodes) a partition where no majority is whole: a majorities ring (each node
 *              sees its two ring neighbours: a majority of its own, different for every node), a
 *              bridge (two pairs that only one node connects), or random halves (two and three);
 *              healed at stop
 *   etcd       a fault of the three-member etcd itself: kill -9 of its leader (restarted at stop),
 *              SIGSTOP of its leader or of one follower (SIGCONT at stop), or every member killed
 *              (all restarted with their data at stop)
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import type { TestCluster } from "../test/support/cluster.js";
import { BIN } from "../test/support/server-process.js";
import type { TcpProxy } from "../test/support/tcp-proxy.js";
import { monoNow, type HistoryWriter } from "./history.js";
import type { Random } from "./random.js";

export const FAULTS = ["kill", "kill-majority", "pause", "partition", "skew", "pause-worker", "one-way", "half-open", "worker-link", "etcd", "rebalance", "ring", "power-loss"] as const;
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
  detail?: string;
  undo: () => Promise<void>;
}

export class Nemesis {
  private active: Active | null = null;
  private readonly adminCommands = new Set<ChildProcess>();

  constructor(
    private readonly cluster: TestCluster,
    private readonly history: HistoryWriter,
    private readonly random: Random,
    private readonly faults: readonly Fault[],
    /** Node id → the file its clock offset is read from. */
    private readonly clockFile: (nodeId: string) => string,
    private readonly workers: readonly WorkerHandle[],
    /** Where the admin commands' output goes (the `rebalance` fault). */
    private readonly adminLog: string,
  ) {}

  /** Stop admin commands still running (a move waiting on a replica that never caught up). */
  close(): void {
    for (const child of this.adminCommands) child.kill("SIGKILL");
  }

  async start(): Promise<void> {
    if (this.active || this.faults.length === 0) return;
    const fault = this.random.pick(this.faults);
    const active = await this.inflict(fault);
    this.active = active;
    this.history.record({ type: "nemesis", action: "start", fault, targets: active.targets, ...(active.detail ? { detail: active.detail } : {}), t: monoNow() });
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
          c.cutFromEtcd(target);
          return { fault, targets: [target, "etcd"], undo: async () => c.healEtcdLinks(target) };
        }
        const others = c.nodes.map((n) => n.id).filter((id) => id !== target);
        c.partition([[target], others]);
        return { fault, targets: [target], undo: async () => c.healLinks() };
      }
      case "one-way": {
        const target = await this.leaderOrRandom();
        const way = this.random.pick(["peers-out", "peers-in", "etcd-out", "etcd-in"] as const);
        const etcd = c.node(target).etcdProxies;
        if (way === "etcd-out") etcd.forEach((p) => p.blackhole("to-server"));
        else if (way === "etcd-in") etcd.forEach((p) => p.blackhole("to-client"));
        else c.oneWay(target, way === "peers-out" ? "out" : "in");
        return { fault, targets: [target, way], undo: async () => (way.startsWith("etcd") ? c.healEtcdLinks(target) : c.healLinks()) };
      }
      case "half-open": {
        const target = await this.leaderOrRandom();
        const etcd = this.random.chance(0.5);
        if (etcd) c.node(target).etcdProxies.forEach((p) => p.halfOpen());
        else c.halfOpenLinks(target);
        return { fault, targets: [target, etcd ? "etcd" : "peers"], undo: async () => (etcd ? c.healEtcdLinks(target) : c.healLinks()) };
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
      case "etcd":
        return { fault, ...(await this.etcdFault()) };
      case "rebalance":
        return { fault, ...(await this.rebalanceFault()) };
      case "ring":
        return { fault, ...this.ringFault() };
      case "power-loss": {
        const target = await this.leaderOrRandom();
        const cut = await c.powerLoss(target);
        const bytes = cut.truncated.reduce((sum, t) => sum + t.bytes, 0);
        return { fault, targets: [target], detail: `${bytes} unsynced bytes cut from ${cut.truncated.length} segments, ${cut.deleted.length} files never synced deleted`, undo: () => c.startNode(target) };
      }
      case "skew": {
        const target = this.random.pick(c.live()).id;
        const offset = (this.random.chance(0.5) ? 1 : -1) * this.random.int(5_000, 120_000);
        fs.writeFileSync(this.clockFile(target), String(offset));
        return { fault, targets: [target], detail: `offset ${offset} ms`, undo: async () => fs.writeFileSync(this.clockFile(target), "0") };
      }
    }
  }

  private async etcdFault(): Promise<Omit<Active, "fault">> {
    const etcd = this.cluster.etcd;
    const leader = (await etcd.leader()) ?? this.random.pick(etcd.members);
    switch (this.random.int(0, 3)) {
      case 0:
        await leader.kill9();
        return { targets: [leader.name], detail: "kill -9 of the etcd leader", undo: () => leader.restart() };
      case 1:
        leader.pause();
        return { targets: [leader.name], detail: "SIGSTOP of the etcd leader", undo: async () => leader.resume() };
      case 2: {
        const follower = this.random.pick(etcd.members.filter((m) => m !== leader));
        follower.pause();
        return { targets: [follower.name], detail: "SIGSTOP of an etcd follower", undo: async () => follower.resume() };
      }
      default:
        await Promise.all(etcd.members.map((m) => m.kill9()));
        return {
          targets: etcd.members.map((m) => m.name),
          detail: "every etcd member killed",
          undo: async () => void (await Promise.all(etcd.members.map((m) => m.restart()))),
        };
    }
  }

  private async rebalanceFault(): Promise<Omit<Active, "fault">> {
    const c = this.cluster;
    const live = c.live().map((n) => n.id);
    const view = await c.view();
    const movable = view.shards.filter((s) => live.some((id) => !s.replicas.includes(id)));
    if (movable.length === 0) return { targets: [], detail: "no shard can move: every live node holds every shard", undo: async () => undefined };
    const shard = this.random.pick(movable);
    const from = shard.leader !== null && this.random.chance(0.5) ? shard.leader : this.random.pick(shard.replicas);
    const to = this.random.pick(live.filter((id) => !shard.replicas.includes(id)));
    const via = c.node(this.random.pick(live)).base;
    const args = ["admin", "move-shard", String(shard.id), "--from", from, "--to", to];
    this.runAdmin(args, via);
    await new Promise((r) => setTimeout(r, this.random.int(200, 1_500)));
    const victim = this.random.pick([from, to]);
    const move = `${args.slice(1).join(" ")} via ${via}`;
    switch (this.random.int(0, 2)) {
      case 0:
        if (c.live().some((n) => n.id === victim)) await c.kill9(victim);
        return { targets: [victim], detail: `${move}; kill -9 of ${victim}`, undo: () => c.startNode(victim) };
      case 1:
        c.cutFromEtcd(victim);
        return { targets: [victim, "etcd"], detail: `${move}; ${victim} cut off from etcd`, undo: async () => c.healEtcdLinks(victim) };
      default:
        return { targets: [], detail: move, undo: async () => undefined };
    }
  }

  private runAdmin(args: string[], url: string): void {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, CRONWHEEL_URL: url, CRONWHEEL_TOKEN: "" }, stdio: ["ignore", "pipe", "pipe"] });
    this.adminCommands.add(child);
    let output = "";
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    child.once("exit", (code) => {
      this.adminCommands.delete(child);
      fs.appendFileSync(this.adminLog, `t=${monoNow().toFixed(0)} cronwheel ${args.join(" ")} (CRONWHEEL_URL=${url}): exit ${code}\n${output}\n`);
    });
  }

  private ringFault(): Omit<Active, "fault"> {
    const c = this.cluster;
    const order = [...c.nodes.map((n) => n.id)].sort(() => this.random.next() - 0.5);
    const at = (id: string) => order.indexOf(id);
    const n = order.length;
    let connected: (a: string, b: string) => boolean;
    let detail: string;
    switch (this.random.int(0, 2)) {
      case 0:
        connected = (a, b) => [1, n - 1].includes((at(a) - at(b) + n) % n);
        detail = `majorities ring ${order.join("-")}`;
        break;
      case 1: {
        // order[0] is the bridge; the others split in two groups it alone connects.
        const half = (id: string) => (at(id) <= Math.floor(n / 2) ? 0 : 1);
        connected = (a, b) => at(a) === 0 || at(b) === 0 || half(a) === half(b);
        detail = `bridge ${order[0]} between ${order.slice(1, Math.floor(n / 2) + 1).join(",")} and ${order.slice(Math.floor(n / 2) + 1).join(",")}`;
        break;
      }
      default: {
        const small = order.slice(0, Math.floor(n / 2));
        connected = (a, b) => small.includes(a) === small.includes(b);
        detail = `halves ${small.join(",")} | ${order.slice(small.length).join(",")}`;
      }
    }
    c.cutLinksWhere((a, b) => !connected(a, b));
    return { targets: order, detail, undo: async () => c.healLinks() };
  }
}
