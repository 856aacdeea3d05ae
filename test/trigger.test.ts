/**
 * Triggers without DST: cron syntax and validation messages, every/at, the window, jitter,
 * preview, durations, the hashes under jitter, the memo, and the cost of nextFire.
 * DST behaviour is in trigger-dst.test.ts.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hash32, unitInterval } from "../src/core/hash.js";
import {
  clearTriggerMemo,
  cronError,
  jitterFor,
  nextFire,
  parseDuration,
  preview,
  timeZoneError,
} from "../src/core/trigger.js";
import type { DstPolicy, Schedule, Trigger } from "../src/core/types.js";

const DEFAULT: DstPolicy = { repeated: "first", missing: "shift" };
const ms = (iso: string): number => Date.parse(iso);
const iso = (t: number): string => new Date(t).toISOString().replace(".000Z", "Z");

function schedule(trigger: Trigger, extra: Partial<Schedule> = {}): Schedule {
  return { trigger, anchorMs: 0, startAtMs: null, endAtMs: null, jitterMs: 0, ...extra };
}
function cron(expr: string, timezone = "UTC", extra: Partial<Schedule> = {}, dst: DstPolicy = DEFAULT): Schedule {
  return schedule({ kind: "cron", expr, timezone, dst }, extra);
}
function fires(s: Schedule, from: string | number, n: number): string[] {
  const out: string[] = [];
  let t = typeof from === "number" ? from : ms(from);
  for (let i = 0; i < n; i++) {
    const next = nextFire(s, t);
    if (next === null) break;
    out.push(iso(next));
    t = next;
  }
  return out;
}

describe("cronError", () => {
  it("accepts 5 and 6 fields, names, ranges, steps, lists, ?, L, # and macros", () => {
    for (const expr of [
      "* * * * *",
      "*/15 * * * * *",
      "0 30 9 * * 1-5",
      "0 9 * JAN-MAR MON-FRI",
      "5-50/7 */3 1,15 * *",
      "0 0 ? * MON",
      "0 0 1 * ?",
      "0 0 L * *",
      "0 0 * * 5L",
      "0 0 * * 1#2",
      "0 0 29 2 *",
      "  0   0 * * *  ",
      "@daily",
      "@HOURLY",
      "@weekdays",
      "0 0 * * 7",
      "0 0 * * THU",
    ]) {
      expect(cronError(expr), expr).toBeNull();
    }
  });

  it("rejects with a message that names the field", () => {
    const cases: Array<[string, string]> = [
      ["0 25 * * *", "cron: field 'hour' out of range: 25"],
      ["61 * * * *", "cron: field 'minute' out of range: 61"],
      ["0 0 0 32 * *", "cron: field 'day-of-month' out of range: 32"],
      ["0 0 * 13 *", "cron: field 'month' out of range: 13"],
      ["0 0 * * 8", "cron: field 'day-of-week' out of range: 8"],
      ["75 * * * * *", "cron: field 'second' out of range: 75"],
      ["0 20-25 * * *", "cron: field 'hour' out of range: 20-25"],
      ["*/0 * * * *", "cron: field 'minute' has an invalid step: '*/0'"],
      ["5-2 * * * *", "cron: field 'minute' has a range that runs backwards: '5-2'"],
      ["1,,2 * * * *", "cron: field 'minute' has an empty list item: '1,,2'"],
      ["a * * * *", "cron: field 'minute' has invalid characters: 'a'"],
      ["0 0 * FOO *", "cron: field 'month' has an unknown name: 'foo'"],
      ["-1 * * * *", "cron: field 'minute' has an invalid range: '-1'"],
      ["0 0 * * 1#6", "cron: field 'day-of-week' has an invalid occurrence (use #1 to #5): '1#6'"],
      ["0 0 * * 1#2,3", "cron: field 'day-of-week': '#' takes a single weekday (no list, range, step or L): '1#2,3'"],
      ["0 0 * * L", "cron: field 'day-of-week': a bare 'L' is not allowed here (e.g. '5L' is the last Friday)"],
      ["0 0 30 2 *", "cron: field 'day-of-month' value '30' never occurs in month '2'"],
      ["0 0 15W * *", "cron: field 'day-of-month': 'W' (nearest weekday) is not supported: '15W'"],
      ["H * * * *", "cron: field 'minute': 'H' (hashed value) is not supported: 'H'"],
      ["", "cron: expression is empty"],
      ["   ", "cron: expression is empty"],
      ["* * * *", "cron: expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got 4"],
      ["* * * * * * *", "cron: expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got 7"],
    ];
    for (const [expr, message] of cases) expect(cronError(expr), expr).toBe(message);
    expect(cronError("@reboot")).toMatch(/^cron: unknown macro '@reboot' \(supported: @yearly/);
    expect(cronError("* ".repeat(600))).toBe("cron: expression is longer than 1024 characters");
    expect(cronError(5 as unknown as string)).toBe("cron: expression must be a string");
  });
});

describe("timeZoneError", () => {
  it("accepts IANA names (any case) and links, rejects the rest", () => {
    for (const tz of ["UTC", "Etc/UTC", "Europe/Berlin", "europe/berlin", "America/New_York", "US/Eastern", "Asia/Kolkata", "Pacific/Chatham"]) {
      expect(timeZoneError(tz), tz).toBeNull();
    }
    expect(timeZoneError("Mars/Base")).toBe("unknown time zone: Mars/Base");
    expect(timeZoneError("")).toBe("unknown time zone: ");
    expect(timeZoneError("+05:00")).toBe("unknown time zone: +05:00");
  });
});

describe("parseDuration", () => {
  it("reads ms, s, m, h, d, compounds and decimals that come to whole milliseconds", () => {
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("5m")).toBe(300_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("1d")).toBe(86_400_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("1.5h")).toBe(5_400_000);
    expect(parseDuration(" 10s ")).toBe(10_000);
    expect(parseDuration("0s")).toBe(0);
  });
  it("rejects anything else", () => {
    for (const bad of ["", "10", "5 m", "5M", "1w", "-5s", "1.5ms", "s", "5m!", "1e3ms", "9".repeat(400) + "d"]) {
      expect(parseDuration(bad), bad).toBeNull();
    }
  });
});

describe("nextFire: none, at, every", () => {
  it("none never fires", () => {
    expect(nextFire(schedule({ kind: "none" }), 0)).toBeNull();
  });

  it("at fires once, if strictly after afterMs and inside the window", () => {
    const at = schedule({ kind: "at", atMs: 5_000 });
    expect(nextFire(at, 0)).toBe(5_000);
    expect(nextFire(at, 4_999)).toBe(5_000);
    expect(nextFire(at, 5_000)).toBeNull();
    expect(nextFire({ ...at, startAtMs: 6_000 }, 0)).toBeNull();
    expect(nextFire({ ...at, startAtMs: 5_000 }, 0)).toBe(5_000);
    expect(nextFire({ ...at, endAtMs: 4_000 }, 0)).toBeNull();
    expect(nextFire({ ...at, endAtMs: 5_000 }, 0)).toBe(5_000);
  });

  it("every fires at anchor + k·every strictly after afterMs; anchored at creation, the first fire is one interval later", () => {
    const every = schedule({ kind: "every", everyMs: 500 }, { anchorMs: 1_000 });
    expect(nextFire(every, 0)).toBe(1_500);
    expect(nextFire(every, 999)).toBe(1_500);
    expect(nextFire(every, 1_000)).toBe(1_500);
    expect(nextFire(every, 1_499.5)).toBe(1_500);
    expect(nextFire(every, 1_500)).toBe(2_000);
    expect(nextFire(every, 1_000_000_000_000)).toBe(1_000_000_000_500);
    expect(nextFire({ ...every, startAtMs: 2_200 }, 0)).toBe(2_500);
    expect(nextFire({ ...every, endAtMs: 2_000 }, 1_600)).toBe(2_000);
    expect(nextFire({ ...every, endAtMs: 1_999 }, 1_600)).toBeNull();
    expect(nextFire(schedule({ kind: "every", everyMs: 0 }), 0)).toBeNull();
  });

  it("every anchored at startAt fires at startAt itself", () => {
    const every = schedule({ kind: "every", everyMs: 500 }, { anchorMs: 1_000, startAtMs: 1_000 });
    expect(nextFire(every, 0)).toBe(1_000);
    expect(nextFire(every, 999)).toBe(1_000);
    expect(nextFire(every, 1_000)).toBe(1_500);
  });

  it("every: successive fires are exactly every everyMs apart (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2e12 }),
        fc.integer({ min: 1, max: 1e9 }),
        fc.integer({ min: -1e12, max: 3e12 }),
        fc.boolean(),
        (anchorMs, everyMs, after, fromStart) => {
          const s = schedule({ kind: "every", everyMs }, { anchorMs, startAtMs: fromStart ? anchorMs : null });
          const first = fromStart ? anchorMs : anchorMs + everyMs;
          const a = nextFire(s, after)!;
          expect(a).toBeGreaterThan(after);
          expect(a).toBeGreaterThanOrEqual(first);
          expect((a - anchorMs) % everyMs).toBe(0);
          expect(a - everyMs <= after || a === first).toBe(true);
          expect(nextFire(s, a)).toBe(a + everyMs);
        },
      ),
    );
  });

  it("a non-finite afterMs gives null", () => {
    expect(nextFire(cron("* * * * *"), Number.NaN)).toBeNull();
    expect(nextFire(schedule({ kind: "every", everyMs: 1 }), Number.POSITIVE_INFINITY)).toBeNull();
  });
});

describe("nextFire: cron in UTC", () => {
  it("5 fields: minute first, seconds 0", () => {
    expect(fires(cron("*/20 * * * *"), "2024-01-01T00:00:00Z", 3)).toEqual([
      "2024-01-01T00:20:00Z",
      "2024-01-01T00:40:00Z",
      "2024-01-01T01:00:00Z",
    ]);
    // Strictly after: a fire at afterMs itself is not returned; sub-second afterMs works.
    expect(iso(nextFire(cron("0 * * * *"), ms("2024-01-01T01:00:00Z"))!)).toBe("2024-01-01T02:00:00Z");
    expect(iso(nextFire(cron("0 * * * *"), ms("2024-01-01T00:59:59.999Z"))!)).toBe("2024-01-01T01:00:00Z");
  });

  it("6 fields: seconds first", () => {
    expect(fires(cron("*/15 * * * * *"), "2024-01-01T00:00:00Z", 4)).toEqual([
      "2024-01-01T00:00:15Z",
      "2024-01-01T00:00:30Z",
      "2024-01-01T00:00:45Z",
      "2024-01-01T00:01:00Z",
    ]);
    expect(fires(cron("30 0 9 * * *"), "2024-01-01T09:00:30.500Z", 1)).toEqual(["2024-01-02T09:00:30Z"]);
  });

  it("L: last day of the month (leap years too)", () => {
    expect(fires(cron("0 0 L * *"), "2024-01-15T00:00:00Z", 3)).toEqual([
      "2024-01-31T00:00:00Z",
      "2024-02-29T00:00:00Z",
      "2024-03-31T00:00:00Z",
    ]);
    expect(fires(cron("0 0 L 2 *"), "2024-03-01T00:00:00Z", 2)).toEqual(["2025-02-28T00:00:00Z", "2026-02-28T00:00:00Z"]);
  });

  it("5L: last Friday; 1#2: second Monday", () => {
    expect(fires(cron("0 0 * * 5L"), "2024-01-01T00:00:00Z", 3)).toEqual([
      "2024-01-26T00:00:00Z",
      "2024-02-23T00:00:00Z",
      "2024-03-29T00:00:00Z",
    ]);
    expect(fires(cron("0 0 * * 1#2"), "2024-01-01T00:00:00Z", 3)).toEqual([
      "2024-01-08T00:00:00Z",
      "2024-02-12T00:00:00Z",
      "2024-03-11T00:00:00Z",
    ]);
  });

  it("day-of-month and day-of-week both restricted: either matches; ? leaves it unrestricted", () => {
    expect(fires(cron("0 0 1 * 1"), "2024-01-01T00:00:00Z", 6)).toEqual([
      "2024-01-08T00:00:00Z",
      "2024-01-15T00:00:00Z",
      "2024-01-22T00:00:00Z",
      "2024-01-29T00:00:00Z",
      "2024-02-01T00:00:00Z",
      "2024-02-05T00:00:00Z",
    ]);
    expect(fires(cron("0 0 1 * ?"), "2024-01-01T00:00:00Z", 2)).toEqual(["2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"]);
  });

  it("names, macros and rare dates", () => {
    expect(fires(cron("30 9 * JAN-MAR MON-FRI"), "2024-03-29T12:00:00Z", 1)).toEqual(["2025-01-01T09:30:00Z"]);
    expect(fires(cron("@weekdays"), "2024-01-05T12:00:00Z", 1)).toEqual(["2024-01-08T00:00:00Z"]);
    expect(fires(cron("@yearly"), "2024-06-01T00:00:00Z", 1)).toEqual(["2025-01-01T00:00:00Z"]);
    expect(fires(cron("0 0 29 2 *"), "2024-03-01T00:00:00Z", 2)).toEqual(["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]);
    // The fifth Monday of February: only in leap years that start February on a Monday.
    expect(fires(cron("0 0 * 2 1#5"), "2016-03-01T00:00:00Z", 1)).toEqual(["2044-02-29T00:00:00Z"]);
  });

  it("a zone without DST is a fixed shift: Asia/Kolkata is +05:30", () => {
    expect(fires(cron("0 9 * * *", "Asia/Kolkata"), "2024-01-01T00:00:00Z", 2)).toEqual([
      "2024-01-01T03:30:00Z",
      "2024-01-02T03:30:00Z",
    ]);
  });

  it("the window: no fire before startAt or after endAt (endAt inclusive)", () => {
    const s = cron("0 * * * *", "UTC", { startAtMs: ms("2024-01-01T05:30:00Z"), endAtMs: ms("2024-01-01T08:00:00Z") });
    expect(fires(s, "2024-01-01T00:00:00Z", 10)).toEqual([
      "2024-01-01T06:00:00Z",
      "2024-01-01T07:00:00Z",
      "2024-01-01T08:00:00Z",
    ]);
    expect(iso(nextFire({ ...s, startAtMs: ms("2024-01-01T06:00:00Z") }, 0)!)).toBe("2024-01-01T06:00:00Z");
  });

  it("an invalid cron or zone throws (the API edge rejects them first)", () => {
    expect(() => nextFire(cron("0 25 * * *"), 0)).toThrow("cron: field 'hour' out of range: 25");
    expect(() => nextFire(cron("* * * * *", "Mars/Base"), 0)).toThrow("unknown time zone: Mars/Base");
  });
});

describe("the memo", () => {
  const zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"];
  const exprs = ["* * * * *", "*/7 * * * *", "30 2 * * *", "0 */2 * * *", "*/15 * * * * *", "0 1 L * *"];

  it("answers from any order of queries equal fresh answers, and any t in [after, next) gets next", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...exprs),
        fc.constantFrom(...zones),
        fc.constantFrom<DstPolicy>(
          { repeated: "first", missing: "shift" },
          { repeated: "last", missing: "skip" },
          { repeated: "both", missing: "shift" },
        ),
        fc.array(fc.integer({ min: ms("2024-03-01T00:00:00Z"), max: ms("2024-11-30T00:00:00Z") }), { minLength: 1, maxLength: 20 }),
        (expr, tz, dst, queries) => {
          const s = cron(expr, tz, {}, dst);
          const memoed = queries.map((q) => nextFire(s, q));
          queries.forEach((q, i) => {
            clearTriggerMemo();
            const fresh = nextFire(s, q)!;
            expect(fresh).toBe(memoed[i]);
            // every instant between q and the answer has the same answer
            clearTriggerMemo();
            expect(nextFire(s, Math.floor((q + fresh) / 2))).toBe(fresh);
            clearTriggerMemo();
            expect(nextFire(s, fresh - 1)).toBe(fresh);
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it("separate but equal trigger objects share one compiled cron; a changed object is recompiled", () => {
    const t: Trigger = { kind: "cron", expr: "0 * * * *", timezone: "UTC", dst: { ...DEFAULT } };
    const s = schedule(t);
    expect(iso(nextFire(s, ms("2024-01-01T00:30:00Z"))!)).toBe("2024-01-01T01:00:00Z");
    (t as { expr: string }).expr = "30 * * * *";
    expect(iso(nextFire(s, ms("2024-01-01T00:40:00Z"))!)).toBe("2024-01-01T01:30:00Z");
  });
});

describe("jitter", () => {
  it("is 0 without jitter, in [0, jitterMs), deterministic and spread out", () => {
    expect(jitterFor("job:1", 0)).toBe(0);
    expect(jitterFor("job:1", 0.5)).toBe(0);
    expect(jitterFor("job:1", 1)).toBe(0);
    expect(jitterFor("job:1", 60_000)).toBe(jitterFor("job:1", 60_000));
    const buckets = new Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const j = jitterFor(`job-${i % 37}:${1_700_000_000_000 + i * 60_000}`, 10_000);
      expect(j).toBeGreaterThanOrEqual(0);
      expect(j).toBeLessThan(10_000);
      expect(Number.isInteger(j)).toBe(true);
      buckets[Math.floor(j / 1_000)]!++;
    }
    for (const b of buckets) expect(b).toBeGreaterThan(850), expect(b).toBeLessThan(1_150);
  });

  it("comes from FNV-1a 32 over UTF-8 (standard test vectors)", () => {
    expect(hash32("")).toBe(0x811c9dc5);
    expect(hash32("a")).toBe(0xe40c292c);
    expect(hash32("foobar")).toBe(0xbf9cf968);
    // Non-ASCII hashes its UTF-8 bytes: "é" is c3 a9, "😀" is f0 9f 98 80.
    const fnvBytes = (bytes: number[]) => bytes.reduce((h, b) => Math.imul(h ^ b, 0x01000193) >>> 0, 0x811c9dc5);
    expect(hash32("é")).toBe(fnvBytes([0xc3, 0xa9]));
    expect(hash32("a😀€")).toBe(fnvBytes([0x61, 0xf0, 0x9f, 0x98, 0x80, 0xe2, 0x82, 0xac]));
    const u = unitInterval("job-1:1700000000000");
    expect(u).toBeGreaterThanOrEqual(0);
    expect(u).toBeLessThan(1);
  });
});

describe("preview", () => {
  it("lists the next fires with jitter applied and marked", () => {
    const s = cron("0 * * * *", "UTC", { jitterMs: 60_000 });
    const items = preview(s, "job-1", ms("2024-01-01T00:00:00Z"), 5);
    expect(items.map((p) => iso(p.nominalMs))).toEqual([
      "2024-01-01T01:00:00Z",
      "2024-01-01T02:00:00Z",
      "2024-01-01T03:00:00Z",
      "2024-01-01T04:00:00Z",
      "2024-01-01T05:00:00Z",
    ]);
    for (const p of items) {
      const j = jitterFor(`job-1:${p.nominalMs}`, 60_000);
      expect(p.fireAtMs).toBe(p.nominalMs + j);
      expect(p.marks).toEqual(j > 0 ? ["jitter"] : []);
    }
    expect(preview(cron("0 * * * *"), "job-1", 0, 2).every((p) => p.fireAtMs === p.nominalMs && p.marks.length === 0)).toBe(true);
  });

  it("marks the first fire when startAt suppressed earlier ones; stops at endAt and at count", () => {
    const s = cron("0 * * * *", "UTC", { startAtMs: ms("2024-01-01T05:30:00Z"), endAtMs: ms("2024-01-01T07:00:00Z") });
    expect(preview(s, "j", ms("2024-01-01T00:00:00Z"), 10).map((p) => [iso(p.nominalMs), p.marks])).toEqual([
      ["2024-01-01T06:00:00Z", ["window-start"]],
      ["2024-01-01T07:00:00Z", []],
    ]);
    // Asked from inside the window, nothing was suppressed.
    expect(preview(s, "j", ms("2024-01-01T05:45:00Z"), 1)[0]!.marks).toEqual([]);
    // `every` anchored at startAt: the window changes nothing.
    const every = schedule({ kind: "every", everyMs: 60_000 }, { anchorMs: 1_000_000, startAtMs: 1_000_000 });
    expect(preview(every, "j", 0, 3)).toEqual([
      { nominalMs: 1_000_000, fireAtMs: 1_000_000, marks: [] },
      { nominalMs: 1_060_000, fireAtMs: 1_060_000, marks: [] },
      { nominalMs: 1_120_000, fireAtMs: 1_120_000, marks: [] },
    ]);
    expect(preview(cron("* * * * *"), "j", 0, 0)).toEqual([]);
    expect(preview(schedule({ kind: "at", atMs: 10 }), "j", 0, 5)).toEqual([{ nominalMs: 10, fireAtMs: 10, marks: [] }]);
    expect(preview(schedule({ kind: "none" }), "j", 0, 5)).toEqual([]);
  });
});

describe("cost of nextFire", () => {
  it("memo miss and memo hit, µs per call", () => {
    const s = cron("*/5 * * * *", "America/New_York");
    const n = 100_000;
    const base = ms("2024-01-01T00:00:00Z");
    const queries = Array.from({ length: n }, (_, i) => base + ((i * 7_919 * 60_013) % (365 * 86_400_000)));
    let sink = 0;
    for (const q of queries.slice(0, 10_000)) sink += nextFire(s, q)!; // warm up: JIT, zone years
    let started = performance.now();
    for (const q of queries) sink += nextFire(s, q)!;
    const missUs = ((performance.now() - started) * 1_000) / n;
    const hitAfter = ms("2024-06-01T12:00:30Z");
    started = performance.now();
    for (let i = 0; i < n; i++) sink += nextFire(s, hitAfter + (i % 1_000))!;
    const hitUs = ((performance.now() - started) * 1_000) / n;
    console.log(`nextFire */5 America/New_York: memo miss ${missUs.toFixed(2)} µs/call, memo hit ${hitUs.toFixed(3)} µs/call`);
    expect(sink).toBeGreaterThan(0);
    // Generous bounds: the CI machine may be busy.
    expect(missUs).toBeLessThan(25);
    expect(hitUs).toBeLessThan(5);
  });
});
