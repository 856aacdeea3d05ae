import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseEnqueueBody, parseJobBody, DEFAULT_LIMITS } from "../src/api/validation.js";
import { CronwheelError } from "../src/core/errors.js";
import { isTerminal, type Execution } from "../src/core/execution.js";
import type { ShardRecord } from "../src/core/records.js";
import { DEFAULT_SHARD_LIMITS, EXECUTION_STAGE_LEAD_MS, ShardState, type ExecutionResult, type JobPutResult } from "../src/core/shard-state.js";

const T0 = Date.UTC(2025, 0, 1);
const MIN = 60_000;
const HOUR = 3_600_000;

function put(s: ShardState, jobId: string, body: Record<string, unknown>, at: number, ifMatch: number | null = null): JobPutResult {
  const r = s.apply({ type: "job.put", at, tenant: "t", jobId, specJson: JSON.stringify(parseJobBody(body, DEFAULT_LIMITS)), ifMatch });
  if (r instanceof CronwheelError) throw r;
  return r as JobPutResult;
}

function tick(s: ShardState, at: number): void {
  s.apply({ type: "tick", at });
}

/** Tick until nothing more is due at `at` (a tick is bounded; the driver repeats it). */
function tickAll(s: ShardState, at: number): void {
  for (let i = 0; i < 1000; i++) {
    tick(s, at);
    const due = s.nextDueAt();
    if (due === null || due > at) return;
  }
  throw new Error("tick never drained");
}

function executionsOf(s: ShardState, jobId: string): Execution[] {
  return [...s.executions.valuesOf("t")].filter((e) => e.jobId === jobId).sort((a, b) => a.scheduledAt - b.scheduledAt);
}

describe("shard state: fires", () => {
  it("runs a year of an hourly job in one pass, each fire once, with deterministic ids", () => {
    const s = new ShardState(T0);
    put(s, "hourly", { queue: "q", every: "1h" }, T0);
    for (let t = T0; t <= T0 + 365 * 24 * HOUR; t += HOUR) tick(s, t);
    const fires = executionsOf(s, "hourly");
    expect(fires).toHaveLength(365 * 24);
    expect(fires[0]!.id).toBe(`hourly:${T0 + HOUR}`);
    expect(new Set(fires.map((e) => e.id)).size).toBe(fires.length);
    expect(fires.every((e) => e.state === "ready")).toBe(true);
  });

  it("ticking the same time twice creates nothing twice", () => {
    const s = new ShardState(T0);
    put(s, "j", { queue: "q", every: "1m" }, T0);
    tick(s, T0 + MIN);
    tick(s, T0 + MIN);
    expect(executionsOf(s, "j")).toHaveLength(1);
  });

  it("completes a job after maxRuns fires and after its one-time `at`", () => {
    const s = new ShardState(T0);
    put(s, "three", { queue: "q", every: "1m", maxRuns: 3 }, T0);
    put(s, "once", { queue: "q", at: T0 + 5 * MIN }, T0);
    for (let t = T0; t <= T0 + 10 * MIN; t += MIN) tick(s, t);
    expect(executionsOf(s, "three")).toHaveLength(3);
    expect(s.getJob("t", "three")!.state).toBe("completed");
    expect(executionsOf(s, "once").map((e) => e.scheduledAt)).toEqual([T0 + 5 * MIN]);
    expect(s.getJob("t", "once")!.state).toBe("completed");
  });

  it("a tick does bounded work; the rest stays due for the next tick, earliest first", () => {
    const s = new ShardState(T0, { ...DEFAULT_SHARD_LIMITS, tickWorkMax: 100 });
    for (let i = 0; i < 250; i++) put(s, `j${i}`, { queue: "q", at: T0 + MIN + i }, T0);
    tick(s, T0 + MIN + 1000);
    const fired = () => [...s.executions.values()].map((e) => e.scheduledAt - T0 - MIN).sort((a, b) => a - b);
    expect(fired()).toEqual([...Array(100).keys()]);
    expect(s.nextDueAt()).toBeLessThanOrEqual(T0 + MIN + 1000);
    tick(s, T0 + MIN + 1000);
    tick(s, T0 + MIN + 1000);
    expect(fired()).toEqual([...Array(250).keys()]);
  });

  it("a tick with a horizon commits fires ahead of time; each is ready at its own due time", () => {
    const s = new ShardState(T0);
    put(s, "soon", { queue: "q", at: T0 + 5 }, T0);
    put(s, "later", { queue: "q", at: T0 + 11 }, T0);
    s.apply({ type: "tick", at: T0, horizon: T0 + 10 });
    const [soon] = executionsOf(s, "soon");
    expect(soon).toMatchObject({ state: "ready", createdAt: T0, readyAt: T0 + 5, scheduledAt: T0 + 5 });
    expect(executionsOf(s, "later")).toHaveLength(0);
    // A fire handled late is ready when it was handled.
    s.apply({ type: "tick", at: T0 + 30, horizon: T0 + 40 });
    expect(executionsOf(s, "later")[0]).toMatchObject({ readyAt: T0 + 30 });
  });

  it("fires due at the same ms are never split across ticks (replicas' wheels may order ties differently)", () => {
    const s = new ShardState(T0, { ...DEFAULT_SHARD_LIMITS, tickWorkMax: 100 });
    for (let i = 0; i < 250; i++) put(s, `j${i}`, { queue: "q", at: T0 + MIN }, T0);
    put(s, "later", { queue: "q", at: T0 + MIN + 1 }, T0);
    tick(s, T0 + MIN + 1);
    expect([...s.executions.values()]).toHaveLength(250);
    tick(s, T0 + MIN + 1);
    expect([...s.executions.values()]).toHaveLength(251);
  });
});

describe("shard state: misfire policies", () => {
  const missTenMinutes = (policy: string) => {
    const s = new ShardState(T0);
    put(s, "j", { queue: "q", every: "1m", misfire: { policy, graceMs: 5_000 } }, T0);
    tickAll(s, T0 + 10 * MIN + 30_000);
    return executionsOf(s, "j");
  };

  it("run-once runs only the latest missed fire and records the others as skipped", () => {
    const fires = missTenMinutes("run-once");
    expect(fires).toHaveLength(10);
    expect(fires.filter((e) => e.state === "skipped").every((e) => e.reason === "misfire")).toBe(true);
    expect(fires.filter((e) => e.state === "ready").map((e) => e.scheduledAt)).toEqual([T0 + 10 * MIN]);
  });

  it("skip records every missed fire as skipped", () => {
    const fires = missTenMinutes("skip");
    expect(fires).toHaveLength(10);
    expect(fires.every((e) => e.state === "skipped" && e.reason === "misfire")).toBe(true);
  });

  it("run-all runs every missed fire", () => {
    const fires = missTenMinutes("run-all");
    expect(fires.map((e) => e.state)).toEqual(new Array(10).fill("ready"));
  });

  it("a fire within graceMs is not a misfire", () => {
    const s = new ShardState(T0);
    put(s, "j", { queue: "q", every: "1m", misfire: { policy: "skip", graceMs: 5_000 } }, T0);
    tick(s, T0 + MIN + 4_999);
    expect(executionsOf(s, "j").map((e) => e.state)).toEqual(["ready"]);
  });

  it("fires missed while paused are decided by the misfire policy on resume", () => {
    const s = new ShardState(T0);
    put(s, "j", { queue: "q", every: "1m", misfire: { policy: "run-once", graceMs: 0 } }, T0);
    s.apply({ type: "job.pause", at: T0 + 1, tenant: "t", jobId: "j" });
    tickAll(s, T0 + 5 * MIN);
    expect(executionsOf(s, "j")).toHaveLength(0);
    s.apply({ type: "job.resume", at: T0 + 5 * MIN + 10, tenant: "t", jobId: "j" });
    tickAll(s, T0 + 5 * MIN + 10);
    const fires = executionsOf(s, "j");
    expect(fires.filter((e) => e.state === "ready").map((e) => e.scheduledAt)).toEqual([T0 + 5 * MIN]);
    expect(fires.filter((e) => e.state === "skipped")).toHaveLength(4);
  });
});

describe("shard state: overlap policies at the concurrency limit", () => {
  const threeFires = (overlap: string) => {
    const s = new ShardState(T0);
    put(s, "j", { queue: "q", every: "1m", concurrency: { limit: 1, overlap } }, T0);
    for (let i = 1; i <= 3; i++) tick(s, T0 + i * MIN);
    return { s, fires: executionsOf(s, "j") };
  };

  it("skip records later fires as skipped while one is active", () => {
    const { fires } = threeFires("skip");
    expect(fires.map((e) => [e.state, e.reason])).toEqual([
      ["ready", null],
      ["skipped", "overlap"],
      ["skipped", "overlap"],
    ]);
  });

  it("queue keeps later fires waiting and releases one per freed slot, in order", () => {
    const { s, fires } = threeFires("queue");
    expect(fires.map((e) => e.state)).toEqual(["ready", "scheduled", "scheduled"]);
    s.apply({ type: "exec.cancel", at: T0 + 3 * MIN + 1, tenant: "t", executionId: fires[0]!.id });
    expect(executionsOf(s, "j").map((e) => e.state)).toEqual(["canceled", "ready", "scheduled"]);
  });

  it("buffer-one keeps only the newest waiting fire", () => {
    const { fires } = threeFires("buffer-one");
    expect(fires.map((e) => [e.state, e.reason])).toEqual([
      ["ready", null],
      ["skipped", "superseded"],
      ["scheduled", null],
    ]);
  });

  it("replace cancels the active execution for the new fire", () => {
    const { fires } = threeFires("replace");
    expect(fires.map((e) => [e.state, e.reason])).toEqual([
      ["canceled", "replaced"],
      ["canceled", "replaced"],
      ["ready", null],
    ]);
  });

  it("allow lets fires pile up past the limit (the limit binds at dispatch)", () => {
    const { fires } = threeFires("allow");
    expect(fires.map((e) => e.state)).toEqual(["ready", "ready", "ready"]);
  });
});

describe("shard state: jobs and executions", () => {
  it("If-Match guards replaces; versions continue across delete", () => {
    const s = new ShardState(T0);
    expect(put(s, "j", { queue: "q" }, T0).job.version).toBe(1);
    expect(put(s, "j", { queue: "q2" }, T0, 1).job.version).toBe(2);
    const stale = s.apply({ type: "job.put", at: T0, tenant: "t", jobId: "j", specJson: JSON.stringify(parseJobBody({ queue: "q" }, DEFAULT_LIMITS)), ifMatch: 1 });
    expect((stale as CronwheelError).code).toBe("conflict");
    s.apply({ type: "job.delete", at: T0, tenant: "t", jobId: "j", cancelRunning: false });
    expect((s.apply({ type: "job.resume", at: T0, tenant: "t", jobId: "j" }) as CronwheelError).code).toBe("conflict");
    expect(put(s, "j", { queue: "q" }, T0).job.version).toBe(3);
  });

  it("executions with the default retry policy share one frozen copy; others keep their own", () => {
    const s = new ShardState(T0);
    const enqueue = (id: string, body: Record<string, unknown>) =>
      (s.apply({ type: "exec.enqueue", at: T0, tenant: "t", executionId: id, spec: parseEnqueueBody({ queue: "q", ...body }, DEFAULT_LIMITS) }) as ExecutionResult).execution;
    // A spec as it comes back from the log: a decoded copy, equal to the default but not it.
    const a = enqueue("x000a1", {});
    const b = enqueue("x000a2", { retry: { maxAttempts: 3 } });
    expect(a.retry).toBe(b.retry);
    expect(Object.isFrozen(a.retry.backoff)).toBe(true);
    const c = enqueue("x000a3", { retry: { maxAttempts: 7 } });
    expect(c.retry).not.toBe(a.retry);
    expect(c.retry).toEqual({ ...a.retry, maxAttempts: 7 });
  });

  it("an idempotency key returns the first execution within the window, and a new one after", () => {
    const s = new ShardState(T0);
    const enqueue = (id: string, at: number) =>
      s.apply({ type: "exec.enqueue", at, tenant: "t", executionId: id, spec: parseEnqueueBody({ queue: "q", payload: 1, idempotencyKey: "k" }, DEFAULT_LIMITS) }) as ExecutionResult;
    const first = enqueue("x0001a", T0);
    const again = enqueue("x0001b", T0 + HOUR);
    expect(first.created).toBe(true);
    expect(again.created).toBe(false);
    expect(again.execution.id).toBe("x0001a");
    tick(s, T0 + 25 * HOUR);
    expect(enqueue("x0001c", T0 + 25 * HOUR).execution.id).toBe("x0001c");
  });

  it("a delayed enqueue is scheduled, staged ready shortly before its time, and handed out at its time", () => {
    const s = new ShardState(T0);
    const r = s.apply({ type: "exec.enqueue", at: T0, tenant: "t", executionId: "x0001a", spec: parseEnqueueBody({ queue: "q", delayMs: 5000 }, DEFAULT_LIMITS) }) as ExecutionResult;
    // delayMs is resolved to runAtMs at the edge.
    expect(r.execution.state).toBe("scheduled");
    expect(r.execution.scheduledAt).toBe(T0 + 5000);
    const r2 = s.apply({ type: "exec.enqueue", at: T0, tenant: "t", executionId: "x0001b", spec: parseEnqueueBody({ queue: "q", runAt: T0 + 5000 }, DEFAULT_LIMITS) }) as ExecutionResult;
    expect(r2.execution.state).toBe("scheduled");
    expect(r2.execution.readyAt).toBe(T0 + 5000);
    tick(s, T0 + 4999 - EXECUTION_STAGE_LEAD_MS);
    expect(r2.execution.state).toBe("scheduled");
    tick(s, T0 + 5000 - EXECUTION_STAGE_LEAD_MS);
    expect(r2.execution.state).toBe("ready");
    // Staged: not handed out before its time, and the caller learns when to look again.
    expect(s.readyDepth("q")).toBe(0);
    expect(s.takeReady("q", null, 10, T0 + 4999)).toEqual({ items: [], retryAt: T0 + 5000 });
    const taken = s.takeReady("q", null, 10, T0 + 5000);
    expect(taken.items.map((e) => e.id)).toEqual(["x0001a", "x0001b"]);
    expect(taken.retryAt).toBeNull();
  });

  it("finished executions are forgotten after the retention window", () => {
    const s = new ShardState(T0, { ...DEFAULT_SHARD_LIMITS, finishedRetentionMs: HOUR });
    s.apply({ type: "exec.enqueue", at: T0, tenant: "t", executionId: "x0001a", spec: parseEnqueueBody({ queue: "q" }, DEFAULT_LIMITS) });
    s.apply({ type: "exec.cancel", at: T0, tenant: "t", executionId: "x0001a" });
    tick(s, T0 + HOUR - 1);
    expect(s.getExecution("t", "x0001a")?.state).toBe("canceled");
    tick(s, T0 + HOUR);
    expect(s.getExecution("t", "x0001a")).toBeUndefined();
  });
});

  it("history lists newest first in the order ids were made, also within one millisecond and across slots", () => {
    const s = new ShardState(T0);
    // One node's ids in one ms: the slot prefix is a hash (ffff before 0001), the counter is not.
    const ids = ["xffff" + "m5ab0001", "x0001" + "m5ab0002", "x8000" + "m5ab0003", "x0002" + "m5ab0004"];
    for (const id of ids) s.apply({ type: "exec.enqueue", at: T0, tenant: "t", executionId: id, spec: parseEnqueueBody({ queue: "q" }, DEFAULT_LIMITS) });
    const newestFirst = [...ids].reverse();
    expect(s.listExecutions("t", { limit: 10 }).map((e) => e.id)).toEqual(newestFirst);
    const page1 = s.listExecutions("t", { limit: 2 });
    const last = page1[page1.length - 1]!;
    const page2 = s.listExecutions("t", { limit: 10 }, { live: true, createdAt: last.createdAt, id: last.id });
    expect([...page1, ...page2].map((e) => e.id)).toEqual(newestFirst);
  });

describe("shard state: determinism and snapshots", () => {
  const jobBodies = [
    { queue: "a", every: "1m" },
    { queue: "a", every: "90s", concurrency: { limit: 1, overlap: "queue" } },
    { queue: "b", cron: "*/2 * * * *", timezone: "Europe/Berlin" },
    { queue: "b", every: "5m", misfire: { policy: "skip", graceMs: 1000 }, maxRuns: 4 },
    { queue: "c", every: "30s", concurrency: { limit: 2, overlap: "buffer-one" }, jitterMs: 5000 },
  ];
  const recordArb = fc.oneof(
    fc.record({ kind: fc.constant("put"), job: fc.integer({ min: 0, max: 5 }), body: fc.integer({ min: 0, max: jobBodies.length - 1 }) }),
    fc.record({ kind: fc.constantFrom("pause", "resume", "delete", "trigger"), job: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ kind: fc.constant("enqueue"), key: fc.option(fc.constantFrom("k1", "k2")), delay: fc.integer({ min: 0, max: 10 * MIN }) }),
    fc.record({ kind: fc.constant("cancel"), pick: fc.nat() }),
    fc.record({ kind: fc.constant("tick"), advance: fc.integer({ min: 0, max: 20 * MIN }) }),
  );

  function toRecords(ops: Array<Record<string, unknown>>): ShardRecord[] {
    let at = T0;
    let n = 0;
    const ids: string[] = [];
    const out: ShardRecord[] = [];
    for (const op of ops) {
      const jobId = `j${String(op.job)}`;
      switch (op.kind) {
        case "put":
          out.push({ type: "job.put", at, tenant: "t", jobId, specJson: JSON.stringify(parseJobBody(jobBodies[op.body as number]!, DEFAULT_LIMITS)), ifMatch: null });
          break;
        case "pause":
        case "resume":
          out.push({ type: op.kind === "pause" ? "job.pause" : "job.resume", at, tenant: "t", jobId });
          break;
        case "delete":
          out.push({ type: "job.delete", at, tenant: "t", jobId, cancelRunning: n % 2 === 0 });
          break;
        case "trigger":
          out.push({ type: "job.trigger", at, tenant: "t", jobId, executionId: `${jobId}:m${n++}`, payload: null, hasPayload: false, idempotencyKey: null });
          break;
        case "enqueue": {
          const id = `x0000e${n++}`;
          ids.push(id);
          const body = { queue: "q", runAt: at + (op.delay as number), ...(op.key ? { idempotencyKey: op.key } : {}) };
          out.push({ type: "exec.enqueue", at, tenant: "t", executionId: id, spec: parseEnqueueBody(body, DEFAULT_LIMITS) });
          break;
        }
        case "cancel":
          if (ids.length > 0) out.push({ type: "exec.cancel", at, tenant: "t", executionId: ids[(op.pick as number) % ids.length]! });
          break;
        case "tick":
          at += op.advance as number;
          out.push({ type: "tick", at });
          break;
      }
    }
    return out;
  }

  const clone = <T>(v: T): T => structuredClone(v);
  const outcome = (r: unknown) => (r instanceof CronwheelError ? r.code : JSON.stringify(r, (_k, v) => (typeof v === "object" && v !== null && "wheelSlot" in v ? (v as { id: string }).id : v)));

  it("two replicas applying the same records agree, also when one restarts from a snapshot midway", () => {
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 80 }), fc.nat(), (ops, cut) => {
        const records = toRecords(ops);
        const a = new ShardState(T0);
        let b = new ShardState(T0);
        const split = records.length === 0 ? 0 : cut % records.length;
        records.forEach((r, i) => {
          if (i === split) b = ShardState.fromSnapshot(clone(b.toSnapshot()));
          expect(outcome(b.apply(clone(r)))).toEqual(outcome(a.apply(clone(r))));
        });
        expect(clone(b.toSnapshot())).toEqual(clone(a.toSnapshot()));
        // The wheels may differ inside (a restored wheel is built afresh) but must hand out the same work.
        const later: ShardRecord = { type: "tick", at: (records.at(-1)?.at ?? T0) + 30 * MIN };
        expect(outcome(b.apply(clone(later)))).toEqual(outcome(a.apply(clone(later))));
        expect(clone(b.toSnapshot())).toEqual(clone(a.toSnapshot()));
      }),
      { numRuns: 200 },
    );
  });

  it("every execution is created at most once and active counts never go negative", () => {
    fc.assert(
      fc.property(fc.array(recordArb, { maxLength: 120 }), (ops) => {
        const s = new ShardState(T0);
        for (const r of toRecords(ops)) s.apply(r);
        // Executions of a deleted job keep running; a job re-put under the same id starts counting afresh.
        const deleted = new Set(ops.filter((o) => o.kind === "delete").map((o) => `j${String((o as { job: number }).job)}`));
        for (const job of s.jobs.values()) {
          if (deleted.has(job.id)) continue;
          expect(job.activeCount).toBeGreaterThanOrEqual(0);
          const limit = job.spec.concurrency.limit;
          const active = [...s.executions.valuesOf("t")].filter((e) => e.jobId === job.id && !isTerminal(e.state) && !e.waitingForSlot);
          expect(active.length).toBe(job.activeCount);
          // A replace that lowers the limit does not evict what the old limit admitted.
          if (limit !== null && job.spec.concurrency.overlap !== "allow" && job.version === 1) expect(active.length).toBeLessThanOrEqual(limit);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe("shard state: a job deleted and put again under the same id", () => {
  it("the old incarnation's runs leave the new job's counters alone, before and after a snapshot", () => {
    const s = new ShardState(T0);
    put(s, "j", { queue: "q", every: "1m", concurrency: { limit: 1 } }, T0);
    tickAll(s, T0 + MIN);
    const [old] = executionsOf(s, "j");
    const claimed = s.apply({ type: "exec.claim", at: T0 + MIN, workerId: "w", items: [{ tenant: "t", executionId: old!.id }] }) as Array<{ ok: boolean }>;
    expect(claimed[0]!.ok).toBe(true);
    // Deleted with its run left running, then put again: a fresh job with fresh counters.
    expect(s.apply({ type: "job.delete", at: T0 + MIN + 1, tenant: "t", jobId: "j", cancelRunning: false })).not.toBeInstanceOf(CronwheelError);
    put(s, "j", { queue: "q", every: "1m", concurrency: { limit: 1 } }, T0 + MIN + 2);
    const again = ShardState.fromSnapshot(s.toSnapshot());
    for (const state of [s, again]) {
      // The old run ends: it must not release a slot of the new job (this used to throw
      // "active count below zero" in apply, and stop the shard for good).
      const report = state.apply({ type: "exec.report", at: T0 + MIN + 3, workerId: "w", items: [{ tenant: "t", executionId: old!.id, fence: old!.fence, kind: "succeeded" }] });
      expect((report as Array<{ ok: boolean }>)[0]!.ok).toBe(true);
      const job = state.getJob("t", "j")!;
      expect([job.activeCount, job.leasedCount]).toEqual([0, 0]);
      // The new incarnation fires and runs under its own limit.
      tickAll(state, T0 + 3 * MIN);
      const fresh = [...state.executions.valuesOf("t")].filter((e) => e.jobId === "j" && e.state === "ready");
      expect(fresh.length).toBeGreaterThan(0);
      expect(job.activeCount).toBe(1);
    }
  });
});

describe("shard state: idempotency keys and ordering keys", () => {
  it("a key deduplicates among enqueues with the same ordering key (or none), not across ordering keys", () => {
    const s = new ShardState(T0);
    const enqueue = (id: string, body: Record<string, unknown>) =>
      s.apply({ type: "exec.enqueue", at: T0, tenant: "t", executionId: id, spec: parseEnqueueBody({ queue: "q", ...body }, DEFAULT_LIMITS) }) as ExecutionResult;
    expect(enqueue("x1", { idempotencyKey: "k" }).execution.id).toBe("x1");
    expect(enqueue("x2", { idempotencyKey: "k" })).toMatchObject({ created: false, execution: { id: "x1" } });
    expect(enqueue("x3", { idempotencyKey: "k", orderingKey: "a" })).toMatchObject({ created: true, execution: { id: "x3" } });
    expect(enqueue("x4", { idempotencyKey: "k", orderingKey: "a" })).toMatchObject({ created: false, execution: { id: "x3" } });
    expect(enqueue("x5", { idempotencyKey: "k", orderingKey: "b" })).toMatchObject({ created: true, execution: { id: "x5" } });
  });
});

describe("shard state: replicas agree whatever their local clock", () => {
  it("a state created later (a replica catching up, a restart replaying its log) applies old records as the first one did", () => {
    const records: ShardRecord[] = [];
    const add = (r: ShardRecord) => records.push(r);
    add({ type: "job.put", at: T0, tenant: "t", jobId: "j", specJson: JSON.stringify(parseJobBody({ queue: "q", every: "1m", retry: { maxAttempts: 3 } }, DEFAULT_LIMITS)), ifMatch: null });
    add({ type: "exec.enqueue", at: T0 + 1, tenant: "t", executionId: "x1", spec: parseEnqueueBody({ queue: "q", retry: { maxAttempts: 3, backoff: { initialMs: 1000 } } }, DEFAULT_LIMITS) });
    add({ type: "exec.claim", at: T0 + 2, workerId: "w", items: [{ tenant: "t", executionId: "x1" }] });
    add({ type: "exec.report", at: T0 + 3, workerId: "w", items: [{ tenant: "t", executionId: "x1", fence: 1, kind: "failed", error: "boom", retryable: true }] });
    add({ type: "tick", at: T0 + 2_000 });
    add({ type: "exec.claim", at: T0 + 2_001, workerId: "w", items: [{ tenant: "t", executionId: "x1" }] });
    add({ type: "tick", at: T0 + MIN });
    const first = new ShardState(T0);
    const late = new ShardState(T0 + HOUR); // e.g. its node restarted an hour later and replays
    const outcomes = records.map((r) => [first.apply(r), late.apply(r)]);
    expect(JSON.stringify(late.toSnapshot())).toBe(JSON.stringify(first.toSnapshot()));
    // The second claim (the retry, due at T0 + 3 + 1000) was granted on both.
    expect((outcomes[5]![1] as Array<{ ok: boolean }>)[0]!.ok).toBe(true);
  });
});

describe("shard state: times a request leaves open are the shard's", () => {
  it("an every job without startAt is anchored at its put's record time; delayMs counts from the enqueue's", () => {
    // The node that parsed the request may have its clock set wrong; the record's time (stamped
    // by the leader with the replicas' median clock) is the shard's, and the same on every replica.
    const s = new ShardState(T0);
    const at = T0 + 12_345;
    const job = put(s, "j", { queue: "q", every: "2s" }, at).job;
    expect(job.spec.schedule.anchorMs).toBe(at);
    expect(job.nextFireAt).toBe(at + 2_000);
    const replaced = put(s, "j", { queue: "q", every: "5s" }, at + 1_000).job;
    expect(replaced.nextFireAt).toBe(at + 1_000 + 5_000);
    const delayed = s.apply({ type: "exec.enqueue", at: at + 1_007, tenant: "t", executionId: "x0001d", spec: parseEnqueueBody({ queue: "q", delayMs: 3_000 }, DEFAULT_LIMITS) }) as ExecutionResult;
    expect(delayed.execution.scheduledAt).toBe(at + 1_007 + 3_000);
    // Records written when the edge resolved both times keep them.
    const old = s.apply({ type: "exec.enqueue", at: at + 1_009, tenant: "t", executionId: "x0001e", spec: { ...parseEnqueueBody({ queue: "q", delayMs: 3_000 }, DEFAULT_LIMITS), runAtMs: at + 3_001 } }) as ExecutionResult;
    expect(old.execution.scheduledAt).toBe(at + 3_001);
  });
});

describe("shard state: an enqueue batch record", () => {
  it("applies its items as single enqueues at its time would, one after another, each with its own answer", () => {
    const bodies = [{ queue: "q", payload: 1 }, { queue: "q", idempotencyKey: "k" }, { queue: "q", idempotencyKey: "k" }, { queue: "q", orderingKey: "o" }, { queue: "q", orderingKey: "o", delayMs: 500 }];
    const items = bodies.map((b, i) => ({ executionId: `x0001b${i}`, spec: parseEnqueueBody(b, DEFAULT_LIMITS) }));
    items.push({ executionId: "x0001b0", spec: parseEnqueueBody({ queue: "q" }, DEFAULT_LIMITS) }); // an id already taken
    const batched = new ShardState(T0);
    const answers = batched.apply({ type: "exec.enqueue-batch", at: T0 + 5, tenant: "t", items }) as Array<ExecutionResult | CronwheelError>;
    const single = new ShardState(T0);
    const expected = items.map((item) => single.apply({ type: "exec.enqueue", at: T0 + 5, tenant: "t", ...item }));
    expect(JSON.stringify(batched.toSnapshot())).toBe(JSON.stringify(single.toSnapshot()));
    expect(answers.map((a) => (a instanceof CronwheelError ? a.code : [a.execution.id, a.created]))).toEqual(
      expected.map((a) => (a instanceof CronwheelError ? a.code : [(a as ExecutionResult).execution.id, (a as ExecutionResult).created])),
    );
    expect(answers.map((a) => (a instanceof CronwheelError ? a.code : a.created))).toEqual([true, true, false, true, true, "conflict"]);
  });
});


describe("shard state: an instance is created once, whatever memory forgot", () => {
  /** Memory keeps one finished execution, for a minute: everything older is only in history. */
  const forgetful = { ...DEFAULT_SHARD_LIMITS, finishedPerShardMax: 1, finishedRetentionMs: MIN };

  /** Claim and succeed every ready execution of the shard (a worker that runs everything at once). */
  function runReady(s: ShardState, at: number): void {
    for (const e of [...s.executions.valuesOf("t")]) {
      if (e.state !== "ready" || e.readyAt > at) continue;
      const [claim] = s.apply({ type: "exec.claim", at, workerId: "w", items: [{ tenant: "t", executionId: e.id }] }) as Array<{ ok: boolean; fence: number }>;
      if (claim?.ok) s.apply({ type: "exec.report", at, workerId: "w", items: [{ tenant: "t", executionId: e.id, fence: claim.fence, kind: "succeeded" }] });
    }
  }

  it("a one-time job PUT again after its execution was forgotten does not fire again", () => {
    const s = new ShardState(T0, forgetful);
    put(s, "once", { queue: "q", at: T0 + MIN }, T0);
    tickAll(s, T0 + MIN);
    runReady(s, T0 + MIN);
    put(s, "other", { queue: "q", at: T0 + 2 * MIN }, T0 + MIN);
    tickAll(s, T0 + 2 * MIN);
    runReady(s, T0 + 2 * MIN);
    tickAll(s, T0 + 5 * MIN);
    expect(s.getExecution("t", `once:${T0 + MIN}`)).toBeUndefined(); // forgotten by memory
    const again = put(s, "once", { queue: "q", at: T0 + MIN }, T0 + 5 * MIN);
    expect(again.created).toBe(false);
    tickAll(s, T0 + 6 * MIN);
    expect(s.getExecution("t", `once:${T0 + MIN}`)).toBeUndefined();
    expect(s.getJob("t", "once")!.state).toBe("completed");
  });

  it("a backfill over a range memory forgot counts its fires as existing; a job made again after a delete does too", () => {
    const s = new ShardState(T0, forgetful);
    put(s, "m", { queue: "q", every: "1m", startAt: T0 }, T0);
    for (let t = T0; t <= T0 + 10 * MIN; t += MIN) {
      tickAll(s, t);
      runReady(s, t);
    }
    expect(executionsOf(s, "m").length).toBeLessThan(3);
    const backfill = (at: number) => s.apply({ type: "job.backfill", at, tenant: "t", jobId: "m", fromMs: T0, toMs: T0 + 10 * MIN + 1 });
    expect(backfill(T0 + 10 * MIN)).toEqual({ created: 0, skipped: 0, existing: 11, truncated: false });
    s.apply({ type: "job.delete", at: T0 + 10 * MIN, tenant: "t", jobId: "m", cancelRunning: true });
    put(s, "m", { queue: "q", every: "1m", startAt: T0 }, T0 + 10 * MIN);
    expect(backfill(T0 + 10 * MIN)).toEqual({ created: 0, skipped: 0, existing: 11, truncated: false });
    // Fires the old schedule never decided are still created: a PUT that jumped over two fires.
    s.apply({ type: "job.pause", at: T0 + 10 * MIN, tenant: "t", jobId: "m" });
    put(s, "m", { queue: "q", every: "1m", startAt: T0 }, T0 + 13 * MIN + 30_000);
    const wider = s.apply({ type: "job.backfill", at: T0 + 14 * MIN, tenant: "t", jobId: "m", fromMs: T0, toMs: T0 + 14 * MIN });
    expect(wider).toEqual({ created: 3, skipped: 0, existing: 11, truncated: false });
  });

  it("a backfill over another schedule's instants skips only the instants that schedule decided", () => {
    const s = new ShardState(T0, forgetful);
    put(s, "h", { queue: "q", cron: "0 * * * *" }, T0);
    tickAll(s, T0 + 3 * HOUR);
    runReady(s, T0 + 3 * HOUR);
    put(s, "h", { queue: "q", cron: "*/30 * * * *" }, T0 + 3 * HOUR);
    const r = s.apply({ type: "job.backfill", at: T0 + 3 * HOUR, tenant: "t", jobId: "h", fromMs: T0, toMs: T0 + 3 * HOUR + 1 });
    // The hourly fires 0:00 … 3:00 ran; the half hours never did.
    expect(r).toEqual({ created: 3, skipped: 0, existing: 4, truncated: false });
  });

  it("the ledger survives a snapshot", () => {
    const s = new ShardState(T0, forgetful);
    put(s, "once", { queue: "q", at: T0 + MIN }, T0);
    tickAll(s, T0 + MIN);
    runReady(s, T0 + MIN);
    put(s, "once", { queue: "q", at: T0 + MIN, payload: 1 }, T0 + MIN); // closes the span into the ledger
    const restored = ShardState.fromSnapshot(structuredClone(s.toSnapshot()), forgetful);
    tickAll(restored, T0 + 10 * MIN);
    runReady(restored, T0 + 10 * MIN);
    put(restored, "once", { queue: "q", at: T0 + MIN }, T0 + 10 * MIN);
    tickAll(restored, T0 + 11 * MIN);
    expect(executionsOf(restored, "once")).toEqual([]);
  });

  it("no job instance is ever created twice, over random puts, deletes, backfills, runs and time", () => {
    const bodies = [
      { queue: "a", every: "1m", startAt: T0 },
      { queue: "a", every: "2m", startAt: T0 },
      { queue: "b", cron: "*/3 * * * *" },
      { queue: "b", at: T0 + 7 * MIN },
      { queue: "c", every: "1m", startAt: T0, concurrency: { limit: 1, overlap: "skip" } },
    ];
    const opArb = fc.oneof(
      fc.record({ kind: fc.constant("put"), job: fc.integer({ min: 0, max: 2 }), body: fc.integer({ min: 0, max: bodies.length - 1 }) }),
      fc.record({ kind: fc.constantFrom("delete", "pause", "resume", "run"), job: fc.integer({ min: 0, max: 2 }) }),
      fc.record({ kind: fc.constant("backfill"), job: fc.integer({ min: 0, max: 2 }), from: fc.integer({ min: -10, max: 60 }), span: fc.integer({ min: 1, max: 30 }) }),
      fc.record({ kind: fc.constant("tick"), advance: fc.integer({ min: 0, max: 5 * MIN }) }),
    );
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 120 }), fc.boolean(), (ops, withSnapshot) => {
        let s = new ShardState(T0, forgetful);
        const ended = new Map<string, number>();
        const sink = (e: Execution) => {
          if (e.jobId !== null && !e.id.includes(":m") && !e.id.includes(":r")) ended.set(e.id, (ended.get(e.id) ?? 0) + 1);
        };
        s.setFinishedSink(sink);
        const live = new Set<string>();
        let at = T0;
        ops.forEach((op, i) => {
          const jobId = `j${String((op as { job?: number }).job)}`;
          if (withSnapshot && i === Math.floor(ops.length / 2)) {
            s = ShardState.fromSnapshot(structuredClone(s.toSnapshot()), forgetful);
            s.setFinishedSink(sink);
          }
          switch (op.kind) {
            case "put":
              s.apply({ type: "job.put", at, tenant: "t", jobId, specJson: JSON.stringify(parseJobBody(bodies[op.body]!, DEFAULT_LIMITS)), ifMatch: null });
              break;
            case "delete":
              s.apply({ type: "job.delete", at, tenant: "t", jobId, cancelRunning: true });
              break;
            case "pause":
            case "resume":
              s.apply({ type: op.kind === "pause" ? "job.pause" : "job.resume", at, tenant: "t", jobId });
              break;
            case "run":
              runReady(s, at);
              break;
            case "backfill":
              s.apply({ type: "job.backfill", at, tenant: "t", jobId, fromMs: T0 + op.from * MIN, toMs: T0 + (op.from + op.span) * MIN });
              break;
            case "tick":
              at += op.advance;
              tickAll(s, at);
              break;
          }
          // A fire id seen live after it ended was created twice.
          for (const e of s.executions.valuesOf("t")) {
            if (e.jobId === null || e.id.includes(":m") || e.id.includes(":r") || isTerminal(e.state)) continue;
            expect(ended.has(e.id), `${e.id} live again after it ended`).toBe(false);
            live.add(e.id);
          }
        });
        for (const [id, n] of ended) expect(n, `${id} ended ${n} times`).toBe(1);
      }),
      { numRuns: 300 },
    );
  });
});

describe("shard state: idempotency keys outlive memory's window", () => {
  const forgetful = { ...DEFAULT_SHARD_LIMITS, finishedPerShardMax: 1, finishedRetentionMs: MIN };
  const enqueue = (s: ShardState, id: string, body: Record<string, unknown>, at: number) =>
    s.apply({ type: "exec.enqueue", at, tenant: "t", executionId: id, spec: parseEnqueueBody(body, DEFAULT_LIMITS) });

  it("a key whose execution memory forgot answers with that execution's id, not a new one; another body is a conflict", () => {
    const s = new ShardState(T0, forgetful);
    const first = enqueue(s, "x0000a", { queue: "q", idempotencyKey: "k", payload: { n: 1 } }, T0) as ExecutionResult;
    expect(first.created).toBe(true);
    s.apply({ type: "exec.cancel", at: T0 + 1, tenant: "t", executionId: "x0000a" });
    enqueue(s, "x0000b", { queue: "q" }, T0 + 2);
    s.apply({ type: "exec.cancel", at: T0 + 3, tenant: "t", executionId: "x0000b" });
    expect(s.getExecution("t", "x0000a")).toBeUndefined();
    expect(enqueue(s, "x0000c", { queue: "q", idempotencyKey: "k", payload: { n: 1 } }, T0 + HOUR)).toEqual({ duplicateOf: "x0000a", created: false });
    const other = enqueue(s, "x0000d", { queue: "q", idempotencyKey: "k", payload: { n: 2 } }, T0 + HOUR);
    expect(other).toBeInstanceOf(CronwheelError);
    expect((other as CronwheelError).code).toBe("conflict");
    expect((other as CronwheelError).details).toEqual({ executionId: "x0000a" });
    expect(s.getExecution("t", "x0000c")).toBeUndefined();
    // After the window the key is free again.
    expect((enqueue(s, "x0000e", { queue: "q", idempotencyKey: "k", payload: { n: 2 } }, T0 + 25 * HOUR) as ExecutionResult).created).toBe(true);
  });

  it("the same key on a trigger of another job, or on an enqueue, is another request: a conflict", () => {
    const s = new ShardState(T0);
    put(s, "a", { queue: "q" }, T0);
    put(s, "b", { queue: "q" }, T0);
    const trigger = (jobId: string, id: string) => s.apply({ type: "job.trigger", at: T0 + 1, tenant: "t", jobId, executionId: id, payload: null, hasPayload: false, idempotencyKey: "k" });
    expect((trigger("a", "a:m1") as ExecutionResult).created).toBe(true);
    expect((trigger("a", "a:m2") as ExecutionResult).execution.id).toBe("a:m1");
    expect((trigger("b", "b:m1") as CronwheelError).code).toBe("conflict");
    expect((enqueue(s, "x0000f", { queue: "q", idempotencyKey: "k" }, T0 + 2) as CronwheelError).code).toBe("conflict");
  });
});
