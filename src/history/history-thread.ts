/**
 * The history thread: owns every shard's history file on this node (history-db.ts) and does all
 * of SQLite's work, so neither writing nor querying history ever runs on the event loop. The main
 * thread talks to it only through the messages below (history-store.ts is the other end).
 *
 * Writes are committed in groups: a commit every `commitEveryMs`, or at once when asked (a query
 * reads its own connection's uncommitted rows, so it needs no commit; a snapshot asks for a durable
 * one before the shard log drops what it covers). A crash loses at most the uncommitted rows, and
 * their watermark with them: the shard's log still holds those entries and replays them.
 */
import path from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import type { ExecutionFacts } from "../core/execution.js";
import { mergePages, type PagePart } from "../core/list-order.js";
import { HistoryDb, type HistoryListQuery } from "./history-db.js";

export interface HistoryThreadConfig {
  dir: string;
  commitEveryMs: number;
}

/** Main → thread. Requests with an `id` are answered with that id. */
export type HistoryRequest =
  | { t: "open"; id: number; shard: number }
  | { t: "rows"; shard: number; rows: ExecutionFacts[]; through: number }
  | { t: "gap"; shard: number; from: number; to: number; at: number }
  | { t: "commit"; id: number; shard: number | null; durable: boolean }
  | { t: "get"; id: number; shard: number; tenant: string; executionId: string }
  | { t: "list"; id: number; shards: number[]; query: HistoryListQuery }
  | { t: "retain"; id: number; cutoffMs: number }
  | { t: "stats"; id: number; shard: number }
  | { t: "close"; id: number; shard: number | null };

/** Thread → main. */
export type HistoryReply =
  | { t: "reply"; id: number; value?: unknown; error?: string }
  /** Rows for a shard could not be written; the shard's history stops until restart. */
  | { t: "failed"; shard: number; error: string };

export function shardHistoryFile(dir: string, shard: number): string {
  return path.join(dir, `shard-${String(shard).padStart(4, "0")}.sqlite`);
}

class HistoryThread {
  private readonly dbs = new Map<number, HistoryDb>();
  private readonly failed = new Set<number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly config: HistoryThreadConfig, private readonly post: (m: HistoryReply) => void) {}

  handle(m: HistoryRequest): void {
    if (m.t === "rows" || m.t === "gap") return this.write(m);
    try {
      this.post({ t: "reply", id: m.id, value: this.answer(m) });
    } catch (error) {
      this.post({ t: "reply", id: m.id, error: (error as Error).message });
    }
  }

  private write(m: Extract<HistoryRequest, { t: "rows" | "gap" }>): void {
    if (this.failed.has(m.shard)) return;
    try {
      const db = this.db(m.shard);
      if (m.t === "rows") db.append(m.rows, m.through);
      else db.recordGap(m.from, m.to, m.at);
      this.armCommit();
    } catch (error) {
      this.failed.add(m.shard);
      this.post({ t: "failed", shard: m.shard, error: (error as Error).stack ?? String(error) });
    }
  }

  private answer(m: Exclude<HistoryRequest, { t: "rows" | "gap" }>): unknown {
    switch (m.t) {
      case "open":
        this.failed.delete(m.shard);
        return this.db(m.shard).applied;
      case "commit": {
        for (const [shard, db] of this.dbs) if (m.shard === null || m.shard === shard) db.commit(m.durable);
        return m.shard === null ? null : (this.dbs.get(m.shard)?.applied ?? 0);
      }
      case "get":
        return this.dbs.get(m.shard)?.get(m.tenant, m.executionId) ?? null;
      case "list": {
        const parts: PagePart[] = [];
        for (const shard of m.shards) {
          const db = this.dbs.get(shard);
          if (db) parts.push(db.list(m.query));
        }
        const merged = mergePages(parts, m.query.limit);
        return { items: merged.items, stoppedAt: merged.items.length < m.query.limit ? merged.next : null };
      }
      case "retain": {
        const dropped: Record<number, number[]> = {};
        for (const [shard, db] of this.dbs) dropped[shard] = db.dropBefore(m.cutoffMs);
        for (const db of this.dbs.values()) db.commit();
        return dropped;
      }
      case "stats": {
        const db = this.dbs.get(m.shard);
        return db ? { applied: db.applied, rows: db.count(), days: db.dayTables.length, gaps: db.gaps() } : null;
      }
      case "close": {
        for (const [shard, db] of [...this.dbs]) {
          if (m.shard !== null && m.shard !== shard) continue;
          db.close();
          this.dbs.delete(shard);
        }
        return null;
      }
    }
  }

  private db(shard: number): HistoryDb {
    let db = this.dbs.get(shard);
    if (!db) {
      db = new HistoryDb(shardHistoryFile(this.config.dir, shard));
      this.dbs.set(shard, db);
    }
    return db;
  }

  private armCommit(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      for (const [shard, db] of this.dbs) {
        try {
          db.commit();
        } catch (error) {
          this.failed.add(shard);
          this.post({ t: "failed", shard, error: (error as Error).stack ?? String(error) });
        }
      }
    }, this.config.commitEveryMs);
  }
}

if (parentPort) {
  const port = parentPort;
  const thread = new HistoryThread(workerData as HistoryThreadConfig, (m) => port.postMessage(m));
  port.on("message", (m: HistoryRequest) => thread.handle(m));
}
