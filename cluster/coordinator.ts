/**
 * What the node needs from a coordinator, whichever it is: the static one (standalone, one node
 * owns every shard) or the etcd one (a cluster). Routing and the cluster view go through this.
 */
/** The leader's epoch on a single node; in a cluster, etcd issues epochs. */
export const STANDALONE_EPOCH = 1;

export interface ShardInfo {
  id: number;
  /** Inclusive slot range. */
  range: [number, number];
  /** Node ids holding a replica; the first is the preferred leader. */
  replicas: string[];
}

export interface LeaderInfo {
  nodeId: string;
  epoch: number;
}

/** What `GET /v1/cluster` answers: defined once, in the SDK (which carries no server code). */
export type { ClusterView } from "../src/client/types.js";
import type { ClusterView } from "../src/client/types.js";

export interface Coordinator {
  readonly nodeId: string;
  readonly shards: ShardInfo[];
  shardIndexOfSlot(slot: number): number;
  /** The shard's current leader, or null while there is none. */
  leaderOf(shardIndex: number): LeaderInfo | null;
  /** "host:port" of a node, or null if unknown. */
  addressOf(nodeId: string): string | null;
  view(): ClusterView;
  close(): Promise<void>;
}

/** slot → shard index, precomputed: routing is on every request's path. */
export class ShardTable {
  private readonly shardOfSlot = new Uint16Array(65_536);
  constructor(shards: ReadonlyArray<{ range: [number, number] }>) {
    shards.forEach((s, i) => this.shardOfSlot.fill(i, s.range[0], s.range[1] + 1));
  }
  shardIndexOfSlot(slot: number): number {
    return this.shardOfSlot[slot]!;
  }
}
