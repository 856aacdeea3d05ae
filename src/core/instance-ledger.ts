/**
 * Which of a job's instances (`{jobId}:{nominal ms}`) were already decided — created, skipped, or
 * found existing — so none is ever created twice, whatever memory forgot: a one-time job PUT again,
 * a PUT retried, a job deleted and made again, a backfill over any past range.
 *
 * Kept as spans of nominal times, each under the schedule that produced it: "every instant of this
 * schedule from `from` to `to` was decided". A job's own firing is contiguous, so it grows one span
 * (held on the Job itself while its schedule stands, see ShardState); a PUT or a delete closes that
 * span into this ledger, and a backfill adds its range. An instant is decided when a span of the
 * same schedule covers it, or a span of another schedule covers it and it is an instant of that
 * schedule too. Spans of the same schedule that overlap or follow each other are merged, so a job
 * holds a few spans, not one per fire. Spans whose end is older than the ledger's retention are
 * forgotten (ShardLimits.decidedRetentionMs, as long as history keeps executions by default).
 *
 * Deterministic, like all of src/core: replicas applying the same records hold the same ledger.
 */
import { TenantMap } from "./tenant-map.js";
import { nextFire } from "./trigger.js";
import type { Schedule } from "./types.js";

export interface DecidedSpan {
  from: number;
  to: number;
  schedule: Schedule;
}

/** One key per distinct schedule (interned specs share objects; equal schedules of two specs do not). */
const scheduleKeys = new WeakMap<Schedule, string>();
export function scheduleKey(s: Schedule): string {
  let key = scheduleKeys.get(s);
  if (key === undefined) {
    key = JSON.stringify(s);
    scheduleKeys.set(s, key);
  }
  return key;
}

/** `nominal` is one of the schedule's instants. */
function isInstant(schedule: Schedule, nominal: number): boolean {
  return nextFire(schedule, nominal - 1) === nominal;
}

export class InstanceLedger {
  private readonly spans = new TenantMap<DecidedSpan[]>();

  has(tenant: string, jobId: string): boolean {
    return this.spans.has(tenant, jobId);
  }

  /** Whether the instant `nominal` of `schedule` was decided by a span recorded here. */
  isDecided(tenant: string, jobId: string, schedule: Schedule, nominal: number): boolean {
    const spans = this.spans.get(tenant, jobId);
    if (spans === undefined) return false;
    const key = scheduleKey(schedule);
    for (const s of spans) {
      if (nominal < s.from || nominal > s.to) continue;
      if (scheduleKey(s.schedule) === key || isInstant(s.schedule, nominal)) return true;
    }
    return false;
  }

  /** Every instant of `schedule` in [from, to] is decided. */
  add(tenant: string, jobId: string, schedule: Schedule, from: number, to: number): void {
    if (to < from) throw new Error(`instance ledger: span ${from}..${to} of ${jobId} ends before it starts`);
    const spans = this.spans.get(tenant, jobId) ?? [];
    const key = scheduleKey(schedule);
    let merged: DecidedSpan = { from, to, schedule };
    const kept: DecidedSpan[] = [];
    for (const s of spans) {
      if (scheduleKey(s.schedule) === key && touches(s, merged)) merged = { from: Math.min(s.from, merged.from), to: Math.max(s.to, merged.to), schedule };
      else kept.push(s);
    }
    kept.push(merged);
    kept.sort((a, b) => a.from - b.from);
    this.spans.set(tenant, jobId, kept);
  }

  /** Forget spans that ended before `cutoffMs`. */
  forgetBefore(cutoffMs: number): void {
    for (const [tenant, jobId, spans] of [...this.spans.entries()]) {
      const kept = spans.filter((s) => s.to >= cutoffMs);
      if (kept.length === 0) this.spans.delete(tenant, jobId);
      else if (kept.length !== spans.length) this.spans.set(tenant, jobId, kept);
    }
  }

  toSnapshot(): Array<[tenant: string, jobId: string, spans: Array<[from: number, to: number, schedule: Schedule]>]> {
    return [...this.spans.entries()].map(([tenant, jobId, spans]) => [tenant, jobId, spans.map((s): [number, number, Schedule] => [s.from, s.to, s.schedule])]);
  }

  static fromSnapshot(rows: ReturnType<InstanceLedger["toSnapshot"]>): InstanceLedger {
    const ledger = new InstanceLedger();
    for (const [tenant, jobId, spans] of rows) ledger.spans.set(tenant, jobId, spans.map(([from, to, schedule]) => ({ from, to, schedule })));
    return ledger;
  }
}

/** Two spans of one schedule overlap, or one's next instant is where the other starts. */
function touches(a: DecidedSpan, b: DecidedSpan): boolean {
  if (a.from <= b.to && b.from <= a.to) return true;
  const [first, second] = a.to < b.from ? [a, b] : [b, a];
  return nextFire(first.schedule, first.to) === second.from;
}
