/**
 * A job as a shard holds it: the normalized definition plus where its schedule stands.
 * The object is also its own timing-wheel node (keyed by its next fire time, jitter included),
 * so a million jobs cost a million objects, not two million.
 */
import { jitterFor, nextFire } from "./trigger.js";
import type { WheelTimer } from "./timing-wheel.js";
import type { JobSpec } from "./types.js";

export type JobState = "active" | "paused" | "completed";

export class Job implements WheelTimer {
  dueAt = 0;
  wheelNext: WheelTimer | null = null;
  wheelPrev: WheelTimer | null = null;
  wheelSlot: unknown | null = null;

  state: JobState = "active";
  version = 1;
  /** Which creation of this id this is (ShardState numbers them): its executions carry it. */
  incarnation = 0;
  /** Nominal time of the next fire (before jitter); null when no fire is left. */
  nextFireAt: number | null = null;
  /** Fires that created an execution to run (skipped ones do not count toward maxRuns). */
  runs = 0;
  /** Executions of this job that hold a concurrency slot (ready, claimed, running). */
  activeCount = 0;
  /** Executions of this job held by workers (claimed, running): what the limit bounds at claim time. */
  leasedCount = 0;
  /** Result of the job's latest succeeded execution, handed to the next one's worker. */
  lastResult: unknown = undefined;
  /** Executions waiting for a slot (overlap `queue` or `buffer-one`), oldest first. */
  waiting: string[] | null = null;
  /**
   * The span of nominal times this job's own firing decided under its current spec (every instant
   * of the schedule in [decidedFrom, decidedTo]); null before its first fire. Closed into the
   * shard's InstanceLedger by a PUT or a delete (instance-ledger.ts). Two numbers here rather than
   * a ledger entry per job: a million jobs fire without a million more objects.
   */
  decidedFrom: number | null = null;
  decidedTo: number | null = null;

  constructor(
    readonly tenant: string,
    readonly id: string,
    public spec: JobSpec,
    readonly createdAt: number,
    public updatedAt: number,
  ) {}

  /** The execution id of the fire at nominal time `nominalMs` (the contract's `{jobId}:{scheduledAtMs}`). */
  fireId(nominalMs: number): string {
    return `${this.id}:${nominalMs}`;
  }

  /** When the fire at `nominalMs` is due, jitter included. */
  fireAt(nominalMs: number): number {
    const jitterMs = this.spec.schedule.jitterMs;
    return jitterMs === 0 ? nominalMs : nominalMs + jitterFor(this.fireId(nominalMs), jitterMs);
  }

  /**
   * The first fire for a definition put at `nowMs`. A one-time `at` in the past still counts
   * (misfire decides). An interval without `startAt` first fires one interval after the put, not
   * at once; with `startAt`, at `startAt` itself.
   */
  firstFire(nowMs: number): number | null {
    const schedule = this.spec.schedule;
    if (schedule.trigger.kind === "at") {
      const at = schedule.trigger.atMs;
      if (schedule.startAtMs !== null && at < schedule.startAtMs) return null;
      if (schedule.endAtMs !== null && at > schedule.endAtMs) return null;
      return at;
    }
    const immediate = schedule.trigger.kind !== "every" || schedule.startAtMs !== null;
    return nextFire(schedule, immediate ? nowMs - 1 : nowMs);
  }

  /** The fire after the one at `nominalMs` by the trigger and window alone (maxRuns is `runsExhausted`). */
  fireAfter(nominalMs: number): number | null {
    return nextFire(this.spec.schedule, nominalMs);
  }

  /** maxRuns is reached: no further fire, whatever the trigger says. */
  get runsExhausted(): boolean {
    return this.spec.maxRuns !== null && this.runs >= this.spec.maxRuns;
  }
}
