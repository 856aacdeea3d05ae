/**
 * Triggers: when does a job fire next? Pure and deterministic — time comes in as an argument.
 *
 * Four kinds (see Trigger in types.ts): `cron` (+ zone + DST policy), `every` (anchorMs + k·everyMs:
 * from startAt inclusive, else from one interval after the creation time), `at` (one instant) and
 * `none`. A schedule adds a window (startAtMs ≤ fire ≤ endAtMs) and jitter (added after the
 * nominal time, deterministic per execution id). maxRuns is counted by the caller.
 *
 * ## Cron
 * cron-parser (v5) parses and validates the expression; its parsed field sets drive a small matcher
 * of our own over *floating wall time* (a local date-time encoded as if it were UTC ms). Matching in
 * floating time has no DST in the way, and the matcher agrees with cron-parser's own iteration in
 * tz "UTC" (a property test checks that) while costing well under a microsecond instead of the
 * ~20 µs that one `CronExpression.next()` costs.
 *
 * Supported syntax (exactly cron-parser's, minus `H`):
 *   5 fields `min hour dom month dow` or 6 fields `sec min hour dom month dow`;
 *   `*` `?` (= `*`) `,` `-` `/`; names JAN–DEC, SUN–SAT; dow 0–7 (0 and 7 are Sunday);
 *   `L` in day-of-month (last day), `5L` in day-of-week (last Friday of the month),
 *   `1#2` in day-of-week (second Monday; `#` takes a single weekday, no list);
 *   macros @yearly @annually @monthly @weekly @daily @hourly @minutely @secondly @weekdays @weekends.
 *   When both day-of-month and day-of-week are restricted a day matches if EITHER matches (Vixie
 *   cron); a field counts as unrestricted only when it is exactly `*` or `?`.
 * Not supported: `W` (nearest weekday), `L-n`, `LW`, `H` (cron-parser picks H randomly unless
 * seeded, which would make fire times differ between replicas), @reboot, 7-field (year) crons.
 *
 * ## DST, exactly as implemented
 * The zone's offset comes from Intl (time-zone.ts). A matching wall time W happens at the instants
 * t with t + offset(t) = W: one instant normally, two in an autumn overlap, none in a spring gap.
 * - Repeated wall time (two instants): `first` fires at the earlier, `last` at the later, `both` at
 *   both.
 * - Missing wall time (none): `shift` fires at the transition instant T, the first instant after the
 *   gap (Europe/Berlin 2024-03-31 02:30 → 03:00 CEST = 01:00Z). All missing wall times of one gap
 *   collapse into T, and a real fire at T (e.g. 03:00 for an hourly cron) is the same single fire.
 *   `skip` does not fire.
 * Fires are a set of instants; nextFire returns the smallest one strictly after afterMs, so
 * iterating `t = nextFire(s, t)` is strictly increasing and never yields an instant twice.
 *
 * How: the search walks segments of instants with a constant offset o (a segment ends at the zone's
 * next transition, or after a year). Inside [s, e) the fires are the matching walls W in
 * [s + o, e + o) at t = W − o, filtered by the repeated-time policy (W's other instant, if any, is
 * W − o' for the offset o' a day before or after W); at a segment that starts with a spring
 * transition, `shift` adds the transition instant if any wall time in the gap matches. Far-apart
 * walls (a yearly cron) are reached by a jump instead of walking segments. A zone with DST is
 * searched 100 years ahead at most (null beyond: e.g. a cron that only ever matches inside a gap,
 * with `skip`).
 * Example, Europe/Berlin, `30 2 * * *`, 2024-10-27 (02:00–02:59 happen twice):
 *   first → 00:30Z, last → 01:30Z, both → 00:30Z and 01:30Z.
 *
 * Memo: compiled crons are shared per (expr, zone, dst policy) — thousands of jobs share one cron —
 * and each remembers its last answer (after → next): any afterMs in [after, next) gets `next` back.
 */
import { CronExpressionParser } from "cron-parser";
import { unitInterval } from "./hash.js";
import {
  DAY_MS,
  HOUR_MS,
  MINUTE_MS,
  SECOND_MS,
  type Zone,
  civilFromDays,
  daysFromCivil,
  daysInMonth,
  getZone,
  timeZoneError,
  weekdayOfDays,
} from "./time-zone.js";
import type { DstMissing, DstRepeated, Schedule, Trigger } from "./types.js";

/** null if `tz` is a time zone the runtime knows (IANA name), else "unknown time zone: Mars/Base". */
export { timeZoneError };

/** Longest cron expression we hand to the parser (cron-parser's own limit). */
const CRON_CHARS_MAX = 1024;
/** Compiled crons kept in the memo; the oldest is evicted first. */
const CRON_MEMO_ENTRIES_MAX = 10_000;
/** A wall-time search gives up after this many years (the Gregorian calendar repeats every 400). */
const CRON_SEARCH_YEARS_MAX = 400;
/** Instants in one search segment at most (a segment also ends at the zone's next transition). */
const SEGMENT_MS = 366 * DAY_MS;
/** Largest change of a zone's offset we allow for when jumping ahead (Samoa 2011 was 24 h). */
const OFFSET_CHANGE_MS_MAX = 26 * HOUR_MS;
/**
 * How far past afterMs a search in a zone with DST looks before it answers null. Any calendar
 * pattern recurs within 40 years; what can need longer is a cron whose every match falls in a DST
 * gap with `missing: skip` (e.g. `30 2 * 3 0#2` in America/New_York), which never fires.
 */
const CRON_HORIZON_MS = 100 * 366 * DAY_MS;
/** |afterMs| beyond which a cron search answers null (Date ends at 8.64e15; year 255,000 or so). */
const SEARCH_FROM_MS_MAX = 8e15;
/** Bound on segments one search walks (about two per year of the horizon, plus jumps). */
const SEARCH_SEGMENTS_MAX = 10_000;
/** Largest preview we compute. */
const PREVIEW_COUNT_MAX = 10_000;

// ---------------------------------------------------------------------------------------------
// Cron: parse and validate

const FIELD_NAMES = ["second", "minute", "hour", "day-of-month", "month", "day-of-week"] as const;
type FieldName = (typeof FIELD_NAMES)[number];

const MACROS: Readonly<Record<string, string>> = {
  "@yearly": "0 0 0 1 1 *",
  "@annually": "0 0 0 1 1 *",
  "@monthly": "0 0 0 1 * *",
  "@weekly": "0 0 0 * * 0",
  "@daily": "0 0 0 * * *",
  "@hourly": "0 0 * * * *",
  "@minutely": "0 * * * * *",
  "@secondly": "* * * * * *",
  "@weekdays": "0 0 0 * * 1-5",
  "@weekends": "0 0 0 * * 0,6",
};

class CronSyntaxError extends Error {}

/** The six fields (seconds first) of `expr`, or a CronSyntaxError. */
function splitCron(expr: string): string[] {
  if (typeof expr !== "string") throw new CronSyntaxError("cron: expression must be a string");
  const trimmed = expr.trim();
  if (trimmed.length === 0) throw new CronSyntaxError("cron: expression is empty");
  if (trimmed.length > CRON_CHARS_MAX) {
    throw new CronSyntaxError(`cron: expression is longer than ${CRON_CHARS_MAX} characters`);
  }
  if (trimmed.startsWith("@")) {
    const macro = MACROS[trimmed.toLowerCase()];
    if (macro === undefined) {
      throw new CronSyntaxError(`cron: unknown macro '${clip(trimmed)}' (supported: ${Object.keys(MACROS).join(", ")})`);
    }
    return macro.split(" ");
  }
  const atoms = trimmed.split(/\s+/);
  if (atoms.length === 5) return ["0", ...atoms];
  if (atoms.length === 6) return atoms;
  throw new CronSyntaxError(
    `cron: expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds first), got ${atoms.length}`,
  );
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/** A user-facing message for cron-parser's error `msg` about field `name` written as `raw`. */
function fieldMessage(name: FieldName, raw: string, msg: string): string {
  const f = `cron: field '${name}'`;
  const r = clip(raw);
  let m: RegExpMatchArray | null;
  if ((m = msg.match(/got value (\S+) expected range/))) return `${f} out of range: ${m[1]}`;
  if ((m = msg.match(/got range (\S+) expected range/))) {
    return m[1]!.includes("NaN") ? `${f} has an invalid range: '${r}'` : `${f} out of range: ${m[1]}`;
  }
  if (/Invalid characters/.test(msg)) return `${f} has invalid characters: '${r}'`;
  if (/Invalid range: .*min\(/.test(msg)) return `${f} has a range that runs backwards: '${r}'`;
  if (/cannot repeat at every|Invalid repeat/.test(msg)) return `${f} has an invalid step: '${r}'`;
  if (/Invalid list value format/.test(msg)) return `${f} has an empty list item: '${r}'`;
  if ((m = msg.match(/cannot resolve alias "(\w+)"/))) return `${f} has an unknown name: '${m[1]}'`;
  if (/Invalid wildcard/.test(msg)) return `${f} has a misplaced wildcard: '${r}'`;
  if (/special characters are incompatible/.test(msg)) {
    return `${f}: '#' takes a single weekday (no list, range, step or L): '${r}'`;
  }
  if (/occurrence number/.test(msg)) return `${f} has an invalid occurrence (use #1 to #5): '${r}'`;
  if (/standalone L/.test(msg)) return `${f}: a bare 'L' is not allowed here (e.g. '5L' is the last Friday)`;
  if ((m = msg.match(/duplicate values found: (\S+)/))) return `${f} lists a value twice: ${m[1]}`;
  if (/too many values/.test(msg)) return `${f} has too many values`;
  return `${f} is invalid: '${r}'`;
}

/** Rejects what cron-parser would accept but we do not support, with a specific message. */
function checkUnsupported(name: FieldName, raw: string): void {
  // Month and weekday names (JAN, THU, …) may contain H or W; look past them.
  const bare = name === "month" || name === "day-of-week" ? raw.replace(/[a-z]{3}/gi, "") : raw;
  if (bare.includes("H")) {
    throw new CronSyntaxError(`cron: field '${name}': 'H' (hashed value) is not supported: '${clip(raw)}'`);
  }
  if (name === "day-of-month" && /w/i.test(raw)) {
    throw new CronSyntaxError(`cron: field '${name}': 'W' (nearest weekday) is not supported: '${clip(raw)}'`);
  }
}

type ParsedFields = ReturnType<typeof CronExpressionParser.parse>["fields"];

function parseSix(fields: readonly string[]): ParsedFields {
  return CronExpressionParser.parse(fields.join(" "), { tz: "UTC", currentDate: 0 }).fields;
}

/** Parses `expr` (5 or 6 fields or a macro) into cron-parser's field sets, or throws CronSyntaxError. */
function parseCronFields(expr: string): ParsedFields {
  const fields = splitCron(expr);
  for (let i = 0; i < 6; i++) checkUnsupported(FIELD_NAMES[i]!, fields[i]!);
  let whole: Error;
  try {
    return parseSix(fields);
  } catch (err) {
    whole = err as Error;
  }
  // Find the field at fault by parsing each one alone, so the message can name it.
  for (let i = 0; i < 6; i++) {
    const probe = ["0", "*", "*", "*", "*", "*"];
    probe[i] = fields[i]!;
    try {
      parseSix(probe);
    } catch (err) {
      throw new CronSyntaxError(fieldMessage(FIELD_NAMES[i]!, fields[i]!, (err as Error).message));
    }
  }
  if (/day of month/.test(whole.message)) {
    throw new CronSyntaxError(
      `cron: field 'day-of-month' value '${clip(fields[3]!)}' never occurs in month '${clip(fields[4]!)}'`,
    );
  }
  throw new CronSyntaxError(`cron: invalid expression: ${clip(whole.message)}`);
}

// ---------------------------------------------------------------------------------------------
// Cron: the wall-time matcher

/** A cron as lookup tables. `next*[i]` is the smallest allowed value ≥ i, or -1. */
interface CronSpec {
  readonly nextSecond: Int8Array; // 60
  readonly nextMinute: Int8Array; // 60
  readonly nextHour: Int8Array; // 24
  readonly nextMonth: Int8Array; // 13, index 1..12
  readonly firstMonth: number;
  readonly dom: Uint8Array; // 32, index 1..31
  readonly domLast: boolean;
  readonly domRestricted: boolean;
  readonly dow: Uint8Array; // 7, 0 = Sunday
  readonly dowLast: Uint8Array; // 7: weekdays that match in the last week of the month (`5L`)
  readonly dowHasLast: boolean;
  readonly nth: number; // 0, or 1..5 for `#n`
  readonly dowRestricted: boolean;
  /** No wall time ever matches (checked over a whole 400-year cycle). */
  readonly never: boolean;
}

function nextTable(values: readonly number[], size: number, offset = 0): Int8Array {
  const t = new Int8Array(size + offset).fill(-1);
  const allowed = new Set(values);
  let next = -1;
  for (let i = size + offset - 1; i >= offset; i--) {
    if (allowed.has(i)) next = i;
    t[i] = next;
  }
  return t;
}

function specFromFields(f: ParsedFields): CronSpec {
  const nums = (vs: readonly (number | string)[]): number[] =>
    vs.filter((v): v is number => typeof v === "number");
  const dom = new Uint8Array(32);
  for (const v of nums(f.dayOfMonth.values)) dom[v] = 1;
  const dow = new Uint8Array(7);
  const dowLast = new Uint8Array(7);
  for (const v of f.dayOfWeek.values) {
    if (typeof v === "number") dow[v % 7] = 1;
    // cron-parser matches `nL` by the first character of every value of the field.
    dowLast[parseInt(String(v).charAt(0), 10) % 7] = 1;
  }
  const months = nums(f.month.values);
  const partial = {
    nextSecond: nextTable(nums(f.second.values), 60),
    nextMinute: nextTable(nums(f.minute.values), 60),
    nextHour: nextTable(nums(f.hour.values), 24),
    nextMonth: nextTable(months, 12, 1),
    firstMonth: Math.min(...months),
    dom,
    domLast: f.dayOfMonth.hasLastChar,
    domRestricted: !f.dayOfMonth.isWildcard,
    dow,
    dowLast,
    dowHasLast: f.dayOfWeek.hasLastChar,
    nth: f.dayOfWeek.nthDay,
    dowRestricted: !f.dayOfWeek.isWildcard,
    never: false,
  };
  const from = daysFromCivil(2000, 1, 1) * DAY_MS - 1;
  return { ...partial, never: nextWall(partial, from) === null };
}

/** Whether day y-m-d (dim days in the month, day number z since 1970) matches, as cron-parser decides. */
function dayMatches(spec: CronSpec, d: number, dim: number, z: number): boolean {
  const domMatch = spec.dom[d] === 1 || (spec.domLast && d === dim);
  if (!spec.dowRestricted) return domMatch;
  const wd = weekdayOfDays(z);
  const dowMatch =
    (spec.dow[wd] === 1 && (spec.nth <= 0 || Math.ceil(d / 7) === spec.nth)) ||
    (spec.dowHasLast && d > dim - 7 && spec.dowLast[wd] === 1);
  return spec.domRestricted ? domMatch || dowMatch : dowMatch;
}

/** The smallest matching floating wall time (whole seconds) strictly greater than x, or null. */
function nextWall(spec: CronSpec, x: number): number | null {
  if (spec.never) return null;
  const start = Math.floor(x / SECOND_MS) * SECOND_MS + SECOND_MS;
  let z = Math.floor(start / DAY_MS);
  let rest = start - z * DAY_MS;
  let h = Math.floor(rest / HOUR_MS);
  rest -= h * HOUR_MS;
  let mi = Math.floor(rest / MINUTE_MS);
  let s = Math.floor((rest - mi * MINUTE_MS) / SECOND_MS);
  let [y, mo, d] = civilFromDays(z);
  const yearMax = y + CRON_SEARCH_YEARS_MAX;
  for (;;) {
    const nm = spec.nextMonth[mo]!;
    if (nm !== mo) {
      if (nm < 0) {
        y++;
        mo = spec.firstMonth;
      } else {
        mo = nm;
      }
      if (y > yearMax) return null;
      d = 1;
      h = mi = s = 0;
      z = daysFromCivil(y, mo, d);
    }
    const dim = daysInMonth(y, mo);
    let dd = d;
    let zz = z;
    while (dd <= dim && !dayMatches(spec, dd, dim, zz)) {
      dd++;
      zz++;
    }
    if (dd > dim) {
      mo++;
      if (mo > 12) {
        mo = 1;
        y++;
        if (y > yearMax) return null;
      }
      d = 1;
      h = mi = s = 0;
      z = daysFromCivil(y, mo, d);
      continue;
    }
    if (dd !== d) {
      d = dd;
      z = zz;
      h = mi = s = 0;
    }
    const nh = spec.nextHour[h]!;
    if (nh < 0) {
      d++;
      z++;
      h = mi = s = 0;
      continue;
    }
    if (nh !== h) {
      h = nh;
      mi = s = 0;
    }
    const nmi = spec.nextMinute[mi]!;
    if (nmi < 0) {
      h++;
      mi = s = 0;
      if (h > 23) {
        h = 0;
        d++;
        z++;
      }
      continue;
    }
    if (nmi !== mi) {
      mi = nmi;
      s = 0;
    }
    const ns = spec.nextSecond[s]!;
    if (ns < 0) {
      mi++;
      s = 0;
      if (mi > 59) {
        mi = 0;
        h++;
        if (h > 23) {
          h = 0;
          d++;
          z++;
        }
      }
      continue;
    }
    return z * DAY_MS + h * HOUR_MS + mi * MINUTE_MS + ns * SECOND_MS;
  }
}

function wallMatches(spec: CronSpec, w: number): boolean {
  return nextWall(spec, w - 1) === w;
}

// ---------------------------------------------------------------------------------------------
// Cron: compile and memo

interface CompiledCron {
  readonly expr: string;
  readonly timezone: string;
  readonly repeated: DstRepeated;
  readonly missing: DstMissing;
  readonly spec: CronSpec;
  readonly zone: Zone;
  /** Memo of the last answer: the next fire after `lastAfter` is `lastNext`. */
  lastAfter: number;
  lastNext: number | null;
}

const specMemo = new Map<string, CronSpec>();
const cronMemo = new Map<string, CompiledCron>();
let byTrigger = new WeakMap<object, CompiledCron>();

function remember<V>(memo: Map<string, V>, key: string, value: V): V {
  if (memo.size >= CRON_MEMO_ENTRIES_MAX) memo.delete(memo.keys().next().value as string);
  memo.set(key, value);
  return value;
}

function cronSpec(expr: string): CronSpec {
  const hit = specMemo.get(expr);
  if (hit !== undefined) return hit;
  let spec: CronSpec;
  try {
    spec = specFromFields(parseCronFields(expr));
  } catch (err) {
    if (err instanceof CronSyntaxError) throw new Error(err.message);
    throw err;
  }
  return remember(specMemo, expr, spec);
}

type CronTrigger = Extract<Trigger, { kind: "cron" }>;

function compiledCron(t: CronTrigger): CompiledCron {
  const cached = byTrigger.get(t);
  if (
    cached !== undefined &&
    cached.expr === t.expr &&
    cached.timezone === t.timezone &&
    cached.repeated === t.dst.repeated &&
    cached.missing === t.dst.missing
  ) {
    return cached;
  }
  const key = `${t.expr}\u0000${t.timezone}\u0000${t.dst.repeated}\u0000${t.dst.missing}`;
  let c = cronMemo.get(key);
  if (c === undefined) {
    const tzError = timeZoneError(t.timezone);
    if (tzError !== null) throw new Error(tzError);
    c = remember(cronMemo, key, {
      expr: t.expr,
      timezone: t.timezone,
      repeated: t.dst.repeated,
      missing: t.dst.missing,
      spec: cronSpec(t.expr),
      zone: getZone(t.timezone),
      lastAfter: Number.NaN,
      lastNext: null,
    });
  }
  byTrigger.set(t, c);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Cron: from wall times to instants

/**
 * The other instant at which wall time w happens, besides t, or null. Offsets are sampled a day
 * either side of w, which brackets any one transition near it.
 */
function otherInstant(zone: Zone, w: number, t: number): number | null {
  // Fast path: the offset is the same for a day either side of t, so no other instant can map to w.
  if (zone.constantAround(t, DAY_MS)) return null;
  const o1 = zone.offsetAt(w - DAY_MS);
  const o2 = zone.offsetAt(w + DAY_MS);
  let c = w - o1;
  if (c !== t && zone.offsetAt(c) === o1) return c;
  if (o2 === o1) return null;
  c = w - o2;
  if (c !== t && zone.offsetAt(c) === o2) return c;
  return null;
}

/** Whether the fire of wall w at instant t survives the repeated-time policy. */
function keepsRepeated(c: CompiledCron, w: number, t: number): boolean {
  if (c.repeated === "both") return true;
  const other = otherInstant(c.zone, w, t);
  if (other === null) return true;
  return c.repeated === "first" ? t < other : t > other;
}

/** If instant t is a spring-forward transition whose gap holds a matching wall time: true. */
function isShiftInstant(c: CompiledCron, t: number): boolean {
  const before = c.zone.offsetAt(t - 1);
  const after = c.zone.offsetAt(t);
  if (before >= after) return false;
  const w = nextWall(c.spec, t + before - 1);
  return w !== null && w < t + after;
}

/** The smallest fire instant (ms) of the cron strictly after `after`, or null. */
function nextCronInstant(c: CompiledCron, after: number): number | null {
  const { spec, zone } = c;
  if (spec.never) return null;
  // Keep the search (and Intl) inside the range of Date, horizon included.
  if (!(Math.abs(after) < SEARCH_FROM_MS_MAX)) return null;
  let s = Math.floor(after) + 1; // the fire is the smallest instant ≥ s (fires are whole seconds)
  if (zone.isUtc) return nextWall(spec, s - 1);
  const horizon = s + CRON_HORIZON_MS;
  for (let segments = 0; segments < SEARCH_SEGMENTS_MAX; segments++) {
    if (s > horizon) return null;
    if (c.missing === "shift" && isShiftInstant(c, s)) return s;
    const o = zone.offsetAt(s);
    const transition = zone.transitionIn(s, s + SEGMENT_MS);
    const e = transition ?? s + SEGMENT_MS; // instants in [s, e) have offset o
    let w = nextWall(spec, s + o - 1);
    while (w !== null && w < e + o) {
      const t = w - o;
      if (keepsRepeated(c, w, t)) return t;
      w = nextWall(spec, w);
    }
    if (w === null) return null;
    // No fire in [s, e). With no transition ahead, jump close to the next matching wall: a fire
    // before w − o − OFFSET_CHANGE_MS_MAX would need a matching wall before w.
    s = transition === null ? Math.max(e, w - o - OFFSET_CHANGE_MS_MAX) : e;
  }
  throw new Error(`cron '${c.expr}' in ${c.timezone}: search walked ${SEARCH_SEGMENTS_MAX} segments`);
}

function nextCron(t: CronTrigger, after: number): number | null {
  const c = compiledCron(t);
  if (after >= c.lastAfter && (c.lastNext === null || after < c.lastNext)) return c.lastNext;
  const next = nextCronInstant(c, after);
  if (next !== null && !(next > after)) throw new Error(`cron '${c.expr}': fire ${next} is not after ${after}`);
  c.lastAfter = after;
  c.lastNext = next;
  return next;
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Parse-check a cron for the API edge: 5 fields (minute first) or 6 (seconds first), or a macro.
 * null if valid, else a message for a 400 error, e.g. "cron: field 'hour' out of range: 25".
 */
export function cronError(expr: string): string | null {
  try {
    const spec = specMemo.get(expr) ?? remember(specMemo, expr, specFromFields(parseCronFields(expr)));
    return spec.never ? "cron: the expression never matches a date" : null;
  } catch (err) {
    if (err instanceof CronSyntaxError) return err.message;
    return `cron: invalid expression: ${clip((err as Error).message)}`;
  }
}

/**
 * The nominal fire time strictly after afterMs (before jitter), honoring the trigger, startAtMs
 * (no fire before it) and endAtMs (no fire after it); null if there is none.
 * - at: atMs if it is after afterMs and in the window;
 * - every: anchorMs + k·everyMs; k ≥ 0 when the anchor is startAtMs (the window start fires),
 *   else k ≥ 1 (anchored at the creation time, the first fire is one interval after it);
 * - cron: see the module header; none: null.
 * Throws on an invalid cron or zone (the API edge has checked both). A non-finite afterMs gives null.
 */
export function nextFire(schedule: Schedule, afterMs: number): number | null {
  if (!Number.isFinite(afterMs)) return null;
  const { trigger, startAtMs, endAtMs } = schedule;
  let t: number | null;
  switch (trigger.kind) {
    case "none":
      return null;
    case "at":
      t = trigger.atMs > afterMs && (startAtMs === null || trigger.atMs >= startAtMs) ? trigger.atMs : null;
      break;
    case "every":
      t = nextEvery(schedule, trigger.everyMs, afterMs);
      break;
    case "cron": {
      const from = startAtMs !== null && Math.ceil(startAtMs) - 1 > afterMs ? Math.ceil(startAtMs) - 1 : afterMs;
      t = nextCron(trigger, from);
      break;
    }
  }
  if (t !== null && endAtMs !== null && t > endAtMs) return null;
  return t;
}

/**
 * anchor + k·every strictly after `after` and not before startAt; null if every is not > 0.
 * k ≥ 0 when the anchor is the window start (startAt given: "every hour from 09:00" fires at
 * 09:00), else k ≥ 1 (the anchor is the creation time: the first fire is one interval later).
 */
function nextEvery(schedule: Schedule, every: number, after: number): number | null {
  const { anchorMs: anchor, startAtMs: startAt } = schedule;
  // No anchor yet: a spec not applied by a shard (anchoredAt) has no fires to tell.
  if (!(every > 0) || !Number.isFinite(every) || anchor === null || !Number.isFinite(anchor)) return null;
  const kMin = startAt !== null && anchor === startAt ? 0 : 1;
  let k = Math.max(kMin, Math.floor((after - anchor) / every) + 1);
  if (startAt !== null && anchor + k * every < startAt) k = Math.max(k, Math.ceil((startAt - anchor) / every));
  const ok = (j: number): boolean => {
    const t = anchor + j * every;
    return t > after && (startAt === null || t >= startAt);
  };
  // Guard against floating-point error in the divisions above.
  while (!ok(k)) k++;
  while (k > kMin && ok(k - 1)) k--;
  return anchor + k * every;
}

/**
 * Deterministic jitter in [0, jitterMs) for an execution id: floor(u · jitterMs) with u in [0, 1)
 * from FNV-1a 64 of the id. 0 when jitterMs < 1.
 */
export function jitterFor(executionId: string, jitterMs: number): number {
  const j = Math.floor(jitterMs);
  if (!(j >= 1)) return 0;
  return Math.min(j - 1, Math.floor(unitInterval(executionId) * j));
}

export type PreviewMark = "dst-repeated" | "dst-shifted" | "jitter" | "window-start";

export interface PreviewItem {
  nominalMs: number;
  fireAtMs: number;
  marks: PreviewMark[];
}

/**
 * The next `count` fires after afterMs (fewer if the trigger or window runs out). fireAtMs is
 * nominalMs + jitterFor(`${jobId}:${nominalMs}`, jitterMs) — not clamped to endAtMs. Marks:
 * - dst-repeated: the fire's local time happens twice that day (any `repeated` policy);
 * - dst-shifted: the fire is a spring-forward transition instant standing in for missing local
 *   time(s) (`missing: shift`), possibly merged with a real fire at that instant;
 * - jitter: jitter moved it (fireAtMs > nominalMs);
 * - window-start: the first item, when startAtMs suppressed earlier fires of the trigger.
 */
export function preview(schedule: Schedule, jobId: string, afterMs: number, count: number): PreviewItem[] {
  const items: PreviewItem[] = [];
  const n = Math.min(Math.max(0, Math.floor(count)), PREVIEW_COUNT_MAX);
  const trigger = schedule.trigger;
  const compiled = trigger.kind === "cron" ? compiledCron(trigger) : null;
  let cursor = afterMs;
  for (let i = 0; i < n; i++) {
    const nominal = nextFire(schedule, cursor);
    if (nominal === null) break;
    const marks: PreviewMark[] = [];
    if (compiled !== null && !compiled.zone.isUtc) {
      const w = nominal + compiled.zone.offsetAt(nominal);
      if (wallMatches(compiled.spec, w) && otherInstant(compiled.zone, w, nominal) !== null) marks.push("dst-repeated");
      if (compiled.missing === "shift" && isShiftInstant(compiled, nominal)) marks.push("dst-shifted");
    }
    const jitter = jitterFor(`${jobId}:${nominal}`, schedule.jitterMs);
    if (jitter > 0) marks.push("jitter");
    if (i === 0 && schedule.startAtMs !== null && schedule.startAtMs > afterMs) {
      const unwindowed = nextFire({ ...schedule, startAtMs: null }, afterMs);
      if (unwindowed !== null && unwindowed < schedule.startAtMs) marks.push("window-start");
    }
    items.push({ nominalMs: nominal, fireAtMs: nominal + jitter, marks });
    cursor = nominal;
  }
  return items;
}

const DURATION_UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: SECOND_MS, m: MINUTE_MS, h: HOUR_MS, d: DAY_MS };

/**
 * "250ms" | "30s" | "5m" | "1h" | "1d", also compound ("1h30m") and decimal ("1.5h") when the
 * total is whole milliseconds; lowercase units. null for anything else (including a bare number).
 */
export function parseDuration(input: string): number | null {
  if (typeof input !== "string") return null;
  const s = input.trim();
  if (s.length === 0) return null;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (m === null) return null;
    total += Number(m[1]) * DURATION_UNIT_MS[m[2]!]!;
    pos = re.lastIndex;
  }
  const rounded = Math.round(total);
  if (Math.abs(total - rounded) > 1e-6 || !Number.isSafeInteger(rounded)) return null;
  return rounded;
}

/** For tests and benchmarks: drop every memo of compiled crons and parsed expressions. */
export function clearTriggerMemo(): void {
  specMemo.clear();
  cronMemo.clear();
  byTrigger = new WeakMap<object, CompiledCron>();
}
