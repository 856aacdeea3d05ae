import { CronExpressionParser } from "cron-parser";
import fc from "fast-check";
import { expect, it } from "vitest";
import { nextFire } from "../src/core/trigger.js";
import type { DstPolicy, Schedule } from "../src/core/types.js";
const POLICIES: DstPolicy[] = (["first", "last", "both"] as const).flatMap((repeated) => (["shift", "skip"] as const).map((missing) => ({ repeated, missing })));
function cron(expr: string, timezone: string, dst: DstPolicy): Schedule { return { trigger: { kind: "cron", expr, timezone, dst }, anchorMs: 0, startAtMs: null, endAtMs: null, jitterMs: 0 }; }
const iso = (t: number): string => new Date(t).toISOString();
const formatters = new Map<string, Intl.DateTimeFormat>();
/** Local wall time of instant t in tz, as floating ms — straight from Intl, no caching of offsets. */
function wallOf(t: number, tz: string): number {
  let f = formatters.get(tz);
  if (f === undefined) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
      hour: "numeric", minute: "numeric", second: "numeric",
    });
    formatters.set(tz, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(t)) p[part.type] = Number(part.value);
  return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!) + (t % 1000);
}

const parsed = new Map<string, ReturnType<typeof CronExpressionParser.parse>>();
/** cron-parser's own verdict on whether floating wall time w matches expr. */
function cronParserMatches(expr: string, w: number): boolean {
  let e = parsed.get(expr);
  if (e === undefined) {
    e = CronExpressionParser.parse(expr, { tz: "UTC" });
    parsed.set(expr, e);
  }
  return e.includesDate(new Date(w));
}

/** t is the first instant after a spring-forward gap. */
function isGapEnd(t: number, tz: string): boolean {
  return wallOf(t, tz) - wallOf(t - 1000, tz) > 1000;
}

const pick = <T,>(xs: readonly T[]) => fc.constantFrom(...xs);
/** Simple valid crons, 5 or 6 fields. */
const cronArb = fc
  .record({
    second: fc.option(pick(["0", "*/15", "30", "0,30", "*/20"]), { nil: undefined }),
    minute: fc.oneof(pick(["*", "0", "*/5", "15,45", "0-10", "5-50/7", "*/20", "30"]), fc.integer({ min: 0, max: 59 }).map(String)),
    hour: fc.oneof(pick(["*", "2", "1,2,3", "0-3", "*/3", "1", "23", "2-4"]), fc.integer({ min: 0, max: 23 }).map(String)),
    dom: pick(["*", "*", "*", "?", "1", "15", "L", "1-7", "*/10", "28"]),
    month: pick(["*", "*", "*", "3", "10,11", "3-11", "*/2", "MAR,OCT,NOV"]),
    dow: pick(["*", "*", "*", "?", "0", "1-5", "0,6", "5L", "0L", "1#2", "0#1", "SUN", "MON-FRI"]),
  })
  .filter((f) => !(f.dom === "?" && f.dow === "?"))
  .map((f) => [f.second, f.minute, f.hour, f.dom, f.month, f.dow].filter((x) => x !== undefined).join(" "));
const policyArb = pick(POLICIES);
/** Instants 2000–2035, biased toward the weeks around DST changes. */
const instantArb = fc.oneof(
  fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2035, 0, 1) }),
  fc.tuple(fc.integer({ min: 2000, max: 2034 }), pick([2, 3, 9, 10]), fc.integer({ min: 0, max: 31 * 86_400_000 })).map(
    ([y, m, off]) => Date.UTC(y, m, 1) + off,
  ),
);

const ZONES2 = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham", "Africa/Casablanca", "Europe/Dublin", "Antarctica/Troll", "Pacific/Apia", "America/St_Johns", "Asia/Tehran", "America/Santiago", "Europe/London"];
function transitions(tz: string, from: number, to: number): number[] {
  const out: number[] = [];
  let prev = wallOf(from, tz) - from;
  for (let t = from + 3_600_000; t <= to; t += 3_600_000) {
    const o = wallOf(t, tz) - t;
    if (o !== prev) { let lo = t - 3_600_000, hi = t; while (hi - lo > 60_000) { const m = lo + Math.floor((hi - lo) / 120_000) * 60_000; if (wallOf(m, tz) - m === prev) lo = m; else hi = m; } out.push(hi); prev = o; }
  }
  return out;
}
it("stress: increasing + matches, many zones", () => {
  fc.assert(fc.property(cronArb, pick(ZONES2), policyArb, fc.integer({ min: Date.UTC(1975, 0, 1), max: Date.UTC(2060, 0, 1) }), (expr, tz, dst, start) => {
    const s = cron(expr, tz, dst); let t = start;
    for (let i = 0; i < 10; i++) {
      const next = nextFire(s, t); if (next === null) break;
      expect(next).toBeGreaterThan(t);
      const w = wallOf(next, tz);
      expect(cronParserMatches(expr, w) || (dst.missing === "shift" && isGapEnd(next, tz)), `${expr} ${tz} ${iso(next)}`).toBe(true);
      t = next;
    }
  }), { numRuns: 3000 });
}, 600_000);
it("stress: brute force around transitions in many zones", () => {
  const cases: Array<readonly [string, number]> = [];
  for (const tz of ZONES2) for (const y of [1996, 2011, 2012, 2024, 2025]) for (const T of transitions(tz, Date.UTC(y, 0, 1), Date.UTC(y + 1, 0, 1))) cases.push([tz, T] as const);
  console.log("transition cases", cases.length);
  const minuteCronArb = cronArb.map((e) => (e.split(" ").length === 6 ? e.split(" ").slice(1).join(" ") : e));
  fc.assert(fc.property(minuteCronArb, pick(cases), policyArb, (expr, [tz, transition], dst) => {
    const span = tz === "Pacific/Apia" ? 26 * 3_600_000 : 3 * 3_600_000;
    const from = transition - span, to = transition + span;
    const instantsOfWall = new Map<number, number[]>();
    for (let u = from - span; u < to + span; u += 60_000) { const w = wallOf(u, tz); instantsOfWall.set(w, [...(instantsOfWall.get(w) ?? []), u]); }
    const expected: number[] = [];
    for (let t = from; t < to; t += 60_000) {
      const w = wallOf(t, tz);
      if (cronParserMatches(expr, w)) {
        const others = instantsOfWall.get(w)!.filter((u) => u !== t);
        const keep = others.length === 0 || dst.repeated === "both" || (dst.repeated === "first" ? others.every((u) => t < u) : others.every((u) => t > u));
        if (keep) { expected.push(t); continue; }
      }
      if (dst.missing === "shift" && isGapEnd(t, tz)) {
        for (let w2 = wallOf(t - 1000, tz) + 1000; w2 < wallOf(t, tz); w2 += 60_000) if (cronParserMatches(expr, w2)) { expected.push(t); break; }
      }
    }
    const got: number[] = []; let t = from - 1;
    for (;;) { const next = nextFire(cron(expr, tz, dst), t); if (next === null || next >= to) break; got.push(next); t = next; }
    expect(got.map(iso), `${expr} ${tz} ${iso(transition)} ${dst.repeated}/${dst.missing}`).toEqual(expected.map(iso));
  }), { numRuns: 1500 });
}, 600_000);
