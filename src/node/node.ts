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
import { StaticCoordinator } from "../../cluster/static-coordinator.js";
import type { Clock } from "../core/clock.js";
import { CronwheelError, notFound } from "../core/errors.js";
import type { Execution } from "../core/execution.js";
import type { Job } from "../core/job.js";
import type { EnqueueRecord, ShardRecord } from "../core/records.js";
import { adHocExecutionId, SLOT_COUNT, slotOf, slotOfExecution } from "../core/routing.js";
import {
  DEFAULT_SHARD_LIMITS,
  NO_OBSERVER,
  type BackfillResult,
  type ExecutionResult,
  type JobPutResult,
  type ListExecutionsQuery,
  type ListJobsQuery,
  type ShardLimits,
  type ShardObserver,
} from "../core/shard-state.js";
import { preview, type PreviewItem } from "../core/trigger.js";
import type { EnqueueSpec, JobSpec } from "../core/types.js";
import { NodeMetrics } from "./metrics.js";
import { ShardReplica, SnapshotTurns } from "./shard-replica.js";

export interface NodeOptions {
  nodeId: string;
  dataDir: string;
  shardCount: number;
  fsync: FsyncMode;
  clock: Clock;
  logger: Logger;
  limits?: ShardLimits;
  snapshotEveryRecords?: number;
  repair?: boolean;
  /** Extra live observer (benchmarks and tests); metrics always observe. */
  observer?: ShardObserver;
}

/** Records a shard applies between snapshots: bounds what a crash restart replays. */
export const SNAPSHOT_EVERY_RECORDS_DEFAULT = 100_000;


export class CronwheelNode {
  readonly metrics: NodeMetrics;
  private closed = false;
  private extraObservers: ShardObserver[] = [];
  private readonly enqueueListeners: Array<(shard: ShardReplica, record: EnqueueRecord) => void> = [];

  private constructor(
    readonly opts: NodeOptions,
    readonly coordinator: StaticCoordinator,
    readonly shards: ShardReplica[],
    metrics: NodeMetrics,
  ) {
    this.metrics = metrics;
  }

  static async start(opts: NodeOptions): Promise<CronwheelNode> {
    const coordinator = StaticCoordinator.open(opts.dataDir, opts.nodeId, opts.shardCount);
    const shards: ShardReplica[] = [];
    const metrics = new NodeMetrics(opts.clock, () => shards.flatMap((s) => s.state.readyStats()));
    // Observers added later (the worker gateway) see every live event too.
    const extra: ShardObserver[] = opts.observer ? [opts.observer] : [];
    const snapshotTurns = new SnapshotTurns();
    const observer = composeObservers(metrics.observer(opts.clock), extra);
    for (const shard of coordinator.shards) {
      const dir = path.join(opts.dataDir, "shards", String(shard.id));
      fs.mkdirSync(dir, { recursive: true });
      shards.push(
        await ShardReplica.open(
          {
            shardId: shard.id,
            dir,
            fsync: opts.fsync,
            clock: opts.clock,
            logger: opts.logger,
            limits: opts.limits ?? DEFAULT_SHARD_LIMITS,
            observer,
            snapshotEveryRecords: opts.snapshotEveryRecords ?? SNAPSHOT_EVERY_RECORDS_DEFAULT,
            repair: opts.repair ?? false,
            snapshotTurns,
            onBatch: (records, fsyncMs) => metrics.onWalBatch(records, fsyncMs),
          },
          NO_OBSERVER,
        ),
      );
    }
    const node = new CronwheelNode(opts, coordinator, shards, metrics);
    node.extraObservers = extra;
    return node;
  }

  get ready(): boolean {
    return !this.closed && this.shards.every((s) => s.healthy);
  }

  private get clock(): Clock {
    return this.opts.clock;
  }

  private shardAt(slot: number): ShardReplica {
    return this.shards[this.coordinator.shardIndexOfSlot(slot)]!;
  }

  private jobShard(tenant: string, jobId: string): ShardReplica {
    return this.shardAt(slotOf(tenant, jobId));
  }

  private propose(shard: ShardReplica, record: ShardRecord): Promise<unknown> {
    return shard.propose(record);
  }

  // ---------------------------------------------------------------------------------------------
  // jobs

  putJob(tenant: string, jobId: string, spec: JobSpec, ifMatch: number | null): Promise<JobPutResult> {
    const record: ShardRecord = { type: "job.put", at: this.clock.now(), tenant, jobId, specJson: JSON.stringify(spec), ifMatch };
    return this.propose(this.jobShard(tenant, jobId), record) as Promise<JobPutResult>;
  }

  getJob(tenant: string, jobId: string): Job {
    const job = this.jobShard(tenant, jobId).state.getJob(tenant, jobId);
    if (!job) throw notFound(`job '${jobId}' not found`);
    return job;
  }

  deleteJob(tenant: string, jobId: string, cancelRunning: boolean): Promise<JobPutResult> {
    const record: ShardRecord = { type: "job.delete", at: this.clock.now(), tenant, jobId, cancelRunning };
    return this.propose(this.jobShard(tenant, jobId), record) as Promise<JobPutResult>;
  }

  setJobPaused(tenant: string, jobId: string, paused: boolean): Promise<JobPutResult> {
    const record: ShardRecord = { type: paused ? "job.pause" : "job.resume", at: this.clock.now(), tenant, jobId };
    return this.propose(this.jobShard(tenant, jobId), record) as Promise<JobPutResult>;
  }

  triggerJob(tenant: string, jobId: string, payload: unknown, idempotencyKey: string | null): Promise<ExecutionResult> {
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
    };
    return this.propose(this.jobShard(tenant, jobId), record) as Promise<ExecutionResult>;
  }

  backfillJob(tenant: string, jobId: string, fromMs: number, toMs: number): Promise<BackfillResult> {
    const record: ShardRecord = { type: "job.backfill", at: this.clock.now(), tenant, jobId, fromMs, toMs };
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
    const merged = this.shards.flatMap((s) => s.state.listJobs(tenant, q));
    merged.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return merged.slice(0, q.limit);
  }

  // ---------------------------------------------------------------------------------------------
  // executions

  enqueue(tenant: string, spec: EnqueueSpec): Promise<ExecutionResult> {
    const at = this.clock.now();
    const slot =
      spec.orderingKey !== null
        ? slotOf(tenant, `ordering/${spec.orderingKey}`)
        : spec.idempotencyKey !== null
          ? slotOf(tenant, `idempotency/${spec.idempotencyKey}`)
          : Math.floor(Math.random() * SLOT_COUNT); // any shard will do; spread them
    const record: EnqueueRecord = {
      type: "exec.enqueue",
      at,
      tenant,
      executionId: adHocExecutionId(slot, uniquePart(at)),
      spec,
    };
    const shard = this.shardAt(slot);
    const result = this.propose(shard, record) as Promise<ExecutionResult>;
    for (const listener of this.enqueueListeners) listener(shard, record);
    return result;
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

  getExecution(tenant: string, executionId: string): Execution {
    const e = this.executionShard(tenant, executionId).state.getExecution(tenant, executionId);
    if (!e) throw notFound(`execution '${executionId}' not found`);
    return e;
  }

  cancelExecution(tenant: string, executionId: string): Promise<ExecutionResult> {
    const record: ShardRecord = { type: "exec.cancel", at: this.clock.now(), tenant, executionId };
    return this.propose(this.executionShard(tenant, executionId), record) as Promise<ExecutionResult>;
  }

  replayExecution(tenant: string, executionId: string): Promise<ExecutionResult> {
    const shard = this.executionShard(tenant, executionId);
    const at = this.clock.now();
    const colon = executionId.indexOf(":");
    const newExecutionId =
      colon > 0
        ? `${executionId.slice(0, colon)}:r${uniquePart(at)}`
        : adHocExecutionId(slotOfExecution(tenant, executionId)!, uniquePart(at));
    return shard.propose({ type: "exec.replay", at, tenant, executionId, newExecutionId }) as Promise<ExecutionResult>;
  }

  /** Executions newest first, merged across shards; `before` is the cursor (the last one seen). */
  listExecutions(tenant: string, q: ListExecutionsQuery, before?: { createdAt: number; id: string }): Execution[] {
    const merged = this.shards.flatMap((s) => s.state.listExecutions(tenant, q, before));
    merged.sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    return merged.slice(0, q.limit);
  }

  // ---------------------------------------------------------------------------------------------
  // cluster view and lifecycle

  clusterView(advertise: string): unknown {
    return {
      nodes: [{ id: this.opts.nodeId, address: advertise, state: this.ready ? "ready" : "unavailable" }],
      shards: this.coordinator.shards.map((s, i) => ({
        id: s.id,
        range: s.range,
        replicas: [this.opts.nodeId],
        leader: this.opts.nodeId,
        epoch: 1,
        commitIndex: this.shards[i]!.indexes.durable,
      })),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.shards.map((s) => s.close()));
  }
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

/** Unique within a node and sortable by time: base-36 ms plus 48 random bits. */
/**
 * Unique within the cluster and sortable by time: base-36 ms, this process's random tag, and a
 * per-process counter (one crypto call per process instead of one per id: ids are on the hot path).
 */
const PROCESS_TAG = randomBytes(4).toString("hex");
let uniqueSeq = 0;
function uniquePart(at: number): string {
  uniqueSeq = (uniqueSeq + 1) % 1_679_616; // 36^4
  return `${at.toString(36)}${PROCESS_TAG}${uniqueSeq.toString(36).padStart(4, "0")}`;
}

export { CronwheelError };
