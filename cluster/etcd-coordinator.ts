/**
 * Membership, the shard map and one election per shard, in etcd.
 *
 * Keys under `/<cluster>/`:
 *   nodes/<nodeId>    { id, address }                 with the node's lease: it is alive
 *   map               { shardCount, replicationFactor, shards: [{ id, range, replicas }] }
 *   leaders/<shard>   { node }                        with the winner's lease; its create
 *                                                     revision is the leader's epoch
 *
 * The map is written once, by the first node that sees `replicationFactor` nodes registered;
 * each shard's replicas are consecutive nodes (by id) starting at a different node per shard, and
 * the first replica is the preferred leader, so leaderships spread.
 *
 * Every node reads all keys every `pollMs` and reconciles each shard it holds a replica of:
 *   - no leader key: campaign (create-if-absent with our lease), later replicas waiting longer;
 *     the winner runs leader recovery (replication.ts) and serves once its epoch record commits;
 *   - we lead but the key is gone or is another epoch's: stop serving at once;
 *   - another node leads but has been silent for `deposeAfterMs`: delete that epoch's key.
 * A leader also stops serving everything when its lease might have expired at etcd (see
 * timing.ts), before etcd can let another replica win.
 */
import { performance } from "node:perf_hooks";
import { circuitBreaker, ConsecutiveBreaker, handleWhen } from "cockatiel";
import { Etcd3, isRecoverableError, type Lease } from "etcd3";
import type { Logger } from "pino";
import { CronwheelError } from "../src/core/errors.js";
import { shardRanges } from "../src/core/routing.js";
import type { ShardReplica } from "../src/node/shard-replica.js";
import type { PeerNetwork } from "./peer-network.js";
import type { LeaderStatus } from "./rebalancer.js";
import { recoverAndLead, type Replicator } from "./replication.js";
import { CLUSTER_TIMING, withDeadline } from "./timing.js";
import type { ClusterView, Coordinator, LeaderInfo, ShardInfo } from "./coordinator.js";
import { ShardTable } from "./coordinator.js";

export interface ShardMap {
  shardCount: number;
  replicationFactor: number;
  shards: ShardInfo[];
  /** Nodes drained by an operator: rebalances leave them out until they register again. */
  drained?: string[];
}

interface NodeInfo {
  id: string;
  address: string;
}

/** How the node opens and closes the replicas the map assigns to it. */
export interface ReplicaHost {
  open(shard: ShardInfo): Promise<ShardReplica>;
  /** Close a replica this node no longer holds, and delete its data. */
  close(shardId: number): Promise<void>;
}

/** What this node knows and does about one shard it holds a replica of. */
interface LocalShard {
  replica: ShardReplica;
  /** The replica set this node's leadership was won with; a different one in the map ends it. */
  ledWith: string[];
  /** Epoch we lead in (election won), 0 if none. */
  leadingEpoch: number;
  replicator: Replicator | null;
  campaigning: boolean;
  /** performance.now() when we first saw no leader key (null: there is one). */
  absentSince: number | null;
  /** Epoch of the leader we follow and since when (monotonic), for deposing a silent one. */
  followedEpoch: number;
  followedSince: number;
  backoffUntil: number;
}

export interface EtcdCoordinatorOptions {
  endpoints: string[];
  cluster: string;
  nodeId: string;
  /** "host:port" peers and clients use. */
  address: string;
  shardCount: number;
  replicationFactor: number;
  logger: Logger;
}

export class EtcdCoordinator implements Coordinator {
  private readonly client: Etcd3;
  private lease: Lease | null = null;
  /** A new lease is being granted (after the last one expired): keep-alive ticks wait for it. */
  private reRegistering = false;
  private leaseId = "";
  /** performance.now() when the last keep-alive that etcd answered was sent. */
  private leaseConfirmedSentAt = 0;
  private nodesById = new Map<string, NodeInfo>();
  private leaders = new Map<number, LeaderInfo>();
  private table!: ShardTable;
  private map!: ShardMap;
  /** etcd mod revision of the map we act on; campaigns are conditional on it. */
  private mapRevision = 0;
  private host: ReplicaHost | null = null;
  private applyingMap: Promise<void> = Promise.resolve();
  private local = new Map<number, LocalShard>();
  private peers: PeerNetwork | null = null;
  private timers: NodeJS.Timeout[] = [];
  private polling = false;
  private closed = false;
  private readonly leadershipListeners: Array<() => void> = [];

  private constructor(private readonly opts: EtcdCoordinatorOptions) {
    this.client = new Etcd3({
      hosts: opts.endpoints,
      dialTimeout: 2000,
      // A connection that stops answering (half-open, black-holed) is noticed and redialed.
      grpcOptions: { "grpc.keepalive_time_ms": 2000, "grpc.keepalive_timeout_ms": 1000, "grpc.keepalive_permit_without_calls": 1 },
      // etcd3's default stops calling a host for 5 s after three failures: a node cut off from
      // etcd stayed out that long after the cut healed. Retry a host within a second instead
      // (the lease's keep-alives already pace the calls).
      faultHandling: { host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: ETCD_HOST_RETRY_AFTER_MS, breaker: new ConsecutiveBreaker(3) }) },
    });
  }

  private key(...parts: Array<string | number>): string {
    return [`/${this.opts.cluster}`, ...parts].join("/");
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  get shards(): ShardInfo[] {
    return this.map.shards;
  }

  /** Register this node and wait for the shard map (creating it once enough nodes are up). */
  static async join(opts: EtcdCoordinatorOptions): Promise<EtcdCoordinator> {
    const c = new EtcdCoordinator(opts);
    await c.grantLease();
    // Kept alive from now on: waiting for the map (other nodes) may take longer than the TTL.
    c.timers.push(setInterval(() => void c.keepAlive(), CLUSTER_TIMING.keepAliveMs));
    [c.map, c.mapRevision] = await c.awaitMap();
    c.table = new ShardTable(c.map.shards);
    await c.poll();
    return c;
  }

  /** Shards of the map this node holds a replica of. */
  myShards(): ShardInfo[] {
    return this.map.shards.filter((s) => s.replicas.includes(this.opts.nodeId));
  }

  /** Start elections and leadership tracking for the local replicas. */
  start(replicas: ShardReplica[], peers: PeerNetwork, host: ReplicaHost): void {
    this.peers = peers;
    this.host = host;
    for (const replica of replicas) this.adopt(replica);
    this.timers.push(setInterval(() => void this.poll(), CLUSTER_TIMING.pollMs));
    // The lease deadline is checked often: a leader must stop "at once" when it may have lapsed.
    this.timers.push(setInterval(() => this.checkLease(), 50));
  }

  private adopt(replica: ShardReplica): void {
    const s: LocalShard = {
      replica,
      ledWith: [],
      leadingEpoch: 0,
      replicator: null,
      campaigning: false,
      absentSince: null,
      followedEpoch: 0,
      followedSince: performance.now(),
      backoffUntil: 0,
    };
    this.local.set(replica.shardId, s);
    replica.onServingChange(() => {
      // The replica stepped down by itself (it promised a higher epoch): end the leadership here too.
      if (s.leadingEpoch !== 0 && replica.role !== "leader") this.abdicate(replica.shardId, s, "a higher epoch took over", false);
      this.notifyLeadership();
    });
  }

  /**
   * The map changed (an admin move): open replicas newly assigned here, close and delete those
   * moved away, and end leaderships whose replica set changed — every change of a shard's replica
   * set happens in a new epoch, whose leader recovers the log from a majority of the new set.
   * Moves change one replica at a time, so any majority of the old set meets any of the new.
   */
  private applyMap(map: ShardMap): Promise<void> {
    const run = async () => {
      for (const info of map.shards) {
        const mine = info.replicas.includes(this.opts.nodeId);
        const local = this.local.get(info.id);
        if (mine && !local && this.host) {
          this.adopt(await this.host.open(info));
          this.opts.logger.info({ shard: info.id, replicas: info.replicas }, "now a replica of this shard");
        } else if (!mine && local) {
          this.abdicate(info.id, local, "moved off this node", true);
          this.local.delete(info.id);
          await this.host?.close(info.id);
          this.opts.logger.info({ shard: info.id, replicas: info.replicas }, "no longer a replica of this shard; its data is deleted");
        } else if (local && local.leadingEpoch !== 0 && local.ledWith.join(",") !== info.replicas.join(",")) {
          this.abdicate(info.id, local, "replica set changed; a new epoch takes over", true);
        }
      }
      this.notifyLeadership();
    };
    this.applyingMap = this.applyingMap.then(run, run);
    return this.applyingMap;
  }

  /**
   * Replace the map if it is still at `revision` (compare-and-swap: concurrent admin operations
   * cannot overwrite each other). Returns false when someone else changed it first.
   */
  async replaceMap(map: ShardMap, revision: number): Promise<boolean> {
    const key = this.key("map");
    const r = await adminCall(this.client.if(key, "Mod", "==", revision).then(this.client.put(key).value(JSON.stringify(map))).commit(), "write the shard map");
    return r.succeeded;
  }

  /** The map as etcd has it now, with its revision (for a compare-and-swap). */
  async readMap(): Promise<{ map: ShardMap; revision: number }> {
    const got = await adminCall(this.client.get(this.key("map")).exec(), "read the shard map");
    const kv = got.kvs[0];
    if (!kv) throw new Error("the shard map is gone from etcd");
    return { map: JSON.parse(kv.value.toString()) as ShardMap, revision: Number(kv.mod_revision) };
  }

  /** What this node, as a shard's leader, says about its replication (admin moves wait on it). */
  leaderStatus(shardId: number): LeaderStatus {
    const s = this.local.get(shardId);
    if (!s || !s.replicator || !s.replica.serving) return { serving: false, epoch: s?.leadingEpoch ?? 0, replicas: [], commitIndex: s?.replica.commitIndex ?? 0, followers: {} };
    return { serving: true, epoch: s.leadingEpoch, replicas: s.ledWith, commitIndex: s.replica.commitIndex, followers: s.replicator.matchIndexes() };
  }

  /** Step aside as the shard's leader (a leadership transfer); do not campaign again for a while. */
  resign(shardId: number): void {
    const s = this.local.get(shardId);
    if (!s || s.leadingEpoch === 0) return;
    this.abdicate(shardId, s, "asked to hand leadership to the preferred replica", true);
    s.backoffUntil = performance.now() + RESIGN_HOLD_OFF_MS;
  }

  /** The local replica and its replicator, for replication status (admin). */
  localShard(shardId: number): { replica: ShardReplica; replicator: Replicator | null } | null {
    const s = this.local.get(shardId);
    return s ? { replica: s.replica, replicator: s.replicator } : null;
  }

  onLeadershipChange(listener: () => void): void {
    this.leadershipListeners.push(listener);
  }

  private notifyLeadership(): void {
    for (const l of this.leadershipListeners) l();
  }

  shardIndexOfSlot(slot: number): number {
    return this.table.shardIndexOfSlot(slot);
  }

  leaderOf(shardIndex: number): LeaderInfo | null {
    return this.leaders.get(this.map.shards[shardIndex]!.id) ?? null;
  }

  addressOf(nodeId: string): string | null {
    return this.nodesById.get(nodeId)?.address ?? null;
  }

  view(): ClusterView {
    return {
      nodes: [...this.nodesById.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((n) => ({ id: n.id, address: n.address, state: "ready" })),
      shards: this.map.shards.map((s) => {
        const leader = this.leaders.get(s.id) ?? null;
        const local = this.local.get(s.id);
        return {
          id: s.id,
          range: s.range,
          replicas: s.replicas,
          leader: leader?.nodeId ?? null,
          epoch: leader?.epoch ?? null,
          commitIndex: local ? local.replica.commitIndex : null,
          ...(local?.replica.repairing ? { repairing: true } : {}),
          ...(local?.replicator ? { followers: local.replicator.matchIndexes() } : {}),
        };
      }),
    };
  }

  // ---------------------------------------------------------------------------------------------
  // lease

  private async grantLease(): Promise<void> {
    const lease = this.client.lease(CLUSTER_TIMING.leaseTtlSec, { autoKeepAlive: false });
    const sentAt = performance.now();
    this.leaseId = await withDeadline(lease.grant(), 5000, "etcd lease grant");
    await this.client.put(this.key("nodes", this.opts.nodeId)).value(JSON.stringify({ id: this.opts.nodeId, address: this.opts.address })).lease(this.leaseId);
    // Only a lease the node is registered under counts: until then keep-alive ticks retry this.
    this.lease = lease;
    this.leaseConfirmedSentAt = sentAt;
    this.opts.logger.info({ lease: this.leaseId, address: this.opts.address }, "registered in etcd");
    await this.undrain();
  }

  /** A node that (re)joins is eligible for replicas again: take it off the drained list. */
  private async undrain(): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const got = await this.client.get(this.key("map")).exec();
      const kv = got.kvs[0];
      if (!kv) return;
      const map = JSON.parse(kv.value.toString()) as ShardMap;
      if (!(map.drained ?? []).includes(this.opts.nodeId)) return;
      map.drained = map.drained!.filter((n) => n !== this.opts.nodeId);
      if (await this.replaceMap(map, Number(kv.mod_revision))) return;
    }
  }

  private async keepAlive(): Promise<void> {
    if (this.closed || this.reRegistering) return;
    if (!this.lease) return this.reRegister();
    const sentAt = performance.now();
    try {
      await withDeadline(this.lease.keepaliveOnce({ deadline: Date.now() + CLUSTER_TIMING.keepAliveMs * 2 }), CLUSTER_TIMING.keepAliveMs * 2, "etcd keep-alive");
      this.leaseConfirmedSentAt = Math.max(this.leaseConfirmedSentAt, sentAt);
    } catch (error) {
      const name = (error as Error).constructor?.name ?? "";
      this.opts.logger.warn({ err: (error as Error).message }, "etcd keep-alive failed");
      if (name === "EtcdLeaseInvalidError") {
        // The lease expired at etcd: everything it held is gone. Rejoin with a new one.
        this.stopAllLeadership("etcd lease expired");
        this.lease = null;
        await this.reRegister();
      }
    }
  }

  /** Join again with a new lease; a failure is retried on the next keep-alive tick. */
  private async reRegister(): Promise<void> {
    this.reRegistering = true;
    try {
      await this.grantLease();
    } catch (error) {
      this.opts.logger.warn({ err: (error as Error).message }, "re-registering failed; will retry");
    } finally {
      this.reRegistering = false;
    }
  }

  private get leaseValid(): boolean {
    return this.lease !== null && performance.now() < this.leaseConfirmedSentAt + CLUSTER_TIMING.leaseTtlSec * 1000 - CLUSTER_TIMING.leaseSafetyMs;
  }

  private checkLease(): void {
    if (!this.leaseValid) this.stopAllLeadership("etcd lease may have lapsed");
  }

  private stopAllLeadership(reason: string): void {
    for (const [id, s] of this.local) if (s.leadingEpoch !== 0 || s.replica.role === "leader") this.abdicate(id, s, reason, false);
  }

  // ---------------------------------------------------------------------------------------------
  // shard map

  private async awaitMap(): Promise<[ShardMap, number]> {
    for (let attempt = 0; ; attempt++) {
      const got = await this.client.get(this.key("map")).exec();
      const kv = got.kvs[0];
      if (kv) {
        const map = JSON.parse(kv.value.toString()) as ShardMap;
        if (map.shardCount !== this.opts.shardCount) {
          this.opts.logger.warn({ map: map.shardCount, flag: this.opts.shardCount }, "the cluster's shard map has another shard count than --shards; the map wins");
        }
        return [map, Number(kv.mod_revision)];
      }
      const nodes = await this.client.getAll().prefix(this.key("nodes", "")).strings();
      const ids = Object.values(nodes).map((v) => (JSON.parse(v) as NodeInfo).id).sort();
      if (ids.length >= this.opts.replicationFactor) {
        const map = initialMap(ids, this.opts.shardCount, this.opts.replicationFactor);
        const r = await this.client.if(this.key("map"), "Create", "==", 0).then(this.client.put(this.key("map")).value(JSON.stringify(map))).commit();
        if (r.succeeded) this.opts.logger.info({ nodes: ids, shards: map.shardCount }, "created the shard map");
        continue;
      }
      if (attempt % 20 === 0) this.opts.logger.info({ registered: ids.length, needed: this.opts.replicationFactor }, "waiting for nodes before creating the shard map");
      await sleep(250);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // the poll: read everything, reconcile each local shard

  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      const all = await withDeadline(this.client.getAll().prefix(`/${this.opts.cluster}/`).exec(), 2000, "etcd read");
      const nodes = new Map<string, NodeInfo>();
      const leaders = new Map<number, LeaderInfo>();
      for (const kv of all.kvs) {
        const key = kv.key.toString();
        const rest = key.slice(this.opts.cluster.length + 2);
        if (rest.startsWith("nodes/")) {
          const n = JSON.parse(kv.value.toString()) as NodeInfo;
          nodes.set(n.id, n);
        } else if (rest.startsWith("leaders/")) {
          const v = JSON.parse(kv.value.toString()) as { node: string };
          leaders.set(Number(rest.slice("leaders/".length)), { nodeId: v.node, epoch: Number(kv.create_revision) });
        } else if (rest === "map" && Number(kv.mod_revision) !== this.mapRevision) {
          this.map = JSON.parse(kv.value.toString()) as ShardMap;
          this.mapRevision = Number(kv.mod_revision);
          this.table = new ShardTable(this.map.shards);
          void this.applyMap(this.map);
        }
      }
      this.nodesById = nodes;
      const changed = !sameLeaders(this.leaders, leaders);
      this.leaders = leaders;
      const revision = Number(all.header.revision);
      for (const [id, s] of this.local) this.reconcile(id, s, leaders.get(id), revision);
      if (changed) this.notifyLeadership();
    } catch (error) {
      this.opts.logger.debug({ err: (error as Error).message }, "etcd poll failed");
    } finally {
      this.polling = false;
    }
  }

  private reconcile(shardId: number, s: LocalShard, leader: LeaderInfo | undefined, revision: number): void {
    const now = performance.now();
    if (s.leadingEpoch !== 0) {
      // A read from before our election cannot show our key: only a later one can say it is gone.
      if (revision >= s.leadingEpoch && (!leader || leader.epoch !== s.leadingEpoch)) this.abdicate(shardId, s, "election key gone", false);
      return;
    }
    if (s.campaigning) return;
    if (leader) {
      s.absentSince = null;
      if (leader.nodeId === this.opts.nodeId) {
        // Ours but not led (an election from before a restart): free it for a real election.
        if (!s.campaigning) void this.deleteLeaderKey(shardId, leader.epoch);
        return;
      }
      s.replica.follow(leader.epoch);
      if (s.followedEpoch !== leader.epoch) {
        s.followedEpoch = leader.epoch;
        s.followedSince = now;
      }
      const heard = Math.max(s.followedSince, s.replica.lastLeaderContact);
      if (now - heard > CLUSTER_TIMING.deposeAfterMs && this.leaseValid) {
        this.opts.logger.warn({ shard: shardId, leader: leader.nodeId, epoch: leader.epoch, silentMs: Math.round(now - heard) }, "deposing a silent leader");
        s.followedSince = now; // one attempt per silence period
        void this.deleteLeaderKey(shardId, leader.epoch);
      }
      return;
    }
    s.absentSince ??= now;
    const info = this.map.shards.find((x) => x.id === shardId);
    if (!info || !info.replicas.includes(this.opts.nodeId)) return;
    const rank = info.replicas.indexOf(this.opts.nodeId);
    // A repairing replica may lack acknowledged entries: it must not lead (nor promise, replication.ts).
    if (!s.campaigning && !s.replica.repairing && this.leaseValid && now >= s.backoffUntil && now - s.absentSince >= rank * CLUSTER_TIMING.campaignStaggerMs) {
      void this.campaign(shardId, s, [...info.replicas], this.mapRevision);
    }
  }

  private async campaign(shardId: number, s: LocalShard, replicas: string[], mapRevision: number): Promise<void> {
    s.campaigning = true;
    const key = this.key("leaders", shardId);
    try {
      // Only under the map we read: a replica set changed meanwhile is not ours to lead.
      const r = await this.client
        .if(key, "Create", "==", 0)
        .and(this.key("map"), "Mod", "==", mapRevision)
        .then(this.client.put(key).value(JSON.stringify({ node: this.opts.nodeId })).lease(this.leaseId))
        .commit();
      if (!r.succeeded) return;
      const epoch = Number(r.header.revision);
      s.leadingEpoch = epoch;
      s.ledWith = replicas;
      this.opts.logger.info({ shard: shardId, epoch }, "won the election; recovering the log");
      const replicator = await recoverAndLead({
        nodeId: this.opts.nodeId,
        replica: s.replica,
        replicas,
        epoch,
        peers: this.peers!,
        logger: this.opts.logger,
        onLost: (reason) => this.abdicate(shardId, s, reason, true),
      });
      if (s.leadingEpoch !== epoch) {
        replicator.stop();
        return;
      }
      s.replicator = replicator;
      this.opts.logger.info({ shard: shardId, epoch }, "leading");
    } catch (error) {
      this.opts.logger.warn({ shard: shardId, err: (error as Error).message }, "campaign failed");
      s.backoffUntil = performance.now() + 300 + Math.random() * 700;
      if (s.leadingEpoch !== 0) this.abdicate(shardId, s, `recovery failed: ${(error as Error).message}`, true);
    } finally {
      s.campaigning = false;
    }
  }

  /** Stop leading a shard now; free its election key when etcd is reachable. */
  private abdicate(shardId: number, s: LocalShard, reason: string, freeKey: boolean): void {
    const epoch = s.leadingEpoch;
    s.leadingEpoch = 0;
    s.replicator?.stop();
    s.replicator = null;
    s.replica.stepDown(reason);
    if (freeKey && epoch !== 0) void this.deleteLeaderKey(shardId, epoch);
  }

  private async deleteLeaderKey(shardId: number, epoch: number): Promise<void> {
    const key = this.key("leaders", shardId);
    await this.client
      .if(key, "Create", "==", epoch)
      .then(this.client.delete().key(key))
      .commit()
      .catch((error: Error) => this.opts.logger.debug({ err: error.message }, "deleting an election key failed"));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    // Hand leaderships over quickly: our keys go with the lease. Not at any price: with etcd out of
    // reach the revoke waits forever (its call has no deadline, and a half-open connection never
    // fails), and the node never stopped; after the deadline the lease expires by itself.
    for (const [id, s] of this.local) this.abdicate(id, s, "node stopping", false);
    const revoke = this.lease?.revoke({ deadline: Date.now() + CLUSTER_TIMING.revokeTimeoutMs }) ?? Promise.resolve();
    await withDeadline(revoke, CLUSTER_TIMING.revokeTimeoutMs, "etcd lease revoke").catch((error: Error) => this.opts.logger.warn({ err: error.message }, "lease not revoked; it expires by itself"));
    this.client.close();
  }
}

/** After resigning, a node leaves the next election to the others. */
const RESIGN_HOLD_OFF_MS = 2000;

function initialMap(nodeIds: string[], shardCount: number, replicationFactor: number): ShardMap {
  const rf = Math.min(replicationFactor, nodeIds.length);
  const shards = shardRanges(shardCount).map((range, id) => ({
    id,
    range,
    replicas: Array.from({ length: rf }, (_, k) => nodeIds[(id + k) % nodeIds.length]!),
  }));
  return { shardCount, replicationFactor, shards };
}

function sameLeaders(a: Map<number, LeaderInfo>, b: Map<number, LeaderInfo>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (!w || w.epoch !== v.epoch || w.nodeId !== v.nodeId) return false;
  }
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** How soon a host etcd3 stopped calling after failures is tried again. */
const ETCD_HOST_RETRY_AFTER_MS = 500;

/** How long an admin operation's etcd call may take before the operation answers `unavailable`. */
const ADMIN_ETCD_DEADLINE_MS = 5_000;

/** An etcd call made for an admin operation: etcd down or cut off is `unavailable` (503), not an internal error. */
async function adminCall<T>(call: Promise<T>, what: string): Promise<T> {
  try {
    return await withDeadline(call, ADMIN_ETCD_DEADLINE_MS, `etcd: ${what}`);
  } catch (error) {
    throw new CronwheelError("unavailable", `cannot ${what}: etcd does not answer this node (${(error as Error).message})`, undefined, 1);
  }
}
