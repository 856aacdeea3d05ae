/**
 * Time-zone offsets from the runtime's IANA database (Intl), fast enough for a scheduler that asks
 * for the next fire of many jobs.
 *
 * - One Intl.DateTimeFormat per zone, created once.
 * - Per zone and UTC year, the transitions are found once: the offset is sampled at each UTC
 *   midnight (366 Intl calls) and every change is pinned to the second by binary search (about 17
 *   more). Assumption, true of the tz database in practice: no two transitions within one UTC day.
 * - offsetAt(t) then reads the interval between two transitions; the last interval looked up is
 *   kept, so the usual lookup is two comparisons.
 * - "Floating" wall time: a local date and time encoded as if it were UTC milliseconds. A wall time
 *   W happens at instant t when t + offsetAt(t) === W.
 *
 * Also here: proleptic-Gregorian day arithmetic (days since 1970-01-01), which cron matching uses
 * instead of Date objects.
 */

export const SECOND_MS = 1_000;
export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

/** Years of transitions memoized per zone before the memo is dropped and rebuilt. */
const YEARS_PER_ZONE_MAX = 1_000;

// ---------------------------------------------------------------------------------------------
// Calendar arithmetic (H. Hinnant's algorithms), months 1..12.

/** Days since 1970-01-01 of the proleptic Gregorian date y-m-d. */
export function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const mp = (m + 9) % 12;
  const doy = Math.floor((153 * mp + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/** The date [y, m, d] of day `z` since 1970-01-01. */
export function civilFromDays(z: number): [number, number, number] {
  z += 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

export function isLeapYear(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

export function daysInMonth(y: number, m: number): number {
  return m === 2 && isLeapYear(y) ? 29 : DAYS_IN_MONTH[m - 1]!;
}

/** Day of week of day `z` since 1970-01-01: 0 = Sunday … 6 = Saturday. */
export function weekdayOfDays(z: number): number {
  return (((z + 4) % 7) + 7) % 7;
}

// ---------------------------------------------------------------------------------------------
// Zones

/** null if `tz` names a time zone the runtime knows (IANA name, case-insensitive), else a message. */
export function timeZoneError(tz: string): string | null {
  if (typeof tz !== "string" || tz.length === 0) return `unknown time zone: ${String(tz)}`;
  if (zones.has(tz)) return null;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return null;
  } catch {
    return `unknown time zone: ${tz}`;
  }
}

/** A zone's transitions within one UTC calendar year. */
interface YearInfo {
  /** First instant of the year (UTC midnight, January 1). */
  start: number;
  /** First instant of the next year. */
  end: number;
  /** The offset in force at `start`. */
  startOffset: number;
  /** Transition instants in (start, end], ascending: the first instant with the new offset. */
  at: number[];
  /** The offset from at[i] on. */
  after: number[];
}

export class Zone {
  /** The canonical name the runtime resolved (e.g. "US/Eastern" → "America/New_York"). */
  readonly canonical: string;
  /** True for zones that are UTC at every instant (offset 0, never a transition). */
  readonly isUtc: boolean;
  private readonly fmt: Intl.DateTimeFormat;
  private readonly years = new Map<number, YearInfo>();
  /** The last interval [curLo, curHi) looked up, with its constant offset. */
  private curLo = 0;
  private curHi = 0;
  private curOffset = 0;

  constructor(readonly name: string) {
    this.fmt = new Intl.DateTimeFormat("en-US", {
      timeZone: name,
      hourCycle: "h23",
      era: "short",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    this.canonical = this.fmt.resolvedOptions().timeZone;
    this.isUtc = this.canonical === "UTC" || this.canonical === "Etc/UTC" || this.canonical === "Etc/GMT" || this.canonical === "GMT";
  }

  /** The offset (local minus UTC, ms) at instant t, straight from Intl (no memo). Second resolution. */
  rawOffsetAt(t: number): number {
    const sec = Math.floor(t / SECOND_MS) * SECOND_MS;
    let y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0, bc = false;
    for (const p of this.fmt.formatToParts(sec)) {
      switch (p.type) {
        case "year": y = Number(p.value); break;
        case "month": mo = Number(p.value); break;
        case "day": d = Number(p.value); break;
        case "hour": h = Number(p.value); break;
        case "minute": mi = Number(p.value); break;
        case "second": s = Number(p.value); break;
        case "era": bc = p.value === "BC" || p.value === "B"; break;
        default: break;
      }
    }
    if (bc) y = 1 - y;
    const wall = daysFromCivil(y, mo, d) * DAY_MS + h * HOUR_MS + mi * MINUTE_MS + s * SECOND_MS;
    return wall - sec;
  }

  /** The offset (local minus UTC, ms) in force at instant t. Memoized. */
  offsetAt(t: number): number {
    if (t >= this.curLo && t < this.curHi) return this.curOffset;
    if (this.isUtc) return 0;
    const info = this.year(yearOfInstant(t));
    let lo = info.start;
    let hi = info.end;
    let offset = info.startOffset;
    for (let i = 0; i < info.at.length; i++) {
      const at = info.at[i]!;
      if (at <= t) {
        lo = at;
        offset = info.after[i]!;
      } else {
        hi = at;
        break;
      }
    }
    this.curLo = lo;
    this.curHi = hi;
    this.curOffset = offset;
    return offset;
  }

  /** Whether the offset is the same at every instant of [t - margin, t + margin]. */
  constantAround(t: number, margin: number): boolean {
    if (this.isUtc) return true;
    this.offsetAt(t);
    if (this.curLo <= t - margin && t + margin < this.curHi) return true;
    return this.transitionIn(t - margin - 1, t + margin) === null;
  }

  /** The first transition instant T with lo < T <= hi, or null. */
  transitionIn(lo: number, hi: number): number | null {
    if (this.isUtc || hi <= lo) return null;
    for (let y = yearOfInstant(lo); ; y++) {
      const info = this.year(y);
      if (info.start > hi) return null;
      for (const at of info.at) {
        if (at > lo) return at <= hi ? at : null;
      }
    }
  }

  /**
   * The transitions of UTC year y: the offset is sampled at every UTC midnight, and each change is
   * pinned to the second by binary search. Assumption (true of the tz database in practice): no
   * zone has two transitions within one UTC day.
   */
  private year(y: number): YearInfo {
    const hit = this.years.get(y);
    if (hit !== undefined) return hit;
    const start = daysFromCivil(y, 1, 1) * DAY_MS;
    const days = isLeapYear(y) ? 366 : 365;
    const info: YearInfo = { start, end: start + days * DAY_MS, startOffset: this.rawOffsetAt(start), at: [], after: [] };
    let prev = info.startOffset;
    for (let d = 1; d <= days; d++) {
      const t = start + d * DAY_MS;
      const o = this.rawOffsetAt(t);
      if (o === prev) continue;
      let lo = t - DAY_MS; // offset prev
      let hi = t; // offset o
      while (hi - lo > SECOND_MS) {
        const mid = lo + Math.floor((hi - lo) / 2 / SECOND_MS) * SECOND_MS;
        if (this.rawOffsetAt(mid) === prev) lo = mid;
        else hi = mid;
      }
      info.at.push(hi);
      info.after.push(o);
      prev = o;
    }
    if (this.years.size >= YEARS_PER_ZONE_MAX) this.years.clear();
    this.years.set(y, info);
    return info;
  }
}

function yearOfInstant(t: number): number {
  return civilFromDays(Math.floor(t / DAY_MS))[0];
}

const zones = new Map<string, Zone>();

/** The cached Zone for `tz`; throws RangeError for an unknown zone (check with timeZoneError). */
export function getZone(tz: string): Zone {
  let z = zones.get(tz);
  if (z === undefined) {
    z = new Zone(tz);
    if (zones.size > 1024) zones.clear();
    zones.set(tz, z);
  }
  return z;
}
