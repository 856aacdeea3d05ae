import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { TimingWheel, type WheelTimer } from "../src/core/timing-wheel.js";

class Job implements WheelTimer {
  dueAt = 0;
  wheelNext: WheelTimer | null = null;
  wheelPrev: WheelTimer | null = null;
  wheelSlot: unknown | null = null;
  constructor(readonly id: number) {}
}

const secondMs = 1000;
const hourMs = 3_600_000;
const dayMs = 86_400_000;
const yearMs = 365 * dayMs;

/** A cheap check for hot loops (vitest's expect costs microseconds per call). */
function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(message);
}

/** Collects what one advance() hands out. */
function advanceAll(wheel: TimingWheel<Job>, nowMs: number, limit = Infinity): Job[] {
  const out: Job[] = [];
  const n = wheel.advance(nowMs, limit, (job) => out.push(job));
  expect(n).toBe(out.length);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Property test against a naive model: a map id -> dueAt, sorted when asked what is due.
// ---------------------------------------------------------------------------------------------

type When =
  | { kind: "past"; backMs: number }
  | { kind: "near"; aheadMs: number }
  | { kind: "far"; aheadMs: number };

type Command =
  | { k: "schedule"; id: number; when: When }
  | { k: "cancel"; id: number }
  | { k: "advance"; jumpMs: number; limit: number; resched: { mod: number; offsetMs: number } | null }
  | { k: "toNext"; limit: number }
  | { k: "beforeNext" };

const jobCount = 24;
/** WHEEL_SOAK=10 runs the property tests ten times longer. */
const soak = Math.max(1, Number(process.env["WHEEL_SOAK"] ?? 1));

const whenArb: fc.Arbitrary<When> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("past" as const), backMs: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 5 * yearMs })) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("near" as const), aheadMs: fc.oneof(fc.integer({ min: 0, max: 10 }), fc.integer({ min: 0, max: 5000 })) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("far" as const), aheadMs: fc.oneof(fc.integer({ min: 0, max: dayMs }), fc.integer({ min: 0, max: 5 * yearMs })) }) },
);

const limitArb = fc.oneof(fc.constant(Infinity), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 30 }));

const jumpArb = fc.oneof(
  fc.constant(0),
  fc.integer({ min: -1000, max: 0 }),
  fc.integer({ min: 0, max: 20 }),
  fc.integer({ min: 0, max: 10_000 }),
  fc.integer({ min: 0, max: dayMs }),
  fc.integer({ min: 0, max: 3 * yearMs }),
);

const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant("schedule" as const), id: fc.integer({ min: 0, max: jobCount - 1 }), when: whenArb }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("cancel" as const), id: fc.integer({ min: 0, max: jobCount - 1 }) }) },
  {
    weight: 5,
    arbitrary: fc.record({
      k: fc.constant("advance" as const),
      jumpMs: jumpArb,
      limit: limitArb,
      resched: fc.option(
        fc.record({
          mod: fc.integer({ min: 1, max: 3 }),
          offsetMs: fc.oneof(fc.integer({ min: -100, max: 0 }), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: yearMs })),
        }),
      ),
    }),
  },
  { weight: 2, arbitrary: fc.record({ k: fc.constant("toNext" as const), limit: limitArb }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("beforeNext" as const) }) },
);

interface Scenario {
  startMs: number;
  slotsPerLevel: number;
  cascadeTimersPerAdvanceMax: number;
  commands: Command[];
}

const scenarioArb = (cascadeMax: fc.Arbitrary<number>, maxCommands: number): fc.Arbitrary<Scenario> =>
  fc.record({
    startMs: fc.oneof(fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 4_000_000_000_000 })),
    slotsPerLevel: fc.constantFrom(2, 4, 8, 64, 64, 256),
    cascadeTimersPerAdvanceMax: cascadeMax,
    // size "max": without it fast-check keeps arrays to about 10 elements whatever maxLength says.
    commands: fc.array(commandArb, { maxLength: maxCommands, size: "max" }),
  });

/**
 * Runs a scenario against the wheel and the model, checking after every command. `exactCounts`:
 * the cascade bound cannot bite, so each advance must hand out exactly min(limit, due) timers;
 * otherwise it may hand out fewer, but always a prefix of the model's due list, and must then say
 * (nextDueAt() <= currentMs) that work is left. Returns the ids handed out, in order.
 */
function runScenario(s: Scenario, exactCounts: boolean): number[] {
  const wheel = new TimingWheel<Job>(s.startMs, { slotsPerLevel: s.slotsPerLevel, cascadeTimersPerAdvanceMax: s.cascadeTimersPerAdvanceMax });
  const jobs = Array.from({ length: jobCount }, (_, i) => new Job(i));
  const model = new Map<number, number>(); // id -> dueAt
  let modelNow = s.startMs;
  const log: number[] = [];

  const checkAdvance = (nowMs: number, limit: number, resched: { mod: number; offsetMs: number } | null): void => {
    const nowEff = Math.max(nowMs, modelNow);
    const due = [...model.entries()].filter(([, d]) => d <= nowEff).sort((a, b) => a[1] - b[1]);
    const expectedCount = Math.min(limit, due.length);
    const handed: Job[] = [];
    const handedDueAt: number[] = [];
    const later: Array<[Job, number]> = [];
    const n = wheel.advance(nowMs, limit, (job) => {
      if (handed.length > jobCount) throw new Error("runaway advance: a timer was handed out twice in one call");
      check(!wheel.isScheduled(job), "handed out while still scheduled");
      check(job.dueAt === model.get(job.id), `handed out job ${job.id} with dueAt ${job.dueAt}, model has ${model.get(job.id)}`);
      handed.push(job);
      handedDueAt.push(job.dueAt);
      if (resched !== null && job.id % resched.mod === 0) {
        const dueAt = nowEff + resched.offsetMs;
        wheel.schedule(job, dueAt);
        later.push([job, dueAt]);
      }
    });
    modelNow = nowEff;
    check(n === handed.length, `returned ${n}, handed out ${handed.length}`);
    check(wheel.currentMs === nowEff, `currentMs ${wheel.currentMs}, expected ${nowEff}`);
    if (exactCounts) check(n === expectedCount, `handed out ${n}, model says ${expectedCount}`);
    else check(n <= expectedCount, `handed out ${n}, model allows ${expectedCount}`);
    // Same dueAts as the model's earliest n (so non-decreasing, earliest first); any member of a
    // tie group at the cut is acceptable, so ids are compared only for membership (above).
    const expectedDueAt = due.slice(0, n).map(([, d]) => d);
    check(handedDueAt.every((d, i) => d === expectedDueAt[i]), `handed out dueAts ${handedDueAt}, model's earliest ${expectedDueAt}`);
    check(new Set(handed.map((j) => j.id)).size === n, "a timer was handed out twice");
    for (const job of handed) {
      model.delete(job.id);
      log.push(job.id);
    }
    for (const [job, dueAt] of later) if (job.wheelSlot !== null) model.set(job.id, dueAt);
    if (!exactCounts && n < expectedCount) {
      const next = wheel.nextDueAt();
      check(next !== null && next <= wheel.currentMs, `stopped at a bound but nextDueAt() is ${next}`);
    }
  };

  for (const c of s.commands) {
    switch (c.k) {
      case "schedule": {
        const base = wheel.currentMs;
        const dueAt = c.when.kind === "past" ? base - c.when.backMs : base + c.when.aheadMs;
        wheel.schedule(jobs[c.id]!, dueAt);
        model.set(c.id, dueAt);
        break;
      }
      case "cancel": {
        expect(wheel.cancel(jobs[c.id]!)).toBe(model.delete(c.id));
        break;
      }
      case "advance":
        checkAdvance(wheel.currentMs + c.jumpMs, c.limit, c.resched);
        break;
      case "toNext": {
        const next = wheel.nextDueAt();
        if (next !== null) checkAdvance(next, c.limit, null);
        break;
      }
      case "beforeNext": {
        const next = wheel.nextDueAt();
        if (next !== null && next > wheel.currentMs) {
          expect(wheel.advance(next - 1, Infinity, () => expect.fail("handed out before nextDueAt()"))).toBe(0);
          modelNow = Math.max(modelNow, next - 1);
        }
        break;
      }
    }
    wheel.verify();
    check(wheel.size === model.size, `size ${wheel.size}, model ${model.size}`);
    for (const job of jobs) check(wheel.isScheduled(job) === model.has(job.id), `isScheduled(${job.id}) disagrees with the model`);
    const next = wheel.nextDueAt();
    if (model.size === 0) check(next === null, `nextDueAt() ${next} on an empty wheel`);
    else check(next !== null && next <= Math.min(...model.values()), `nextDueAt() ${next} later than the earliest dueAt`);
  }

  // Drain: everything left comes out, in order, in a bounded number of calls.
  let last = -Infinity;
  let calls = 0;
  while (wheel.size > 0) {
    const next = wheel.nextDueAt()!;
    for (const job of advanceAll(wheel, Math.max(next, wheel.currentMs), exactCounts ? Infinity : 7)) {
      expect(job.dueAt).toBe(model.get(job.id));
      expect(job.dueAt).toBeGreaterThanOrEqual(last);
      last = job.dueAt;
      model.delete(job.id);
      log.push(job.id);
    }
    calls++;
    expect(calls).toBeLessThan(10_000);
  }
  expect(model.size).toBe(0);
  wheel.verify();
  return log;
}

describe("TimingWheel against a naive model", () => {
  it("hands out exactly what the model says is due, earliest first", () => {
    fc.assert(
      fc.property(scenarioArb(fc.constant(1_000_000), 200), (s) => {
        runScenario(s, true);
      }),
      { numRuns: 300 * soak },
    );
  });

  it("with a tiny cascade bound: always a prefix of the due list, and it always finishes", () => {
    fc.assert(
      fc.property(scenarioArb(fc.integer({ min: 1, max: 3 }), 120), (s) => {
        runScenario(s, false);
      }),
      { numRuns: 150 * soak },
    );
  });

  it("is deterministic: the same calls hand out the same ids in the same order", () => {
    fc.assert(
      fc.property(scenarioArb(fc.integer({ min: 1, max: 1_000_000 }), 120), (s) => {
        expect(runScenario(s, s.cascadeTimersPerAdvanceMax >= 1_000)).toEqual(runScenario(s, s.cascadeTimersPerAdvanceMax >= 1_000));
      }),
      { numRuns: 50 * soak },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Unit tests
// ---------------------------------------------------------------------------------------------

describe("TimingWheel", () => {
  it("follows the worked example of the module header", () => {
    const wheel = new TimingWheel<Job>(0, { slotsPerLevel: 4 });
    const [a, b, c, d] = [new Job(1), new Job(2), new Job(3), new Job(4)];
    wheel.schedule(a, 2);
    wheel.schedule(b, 13);
    wheel.schedule(c, 50);
    wheel.schedule(d, 70);
    expect(wheel.levelCount).toBe(4);
    wheel.verify();
    // Driven the way the node drives it: arm for nextDueAt(), advance there, repeat.
    const stops: number[] = [];
    const fired: Array<[number, number]> = [];
    for (let next = wheel.nextDueAt(); next !== null; next = wheel.nextDueAt()) {
      stops.push(next);
      check(stops.length < 100, "runaway driver loop");
      for (const job of advanceAll(wheel, next)) fired.push([job.id, wheel.currentMs]);
      wheel.verify();
    }
    expect(stops).toEqual([2, 12, 13, 48, 50, 64, 68, 70]);
    expect(fired).toEqual([[1, 2], [2, 13], [3, 50], [4, 70]]);
    // And in one call, the same order.
    const again = new TimingWheel<Job>(0, { slotsPerLevel: 4 });
    for (const [job, dueAt] of [[c, 50], [a, 2], [d, 70], [b, 13]] as const) again.schedule(job, dueAt);
    expect(advanceAll(again, 100).map((j) => j.id)).toEqual([1, 2, 3, 4]);
    expect(again.currentMs).toBe(100);
  });

  it.each([64, 2])("fires a timer two years out exactly on its ms, after cascading down (slotsPerLevel %i)", (slots) => {
    const start = 1_700_000_000_123;
    const wheel = new TimingWheel<Job>(start, { slotsPerLevel: slots });
    const job = new Job(1);
    const dueAt = start + 2 * yearMs + 12_345;
    wheel.schedule(job, dueAt);
    let wakeups = 0;
    let firedAt = -1;
    for (let next = wheel.nextDueAt(); next !== null; next = wheel.nextDueAt()) {
      expect(next).toBeGreaterThan(wheel.currentMs);
      expect(next).toBeLessThanOrEqual(dueAt);
      expect(wheel.advance(next - 1, Infinity, () => expect.fail("early"))).toBe(0);
      wheel.advance(next, Infinity, () => (firedAt = wheel.currentMs));
      wheel.verify();
      wakeups++;
      check(wakeups < 1000, "runaway driver loop");
    }
    expect(firedAt).toBe(dueAt);
    expect(job.wheelSlot).toBeNull();
    // Each wakeup is one cascade (or the fire): at most a few per level, never per tick.
    expect(wakeups).toBeLessThanOrEqual(wheel.levelCount * 2);
  });

  it("fires a far timer exactly even when advanced in big uneven jumps", () => {
    const wheel = new TimingWheel<Job>(0);
    const job = new Job(1);
    const dueAt = 2 * yearMs + 7;
    wheel.schedule(job, dueAt);
    let t = 0;
    for (const jump of [hourMs * 5000, 12_345_678, dayMs * 300, dayMs * 200]) {
      t += jump;
      expect(advanceAll(wheel, t)).toEqual([]);
    }
    expect(advanceAll(wheel, dueAt - 1)).toEqual([]);
    expect(advanceAll(wheel, dueAt)).toEqual([job]);
  });

  it("does little work across an empty hour, and across an empty year", () => {
    const start = 1_700_000_000_000;
    const wheel = new TimingWheel<Job>(start);
    // Timers beyond the hour, so the coarse levels exist and are occupied.
    for (let i = 0; i < 1000; i++) wheel.schedule(new Job(i), start + 2 * dayMs + i * 997 * secondMs);
    wheel.schedule(new Job(-1), start + 3 * yearMs);
    const before = wheel.workUnits;
    expect(advanceAll(wheel, start + hourMs)).toEqual([]);
    const hourWork = wheel.workUnits - before;
    // One scan of each level's bitmap (per level: 1 + at most 4 word reads), not 3,600,000 ticks.
    expect(hourWork).toBeLessThanOrEqual(wheel.levelCount * 5);

    const empty = new TimingWheel<Job>(start);
    const w0 = empty.workUnits;
    expect(advanceAll(empty, start + yearMs)).toEqual([]);
    expect(empty.workUnits - w0).toBeLessThanOrEqual(5);
    expect(empty.nextDueAt()).toBeNull();
  });

  it("schedules 1,000,000 timers and fires all of them, in order, in bounded batches", () => {
    const start = 1_700_000_000_000;
    const wheel = new TimingWheel<Job>(start);
    const n = 1_000_000;
    let seed = 12345;
    const random = (): number => {
      seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
      return seed / 4_294_967_296;
    };
    for (let i = 0; i < n; i++) wheel.schedule(new Job(i), start + Math.floor(random() * dayMs));
    expect(wheel.size).toBe(n);
    let fired = 0;
    let last = -Infinity;
    let ordered = true;
    let early = false;
    let t = start;
    const batchMax = 50_000;
    while (wheel.size > 0) {
      t += Math.floor(random() * 10 * 60 * secondMs);
      check(t < start + 2 * dayMs, "timers left a day after the last was due");
      let handed: number;
      do {
        handed = wheel.advance(t, batchMax, (job) => {
          if (job.dueAt < last) ordered = false;
          if (job.dueAt > t) early = true;
          last = job.dueAt;
          fired++;
        });
      } while (handed === batchMax);
    }
    expect(ordered).toBe(true);
    expect(early).toBe(false);
    expect(fired).toBe(n);
    expect(wheel.nextDueAt()).toBeNull();
  });

  it("hands out overdue timers (scheduled in the past) in dueAt order, before anything later", () => {
    const wheel = new TimingWheel<Job>(10_000);
    const jobs = [500, 9_999, 100, 10_000, 300, 100, 10_001].map((d, i) => {
      const job = new Job(i);
      wheel.schedule(job, d);
      return job;
    });
    wheel.verify();
    expect(wheel.nextDueAt()).toBe(100);
    expect(advanceAll(wheel, 10_000, 3).map((j) => j.dueAt)).toEqual([100, 100, 300]);
    // Scheduled behind the cursor after a limited advance: still comes out first.
    wheel.schedule(new Job(99), 200);
    expect(advanceAll(wheel, 5 /* backwards: treated as currentMs */).map((j) => j.dueAt)).toEqual([200, 500, 9_999, 10_000]);
    expect(wheel.currentMs).toBe(10_000);
    expect(advanceAll(wheel, 10_001)).toEqual([jobs[6]]);
    wheel.verify();
  });

  it("leaves the rest due when it stops at the limit", () => {
    const wheel = new TimingWheel<Job>(0);
    for (let i = 0; i < 10; i++) wheel.schedule(new Job(i), 5 + (i % 3));
    expect(advanceAll(wheel, 100, 4).map((j) => j.dueAt)).toEqual([5, 5, 5, 5]);
    expect(wheel.nextDueAt()).toBeLessThanOrEqual(wheel.currentMs);
    // A timer due inside the window the cursor has not reached yet keeps its place in the order.
    wheel.schedule(new Job(50), 6);
    expect(advanceAll(wheel, 0, 100).map((j) => j.dueAt)).toEqual([6, 6, 6, 6, 7, 7, 7]);
    expect(wheel.size).toBe(0);
  });

  it("does not hand out a timer rescheduled to now from onDue in the same call, but in the next", () => {
    const wheel = new TimingWheel<Job>(0);
    const job = new Job(1);
    const other = new Job(2);
    wheel.schedule(job, 10);
    wheel.schedule(other, 12);
    let calls = 0;
    const reschedule = (j: Job): void => {
      calls++;
      if (calls > 10) throw new Error("runaway advance");
      wheel.schedule(j, wheel.currentMs - 5); // due, even in the past
    };
    expect(wheel.advance(20, Infinity, reschedule)).toBe(2); // terminates with limit = Infinity
    expect(calls).toBe(2);
    expect(wheel.size).toBe(2);
    expect(wheel.nextDueAt()).toBe(15);
    wheel.verify();
    expect(wheel.advance(20, Infinity, reschedule)).toBe(2);
    // Rescheduled to the future from onDue: goes straight into the wheel.
    const seen: number[] = [];
    wheel.advance(20, Infinity, (j) => wheel.schedule(j, 30 + j.id));
    wheel.advance(40, Infinity, (j) => seen.push(j.dueAt));
    expect(seen).toEqual([31, 32]);
  });

  it("lets onDue cancel a timer that is due in the same call", () => {
    const wheel = new TimingWheel<Job>(0);
    const [a, b, c] = [new Job(1), new Job(2), new Job(3)];
    wheel.schedule(a, 5);
    wheel.schedule(b, 5);
    wheel.schedule(c, 6);
    const out: number[] = [];
    wheel.advance(10, Infinity, (j) => {
      out.push(j.id);
      if (j === a) expect(wheel.cancel(b)).toBe(true);
    });
    expect(out).toEqual([1, 3]);
    expect(wheel.size).toBe(0);
  });

  it("stays consistent when onDue throws", () => {
    const wheel = new TimingWheel<Job>(0);
    const jobs = [1, 2, 3].map((i) => new Job(i));
    jobs.forEach((j, i) => wheel.schedule(j, 10 + i));
    expect(() =>
      wheel.advance(100, Infinity, (j) => {
        if (j.id === 2) {
          wheel.schedule(jobs[0]!, 50); // deferred: must still land in the wheel
          throw new Error("boom");
        }
      }),
    ).toThrow("boom");
    wheel.verify();
    expect(wheel.isScheduled(jobs[1]!)).toBe(false);
    expect(advanceAll(wheel, 100).map((j) => j.id)).toEqual([3, 1]);
  });

  it("bounds the cascade work of one advance and resumes where it stopped", () => {
    const start = 0;
    const wheel = new TimingWheel<Job>(start, { cascadeTimersPerAdvanceMax: 100 });
    const n = 10_000;
    for (let i = 0; i < n; i++) wheel.schedule(new Job(i), start + dayMs + (i % 1000));
    const target = start + dayMs + 1000;
    let calls = 0;
    let fired = 0;
    let last = -Infinity;
    while (wheel.size > 0) {
      const before = wheel.workUnits;
      const handed = wheel.advance(target, 500, (j) => {
        expect(j.dueAt).toBeGreaterThanOrEqual(last);
        last = j.dueAt;
        fired++;
      });
      // Per call: <= 500 handed out + <= 100 moved, and every cursor stop (one bitmap scan of
      // <= 5 units per level) hands out or moves at least one timer, except the last: bounded
      // by the limits, whatever the number of timers waiting.
      const stopsMax = 500 + 100 + 1;
      expect(wheel.workUnits - before).toBeLessThanOrEqual(500 + 100 + stopsMax * wheel.levelCount * 5);
      expect(handed).toBeLessThanOrEqual(500);
      if (wheel.size > 0) expect(wheel.nextDueAt()!).toBeLessThanOrEqual(wheel.currentMs);
      wheel.verify();
      calls++;
    }
    expect(fired).toBe(n);
    expect(calls).toBeGreaterThan(n / 100);
  });

  it("moves a scheduled timer, cancels in O(1), and reports membership", () => {
    const wheel = new TimingWheel<Job>(1000);
    const job = new Job(1);
    expect(wheel.isScheduled(job)).toBe(false);
    expect(wheel.cancel(job)).toBe(false);
    wheel.schedule(job, 5000);
    wheel.schedule(job, 2000);
    expect(wheel.size).toBe(1);
    expect(wheel.isScheduled(job)).toBe(true);
    expect(advanceAll(wheel, 4999)).toEqual([job]);
    wheel.schedule(job, 6000);
    expect(wheel.cancel(job)).toBe(true);
    expect(wheel.cancel(job)).toBe(false);
    expect(wheel.size).toBe(0);
    expect(wheel.nextDueAt()).toBeNull();
    expect(job.wheelNext).toBeNull();
    expect(job.wheelPrev).toBeNull();
  });

  it("refuses bad input and misuse", () => {
    expect(() => new TimingWheel<Job>(0, { slotsPerLevel: 48 })).toThrow(/power of two/);
    expect(() => new TimingWheel<Job>(-1)).toThrow();
    const wheel = new TimingWheel<Job>(0);
    const other = new TimingWheel<Job>(0);
    const job = new Job(1);
    expect(() => wheel.schedule(job, 1.5)).toThrow(/integer/);
    expect(() => wheel.schedule(job, Number.NaN)).toThrow(/integer/);
    expect(() => wheel.advance(10, -1, () => {})).toThrow(/limit/);
    wheel.schedule(job, 10);
    expect(() => other.schedule(job, 10)).toThrow(/another wheel/);
    expect(() => other.cancel(job)).toThrow(/another wheel/);
    expect(other.isScheduled(job)).toBe(false);
    expect(() => wheel.advance(10, Infinity, () => wheel.advance(11, 1, () => {}))).toThrow(/re-entrant/);
    const stale = new Job(2);
    stale.wheelNext = job;
    expect(() => wheel.schedule(stale, 5)).toThrow(/links/);
  });
});
