/**
 * Execution statistics (`GET /v1/stats`): what a finished execution adds to a tally, how tallies
 * travel between threads and nodes (plain JSON, histograms encoded) and merge, and how a merged
 * set renders as the API's answer. Pure: the rollup tables (rollups.ts) and the row scans store
 * and read tallies; this file defines them, so a rollup and a scan of the same rows agree.
 *
 * Lateness is how long after its scheduled time an execution was handed to a worker (its first
 * attempt's claim); run duration is its last attempt's start to its finish. Executions that never
 * reached a worker (skipped, canceled while waiting) add to counts, not to those two.
 */
import type { ExecutionFacts } from "../core/execution.js";
import { LogHistogram } from "./log-histogram.js";

export const FINISHED_STATES = ["succeeded", "failed", "canceled", "skipped"] as const;
export type StatsGroupBy = "queue" | "job" | "state" | "reason" | "tenant";
export const STATS_GROUP_BY: readonly StatsGroupBy[] = ["queue", "job", "state", "reason", "tenant"];

/** The part of a finished execution a tally needs. */
export interface TallyInput {
  state: number;
  /** ms, or null when it never reached a worker. */
  lateness: number | null;
  runMs: number | null;
}

export function tallyInputOf(f: ExecutionFacts): TallyInput {
  const first = f.attempts?.[0];
  return {
    state: FINISHED_STATES.indexOf(f.state as (typeof FINISHED_STATES)[number]),
    lateness: first === undefined ? null : first.claimedAt - f.scheduledAt,
    runMs: f.startedAt === null || f.finishedAt === null ? null : f.finishedAt - f.startedAt,
  };
}

/** Counts by state and the two histograms, for one group of executions. */
export class Tally {
  readonly states = [0, 0, 0, 0];
  lateness = new LogHistogram();
  run = new LogHistogram();

  get count(): number {
    return this.states[0]! + this.states[1]! + this.states[2]! + this.states[3]!;
  }

  add(x: TallyInput): void {
    this.addBuckets(x.state, x.lateness === null ? -1 : LogHistogram.bucketOf(x.lateness), x.runMs === null ? -1 : LogHistogram.bucketOf(x.runMs));
  }

  /** One execution, its lateness and run time as histogram buckets (−1: none). */
  addBuckets(state: number, latenessBucket: number, runBucket: number): void {
    this.states[state]!++;
    if (latenessBucket >= 0) this.lateness.addBucket(latenessBucket, 1);
    if (runBucket >= 0) this.run.addBucket(runBucket, 1);
  }

  merge(other: Tally): void {
    for (let i = 0; i < 4; i++) this.states[i]! += other.states[i]!;
    this.lateness.merge(other.lateness);
    this.run.merge(other.run);
  }

  toWire(): TallyWire {
    return { s: [...this.states], l: this.lateness.encode(), r: this.run.encode() };
  }

  static fromWire(w: TallyWire): Tally {
    const t = new Tally();
    w.s.forEach((n, i) => (t.states[i] = n));
    t.lateness = LogHistogram.parse(w.l);
    t.run = LogHistogram.parse(w.r);
    return t;
  }
}

export interface TallyWire {
  s: number[];
  l: string | null;
  r: string | null;
}

/**
 * Tallies of one query over some shards: the total, one per interval (keyed by its start), one
 * per group, and counts per (state, reason) for the states that have reasons. Mergeable.
 */
export class StatsTallies {
  readonly total = new Tally();
  readonly series = new Map<number, Tally>();
  readonly groups = new Map<string, Tally>();
  readonly reasons = new Map<string, number>();

  add(bucketStart: number, group: string | null, reasonKey: string | null, t: Tally): void {
    this.total.merge(t);
    at(this.series, bucketStart).merge(t);
    if (group !== null) at(this.groups, group).merge(t);
    if (reasonKey !== null) this.reasons.set(reasonKey, (this.reasons.get(reasonKey) ?? 0) + t.count);
  }

  merge(other: StatsTallies): void {
    this.total.merge(other.total);
    for (const [k, t] of other.series) at(this.series, k).merge(t);
    for (const [k, t] of other.groups) at(this.groups, k).merge(t);
    for (const [k, n] of other.reasons) this.reasons.set(k, (this.reasons.get(k) ?? 0) + n);
  }

  toWire(): StatsWire {
    return {
      total: this.total.toWire(),
      series: [...this.series].map(([k, t]) => [k, t.toWire()]),
      groups: [...this.groups].map(([k, t]) => [k, t.toWire()]),
      reasons: [...this.reasons],
    };
  }

  static fromWire(w: StatsWire): StatsTallies {
    const s = new StatsTallies();
    s.total.merge(Tally.fromWire(w.total));
    for (const [k, t] of w.series) s.series.set(k, Tally.fromWire(t));
    for (const [k, t] of w.groups) s.groups.set(k, Tally.fromWire(t));
    for (const [k, n] of w.reasons) s.reasons.set(k, n);
    return s;
  }
}

export interface StatsWire {
  total: TallyWire;
  series: Array<[number, TallyWire]>;
  groups: Array<[string, TallyWire]>;
  reasons: Array<[string, number]>;
}

/** The group an execution counts in, for `by`; null without grouping. */
export function groupOf(by: StatsGroupBy | null, e: { tenant: string; queue: string; jobId: string | null; state: number; reason: string | null }): string | null {
  switch (by) {
    case null:
      return null;
    case "queue":
      return e.queue;
    case "job":
      return e.jobId ?? "(ad hoc)";
    case "state":
      return FINISHED_STATES[e.state]!;
    case "reason":
      return e.reason ?? "(none)";
    case "tenant":
      return e.tenant;
  }
}

/** The key a (state, reason) pair is counted under in `reasons`. */
export function reasonKey(state: number, reason: string): string {
  return `${FINISHED_STATES[state]}/${reason}`;
}

function at<K>(map: Map<K, Tally>, key: K): Tally {
  let t = map.get(key);
  if (!t) map.set(key, (t = new Tally()));
  return t;
}

// -------------------------------------------------------------------------------------------------
// the API's answer

export interface Backlog {
  queue: string;
  ready: number;
  oldestReadyAt: number | null;
}

/** Backlogs of several shards or nodes as one per queue. */
export function mergeBacklogs(parts: Backlog[][]): Backlog[] {
  const byQueue = new Map<string, Backlog>();
  for (const b of parts.flat()) {
    const m = byQueue.get(b.queue);
    if (!m) byQueue.set(b.queue, { ...b });
    else {
      m.ready += b.ready;
      if (b.oldestReadyAt !== null && (m.oldestReadyAt === null || b.oldestReadyAt < m.oldestReadyAt)) m.oldestReadyAt = b.oldestReadyAt;
    }
  }
  return [...byQueue.values()].sort((a, b) => b.ready - a.ready || (a.queue < b.queue ? -1 : 1));
}

function summary(t: Tally): Record<string, unknown> {
  const pct = (h: LogHistogram) => ({ p50: h.quantile(0.5), p95: h.quantile(0.95), p99: h.quantile(0.99) });
  return {
    count: t.count,
    byState: Object.fromEntries(FINISHED_STATES.map((s, i) => [s, t.states[i]])),
    latenessMs: pct(t.lateness),
    runMs: pct(t.run),
  };
}

export interface StatsRender {
  fromMs: number;
  toMs: number;
  intervalMs: number;
  by: StatsGroupBy | null;
  nowMs: number;
  topReasons: number;
}

/** The answer of `GET /v1/stats` (docs/api.md, "Stats"). */
export function renderStats(t: StatsTallies, backlog: Backlog[], r: StatsRender): Record<string, unknown> {
  const iso = (ms: number) => new Date(ms).toISOString();
  const series = [];
  for (let start = r.fromMs; start < r.toMs; start += r.intervalMs) {
    const tally = t.series.get(start) ?? new Tally();
    series.push({ at: iso(start), count: tally.count, perSecond: round3(tally.count / (Math.min(r.intervalMs, r.toMs - start) / 1000)), byState: summary(tally).byState });
  }
  const groups = [...t.groups]
    .sort(([ka, a], [kb, b]) => b.count - a.count || (ka < kb ? -1 : 1))
    .map(([key, tally]) => ({ key, ...summary(tally) }));
  const reasons = [...t.reasons]
    .map(([k, count]) => ({ state: k.slice(0, k.indexOf("/")), reason: k.slice(k.indexOf("/") + 1), count }))
    .sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1))
    .slice(0, r.topReasons);
  return {
    from: iso(r.fromMs),
    to: iso(r.toMs),
    intervalMs: r.intervalMs,
    by: r.by,
    total: summary(t.total),
    series,
    ...(r.by !== null && { groups }),
    topReasons: reasons,
    backlog: backlog.map((b) => ({ queue: b.queue, ready: b.ready, oldestReadyAgeMs: b.oldestReadyAt === null ? null : Math.max(0, r.nowMs - b.oldestReadyAt) })),
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
