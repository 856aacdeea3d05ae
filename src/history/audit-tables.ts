/**
 * The audit trail's storage (core/audit.ts says what an entry is): tables in the shard's history
 * file, one per UTC day of the change, `a{day}`, so retention drops whole days of them as it does
 * the execution tables. Written in the same transaction as the executions and under the same
 * watermark (HistoryDb.append), so a restart neither loses nor repeats an entry.
 *
 * Layout of `a{day}`:
 *   i        the change's shard log index: unique, and the same on every replica
 *   at       shard time of the change (ms); i and at grow together
 *   tenant, job, role, actor, outcome   keys into the file's `names` (outcome null: "ok")
 *   action   index into AUDIT_ACTIONS
 *   xid      the execution the change named or made
 *   detail   JSON of the entry's details
 * Indexes: (job) for one job's trail, (at) for a time range.
 *
 * An entry's id is `{shard}-{index}`, zero-padded, so ids sort as (shard, index): the trail lists
 * newest first by time, then by id, across shards and nodes (list-order.ts merges the pages).
 */
import type Database from "better-sqlite3";
import { StatementCache } from "./statement-cache.js";
import { AUDIT_ACTIONS, type AuditAction, type AuditEntry, type AuditRecord } from "../core/audit.js";
import type { Actor } from "../core/records.js";
import { DAY_MS } from "../core/time-zone.js";

/** An entry as the shard's history feed hands it over: with the log index it was applied at. */
export interface AuditRow extends AuditEntry {
  index: number;
}

export interface AuditQuery {
  tenant: string;
  jobId?: string | undefined;
  action?: AuditAction | undefined;
  /** Change time in [fromMs, toMs). */
  fromMs?: number | undefined;
  toMs?: number | undefined;
  /** Only what comes after this (the last entry of the previous page) in list order. */
  before?: { at: number; id: string } | undefined;
  limit: number;
}

/** Strings as small integers, shared with the execution tables (HistoryDb owns the table). */
export interface NameTable {
  idOf(s: string): number;
  find(s: string): number | undefined;
  nameOf(n: number): string;
}

type RawAudit = [i: number, at: number, tenant: number, action: number, job: number | null, xid: string | null, role: number | null, actor: number | null, outcome: number | null, detail: string | null];

export function auditId(shard: number, index: number): string {
  return `${String(shard).padStart(4, "0")}-${String(index).padStart(12, "0")}`;
}

export class AuditTables {
  private days: number[] = [];
  private readonly statements: StatementCache;

  constructor(
    private readonly db: Database.Database,
    private readonly names: NameTable,
  ) {
    this.statements = new StatementCache(db);
    for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'a[0-9]*'").all() as Array<{ name: string }>) {
      this.days.push(Number(name.slice(1)));
    }
    this.days.sort((a, b) => a - b);
  }

  get dayTables(): readonly number[] {
    return this.days;
  }

  /** Inside the caller's transaction. */
  insert(row: AuditRow): void {
    const day = Math.floor(row.at / DAY_MS);
    this.table(day);
    this.statements.get(`INSERT INTO a${day} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
      row.index,
      row.at,
      this.names.idOf(row.tenant),
      AUDIT_ACTIONS.indexOf(row.action),
      row.jobId === null ? null : this.names.idOf(row.jobId),
      row.executionId,
      row.by === null ? null : this.names.idOf(row.by.role),
      row.by?.name === undefined ? null : this.names.idOf(row.by.name),
      row.outcome === "ok" ? null : this.names.idOf(row.outcome),
      Object.keys(row.details).length === 0 ? null : JSON.stringify(row.details),
    );
  }

  /** Entries newest first (time, then id descending), at most `limit`. */
  list(shard: number, q: AuditQuery): AuditRecord[] {
    const tenantN = this.names.find(q.tenant);
    const jobN = q.jobId === undefined ? null : this.names.find(q.jobId);
    if (tenantN === undefined || jobN === undefined) return [];
    const top = Math.min(q.before?.at ?? Infinity, (q.toMs ?? Infinity) - 1);
    const bottom = q.fromMs ?? -Infinity;
    // At the cursor's millisecond, this shard's entries come after the cursor if their ids are
    // smaller: all of them for a smaller shard, those of smaller index for the cursor's own.
    const cursorShard = q.before === undefined ? null : Number(q.before.id.slice(0, 4));
    const indexBelow = q.before === undefined ? Infinity : shard < cursorShard! ? Infinity : shard > cursorShard! ? 0 : Number(q.before.id.slice(5));
    const out: AuditRecord[] = [];
    for (let d = this.days.length - 1; d >= 0 && out.length < q.limit; d--) {
      const day = this.days[d]!;
      if ((day + 1) * DAY_MS <= bottom) break;
      if (day * DAY_MS > top) continue;
      const where = ["tenant = ?", "at >= ?", "at <= ?", "(at < ? OR i < ?)"];
      const cursorAt = q.before?.at ?? Number.MAX_SAFE_INTEGER;
      const params: number[] = [tenantN, Math.max(bottom, day * DAY_MS), Math.min(top, (day + 1) * DAY_MS - 1), cursorAt, Math.min(indexBelow, Number.MAX_SAFE_INTEGER)];
      if (jobN !== null) where.push("job = ?"), params.push(jobN);
      if (q.action !== undefined) where.push("action = ?"), params.push(AUDIT_ACTIONS.indexOf(q.action));
      // i and at grow together in a shard: index order is time order.
      const rows = this.statements.get(`SELECT * FROM a${day} WHERE ${where.join(" AND ")} ORDER BY i DESC LIMIT ?`).all(...params, q.limit - out.length) as RawAudit[];
      for (const row of rows) out.push(this.decode(shard, row));
    }
    return out;
  }

  /** The entries of log entries (fromIndex, toIndex], in index order, as they were appended. */
  between(fromIndex: number, toIndex: number): AuditRow[] {
    const out: AuditRow[] = [];
    for (const day of this.days) {
      for (const row of this.statements.get(`SELECT * FROM a${day} WHERE i > ? AND i <= ? ORDER BY i`).all(fromIndex, toIndex) as RawAudit[]) {
        const { id: _id, ...entry } = this.decode(0, row);
        out.push({ ...entry, index: row[0] });
      }
    }
    return out;
  }

  /** Drop every day table before `cutoffDay`; returns the days dropped. */
  dropBefore(cutoffDay: number): number[] {
    const dropped = this.days.filter((d) => d < cutoffDay);
    for (const day of dropped) {
      this.db.exec(`DROP TABLE a${day}`);
      this.statements.forgetTable(`a${day}`);
    }
    this.days = this.days.filter((d) => d >= cutoffDay);
    return dropped;
  }

  count(): number {
    let n = 0;
    for (const day of this.days) n += (this.db.prepare(`SELECT count(*) AS n FROM a${day}`).get() as { n: number }).n;
    return n;
  }

  private decode(shard: number, [i, at, tenant, action, job, xid, role, actor, outcome, detail]: RawAudit): AuditRecord {
    let by: Actor | null = null;
    if (role !== null) by = actor === null ? { role: this.names.nameOf(role) } : { role: this.names.nameOf(role), name: this.names.nameOf(actor) };
    return {
      id: auditId(shard, i),
      at,
      tenant: this.names.nameOf(tenant),
      action: AUDIT_ACTIONS[action]!,
      jobId: job === null ? null : this.names.nameOf(job),
      executionId: xid,
      by,
      outcome: outcome === null ? "ok" : this.names.nameOf(outcome),
      details: detail === null ? {} : (JSON.parse(detail) as Record<string, unknown>),
    };
  }

  private table(day: number): void {
    if (this.days.includes(day)) return;
    const a = `a${day}`;
    this.db.exec(`CREATE TABLE ${a} (i INTEGER PRIMARY KEY, at INTEGER NOT NULL, tenant INTEGER NOT NULL, action INTEGER NOT NULL, job INTEGER,
        xid TEXT, role INTEGER, actor INTEGER, outcome INTEGER, detail TEXT);
      CREATE INDEX ${a}_job ON ${a} (job) WHERE job IS NOT NULL;
      CREATE INDEX ${a}_at ON ${a} (at);`);
    this.days.push(day);
    this.days.sort((a, b) => a - b);
  }
}
