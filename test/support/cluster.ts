/**
 * A real cluster for tests and benchmarks: one etcd and N `cronwheel server` processes on
 * loopback, each with its own data directory and fixed port. Nodes can be killed (-9), stopped,
 * paused and restarted with their data.
 */
import fs from "node:fs";
import path from "node:path";
import { slotOf } from "../../src/core/routing.js";
import { simulatePowerLoss, type PowerLossReport } from "../../wal/fault-hooks.js";
import { freePort, startEtcd, type EtcdProcess } from "./etcd.js";
import { TcpProxy } from "./tcp-proxy.js";
import { launchServer, request, tempDir, type ServerProcess } from "./server-process.js";

export interface ClusterNode {
  id: string;
  port: number;
  base: string;
  dataDir: string;
  process: ServerProcess | null;
  /** The node reaches etcd only through this, so a test can cut it off. */
  /** One proxy per etcd member: the node reaches etcd only through them. */
  etcdProxies: TcpProxy[];
}

export interface ClusterView {
  nodes: Array<{ id: string; address: string; state: string }>;
  shards: Array<{ id: number; range: [number, number]; replicas: string[]; leader: string | null; epoch: number | null; commitIndex: number | null; repairing?: boolean }>;
}

export class TestCluster {
  private constructor(
    readonly etcd: EtcdProcess,
    readonly nodes: ClusterNode[],
    private readonly args: string[],
  ) {}

  /** Node-to-node links through proxies (`from->to`), when started with `peerProxies`. */
  readonly links = new Map<string, TcpProxy>();
  /** Extra environment per node (clock-offset files, debug switches). */
  env: (nodeId: string) => Record<string, string> = () => ({});

  /** `nodes` are prepared; the first `initial` (default all) start now, the rest join later with startNode. */
  static async start(opts: {
    nodes: number;
    initial?: number;
    shards: number;
    replicationFactor?: number;
    args?: string[];
    name?: string;
    /** Every node dials every other through its own proxy (for partitions). */
    peerProxies?: boolean;
    /** etcd cluster size (default 1). */
    etcdMembers?: number;
    env?: (nodeId: string) => Record<string, string>;
  }): Promise<TestCluster> {
    const etcd = await startEtcd({ members: opts.etcdMembers ?? 1 });
    const dir = tempDir(opts.name ?? "cluster");
    const nodes: ClusterNode[] = [];
    const args = ["--shards", String(opts.shards), "--replication-factor", String(opts.replicationFactor ?? 3), "--log-level", "warn", ...(opts.args ?? [])];
    const cluster = new TestCluster(etcd, nodes, args);
    try {
      for (let i = 1; i <= opts.nodes; i++) {
        const port = await freePort();
        const etcdProxies = await Promise.all(etcd.endpoints.map((e) => TcpProxy.start("127.0.0.1", Number(new URL(e).port))));
        nodes.push({ id: `n${i}`, port, base: `http://127.0.0.1:${port}`, dataDir: path.join(dir, `n${i}`), process: null, etcdProxies });
      }
      if (opts.env) cluster.env = opts.env;
      if (opts.peerProxies) {
        for (const from of nodes) for (const to of nodes) if (from !== to) cluster.links.set(`${from.id}->${to.id}`, await TcpProxy.start("127.0.0.1", to.port));
      }
      await Promise.all(nodes.slice(0, opts.initial ?? opts.nodes).map((n) => cluster.startNode(n.id)));
      await cluster.waitForLeaders();
    } catch (error) {
      // A cluster that did not come up must not leave etcd and the started nodes running.
      await cluster.stop().catch(() => undefined);
      throw error;
    }
    return cluster;
  }

  node(id: string): ClusterNode {
    const n = this.nodes.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  async startNode(id: string): Promise<void> {
    const n = this.node(id);
    n.process = await launchServer(n.dataDir, [
      "--etcd", n.etcdProxies.map((p) => p.endpoint).join(","),
      "--node-id", n.id,
      "--data-dir", n.dataDir,
      "--listen", `127.0.0.1:${n.port}`,
      ...[...this.links].filter(([k]) => k.startsWith(`${n.id}->`)).flatMap(([k, p]) => ["--peer-address", `${k.slice(k.indexOf(">") + 1)}=127.0.0.1:${p.port}`]),
      ...this.args,
    ], this.env(n.id));
  }

  async kill9(id: string): Promise<void> {
    const n = this.node(id);
    await n.process?.kill9();
    n.process = null;
  }

  /**
   * kill -9, then what a power cut could leave of the node's shard logs: each back to its last
   * fsync (needs CRONWHEEL_FAULT_SYNC_MARKS=1 in the node's environment; wal/fault-hooks.ts).
   */
  async powerLoss(id: string): Promise<PowerLossReport> {
    await this.kill9(id);
    const shards = path.join(this.node(id).dataDir, "shards");
    const report: PowerLossReport = { truncated: [], deleted: [] };
    for (const dir of fs.existsSync(shards) ? fs.readdirSync(shards) : []) {
      const r = await simulatePowerLoss(path.join(shards, dir));
      report.truncated.push(...r.truncated);
      report.deleted.push(...r.deleted);
    }
    return report;
  }

  pause(id: string): void {
    this.node(id).process?.child.kill("SIGSTOP");
  }

  resume(id: string): void {
    this.node(id).process?.child.kill("SIGCONT");
  }

  /** Cut every node-to-node link between the groups (needs `peerProxies`); nodes in no group keep theirs. */
  partition(groups: string[][]): void {
    this.cutLinksWhere((from, to) => {
      const gf = groups.findIndex((g) => g.includes(from));
      const gt = groups.findIndex((g) => g.includes(to));
      return gf >= 0 && gt >= 0 && gf !== gt;
    });
  }

  /** Cut each node-to-node link (`from` dials `to`) for which `cut` says so (needs `peerProxies`). */
  cutLinksWhere(cut: (from: string, to: string) => boolean): void {
    for (const [key, proxy] of this.links) {
      const [from, to] = key.split("->") as [string, string];
      if (cut(from, to)) proxy.cut();
    }
  }

  /** Cut a node off from every etcd member (its other links stay). */
  cutFromEtcd(id: string): void {
    for (const p of this.node(id).etcdProxies) p.cut();
  }

  healEtcdLinks(id: string): void {
    for (const p of this.node(id).etcdProxies) p.heal();
  }

  /**
   * The node-to-node proxies that touch `id`: `dialed` carry the connections it opened (its
   * requests go to-server, their replies to-client), `accepted` those its peers opened to it (their
   * requests to-server, its replies to-client). Needs `peerProxies`.
   */
  linksOf(id: string): { dialed: TcpProxy[]; accepted: TcpProxy[] } {
    const dialed: TcpProxy[] = [];
    const accepted: TcpProxy[] = [];
    for (const [key, proxy] of this.links) {
      const [from, to] = key.split("->");
      if (from === id) dialed.push(proxy);
      else if (to === id) accepted.push(proxy);
    }
    return { dialed, accepted };
  }

  /** Drop what `id` sends to its peers ("out") or what it hears from them ("in"); every socket stays open. */
  oneWay(id: string, lost: "out" | "in"): void {
    const { dialed, accepted } = this.linksOf(id);
    for (const p of dialed) p.blackhole(lost === "out" ? "to-server" : "to-client");
    for (const p of accepted) p.blackhole(lost === "out" ? "to-client" : "to-server");
  }

  /** `id`'s peer links pass nothing either way, with no FIN or RST (half-open). */
  halfOpenLinks(id: string): void {
    const { dialed, accepted } = this.linksOf(id);
    for (const p of [...dialed, ...accepted]) p.halfOpen();
  }

  healLinks(): void {
    for (const proxy of this.links.values()) proxy.heal();
  }

  live(): ClusterNode[] {
    return this.nodes.filter((n) => n.process !== null);
  }

  async view(from?: ClusterNode): Promise<ClusterView> {
    const node = from ?? this.live()[0]!;
    const r = await request(node.base, "GET", "/v1/cluster");
    if (r.status !== 200) throw new Error(`GET /v1/cluster: ${r.status}`);
    return r.body as ClusterView;
  }

  /**
   * Until every shard has a live leader that serves. Holding the etcd key is not enough (the new
   * leader may still be recovering), so each shard is probed with a read of a job that does not
   * exist: reads go to the leader, which answers 404 only once it serves.
   */
  async waitForLeaders(timeoutMs = 20_000, excluding: string[] = []): Promise<ClusterView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const v = await this.view();
        const liveIds = new Set(this.live().map((n) => n.id));
        if (v.shards.every((s) => s.leader !== null && liveIds.has(s.leader) && !excluding.includes(s.leader)) && (await this.allShardsServe(v))) return v;
      } catch {
        // a node may be starting
      }
      if (Date.now() > deadline) throw new Error(`shards without a live leader after ${timeoutMs} ms:\n${this.live().map((n) => n.process!.output().slice(-3000)).join("\n---\n")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async allShardsServe(v: ClusterView): Promise<boolean> {
    const base = this.live()[0]!.base;
    const probes = await Promise.all(v.shards.map((s) => request(base, "GET", `/v1/jobs/${jobIdOnShard("serving-probe", s.range)}`)));
    return probes.every((r) => r.status === 404);
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) n.process?.child.kill("SIGCONT");
    await Promise.all(this.nodes.map((n) => n.process?.stop()));
    await Promise.all([...this.nodes.flatMap((n) => n.etcdProxies.map((p) => p.close())), ...[...this.links.values()].map((p) => p.close())]);
    await this.etcd.stop();
  }
}

/** A job id (tenant "default") that routes to the shard with `range`. */
export function jobIdOnShard(prefix: string, range: [number, number]): string {
  for (let i = 0; ; i++) {
    const id = `${prefix}-${i}`;
    const slot = slotOf("default", id);
    if (slot >= range[0] && slot <= range[1]) return id;
  }
}
