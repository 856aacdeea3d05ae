/**
 * One process, one node: wires the shard replicas, their logs, the coordinator, the clock, the
 * metrics and the HTTP server. It is the only module that knows all of them.
 *
 * The service methods below are what the API edge calls: each turns a validated request into a
 * record for the right shard (by routing slot) and returns what the shard's `apply` decided.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import type { FsyncMode } from "../../wal/index.js";
import type { ClusterView, Coordinator, ShardInfo } from "../../cluster/coordinator.js";
import { EtcdCoordinator } from "../../cluster/etcd-coordinator.js";
import { PeerNetwork } from "../../cluster/peer-network.js";
import { Rebalancer } from "../../cluster/rebalancer.js";
import { handleReplication, type ReplicationRequest } from "../../cluster/replication.js";
import { CLUSTER_TIMING } from "../../cluster/timing.js";
import { StaticCoordinator } from "../../cluster/static-coordinator.js";
import type { Clock } from "../core/clock.js";
import { conflict, CronwheelError, invalidArgument, notFound } from "../core/errors.js";
import type { Execution } from "../core/execution.js";
import type { Job } from "../core/job.js";
import { approxBytes } from "../core/approx-bytes.js";
import type { Actor, EnqueueBatchRecord, EnqueueRecord, ReportRecord, ShardRecord } from "../core/records.js";
import { adHocExecutionId, slotOf, slotOfExecution } from "../core/routing.js";
import {
  DEFAULT_SHARD_LIMITS,
  NO_OBSERVER,
  type BackfillResult,
  type EnqueueOutcome,
  type ExecutionResult,
  type JobPutResult,
  type ListExecutionsQuery,
  type ListJobsQuery,
  type ReportOutcome,
  type ShardLimits,
  type ShardObserver,
} from "../core/shard-state.js";
import { preview, type PreviewItem } from "../core/trigger.js";
import type { EnqueueSpec, JobSpec } from "../core/types.js";
import { NodeMetrics } from "./metrics.js";
import { notLeader, ShardReplica, SnapshotTurns } from "./shard-replica.js";
import { HISTORY_EXAMINE_MAX, HistoryStore, STATS_SCAN_MAX, type HistoryOptions } from "../history/history-store.js";
import { shardHistoryFile } from "../history/history-thread.js";
import type { FinishedState, StatsQuery } from "../history/history-db.js";
import type { AuditRecord } from "../core/audit.js";
import type { AuditQuery } from "../history/audit-tables.js";
import { mergeBacklogs, type Backlog, type StatsWire } from "../history/stats.js";
import type { JobRuns } from "../history/job-runs.js";
import type { HistoryRange } from "../history/history-thread.js";
import { HistoryFill, type HistoryRangeRequest } from "./history-fill.js";
import { isTerminal, type ExecutionFacts } from "../core/execution.js";
import { mergePages, type ListPosition, type MergedPage, type PagePart } from "../core/list-order.js";

export interface ClusterOptions {
  etcd: string[];
  /** etcd key prefix. */
  name: string;
  replicationFactor: number;
  /** Token this node presents to peers (an admin token) when auth is on. */
  peerToken: string | null;
  /** Whether an Authorization header may act as a peer. */
  authorizePeer: (authorization: string) => boolean;
  /** Where to dial some nodes instead of their advertised address (proxies in tests). */
  peerAddresses?: Map<string, string>;
}

export interface NodeOptions {
  nodeId: string;
  /** "host:port" other nodes and clients reach this node at. */
  address: string;
  /** Join an etcd-coordinated cluster; standalone (every shard here) without it. */
  cluster?: ClusterOptions;
  dataDir: string;
  shardCount: number;
  fsync: FsyncMode;
  clock: Clock;
  logger: Logger;
  limits?: ShardLimits;
  snapshotEveryRecords?: number;
  segmentBytesMax?: number;
  repair?: boolean;
  /** Extra live observer (benchmarks and tests); metrics always observe. */
  observer?: ShardObserver;
  /** Keep every finished execution on disk (docs/history.md); off without. The server turns it on. */
  history?: HistoryOptions | null;
}

/** Records a shard applies between snapshots: bounds what a crash restart replays. */
export const SNAPSHOT_EVERY_RECORDS_DEFAULT = 100_000;


/** What nodes ask each other: the replication protocol, plus worker reports for a shard's leader. */
export type PeerRequest =
  | ReplicationRequest
  | { t: "report"; shard: number; record: ReportRecord }
  | { t: "status"; shard: number }
  | { t: "resign"; shard: number }
  | HistoryRangeRequest;

/** An enqueue's or trigger's answer: the execution (live, or as history has it) and whether it is new. */
export interface ExecutionAnswer {
  execution: ExecutionFacts;
  created: boolean;
}

/** Where a request for a slot goes: here, to another node, or nowhere right now. */
export type Placement = { kind: "local" } | { kind: "remote"; nodeId: string; address: string };

export class CronwheelNode {
  readonly metrics: NodeMetrics;
  private closed = false;
  private readonly extraObservers: ShardObserver[];
  private readonly snapshotTurns = new SnapshotTurns();
  private rebalancerInstance: Rebalancer | null = null;
  private historyFill: HistoryFill | null = null;
  private readonly enqueueListeners: Array<(shard: ShardReplica, record: EnqueueRecord) => void> = [];
  private readonly servingListeners: Array<() => void> = [];
  /** servingShards(), until a replica is added, removed, or starts or stops serving. */
  private servingCache: ShardReplica[] | null = null;

  private constructor(
    readonly opts: NodeOptions,
    readonly coordinator: Coordinator,
    /** By shard index; undefined where this node holds no replica. */
    readonly shards: Array<ShardReplica | undefined>,
    metrics: NodeMetrics,
    readonly peers: PeerNetwork | null,
    /** Finished executions on disk; null when history is off. */
    readonly history: HistoryStore | null,
  ) {
    this.metrics = metrics;
    this.extraObservers = opts.observer ? [opts.observer] : [];
  }

  static async start(opts: NodeOptions): Promise<CronwheelNode> {
    const cluster = opts.cluster;
    const coordinator: Coordinator = cluster
      ? await EtcdCoordinator.join({
          endpoints: cluster.etcd,
          cluster: cluster.name,
          nodeId: opts.nodeId,
          address: opts.address,
          shardCount: opts.shardCount,
          replicationFactor: cluster.replicationFactor,
          logger: opts.logger,
        })
      : StaticCoordinator.open(opts.dataDir, opts.nodeId, opts.address, opts.shardCount);
    const shards: Array<ShardReplica | undefined> = coordinator.shards.map(() => undefined);
    const metrics = new NodeMetrics(
      opts.clock,
      () => shards.flatMap((s) => (s?.serving ? s.state.readyStats() : [])),
      () => shards.flatMap((s) => (s?.repairing ? [s.shardId] : [])),
    );
    const peers = cluster
      ? new PeerNetwork({
          nodeId: opts.nodeId,
          addressOf: (id) => cluster.peerAddresses?.get(id) ?? coordinator.addressOf(id),
          handler: (_from, req) => node.onPeerRequest(req as PeerRequest),
          token: cluster.peerToken,
          authorize: cluster.authorizePeer,
          logger: opts.logger,
        })
      : null;
    const history = opts.history ? HistoryStore.start(opts.history, opts.logger, () => opts.clock.now()) : null;
    const node: CronwheelNode = new CronwheelNode(opts, coordinator, shards, metrics, peers, history);
    for (const shard of coordinator.shards) if (shard.replicas.includes(opts.nodeId)) await node.openReplica(shard);
    if (history && peers) node.startHistoryFill(history, peers);
    if (coordinator instanceof StaticCoordinator) coordinator.commitIndexOf = (i) => shards[i]?.commitIndex ?? 0;
    return node;
  }

  /** Gaps in this node's history files are filled from the shards' other replicas (history-fill.ts). */
  private startHistoryFill(history: HistoryStore, peers: PeerNetwork): void {
    const fill = new HistoryFill({
      history,
      localShards: () => this.localShards().map((s) => s.shardId),
      peersOf: (shard) => {
        const others = this.coordinator.shards[shard]?.replicas.filter((id) => id !== this.opts.nodeId) ?? [];
        const leader = this.coordinator.leaderOf(shard)?.nodeId;
        return others.sort((a, b) => Number(b === leader) - Number(a === leader));
      },
      request: (nodeId, request, timeoutMs) => peers.request<HistoryRange>(nodeId, request, timeoutMs),
      logger: this.opts.logger,
    });
    history.onGap = () => fill.kick();
    this.historyFill = fill;
    fill.start();
  }

  /** Open (recover) this node's replica of a shard. */
  async openReplica(shard: ShardInfo): Promise<ShardReplica> {
    const opts = this.opts;
    // The WAL creates the directory (and fsyncs the parents it creates).
    const dir = this.replicaDir(shard.id);
    const replica = await ShardReplica.open(
      {
        shardId: shard.id,
        dir,
        fsync: opts.fsync,
        clock: opts.clock,
        logger: opts.logger,
        limits: opts.limits ?? DEFAULT_SHARD_LIMITS,
        // Observers added later (the worker gateway) see every live event too: the list is shared.
        observer: composeObservers(this.metrics.observer(opts.clock), this.extraObservers),
        snapshotEveryRecords: opts.snapshotEveryRecords ?? SNAPSHOT_EVERY_RECORDS_DEFAULT,
        segmentBytesMax: opts.segmentBytesMax,
        // Standalone only: a cluster replica repairs a corrupt log from its peers by itself.
        repair: opts.repair ?? false,
        snapshotTurns: this.snapshotTurns,
        mode: opts.cluster ? "replicated" : "standalone",
        onBatch: (records, fsyncMs) => this.metrics.onWalBatch(records, fsyncMs),
        history: this.history ? await this.history.openShard(shard.id) : null,
      },
      NO_OBSERVER,
    );
    replica.onServingChange(() => {
      this.servingCache = null;
      this.servingListeners.forEach((l) => l());
    });
    this.shards[shard.id] = replica;
    this.servingCache = null;
    return replica;
  }

  /** Close a replica moved off this node and delete its data (the shard lives on its replicas). */
  async closeReplica(shardId: number): Promise<void> {
    const replica = this.shards[shardId];
    if (!replica) return;
    this.shards[shardId] = undefined;
    this.servingCache = null;
    await replica.close();
    await fs.promises.rm(this.replicaDir(shardId), { recursive: true, force: true });
    // Its history lives on with its other replicas; a copy left here would be stale if it came back.
    if (this.history) {
      await this.history.closeShard(shardId);
      for (const suffix of ["", "-wal", "-shm"]) await fs.promises.rm(shardHistoryFile(this.history.opts.dir, shardId) + suffix, { force: true });
    }
  }

  private replicaDir(shardId: number): string {
    return path.join(this.opts.dataDir, "shards", String(shardId));
  }

  /** Requests from other nodes: replication, and worker reports forwarded to this shard leader. */
  async onPeerRequest(req: PeerRequest): Promise<unknown> {
    switch (req.t) {
      case "report":
        return this.commitReports(req.shard, req.record);
      case "status":
        return this.etcdCoordinator().leaderStatus(req.shard);
      case "resign":
        return this.etcdCoordinator().resign(req.shard);
      case "history-range":
        return this.history ? this.history.range(req.shard, req.query) : { complete: false, rows: [], audit: null };
      default:
        return handleReplication(this.shards[req.shard], req, this.opts.logger);
    }
  }

  /** The coordinator in cluster mode; admin operations refuse in standalone mode. */
  etcdCoordinator(): EtcdCoordinator {
    if (!(this.coordinator instanceof EtcdCoordinator)) {
      throw new CronwheelError("invalid_argument", "this is a standalone node: there are no other nodes to move shards to");
    }
    return this.coordinator;
  }

  /** Moves, rebalances and drains (cluster mode). */
  rebalancer(): Rebalancer {
    this.rebalancerInstance ??= new Rebalancer(this.etcdCoordinator(), this.peers!, this.opts.logger);
    return this.rebalancerInstance;
  }

  /**
   * Commit a batch of worker reports on the shard's leader: here, or on the leader they are
   * forwarded to (a worker may report on any connection, e.g. after a failover).
   */
  async commitReports(shardIndex: number, record: ReportRecord): Promise<ReportOutcome[]> {
    const local = this.shards[shardIndex];
    if (local?.serving) return (await local.propose(record)) as ReportOutcome[];
    const leader = this.leaderPlacement(shardIndex) as { kind: "remote"; nodeId: string };
    if (!this.peers) throw notLeader(shardIndex);
    return this.peers.request<ReportOutcome[]>(leader.nodeId, { t: "report", shard: shardIndex, record } satisfies PeerRequest, CLUSTER_TIMING.forwardTimeoutMs);
  }

  /** Shard index of an execution id; throws not_found for an id no shard could hold. */
  executionShardIndex(tenant: string, executionId: string): number {
    const slot = slotOfExecution(tenant, executionId);
    if (slot === null) throw notFound(`execution '${executionId}' not found`);
    return this.coordinator.shardIndexOfSlot(slot);
  }

  /** Begin elections (cluster mode), once the server that peers reach is listening. */
  startCoordination(): void {
    if (this.coordinator instanceof EtcdCoordinator && this.peers) {
      this.coordinator.start(this.localShards(), this.peers, {
        open: (shard) => this.openReplica(shard),
        close: (shardId) => this.closeReplica(shardId),
      });
    }
  }

  get ready(): boolean {
    return !this.closed && this.localShards().every((s) => s.healthy);
  }

  /**
   * The cluster's time as this node sees it: its clock corrected to its replicas' median (from a
   * shard it leads; its own clock when it leads none). Requests are validated against it, so a
   * node with a wrong clock cannot anchor a schedule in the future or the past.
   */
  clusterNow(): number {
    for (const s of this.shards) if (s?.serving) return s.clusterNow();
    return this.clock.now();
  }

  /** The replicas this node holds. */
  localShards(): ShardReplica[] {
    return this.shards.filter((s): s is ShardReplica => s !== undefined);
  }

  /** The replicas this node leads and serves right now. */
  servingShards(): readonly ShardReplica[] {
    // Asked by every dispatch pass; it changes only when a replica starts or stops serving.
    return (this.servingCache ??= this.shards.filter((s): s is ShardReplica => s !== undefined && s.serving));
  }

  /** Hear when a local replica starts or stops serving (the gateway dispatches again). */
  onServingChange(listener: () => void): void {
    this.servingListeners.push(listener);
  }

  /** Where a request for `slot` must run. Throws `unavailable` while the shard has no leader. */
  placement(slot: number): Placement {
    const index = this.coordinator.shardIndexOfSlot(slot);
    if (this.shards[index]?.serving) return { kind: "local" };
    return this.leaderPlacement(index);
  }

  private leaderPlacement(index: number): Placement {
    const leader = this.coordinator.leaderOf(index);
    const shardId = this.coordinator.shards[index]!.id;
    if (!leader || leader.nodeId === this.opts.nodeId) throw notLeader(shardId);
    const address = this.opts.cluster?.peerAddresses?.get(leader.nodeId) ?? this.coordinator.addressOf(leader.nodeId);
    if (!address) throw notLeader(shardId);
    return { kind: "remote", nodeId: leader.nodeId, address };
  }

  /** Nodes leading the shards this node does not serve (for listings that span every shard). */
  otherLeaders(): Array<{ nodeId: string; address: string }> {
    const found = new Map<string, string>();
    this.shards.forEach((s, i) => {
      if (s?.serving) return;
      const p = this.leaderPlacement(i) as { kind: "remote"; nodeId: string; address: string };
      found.set(p.nodeId, p.address);
    });
    return [...found].map(([nodeId, address]) => ({ nodeId, address }));
  }

  /** A node serving some shard, for work any shard can take (ad-hoc enqueues without keys). */
  anyLeader(): Placement {
    if (this.servingShards().length > 0) return { kind: "local" };
    const others = this.otherLeaders();
    if (others.length === 0) throw new CronwheelError("unavailable", "no shard has a leader right now; retry", undefined, 1);
    const pick = others[Math.floor(Math.random() * others.length)]!;
    return { kind: "remote", ...pick };
  }

  private get clock(): Clock {
    return this.opts.clock;
  }

  /** The local serving replica for `slot`; the API forwards requests for other shards first. */
  private shardAt(slot: number): ShardReplica {
    const index = this.coordinator.shardIndexOfSlot(slot);
    const shard = this.shards[index];
    if (!shard?.serving) throw notLeader(this.coordinator.shards[index]!.id);
    return shard;
  }

  private jobShard(tenant: string, jobId: string): ShardReplica {
    return this.shardAt(slotOf(tenant, jobId));
  }

  private propose(shard: ShardReplica, record: ShardRecord): Promise<unknown> {
    return shard.propose(record);
  }

  // ---------------------------------------------------------------------------------------------
  // jobs

  putJob(tenant: string, jobId: string, spec: JobSpec, ifMatch: number | null, by?: Actor): Promise<JobPutResult> {
    const record: ShardRecord = { type: "job.put", at: this.clock.now(), tenant, jobId, specJson: JSON.stringify(spec), ifMatch, ...(by && { by }) };
    return this.propose(this.jobShard(tenant, jobId), record) as Promise<JobPutResult>;
  }

  getJob(tenant: string, jobId: string): Job {
    const job = this.jobShard(tenant, jobId).state.getJob(tenant, jobId);
    if (!job) throw notFound(`job '${jobId}' not found`);
    return job;
  }

  /** A job's counts and last run from history (job-runs.ts); null with history off. */
  async jobRuns(tenant: string, jobId: string): Promise<JobRuns | null> {
    return (await this.history?.jobRuns(this.jobShard(tenant, jobId).shardId, tenant, jobId)) ?? null;
  }

  deleteJob(tenant: string, jobId: string, cancelRunning: boolean, by?: Actor): Promise<JobPutResult> {
    const record: ShardRecord = { type: "job.delete", at: this.clock.now(), tenant, jobId, cancelRunning, ...(by && { by }) };
    return this.propose(this.jobShard(tenant, jobId), record) as Promise<JobPutResult>;
  }

  setJobPaused(tenant: string, jobId: string, paused: boolean, by?: Actor): Promise<JobPutResult> {
    const record: ShardRecord = { type: paused ? "job.pause" : "job.resume", at: this.clock.now(), tenant, jobId, ...(by && { by }) };
    return this.propose(this.jobShard(tenant, jobId), record) as Promise<JobPutResult>;
  }

  async triggerJob(tenant: string, jobId: string, payload: unknown, idempotencyKey: string | null, by?: Actor): Promise<ExecutionAnswer> {
    const at = this.clock.now();
    const record: ShardRecord = {
      type: "job.trigger",
      at,
      tenant,
      jobId,
      executionId: `${jobId}:m${uniquePart(at)}`,
      payload: payload === undefined ? null : payload,
      hasPayload: payload !== undefined,
      idempotencyKey,
      ...(by && { by }),
    };
    const shard = this.jobShard(tenant, jobId);
    return this.answer(shard, tenant, (await this.propose(shard, record)) as EnqueueOutcome);
  }

  backfillJob(tenant: string, jobId: string, fromMs: number, toMs: number, by?: Actor): Promise<BackfillResult> {
    const record: ShardRecord = { type: "job.backfill", at: this.clock.now(), tenant, jobId, fromMs, toMs, ...(by && { by }) };
    return this.propose(this.jobShard(tenant, jobId), record) as Promise<BackfillResult>;
  }

  previewJob(tenant: string, jobId: string, count: number): PreviewItem[] {
    const job = this.getJob(tenant, jobId);
    if (job.nextFireAt === null || job.state === "completed") return [];
    // Start just before the next pending fire so an overdue fire (paused, misfired) shows too.
    const items = preview(job.spec.schedule, job.id, job.nextFireAt - 1, count);
    const maxRuns = job.spec.maxRuns;
    return maxRuns === null ? items : items.slice(0, Math.max(0, maxRuns - job.runs));
  }

  /** Jobs of a tenant in id order, merged across shards. */
  listJobs(tenant: string, q: ListJobsQuery): Job[] {
    const merged = this.servingShards().flatMap((s) => s.state.listJobs(tenant, q));
    merged.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return merged.slice(0, q.limit);
  }

  // ---------------------------------------------------------------------------------------------
  // executions

  async enqueue(tenant: string, spec: EnqueueSpec): Promise<ExecutionAnswer> {
    const at = this.clock.now();
    // Without keys any shard will do: one this node leads, spread over them.
    const slot = enqueueSlot(tenant, spec) ?? this.randomServingSlot();
    const record: EnqueueRecord = {
      type: "exec.enqueue",
      at,
      tenant,
      executionId: adHocExecutionId(slot, uniquePart(at)),
      spec,
    };
    const shard = this.shardAt(slot);
    const result = this.propose(shard, record) as Promise<EnqueueOutcome>;
    for (const listener of this.enqueueListeners) listener(shard, record);
    return this.answer(shard, tenant, await result);
  }

  /**
   * Enqueue the items of a batch that belong here — keyed items of shards this node leads, and
   * keyless ones, spread over the shards it leads — with one record per shard (per chunk of
   * `ENQUEUE_BATCH_RECORD_BYTES`). Results in input order: an item this node cannot place gets
   * its error (`not_leader`, `unavailable`), the others what their shard answered.
   */
  async enqueueBatch(tenant: string, specs: EnqueueSpec[]): Promise<Array<ExecutionAnswer | CronwheelError>> {
    const at = this.clock.now();
    const results: Array<ExecutionAnswer | CronwheelError> = new Array(specs.length);
    const groups = new Map<ShardReplica, Array<{ index: number; slot: number; spec: EnqueueSpec }>>();
    const serving = this.servingShards();
    let turn = Math.floor(Math.random() * serving.length);
    specs.forEach((spec, index) => {
      try {
        const keyed = enqueueSlot(tenant, spec);
        const slot = keyed ?? this.randomSlotOf(serving[turn++ % serving.length]);
        const shard = this.shardAt(slot);
        const group = groups.get(shard) ?? [];
        group.push({ index, slot, spec });
        groups.set(shard, group);
      } catch (error) {
        if (!(error instanceof CronwheelError)) throw error;
        results[index] = error;
      }
    });
    const proposals: Promise<void>[] = [];
    for (const [shard, group] of groups) {
      for (const chunk of chunksByBytes(group, (x) => approxBytes(x.spec.payload), ENQUEUE_BATCH_RECORD_BYTES)) {
        const record: EnqueueBatchRecord = {
          type: "exec.enqueue-batch",
          at,
          tenant,
          items: chunk.map(({ slot, spec }) => ({ executionId: adHocExecutionId(slot, uniquePart(at)), spec })),
        };
        proposals.push(
          this.propose(shard, record).then(
            (answers) =>
              Promise.all(
                (answers as Array<EnqueueOutcome | CronwheelError>).map(async (answer, i) => {
                  results[chunk[i]!.index] = answer instanceof CronwheelError ? answer : await this.answer(shard, tenant, answer).catch((error: CronwheelError) => error);
                }),
              ).then(() => undefined),
            (error: unknown) => {
              if (!(error instanceof CronwheelError)) throw error;
              for (const { index } of chunk) results[index] = error;
            },
          ),
        );
      }
    }
    await Promise.all(proposals);
    return results;
  }

  /**
   * What an enqueue or trigger answers: the execution it made or matched. An idempotency key that
   * matched an execution memory forgot is answered from history; with history off (or that
   * execution past its retention) there is nothing to show, which is 409: the key is taken.
   */
  private async answer(shard: ShardReplica, tenant: string, outcome: EnqueueOutcome): Promise<ExecutionAnswer> {
    if (!("duplicateOf" in outcome)) return outcome;
    const first = await this.history?.get(shard.shardId, tenant, outcome.duplicateOf);
    if (!first) throw conflict(`the idempotency key was used for execution '${outcome.duplicateOf}' within its window; that execution is no longer retained`, { executionId: outcome.duplicateOf });
    return { execution: first, created: false };
  }

  private randomServingSlot(): number {
    const serving = this.servingShards();
    return this.randomSlotOf(serving[Math.floor(Math.random() * serving.length)]);
  }

  /** A random slot of `shard` (an ad-hoc id without keys may name any slot of the shard it lives on). */
  private randomSlotOf(shard: ShardReplica | undefined): number {
    if (!shard) throw new CronwheelError("unavailable", "this node leads no shard right now; retry", undefined, 1);
    const [lo, hi] = this.coordinator.shards[this.shards.indexOf(shard)]!.range;
    return lo + Math.floor(Math.random() * (hi - lo + 1));
  }

  /**
   * Hear of each ad-hoc enqueue right after it is proposed, before it commits: the worker gateway
   * uses it to propose the claim in the same group commit when a worker is idle.
   */
  onEnqueueProposed(listener: (shard: ShardReplica, record: EnqueueRecord) => void): void {
    this.enqueueListeners.push(listener);
  }

  /** Let another component (the worker gateway) observe live shard events. */
  addObserver(observer: ShardObserver): void {
    this.extraObservers.push(observer);
  }

  executionShard(tenant: string, executionId: string): ShardReplica {
    const slot = slotOfExecution(tenant, executionId);
    if (slot === null) throw notFound(`execution '${executionId}' not found`);
    return this.shardAt(slot);
  }

  /** An execution from memory, or from history once memory forgot it. */
  async getExecution(tenant: string, executionId: string): Promise<ExecutionFacts> {
    const shard = this.executionShard(tenant, executionId);
    const e = shard.state.getExecution(tenant, executionId) ?? (await this.history?.get(shard.shardId, tenant, executionId)) ?? undefined;
    if (!e) throw notFound(`execution '${executionId}' not found`);
    return e;
  }

  cancelExecution(tenant: string, executionId: string, by?: Actor): Promise<ExecutionResult> {
    const record: ShardRecord = { type: "exec.cancel", at: this.clock.now(), tenant, executionId, ...(by && { by }) };
    return this.propose(this.executionShard(tenant, executionId), record) as Promise<ExecutionResult>;
  }

  replayExecution(tenant: string, executionId: string, by?: Actor): Promise<ExecutionResult> {
    const shard = this.executionShard(tenant, executionId);
    const at = this.clock.now();
    const colon = executionId.indexOf(":");
    const newExecutionId =
      colon > 0
        ? `${executionId.slice(0, colon)}:r${uniquePart(at)}`
        : adHocExecutionId(slotOfExecution(tenant, executionId)!, uniquePart(at));
    return shard.propose({ type: "exec.replay", at, tenant, executionId, newExecutionId, ...(by && { by }) }) as Promise<ExecutionResult>;
  }

  /**
   * Executions in list order (live first, then finished: list-order.ts) across the shards this
   * node leads, memory and history as one; `after` is the cursor (the last one served).
   */
  async listExecutions(tenant: string, q: ListExecutionsQuery, after?: ListPosition): Promise<MergedPage<ExecutionFacts>> {
    const serving = this.servingShards();
    const parts: PagePart[] = [{ items: serving.flatMap((s) => s.state.listExecutions(tenant, q, after)), stoppedAt: null }];
    const wantsFinished = q.state === undefined || isTerminal(q.state as Execution["state"]);
    if (this.history && wantsFinished) {
      parts.push(
        await this.history.list(
          serving.map((s) => s.shardId),
          {
            tenant,
            jobId: q.jobId,
            queue: q.queue,
            state: q.state as FinishedState | undefined,
            reason: q.reason,
            workerId: q.workerId,
            jobIds: q.label === undefined ? undefined : serving.flatMap((s) => [...s.state.jobsWithLabel(tenant, q.label!)]),
            finishedFromMs: q.finishedFromMs,
            finishedToMs: q.finishedToMs,
            scheduledFromMs: q.fromMs,
            scheduledToMs: q.toMs,
            before: after && !after.live ? after : undefined,
            limit: q.limit,
            examineMax: HISTORY_EXAMINE_MAX,
          },
        ),
      );
    }
    return mergePages(parts, q.limit);
  }

  /**
   * Stats of the shards this node leads: history's tallies (stats.ts), mergeable with other
   * nodes', and the tenant's ready backlog per queue from memory.
   */
  async executionStats(tenant: string, q: Omit<StatsQuery, "tenant">): Promise<{ tallies: StatsWire; backlog: Backlog[] }> {
    if (!this.history) throw notFound("stats are kept in history, which is off on this node (--history off)");
    const serving = this.servingShards();
    const answer = await this.history.executionStats(serving.map((s) => s.shardId), { ...q, tenant }, STATS_SCAN_MAX);
    if ("tooMany" in answer) {
      throw invalidArgument(`this query would read ${answer.tooMany} history rows; a stats query by job or for one job reads at most ${STATS_SCAN_MAX} (narrow from/to)`, {
        field: q.jobId !== undefined ? "jobId" : "by",
        rows: answer.tooMany,
        limit: STATS_SCAN_MAX,
      });
    }
    return { tallies: answer.tallies, backlog: mergeBacklogs(serving.map((s) => s.state.readyBacklog(tenant))) };
  }

  /** The audit trail of the shards this node leads, newest first (audit-tables.ts). */
  async listAudit(tenant: string, q: Omit<AuditQuery, "tenant">): Promise<AuditRecord[]> {
    if (!this.history) throw notFound("the audit trail is kept in history, which is off on this node (--history off)");
    return this.history.listAudit(this.servingShards().map((s) => s.shardId), { ...q, tenant });
  }

  // ---------------------------------------------------------------------------------------------
  // cluster view and lifecycle

  clusterView(): ClusterView {
    return this.coordinator.view();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.coordinator.close();
    this.peers?.close();
    await Promise.all(this.localShards().map((s) => s.close()));
    await this.historyFill?.close();
    await this.history?.close();
  }
}

/**
 * The routing slot an ad-hoc execution must live on: its ordering key's (one line per key) or its
 * idempotency key's (one dedup table per key); null when it has neither and any shard will do.
 */
export function enqueueSlot(tenant: string, spec: Pick<EnqueueSpec, "orderingKey" | "idempotencyKey">): number | null {
  if (spec.orderingKey !== null) return slotOf(tenant, `ordering/${spec.orderingKey}`);
  if (spec.idempotencyKey !== null) return slotOf(tenant, `idempotency/${spec.idempotencyKey}`);
  return null;
}

/** Items in order, cut into runs whose estimated bytes stay under `maxBytes` (a run has at least one item). */
function chunksByBytes<T>(items: T[], bytesOf: (item: T) => number, maxBytes: number): T[][] {
  const chunks: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const b = bytesOf(item);
    if (current.length > 0 && bytes + b > maxBytes) {
      chunks.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += b;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

function composeObservers(first: ShardObserver, rest: ShardObserver[]): ShardObserver {
  return {
    fired: (e, fireAtMs, atMs) => {
      first.fired(e, fireAtMs, atMs);
      for (const o of rest) o.fired(e, fireAtMs, atMs);
    },
    ready: (e) => {
      first.ready(e);
      for (const o of rest) o.ready(e);
    },
    finished: (e) => {
      first.finished(e);
      for (const o of rest) o.finished(e);
    },
    revoked: (e, workerId, fence, reason) => {
      first.revoked(e, workerId, fence, reason);
      for (const o of rest) o.revoked(e, workerId, fence, reason);
    },
  };
}

/**
 * Unique within the cluster and sortable by time: base-36 ms, this process's random tag, and a
 * per-process counter (one crypto call per process instead of one per id: ids are on the hot path).
 */
const PROCESS_TAG = randomBytes(4).toString("hex");
/** Payload bytes one enqueue-batch record carries at most (a bigger batch becomes several records). */
const ENQUEUE_BATCH_RECORD_BYTES = 1024 * 1024;
let uniqueSeq = 0;
function uniquePart(at: number): string {
  uniqueSeq = (uniqueSeq + 1) % 1_679_616; // 36^4
  return `${at.toString(36)}${PROCESS_TAG}${uniqueSeq.toString(36).padStart(4, "0")}`;
}

export { CronwheelError };
