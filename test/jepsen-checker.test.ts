/**
 * The jepsen-style history checker (jepsen-style-tests/checker.ts): for each invariant, a small
 * hand-written history that passes and one that breaks it, reported with the right excerpt; then
 * a property: histories from a simple correct simulation pass everything, and one mutation of a
 * kind that breaks an invariant is always caught by that invariant.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  check,
  checkAcknowledgedWrites,
  checkFiresContinue,
  checkNoDuplicateInstances,
  checkNoEarlyFire,
  checkNothingStranded,
  checkWorkerLiveness,
  LINK_DETECTION_BOUND_MS,
  checkOrderingKey,
  checkSingleLease,
  checkSingleTerminal,
  finalReadExcerpt,
  summary,
  type InvariantName,
  type InvariantResult,
} from "../jepsen-style-tests/checker.js";
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
} from "../jepsen-style-tests/history.js";

// ---------------------------------------------------------------------------------------------
// builders for hand-written histories

let nextOpId = 0;

/** An invoke and its completion; `done` undefined leaves the op without one (an unknown outcome). */
function op(
  t0: number,
  call: ClientOp,
  done?: { t: number; type: CompleteEvent["type"]; result?: Record<string, unknown>; code?: string },
  process = "c0",
): [InvokeEvent, CompleteEvent] | [InvokeEvent] {
  const opId = nextOpId++;
  const invoke: InvokeEvent = { type: "invoke", process, opId, t: t0, call };
  if (!done) return [invoke];
  const complete: CompleteEvent = { type: done.type, process, opId, t: done.t };
  if (done.result) complete.result = done.result;
  if (done.code) complete.error = { code: done.code, message: done.code };
  return [invoke, complete];
}

function assigned(t: number, executionId: string, fence: number, more: Partial<AssignedEvent> = {}): AssignedEvent {
  return { type: "assigned", worker: "w0", executionId, attempt: fence, fence, node: "n1", scheduledAtMono: 0, leaseDeadlineMono: t + 1000, t, ...more };
}

function extended(t: number, executionId: string, fence: number, leaseDeadlineMono: number, worker = "w0"): LeaseExtendedEvent {
  return { type: "lease-extended", worker, executionId, fence, leaseDeadlineMono, t };
}

function sent(t: number, executionId: string, fence: number, kind: "succeeded" | "failed" = "succeeded", worker = "w0"): ReportSentEvent {
  return { type: "report-sent", worker, executionId, fence, kind, t };
}

function answered(t: number, executionId: string, fence: number, answer: "ack" | "stale", kind: "succeeded" | "failed" = "succeeded", worker = "w0"): ReportAnsweredEvent {
  return { type: "report-answered", worker, executionId, fence, kind, answer, t };
}

function aborted(t: number, executionId: string, fence: number, reason = "canceled", worker = "w0"): AbortedEvent {
  return { type: "aborted", worker, executionId, fence, reason, t };
}

function nemesis(t: number, action: "start" | "stop", fault = "kill", targets = ["n1"]): NemesisEvent {
  return { type: "nemesis", action, fault, targets, t };
}

type ReadExecution = FinalReadEvent["executions"][number];

function exec(id: string, state: string, more: Partial<ReadExecution> = {}): ReadExecution {
  return { id, queue: "q", state, attempt: 1, scheduledAtMono: 0, ...more };
}

function finalRead(t: number, jobs: FinalReadEvent["jobs"], executions: ReadExecution[]): FinalReadEvent {
  return { type: "final-read", t, jobs, executions };
}

/** A run of one attempt that succeeds: assigned, report sent, acked. */
function run(t: number, executionId: string, fence: number, durationMs: number, more: Partial<AssignedEvent> = {}): HistoryEvent[] {
  const worker = more.worker ?? "w0";
  return [
    assigned(t, executionId, fence, more),
    sent(t + durationMs, executionId, fence, "succeeded", worker),
    answered(t + durationMs + 2, executionId, fence, "ack", "succeeded", worker),
  ];
}

function expectValid(r: InvariantResult): void {
  expect(r.violations, JSON.stringify(r.violations, null, 1)).toEqual([]);
  expect(r.valid).toBe(true);
}

function expectOneViolation(r: InvariantResult, message: RegExp, excerpt: HistoryEvent[]): void {
  expect(r.valid).toBe(false);
  expect(r.violations).toHaveLength(1);
  expect(r.violations[0]!.message).toMatch(message);
  expect(r.violations[0]!.excerpt).toEqual(excerpt);
}

const PUT = (jobId: string): ClientOp => ({ op: "put-job", jobId, spec: { queue: "q", every: "1s" } });
const DEL = (jobId: string): ClientOp => ({ op: "delete-job", jobId });
const ENQ = (seq: number, more: { idempotencyKey?: string; orderingKey?: string } = {}): ClientOp => ({ op: "enqueue", queue: "q", seq, ...more });
const CANCEL = (executionId: string): ClientOp => ({ op: "cancel", executionId });

// ---------------------------------------------------------------------------------------------
// 1. acknowledged-writes

describe("acknowledged-writes", () => {
  it("passes when every ok write is in the final read, and excuses what a possible later delete removed", () => {
    const putA = op(0, PUT("a"), { t: 5, type: "ok", result: { version: 1 } });
    const putB = op(10, PUT("b"), { t: 15, type: "ok", result: { version: 1 } });
    const delB = op(12, DEL("b")); // no completion: unknown, and it may have landed after the put
    const putC = op(20, PUT("c"), { t: 25, type: "info" }); // info: may or may not exist
    const enq = op(30, ENQ(1), { t: 35, type: "ok", result: { executionId: "x1", created: true } });
    const enqFail = op(31, ENQ(2), { t: 36, type: "fail", code: "unavailable" });
    const cancel = op(40, CANCEL("x1"), { t: 45, type: "ok", result: { state: "canceled" } });
    const fr = finalRead(100, [{ id: "a", state: "active", version: 2 }], [exec("x1", "canceled")]);
    expectValid(checkAcknowledgedWrites([...putA, ...putB, ...delB, ...putC, ...enq, ...enqFail, ...cancel, fr]));
  });

  it("reports an ok put-job missing from the final read, with the put and the (cut-down) read", () => {
    const put = op(0, PUT("a"), { t: 5, type: "ok", result: { version: 1 } });
    const delBefore = op(-10, DEL("a"), { t: -5, type: "ok" }); // over before the put began: no excuse
    const fr = finalRead(100, [{ id: "z", state: "active", version: 1 }], []);
    const putZ = op(1, PUT("z"), { t: 2, type: "ok", result: { version: 1 } });
    const r = checkAcknowledgedWrites([...delBefore, ...put, ...putZ, fr]);
    expectOneViolation(r, /put-job 'a' is missing/, [...put, finalReadExcerpt(fr, ["a"], [])]);
    expect((r.violations[0]!.excerpt[2] as FinalReadEvent).jobs).toEqual([]);
  });

  it("reports an ok enqueue whose execution is gone", () => {
    const enq = op(0, ENQ(1), { t: 5, type: "ok", result: { executionId: "x1", created: true } });
    const fr = finalRead(100, [], [exec("x2", "ready")]);
    expectOneViolation(checkAcknowledgedWrites([...enq, fr]), /enqueue's execution 'x1' is missing/, [...enq, finalReadExcerpt(fr, [], ["x1"])]);
  });

  it("reports an ok cancel whose execution ended otherwise, and a job an ok delete should have removed", () => {
    const cancel = op(0, CANCEL("x1"), { t: 5, type: "ok", result: { state: "canceled" } });
    const fr = finalRead(100, [], [exec("x1", "succeeded")]);
    expectOneViolation(checkAcknowledgedWrites([...cancel, fr]), /ok cancel of 'x1'.*succeeded, not canceled/, [...cancel, finalReadExcerpt(fr, [], ["x1"])]);

    const put = op(0, PUT("a"), { t: 5, type: "ok", result: { version: 1 } });
    const del = op(10, DEL("a"), { t: 15, type: "ok" });
    const fr2 = finalRead(100, [{ id: "a", state: "active", version: 1 }], []);
    expectOneViolation(checkAcknowledgedWrites([...put, ...del, fr2]), /delete-job 'a'/, [...del, finalReadExcerpt(fr2, ["a"], [])]);
  });

  it("without a final read it cannot decide", () => {
    const put = op(0, PUT("a"), { t: 5, type: "ok", result: { version: 1 } });
    expect(checkAcknowledgedWrites(put).valid).toBe("unknown");
  });
});

// ---------------------------------------------------------------------------------------------
// 2. no-duplicate-instances (and fires-continue)

describe("no-duplicate-instances", () => {
  it("passes with distinct ids, one id per idempotency key and one execution per fire", () => {
    const e1 = op(0, ENQ(1, { idempotencyKey: "k" }), { t: 5, type: "ok", result: { executionId: "x1", created: true } });
    const e2 = op(10, ENQ(2, { idempotencyKey: "k" }), { t: 15, type: "ok", result: { executionId: "x1", created: false } });
    const put = op(0, PUT("j"), { t: 1, type: "ok", result: { version: 1 } });
    const fr = finalRead(100, [{ id: "j", state: "active", version: 1 }], [
      exec("x1", "ready", { idempotencyKey: "k" }),
      exec("j:1000", "succeeded", { jobId: "j", scheduledAtMono: 40 }),
      exec("j:2000", "ready", { jobId: "j", scheduledAtMono: 41 }), // distinct fire ids: distinct instants
    ]);
    const a = assigned(50, "j:1000", 1, { scheduledAtMono: 40.4, jobId: "j" });
    expectValid(checkNoDuplicateInstances([...e1, ...e2, ...put, a, fr]));
  });

  it("reports an execution id listed twice", () => {
    const fr = finalRead(100, [], [exec("x1", "ready"), exec("x1", "succeeded")]);
    expectOneViolation(checkNoDuplicateInstances([fr]), /'x1' is listed 2 times/, [finalReadExcerpt(fr, [], ["x1"])]);
  });

  it("one idempotency key under two ordering keys is two scopes (docs/api.md)", () => {
    const e1 = op(0, ENQ(1, { idempotencyKey: "k", orderingKey: "a" }), { t: 5, type: "ok", result: { executionId: "x1", created: true } });
    const e2 = op(10, ENQ(2, { idempotencyKey: "k", orderingKey: "b" }), { t: 15, type: "ok", result: { executionId: "x2", created: true } });
    // Without a final read the verdict is "unknown", but no violation is found.
    expect(checkNoDuplicateInstances([...e1, ...e2]).violations).toEqual([]);
  });

  it("reports one idempotency key returning two execution ids", () => {
    const e1 = op(0, ENQ(1, { idempotencyKey: "k" }), { t: 5, type: "ok", result: { executionId: "x1", created: true } });
    const e2 = op(10, ENQ(2, { idempotencyKey: "k" }), { t: 15, type: "ok", result: { executionId: "x2", created: true } });
    expectOneViolation(checkNoDuplicateInstances([...e1, ...e2, finalRead(100, [], [])]), /key 'k' maps to 2 executions/, [...e1, ...e2]);
  });

  it("reports a job fired twice for one scheduled time, even when one copy is only seen by a worker", () => {
    const put = op(0, PUT("j"), { t: 1, type: "ok", result: { version: 1 } });
    const fr = finalRead(100, [{ id: "j", state: "active", version: 1 }], [exec("j:1000", "succeeded", { jobId: "j", scheduledAtMono: 40 })]);
    const dup = assigned(60, "j:late-1", 2, { jobId: "j", scheduledAtMono: 40.3 });
    expectOneViolation(checkNoDuplicateInstances([...put, dup, fr]), /job 'j' has two executions for one scheduled time/, [dup, finalReadExcerpt(fr, [], ["j:1000"])]);
  });
});

describe("fires-continue", () => {
  const put = op(0, PUT("j"), { t: 5, type: "ok", result: { version: 1 } });
  const fault = [nemesis(100, "start"), nemesis(2000, "stop")];
  const fr = (t: number): FinalReadEvent => finalRead(t, [{ id: "j", state: "active", version: 1 }], []);

  it("passes when an active job is assigned a fire within the bound after the last fault", () => {
    const fire = assigned(2500, "j:99", 1, { jobId: "j" });
    expectValid(checkFiresContinue([...put, ...fault, fire, fr(9000)], { fireBoundMs: 1000 }));
  });

  it("reports an active job that never fires again after the fault, with the fault's end", () => {
    const before = assigned(50, "j:1", 1, { jobId: "j" });
    const f = fr(9000);
    expectOneViolation(checkFiresContinue([...put, before, ...fault, f], { fireBoundMs: 1000 }), /active job 'j' had no fire assigned within 1000 ms after t=2000/, [
      fault[1]!,
      finalReadExcerpt(f, ["j"], []),
    ]);
  });

  it("cannot decide when the history ends inside the bound, or a fault never stopped", () => {
    expect(checkFiresContinue([...put, ...fault, fr(2500)], { fireBoundMs: 1000 }).valid).toBe("unknown");
    expect(checkFiresContinue([...put, fault[0]!, fr(9000)], { fireBoundMs: 1000 }).valid).toBe("unknown");
  });
});

describe("no-early-fire", () => {
  const put = op(0, PUT("j"), { t: 5, type: "ok", result: { version: 1 } });

  it("passes for fires received at or after their scheduled time, and ignores manual triggers", () => {
    const onTime = assigned(1010, "j:1000", 1, { jobId: "j", scheduledAtMono: 1000 });
    const slightlyAhead = assigned(1990, "j:2000", 1, { jobId: "j", scheduledAtMono: 2000 }); // within the tolerance
    const manual = assigned(100, "j:m1", 1, { jobId: "j", scheduledAtMono: 5000 });
    expectValid(checkNoEarlyFire([...put, onTime, slightlyAhead, manual]));
  });

  it("reports a fire received before its scheduled time", () => {
    const early = assigned(1000, "j:9000", 1, { jobId: "j", scheduledAtMono: 9000 });
    expectOneViolation(checkNoEarlyFire([...put, early]), /fire 'j:9000' was received 8000 ms before its scheduled time/, [early]);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. single-lease

describe("single-lease", () => {
  it("passes when a reassignment comes after the old lease's deadline, and a late report from the old holder is stale", () => {
    const a1 = assigned(0, "x", 1, { leaseDeadlineMono: 1000 });
    const ext = extended(500, "x", 1, 1500);
    const a2 = assigned(2600, "x", 2, { worker: "w1", leaseDeadlineMono: 3600 });
    const lateSent = sent(2700, "x", 1);
    const lateAnswer = answered(2710, "x", 1, "stale");
    const done = [sent(2800, "x", 2, "succeeded", "w1"), answered(2810, "x", 2, "ack", "succeeded", "w1")];
    expectValid(checkSingleLease([a1, ext, a2, lateSent, lateAnswer, ...done]));
  });

  it("allows the deadline tolerance, and ends a lease at its abort or its final report", () => {
    const a1 = assigned(0, "x", 1, { leaseDeadlineMono: 1000 });
    const a2 = assigned(970, "x", 2, { worker: "w1" }); // 30 ms before the converted deadline: within 50
    expectValid(checkSingleLease([a1, a2]));
    const b1 = assigned(0, "y", 1, { leaseDeadlineMono: 5000 });
    const b1Abort = aborted(100, "y", 1, "lease-lost");
    const b2 = assigned(200, "y", 2, { worker: "w1" });
    const c1 = [assigned(0, "z", 1, { leaseDeadlineMono: 5000 }), sent(50, "z", 1, "failed"), answered(60, "z", 1, "ack", "failed")];
    const c2 = assigned(55, "z", 2, { worker: "w1" }); // the retry's claim may beat the failure's answer
    expectValid(checkSingleLease([b1, b1Abort, b2, ...c1, c2]));
  });

  it("reports overlapping leases, with the first lease's start and end and the second's start", () => {
    const a1 = assigned(0, "x", 1, { leaseDeadlineMono: 1000 });
    const ext = extended(800, "x", 1, 1800);
    const a2 = assigned(1200, "x", 2, { worker: "w1" });
    expectOneViolation(checkSingleLease([a1, ext, a2]), /leases of 'x' overlap: fence 1 held until t=1800, fence 2 was assigned at t=1200/, [a1, ext, a2]);
  });

  it("reports an ack for a report sent with a stale fence, exactly", () => {
    const a1 = assigned(0, "x", 1, { leaseDeadlineMono: 1000 });
    const a2 = assigned(2200, "x", 2, { worker: "w1" });
    const lateSent = sent(2201, "x", 1);
    const lateAck = answered(2210, "x", 1, "ack");
    expectOneViolation(checkSingleLease([a1, a2, lateSent, lateAck]), /stale fence 1 of 'x' was acked/, [a2, lateSent, lateAck]);
  });

  it("reports one fence handed to two workers", () => {
    const a = assigned(0, "x", 7);
    const b = assigned(10, "x", 7, { worker: "w1" });
    expectOneViolation(checkSingleLease([a, b]), /fence 7 of 'x' was assigned to two workers/, [a, b]);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. ordering-key

describe("ordering-key", () => {
  const enqA = op(0, ENQ(1, { orderingKey: "k" }), { t: 5, type: "ok", result: { executionId: "a", created: true } });
  const enqB = op(10, ENQ(2, { orderingKey: "k" }), { t: 15, type: "ok", result: { executionId: "b", created: true } });

  it("an assignment received after its lease ran out (a paused worker) is not a run", () => {
    // a's first claim reaches its (paused) worker only after its deadline; by then b is running.
    const events: HistoryEvent[] = [
      ...enqA,
      ...enqB,
      assigned(3_000, "a", 1, { worker: "w2", leaseDeadlineMono: 1_500 }),
      assigned(2_000, "a", 2),
      sent(2_100, "a", 2),
      answered(2_110, "a", 2, "ack"),
      assigned(2_200, "b", 3),
      sent(3_500, "b", 3),
      answered(3_510, "b", 3, "ack"),
    ];
    expectValid(checkOrderingKey(events.sort((x, y) => x.t - y.t)));
  });

  it("an assignment received after its deadline whose report the node still acked (expiry not applied yet) is a run", () => {
    // a's only claim reaches its paused worker late, but its success is acked: a ran, then b.
    const events: HistoryEvent[] = [
      ...enqA,
      ...enqB,
      assigned(3_000, "a", 1, { leaseDeadlineMono: 1_500 }),
      sent(3_100, "a", 1),
      answered(3_110, "a", 1, "ack"),
      assigned(3_200, "b", 2),
      sent(3_300, "b", 2),
      answered(3_310, "b", 2, "ack"),
      finalRead(5_000, [], [exec("a", "succeeded", { orderingKey: "k" }), exec("b", "succeeded", { orderingKey: "k" })]),
    ];
    expectValid(checkOrderingKey(events));
  });

  it("passes when one key's executions run one after another in enqueue order, across a retry and a cancel", () => {
    const a1 = [assigned(20, "a", 1, { orderingKey: "k" }), sent(60, "a", 1, "failed"), answered(62, "a", 1, "ack", "failed")];
    const a2 = run(61, "a", 2, 40, { orderingKey: "k", worker: "w1" });
    const enqC = op(20, ENQ(3, { orderingKey: "k" }), { t: 25, type: "ok", result: { executionId: "c", created: true } });
    const b = [assigned(110, "b", 3, { orderingKey: "k" })];
    const cancelB = op(150, CANCEL("b"), { t: 170, type: "ok", result: { state: "canceled" } });
    const bAbort = aborted(190, "b", 3); // the worker hears late; the next may already run
    const c = run(175, "c", 4, 10, { orderingKey: "k" });
    const fr = finalRead(500, [], [exec("a", "succeeded", { orderingKey: "k" }), exec("b", "canceled", { orderingKey: "k" }), exec("c", "succeeded", { orderingKey: "k" })]);
    expectValid(checkOrderingKey([...enqA, ...enqB, ...enqC, ...a1, ...a2, ...b, ...cancelB, bAbort, ...c, fr]));
  });

  it("an assignment still on its way when the cancel that ended it committed held nothing: the next may already run, and it is no start in the line", () => {
    // b is claimed, then canceled (the cancel is acked at 170); its worker receives the assignment
    // only at 190, after c started, and hears of the cancel at 195.
    const b = [assigned(190, "b", 2, { orderingKey: "k" }), aborted(195, "b", 2)];
    const cancelB = op(150, CANCEL("b"), { t: 170, type: "ok", result: { state: "canceled" } });
    const c = run(175, "c", 3, 50, { orderingKey: "k", worker: "w1" });
    const enqC = op(20, ENQ(3, { orderingKey: "k" }), { t: 25, type: "ok", result: { executionId: "c", created: true } });
    const a = run(30, "a", 1, 20, { orderingKey: "k" });
    const fr = finalRead(500, [], [exec("a", "succeeded", { orderingKey: "k" }), exec("b", "canceled", { orderingKey: "k" }), exec("c", "succeeded", { orderingKey: "k" })]);
    expectValid(checkOrderingKey([...enqA, ...enqB, ...enqC, ...a, ...b, ...cancelB, ...c, fr]));
    // Had b not been canceled, the same history is two runs at once.
    const frNotCanceled = finalRead(500, [], [exec("a", "succeeded", { orderingKey: "k" }), exec("b", "succeeded", { orderingKey: "k" }), exec("c", "succeeded", { orderingKey: "k" })]);
    expect(checkOrderingKey([...enqA, ...enqB, ...enqC, ...a, ...b, ...c, frNotCanceled]).valid).toBe(false);
  });

  it("reports an assignment that held nothing received while an execution enqueued before it still ran (fast-check seed -229475352)", () => {
    // b's cancel was under way (invoked at 30, answer lost) when its assignment arrived, so that
    // assignment may have held nothing — but b was enqueued after a's enqueue was answered, so b
    // could not even be claimed before a left the line, and a ran from 40 to 80.
    const cancelLost = op(30, CANCEL("b"), { t: 32, type: "info", code: "network" });
    const a = run(40, "a", 1, 40, { orderingKey: "k" });
    const b = [assigned(41, "b", 2, { orderingKey: "k", worker: "w1" })];
    const cancelB = op(100, CANCEL("b"), { t: 102, type: "ok", result: { state: "canceled" } });
    const bAbort = aborted(105, "b", 2, "canceled", "w1");
    const fr = finalRead(500, [], [exec("a", "succeeded", { orderingKey: "k" }), exec("b", "canceled", { orderingKey: "k" })]);
    const history = [...enqA, ...enqB, ...cancelLost, ...a, ...b, ...cancelB, bAbort, fr];
    expectOneViolation(checkOrderingKey(history), /'b' was assigned at t=41, while 'a', enqueued before it, still held the line until t=80/, [
      ...enqA,
      ...enqB,
      a[0]!,
      b[0]!,
      a[1]!,
    ]);
    // Had the two enqueues overlapped, b may have been ahead of a, claimed and canceled first: valid.
    const enqBOverlapping = op(3, ENQ(2, { orderingKey: "k" }), { t: 15, type: "ok", result: { executionId: "b", created: true } });
    expectValid(checkOrderingKey([...enqA, ...enqBOverlapping, ...cancelLost, ...a, ...b, ...cancelB, bAbort, fr]));
  });

  it("reports two executions of one key running at once", () => {
    const a = run(20, "a", 1, 100, { orderingKey: "k" });
    const b = run(50, "b", 2, 100, { orderingKey: "k", worker: "w1" });
    expectOneViolation(checkOrderingKey([...enqA, ...enqB, ...a, ...b]), /ordering key 'k': 'a' ran until t=120 but 'b' started at t=50/, [a[0]!, b[0]!, a[1]!]);
  });

  it("reports an execution enqueued later that starts first", () => {
    const b = run(20, "b", 1, 10, { orderingKey: "k" });
    const a = run(40, "a", 2, 10, { orderingKey: "k" });
    expectOneViolation(checkOrderingKey([...enqA, ...enqB, ...b, ...a]), /'b' was enqueued after 'a' but started first/, [...enqA, ...enqB, b[0]!, a[0]!]);
  });

  it("reports a later execution starting while an earlier one never ran and is still waiting", () => {
    const b = run(20, "b", 1, 10, { orderingKey: "k" });
    const fr = finalRead(500, [], [exec("a", "ready", { orderingKey: "k" }), exec("b", "succeeded", { orderingKey: "k" })]);
    expectOneViolation(checkOrderingKey([...enqA, ...enqB, ...b, fr]), /'b' started while 'a', enqueued before it, never ran and is ready/, [
      ...enqA,
      ...enqB,
      b[0]!,
      finalReadExcerpt(fr, [], ["a"]),
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// 5. single-terminal

describe("single-terminal", () => {
  it("passes for a failure retried into a success, and a final failure", () => {
    const x1 = [assigned(0, "x", 1), sent(10, "x", 1, "failed"), answered(12, "x", 1, "ack", "failed")];
    const x2 = run(100, "x", 2, 10);
    const y1 = [assigned(0, "y", 3), sent(10, "y", 3, "failed"), answered(12, "y", 3, "ack", "failed")];
    const fr = finalRead(500, [], [exec("x", "succeeded"), exec("y", "failed")]);
    expectValid(checkSingleTerminal([...x1, ...x2, ...y1, fr]));
  });

  it("reports two acked final reports", () => {
    const x1 = run(0, "x", 1, 10);
    const x2 = [assigned(5000, "x", 2), sent(5010, "x", 2, "failed"), answered(5012, "x", 2, "ack", "failed")];
    const r = checkSingleTerminal([...x1, ...x2, finalRead(9000, [], [exec("x", "succeeded")])]);
    expect(r.valid).toBe(false);
    expect(r.violations.map((v) => v.message)).toEqual([expect.stringMatching(/'x' has 2 acked final reports/), expect.stringMatching(/assigned again \(fence 2\)/)]);
    expect(r.violations[0]!.excerpt).toEqual([x1[2], x2[2]]);
    expect(r.violations[1]!.excerpt).toEqual([x1[2], x2[0]]);
  });

  it("reports a success the final read lost", () => {
    const x = run(0, "x", 1, 10);
    const fr = finalRead(500, [], [exec("x", "ready")]);
    expectOneViolation(checkSingleTerminal([...x, fr]), /'x' succeeded \(acked\) but the final read has it ready/, [x[2]!, finalReadExcerpt(fr, [], ["x"])]);
  });
});

// ---------------------------------------------------------------------------------------------
// check and summary

// ---------------------------------------------------------------------------------------------
// 7. nothing-stranded

describe("nothing-stranded", () => {
  const fault = [nemesis(100, "start"), nemesis(2000, "stop")];
  const opts = { strandBoundMs: 5000 };

  it("passes when unfinished executions moved recently: assigned again after a lost lease, scheduled lately, or their ordering line moved", () => {
    const lost = assigned(1000, "x", 1); // its assignment died with the link
    const again = assigned(9000, "x", 2); // offered again after the lease
    const fr = finalRead(10_000, [], [
      exec("x", "claimed"),
      exec("fresh", "ready", { scheduledAtMono: 8000 }),
      exec("head", "succeeded", { orderingKey: "k" }),
      exec("behind", "ready", { orderingKey: "k" }),
      exec("done", "succeeded"),
    ]);
    const head = run(7000, "head", 1, 100);
    expectValid(checkNothingStranded([...fault, lost, again, ...head, fr], opts));
  });

  it("reports an execution left claimed after its only assignment, with that assignment", () => {
    const lost = assigned(1000, "x", 1);
    const fr = finalRead(10_000, [], [exec("x", "claimed")]);
    expectOneViolation(checkNothingStranded([...fault, lost, fr], opts), /'x' is claimed at the final read, with no progress in the 8000 ms before it/, [
      lost,
      fault[1]!,
      finalReadExcerpt(fr, [], ["x"]),
    ]);
  });

  it("cannot decide when the last fault ended inside the bound, or without the bound", () => {
    const fr = finalRead(6000, [], [exec("x", "claimed")]);
    expect(checkNothingStranded([...fault, fr], opts).valid).toBe("unknown");
    expect(checkNothingStranded([fr]).valid).toBe("unknown");
  });
});

// ---------------------------------------------------------------------------------------------
// 8. worker-liveness

describe("worker-liveness", () => {
  const link = (t: number, action: LinkEvent["action"], node = "n1"): LinkEvent => ({ type: "link", worker: "w1", node, action, t });
  const targets = ["w1", "half-open", "n1"];
  const start = nemesis(1000, "start", "worker-link", targets);
  const stop = nemesis(1000 + LINK_DETECTION_BOUND_MS + 2000, "stop", "worker-link", targets);

  it("passes when the worker drops each half-open link it had within the bound; links to other nodes and short faults are not judged", () => {
    const other = link(0, "open", "n2"); // not hit by the fault
    expectValid(checkWorkerLiveness([link(0, "open"), other, start, link(4500, "dropped"), stop]));
    const shortStop = nemesis(2000, "stop", "worker-link", targets);
    const r = checkWorkerLiveness([link(0, "open"), start, shortStop]);
    expectValid(r);
    expect(r.stats.tooShort).toBe(1);
  });

  it("reports a half-open link the worker kept (or that only the heal closed)", () => {
    const opened = link(0, "open");
    const closedAtHeal = link(stop.t + 1, "closed");
    expectOneViolation(checkWorkerLiveness([opened, start, stop, closedAtHeal]), /w1's half-open link to n1 was not dropped within/, [opened, start, stop, closedAtHeal]);
  });
});

describe("check and summary", () => {
  it("runs every invariant; fires-continue and nothing-stranded only with their bounds", () => {
    const put = op(0, PUT("j"), { t: 5, type: "ok", result: { version: 1 } });
    const fr = finalRead(5000, [{ id: "j", state: "active", version: 1 }], [exec("j:100", "succeeded", { jobId: "j", scheduledAtMono: 100 })]);
    const events = [...put, ...run(100, "j:100", 1, 10, { jobId: "j", scheduledAtMono: 100 }), fr];
    const v = check(events);
    expect(v.valid).toBe(true);
    expect(v.results.map((r) => r.name)).toEqual(["acknowledged-writes", "no-duplicate-instances", "no-early-fire", "single-lease", "ordering-key", "single-terminal", "worker-liveness"]);
    expect(check(events, { fireBoundMs: 1000 }).results.map((r) => r.name)).toContain("fires-continue");
    expect(check(events, { strandBoundMs: 1000 }).results.map((r) => r.name)).toContain("nothing-stranded");
    expect(summary(v)).toMatch(/^verdict: valid\n/);
  });

  it("says what broke and shows the excerpt", () => {
    const a1 = assigned(0, "x", 1, { leaseDeadlineMono: 1000 });
    const a2 = assigned(500, "x", 2, { worker: "w1" });
    const v = check([a1, a2, finalRead(2000, [], [exec("x", "ready")])]);
    expect(v.valid).toBe(false);
    const text = summary(v);
    expect(text).toMatch(/^verdict: INVALID/);
    expect(text).toMatch(/BAD single-lease: INVALID/);
    expect(text).toMatch(/leases of 'x' overlap/);
    expect(text).toMatch(/t=500 assigned .*"fence":2/);
  });
});

// ---------------------------------------------------------------------------------------------
// a simple correct simulation, and mutations that break it

type SimOutcome = "ok" | "fail" | "info-applied" | "info-lost" | "no-answer";
type Behavior = "succeed" | "heartbeat" | "fail" | "stall" | "cancel-mid-run";
type Action =
  | { kind: "put" | "delete" | "pause" | "resume"; job: number; outcome: SimOutcome }
  | { kind: "enqueue"; idem: number | null; okey: number | null; outcome: SimOutcome }
  | { kind: "cancel"; pick: number; outcome: SimOutcome }
  | { kind: "fire"; job: number }
  | { kind: "work"; behavior: Behavior; runMs: number }
  | { kind: "nemesis"; ms: number }
  | { kind: "wait"; ms: number };

const LEASE_MS = 1000;
const GRACE_MS = 1000;
const INTERVAL_MS = 200;
const MAX_ATTEMPTS = 3;
const FIRE_BOUND_MS = 5000;

interface SimExec {
  id: string;
  jobId?: string;
  orderingKey?: string;
  idempotencyKey?: string;
  state: string;
  attempt: number;
  scheduledAt: number;
}

/** A single-node model run one step at a time: no two things ever overlap, so every invariant holds. */
function simulate(actions: Action[]): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  let t = 0;
  let opSeq = 0;
  let fenceSeq = 0;
  let adhoc = 0;
  let enqueueSeq = 0;
  const jobs = new Map<string, { state: "active" | "paused"; version: number; anchor: number; nextK: number }>();
  const tombstones = new Map<string, number>();
  const execs = new Map<string, SimExec>();
  const idem = new Map<string, string>();
  const lines = new Map<string, string[]>();
  const zombies = new Map<string, Array<{ worker: string; fence: number }>>();

  const leaveLine = (e: SimExec): void => {
    if (e.orderingKey === undefined) return;
    const line = lines.get(e.orderingKey)!;
    line.splice(line.indexOf(e.id), 1);
  };
  const end = (e: SimExec, state: string): void => {
    e.state = state;
    leaveLine(e);
  };

  /** Workers that stalled past their lease on `id` wake: their report is answered stale, then they hear the cancel. */
  const wakeStalled = (id: string): void => {
    for (const z of zombies.get(id) ?? []) {
      events.push({ type: "report-sent", worker: z.worker, executionId: id, fence: z.fence, kind: "succeeded", t: (t += 1) });
      events.push({ type: "report-answered", worker: z.worker, executionId: id, fence: z.fence, kind: "succeeded", answer: "stale", t: (t += 1) });
      events.push({ type: "aborted", worker: z.worker, executionId: id, fence: z.fence, reason: "lease-lost", t: (t += 1) });
    }
    zombies.delete(id);
  };

  type Applied = { result: Record<string, unknown> } | { error: string };
  const client = (call: ClientOp, outcome: SimOutcome, apply: () => Applied): void => {
    const opId = opSeq++;
    const process = `c${opId % 3}`;
    events.push({ type: "invoke", process, opId, t: (t += 1), call });
    const applied = outcome === "fail" || outcome === "info-lost" ? undefined : apply();
    t += 2;
    if (outcome === "no-answer") return;
    if (outcome === "fail") events.push({ type: "fail", process, opId, t, error: { code: "unavailable", message: "no leader" } });
    else if (outcome !== "ok" || !applied) events.push({ type: "info", process, opId, t, error: { code: "network", message: "timeout" } });
    else if ("error" in applied) events.push({ type: "fail", process, opId, t, error: { code: applied.error, message: applied.error } });
    else events.push({ type: "ok", process, opId, t, result: applied.result });
  };

  const claim = (e: SimExec): { worker: string; fence: number; assigned: AssignedEvent } => {
    const fence = ++fenceSeq;
    const worker = `w${fence % 3}`;
    e.attempt++;
    e.state = "running";
    const a: AssignedEvent = {
      type: "assigned", worker, executionId: e.id, attempt: e.attempt, fence, node: "n1", scheduledAtMono: e.scheduledAt,
      leaseDeadlineMono: (t += 1) + LEASE_MS, t,
    };
    if (e.jobId !== undefined) a.jobId = e.jobId;
    if (e.orderingKey !== undefined) a.orderingKey = e.orderingKey;
    events.push(a);
    wakeStalled(e.id); // now that a higher fence is out, the stalled holder's report must be stale
    return { worker, fence, assigned: a };
  };

  const report = (e: SimExec, worker: string, fence: number, kind: "succeeded" | "failed", runMs: number): void => {
    events.push({ type: "sink-write", worker, executionId: e.id, attempt: e.attempt, fence, t: (t += runMs) });
    events.push({ type: "report-sent", worker, executionId: e.id, fence, kind, t: (t += 1) });
    events.push({ type: "report-answered", worker, executionId: e.id, fence, kind, answer: "ack", t: (t += 2) });
  };

  const work = (behavior: Behavior, runMs: number, only?: SimExec): void => {
    const e = only ?? [...execs.values()].find((x) => x.state === "ready" && (x.orderingKey === undefined || lines.get(x.orderingKey)![0] === x.id));
    if (!e) return;
    const { worker, fence, assigned: a } = claim(e);
    switch (behavior) {
      case "heartbeat":
      case "succeed":
        if (behavior === "heartbeat") events.push({ type: "lease-extended", worker, executionId: e.id, fence, leaseDeadlineMono: (t += runMs) + LEASE_MS, t });
        report(e, worker, fence, "succeeded", runMs);
        end(e, "succeeded");
        break;
      case "fail":
        report(e, worker, fence, "failed", runMs);
        if (e.attempt >= MAX_ATTEMPTS) end(e, "failed");
        else e.state = "ready";
        break;
      case "stall":
        t = a.leaseDeadlineMono + GRACE_MS + 10; // the node expires the lease and revokes it
        zombies.set(e.id, [...(zombies.get(e.id) ?? []), { worker, fence }]);
        if (e.attempt >= MAX_ATTEMPTS) end(e, "failed");
        else e.state = "ready";
        break;
      case "cancel-mid-run":
        t += runMs;
        client({ op: "cancel", executionId: e.id }, "ok", () => (end(e, "canceled"), { result: { state: "canceled" } }));
        events.push({ type: "aborted", worker, executionId: e.id, fence, reason: "canceled", t: (t += 3) });
        break;
    }
  };

  const fire = (jobId: string): SimExec | undefined => {
    const job = jobs.get(jobId);
    if (!job || job.state !== "active") return undefined;
    const k = Math.max(job.nextK, Math.floor((t - job.anchor) / INTERVAL_MS)); // late fires collapse into one
    const at = job.anchor + k * INTERVAL_MS;
    if (at > t) t = at;
    job.nextK = k + 1;
    const id = `${jobId}:${at}`;
    if (execs.has(id)) return undefined;
    const e: SimExec = { id, jobId, state: "ready", attempt: 0, scheduledAt: at };
    execs.set(id, e);
    return e;
  };

  /** Every active job fires and runs at once: after a fault ends or a job is (re)started. */
  const catchUp = (): void => {
    for (const jobId of jobs.keys()) {
      const e = fire(jobId);
      if (e) work("succeed", 20, e);
    }
  };

  for (const a of actions) {
    switch (a.kind) {
      case "put": {
        const jobId = `j${a.job}`;
        client({ op: "put-job", jobId, spec: { queue: "q", every: `${INTERVAL_MS}ms` } }, a.outcome, () => {
          const job = jobs.get(jobId);
          if (job) return { result: { version: ++job.version } };
          const version = (tombstones.get(jobId) ?? 0) + 1;
          tombstones.delete(jobId);
          jobs.set(jobId, { state: "active", version, anchor: t, nextK: 0 });
          return { result: { version } };
        });
        if (a.outcome !== "fail") catchUp();
        break;
      }
      case "delete":
      case "pause":
      case "resume": {
        const jobId = `j${a.job}`;
        const kind = a.kind;
        client({ op: `${kind}-job`, jobId }, a.outcome, () => {
          const job = jobs.get(jobId);
          if (!job) return { error: "not_found" };
          if (kind === "delete") {
            jobs.delete(jobId);
            tombstones.set(jobId, job.version);
          } else job.state = kind === "pause" ? "paused" : "active";
          return { result: { version: job.version } };
        });
        if (kind === "resume" && a.outcome !== "fail") catchUp();
        break;
      }
      case "enqueue": {
        const call: ClientOp = { op: "enqueue", queue: "q", seq: enqueueSeq++ };
        if (a.idem !== null) call.idempotencyKey = `i${a.idem}`;
        if (a.okey !== null) call.orderingKey = `k${a.okey}`;
        client(call, a.outcome, () => {
          const seen = call.idempotencyKey !== undefined ? idem.get(call.idempotencyKey) : undefined;
          if (seen) return { result: { executionId: seen, created: false } };
          const e: SimExec = { id: `x${++adhoc}`, state: "ready", attempt: 0, scheduledAt: t };
          if (call.orderingKey !== undefined) {
            e.orderingKey = call.orderingKey;
            lines.set(e.orderingKey, [...(lines.get(e.orderingKey) ?? []), e.id]);
          }
          if (call.idempotencyKey !== undefined) {
            e.idempotencyKey = call.idempotencyKey;
            idem.set(call.idempotencyKey, e.id);
          }
          execs.set(e.id, e);
          return { result: { executionId: e.id, created: true } };
        });
        break;
      }
      case "cancel": {
        const all = [...execs.values()];
        if (all.length === 0) break;
        const e = all[a.pick % all.length]!;
        client({ op: "cancel", executionId: e.id }, a.outcome, () =>
          e.state === "succeeded" || e.state === "failed" || e.state === "canceled" ? { error: "conflict" } : (end(e, "canceled"), { result: { state: "canceled" } }),
        );
        break;
      }
      case "fire":
        fire(`j${a.job}`);
        break;
      case "work":
        work(a.behavior, a.runMs);
        break;
      case "nemesis":
        events.push({ type: "nemesis", action: "start", fault: "kill", targets: ["n1"], t: (t += 1) });
        events.push({ type: "nemesis", action: "stop", fault: "kill", targets: ["n1"], t: (t += a.ms) });
        catchUp();
        break;
      case "wait":
        t += a.ms;
        break;
    }
  }
  for (const id of [...zombies.keys()]) wakeStalled(id); // never claimed again: they wake at the end
  events.push({
    type: "final-read",
    t: (t += 10),
    jobs: [...jobs].map(([id, j]) => ({ id, state: j.state, version: j.version })),
    executions: [...execs.values()].map((e) => ({
      id: e.id, queue: "q", state: e.state, attempt: e.attempt, scheduledAtMono: e.scheduledAt,
      ...(e.jobId !== undefined ? { jobId: e.jobId } : {}),
      ...(e.orderingKey !== undefined ? { orderingKey: e.orderingKey } : {}),
      ...(e.idempotencyKey !== undefined ? { idempotencyKey: e.idempotencyKey } : {}),
    })),
  });
  return events;
}

const outcomeArb = fc.constantFrom<SimOutcome>("ok", "ok", "ok", "fail", "info-applied", "info-lost", "no-answer");
const actionArb: fc.Arbitrary<Action> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("put" as const), job: fc.nat(2), outcome: outcomeArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constantFrom("delete" as const, "pause" as const, "resume" as const), job: fc.nat(2), outcome: outcomeArb }) },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("enqueue" as const),
      idem: fc.option(fc.nat(3), { nil: null }),
      okey: fc.option(fc.nat(1), { nil: null }),
      outcome: outcomeArb,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cancel" as const), pick: fc.nat(), outcome: outcomeArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("fire" as const), job: fc.nat(2) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("work" as const),
      behavior: fc.constantFrom<Behavior>("succeed", "succeed", "heartbeat", "fail", "stall", "cancel-mid-run"),
      runMs: fc.integer({ min: 20, max: 300 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("nemesis" as const), ms: fc.integer({ min: 100, max: 3000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("wait" as const), ms: fc.integer({ min: 1, max: 2000 }) }) },
);
const historyArb = fc.array(actionArb, { minLength: 10, maxLength: 60 }).map(simulate);

// --- mutations: each returns the broken history and the invariant that must catch it, or undefined when it does not apply

type Mutation = (events: HistoryEvent[], pick: number) => { events: HistoryEvent[]; breaks: InvariantName } | undefined;

function choose<T>(list: T[], pick: number): T | undefined {
  return list.length === 0 ? undefined : list[pick % list.length];
}

function finalOf(events: HistoryEvent[]): FinalReadEvent {
  return events.find((e): e is FinalReadEvent => e.type === "final-read")!;
}

/** The events with the final read replaced. */
function withRead(events: HistoryEvent[], change: (fr: FinalReadEvent) => FinalReadEvent): HistoryEvent[] {
  return events.map((e) => (e.type === "final-read" ? change(e) : e));
}

function okOps(events: HistoryEvent[], kind: ClientOp["op"]): Array<{ invoke: InvokeEvent; done: CompleteEvent }> {
  const done = new Map(events.filter((e): e is CompleteEvent => e.type === "ok").map((e) => [`${e.process}/${e.opId}`, e]));
  return events
    .filter((e): e is InvokeEvent => e.type === "invoke" && e.call.op === kind)
    .flatMap((invoke) => {
      const d = done.get(`${invoke.process}/${invoke.opId}`);
      return d ? [{ invoke, done: d }] : [];
    });
}

/** Whether a cancel of the execution that did not fail was invoked at or before `t`. */
function cancelUnderWay(events: HistoryEvent[], executionId: string, t: number): boolean {
  const failed = new Set(events.filter((e): e is CompleteEvent => e.type === "fail").map((e) => `${e.process}/${e.opId}`));
  return events.some((e) => e.type === "invoke" && e.call.op === "cancel" && e.call.executionId === executionId && e.t <= t && !failed.has(`${e.process}/${e.opId}`));
}

function assignments(events: HistoryEvent[]): AssignedEvent[] {
  return events.filter((e): e is AssignedEvent => e.type === "assigned");
}

const MUTATIONS: Record<string, Mutation> = {
  "duplicate an execution in the final read": (events, pick) => {
    const x = choose(finalOf(events).executions, pick);
    return x && { events: withRead(events, (fr) => ({ ...fr, executions: [...fr.executions, { ...x }] })), breaks: "no-duplicate-instances" };
  },
  "lose an acknowledged enqueue": (events, pick) => {
    const o = choose(okOps(events, "enqueue"), pick);
    const id = o?.done.result?.executionId;
    return o && { events: withRead(events, (fr) => ({ ...fr, executions: fr.executions.filter((x) => x.id !== id) })), breaks: "acknowledged-writes" };
  },
  "lose an acknowledged put-job": (events, pick) => {
    const ops = okOps(events, "put-job").filter(({ invoke }) => {
      const jobId = (invoke.call as { jobId: string }).jobId;
      // a job never deleted at all (any delete that may have landed after the put would excuse it)
      return !events.some((e) => e.type === "invoke" && e.call.op === "delete-job" && e.call.jobId === jobId);
    });
    const o = choose(ops, pick);
    const jobId = o && (o.invoke.call as { jobId: string }).jobId;
    return o && { events: withRead(events, (fr) => ({ ...fr, jobs: fr.jobs.filter((j) => j.id !== jobId) })), breaks: "acknowledged-writes" };
  },
  "undo an acknowledged cancel": (events, pick) => {
    const o = choose(okOps(events, "cancel"), pick);
    const id = o && (o.invoke.call as { executionId: string }).executionId;
    return o && { events: withRead(events, (fr) => ({ ...fr, executions: fr.executions.map((x) => (x.id === id ? { ...x, state: "succeeded" } : x)) })), breaks: "acknowledged-writes" };
  },
  "give one idempotency key two executions": (events, pick) => {
    const fr = finalOf(events);
    const keyed = choose(fr.executions.filter((x) => x.idempotencyKey !== undefined), pick);
    const other = choose(fr.executions.filter((x) => x.jobId === undefined && x.id !== keyed?.id), pick >> 3);
    return keyed && other && {
      // The same key in the same scope (its ordering key too): one key, two executions.
      events: withRead(events, (r) => ({
        ...r,
        executions: r.executions.map((x) => {
          if (x.id !== other.id) return x;
          const { orderingKey: _dropped, ...rest } = x;
          return { ...rest, idempotencyKey: keyed.idempotencyKey, ...(keyed.orderingKey !== undefined ? { orderingKey: keyed.orderingKey } : {}) };
        }),
      })),
      breaks: "no-duplicate-instances",
    };
  },
  "fire one scheduled time twice": (events, pick) => {
    const x = choose(finalOf(events).executions.filter((e) => e.jobId !== undefined), pick);
    return x && { events: withRead(events, (fr) => ({ ...fr, executions: [...fr.executions, { ...x, id: `${x.jobId}:again` }] })), breaks: "no-duplicate-instances" };
  },
  "stop a job firing after a last fault": (events, pick) => {
    const fr = finalOf(events);
    const active = choose(fr.jobs.filter((j) => j.state === "active"), pick);
    if (!active) return undefined;
    const rest = events.filter((e) => e.type !== "final-read");
    return {
      events: [...rest, nemesis(fr.t + 1, "start"), nemesis(fr.t + 2, "stop"), { ...fr, t: fr.t + 3 + FIRE_BOUND_MS }],
      breaks: "fires-continue",
    };
  },
  "fire before the scheduled time": (events, pick) => {
    const a = choose(assignments(events).filter((e) => /:\d+$/.test(e.executionId)), pick);
    return a && { events: events.map((e) => (e === a ? { ...a, scheduledAtMono: a.t + 1000 } : e)), breaks: "no-early-fire" };
  },
  "overlap two leases": (events, pick) => {
    const pairs = assignments(events).flatMap((a) => {
      const next = assignments(events).find((b) => b.executionId === a.executionId && b.fence > a.fence);
      return next ? [[a, next] as const] : [];
    });
    const pair = choose(pairs, pick);
    if (!pair) return undefined;
    const [a, b] = pair;
    return { events: events.map((e) => (e === b ? { ...b, t: a.t + 1 } : e)), breaks: "single-lease" };
  },
  "ack a stale fence": (events, pick) => {
    const stale = events.filter(
      (e): e is ReportAnsweredEvent =>
        e.type === "report-answered" &&
        e.answer === "stale" &&
        assignments(events).some((a) => a.executionId === e.executionId && a.fence > e.fence && a.t < e.t - 1),
    );
    const s = choose(stale, pick);
    return s && { events: events.map((e) => (e === s ? { ...s, answer: "ack" as const } : e)), breaks: "single-lease" };
  },
  "run two executions of one key at once": (events, pick) => {
    const firsts = new Map<string, AssignedEvent>();
    for (const a of assignments(events)) if (a.orderingKey !== undefined && !firsts.has(a.executionId)) firsts.set(a.executionId, a);
    // b's first assignment is moved to just after a's. That is a real overlap only where both
    // assignments ran: one whose cancel was already under way may have been canceled on its way and
    // held nothing (the checker cuts it), and then the moved history can happen — unless b was
    // enqueued after a's enqueue was answered: b is then claimed only after a left the line.
    const enqueueOf = new Map(okOps(events, "enqueue").map((o) => [o.done.result?.executionId as string, o]));
    const enqueuedBefore = (a: string, b: string): boolean => (enqueueOf.get(a)?.done.t ?? Infinity) < (enqueueOf.get(b)?.invoke.t ?? -Infinity);
    const pairs = [...firsts.values()].flatMap((a) =>
      [...firsts.values()]
        .filter((b) => b.orderingKey === a.orderingKey && b.t > a.t)
        .filter((b) => !cancelUnderWay(events, a.executionId, a.t) && (!cancelUnderWay(events, b.executionId, a.t + 1) || enqueuedBefore(a.executionId, b.executionId)))
        .map((b) => [a, b] as const),
    );
    const pair = choose(pairs, pick);
    if (!pair) return undefined;
    const [a, b] = pair;
    return { events: events.map((e) => (e === b ? { ...b, t: a.t + 1 } : e)), breaks: "ordering-key" };
  },
  "assign again after a success": (events, pick) => {
    const acks = events.filter((e): e is ReportAnsweredEvent => e.type === "report-answered" && e.answer === "ack" && e.kind === "succeeded");
    const ack = choose(acks, pick);
    return ack && { events: [...events, assigned(ack.t + 1, ack.executionId, 1e9, { worker: "w9" })], breaks: "single-terminal" };
  },
  "lose a success from the final read": (events, pick) => {
    const acks = events.filter((e): e is ReportAnsweredEvent => e.type === "report-answered" && e.answer === "ack" && e.kind === "succeeded");
    const ack = choose(acks, pick);
    return ack && { events: withRead(events, (fr) => ({ ...fr, executions: fr.executions.map((x) => (x.id === ack.executionId ? { ...x, state: "ready" } : x)) })), breaks: "single-terminal" };
  },
};

describe("property: the simulation passes; one mutation is caught", () => {
  const opts = { fireBoundMs: FIRE_BOUND_MS };

  it("histories of a correct simulation pass every invariant", () => {
    fc.assert(
      fc.property(historyArb, (events) => {
        const v = check(events, opts);
        for (const r of v.results) expect(r.valid, `${r.name}\n${summary(v)}`).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("each kind of mutation is caught by the invariant it breaks", () => {
    const caught = new Map<string, number>(Object.keys(MUTATIONS).map((k) => [k, 0]));
    fc.assert(
      fc.property(historyArb, fc.nat(), (events, pick) => {
        for (const [name, mutate] of Object.entries(MUTATIONS)) {
          const m = mutate(events, pick);
          if (!m) continue;
          const v = check(m.events, opts);
          const r = v.results.find((x) => x.name === m.breaks)!;
          expect(r.valid, `${name} was not caught by ${m.breaks}\n${summary(v)}`).toBe(false);
          expect(r.violations[0]!.excerpt.length).toBeGreaterThan(0);
          caught.set(name, caught.get(name)! + 1);
        }
      }),
      { numRuns: 200 },
    );
    for (const [name, n] of caught) expect(n, `mutation '${name}' never applied`).toBeGreaterThan(0);
  });
});
