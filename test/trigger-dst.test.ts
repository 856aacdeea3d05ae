/**
 * Cron fire times across DST changes, with hand-written expected UTC instants, plus properties over
 * random crons and zones checked against naive models (Intl and cron-parser used directly).
 *
 * The transitions used:
 *   Europe/Berlin     2024-03-31 01:00Z  02:00 CET  → 03:00 CEST (02:00–02:59 missing)
 *                     2024-10-27 01:00Z  03:00 CEST → 02:00 CET  (02:00–02:59 twice)
 *   America/New_York  2024-03-10 07:00Z  02:00 EST  → 03:00 EDT  (02:00–02:59 missing)
 *                     2024-11-03 06:00Z  02:00 EDT  → 01:00 EST  (01:00–01:59 twice)
 *   Australia/Lord_Howe (30-minute DST) 2024-04-06 15:00Z 02:00 → 01:30 (01:30–01:59 twice)
 *                     2024-10-05 15:30Z  02:00 → 02:30 (02:00–02:29 missing)
 *   Pacific/Chatham   2024-04-06 14:00Z  03:45 → 02:45 (02:45–03:44 twice)
 *                     2024-09-28 14:00Z  02:45 → 03:45 (02:45–03:44 missing)
 */
import { CronExpressionParser } from "cron-parser";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nextFire, preview } from "../src/core/trigger.js";
import type { DstMissing, DstPolicy, DstRepeated, Schedule } from "../src/core/types.js";

const REPEATED: DstRepeated[] = ["first", "last", "both"];
const MISSING: DstMissing[] = ["shift", "skip"];
const POLICIES: DstPolicy[] = REPEATED.flatMap((repeated) => MISSING.map((missing) => ({ repeated, missing })));

function cron(expr: string, timezone: string, dst: DstPolicy): Schedule {
  return { trigger: { kind: "cron", expr, timezone, dst }, anchorMs: 0, startAtMs: null, endAtMs: null, jitterMs: 0 };
}

const ms = (iso: string): number => Date.parse(iso);
const iso = (t: number): string => new Date(t).toISOString().replace(".000Z", "Z");

/** The next n fires after `from`, as ISO strings without milliseconds. */
function fires(s: Schedule, from: string, n: number): string[] {
  const out: string[] = [];
  let t = ms(from);
  for (let i = 0; i < n; i++) {
    const next = nextFire(s, t);
    if (next === null) break;
    out.push(iso(next));
    t = next;
  }
  return out;
}

/** How many fires fall in [from, to). */
function countFires(s: Schedule, from: string | number, to: string | number): number {
  const end = typeof to === "number" ? to : ms(to);
  let t = (typeof from === "number" ? from : ms(from)) - 1;
  let n = 0;
  for (;;) {
    const next = nextFire(s, t);
    if (next === null || next >= end) return n;
    if (!(next > t)) throw new Error(`fire ${next} is not after ${t}`);
    n++;
    t = next;
  }
}

/** Expected fires per policy: either one list for all, or keyed by "repeated/missing", "repeated" or "missing". */
function expectPerPolicy(expr: string, tz: string, from: string, n: number, expected: (p: DstPolicy) => string[]): void {
  for (const p of POLICIES) {
    expect(fires(cron(expr, tz, p), from, n), `${expr} ${tz} ${p.repeated}/${p.missing}`).toEqual(expected(p));
  }
}

describe("Europe/Berlin, spring 2024-03-31 (02:00–02:59 missing)", () => {
  it("daily 02:30: shift fires at the transition 01:00Z, skip does not fire that day", () => {
    expectPerPolicy("30 2 * * *", "Europe/Berlin", "2024-03-30T12:00:00Z", 3, (p) =>
      p.missing === "shift"
        ? ["2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z", "2024-04-02T00:30:00Z"]
        : ["2024-04-01T00:30:00Z", "2024-04-02T00:30:00Z", "2024-04-03T00:30:00Z"],
    );
  });

  it("daily 02:00 (the first missing minute) behaves the same", () => {
    expectPerPolicy("0 2 * * *", "Europe/Berlin", "2024-03-30T12:00:00Z", 2, (p) =>
      p.missing === "shift" ? ["2024-03-31T01:00:00Z", "2024-04-01T00:00:00Z"] : ["2024-04-01T00:00:00Z", "2024-04-02T00:00:00Z"],
    );
  });

  it("hourly at :00: the missing 02:00 merges with the real 03:00 CEST — one fire at 01:00Z for every policy", () => {
    expectPerPolicy("0 * * * *", "Europe/Berlin", "2024-03-30T22:30:00Z", 4, () => [
      "2024-03-30T23:00:00Z", // 00:00 CET
      "2024-03-31T00:00:00Z", // 01:00 CET
      "2024-03-31T01:00:00Z", // 03:00 CEST (and the shifted 02:00)
      "2024-03-31T02:00:00Z", // 04:00 CEST
    ]);
  });

  it("hourly at :30: the missing 02:30 shifts to 01:00Z or is skipped", () => {
    expectPerPolicy("30 * * * *", "Europe/Berlin", "2024-03-31T00:00:00Z", 3, (p) =>
      p.missing === "shift"
        ? ["2024-03-31T00:30:00Z", "2024-03-31T01:00:00Z", "2024-03-31T01:30:00Z"]
        : ["2024-03-31T00:30:00Z", "2024-03-31T01:30:00Z", "2024-03-31T02:30:00Z"],
    );
  });

  it("every minute: 01:59 CET, then 03:00 CEST; the local day has 23 × 60 fires", () => {
    expectPerPolicy("* * * * *", "Europe/Berlin", "2024-03-31T00:58:00Z", 3, () => [
      "2024-03-31T00:59:00Z",
      "2024-03-31T01:00:00Z",
      "2024-03-31T01:01:00Z",
    ]);
    for (const p of POLICIES) {
      expect(countFires(cron("* * * * *", "Europe/Berlin", p), "2024-03-30T23:00:00Z", "2024-03-31T22:00:00Z")).toBe(23 * 60);
    }
  });

  it("6-field */15 seconds: the whole missing hour collapses into one fire at 01:00:00Z", () => {
    expectPerPolicy("*/15 * * * * *", "Europe/Berlin", "2024-03-31T00:59:30Z", 3, () => [
      "2024-03-31T00:59:45Z",
      "2024-03-31T01:00:00Z",
      "2024-03-31T01:00:15Z",
    ]);
  });
});

describe("Europe/Berlin, autumn 2024-10-27 (02:00–02:59 twice: 00:xxZ CEST, then 01:xxZ CET)", () => {
  it("daily 02:30: first 00:30Z, last 01:30Z, both", () => {
    expectPerPolicy("30 2 * * *", "Europe/Berlin", "2024-10-26T12:00:00Z", 3, (p) =>
      ({
        first: ["2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z", "2024-10-29T01:30:00Z"],
        last: ["2024-10-27T01:30:00Z", "2024-10-28T01:30:00Z", "2024-10-29T01:30:00Z"],
        both: ["2024-10-27T00:30:00Z", "2024-10-27T01:30:00Z", "2024-10-28T01:30:00Z"],
      })[p.repeated],
    );
  });

  it("hourly", () => {
    expectPerPolicy("0 * * * *", "Europe/Berlin", "2024-10-26T23:30:00Z", 4, (p) =>
      ({
        first: ["2024-10-27T00:00:00Z", "2024-10-27T02:00:00Z", "2024-10-27T03:00:00Z", "2024-10-27T04:00:00Z"],
        last: ["2024-10-27T01:00:00Z", "2024-10-27T02:00:00Z", "2024-10-27T03:00:00Z", "2024-10-27T04:00:00Z"],
        both: ["2024-10-27T00:00:00Z", "2024-10-27T01:00:00Z", "2024-10-27T02:00:00Z", "2024-10-27T03:00:00Z"],
      })[p.repeated],
    );
  });

  it("every 20 minutes across the repeated hour", () => {
    expectPerPolicy("*/20 * * * *", "Europe/Berlin", "2024-10-26T23:30:00Z", 6, (p) =>
      ({
        first: ["23:40", "00:00", "00:20", "00:40", "02:00", "02:20"],
        last: ["23:40", "01:00", "01:20", "01:40", "02:00", "02:20"],
        both: ["23:40", "00:00", "00:20", "00:40", "01:00", "01:20"],
      })[p.repeated].map((hm) => (hm === "23:40" ? "2024-10-26T23:40:00Z" : `2024-10-27T${hm}:00Z`)),
    );
  });

  it("every minute: the local day has 24 × 60 fires with first/last and 25 × 60 with both", () => {
    for (const p of POLICIES) {
      const n = countFires(cron("* * * * *", "Europe/Berlin", p), "2024-10-26T22:00:00Z", "2024-10-27T23:00:00Z");
      expect(n, `${p.repeated}/${p.missing}`).toBe(p.repeated === "both" ? 25 * 60 : 24 * 60);
    }
  });

  it("6-field */15 seconds", () => {
    expectPerPolicy("*/15 * * * * *", "Europe/Berlin", "2024-10-27T00:59:30Z", 3, (p) =>
      ({
        first: ["2024-10-27T00:59:45Z", "2024-10-27T02:00:00Z", "2024-10-27T02:00:15Z"],
        last: ["2024-10-27T01:00:00Z", "2024-10-27T01:00:15Z", "2024-10-27T01:00:30Z"],
        both: ["2024-10-27T00:59:45Z", "2024-10-27T01:00:00Z", "2024-10-27T01:00:15Z"],
      })[p.repeated],
    );
  });

  it("asking from inside the repeated hour never returns an instant twice", () => {
    for (const p of POLICIES) {
      const s = cron("30 2 * * *", "Europe/Berlin", p);
      // From 00:45Z (02:45 CEST, between the two 02:30s):
      const next = nextFire(s, ms("2024-10-27T00:45:00Z"));
      expect(iso(next!)).toBe(p.repeated === "first" ? "2024-10-28T01:30:00Z" : "2024-10-27T01:30:00Z");
    }
  });
});

describe("America/New_York, 2024-03-10 (02:00–02:59 missing) and 2024-11-03 (01:00–01:59 twice)", () => {
  it("daily 02:30 in spring", () => {
    expectPerPolicy("30 2 * * *", "America/New_York", "2024-03-09T12:00:00Z", 3, (p) =>
      p.missing === "shift"
        ? ["2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z"]
        : ["2024-03-11T06:30:00Z", "2024-03-12T06:30:00Z", "2024-03-13T06:30:00Z"],
    );
  });

  it("daily 01:30 in autumn", () => {
    expectPerPolicy("30 1 * * *", "America/New_York", "2024-11-02T12:00:00Z", 3, (p) =>
      ({
        first: ["2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z", "2024-11-05T06:30:00Z"],
        last: ["2024-11-03T06:30:00Z", "2024-11-04T06:30:00Z", "2024-11-05T06:30:00Z"],
        both: ["2024-11-03T05:30:00Z", "2024-11-03T06:30:00Z", "2024-11-04T06:30:00Z"],
      })[p.repeated],
    );
  });

  it("daily 02:30 in autumn is not repeated (02:00 EDT never shows)", () => {
    expectPerPolicy("30 2 * * *", "America/New_York", "2024-11-02T12:00:00Z", 2, () => [
      "2024-11-03T07:30:00Z",
      "2024-11-04T07:30:00Z",
    ]);
  });

  it("hourly in spring and autumn", () => {
    expectPerPolicy("0 * * * *", "America/New_York", "2024-03-10T05:30:00Z", 3, () => [
      "2024-03-10T06:00:00Z", // 01:00 EST
      "2024-03-10T07:00:00Z", // 03:00 EDT (and the shifted 02:00)
      "2024-03-10T08:00:00Z",
    ]);
    expectPerPolicy("0 * * * *", "America/New_York", "2024-11-03T04:30:00Z", 4, (p) =>
      ({
        first: ["2024-11-03T05:00:00Z", "2024-11-03T07:00:00Z", "2024-11-03T08:00:00Z", "2024-11-03T09:00:00Z"],
        last: ["2024-11-03T06:00:00Z", "2024-11-03T07:00:00Z", "2024-11-03T08:00:00Z", "2024-11-03T09:00:00Z"],
        both: ["2024-11-03T05:00:00Z", "2024-11-03T06:00:00Z", "2024-11-03T07:00:00Z", "2024-11-03T08:00:00Z"],
      })[p.repeated],
    );
  });

  it("every minute: 23 × 60 fires on 2024-03-10, 24 × 60 or 25 × 60 on 2024-11-03", () => {
    for (const p of POLICIES) {
      const s = cron("* * * * *", "America/New_York", p);
      expect(countFires(s, "2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z")).toBe(23 * 60);
      expect(countFires(s, "2024-11-03T04:00:00Z", "2024-11-04T05:00:00Z")).toBe(p.repeated === "both" ? 25 * 60 : 24 * 60);
    }
  });

  it("a spring gap for a weekday-only cron: Sunday 02:15 shifts to 07:00Z", () => {
    expectPerPolicy("15 2 * * SUN", "America/New_York", "2024-03-09T00:00:00Z", 2, (p) =>
      p.missing === "shift" ? ["2024-03-10T07:00:00Z", "2024-03-17T06:15:00Z"] : ["2024-03-17T06:15:00Z", "2024-03-24T06:15:00Z"],
    );
  });
});

describe("zones with 30- and 45-minute offsets", () => {
  it("Australia/Lord_Howe: 30-minute DST", () => {
    expectPerPolicy("45 1 * * *", "Australia/Lord_Howe", "2024-04-06T00:00:00Z", 2, (p) =>
      ({
        first: ["2024-04-06T14:45:00Z", "2024-04-07T15:15:00Z"], // 01:45 +11:00, next day +10:30
        last: ["2024-04-06T15:15:00Z", "2024-04-07T15:15:00Z"],
        both: ["2024-04-06T14:45:00Z", "2024-04-06T15:15:00Z"],
      })[p.repeated],
    );
    expectPerPolicy("15 2 * * *", "Australia/Lord_Howe", "2024-10-05T00:00:00Z", 2, (p) =>
      p.missing === "shift" ? ["2024-10-05T15:30:00Z", "2024-10-06T15:15:00Z"] : ["2024-10-06T15:15:00Z", "2024-10-07T15:15:00Z"],
    );
  });

  it("Pacific/Chatham: +12:45 / +13:45", () => {
    expectPerPolicy("0 3 * * *", "Pacific/Chatham", "2024-04-06T00:00:00Z", 2, (p) =>
      ({
        first: ["2024-04-06T13:15:00Z", "2024-04-07T14:15:00Z"],
        last: ["2024-04-06T14:15:00Z", "2024-04-07T14:15:00Z"],
        both: ["2024-04-06T13:15:00Z", "2024-04-06T14:15:00Z"],
      })[p.repeated],
    );
    expectPerPolicy("0 3 * * *", "Pacific/Chatham", "2024-09-28T00:00:00Z", 2, (p) =>
      p.missing === "shift" ? ["2024-09-28T14:00:00Z", "2024-09-29T13:15:00Z"] : ["2024-09-29T13:15:00Z", "2024-09-30T13:15:00Z"],
    );
  });
});

describe("L and # in a zone", () => {
  it("last day of the month at 02:30 in Berlin: 2024-03-31 is the spring-forward day", () => {
    expectPerPolicy("30 2 L * *", "Europe/Berlin", "2024-03-01T00:00:00Z", 2, (p) =>
      p.missing === "shift" ? ["2024-03-31T01:00:00Z", "2024-04-30T00:30:00Z"] : ["2024-04-30T00:30:00Z", "2024-05-31T00:30:00Z"],
    );
  });

  it("last Sunday of October at 02:30 in Berlin (5L is Friday; 0L is Sunday)", () => {
    expectPerPolicy("30 2 * 10 0L", "Europe/Berlin", "2024-01-01T00:00:00Z", 2, (p) =>
      ({
        first: ["2024-10-27T00:30:00Z", "2025-10-26T00:30:00Z"],
        last: ["2024-10-27T01:30:00Z", "2025-10-26T01:30:00Z"],
        both: ["2024-10-27T00:30:00Z", "2024-10-27T01:30:00Z"],
      })[p.repeated],
    );
  });

  it("second Sunday of March at 02:30 in New York (0#2) is always in the gap", () => {
    expectPerPolicy("30 2 * 3 0#2", "America/New_York", "2024-01-01T00:00:00Z", 2, (p) =>
      p.missing === "shift" ? ["2024-03-10T07:00:00Z", "2025-03-09T07:00:00Z"] : [],
    );
    // With skip it never fires: the search gives up after 100 years and answers null.
    const started = performance.now();
    expect(nextFire(cron("30 2 * 3 0#2", "America/New_York", { repeated: "first", missing: "skip" }), ms("2024-01-01T00:00:00Z"))).toBeNull();
    expect(performance.now() - started).toBeLessThan(2_000);
  });
});

describe("preview marks DST changes", () => {
  it("shifted and repeated fires are marked", () => {
    const spring = preview(cron("30 2 * * *", "Europe/Berlin", { repeated: "both", missing: "shift" }), "j", ms("2024-03-30T12:00:00Z"), 2);
    expect(spring.map((p) => [iso(p.nominalMs), p.marks])).toEqual([
      ["2024-03-31T01:00:00Z", ["dst-shifted"]],
      ["2024-04-01T00:30:00Z", []],
    ]);
    const autumn = preview(cron("30 2 * * *", "Europe/Berlin", { repeated: "both", missing: "shift" }), "j", ms("2024-10-26T12:00:00Z"), 3);
    expect(autumn.map((p) => [iso(p.nominalMs), p.marks])).toEqual([
      ["2024-10-27T00:30:00Z", ["dst-repeated"]],
      ["2024-10-27T01:30:00Z", ["dst-repeated"]],
      ["2024-10-28T01:30:00Z", []],
    ]);
    const last = preview(cron("30 2 * * *", "Europe/Berlin", { repeated: "last", missing: "skip" }), "j", ms("2024-10-26T12:00:00Z"), 1);
    expect(last[0]!.marks).toEqual(["dst-repeated"]);
    // The hourly 03:00 CEST fire that also stands for the missing 02:00 is marked shifted.
    const hourly = preview(cron("0 * * * *", "Europe/Berlin", { repeated: "first", missing: "shift" }), "j", ms("2024-03-31T00:30:00Z"), 2);
    expect(hourly.map((p) => p.marks)).toEqual([["dst-shifted"], []]);
  });
});

describe("a year of every minute in Europe/Berlin", () => {
  it("2023: 525,600 local minutes, 60 missing, 60 repeated; fast", () => {
    // The local year 2023 is [2022-12-31T23:00Z, 2023-12-31T23:00Z).
    const from = Date.UTC(2022, 11, 31, 23);
    const to = Date.UTC(2023, 11, 31, 23);
    for (const p of POLICIES) {
      const started = performance.now();
      const n = countFires(cron("* * * * *", "Europe/Berlin", p), from, to);
      const elapsedMs = performance.now() - started;
      expect(n, `${p.repeated}/${p.missing}`).toBe(p.repeated === "both" ? 525_600 : 525_600 - 60);
      expect(elapsedMs).toBeLessThan(3_000);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Properties against naive models

const ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "Pacific/Chatham"];

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

describe("properties", () => {
  it("successive fires strictly increase and each is a matching local time or a shift instant", () => {
    fc.assert(
      fc.property(cronArb, pick(ZONES), policyArb, instantArb, (expr, tz, dst, start) => {
        const s = cron(expr, tz, dst);
        let t = start;
        for (let i = 0; i < 12; i++) {
          const next = nextFire(s, t);
          if (next === null) break;
          expect(next).toBeGreaterThan(t);
          const w = wallOf(next, tz);
          const ok = cronParserMatches(expr, w) || (dst.missing === "shift" && isGapEnd(next, tz));
          expect(ok, `${expr} ${tz} ${new Date(next).toISOString()} wall ${new Date(w).toISOString()}`).toBe(true);
          t = next;
        }
      }),
      { numRuns: 300 },
    );
  });

  it("in UTC the fires are exactly cron-parser's own iteration", () => {
    fc.assert(
      fc.property(cronArb, instantArb, (expr, start) => {
        const it = CronExpressionParser.parse(expr, { tz: "UTC", currentDate: start });
        let expected: number[];
        try {
          expected = it.take(15).map((d) => d.getTime());
        } catch {
          fc.pre(false);
          return;
        }
        const got: number[] = [];
        let t = start;
        for (let i = 0; i < expected.length; i++) {
          const next = nextFire(cron(expr, "UTC", { repeated: "first", missing: "shift" }), t);
          if (next === null) break;
          got.push(next);
          t = next;
        }
        expect(got, expr).toEqual(expected);
      }),
      { numRuns: 400 },
    );
  });

  it("matches a brute-force model minute by minute around DST changes (minute crons, every policy)", () => {
    const minuteCronArb = cronArb.map((e) => (e.split(" ").length === 6 ? e.split(" ").slice(1).join(" ") : e));
    // Windows of 6 hours that contain a transition of the zone.
    const windows: Record<string, number[]> = {
      "Europe/Berlin": [ms("2024-03-31T01:00:00Z"), ms("2024-10-27T01:00:00Z"), ms("2031-03-30T01:00:00Z")],
      "America/New_York": [ms("2024-03-10T07:00:00Z"), ms("2024-11-03T06:00:00Z")],
      "Australia/Lord_Howe": [ms("2024-04-06T15:00:00Z"), ms("2024-10-05T15:30:00Z")],
      "Pacific/Chatham": [ms("2024-04-06T14:00:00Z"), ms("2024-09-28T14:00:00Z")],
    };
    const cases = Object.entries(windows).flatMap(([tz, ts]) => ts.map((t) => [tz, t] as const));
    fc.assert(
      fc.property(minuteCronArb, pick(cases), policyArb, (expr, [tz, transition], dst) => {
        const from = transition - 3 * 3_600_000;
        const to = transition + 3 * 3_600_000;
        // Model: every minute instant in the window, with its wall time from Intl.
        const instantsOfWall = new Map<number, number[]>();
        for (let u = from - 3 * 3_600_000; u < to + 3 * 3_600_000; u += 60_000) {
          const w = wallOf(u, tz);
          instantsOfWall.set(w, [...(instantsOfWall.get(w) ?? []), u]);
        }
        const expected: number[] = [];
        for (let t = from; t < to; t += 60_000) {
          const w = wallOf(t, tz);
          if (cronParserMatches(expr, w)) {
            const others = instantsOfWall.get(w)!.filter((u) => u !== t);
            const keep =
              others.length === 0 || dst.repeated === "both" || (dst.repeated === "first" ? others.every((u) => t < u) : others.every((u) => t > u));
            if (keep) {
              expected.push(t);
              continue;
            }
          }
          if (dst.missing === "shift" && isGapEnd(t, tz)) {
            // any matching wall time in the gap?
            for (let w2 = wallOf(t - 1000, tz) + 1000; w2 < wallOf(t, tz); w2 += 60_000) {
              if (cronParserMatches(expr, w2)) {
                expected.push(t);
                break;
              }
            }
          }
        }
        const got: number[] = [];
        let t = from - 1;
        for (;;) {
          const next = nextFire(cron(expr, tz, dst), t);
          if (next === null || next >= to) break;
          got.push(next);
          t = next;
        }
        expect(got.map(iso), `${expr} ${tz} ${dst.repeated}/${dst.missing}`).toEqual(expected.map(iso));
      }),
      { numRuns: 120 },
    );
  });
});
