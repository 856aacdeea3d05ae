/**
 * The static coordinator: one node owns every shard, no etcd. It serves the embedded single-node
 * mode and tests. The shard layout is written to `<dataDir>/cluster.json` on first start and must
 * not change afterwards: the logs on disk were written under it, and a different shard count
 * would route keys to shards that never saw them.
 */
import fs from "node:fs";
import path from "node:path";
import { shardRanges } from "../src/core/routing.js";

export interface ShardInfo {
  id: number;
  /** Inclusive slot range. */
  range: [number, number];
}

interface Layout {
  version: 1;
  nodeId: string;
  shardCount: number;
}

export class StaticCoordinator {
  /** slot → shard index, precomputed: routing is on every request's path. */
  private readonly shardOfSlot: Uint16Array;

  private constructor(
    readonly nodeId: string,
    readonly shards: ShardInfo[],
  ) {
    this.shardOfSlot = new Uint16Array(65_536);
    shards.forEach((s, i) => this.shardOfSlot.fill(i, s.range[0], s.range[1] + 1));
  }

  static open(dataDir: string, nodeId: string, shardCount: number): StaticCoordinator {
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
    const shards = shardRanges(shardCount).map((range, id) => ({ id, range }));
    return new StaticCoordinator(nodeId, shards);
  }

  shardIndexOfSlot(slot: number): number {
    return this.shardOfSlot[slot]!;
  }
}
