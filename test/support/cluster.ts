/**
 * A real cluster for tests and benchmarks: one etcd and N `cronwheel server` processes on
 * loopback, each with its own data directory and fixed port. Nodes can be killed (-9), stopped,
 * paused and restarted with their data.
 */
import path from "node:path";
import { slotOf } from "../../src/core/routing.js";
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
  etcdProxy: TcpProxy;
}

export interface ClusterView {
  nodes: Array<{ id: string; address: string; state: string }>;
  shards: Array<{ id: number; range: [number, number]; replicas: string[]; leader: string | null; epoch: number | null; commitIndex: number | null }>;
}

export class TestCluster {
  private constructor(
    readonly etcd: EtcdProcess,
    readonly nodes: ClusterNode[],
    private readonly args: string[],
  ) {}

  /** `nodes` are prepared; the first `initial` (default all) start now, the rest join later with startNode. */
  static async start(opts: { nodes: number; initial?: number; shards: number; replicationFactor?: number; args?: string[]; name?: string }): Promise<TestCluster> {
    const etcd = await startEtcd();
    const dir = tempDir(opts.name ?? "cluster");
    const nodes: ClusterNode[] = [];
    const etcdPort = Number(new URL(etcd.endpoint).port);
    for (let i = 1; i <= opts.nodes; i++) {
      const port = await freePort();
      const etcdProxy = await TcpProxy.start("127.0.0.1", etcdPort);
      nodes.push({ id: `n${i}`, port, base: `http://127.0.0.1:${port}`, dataDir: path.join(dir, `n${i}`), process: null, etcdProxy });
    }
    const args = ["--shards", String(opts.shards), "--replication-factor", String(opts.replicationFactor ?? 3), "--log-level", "warn", ...(opts.args ?? [])];
    const cluster = new TestCluster(etcd, nodes, args);
    await Promise.all(nodes.slice(0, opts.initial ?? opts.nodes).map((n) => cluster.startNode(n.id)));
    await cluster.waitForLeaders();
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
      "--etcd", n.etcdProxy.endpoint,
      "--node-id", n.id,
      "--data-dir", n.dataDir,
      "--listen", `127.0.0.1:${n.port}`,
      ...this.args,
    ]);
  }

  async kill9(id: string): Promise<void> {
    const n = this.node(id);
    await n.process?.kill9();
    n.process = null;
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

  /** Until every shard has a live leader that answers a write (a probe job per shard is not needed: reads go to the leader). */
  async waitForLeaders(timeoutMs = 20_000, excluding: string[] = []): Promise<ClusterView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const v = await this.view();
        const liveIds = new Set(this.live().map((n) => n.id));
        if (v.shards.every((s) => s.leader !== null && liveIds.has(s.leader) && !excluding.includes(s.leader))) return v;
      } catch {
        // a node may be starting
      }
      if (Date.now() > deadline) throw new Error(`shards without a live leader after ${timeoutMs} ms:\n${this.live().map((n) => n.process!.output().slice(-3000)).join("\n---\n")}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.process?.stop()));
    await Promise.all(this.nodes.map((n) => n.etcdProxy.close()));
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
