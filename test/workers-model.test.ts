/**
 * Simulated workers against the shard state machine (fast-check): random handler durations,
 * failures, crashes (no report: the lease expires), late reports with old fences. Invariants:
 * a job's concurrency limit is never exceeded by leased executions; executions sharing an
 * ordering key never overlap and start in enqueue order; a report is accepted only with the
 * current fence; a terminal state never changes; and once workers behave, everything ends.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_LIMITS, parseEnqueueBody, parseJobBody } from "../src/api/validation.js";
import { isLeased, isTerminal, type Execution } from "../src/core/execution.js";
import type { ShardRecord } from "../src/core/records.js";
import { ShardState, type ClaimOutcome, type ReportOutcome } from "../src/core/shard-state.js";

const T0 = Date.UTC(2025, 0, 1);
const QUEUE = "work";

interface Held {
  id: string;
  fence: number;
  doneAt: number;
  outcome: "succeed" | "fail" | "fail-final" | "crash";
  startedReported: boolean;
}

type Op =
  | { kind: "enqueue"; key: string | null; delay: number }
  | { kind: "job"; job: number; limit: number }
  | { kind: "claim"; worker: number; n: number }
  | { kind: "advance"; ms: number }
  | { kind: "heartbeat"; worker: number }
  | { kind: "cancel"; pick: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("enqueue" as const), key: fc.option(fc.constantFrom("k1", "k2", "k3")), delay: fc.integer({ min: 0, max: 3_000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("job" as const), job: fc.integer({ min: 0, max: 2 }), limit: fc.integer({ min: 1, max: 2 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("claim" as const), worker: fc.integer({ min: 0, max: 2 }), n: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 4_000 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("heartbeat" as const), worker: fc.integer({ min: 0, max: 2 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cancel" as const), pick: fc.nat() }) },
);

class Simulation {
  readonly state = new ShardState(T0);
  now = T0;
  private seq = 0;
  readonly enqueued: Execution[] = [];
  readonly held: Held[][] = [[], [], []];
  readonly terminalSeen = new Map<string, string>();
  readonly firstClaimOrder = new Map<string, string[]>();

  constructor(private readonly rand: () => number) {}

  apply(record: ShardRecord): unknown {
    const result = this.state.apply(record);
    this.checkInvariants();
    return result;
  }

  run(op: Op): void {
    switch (op.kind) {
      case "enqueue": {
        const body = { queue: QUEUE, runAt: this.now + op.delay, retry: { maxAttempts: 3, backoff: { type: "fixed", initialMs: 500, maxMs: 500, jitter: "none" } }, leaseMs: 2_000, timeoutMs: 10_000, ...(op.key ? { orderingKey: op.key } : {}) };
        const r = this.apply({ type: "exec.enqueue", at: this.now, tenant: "t", executionId: `x0000e${this.seq++}`, spec: parseEnqueueBody(body, DEFAULT_LIMITS) }) as { execution: Execution };
        this.enqueued.push(r.execution);
        break;
      }
      case "job": {
        const body = { queue: QUEUE, every: "2s", concurrency: { limit: op.limit, overlap: "allow" }, leaseMs: 2_000, retry: { maxAttempts: 2, backoff: { type: "fixed", initialMs: 100, maxMs: 100, jitter: "none" } } };
        this.apply({ type: "job.put", at: this.now, tenant: "t", jobId: `job${op.job}`, specJson: JSON.stringify(parseJobBody(body, DEFAULT_LIMITS)), ifMatch: null });
        break;
      }
      case "claim": {
        const { items } = this.state.takeReady(QUEUE, null, op.n, this.now);
        if (items.length === 0) break;
        const results = this.apply({ type: "exec.claim", at: this.now, workerId: `w${op.worker}`, items: items.map((e) => ({ tenant: "t", executionId: e.id })) }) as ClaimOutcome[];
        results.forEach((r, i) => {
          if (!r.ok) {
            this.state.requeue(items[i]!);
            return;
          }
          const e = r.execution;
          if (e.orderingKey !== null && e.attempt === 1) {
            const list = this.firstClaimOrder.get(e.orderingKey) ?? [];
            list.push(e.id);
            this.firstClaimOrder.set(e.orderingKey, list);
          }
          const roll = this.rand();
          const outcome = roll < 0.6 ? "succeed" : roll < 0.75 ? "fail" : roll < 0.85 ? "fail-final" : "crash";
          this.held[op.worker]!.push({ id: e.id, fence: e.fence, doneAt: this.now + Math.floor(this.rand() * 5_000), outcome, startedReported: false });
        });
        break;
      }
      case "heartbeat":
        for (const h of this.held[op.worker]!) if (h.outcome !== "crash") this.report(op.worker, h, "heartbeat");
        break;
      case "cancel": {
        if (this.enqueued.length === 0) break;
        const e = this.enqueued[op.pick % this.enqueued.length]!;
        this.apply({ type: "exec.cancel", at: this.now, tenant: "t", executionId: e.id });
        break;
      }
      case "advance":
        this.advance(op.ms);
        break;
    }
  }

  advance(ms: number): void {
    this.now += ms;
    this.apply({ type: "tick", at: this.now });
    this.held.forEach((list, worker) => {
      for (const h of [...list]) {
        if (h.outcome === "crash") {
          // A crashed worker comes back much later and reports anyway: it must be refused.
          if (this.now - h.doneAt > 20_000) {
            this.report(worker, h, "succeeded");
            list.splice(list.indexOf(h), 1);
          }
          continue;
        }
        if (!h.startedReported) {
          this.report(worker, h, "started");
          h.startedReported = true;
        }
        if (h.doneAt > this.now) continue;
        this.report(worker, h, h.outcome === "succeed" ? "succeeded" : "failed", h.outcome === "fail-final" ? false : true);
        list.splice(list.indexOf(h), 1);
      }
    });
  }

  private report(worker: number, h: Held, kind: "started" | "heartbeat" | "succeeded" | "failed", retryable = true): void {
    const e = this.state.getExecution("t", h.id)!;
    const currentFence = isLeased(e.state) ? e.fence : -1;
    const [r] = this.apply({
      type: "exec.report",
      at: this.now,
      workerId: `w${worker}`,
      items: [{ tenant: "t", executionId: h.id, fence: h.fence, kind, result: { ok: true }, error: { message: "boom" }, retryable }],
    }) as ReportOutcome[];
    expect(r!.ok, `report ${kind} with fence ${h.fence} (current ${currentFence})`).toBe(h.fence === currentFence);
  }

  checkInvariants(): void {
    const leasedByKey = new Map<string, number>();
    for (const e of this.state.executions.values()) {
      if (isTerminal(e.state)) {
        const seen = this.terminalSeen.get(e.id);
        if (seen !== undefined) expect(e.state, `terminal state of ${e.id} changed`).toBe(seen);
        this.terminalSeen.set(e.id, e.state);
      } else {
        expect(this.terminalSeen.has(e.id), `${e.id} left its terminal state`).toBe(false);
      }
      if (isLeased(e.state) && e.orderingKey !== null) leasedByKey.set(e.orderingKey, (leasedByKey.get(e.orderingKey) ?? 0) + 1);
    }
    for (const [key, n] of leasedByKey) expect(n, `ordering key ${key} runs ${n} at once`).toBeLessThanOrEqual(1);
    for (const job of this.state.jobs.values()) {
      const leased = [...this.state.executions.values()].filter((e) => e.jobId === job.id && isLeased(e.state)).length;
      expect(job.leasedCount).toBe(leased);
      if (job.spec.concurrency.limit !== null && job.version === 1) expect(leased).toBeLessThanOrEqual(job.spec.concurrency.limit);
    }
  }
}

describe("workers against the shard state machine", () => {
  it("keeps limits, ordering, fences and terminal states under random durations, failures and crashes", () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 1, maxLength: 150 }), fc.integer(), (ops, seed) => {
        let x = seed >>> 0 || 1;
        const rand = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 4294967296);
        const sim = new Simulation(rand);
        for (const op of ops) sim.run(op);
        // Workers now behave: claim everything, let leases and backoffs run out, until all ends.
        for (const job of sim.state.jobs.values()) sim.apply({ type: "job.pause", at: sim.now, tenant: "t", jobId: job.id });
        for (let round = 0; round < 400; round++) {
          sim.run({ kind: "claim", worker: round % 3, n: 10 });
          sim.advance(1_500);
          if ([...sim.state.executions.values()].every((e) => isTerminal(e.state))) break;
        }
        const unfinished = [...sim.state.executions.values()].filter((e) => !isTerminal(e.state));
        expect(unfinished.map((e) => `${e.id}:${e.state}`)).toEqual([]);
        // Ordering keys: first attempts started in enqueue order.
        for (const [key, claimed] of sim.firstClaimOrder) {
          const order = sim.enqueued.filter((e) => e.orderingKey === key).map((e) => e.id);
          expect(claimed).toEqual(order.filter((id) => claimed.includes(id)));
        }
      }),
      { numRuns: 150 },
    );
  });
});
