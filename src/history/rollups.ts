/**
 * Minute and hour rollups of a shard's finished executions, kept as history is written, so stats
 * over a year read thousands of rollup rows instead of billions of executions (stats.ts says what
 * a tally is). In the shard's history file, one table per UTC day and span — `rm{day}` (minutes),
 * `rh{day}` (hours) — keyed by (bucket start, tenant, queue, state, reason): a count and the
 * lateness and run-duration histograms.
 *
 * Rows arrive in finish order; their tallies collect in memory and are written when the history
 * transaction commits (HistoryDb.commit), merged into what the table holds, in the same transaction
 * as the rows and the watermark: a crash loses them together and the log's replay adds them again.
 * Retention drops rollup days with the execution days; minute tables go after MINUTE_ROLLUP_DAYS.
 */
import type Database from "better-sqlite3";
import { StatementCache } from "./statement-cache.js";
import { DAY_MS } from "../core/time-zone.js";
import type { NameTable } from "./audit-tables.js";
import { LogHistogram } from "./log-histogram.js";
import { groupOf, reasonKey, Tally, type StatsGroupBy, type StatsTallies, type TallyInput } from "./stats.js";

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
/** Minute rollups are kept this many days; older ranges are read from hour rollups. */
export const MINUTE_ROLLUP_DAYS = 14;

/** A stats question for rollups: a range cut into intervals, grouped by one dimension (not job). */
export interface RollupQuery {
  tenant: string;
  queue?: string | undefined;
  fromMs: number;
  toMs: number;
  intervalMs: number;
  /** Minute or hour rollups. */
  spanMs: number;
  by: Exclude<StatsGroupBy, "job"> | null;
}

type RawRollup = [t: number, queue: number, state: number, reason: number, n: number, late: string | null, run: string | null];

interface Pending {
  spanMs: number;
  t: number;
  tenant: number;
  queue: number;
  state: number;
  reason: number;
  tally: Tally;
}

export class Rollups {
  private readonly pending = new Map<string, Pending>();
  /** The minute's and the hour's entry the last row went to: most rows go to the same ones. */
  private readonly recent: Array<Pending | undefined> = [undefined, undefined];
  private readonly days = { m: [] as number[], h: [] as number[] };
  private readonly statements: StatementCache;

  constructor(
    private readonly db: Database.Database,
    private readonly names: NameTable,
  ) {
    this.statements = new StatementCache(db);
    for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name GLOB 'r[mh][0-9]*'").all() as Array<{ name: string }>) {
      this.days[name[1] as "m" | "h"].push(Number(name.slice(2)));
    }
    this.days.m.sort((a, b) => a - b);
    this.days.h.sort((a, b) => a - b);
  }

  /** The oldest day with minute rollups (a range before it is read from hour rollups). */
  get oldestMinuteDay(): number | null {
    return this.days.m[0] ?? null;
  }

  /** Count a finished execution (ids from the names table; reason −1 for none). */
  add(finishedAt: number, tenant: number, queue: number, reason: number, x: TallyInput): void {
    const lateness = x.lateness === null ? -1 : LogHistogram.bucketOf(x.lateness);
    const run = x.runMs === null ? -1 : LogHistogram.bucketOf(x.runMs);
    for (let i = 0; i < 2; i++) {
      const spanMs = i === 0 ? MINUTE_MS : HOUR_MS;
      const t = finishedAt - (finishedAt % spanMs);
      let p = this.recent[i];
      if (p === undefined || p.t !== t || p.tenant !== tenant || p.queue !== queue || p.state !== x.state || p.reason !== reason) {
        const key = `${spanMs} ${t} ${tenant} ${queue} ${x.state} ${reason}`;
        p = this.pending.get(key);
        if (!p) this.pending.set(key, (p = { spanMs, t, tenant, queue, state: x.state, reason, tally: new Tally() }));
        this.recent[i] = p;
      }
      p.tally.addBuckets(x.state, lateness, run);
    }
  }

  /** Write what collected since the last flush, inside the caller's transaction. */
  flush(): void {
    for (const p of this.pending.values()) {
      const kind = p.spanMs === MINUTE_MS ? "m" : "h";
      const day = Math.floor(p.t / DAY_MS);
      this.table(kind, day);
      const key = [p.t, p.tenant, p.queue, p.state, p.reason];
      const old = this.statements.get(`SELECT n, late, run FROM r${kind}${day} WHERE t = ? AND tenant = ? AND queue = ? AND state = ? AND reason = ?`).get(...key) as
        | [number, string | null, string | null]
        | undefined;
      const late = p.tally.lateness;
      const run = p.tally.run;
      if (old) {
        late.merge(LogHistogram.parse(old[1]));
        run.merge(LogHistogram.parse(old[2]));
      }
      this.statements.get(`INSERT OR REPLACE INTO r${kind}${day} VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(...key, p.tally.count + (old?.[0] ?? 0), late.encode(), run.encode());
    }
    this.pending.clear();
    this.recent.fill(undefined);
  }

  /** Add the rollups of [fromMs, toMs) to `into`. */
  query(q: RollupQuery, into: StatsTallies): void {
    const tenantN = this.names.find(q.tenant);
    const queueN = q.queue === undefined ? null : this.names.find(q.queue);
    if (tenantN === undefined || queueN === undefined) return;
    const kind = q.spanMs === MINUTE_MS ? "m" : "h";
    for (const day of this.days[kind]) {
      if ((day + 1) * DAY_MS <= q.fromMs || day * DAY_MS >= q.toMs) continue;
      const where = queueN === null ? "" : " AND queue = ?";
      const params = queueN === null ? [q.fromMs, q.toMs, tenantN] : [q.fromMs, q.toMs, tenantN, queueN];
      for (const [t, queue, state, reason, n, late, run] of this.statements.get(`SELECT t, queue, state, reason, n, late, run FROM r${kind}${day} WHERE t >= ? AND t < ? AND tenant = ?${where}`).all(...params) as RawRollup[]) {
        const tally = new Tally();
        tally.states[state] = n;
        tally.lateness = LogHistogram.parse(late);
        tally.run = LogHistogram.parse(run);
        const reasonName = reason < 0 ? null : this.names.nameOf(reason);
        const group = groupOf(q.by, { tenant: q.tenant, queue: this.names.nameOf(queue), jobId: null, state, reason: reasonName });
        into.add(q.fromMs + Math.floor((t - q.fromMs) / q.intervalMs) * q.intervalMs, group, reasonName === null ? null : reasonKey(state, reasonName), tally);
      }
    }
  }

  /** Executions the hour rollups count from the hour of `fromMs` to `toMs`: at least what a scan of the rows would read. */
  count(tenant: string, fromMs: number, toMs: number): number {
    const tenantN = this.names.find(tenant);
    if (tenantN === undefined) return 0;
    let n = 0;
    for (const day of this.days.h) {
      if ((day + 1) * DAY_MS <= fromMs || day * DAY_MS >= toMs) continue;
      n += (this.statements.get(`SELECT coalesce(sum(n), 0) FROM rh${day} WHERE t >= ? AND t < ? AND tenant = ?`).get(fromMs - (fromMs % HOUR_MS), toMs, tenantN) as [number])[0];
    }
    return n;
  }

  /** Drop rollup days before `cutoffDay`, and minute days before `minuteCutoffDay`. */
  dropBefore(cutoffDay: number, minuteCutoffDay: number): number[] {
    const dropped: number[] = [];
    for (const kind of ["m", "h"] as const) {
      const cutoff = kind === "m" ? Math.max(cutoffDay, minuteCutoffDay) : cutoffDay;
      for (const day of this.days[kind].filter((d) => d < cutoff)) {
        this.db.exec(`DROP TABLE r${kind}${day}`);
        this.statements.forgetTable(`r${kind}${day}`);
        if (day < cutoffDay) dropped.push(day);
      }
      this.days[kind] = this.days[kind].filter((d) => d >= cutoff);
    }
    return dropped;
  }

  private table(kind: "m" | "h", day: number): void {
    if (this.days[kind].includes(day)) return;
    this.db.exec(`CREATE TABLE r${kind}${day} (t INTEGER NOT NULL, tenant INTEGER NOT NULL, queue INTEGER NOT NULL, state INTEGER NOT NULL,
        reason INTEGER NOT NULL, n INTEGER NOT NULL, late TEXT, run TEXT, PRIMARY KEY (t, tenant, queue, state, reason)) WITHOUT ROWID`);
    this.days[kind].push(day);
    this.days[kind].sort((a, b) => a - b);
  }
}
