/**
 * The static coordinator: one node owns every shard, no etcd. It serves the embedded single-node
 * mode and tests. The shard layout is written to `<dataDir>/cluster.json` on first start and must
 * not change afterwards: the logs on disk were written under it, and a different shard count
 * would route keys to shards that never saw them.
 */
import fs from "node:fs";
import path from "node:path";
import { shardRanges } from "../src/core/routing.js";
import { STANDALONE_EPOCH, ShardTable, type ClusterView, type Coordinator, type LeaderInfo, type ShardInfo } from "./coordinator.js";

interface Layout {
  version: 1;
  nodeId: string;
  shardCount: number;
}

export class StaticCoordinator implements Coordinator {
  private readonly table: ShardTable;
  /** Filled in by the node: the commit index of each local shard. */
  commitIndexOf: (shardIndex: number) => number = () => 0;

  private constructor(
    readonly nodeId: string,
    private readonly address: string,
    readonly shards: ShardInfo[],
  ) {
    this.table = new ShardTable(shards);
  }

  static open(dataDir: string, nodeId: string, address: string, shardCount: number): StaticCoordinator {
    fs.mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, "cluster.json");
    if (fs.existsSync(file)) {
      const layout = JSON.parse(fs.readFileSync(file, "utf8")) as Layout;
      if (layout.shardCount !== shardCount) {
        throw new Error(
          `${file} says this data directory was created with ${layout.shardCount} shards, not ${shardCount}; ` +
            `start with --shards ${layout.shardCount}`,
        );
      }
    } else {
      const layout: Layout = { version: 1, nodeId, shardCount };
      const tmp = `${file}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(layout, null, 2));
      fs.renameSync(tmp, file);
    }
    const shards = shardRanges(shardCount).map((range, id) => ({ id, range, replicas: [nodeId] }));
    return new StaticCoordinator(nodeId, address, shards);
  }

  shardIndexOfSlot(slot: number): number {
    return this.table.shardIndexOfSlot(slot);
  }

  leaderOf(): LeaderInfo {
    return { nodeId: this.nodeId, epoch: STANDALONE_EPOCH };
  }

  addressOf(nodeId: string): string | null {
    return nodeId === this.nodeId ? this.address : null;
  }

  view(): ClusterView {
    return {
      nodes: [{ id: this.nodeId, address: this.address, state: "ready" }],
      shards: this.shards.map((s, i) => ({ ...s, leader: this.nodeId, epoch: STANDALONE_EPOCH, commitIndex: this.commitIndexOf(i) })),
    };
  }

  async close(): Promise<void> {}
}
