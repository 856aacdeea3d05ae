/**
 * The history checker: reads a run's events (history.ts) and judges what "What the system
 * promises" (docs/architecture.md) lets it claim. Every invariant is its own function, so a test can
 * call one at a time; `check` runs them all and `summary` prints the verdict for a person.
 *
 * Each violation carries an excerpt: the few events that show it. A `final-read` in an excerpt is
 * cut down to the jobs and executions the violation is about (an empty list there shows absence).
 *
 * Time is the host's monotonic clock, shared by every recorder, so intervals built from `t`
 * alone are exact. Lease deadlines and scheduled times were converted from a node's wall clock by
 * each recorder (`wallToMono`), so comparisons that use them allow `clockToleranceMs`.
 *
 * What each invariant claims, and what it deliberately does not, is written above its function.
 */
import type {
  AbortedEvent,
  AssignedEvent,
  ClientOp,
  CompleteEvent,
  FinalReadEvent,
  HistoryEvent,
  InvokeEvent,
  LeaseExtendedEvent,
  LinkEvent,
  NemesisEvent,
  ReportAnsweredEvent,
  ReportSentEvent,
  SinkWriteEvent,
} from "./history.js";
import { LIVENESS_PING_MS, LIVENESS_PINGS } from "./history.js";

// ---------------------------------------------------------------------------------------------
// verdict shapes

export type InvariantName =
  | "acknowledged-writes"
  | "no-duplicate-instances"
  | "fires-continue"
  | "no-early-fire"
  | "single-lease"
  | "ordering-key"
  | "single-terminal"
  | "nothing-stranded"
  | "worker-liveness";

/** `unknown`: nothing was violated, but some claim could not be decided from this history. */
export type Validity = boolean | "unknown";

export interface Violation {
  message: string;
  /** The smallest set of events that shows the violation, in time order. */
  excerpt: HistoryEvent[];
}

export interface InvariantResult {
  name: InvariantName;
  valid: Validity;
  /** What was checked, excused and left undecided; `violations` is the full count even when the list is capped. */
  stats: Record<string, number>;
  violations: Violation[];
  /** Why something was undecided or skipped. */
  notes: string[];
}

export interface Verdict {
  valid: Validity;
  results: InvariantResult[];
}

export interface CheckOptions {
  /** Slack for comparisons against node-issued times converted to monotonic (lease deadlines). Default 50. */
  clockToleranceMs?: number;
  /** Two fires of one job whose scheduled times differ by at most this are the same instant (absorbs each recorder's wall-to-monotonic offset error). Default 5. */
  sameFireToleranceMs?: number;
  /** When set, `fires-continue` is checked: each job active at the end is assigned a fire within this long after the later of the last fault's end and the job's last put/resume. */
  fireBoundMs?: number;
  /** When set, `nothing-stranded` is checked: an unfinished execution at the final read made progress within this long before it. */
  strandBoundMs?: number;
  /** Violations kept per invariant (all are counted). Default 20. */
  maxViolations?: number;
}

const TERMINAL = new Set(["succeeded", "failed", "canceled", "skipped"]);

// ---------------------------------------------------------------------------------------------
// the index every invariant reads

export type Outcome = "ok" | "fail" | "info";

/** A client operation: its invoke and its completion (none recorded counts as `info`). */
export interface Op {
  invoke: InvokeEvent;
  call: ClientOp;
  complete: CompleteEvent | undefined;
  outcome: Outcome;
  /** When it was certainly over: the completion's `t`, or Infinity when the outcome is unknown and none was recorded. */
  endT: number;
}

/** Everything recorded under one (execution, fence): one claim of the execution. */
export interface Attempt {
  executionId: string;
  fence: number;
  assigned: AssignedEvent[];
  extended: LeaseExtendedEvent[];
  aborted: AbortedEvent[];
  sent: ReportSentEvent[];
  answered: ReportAnsweredEvent[];
  sinkWrites: SinkWriteEvent[];
}

export interface HistoryIndex {
  /** All events by time (ties keep input order). */
  events: HistoryEvent[];
  ops: Op[];
  /** The last final-read, when there is one. */
  finalRead: FinalReadEvent | undefined;
  /** executionId → fence → attempt. */
  attempts: Map<string, Map<number, Attempt>>;
  nemesis: NemesisEvent[];
  /** The last event's `t`. */
  endT: number;
}

/** Builds the index once; every invariant function accepts either events or an index. */
export function indexHistory(input: HistoryEvent[] | HistoryIndex): HistoryIndex {
  if (!Array.isArray(input)) return input;
  const events = input.map((e, i) => [e, i] as const).sort((a, b) => a[0].t - b[0].t || a[1] - b[1]).map(([e]) => e);
  const invokes = new Map<string, InvokeEvent>();
  const completes = new Map<string, CompleteEvent>();
  const attempts = new Map<string, Map<number, Attempt>>();
  const nemesis: NemesisEvent[] = [];
  let finalRead: FinalReadEvent | undefined;
  const attemptOf = (executionId: string, fence: number): Attempt => {
    let byFence = attempts.get(executionId);
    if (!byFence) attempts.set(executionId, (byFence = new Map()));
    let a = byFence.get(fence);
    if (!a) {
      a = { executionId, fence, assigned: [], extended: [], aborted: [], sent: [], answered: [], sinkWrites: [] };
      byFence.set(fence, a);
    }
    return a;
  };
  for (const e of events) {
    switch (e.type) {
      case "invoke":
        invokes.set(`${e.process}/${e.opId}`, e);
        break;
      case "ok":
      case "fail":
      case "info": {
        const key = `${e.process}/${e.opId}`;
        if (!completes.has(key)) completes.set(key, e);
        break;
      }
      case "assigned":
        attemptOf(e.executionId, e.fence).assigned.push(e);
        break;
      case "lease-extended":
        attemptOf(e.executionId, e.fence).extended.push(e);
        break;
      case "aborted":
        attemptOf(e.executionId, e.fence).aborted.push(e);
        break;
      case "report-sent":
        attemptOf(e.executionId, e.fence).sent.push(e);
        break;
      case "report-answered":
        attemptOf(e.executionId, e.fence).answered.push(e);
        break;
      case "sink-write":
        attemptOf(e.executionId, e.fence).sinkWrites.push(e);
        break;
      case "nemesis":
        nemesis.push(e);
        break;
      case "final-read":
        finalRead = e;
        break;
    }
  }
  const ops: Op[] = [];
  for (const [key, invoke] of invokes) {
    const complete = completes.get(key);
    const outcome: Outcome = complete?.type ?? "info";
    ops.push({ invoke, call: invoke.call, complete, outcome, endT: complete ? complete.t : Infinity });
  }
  ops.sort((a, b) => a.invoke.t - b.invoke.t);
  return { events, ops, finalRead, attempts, nemesis, endT: events.length > 0 ? events[events.length - 1]!.t : 0 };
}

// ---------------------------------------------------------------------------------------------
// small helpers

/** Collects violations for one invariant, counting past the cap. */
class Findings {
  readonly violations: Violation[] = [];
  readonly stats: Record<string, number> = { violations: 0, unknown: 0 };
  readonly notes: string[] = [];

  constructor(
    readonly name: InvariantName,
    private readonly max: number,
  ) {}

  add(message: string, excerpt: Array<HistoryEvent | undefined>): void {
    this.stats.violations!++;
    if (this.violations.length >= this.max) return;
    const kept = [...new Set(excerpt.filter((e): e is HistoryEvent => e !== undefined))];
    kept.sort((a, b) => a.t - b.t);
    this.violations.push({ message, excerpt: kept });
  }

  count(stat: string, n = 1): void {
    this.stats[stat] = (this.stats[stat] ?? 0) + n;
  }

  unknown(note?: string): void {
    this.stats.unknown!++;
    if (note !== undefined && this.notes.length < this.max && !this.notes.includes(note)) this.notes.push(note);
  }

  result(): InvariantResult {
    const valid: Validity = this.stats.violations! > 0 ? false : this.stats.unknown! > 0 ? "unknown" : true;
    return { name: this.name, valid, stats: this.stats, violations: this.violations, notes: this.notes };
  }
}

function findings(name: InvariantName, opts: CheckOptions): Findings {
  return new Findings(name, opts.maxViolations ?? 20);
}

/** The final read cut down to the named jobs and executions (empty lists show they are absent). */
export function finalReadExcerpt(fr: FinalReadEvent, jobIds: string[], executionIds: string[]): FinalReadEvent {
  return {
    ...fr,
    jobs: fr.jobs.filter((j) => jobIds.includes(j.id)),
    executions: fr.executions.filter((x) => executionIds.includes(x.id)),
  };
}

function opEvents(op: Op): HistoryEvent[] {
  return op.complete ? [op.invoke, op.complete] : [op.invoke];
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function liveJob(fr: FinalReadEvent, jobId: string): FinalReadEvent["jobs"][number] | undefined {
  return fr.jobs.find((j) => j.id === jobId && j.state !== "deleted");
}

/** The id an ok enqueue returned, when it did. */
function enqueuedId(op: Op): string | undefined {
  return op.call.op === "enqueue" && op.outcome === "ok" ? str(op.complete?.result?.executionId) : undefined;
}

/** The job an execution belongs to: recorded, or read from a fire's id `{jobId}:{scheduledAtMs}` against known job ids. */
function jobOfExecution(id: string, recorded: string | undefined, knownJobs: Set<string>): string | undefined {
  if (recorded !== undefined) return recorded;
  const colon = id.lastIndexOf(":");
  if (colon <= 0 || !/^\d+$/.test(id.slice(colon + 1))) return undefined;
  const jobId = id.slice(0, colon);
  return knownJobs.has(jobId) ? jobId : undefined;
}

/** True when `id` is a fire's id, `{jobId}:{scheduledAtMs}`. */
function fireIdOf(id: string, jobId: string): boolean {
  return id.startsWith(`${jobId}:`) && /^\d+$/.test(id.slice(jobId.length + 1));
}

function jobIdsOf(h: HistoryIndex): Set<string> {
  const ids = new Set<string>();
  for (const op of h.ops) if ("jobId" in op.call) ids.add(op.call.jobId);
  for (const j of h.finalRead?.jobs ?? []) ids.add(j.id);
  return ids;
}

// ---------------------------------------------------------------------------------------------
// leases and runs

export interface LeaseInterval {
  attempt: Attempt;
  start: number;
  end: number;
  /** The events that fix the start and the end. */
  startEvent: AssignedEvent;
  endEvent: HistoryEvent;
  /** True when the end is a node-issued deadline (compare with tolerance); false when it is a recorded `t`. */
  endIsDeadline: boolean;
}

/**
 * The lease of one claim as its worker saw it: from the assignment's receipt to the earliest of
 * its latest known deadline (assignment or acked heartbeat), its first `aborted`, and its first
 * final report sent (once sent, the worker does nothing more under that lease). Claims with no
 * recorded assignment have no known start and are left out.
 */
export function leaseInterval(a: Attempt): LeaseInterval | undefined {
  const startEvent = a.assigned[0];
  if (!startEvent) return undefined;
  let deadlineEvent: AssignedEvent | LeaseExtendedEvent = startEvent;
  for (const x of a.extended) if (x.leaseDeadlineMono > deadlineEvent.leaseDeadlineMono) deadlineEvent = x;
  let end = deadlineEvent.leaseDeadlineMono;
  let endEvent: HistoryEvent = deadlineEvent;
  let endIsDeadline = true;
  const cut = (e: HistoryEvent | undefined): void => {
    if (e && e.t < end) {
      end = Math.max(e.t, startEvent.t);
      endEvent = e;
      endIsDeadline = false;
    }
  };
  cut(a.aborted[0]);
  cut(a.sent[0]);
  return { attempt: a, start: startEvent.t, end, startEvent, endEvent, endIsDeadline };
}

function sortedAttempts(byFence: Map<number, Attempt>): Attempt[] {
  return [...byFence.values()].sort((a, b) => a.fence - b.fence);
}

// ---------------------------------------------------------------------------------------------
// 1. acknowledged-writes

/**
 * Claims (from the final read of the healed cluster):
 * - an ok put-job's job exists, at a version ≥ the one it returned, unless some delete-job of it
 *   that may have taken effect after it (ok or info, and not over before the put was invoked)
 *   excuses it;
 * - an ok delete-job's job is absent, unless a put-job that may have come after it (ok or info,
 *   not over before the delete was invoked) re-created it;
 * - an ok enqueue's execution exists;
 * - an ok cancel's execution exists and is `canceled` — a cancel of an execution that had
 *   already ended is refused (`conflict`), and terminal states never change — or, if the ok
 *   answer reports another terminal state, is in that state;
 * - a cancel refused with `conflict` found the execution ended: it is terminal at the end;
 * - no job, and no fire of a job, exists that no put-job ever tried to create.
 * Cannot claim: anything about failed or info'd creates (they may or may not exist); ad-hoc
 * executions nobody was told about (an info'd enqueue may have created one under an opaque id);
 * executions removed by retention (runs are far shorter than it).
 */
export function checkAcknowledgedWrites(input: HistoryEvent[] | HistoryIndex, opts: CheckOptions = {}): InvariantResult {
  const h = indexHistory(input);
  const f = findings("acknowledged-writes", opts);
  const fr = h.finalRead;
  const opsByJob = new Map<string, Op[]>();
  for (const op of h.ops) {
    if (!("jobId" in op.call)) continue;
    const list = opsByJob.get(op.call.jobId) ?? [];
    list.push(op);
    opsByJob.set(op.call.jobId, list);
  }
  const mayFollow = (later: Op, earlier: Op): boolean => later.outcome !== "fail" && later.endT > earlier.invoke.t;

  for (const op of h.ops) {
    if (op.outcome !== "ok" && !(op.call.op === "cancel" && op.outcome === "fail")) continue;
    const call = op.call;
    if (call.op === "put-job") {
      f.count("okPuts");
      const deletes = (opsByJob.get(call.jobId) ?? []).filter((o) => o.call.op === "delete-job" && mayFollow(o, op));
      if (deletes.length > 0) {
        f.count("excusedByDelete");
        continue;
      }
      if (!fr) {
        f.unknown("no final-read: acknowledged writes not checked");
        continue;
      }
      const job = liveJob(fr, call.jobId);
      const version = op.complete?.result?.version;
      if (!job) f.add(`ok put-job '${call.jobId}' is missing from the final read`, [...opEvents(op), finalReadExcerpt(fr, [call.jobId], [])]);
      else if (typeof version === "number" && job.version < version)
        f.add(`ok put-job '${call.jobId}' returned version ${version}, final read has ${job.version}`, [...opEvents(op), finalReadExcerpt(fr, [call.jobId], [])]);
    } else if (call.op === "delete-job") {
      f.count("okDeletes");
      const puts = (opsByJob.get(call.jobId) ?? []).filter((o) => o.call.op === "put-job" && mayFollow(o, op));
      if (puts.length > 0) {
        f.count("excusedByPut");
        continue;
      }
      if (!fr) {
        f.unknown("no final-read: acknowledged writes not checked");
        continue;
      }
      if (liveJob(fr, call.jobId)) f.add(`ok delete-job '${call.jobId}' but the job is in the final read`, [...opEvents(op), finalReadExcerpt(fr, [call.jobId], [])]);
    } else if (call.op === "enqueue") {
      f.count("okEnqueues");
      const id = enqueuedId(op);
      if (id === undefined) {
        f.unknown("an ok enqueue carried no executionId");
        continue;
      }
      if (!fr) {
        f.unknown("no final-read: acknowledged writes not checked");
        continue;
      }
      if (!fr.executions.some((x) => x.id === id)) f.add(`ok enqueue's execution '${id}' is missing from the final read`, [...opEvents(op), finalReadExcerpt(fr, [], [id])]);
    } else if (call.op === "cancel") {
      if (op.outcome === "fail" && op.complete?.error?.code !== "conflict") continue;
      f.count(op.outcome === "ok" ? "okCancels" : "conflictCancels");
      if (!fr) {
        f.unknown("no final-read: acknowledged writes not checked");
        continue;
      }
      const x = fr.executions.find((e) => e.id === call.executionId);
      const excerpt = [...opEvents(op), finalReadExcerpt(fr, [], [call.executionId])];
      if (op.outcome === "fail") {
        if (!x || !TERMINAL.has(x.state)) f.add(`cancel of '${call.executionId}' was refused as already ended, but the final read has it ${x ? x.state : "missing"}`, excerpt);
        continue;
      }
      const answered = str(op.complete?.result?.state);
      const expected = answered !== undefined && TERMINAL.has(answered) ? answered : "canceled";
      if (!x) f.add(`ok cancel of '${call.executionId}' but the execution is missing from the final read`, excerpt);
      else if (x.state !== expected) f.add(`ok cancel of '${call.executionId}' but the final read has it ${x.state}, not ${expected}`, excerpt);
    }
  }

  if (fr) {
    const tried = new Set<string>();
    for (const op of h.ops) if (op.call.op === "put-job") tried.add(op.call.jobId);
    for (const job of fr.jobs) {
      if (job.state !== "deleted" && !tried.has(job.id)) f.add(`job '${job.id}' is in the final read but no put-job ever tried to create it`, [finalReadExcerpt(fr, [job.id], [])]);
    }
    for (const x of fr.executions) {
      if (x.jobId !== undefined && !tried.has(x.jobId)) f.add(`execution '${x.id}' fired for job '${x.jobId}', which no put-job ever tried to create`, [finalReadExcerpt(fr, [], [x.id])]);
    }
  }
  return f.result();
}

// ---------------------------------------------------------------------------------------------
// 2. no-duplicate-instances

/**
 * Claims:
 * - no execution id is listed twice in the final read;
 * - one idempotency key maps to one execution id, across the ids ok enqueues returned and the
 *   final read (the key's window, 24 h, is far longer than a run). Its scope is the key together
 *   with the enqueue's ordering key (docs/api.md: the ordering key decides the shard, and the key
 *   deduplicates there);
 * - no job has two executions with the same scheduled time, across the final read and every
 *   assignment any worker received — so a duplicate that ran and was lost from the state is
 *   still caught. Times within `sameFireToleranceMs` (default 5: the recorders' wall-to-monotonic
 *   conversions differ a little) are the same, except that two ids of the fire form
 *   `{jobId}:{ms}` with different ms are different instants by the node's own word (a job
 *   deleted and put again may fire twice within a few ms).
 * Cannot claim: that the scheduled times fit anchor + k·interval (the history has no anchors);
 * duplicate side effects (at-least-once by design; `single-lease` counts them).
 */
/** What one idempotency key deduplicates among: the same key and ordering key (or none). */
function dedupScope(key: string, orderingKey: string | undefined): string {
  return orderingKey === undefined ? key : `${key}' with ordering key '${orderingKey}`;
}

export function checkNoDuplicateInstances(input: HistoryEvent[] | HistoryIndex, opts: CheckOptions = {}): InvariantResult {
  const h = indexHistory(input);
  const f = findings("no-duplicate-instances", opts);
  const fr = h.finalRead;
  const sameFire = opts.sameFireToleranceMs ?? 5;
  if (!fr) f.unknown("no final-read: duplicate ids in the state not checked");

  if (fr) {
    const seen = new Map<string, number>();
    for (const x of fr.executions) seen.set(x.id, (seen.get(x.id) ?? 0) + 1);
    f.count("executionsRead", fr.executions.length);
    for (const [id, n] of seen) {
      if (n > 1) f.add(`execution '${id}' is listed ${n} times in the final read`, [finalReadExcerpt(fr, [], [id])]);
    }
  }

  // idempotency keys: every id seen for one key
  const byKey = new Map<string, Map<string, HistoryEvent[]>>();
  const note = (key: string, id: string, evidence: HistoryEvent[]): void => {
    let ids = byKey.get(key);
    if (!ids) byKey.set(key, (ids = new Map()));
    if (!ids.has(id)) ids.set(id, evidence);
  };
  for (const op of h.ops) {
    const id = enqueuedId(op);
    if (op.call.op === "enqueue" && op.call.idempotencyKey !== undefined && id !== undefined) note(dedupScope(op.call.idempotencyKey, op.call.orderingKey), id, opEvents(op));
  }
  for (const x of fr?.executions ?? []) if (x.idempotencyKey !== undefined) note(dedupScope(x.idempotencyKey, x.orderingKey), x.id, [finalReadExcerpt(fr!, [], [x.id])]);
  f.count("idempotencyKeys", byKey.size);
  for (const [key, ids] of byKey) {
    if (ids.size > 1) f.add(`idempotency key '${key}' maps to ${ids.size} executions: ${[...ids.keys()].join(", ")}`, [...ids.values()].flat());
  }

  // one execution per (job, scheduled time)
  const knownJobs = jobIdsOf(h);
  const fires = new Map<string, Map<string, { at: number; evidence: HistoryEvent }>>();
  const fire = (jobId: string | undefined, id: string, at: number, evidence: HistoryEvent): void => {
    if (jobId === undefined) return;
    let ids = fires.get(jobId);
    if (!ids) fires.set(jobId, (ids = new Map()));
    if (!ids.has(id)) ids.set(id, { at, evidence });
  };
  for (const x of fr?.executions ?? []) fire(x.jobId, x.id, x.scheduledAtMono, finalReadExcerpt(fr!, [], [x.id]));
  for (const byFence of h.attempts.values()) {
    for (const a of byFence.values()) {
      for (const e of a.assigned) fire(jobOfExecution(e.executionId, e.jobId, knownJobs), e.executionId, e.scheduledAtMono, e);
    }
  }
  for (const [jobId, ids] of fires) {
    const list = [...ids].map(([id, v]) => ({ id, ...v, fire: fireIdOf(id, jobId) })).sort((a, b) => a.at - b.at);
    f.count("fires", list.length);
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length && list[j]!.at - list[i]!.at <= sameFire; j++) {
        const [p, q] = [list[i]!, list[j]!];
        // Two fire ids `{jobId}:{ms}` name their instants exactly: different ms, different fires.
        if (p.fire && q.fire) continue;
        f.add(`job '${jobId}' has two executions for one scheduled time: '${p.id}' and '${q.id}'`, [p.evidence, q.evidence]);
      }
    }
  }
  return f.result();
}

// ---------------------------------------------------------------------------------------------
// 2b. fires-continue

/**
 * Claims (only when `fireBoundMs` is given): every job whose final-read state is `active` has an
 * assignment of one of its fires received within `fireBoundMs` after W, the later of the last
 * fault's end and the completion of the job's last put-job/resume-job (ok or info).
 * Cannot claim: anything while a fault never stopped (undecided); anything when the history ends
 * before W + fireBoundMs without such a fire (undecided); that fires are on time (it counts
 * receipt by a worker, so the bound must cover the interval, dispatch and a free worker).
 */
export function checkFiresContinue(input: HistoryEvent[] | HistoryIndex, opts: CheckOptions = {}): InvariantResult {
  const h = indexHistory(input);
  const f = findings("fires-continue", opts);
  const bound = opts.fireBoundMs;
  const fr = h.finalRead;
  if (bound === undefined) {
    f.unknown("fireBoundMs not given");
    return f.result();
  }
  if (!fr) {
    f.unknown("no final-read: which jobs are active is unknown");
    return f.result();
  }
  const open = new Map<string, number>();
  let lastFault: NemesisEvent | undefined;
  for (const e of h.nemesis) {
    const key = `${e.fault}|${[...e.targets].sort().join(",")}`;
    open.set(key, (open.get(key) ?? 0) + (e.action === "start" ? 1 : -1));
    lastFault = e;
  }
  if ([...open.values()].some((n) => n > 0)) {
    f.unknown("a fault was never stopped");
    return f.result();
  }
  const knownJobs = jobIdsOf(h);
  const assignedByJob = new Map<string, AssignedEvent[]>();
  for (const byFence of h.attempts.values()) {
    for (const a of byFence.values()) {
      for (const e of a.assigned) {
        const jobId = jobOfExecution(e.executionId, e.jobId, knownJobs);
        if (jobId === undefined) continue;
        const list = assignedByJob.get(jobId) ?? [];
        list.push(e);
        assignedByJob.set(jobId, list);
      }
    }
  }
  for (const job of fr.jobs) {
    if (job.state !== "active") continue;
    f.count("activeJobs");
    let from: HistoryEvent | undefined = lastFault;
    for (const op of h.ops) {
      if ((op.call.op === "put-job" || op.call.op === "resume-job") && op.call.jobId === job.id && op.outcome !== "fail") {
        const done = op.complete ?? op.invoke;
        if (!from || done.t > from.t) from = done;
      }
    }
    if (!from) {
      f.unknown(`job '${job.id}' was never put and no fault ran: no start for its window`);
      continue;
    }
    const w = from.t;
    const hit = (assignedByJob.get(job.id) ?? []).find((e) => e.t > w && e.t <= w + bound);
    if (hit) continue;
    if (h.endT < w + bound) {
      f.unknown(`the history ends less than fireBoundMs after job '${job.id}' could last start firing`);
      continue;
    }
    f.add(`active job '${job.id}' had no fire assigned within ${bound} ms after t=${w}`, [from, finalReadExcerpt(fr, [job.id], [])]);
  }
  return f.result();
}

// ---------------------------------------------------------------------------------------------
// 2c. no-early-fire

/**
 * Claims: no worker receives a job's fire (an id `{jobId}:{scheduledAtMs}`) before its scheduled
 * time, within `clockToleranceMs` (the converted scheduled time's error, and the few ms a leader
 * commits a fire ahead). A node whose clock is wrong must not make its shards fire early: shard
 * time is the replicas' median clock, so this holds under any minority's skew.
 * Cannot claim: anything about manual triggers, replays and ad-hoc work (they run when asked).
 */
export function checkNoEarlyFire(input: HistoryEvent[] | HistoryIndex, opts: CheckOptions = {}): InvariantResult {
  const h = indexHistory(input);
  const f = findings("no-early-fire", opts);
  const tolerance = opts.clockToleranceMs ?? 50;
  const knownJobs = jobIdsOf(h);
  for (const byFence of h.attempts.values()) {
    for (const a of byFence.values()) {
      for (const e of a.assigned) {
        const jobId = jobOfExecution(e.executionId, e.jobId, knownJobs);
        if (jobId === undefined || !fireIdOf(e.executionId, jobId)) continue;
        f.count("fires");
        const earlyBy = e.scheduledAtMono - e.t;
        if (earlyBy > tolerance) f.add(`fire '${e.executionId}' was received ${Math.round(earlyBy)} ms before its scheduled time`, [e]);
      }
    }
  }
  return f.result();
}

// ---------------------------------------------------------------------------------------------
// 3. single-lease

/**
 * Claims, per execution:
 * - one fence is given to one worker;
 * - for fences f1 < f2, f1's lease (see `leaseInterval`) ends no later than f2's assignment is
 *   received, within `clockToleranceMs` when f1's end is a converted deadline (exact otherwise);
 * - exact: no final report for f1 is answered `ack` when it was sent after a worker had received
 *   an assignment with a higher fence (that claim had committed, so f1 was stale).
 * Cannot claim: anything about claims whose assignment no worker recorded; when the node itself
 * revoked a lease whose worker never heard (the worker's view is what is recorded); whether a
 * heartbeat acked late was stale (its send time is not recorded).
 * Counted, not violations: `duplicateExecutions`, executions whose side effect was written under
 * more than one fence (at-least-once by design).
 */
export function checkSingleLease(input: HistoryEvent[] | HistoryIndex, opts: CheckOptions = {}): InvariantResult {
  const h = indexHistory(input);
  const f = findings("single-lease", opts);
  const tolerance = opts.clockToleranceMs ?? 50;
  for (const [executionId, byFence] of h.attempts) {
    const attempts = sortedAttempts(byFence);
    f.count("executions");
    f.count("claims", attempts.length);
    if (attempts.filter((a) => a.sinkWrites.length > 0).length > 1) f.count("duplicateExecutions");

    for (const a of attempts) {
      const other = a.assigned.find((e) => e.worker !== a.assigned[0]!.worker);
      if (other) f.add(`fence ${a.fence} of '${executionId}' was assigned to two workers`, [a.assigned[0], other]);
    }

    // overlap: each claim against the latest-ending lease of any lower fence
    let latest: LeaseInterval | undefined;
    for (const a of attempts) {
      const lease = leaseInterval(a);
      if (!lease) continue;
      if (latest) {
        const slack = latest.endIsDeadline ? tolerance : 0;
        if (latest.end > lease.start + slack) {
          f.add(
            `leases of '${executionId}' overlap: fence ${latest.attempt.fence} held until t=${latest.end}, fence ${a.fence} was assigned at t=${lease.start}`,
            [latest.startEvent, latest.endEvent, lease.startEvent],
          );
        }
      }
      if (!latest || lease.end > latest.end) latest = lease;
    }

    // stale ack: a report sent after a higher fence's assignment was received must be stale
    let firstHigher: AssignedEvent | undefined;
    for (const a of [...attempts].reverse()) {
      for (const answer of a.answered) {
        if (answer.answer !== "ack" || !firstHigher) continue;
        const sent = a.sent.find((s) => s.kind === answer.kind && s.worker === answer.worker && s.t <= answer.t);
        if (sent && sent.t > firstHigher.t)
          f.add(`a report for stale fence ${a.fence} of '${executionId}' was acked: sent after fence ${firstHigher.fence} was assigned`, [firstHigher, sent, answer]);
      }
      for (const e of a.assigned) if (!firstHigher || e.t < firstHigher.t) firstHigher = e;
    }
  }
  return f.result();
}

// ---------------------------------------------------------------------------------------------
// 4. ordering-key

/**
 * Claims, per ordering key:
 * - no attempts of two different executions overlap in time. An attempt runs over its lease
 *   interval (`leaseInterval`); a failed attempt with a retry keeps the key, so the next
 *   execution cannot start until the last attempt ended. The next may start as soon as a cancel
 *   commits, so an execution's last attempt, when it has no acked report and the execution may
 *   have ended canceled (final read), is cut at the invoke of a cancel of it (or a delete-job of
 *   its job), or at its own start when that cancel was invoked before it (an assignment still on
 *   its way when the cancel committed: it held nothing, and is not a start in the line either);
 * - executions from two ok enqueues where the first's ok came before the second was invoked
 *   (so the first committed first) start in that order: the second does not start before the
 *   first has started, and if the first never started, the final read has it canceled or skipped;
 *   and no assignment of the second, even one that held nothing, is received while a run of the
 *   first still held the line (the second is claimed only once the first has left it).
 * Cannot claim: the order of enqueues that overlapped in time; of fires of jobs (their commit
 *   order is not recorded); of enqueues answered with an existing execution (`created: false`).
 *   An execution the node ends on its own while it runs (overlap policy `replace`) keeps its
 *   worker's lease interval here, so its successor could look like an overlap.
 */
export function checkOrderingKey(input: HistoryEvent[] | HistoryIndex, opts: CheckOptions = {}): InvariantResult {
  const h = indexHistory(input);
  const f = findings("ordering-key", opts);
  const tolerance = opts.clockToleranceMs ?? 50;
  const fr = h.finalRead;
  const knownJobs = jobIdsOf(h);

  const keyOf = new Map<string, string>();
  const jobOf = new Map<string, string>();
  for (const op of h.ops) {
    const id = enqueuedId(op);
    // An enqueue answered with an existing execution (same idempotency key) says nothing of its key.
    if (op.call.op === "enqueue" && op.call.orderingKey !== undefined && id !== undefined && op.complete?.result?.created !== false)
      keyOf.set(id, op.call.orderingKey);
  }
  for (const x of fr?.executions ?? []) {
    if (x.orderingKey !== undefined) keyOf.set(x.id, x.orderingKey);
    if (x.jobId !== undefined) jobOf.set(x.id, x.jobId);
  }
  for (const byFence of h.attempts.values()) {
    for (const a of byFence.values()) {
      for (const e of a.assigned) {
        if (e.orderingKey !== undefined && !keyOf.has(e.executionId)) keyOf.set(e.executionId, e.orderingKey);
        const jobId = jobOfExecution(e.executionId, e.jobId, knownJobs);
        if (jobId !== undefined) jobOf.set(e.executionId, jobId);
      }
    }
  }

  // client ops that may have ended an execution: cancels of it, deletes of its job
  const enders = new Map<string, Op[]>();
  for (const op of h.ops) {
    const k = op.call.op === "cancel" ? `x/${op.call.executionId}` : op.call.op === "delete-job" ? `j/${op.call.jobId}` : undefined;
    if (k === undefined || op.outcome === "fail") continue;
    const list = enders.get(k) ?? [];
    list.push(op);
    enders.set(k, list);
  }
  const finalState = new Map((fr?.executions ?? []).map((x) => [x.id, x.state]));

  interface Run {
    executionId: string;
    lease: LeaseInterval;
    end: number;
    endEvent: HistoryEvent;
    slack: number;
  }
  const runsByKey = new Map<string, Run[]>();
  const firstStart = new Map<string, AssignedEvent>();
  // Per execution: the latest its line could have been let go (its runs' ends), and its earliest
  // assignment that held nothing (no run, but proof that a claim of it had committed by then).
  const heldUntil = new Map<string, Run>();
  const firstEmptyClaim = new Map<string, AssignedEvent>();
  const noteEmptyClaim = (executionId: string, e: AssignedEvent): void => {
    const seen = firstEmptyClaim.get(executionId);
    if (!seen || e.t < seen.t) firstEmptyClaim.set(executionId, e);
  };
  for (const [executionId, byFence] of h.attempts) {
    const key = keyOf.get(executionId);
    if (key === undefined) continue;
    const jobId = jobOf.get(executionId);
    const attempts = sortedAttempts(byFence);
    // A cancel can only have cut the last attempt, one without an acked report, of an execution
    // that may have ended canceled.
    const mayBeCanceled = !fr || finalState.get(executionId) === "canceled";
    const cancels = mayBeCanceled ? [...(enders.get(`x/${executionId}`) ?? []), ...(jobId !== undefined ? (enders.get(`j/${jobId}`) ?? []) : [])] : [];
    for (const a of attempts) {
      const lease = leaseInterval(a);
      // An assignment received after its lease had already run out (its worker was paused, say)
      // held nothing: the node had taken the execution back. Whatever the worker did is a late
      // side effect (single-lease counts those), not a run in the line — unless the node acked
      // its final report (it had not applied the expiry yet): then it did run, from its receipt.
      if (!lease || lease.end <= lease.start) {
        if (lease && a.answered.some((x) => x.answer === "ack")) {
          const first = firstStart.get(executionId);
          if (!first || lease.start < first.t) firstStart.set(executionId, lease.startEvent);
        } else if (a.assigned[0]) noteEmptyClaim(executionId, a.assigned[0]);
        continue;
      }
      const run: Run = { executionId, lease, end: lease.end, endEvent: lease.endEvent, slack: lease.endIsDeadline ? tolerance : 0 };
      if (a === attempts[attempts.length - 1] && !a.answered.some((x) => x.answer === "ack")) {
        // A cancel that ended the execution committed after this claim (a canceled execution is
        // never claimed), so it cut the run at its commit — which may come before the worker even
        // received the assignment, when that was slow on its way: then the run held nothing.
        for (const c of cancels) {
          const at = Math.max(c.invoke.t, lease.start);
          if (at < run.end) Object.assign(run, { end: at, endEvent: c.invoke, slack: 0 });
        }
      }
      if (run.end <= lease.start) {
        noteEmptyClaim(executionId, lease.startEvent);
        continue;
      }
      const held = heldUntil.get(executionId);
      if (!held || run.end - run.slack > held.end - held.slack) heldUntil.set(executionId, run);
      const first = firstStart.get(executionId);
      if (!first || lease.start < first.t) firstStart.set(executionId, lease.startEvent);
      const list = runsByKey.get(key) ?? [];
      list.push(run);
      runsByKey.set(key, list);
    }
  }

  // mutual exclusion: sweep by start, keeping the two latest-ending runs of distinct executions
  for (const [key, runs] of runsByKey) {
    f.count("keys");
    f.count("runs", runs.length);
    runs.sort((a, b) => a.lease.start - b.lease.start);
    let top: Run[] = [];
    for (const r of runs) {
      const rival = top.find((x) => x.executionId !== r.executionId);
      if (rival && rival.end > r.lease.start + rival.slack) {
        f.add(
          `ordering key '${key}': '${rival.executionId}' ran until t=${rival.end} but '${r.executionId}' started at t=${r.lease.start}`,
          [rival.lease.startEvent, rival.endEvent, r.lease.startEvent],
        );
      }
      top = [r, ...top].sort((a, b) => b.end - a.end);
      top = top.filter((x, i) => i === 0 || x.executionId !== top[0]!.executionId).slice(0, 2);
    }
  }

  // enqueue order
  const enqueues = new Map<string, Array<{ op: Op; id: string }>>();
  for (const op of h.ops) {
    const id = enqueuedId(op);
    if (op.call.op !== "enqueue" || op.call.orderingKey === undefined || id === undefined) continue;
    if (op.complete?.result?.created === false) continue;
    const list = enqueues.get(op.call.orderingKey) ?? [];
    list.push({ op, id });
    enqueues.set(op.call.orderingKey, list);
  }
  for (const [key, list] of enqueues) {
    // Sorted by completion, each enqueue's predecessors are a prefix: the ones done before it was
    // invoked. Per prefix: the one that started last, the first that never ran yet is still live.
    const byDone = [...list].sort((a, b) => a.op.endT - b.op.endT);
    const latestStart: Array<{ at: AssignedEvent; item: (typeof list)[number] } | undefined> = [];
    const latestHeld: Array<{ run: Run; item: (typeof list)[number] } | undefined> = [];
    const firstLive: Array<{ item: (typeof list)[number]; state: string } | undefined> = [];
    const undecided: boolean[] = [];
    byDone.forEach((item, i) => {
      const prev = latestStart[i - 1];
      const at = firstStart.get(item.id);
      latestStart.push(at && (!prev || at.t > prev.at.t) ? { at, item } : prev);
      const held = heldUntil.get(item.id);
      const prevHeld = latestHeld[i - 1];
      latestHeld.push(held && (!prevHeld || held.end - held.slack > prevHeld.run.end - prevHeld.run.slack) ? { run: held, item } : prevHeld);
      const x = at ? undefined : fr?.executions.find((e) => e.id === item.id);
      const live = x && !TERMINAL.has(x.state) ? { item, state: x.state } : undefined;
      firstLive.push(firstLive[i - 1] ?? live);
      undecided.push((undecided[i - 1] ?? false) || (!at && (!x || x.state === "succeeded" || x.state === "failed")));
    });
    for (const later of list) {
      const start = firstStart.get(later.id);
      const emptyClaim = firstEmptyClaim.get(later.id);
      if (!start && !emptyClaim) continue;
      let n = 0; // how many enqueues were done before `later` was invoked
      for (let lo = 0, hi = byDone.length; lo < hi; ) {
        const mid = (lo + hi) >> 1;
        if (byDone[mid]!.op.endT < later.op.invoke.t) lo = n = mid + 1;
        else hi = mid;
      }
      if (n === 0) continue;
      // A claim of `later` commits only once every execution ahead of it has left the line, so even
      // an assignment that held nothing (canceled on its way, or received after its lease) must come
      // after the runs of those. (A run of `later` is checked by the mutual exclusion sweep above.)
      const held = latestHeld[n - 1];
      if (emptyClaim && held && emptyClaim.t < held.run.end - held.run.slack)
        f.add(
          `ordering key '${key}': '${later.id}' was assigned at t=${emptyClaim.t}, while '${held.item.id}', enqueued before it, still held the line until t=${held.run.end}`,
          [...opEvents(held.item.op), ...opEvents(later.op), held.run.lease.startEvent, held.run.endEvent, emptyClaim],
        );
      if (!start) continue;
      f.count("orderedPairs", n);
      const last = latestStart[n - 1];
      if (last && last.at.t > start.t)
        f.add(`ordering key '${key}': '${later.id}' was enqueued after '${last.item.id}' but started first`, [
          ...opEvents(last.item.op),
          ...opEvents(later.op),
          start,
          last.at,
        ]);
      const live = firstLive[n - 1];
      if (live)
        f.add(`ordering key '${key}': '${later.id}' started while '${live.item.id}', enqueued before it, never ran and is ${live.state}`, [
          ...opEvents(live.item.op),
          ...opEvents(later.op),
          start,
          finalReadExcerpt(fr!, [], [live.item.id]),
        ]);
      if (undecided[n - 1]) f.unknown("an earlier execution in an ordering line has no recorded run and no decisive end state");
    }
  }
  return f.result();
}

// ---------------------------------------------------------------------------------------------
// 5. single-terminal

/**
 * Claims, per execution:
 * - at most one final report is acked, counting `succeeded` acks and `failed` acks under the
 *   highest fence assigned (a failed ack under a lower fence was a retry, not an end);
 * - after a `succeeded` ack under fence f, no assignment with a higher fence is ever received;
 * - an execution with a `succeeded` ack is `succeeded` in the final read.
 * Cannot claim: the final state after a `failed` ack (the node may have scheduled a retry not yet
 * run at the read); ends the workers never heard of (lease expiry into a dead letter).
 */
export function checkSingleTerminal(input: HistoryEvent[] | HistoryIndex, opts: CheckOptions = {}): InvariantResult {
  const h = indexHistory(input);
  const f = findings("single-terminal", opts);
  const fr = h.finalRead;
  for (const [executionId, byFence] of h.attempts) {
    const attempts = sortedAttempts(byFence);
    const maxAssigned = Math.max(-Infinity, ...attempts.filter((a) => a.assigned.length > 0).map((a) => a.fence));
    const finals: ReportAnsweredEvent[] = [];
    for (const a of attempts) {
      const ack = a.answered.find((x) => x.answer === "ack" && (x.kind === "succeeded" || a.fence >= maxAssigned));
      if (ack) finals.push(ack);
    }
    if (finals.length === 0) continue;
    f.count("endedExecutions");
    if (finals.length > 1) f.add(`'${executionId}' has ${finals.length} acked final reports`, finals.slice(0, 2));
    const success = finals.find((x) => x.kind === "succeeded");
    if (!success) continue;
    f.count("succeeded");
    const later = attempts.find((a) => a.fence > success.fence && a.assigned.length > 0);
    if (later) f.add(`'${executionId}' was assigned again (fence ${later.fence}) after fence ${success.fence} succeeded`, [success, later.assigned[0]]);
    if (!fr) {
      f.unknown("no final-read: end states not checked");
      continue;
    }
    const x = fr.executions.find((e) => e.id === executionId);
    if (x?.state !== "succeeded") f.add(`'${executionId}' succeeded (acked) but the final read has it ${x ? x.state : "missing"}`, [success, finalReadExcerpt(fr, [], [executionId])]);
  }
  return f.result();
}

// ---------------------------------------------------------------------------------------------
// 7. nothing-stranded

/**
 * Claims (only when `strandBoundMs` is given): every execution the final read shows unfinished
 * (not succeeded, failed, canceled or skipped) made progress within `strandBoundMs` before the
 * final read — it was scheduled, assigned to a worker, answered or taken away then, or, with an
 * ordering key, some execution of its key was (the line moved). An assignment lost on its way (a
 * dead worker link, a node that died between claim and frame) must be offered again once its
 * lease runs out, so nothing sits claimed or ready for long while the cluster and workers are up.
 * Cannot claim: anything when the last fault ended less than `strandBoundMs` before the final
 * read (undecided); executions the final read does not list; retries whose backoff is longer
 * than the bound (the workload's are at most 2 s).
 */
export function checkNothingStranded(input: HistoryEvent[] | HistoryIndex, opts: CheckOptions = {}): InvariantResult {
  const h = indexHistory(input);
  const f = findings("nothing-stranded", opts);
  const bound = opts.strandBoundMs;
  const fr = h.finalRead;
  if (bound === undefined || !fr) {
    f.unknown(bound === undefined ? "strandBoundMs not given" : "no final-read: which executions are unfinished is unknown");
    return f.result();
  }
  const lastFault = h.nemesis.at(-1);
  if (lastFault && lastFault.t > fr.t - bound) {
    f.unknown("the last fault ended less than strandBoundMs before the final read");
    return f.result();
  }
  // Progress per execution: the last assignment, answer or abort any worker recorded.
  const progress = new Map<string, { t: number; event: HistoryEvent }>();
  for (const [id, byFence] of h.attempts) {
    for (const a of byFence.values()) {
      for (const e of [...a.assigned, ...a.answered, ...a.aborted]) {
        if ((progress.get(id)?.t ?? -Infinity) < e.t) progress.set(id, { t: e.t, event: e });
      }
    }
  }
  const byKey = new Map<string, number>();
  for (const x of fr.executions) {
    if (x.orderingKey === undefined) continue;
    const t = Math.max(x.scheduledAtMono, progress.get(x.id)?.t ?? -Infinity);
    byKey.set(x.orderingKey, Math.max(byKey.get(x.orderingKey) ?? -Infinity, t));
  }
  for (const x of fr.executions) {
    if (TERMINAL.has(x.state)) continue;
    f.count("unfinished");
    const own = progress.get(x.id);
    const last = Math.max(x.scheduledAtMono, own?.t ?? -Infinity, x.orderingKey !== undefined ? byKey.get(x.orderingKey)! : -Infinity, lastFault?.t ?? -Infinity);
    if (last >= fr.t - bound) continue;
    f.add(`'${x.id}' is ${x.state} at the final read, with no progress in the ${Math.round(fr.t - last)} ms before it`, [own?.event, lastFault, finalReadExcerpt(fr, [], [x.id])]);
  }
  return f.result();
}

// ---------------------------------------------------------------------------------------------
// 8. worker-liveness

/** How long after a link went silent the harness worker must have dropped it (its rule, plus CPU slack). */
export const LINK_DETECTION_BOUND_MS = LIVENESS_PING_MS * (LIVENESS_PINGS + 1) + 1000;

/**
 * Claims: during each `worker-link` fault in `half-open` mode (targets: worker, "half-open", the
 * nodes whose links were hit), every hit link the worker had open when the fault began was dropped
 * by the worker ("nothing heard") within LINK_DETECTION_BOUND_MS — the heartbeat rule, not the
 * heal, found the dead connection.
 * Cannot claim: faults shorter than the bound (counted as `tooShort`); links opened during the
 * fault (their handshake cannot finish; the worker's handshake timeout drops them unrecorded).
 */
export function checkWorkerLiveness(input: HistoryEvent[] | HistoryIndex, opts: CheckOptions = {}): InvariantResult {
  const h = indexHistory(input);
  const f = findings("worker-liveness", opts);
  const links = h.events.filter((e): e is LinkEvent => e.type === "link");
  for (const start of h.nemesis) {
    if (start.action !== "start" || start.fault !== "worker-link" || start.targets[1] !== "half-open") continue;
    const [worker, , ...nodes] = start.targets;
    const stop = h.nemesis.find((e) => e.action === "stop" && e.t >= start.t && e.fault === start.fault && e.targets.join() === start.targets.join());
    const deadline = start.t + LINK_DETECTION_BOUND_MS;
    if (!stop || stop.t < deadline) {
      f.count("tooShort");
      continue;
    }
    for (const node of nodes) {
      const mine = links.filter((e) => e.worker === worker && e.node === node);
      const before = mine.filter((e) => e.t <= start.t).at(-1);
      if (before?.action !== "open") continue;
      f.count("deadLinks");
      const dropped = mine.find((e) => e.t > start.t && e.t <= deadline && e.action === "dropped");
      if (dropped) continue;
      const next = mine.find((e) => e.t > start.t);
      f.add(`worker ${worker}'s half-open link to ${node} was not dropped within ${LINK_DETECTION_BOUND_MS} ms`, [start, before, next, stop]);
    }
  }
  return f.result();
}

// ---------------------------------------------------------------------------------------------
// all of it

/** Runs every invariant (`fires-continue` only when `opts.fireBoundMs` is set, `nothing-stranded` when `opts.strandBoundMs` is). */
export function check(events: HistoryEvent[], opts: CheckOptions = {}): Verdict {
  const h = indexHistory(events);
  const results = [
    checkAcknowledgedWrites(h, opts),
    checkNoDuplicateInstances(h, opts),
    ...(opts.fireBoundMs !== undefined ? [checkFiresContinue(h, opts)] : []),
    checkNoEarlyFire(h, opts),
    checkSingleLease(h, opts),
    checkOrderingKey(h, opts),
    checkSingleTerminal(h, opts),
    ...(opts.strandBoundMs !== undefined ? [checkNothingStranded(h, opts)] : []),
    checkWorkerLiveness(h, opts),
  ];
  const valid: Validity = results.some((r) => r.valid === false) ? false : results.some((r) => r.valid === "unknown") ? "unknown" : true;
  return { valid, results };
}

/** A short report for a person: one line per invariant, then the first violations with their excerpts. */
export function summary(verdict: Verdict, maxPerInvariant = 3): string {
  const word = (v: Validity): string => (v === true ? "valid" : v === false ? "INVALID" : "unknown");
  const lines = [`verdict: ${word(verdict.valid)}`];
  for (const r of verdict.results) {
    const stats = Object.entries(r.stats)
      .filter(([k, n]) => n > 0 || k === "violations")
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
    lines.push(`  ${r.valid === true ? "ok " : r.valid === false ? "BAD" : "?? "} ${r.name}: ${word(r.valid)} (${stats})`);
    for (const note of r.notes.slice(0, maxPerInvariant)) lines.push(`      note: ${note}`);
    for (const v of r.violations.slice(0, maxPerInvariant)) {
      lines.push(`      - ${v.message}`);
      for (const e of v.excerpt) lines.push(`          ${describe(e)}`);
    }
    if (r.stats.violations! > maxPerInvariant) lines.push(`      … and ${r.stats.violations! - maxPerInvariant} more`);
  }
  return lines.join("\n");
}

function describe(e: HistoryEvent): string {
  const at = `t=${Math.round(e.t * 1000) / 1000}`;
  switch (e.type) {
    case "invoke":
      return `${at} ${e.process} invoke #${e.opId} ${JSON.stringify(e.call)}`;
    case "ok":
    case "fail":
    case "info":
      return `${at} ${e.process} ${e.type} #${e.opId} ${JSON.stringify(e.result ?? e.error ?? {})}`;
    case "final-read":
      return `${at} final-read jobs=${JSON.stringify(e.jobs)} executions=${JSON.stringify(e.executions.map((x) => ({ id: x.id, state: x.state })))}`;
    case "nemesis":
      return `${at} nemesis ${e.action} ${e.fault} [${e.targets.join(",")}]`;
    default: {
      const { type, t: _t, ...rest } = e;
      return `${at} ${type} ${JSON.stringify(rest)}`;
    }
  }
}
