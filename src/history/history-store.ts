/**
 * The node's execution history, from the main thread's side: it starts the history thread
 * (history-thread.ts, which owns the SQLite files), hands it each shard's finished executions, and
 * asks it questions. Every call here is a message; nothing blocks the event loop.
 *
 * Each shard replica feeds its `ShardHistory` as it applies committed log entries — on every
 * replica, leader or follower, and during the replay at start — so history is derived from the
 * replicated log: a node that dies loses none (its peers have theirs, and its own log replays what
 * its file had not committed), and the watermark (the last applied log index the file holds) makes
 * sure no entry's rows are written twice. Rows wait in memory for the end of the event-loop turn,
 * then go to the thread in one message per shard.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import { CronwheelError } from "../core/errors.js";
import { factsOf, type Execution, type ExecutionFacts } from "../core/execution.js";
import type { HistoryListQuery, HistoryPage } from "./history-db.js";
import type { HistoryReply, HistoryRequest, HistoryThreadConfig } from "./history-thread.js";

/** How often the thread commits what it was given (a crash replays at most this much from the log). */
export const HISTORY_COMMIT_EVERY_MS_DEFAULT = 1_000;
/** How often retention drops expired day tables. */
const RETENTION_EVERY_MS = 3_600_000;
/** Rows one list request may read from history before it answers with a shorter page and a cursor. */
export const HISTORY_EXAMINE_MAX = 50_000;

export interface HistoryOptions {
  dir: string;
  retentionMs: number;
  commitEveryMs?: number;
}

type Pending = { resolve: (value: unknown) => void; reject: (error: Error) => void };

/** The thread's script: next to this file once built; tests running the sources use the build. */
function threadScript(): URL {
  const here = import.meta.url;
  return here.endsWith(".ts") ? new URL("../../dist/src/history/history-thread.js", here) : new URL("./history-thread.js", here);
}

export class HistoryStore {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Pending>();
  private nextId = 1;
  private readonly shards = new Map<number, ShardHistory>();
  private flushScheduled = false;
  private retentionTimer: NodeJS.Timeout | null = null;
  private closed = false;
  /** The thread died: every question is answered `unavailable` from now on, never left waiting. */
  private dead: Error | null = null;

  private constructor(
    readonly opts: HistoryOptions,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    const config: HistoryThreadConfig = { dir: path.resolve(opts.dir), commitEveryMs: opts.commitEveryMs ?? HISTORY_COMMIT_EVERY_MS_DEFAULT };
    this.worker = new Worker(fileURLToPath(threadScript()), { workerData: config, name: "cronwheel-history" });
    this.worker.on("message", (m: HistoryReply) => this.onMessage(m));
    const died = (error: Error) => {
      if (this.dead) return;
      this.dead = error;
      if (!this.closed) this.logger.error({ err: error }, "history thread failed; history stops until restart");
      for (const p of this.waiting.values()) p.reject(historyUnavailable(error));
      this.waiting.clear();
      for (const s of this.shards.values()) s.failed = true;
    };
    this.worker.on("error", died);
    this.worker.on("exit", (code) => died(new Error(`the history thread exited (${code})`)));
  }

  static start(opts: HistoryOptions, logger: Logger, now: () => number): HistoryStore {
    const store = new HistoryStore(opts, logger, now);
    store.retentionTimer = setInterval(() => void store.enforceRetention().catch(() => undefined), RETENTION_EVERY_MS);
    store.retentionTimer.unref();
    return store;
  }

  /** Open (or create) a shard's history file; its watermark tells the replica what to skip on replay. */
  async openShard(shard: number): Promise<ShardHistory> {
    const applied = (await this.request({ t: "open", id: 0, shard })) as number;
    const history = new ShardHistory(shard, applied, this);
    this.shards.set(shard, history);
    return history;
  }

  /** Close a shard's file (its replica left this node); the file stays. */
  async closeShard(shard: number): Promise<void> {
    this.flushNow();
    this.shards.delete(shard);
    await this.request({ t: "close", id: 0, shard });
  }

  async get(shard: number, tenant: string, executionId: string): Promise<ExecutionFacts | null> {
    this.flushNow();
    return (await this.request({ t: "get", id: 0, shard, tenant, executionId })) as ExecutionFacts | null;
  }

  /** Finished executions of these shards in list order (see list-order.ts). */
  async list(shards: number[], query: HistoryListQuery): Promise<HistoryPage> {
    if (shards.length === 0) return { items: [], stoppedAt: null };
    this.flushNow();
    return (await this.request({ t: "list", id: 0, shards, query })) as HistoryPage;
  }

  /** Commit a shard's rows, fsynced when `durable`; resolves to its watermark. */
  async commit(shard: number, durable: boolean): Promise<number> {
    this.flushNow();
    return (await this.request({ t: "commit", id: 0, shard, durable })) as number;
  }

  async stats(shard: number): Promise<{ applied: number; rows: number; days: number; gaps: Array<{ from: number; to: number; at: number }> } | null> {
    this.flushNow();
    return (await this.request({ t: "stats", id: 0, shard })) as never;
  }

  /** Drop the day tables wholly older than the retention. */
  async enforceRetention(): Promise<void> {
    const cutoffMs = this.now() - this.opts.retentionMs;
    const dropped = (await this.request({ t: "retain", id: 0, cutoffMs })) as Record<number, number[]>;
    const days = Object.values(dropped).reduce((n, d) => n + d.length, 0);
    if (days > 0) this.logger.info({ cutoff: new Date(cutoffMs).toISOString(), dropped }, "history retention dropped day tables");
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    this.flushNow();
    await this.request({ t: "close", id: 0, shard: null }).catch(() => undefined);
    await this.worker.terminate();
  }

  // ---------------------------------------------------------------------------------------------

  /** A shard has rows or a new watermark to send: send them all at the end of this turn. */
  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flushNow());
  }

  private flushNow(): void {
    this.flushScheduled = false;
    for (const s of this.shards.values()) {
      const batch = s.takeBatch();
      if (batch) this.post(batch);
    }
  }

  post(m: HistoryRequest): void {
    if (!this.closed && !this.dead) this.worker.postMessage(m);
  }

  private request(m: HistoryRequest & { id: number }): Promise<unknown> {
    if (this.dead) return Promise.reject(historyUnavailable(this.dead));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ ...m, id });
    });
  }

  private onMessage(m: HistoryReply): void {
    if (m.t === "failed") {
      this.logger.error({ shard: m.shard, err: m.error }, "history writer failed for a shard; its history stops until restart");
      const s = this.shards.get(m.shard);
      if (s) s.failed = true;
      return;
    }
    const p = this.waiting.get(m.id);
    if (!p) return;
    this.waiting.delete(m.id);
    if (m.error !== undefined) p.reject(historyUnavailable(new Error(m.error)));
    else p.resolve(m.value);
  }
}

/**
 * One shard's feed into history, used by its replica: `applying(index)` before each entry is
 * applied, `finished(e)` for each execution that ends while it is applied (the shard state's
 * finished sink), `applied(index)` after a run of entries. Entries at or below the watermark were
 * written before (a replay after restart) and add nothing.
 */
export class ShardHistory {
  private rows: ExecutionFacts[] = [];
  private through: number;
  private sent: number;
  private current = 0;
  /** The writer failed for this shard: rows are dropped (logged once by the store) until restart. */
  failed = false;

  constructor(
    readonly shard: number,
    /** The last log index whose rows the file held when it was opened. */
    readonly watermark: number,
    private readonly store: HistoryStore,
  ) {
    this.through = this.sent = watermark;
  }

  applying(index: number): void {
    this.current = index;
  }

  readonly finished = (e: Execution): void => {
    if (this.current <= this.watermark) return;
    this.rows.push(factsOf(e));
  };

  applied(index: number): void {
    if (index <= this.through) return;
    this.through = index;
    this.store.scheduleFlush();
  }

  /**
   * The replica jumped to `index` by installing a snapshot: the entries it skipped are not applied
   * here, so their executions are not in this file. Recorded as a gap.
   */
  skipTo(index: number, at: number): void {
    if (index <= this.through) return;
    const batch = this.takeBatch();
    if (batch) this.store.post(batch);
    this.store.post({ t: "gap", shard: this.shard, from: this.through + 1, to: index, at });
    this.through = this.sent = index;
  }

  /** Commit through the applied index (durably before a snapshot drops the log behind it). */
  commit(durable: boolean): Promise<number> {
    return this.store.commit(this.shard, durable);
  }

  takeBatch(): HistoryRequest | null {
    if (this.through === this.sent && this.rows.length === 0) return null;
    const rows = this.rows;
    this.rows = [];
    this.sent = this.through;
    if (this.failed) return null;
    return { t: "rows", shard: this.shard, rows, through: this.through };
  }
}

/** What a reader is told when history cannot answer (the contract's 503: retry later). */
function historyUnavailable(cause: Error): CronwheelError {
  return new CronwheelError("unavailable", `history is unavailable: ${cause.message}`, undefined, 5);
}
