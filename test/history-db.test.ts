/**
 * The history file (src/history/history-db.ts) against simple models, on real SQLite files:
 * what goes in comes back as the same view; every list query, paged through with its cursors and
 * any examine budget, returns exactly the model's filtered, ordered list; retention drops whole
 * days and nothing else; rows out of order are refused; stats from the minute and hour rollups
 * count what a model of the rows counts, and what a scan of the rows tallies.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { executionView } from "../src/api/views.js";
import type { AttemptInfo, ExecutionFacts } from "../src/core/execution.js";
import { compareListOrder, mergePages, positionOf, type ListPosition } from "../src/core/list-order.js";
import { DAY_MS, HistoryDb, type FinishedState, type HistoryListQuery } from "../src/history/history-db.js";
import { groupOf, StatsTallies, type StatsGroupBy } from "../src/history/stats.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
function newDb(): HistoryDb {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cronwheel-history-db-"));
  dirs.push(dir);
  return new HistoryDb(path.join(dir, "shard-0000.sqlite"));
}

const T0 = Date.UTC(2026, 11, 1);
const STATES: FinishedState[] = ["succeeded", "failed", "canceled", "skipped"];
const JOBS = ["j1", "j2", "j3"];
const QUEUES = ["q1", "q2"];
const WORKERS = ["w1", "w2", "w3"];
const REASONS = [null, "misfire", "overlap", "canceled", "retries-exhausted", "non-retryable", "timed-out"];

const attemptArb = (finishedAt: number) =>
  fc.record({
    workerId: fc.constantFrom(...WORKERS),
    claimedAgo: fc.integer({ min: 0, max: 60_000 }),
    outcome: fc.constantFrom<AttemptInfo["outcome"]>("succeeded", "failed", "timed-out", "lease-expired", "canceled", null),
    error: fc.option(fc.record({ message: fc.string() }), { nil: null }),
  }).map((a, i = 0): AttemptInfo => ({ attempt: i + 1, workerId: a.workerId, claimedAt: finishedAt - a.claimedAgo, finishedAt, outcome: a.outcome, error: a.error }));

/** A finished execution; `finishedAt` and `finishSeq` are set by the caller (the shard's order). */
const factsArb = (finishedAt: number): fc.Arbitrary<ExecutionFacts> =>
  fc
    .record({
      tenant: fc.constantFrom("default", "acme"),
      job: fc.option(fc.constantFrom(...JOBS), { nil: null }),
      idKind: fc.constantFrom("fire", "manual", "adhoc"),
      unique: fc.integer({ min: 0, max: 1_000_000 }),
      queue: fc.constantFrom(...QUEUES),
      state: fc.constantFrom(...STATES),
      reason: fc.constantFrom(...REASONS),
      scheduledAgo: fc.integer({ min: -3_600_000, max: 2 * DAY_MS }),
      createdBefore: fc.integer({ min: 0, max: 60_000 }),
      ready: fc.option(fc.integer({ min: 0, max: 10_000 }), { nil: null }),
      run: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: null }),
      plain: fc.boolean(),
      attempts: fc.array(attemptArb(finishedAt), { maxLength: 3 }),
      payload: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: null }),
      result: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }),
      priority: fc.integer({ min: 0, max: 9 }),
      orderingKey: fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: null }),
      idempotencyKey: fc.option(fc.string({ minLength: 1, maxLength: 8 }), { nil: null }),
    })
    .map((r): ExecutionFacts => {
      const scheduledAt = finishedAt - r.scheduledAgo;
      const createdAt = scheduledAt - r.createdBefore;
      const jobId = r.idKind === "adhoc" ? null : (r.job ?? "j1");
      const stamp = createdAt.toString(36) + r.unique.toString(36).padStart(4, "0");
      const id = jobId === null ? `x00a1${stamp}` : r.idKind === "fire" ? `${jobId}:${scheduledAt}` : `${jobId}:m${stamp}`;
      // Often the common shape: one attempt that succeeded (stored without its own record).
      const attempts: AttemptInfo[] = r.plain
        ? [{ attempt: 1, workerId: "w1", claimedAt: finishedAt - 5, finishedAt, outcome: "succeeded", error: null }]
        : r.attempts.map((a, i) => ({ ...a, attempt: i + 1 }));
      return {
        id,
        tenant: r.tenant,
        jobId,
        queue: r.queue,
        state: r.plain ? "succeeded" : r.state,
        reason: r.plain ? null : r.reason,
        scheduledAt,
        createdAt,
        readyAt: r.ready === null ? 0 : scheduledAt + r.ready,
        startedAt: r.run === null ? null : finishedAt - r.run,
        finishedAt,
        finishSeq: 0,
        attempt: attempts.length,
        attempts,
        payload: r.payload,
        priority: r.priority,
        result: r.result,
        orderingKey: r.orderingKey,
        idempotencyKey: r.idempotencyKey,
      };
    });

/** A shard's worth of finished executions in apply order: times never go back, ties numbered. */
const historyArb = fc
  .array(fc.tuple(fc.constantFrom(0, 0, 0, 1, 7, 3_600_000, DAY_MS / 2), fc.integer({ min: 0, max: 1_000 })), { minLength: 1, maxLength: 60 })
  .chain((steps) => {
    let t = T0;
    const times = steps.map(([jump, small]) => (t += jump + (jump === 0 ? 0 : small)));
    return fc.tuple(...times.map((at) => factsArb(at)));
  })
  .map((all) => {
    // Unique ids (a generated collision is not a history a shard can have), and the finish order.
    const seen = new Set<string>();
    const out: ExecutionFacts[] = [];
    let lastAt = -1;
    let seq = 0;
    for (const f of all) {
      if (seen.has(f.id)) continue;
      seen.add(f.id);
      seq = f.finishedAt === lastAt ? seq + 1 : 0;
      lastAt = f.finishedAt!;
      out.push({ ...f, finishSeq: seq });
    }
    return out;
  });

const view = (f: ExecutionFacts) => JSON.parse(JSON.stringify(executionView(f)));

describe("history file", () => {
  it("gives back every execution as the same view, by id and in lists", () => {
    fc.assert(
      fc.property(historyArb, (rows) => {
        const db = newDb();
        db.append(rows, 7);
        db.commit();
        for (const f of rows) expect(view(db.get(f.tenant, f.id)!), f.id).toEqual(view(f));
        expect(db.get("default", "x00a1nosuchid")).toBeNull();
        expect(db.applied).toBe(7);
        db.close();
      }),
      { numRuns: 60 },
    );
  });

  it("answers every list query, page by page, as a filter-and-sort model does", () => {
    // Each filter is absent most of the time, so most queries match something.
    const sometimes = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: arb });
    const queryArb = fc.record({
      tenant: fc.constantFrom("default", "default", "acme", "nobody"),
      jobId: sometimes(fc.constantFrom(...JOBS, "nojob")),
      queue: sometimes(fc.constantFrom(...QUEUES)),
      state: sometimes(fc.constantFrom(...STATES)),
      reason: sometimes(fc.constantFrom("misfire", "non-retryable", "nosuchreason")),
      workerId: sometimes(fc.constantFrom(...WORKERS)),
      jobIds: sometimes(fc.subarray([...JOBS, "nojob"])),
      finished: sometimes(fc.tuple(fc.integer({ min: -DAY_MS, max: 3 * DAY_MS }), fc.integer({ min: 1, max: 2 * DAY_MS }))),
      scheduled: sometimes(fc.tuple(fc.integer({ min: -DAY_MS, max: 3 * DAY_MS }), fc.integer({ min: 1, max: 2 * DAY_MS }))),
      limit: fc.integer({ min: 1, max: 15 }),
      examineMax: fc.oneof(fc.integer({ min: 1, max: 10 }), fc.constant(1_000)),
    });
    fc.assert(
      fc.property(historyArb, fc.array(queryArb, { minLength: 1, maxLength: 5 }), (rows, queries) => {
        const db = newDb();
        // Written in several batches and commits, as the history thread does.
        for (let i = 0; i < rows.length; i += 7) {
          db.append(rows.slice(i, i + 7), i + 7);
          if (i % 14 === 0) db.commit();
        }
        for (const g of queries) {
          const q: Omit<HistoryListQuery, "limit" | "examineMax" | "before"> = {
            tenant: g.tenant,
            jobId: g.jobId,
            queue: g.queue,
            state: g.state,
            reason: g.reason,
            workerId: g.workerId,
            jobIds: g.jobIds,
            finishedFromMs: g.finished && T0 + g.finished[0],
            finishedToMs: g.finished && T0 + g.finished[0] + g.finished[1],
            scheduledFromMs: g.scheduled && T0 + g.scheduled[0],
            scheduledToMs: g.scheduled && T0 + g.scheduled[0] + g.scheduled[1],
          };
          const lastWorker = (f: ExecutionFacts) => (f.attempts && f.attempts.length > 0 ? f.attempts[f.attempts.length - 1]!.workerId : null);
          const model = rows
            .filter(
              (f) =>
                f.tenant === q.tenant &&
                (q.jobId === undefined || f.jobId === q.jobId) &&
                (q.queue === undefined || f.queue === q.queue) &&
                (q.state === undefined || f.state === q.state) &&
                (q.reason === undefined || f.reason === q.reason) &&
                (q.workerId === undefined || lastWorker(f) === q.workerId) &&
                (q.jobIds === undefined || (f.jobId !== null && q.jobIds.includes(f.jobId))) &&
                (q.finishedFromMs === undefined || f.finishedAt! >= q.finishedFromMs) &&
                (q.finishedToMs === undefined || f.finishedAt! < q.finishedToMs) &&
                (q.scheduledFromMs === undefined || f.scheduledAt >= q.scheduledFromMs) &&
                (q.scheduledToMs === undefined || f.scheduledAt < q.scheduledToMs),
            )
            .sort((a, b) => compareListOrder(positionOf(a), positionOf(b)))
            .map((f) => f.id);
          const served: string[] = [];
          let before: ListPosition | null = null;
          for (let pages = 0; ; pages++) {
            expect(pages).toBeLessThan(1_000);
            const page = db.list({ ...q, before: (before as Extract<ListPosition, { live: false }> | null) ?? undefined, limit: g.limit, examineMax: g.examineMax });
            expect(page.items.length).toBeLessThanOrEqual(g.limit);
            const merged = mergePages([page], g.limit);
            served.push(...merged.items.map((f) => f.id));
            if (merged.next === null) break;
            before = merged.next;
          }
          expect(served).toEqual(model);
        }
        db.close();
      }),
      { numRuns: 150 },
    );
  });

  it("keeps its watermark and rows across a close and reopen", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cronwheel-history-db-"));
    dirs.push(dir);
    const file = path.join(dir, "shard-0003.sqlite");
    const rows = fc.sample(historyArb, { numRuns: 1, seed: 7 })[0]!;
    let db = new HistoryDb(file);
    db.append(rows, 42);
    db.recordGap(43, 50, T0);
    db.close();
    db = new HistoryDb(file);
    expect(db.applied).toBe(50);
    expect(db.count()).toBe(rows.length);
    expect(db.gaps()).toMatchObject([{ from: 43, to: 50, at: T0, before: null }]);
    db.close();
  });

  it("commits durably with rows waiting (what a snapshot asks for before the log drops them)", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cronwheel-history-db-"));
    dirs.push(dir);
    const file = path.join(dir, "shard-0001.sqlite");
    const rows = fc.sample(historyArb, { numRuns: 1, seed: 11 })[0]!;
    const db = new HistoryDb(file);
    db.append(rows, 9);
    expect(db.uncommitted).toBe(true);
    db.commit(true);
    expect(db.uncommitted).toBe(false);
    db.commit(true); // nothing waiting: still fine
    // Read by a second connection while the first is open: the rows are committed.
    const other = new HistoryDb(file);
    expect(other.applied).toBe(9);
    expect(other.count()).toBe(rows.length);
    other.close();
    db.close();
  });

  it("drops whole days before the cutoff and nothing else", () => {
    const db = newDb();
    const rows = [0, 1, 2, 3].flatMap((day) =>
      [0, 1].map((i): ExecutionFacts => ({ ...fc.sample(factsArb(T0 + day * DAY_MS + 1_000 + i), { numRuns: 1, seed: day * 10 + i })[0]!, id: `x00a1d${day}n${i}`, jobId: null })),
    );
    db.append(rows, 8);
    // The cutoff falls inside day 2: days 0 and 1 go, day 2 (partly inside the retention) stays.
    expect(db.dropBefore(T0 + 2 * DAY_MS + 3_600_000)).toEqual([Math.floor(T0 / DAY_MS), Math.floor(T0 / DAY_MS) + 1]);
    db.commit();
    expect(db.count()).toBe(4);
    for (const f of rows) expect(db.get(f.tenant, f.id) !== null, f.id).toBe(f.finishedAt! >= T0 + 2 * DAY_MS);
    expect(db.dropBefore(T0 + 2 * DAY_MS)).toEqual([]);
    db.close();
  });

  it("refuses a row that does not come after the last one written (a replay written twice)", () => {
    const db = newDb();
    const [first] = fc.sample(factsArb(T0 + 5_000), { numRuns: 1, seed: 3 });
    db.append([{ ...first!, finishSeq: 4 }], 1);
    expect(() => db.append([{ ...first!, id: "x00a1again", jobId: null, finishSeq: 4 }], 2)).toThrow(/does not follow/);
    expect(() => db.append([], 0)).toThrow(/after 1/);
    db.close();
  });
});

describe("stats from rollups", () => {
  const HOUR = 3_600_000;
  const quantileOf = (values: number[], q: number): number | null => {
    if (values.length === 0) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
  };

  it("count what a model of the rows counts, percentiles within 5 %, and agree with a scan of the rows, across commits and a reopen", () => {
    fc.assert(
      fc.property(
        historyArb,
        fc.integer({ min: 1, max: 3 }),
        fc.constantFrom(null, "queue", "state", "reason", "tenant"),
        fc.constantFrom(HOUR, DAY_MS, 7 * 60_000),
        fc.option(fc.constantFrom(...QUEUES), { nil: undefined }),
        fc.boolean(),
        (rows, batches, by, intervalMs, queue, reopen) => {
          let db = newDb();
          const file = db.file;
          // Rows in several batches, a commit after each: rollup rows are merged into, not replaced.
          const cut = Math.ceil(rows.length / batches);
          for (let b = 0; b < batches; b++) {
            db.append(rows.slice(b * cut, (b + 1) * cut), b + 1);
            db.commit();
          }
          if (reopen) {
            db.close();
            db = new HistoryDb(file);
          }
          // Hour-aligned with an hour interval reads hour rollups; a 7-minute interval, minute rollups.
          const fromMs = T0 - 3 * DAY_MS + (intervalMs % HOUR === 0 ? 0 : 60_000);
          const toMs = T0 + 40 * DAY_MS;
          const q = { tenant: "acme", queue, fromMs, toMs, intervalMs, by: by as StatsGroupBy | null };
          const got = new StatsTallies();
          db.stats(q, got);

          const mine = rows.filter((f) => f.tenant === "acme" && (queue === undefined || f.queue === queue) && f.finishedAt! >= fromMs && f.finishedAt! < toMs);
          const stateOf = (f: ExecutionFacts) => STATES.indexOf(f.state as FinishedState);
          expect(got.total.count).toBe(mine.length);
          expect(got.total.states).toEqual(STATES.map((s) => mine.filter((f) => f.state === s).length));
          const series = new Map<number, number>();
          const groups = new Map<string, number>();
          const reasons = new Map<string, number>();
          for (const f of mine) {
            const bucket = fromMs + Math.floor((f.finishedAt! - fromMs) / intervalMs) * intervalMs;
            series.set(bucket, (series.get(bucket) ?? 0) + 1);
            const group = groupOf(by as StatsGroupBy | null, { ...f, state: stateOf(f) });
            if (group !== null) groups.set(group, (groups.get(group) ?? 0) + 1);
            if (f.reason !== null) reasons.set(`${f.state}/${f.reason}`, (reasons.get(`${f.state}/${f.reason}`) ?? 0) + 1);
          }
          expect(new Map([...got.series].map(([k, t]) => [k, t.count]))).toEqual(series);
          expect(new Map([...got.groups].map(([k, t]) => [k, t.count]))).toEqual(groups);
          expect(got.reasons).toEqual(reasons);
          const lateness = mine.flatMap((f) => (f.attempts?.[0] ? [f.attempts[0].claimedAt - f.scheduledAt] : []));
          const runs = mine.flatMap((f) => (f.startedAt === null ? [] : [f.finishedAt! - f.startedAt]));
          for (const [hist, values] of [[got.total.lateness, lateness], [got.total.run, runs]] as const) {
            for (const p of [0.5, 0.95, 0.99]) {
              const want = quantileOf(values, p);
              const have = hist.quantile(p);
              if (want === null || want <= 0) expect(have).toBe(want === null ? null : 0);
              else expect(Math.abs(have! - want), `p${p * 100}: ${have} vs ${want}`).toBeLessThanOrEqual(want * 0.05 + 1);
            }
          }
          // The scan of the rows (what by=job reads) tallies exactly what the rollups hold.
          const scanned = new StatsTallies();
          db.stats({ ...q, by: "job" }, scanned);
          expect(scanned.total.toWire()).toEqual(got.total.toWire());
          expect(new Map([...scanned.series].map(([k, t]) => [k, t.toWire()]))).toEqual(new Map([...got.series].map(([k, t]) => [k, t.toWire()])));
          // A job's counts and last run (job_runs), over every commit.
          const j2 = rows.filter((f) => f.tenant === "acme" && f.jobId === "j2");
          const runs2 = db.jobRuns("acme", "j2");
          expect(runs2.counts).toEqual(Object.fromEntries(STATES.map((st) => [st, j2.filter((f) => f.state === st).length])));
          const lastJ2 = j2[j2.length - 1];
          expect(runs2.lastRun).toEqual(lastJ2 ? { executionId: lastJ2.id, state: lastJ2.state, reason: lastJ2.reason, scheduledAt: lastJ2.scheduledAt, finishedAt: lastJ2.finishedAt, durationMs: lastJ2.startedAt === null ? null : lastJ2.finishedAt! - lastJ2.startedAt } : null);
          expect(db.rowsToScan({ ...q, jobId: "j2" })).toBe(rows.filter((f) => f.jobId === "j2" && f.finishedAt! >= fromMs && f.finishedAt! < toMs).length);
          expect(db.rowsToScan(q)).toBeGreaterThanOrEqual(mine.length);
          db.close();
        },
      ),
      { numRuns: 80 },
    );
  });

  it("drop with retention, and minute rollups after their days", () => {
    const db = newDb();
    const rows = [0, 20].map((day, i): ExecutionFacts => ({ ...fc.sample(factsArb(T0 + day * DAY_MS + 1_000), { numRuns: 1, seed: i })[0]!, id: `x00a1r${i}`, jobId: null, tenant: "acme", finishSeq: 0 }));
    db.append(rows, 2);
    db.commit();
    const count = (intervalMs: number, fromMs: number) => {
      const t = new StatsTallies();
      db.stats({ tenant: "acme", fromMs, toMs: T0 + 30 * DAY_MS, intervalMs, by: null }, t);
      return t.total.count;
    };
    expect([count(HOUR, T0), count(60_000, T0)]).toEqual([2, 2]);
    // Nothing is past the retention; minute rollups of day 0 are 20 days older than the newest day.
    db.dropBefore(T0 - DAY_MS);
    db.commit();
    expect([count(HOUR, T0), count(60_000, T0)]).toEqual([2, 1]);
    db.dropBefore(T0 + DAY_MS);
    db.commit();
    expect([count(HOUR, T0), count(60_000, T0)]).toEqual([1, 1]);
    db.close();
  });
});

describe("gaps filled from a peer's file", () => {
  it("bring exactly the rows and audit entries the gap misses, in pages, whatever the page size (fast-check)", () => {
    fc.assert(
      fc.property(historyArb, fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 9 }), (rows, cutA, cutB, pageRows) => {
        // The peer applied everything: rows in three log entries, an audit entry with each.
        const [i, j] = [Math.floor((cutA / 1001) * rows.length), Math.floor((cutB / 1001) * rows.length)].sort((a, b) => a - b) as [number, number];
        const parts = [rows.slice(0, i), rows.slice(i, j), rows.slice(j)];
        const audit = (index: number) => ({ index, at: T0 + index, tenant: "acme", action: "job.put" as const, jobId: "j1", executionId: null, by: { role: "client" }, outcome: "ok", details: { index } });
        const peer = newDb();
        parts.forEach((part, k) => peer.append(part, k + 1, [audit(k + 1)]));
        peer.commit();
        // This replica applied entry 1, skipped entry 2 by a snapshot, then applied entry 3.
        const mine = newDb();
        mine.append(parts[0]!, 1, [audit(1)]);
        const next = parts[2]![0];
        const before = next ? { ms: next.finishedAt!, seq: next.finishSeq } : { ms: Number.MAX_SAFE_INTEGER, seq: 0 };
        mine.recordGap(2, 2, T0, before);
        mine.append(parts[2]!, 3, [audit(3)]);
        mine.commit();
        const [gap] = mine.gaps();
        expect(gap).toMatchObject({ from: 2, to: 2 });
        expect(mine.covers(1, 2)).toBe(false);
        expect(peer.covers(1, 2)).toBe(true);
        let after = gap!.after!;
        for (;;) {
          const page = peer.rowsBetween(after, gap!.before!, pageRows);
          const done = page.length < pageRows;
          mine.fill(gap!.id, page, done ? peer.auditBetween(1, 2) : null, done);
          mine.commit();
          if (page.length > 0) after = { ms: page[page.length - 1]!.finishedAt!, seq: page[page.length - 1]!.finishSeq };
          if (done) break;
        }
        const all = (db: HistoryDb) => db.list({ tenant: "acme", limit: 10_000, examineMax: Number.MAX_SAFE_INTEGER }).items.concat(db.list({ tenant: "default", limit: 10_000, examineMax: Number.MAX_SAFE_INTEGER }).items);
        expect(all(mine)).toEqual(all(peer));
        expect(mine.count()).toBe(rows.length);
        expect(mine.listAudit(0, { tenant: "acme", limit: 10 })).toEqual(peer.listAudit(0, { tenant: "acme", limit: 10 }));
        expect(mine.gaps()).toEqual([]);
        expect(mine.covers(1, 2)).toBe(true);
        for (const tenant of ["acme", "default"]) for (const job of JOBS) expect(mine.jobRuns(tenant, job)).toEqual(peer.jobRuns(tenant, job));
        mine.close();
        peer.close();
      }),
      { numRuns: 60 },
    );
  });

  it("refuse a row outside the gap (one written twice)", () => {
    const rows = fc.sample(historyArb.filter((r) => r.length >= 3), { numRuns: 1, seed: 5 })[0]!;
    const db = newDb();
    db.append(rows.slice(0, 2), 1);
    db.recordGap(2, 2, T0, { ms: rows[2]!.finishedAt!, seq: rows[2]!.finishSeq });
    const [gap] = db.gaps();
    expect(() => db.fill(gap!.id, [rows[1]!], null, false)).toThrow(/outside gap/);
    expect(() => db.fill(gap!.id, [rows[2]!], null, false)).toThrow(/outside gap/);
    db.close();
  });
});
