/**
 * Input validation at the HTTP edge: raw request bodies and query strings in, normalized core
 * shapes (`JobSpec`, `EnqueueSpec`, …) out, or a `CronwheelError` with a stable code.
 *
 * Why here: the core trusts what it is given (docs/architecture.md: "every input from outside is
 * validated at the edge and refused with a clear error"). So every rule, bound and default lives in
 * this file, and nothing past it re-checks. Every function is pure: no I/O, no clock (a backfill's
 * `nowMs` is passed in), and the only exception type it throws is `CronwheelError`:
 *   - `invalid_argument` (400): malformed JSON, not an object, unknown field, wrong type, bad cron,
 *     unknown time zone, out-of-range value. `details.field` names the offending field as a path
 *     (`retry.backoff.multiplier`), so a client can point at it.
 *   - `payload_too_large` (413): `payload` over `Limits.payloadBytesMax`, or a raw body over the
 *     `bytesMax` given to `parseJsonBody`.
 *
 * Conventions, the same for every field:
 *   - A field that is absent, or `undefined` in a programmatic call, takes its default (from
 *     `src/core/types.ts`). `null` means "none" only where the normalized value can be null
 *     (`cron`, `every`, `at`, `startAt`, `endAt`, `maxRuns`, `concurrency.limit`, `runAt`,
 *     `delayMs`, `idempotencyKey`, `orderingKey`); anywhere else it is a type error.
 *   - Nested objects (`retry`, `retry.backoff`, `dst`, `concurrency`, `misfire`) may be partial;
 *     the missing members are filled from the defaults, member by member.
 *   - Integers must be safe integers; numbers must be finite. `-0` is stored as `0`.
 *   - Times: an RFC 3339 date-time string WITH an offset (`Z` or `±hh:mm`), or an integer count of
 *     milliseconds since the epoch, within [1970-01-01T00:00:00Z, 9999-12-31T23:59:59.999Z].
 *
 * Example:
 *   parseJobBody({ queue: "mail", every: "5m", retry: { maxAttempts: 5 } }, DEFAULT_LIMITS)
 *   → { queue: "mail", schedule: { trigger: { kind: "every", everyMs: 300000 }, anchorMs: null,
 *       startAtMs: null, endAtMs: null, jitterMs: 0 }, retry: { maxAttempts: 5, backoff: <default> },
 *       priority: 5, timeoutMs: 300000, leaseMs: 30000, payload: null, … }
 *   parseJobBody({ quue: "mail" }, …) → throws invalid_argument "unknown field 'quue'", { field: "quue" }
 */

import { WORKER_ID_PATTERN } from "../client/protocol.js";
import { AUDIT_ACTIONS } from "../core/audit.js";
import { MINUTE_ROLLUP_DAYS } from "../history/rollups.js";
import { STATS_GROUP_BY, type StatsGroupBy } from "../history/stats.js";
import { CronwheelError, invalidArgument } from "../core/errors.js";
import { cronError, parseDuration, timeZoneError } from "../core/trigger.js";
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_DST,
  DEFAULT_LEASE_MS,
  DEFAULT_MISFIRE,
  DEFAULT_PRIORITY,
  DEFAULT_RETRY,
  DEFAULT_TIMEOUT_MS,
  type BackoffJitter,
  type BackoffType,
  type ConcurrencyPolicy,
  type DstMissing,
  type DstPolicy,
  type DstRepeated,
  type EnqueueSpec,
  type JobSpec,
  type MisfirePolicy,
  type MisfirePolicyName,
  type OverlapPolicy,
  type RetryPolicy,
  type Trigger,
} from "../core/types.js";

// ---------------------------------------------------------------------------------------------
// Names, limits and bounds
// ---------------------------------------------------------------------------------------------

/**
 * Job ids (the `{jobId}` path segment): letters, digits, `.`, `_`, `-`, 1 to 200 characters;
 * `.` and `..` alone are refused as well, since URL normalization would eat them. `:` is not
 * allowed: execution ids are `{jobId}:{scheduledAtMs}`, and routing finds the job at the first
 * `:` (see `src/core/routing.ts`). The path segment is matched after percent-decoding.
 */
export const ID_PATTERN = /^[A-Za-z0-9._-]{1,200}$/;
/** Queue names, exactly as the contract has them. */
export const QUEUE_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
/** Label keys. */
export const LABEL_KEY_PATTERN = /^[A-Za-z0-9._/-]{1,63}$/;
/** Why an execution was skipped, canceled or failed (`misfire`, `retries-exhausted`, …), for `?reason=`. */
const REASON_PATTERN = /^[a-z-]{1,64}$/;

/** Per-deployment limits (configurable). */
export interface Limits {
  /** Maximum size of a `payload`, measured as the UTF-8 length of `JSON.stringify(payload)`. */
  payloadBytesMax: number;
}

export const DEFAULT_LIMITS: Limits = Object.freeze({ payloadBytesMax: 256 * 1024 });

const SECOND_MS = 1_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

/**
 * The fixed bounds of every value; each name ends with its unit. Public so docs and tests can
 * quote them. All bounds are inclusive.
 */
export const BOUNDS = Object.freeze({
  /** `every`: below 100 ms the fire rate outruns the timing wheel and replication. */
  everyMsMin: 100,
  /** `every`: a year and a day; longer intervals are better written as a cron. */
  everyMsMax: 366 * DAY_MS,
  /** `jitterMs`. */
  jitterMsMax: DAY_MS,
  priorityMin: 0,
  priorityMax: 9,
  maxRunsMax: Number.MAX_SAFE_INTEGER,
  retryMaxAttemptsMax: 100,
  /** `retry.backoff.initialMs` and `maxMs`; 0 means "retry immediately" (attempts are bounded). */
  backoffMsMin: 0,
  backoffMsMax: 7 * DAY_MS,
  backoffMultiplierMin: 1,
  backoffMultiplierMax: 100,
  timeoutMsMin: 100,
  timeoutMsMax: 7 * DAY_MS,
  /** `leaseMs`: a worker needs a heartbeat round trip, plus a commit, inside one lease. */
  leaseMsMin: SECOND_MS,
  leaseMsMax: HOUR_MS,
  concurrencyLimitMax: 10_000,
  misfireGraceMsMax: 7 * DAY_MS,
  labelsCountMax: 64,
  labelValueCharsMax: 256,
  /** `idempotencyKey` and `orderingKey` length, in characters (code points). */
  keyCharsMax: 256,
  cronCharsMax: 1_024,
  timezoneCharsMax: 64,
  /** `every` as a duration string. */
  durationCharsMax: 32,
  /** `delayMs` on enqueue. */
  delayMsMax: 366 * DAY_MS,
  /** `backfill`: `to - from`. The number of fires in the span is bounded where they are created. */
  backfillSpanMsMax: 366 * DAY_MS,
  /** Largest time accepted: 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write. */
  timeMsMax: 253_402_300_799_999,
  /** Nesting depth of `payload` (arrays and objects); deeper payloads overflow recursive encoders. */
  payloadDepthMax: 64,
  /** `POST /v1/executions/batch`. */
  batchItemsMax: 1_000,
  listLimitMin: 1,
  listLimitMax: 1_000,
  listLimitDefault: 100,
  /** `GET /v1/jobs/{jobId}/preview?count=`. */
  previewCountMax: 1_000,
  previewCountDefault: 10,
  cursorCharsMax: 1_024,
});

// ---------------------------------------------------------------------------------------------
// Small typed readers, one per kind of value. Each takes the value and its field path, returns the
// checked value or throws invalid_argument with `details.field`.
// ---------------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;

function path(prefix: string, key: string): string {
  return prefix === "" ? key : `${prefix}.${key}`;
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return typeof value;
}

function wrongType(field: string, expected: string, value: unknown): CronwheelError {
  const got = typeName(value);
  return invalidArgument(`${field}: expected ${expected}, got ${got}`, { field, expected, got });
}

function outOfRange(field: string, value: number, min: number, max: number): CronwheelError {
  return invalidArgument(`${field}: out of range: ${value} (allowed ${min}..${max})`, { field, value, min, max });
}

function isObj(value: unknown): value is Obj {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** An own property only: `constructor`, `__proto__` and friends are never read from the prototype. */
function own(obj: Obj, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

/** A JSON object whose keys are all in `allowed`; `field` is "" for the request body itself. */
function objectOf(value: unknown, field: string, allowed: readonly string[]): Obj {
  if (!isObj(value)) {
    if (field === "") {
      throw invalidArgument(`request body must be a JSON object, got ${typeName(value)}`, { got: typeName(value) });
    }
    throw wrongType(field, "an object", value);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      const name = path(field, key);
      throw invalidArgument(`unknown field '${name}'`, { field: name });
    }
  }
  return value;
}

function int(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw wrongType(field, "an integer", value);
  if (!Number.isInteger(value)) throw wrongType(field, "an integer", value);
  if (!Number.isSafeInteger(value) || value < min || value > max) throw outOfRange(field, value, min, max);
  return value + 0; // -0 → 0
}

function num(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isFinite(value)) throw wrongType(field, "a finite number", value);
  if (value < min || value > max) throw outOfRange(field, value, min, max);
  return value + 0;
}

function bool(value: unknown, field: string): boolean {
  if (typeof value !== "boolean") throw wrongType(field, "a boolean", value);
  return value;
}

function charCount(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** A string of 1..charsMax characters (code points). */
function str(value: unknown, field: string, charsMax: number, charsMin = 1): string {
  if (typeof value !== "string") throw wrongType(field, "a string", value);
  const n = charCount(value);
  if (n < charsMin || n > charsMax) {
    throw invalidArgument(`${field}: length ${n} out of range (allowed ${charsMin}..${charsMax} characters)`, {
      field,
      length: n,
      min: charsMin,
      max: charsMax,
    });
  }
  return value;
}

function matching(value: unknown, field: string, pattern: RegExp, what: string): string {
  if (typeof value !== "string") throw wrongType(field, "a string", value);
  if (!pattern.test(value)) {
    throw invalidArgument(`${field}: invalid ${what} '${clip(value)}' (must match ${pattern.source})`, {
      field,
      pattern: pattern.source,
    });
  }
  return value;
}

function oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
  if (typeof value !== "string") throw wrongType(field, `one of ${allowed.join("|")}`, value);
  if (!(allowed as readonly string[]).includes(value)) {
    throw invalidArgument(`${field}: must be one of ${allowed.join(", ")}, got '${clip(value)}'`, { field, allowed });
  }
  return value as T;
}

/** Shortens user text quoted back in a message. */
function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 61)}...` : s;
}

type Reader<T> = (value: unknown, field: string) => T;

/** The field's checked value, or `fallback` when it is absent (`undefined`). */
function opt<T>(obj: Obj, prefix: string, key: string, read: Reader<T>, fallback: T): T {
  const value = own(obj, key);
  return value === undefined ? fallback : read(value, path(prefix, key));
}

/** Like `opt`, but `null` is accepted and means "none". */
function optNullable<T>(obj: Obj, prefix: string, key: string, read: Reader<T>): T | null {
  const value = own(obj, key);
  return value === undefined || value === null ? null : read(value, path(prefix, key));
}

function required<T>(obj: Obj, prefix: string, key: string, read: Reader<T>): T {
  const value = own(obj, key);
  const field = path(prefix, key);
  if (value === undefined) throw invalidArgument(`missing required field '${field}'`, { field });
  return read(value, field);
}

const intIn =
  (min: number, max: number): Reader<number> =>
  (v, f) =>
    int(v, f, min, max);

// ---------------------------------------------------------------------------------------------
// Times
// ---------------------------------------------------------------------------------------------

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/;
const RFC3339_NO_OFFSET = /^\d{4}-\d{2}-\d{2}(?:[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$/;

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][month - 1]!;
}

function timeRange(field: string, ms: number): number {
  if (ms < 0 || ms > BOUNDS.timeMsMax) {
    throw invalidArgument(`${field}: time out of range (allowed 1970-01-01T00:00:00Z..9999-12-31T23:59:59.999Z)`, {
      field,
      min: 0,
      max: BOUNDS.timeMsMax,
    });
  }
  return ms + 0;
}

function badTime(field: string, value: string, why: string): CronwheelError {
  return invalidArgument(`${field}: ${why}: '${clip(value)}'`, { field });
}

/**
 * A time in milliseconds since the epoch, from an RFC 3339 date-time with an offset
 * ("2025-03-30T01:30:00+01:00", "…Z"; `T`/`Z` in either case; fractions beyond milliseconds are
 * truncated; a leap second :60 counts as the next second) or a non-negative integer of
 * milliseconds. Offset-less and date-only strings are refused: their instant is ambiguous.
 */
export function parseTime(value: unknown, field: string): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || !Number.isInteger(value)) {
      throw wrongType(field, "an RFC 3339 time or integer milliseconds since the epoch", value);
    }
    return timeRange(field, value);
  }
  if (typeof value !== "string") {
    throw wrongType(field, "an RFC 3339 time or integer milliseconds since the epoch", value);
  }
  const m = RFC3339.exec(value);
  if (m === null) {
    if (RFC3339_NO_OFFSET.test(value)) throw badTime(field, value, "time needs a UTC offset or 'Z' (RFC 3339)");
    throw badTime(field, value, "not an RFC 3339 time");
  }
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const fraction = Number((m[7] ?? "").padEnd(3, "0").slice(0, 3));
  const offset = m[8]!;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    throw badTime(field, value, "no such date");
  }
  if (hour > 23 || minute > 59 || second > 60) throw badTime(field, value, "no such time of day");
  let offsetMs = 0;
  if (offset !== "Z" && offset !== "z") {
    const oh = Number(offset.slice(1, 3));
    const om = Number(offset.slice(4, 6));
    if (oh > 23 || om > 59) throw badTime(field, value, "no such UTC offset");
    offsetMs = (offset[0] === "-" ? -1 : 1) * (oh * HOUR_MS + om * 60_000);
  }
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day); // setUTCFullYear: years 0..99 are not shifted to 19xx
  d.setUTCHours(hour, minute, second, fraction);
  return timeRange(field, d.getTime() - offsetMs);
}

/** A time from a query string: RFC 3339 as in `parseTime`, or a decimal count of milliseconds. */
export function parseQueryTime(value: string, field: string): number {
  return parseTime(/^\d{1,16}$/.test(value) ? Number(value) : value, field);
}

const timeReader: Reader<number> = parseTime;

// ---------------------------------------------------------------------------------------------
// JSON bodies and ids
// ---------------------------------------------------------------------------------------------

export interface ParseJsonOptions {
  /** An empty (or all-whitespace) body is read as `{}` instead of being refused. */
  optional?: boolean;
  /** Refuse a raw body longer than this many bytes with `payload_too_large`. */
  bytesMax?: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * Parses a request body. Invalid UTF-8 or JSON → invalid_argument "malformed JSON: …". A leading
 * UTF-8 byte order mark is skipped. The result is any JSON value; the parse*Body functions check
 * that it is an object.
 */
export function parseJsonBody(raw: Buffer | Uint8Array | string, options: ParseJsonOptions = {}): unknown {
  const bytes = typeof raw === "string" ? Buffer.byteLength(raw, "utf8") : raw.byteLength;
  if (options.bytesMax !== undefined && bytes > options.bytesMax) {
    throw new CronwheelError("payload_too_large", `request body is ${bytes} bytes, over the limit of ${options.bytesMax}`, {
      limitBytes: options.bytesMax,
      bytes,
    });
  }
  let text: string;
  if (typeof raw === "string") {
    text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
  } else {
    try {
      text = utf8.decode(raw); // strips one BOM (ignoreBOM: false)
    } catch {
      throw invalidArgument("malformed JSON: body is not valid UTF-8");
    }
  }
  if (text.trim() === "") {
    if (options.optional === true) return {};
    throw invalidArgument("malformed JSON: request body is empty");
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw invalidArgument(`malformed JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** Checks a job id from the path (see `ID_PATTERN`) and returns it. */
export function validateJobId(id: string): string {
  const value = matching(id, "jobId", ID_PATTERN, "job id");
  if (value === "." || value === "..") {
    throw invalidArgument(`jobId: invalid job id '${value}'`, { field: "jobId", pattern: ID_PATTERN.source });
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Shared pieces of job and enqueue bodies
// ---------------------------------------------------------------------------------------------

const queueReader: Reader<string> = (v, f) => matching(v, f, QUEUE_PATTERN, "queue name");
const keyReader: Reader<string> = (v, f) => str(v, f, BOUNDS.keyCharsMax);

/** Throws if `payload` is too deep, not JSON, or too big; returns it unchanged. */
function checkPayload(payload: unknown, field: string, limits: Limits): unknown {
  const stack: Array<[unknown, number]> = [[payload, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (typeof value !== "object" || value === null) continue;
    if (depth >= BOUNDS.payloadDepthMax) {
      throw invalidArgument(`${field}: nested deeper than ${BOUNDS.payloadDepthMax} levels`, {
        field,
        depthMax: BOUNDS.payloadDepthMax,
      });
    }
    for (const child of Object.values(value)) stack.push([child, depth + 1]);
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(payload);
  } catch {
    text = undefined;
  }
  if (text === undefined) throw invalidArgument(`${field}: not a JSON value`, { field });
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > limits.payloadBytesMax) {
    throw new CronwheelError(
      "payload_too_large",
      `${field}: ${bytes} bytes, over the limit of ${limits.payloadBytesMax}`,
      { field, limitBytes: limits.payloadBytesMax, bytes },
    );
  }
  return payload;
}

const BACKOFF_TYPES: readonly BackoffType[] = ["exponential", "fixed", "linear"];
const BACKOFF_JITTERS: readonly BackoffJitter[] = ["none", "full", "equal"];

function readRetry(value: unknown, field: string): RetryPolicy {
  const obj = objectOf(value, field, ["maxAttempts", "backoff"]);
  const maxAttempts = opt(obj, field, "maxAttempts", intIn(1, BOUNDS.retryMaxAttemptsMax), DEFAULT_RETRY.maxAttempts);
  const d = DEFAULT_RETRY.backoff;
  const bField = path(field, "backoff");
  const b = opt(obj, field, "backoff", (v, f) => objectOf(v, f, ["type", "initialMs", "maxMs", "multiplier", "jitter"]), {} as Obj);
  const backoffMs = intIn(BOUNDS.backoffMsMin, BOUNDS.backoffMsMax);
  const backoff = {
    type: opt(b, bField, "type", (v, f) => oneOf(v, f, BACKOFF_TYPES), d.type),
    initialMs: opt(b, bField, "initialMs", backoffMs, d.initialMs),
    maxMs: opt(b, bField, "maxMs", backoffMs, d.maxMs),
    multiplier: opt(b, bField, "multiplier", (v, f) => num(v, f, BOUNDS.backoffMultiplierMin, BOUNDS.backoffMultiplierMax), d.multiplier),
    jitter: opt(b, bField, "jitter", (v, f) => oneOf(v, f, BACKOFF_JITTERS), d.jitter),
  };
  if (backoff.initialMs > backoff.maxMs) {
    // Name the member the client set; if both were set, maxMs.
    const blame = own(b, "maxMs") !== undefined ? "maxMs" : "initialMs";
    const f = path(bField, blame);
    throw invalidArgument(
      `${f}: initialMs (${backoff.initialMs}) must not exceed maxMs (${backoff.maxMs}${blame === "initialMs" ? ", the default" : ""})`,
      { field: f, initialMs: backoff.initialMs, maxMs: backoff.maxMs },
    );
  }
  return { maxAttempts, backoff };
}

function copyRetry(r: RetryPolicy): RetryPolicy {
  return { maxAttempts: r.maxAttempts, backoff: { ...r.backoff } };
}

/** priority, retry, timeoutMs, leaseMs: common to job and enqueue bodies. */
function readAttemptPolicy(obj: Obj): Pick<JobSpec, "priority" | "retry" | "timeoutMs" | "leaseMs"> {
  return {
    priority: opt(obj, "", "priority", intIn(BOUNDS.priorityMin, BOUNDS.priorityMax), DEFAULT_PRIORITY),
    retry: opt(obj, "", "retry", readRetry, copyRetry(DEFAULT_RETRY)),
    timeoutMs: opt(obj, "", "timeoutMs", intIn(BOUNDS.timeoutMsMin, BOUNDS.timeoutMsMax), DEFAULT_TIMEOUT_MS),
    leaseMs: opt(obj, "", "leaseMs", intIn(BOUNDS.leaseMsMin, BOUNDS.leaseMsMax), DEFAULT_LEASE_MS),
  };
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

const JOB_FIELDS = [
  "queue", "cron", "timezone", "every", "at", "startAt", "endAt", "jitterMs", "dst", "maxRuns", "payload",
  "priority", "retry", "timeoutMs", "leaseMs", "concurrency", "pauseOnFailure", "misfire", "labels",
] as const;

const DST_REPEATED: readonly DstRepeated[] = ["first", "last", "both"];
const DST_MISSING: readonly DstMissing[] = ["shift", "skip"];
const OVERLAPS: readonly OverlapPolicy[] = ["allow", "skip", "buffer-one", "queue", "replace"];
const MISFIRE_POLICIES: readonly MisfirePolicyName[] = ["run-once", "skip", "run-all"];

const cronReader: Reader<string> = (v, f) => {
  const expr = str(v, f, BOUNDS.cronCharsMax);
  const message = cronError(expr);
  if (message !== null) throw invalidArgument(message, { field: f });
  return expr;
};

const timezoneReader: Reader<string> = (v, f) => {
  const tz = str(v, f, BOUNDS.timezoneCharsMax);
  const message = timeZoneError(tz);
  if (message !== null) throw invalidArgument(message, { field: f });
  return tz;
};

/** `every`: integer milliseconds, or a duration string ("30s", "5m", "1h", "250ms", "1d"). */
const everyReader: Reader<number> = (v, f) => {
  if (typeof v === "string") {
    const ms = v.length <= BOUNDS.durationCharsMax ? parseDuration(v) : null;
    if (ms === null || !Number.isSafeInteger(ms)) {
      throw invalidArgument(`${f}: invalid duration '${clip(v)}' (use milliseconds, or e.g. "30s", "5m", "1h")`, { field: f });
    }
    return int(ms, f, BOUNDS.everyMsMin, BOUNDS.everyMsMax);
  }
  if (typeof v !== "number") throw wrongType(f, "integer milliseconds or a duration string", v);
  return int(v, f, BOUNDS.everyMsMin, BOUNDS.everyMsMax);
};

const dstReader: Reader<DstPolicy> = (v, f) => {
  const obj = objectOf(v, f, ["repeated", "missing"]);
  return {
    repeated: opt(obj, f, "repeated", (x, g) => oneOf(x, g, DST_REPEATED), DEFAULT_DST.repeated),
    missing: opt(obj, f, "missing", (x, g) => oneOf(x, g, DST_MISSING), DEFAULT_DST.missing),
  };
};

/**
 * `concurrency`: a non-`allow` overlap with the limit omitted means a limit of 1 (`{ overlap:
 * "skip" }` is "never overlap"); with the limit explicitly `null` (no limit) it could never apply,
 * so it is refused.
 */
const concurrencyReader: Reader<ConcurrencyPolicy> = (v, f) => {
  const obj = objectOf(v, f, ["limit", "overlap"]);
  const overlap = opt(obj, f, "overlap", (x, g) => oneOf(x, g, OVERLAPS), DEFAULT_CONCURRENCY.overlap);
  const fallback = overlap !== "allow" && DEFAULT_CONCURRENCY.limit === null ? 1 : DEFAULT_CONCURRENCY.limit;
  const limit = own(obj, "limit") === undefined ? fallback : optNullable(obj, f, "limit", intIn(1, BOUNDS.concurrencyLimitMax));
  if (limit === null && overlap !== "allow") {
    const g = path(f, "overlap");
    throw invalidArgument(`${g}: '${overlap}' needs a concurrency limit, but limit is null`, { field: g });
  }
  return { limit, overlap };
};

const misfireReader: Reader<MisfirePolicy> = (v, f) => {
  const obj = objectOf(v, f, ["policy", "graceMs"]);
  return {
    policy: opt(obj, f, "policy", (x, g) => oneOf(x, g, MISFIRE_POLICIES), DEFAULT_MISFIRE.policy),
    graceMs: opt(obj, f, "graceMs", intIn(0, BOUNDS.misfireGraceMsMax), DEFAULT_MISFIRE.graceMs),
  };
};

const labelsReader: Reader<Record<string, string>> = (v, f) => {
  if (!isObj(v)) throw wrongType(f, "an object of string values", v);
  const entries = Object.entries(v);
  if (entries.length > BOUNDS.labelsCountMax) {
    throw invalidArgument(`${f}: ${entries.length} labels, over the limit of ${BOUNDS.labelsCountMax}`, {
      field: f,
      count: entries.length,
      max: BOUNDS.labelsCountMax,
    });
  }
  for (const [key, value] of entries) {
    if (!LABEL_KEY_PATTERN.test(key)) {
      throw invalidArgument(`${f}: invalid label key '${clip(key)}' (must match ${LABEL_KEY_PATTERN.source})`, {
        field: f,
        key,
      });
    }
    if (typeof value !== "string") {
      throw invalidArgument(`${f}: label '${key}' must be a string, got ${typeName(value)}`, { field: f, key, got: typeName(value) });
    }
    str(value, `${f}.${key}`, BOUNDS.labelValueCharsMax, 0);
  }
  // fromEntries defines own data properties, so a "__proto__" key stays an ordinary label.
  return Object.fromEntries(entries) as Record<string, string>;
};

function readTrigger(obj: Obj): Trigger {
  const given = (["cron", "every", "at"] as const).filter((k) => own(obj, k) !== undefined && own(obj, k) !== null);
  if (given.length > 1) {
    throw invalidArgument(`at most one of cron, every, at: got ${given.join(" and ")}`, {
      field: given[1],
      conflictsWith: given[0],
    });
  }
  for (const k of ["timezone", "dst"] as const) {
    if (own(obj, k) !== undefined && given[0] !== "cron") {
      throw invalidArgument(`${k} is only allowed with cron`, { field: k });
    }
  }
  switch (given[0]) {
    case "cron":
      return {
        kind: "cron",
        expr: required(obj, "", "cron", cronReader),
        timezone: opt(obj, "", "timezone", timezoneReader, "UTC"),
        dst: opt(obj, "", "dst", dstReader, { ...DEFAULT_DST }),
      };
    case "every":
      return { kind: "every", everyMs: required(obj, "", "every", everyReader) };
    case "at":
      return { kind: "at", atMs: required(obj, "", "at", timeReader) };
    default:
      return { kind: "none" };
  }
}

/**
 * Body of `PUT /v1/jobs/{jobId}` → a normalized `JobSpec`. An `every` trigger without `startAt`
 * is anchored where the shard applies the put (`anchorMs: null` here): at the shard's time, not at
 * the clock of whichever node took the request. `startAt < endAt` when both are given; `at` may
 * lie in the past (the misfire policy decides what happens).
 */
export function parseJobBody(body: unknown, limits: Limits): JobSpec {
  const obj = objectOf(body, "", JOB_FIELDS);
  const queue = required(obj, "", "queue", queueReader);
  const trigger = readTrigger(obj);
  const startAtMs = optNullable(obj, "", "startAt", timeReader);
  const endAtMs = optNullable(obj, "", "endAt", timeReader);
  if (startAtMs !== null && endAtMs !== null && startAtMs >= endAtMs) {
    throw invalidArgument(`endAt must be after startAt`, { field: "endAt", startAtMs, endAtMs });
  }
  const jitterMs = opt(obj, "", "jitterMs", intIn(0, BOUNDS.jitterMsMax), 0);
  const spec: JobSpec = {
    queue,
    schedule: { trigger, anchorMs: startAtMs, startAtMs, endAtMs, jitterMs },
    maxRuns: optNullable(obj, "", "maxRuns", intIn(1, BOUNDS.maxRunsMax)),
    payload: checkPayload(opt(obj, "", "payload", (v) => v, null), "payload", limits),
    ...readAttemptPolicy(obj),
    concurrency: opt(obj, "", "concurrency", concurrencyReader, { ...DEFAULT_CONCURRENCY }),
    pauseOnFailure: opt(obj, "", "pauseOnFailure", bool, false),
    misfire: opt(obj, "", "misfire", misfireReader, { ...DEFAULT_MISFIRE }),
    labels: opt(obj, "", "labels", labelsReader, {}),
  };
  return spec;
}

// ---------------------------------------------------------------------------------------------
// Executions
// ---------------------------------------------------------------------------------------------

const ENQUEUE_FIELDS = [
  "queue", "payload", "runAt", "delayMs", "idempotencyKey", "priority", "retry", "timeoutMs", "leaseMs", "orderingKey",
] as const;

/**
 * Body of `POST /v1/executions` → `EnqueueSpec`. `payload` may be omitted (→ null). `runAt` and
 * `delayMs` are exclusive; `delayMs` counts from the enqueue's time on its shard (see
 * `enqueueRunAt`); neither → run now. A `runAt` in the past runs now.
 */
export function parseEnqueueBody(body: unknown, limits: Limits): EnqueueSpec {
  const obj = objectOf(body, "", ENQUEUE_FIELDS);
  const queue = required(obj, "", "queue", queueReader);
  const payload = checkPayload(opt(obj, "", "payload", (v) => v, null), "payload", limits);
  const runAt = optNullable(obj, "", "runAt", timeReader);
  const delayMs = optNullable(obj, "", "delayMs", intIn(0, BOUNDS.delayMsMax));
  if (runAt !== null && delayMs !== null) {
    throw invalidArgument("runAt and delayMs are exclusive: give one or neither", { field: "delayMs", conflictsWith: "runAt" });
  }
  return {
    queue,
    payload,
    runAtMs: runAt,
    delayMs,
    idempotencyKey: optNullable(obj, "", "idempotencyKey", keyReader),
    ...readAttemptPolicy(obj),
    orderingKey: optNullable(obj, "", "orderingKey", keyReader),
  };
}

/**
 * Body of `POST /v1/executions/batch`: `{ executions: [ … ] }`, at most `BOUNDS.batchItemsMax`
 * items. The body's own shape errors throw; each item is validated on its own and answered in
 * order, as an `EnqueueSpec` or the `CronwheelError` it failed with (`details.index` is the item's
 * position, `details.field` is relative to the item).
 */
export function parseEnqueueBatchBody(body: unknown, limits: Limits): Array<EnqueueSpec | CronwheelError> {
  const obj = objectOf(body, "", ["executions"]);
  const items = required(obj, "", "executions", (v, f) => {
    if (!Array.isArray(v)) throw wrongType(f, "an array", v);
    if (v.length > BOUNDS.batchItemsMax) {
      throw invalidArgument(`${f}: ${v.length} items, over the limit of ${BOUNDS.batchItemsMax}`, {
        field: f,
        count: v.length,
        max: BOUNDS.batchItemsMax,
      });
    }
    return v as unknown[];
  });
  return items.map((item, index) => {
    try {
      return parseEnqueueBody(item, limits);
    } catch (err) {
      if (!(err instanceof CronwheelError)) throw err;
      return new CronwheelError(err.code, err.message, { ...err.details, index });
    }
  });
}

/**
 * Body of `POST /v1/jobs/{jobId}/trigger` (optional: parse with `{ optional: true }`).
 * `payload: undefined` means "use the job's payload"; an explicit `null` is a payload.
 */
export function parseTriggerBody(body: unknown, limits: Limits): { payload: unknown | undefined; idempotencyKey: string | null } {
  const obj = objectOf(body, "", ["payload", "idempotencyKey"]);
  const payload = own(obj, "payload");
  return {
    payload: payload === undefined ? undefined : checkPayload(payload, "payload", limits),
    idempotencyKey: optNullable(obj, "", "idempotencyKey", keyReader),
  };
}

/**
 * Body of `POST /v1/jobs/{jobId}/backfill`: `{ from, to }`, both required, `from < to <= nowMs`,
 * `to - from <= BOUNDS.backfillSpanMsMax`. Fires are created in `[from, to)`; how many fires a
 * backfill may create is bounded by the caller.
 */
export function parseBackfillBody(body: unknown, nowMs: number): { fromMs: number; toMs: number } {
  const obj = objectOf(body, "", ["from", "to"]);
  const fromMs = required(obj, "", "from", timeReader);
  const toMs = required(obj, "", "to", timeReader);
  if (fromMs >= toMs) throw invalidArgument("to must be after from", { field: "to", fromMs, toMs });
  if (toMs > nowMs) throw invalidArgument("to must not be in the future", { field: "to", toMs, nowMs });
  if (toMs - fromMs > BOUNDS.backfillSpanMsMax) {
    throw invalidArgument(`backfill spans more than ${BOUNDS.backfillSpanMsMax} ms (366 days)`, {
      field: "from",
      spanMs: toMs - fromMs,
      max: BOUNDS.backfillSpanMsMax,
    });
  }
  return { fromMs, toMs };
}

// ---------------------------------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------------------------------

/** Execution states, for `?state=`. */
export const EXECUTION_STATES = [
  "scheduled", "ready", "claimed", "running", "succeeded", "failed", "canceled", "skipped",
] as const;

/** Checks and defaults for the query parameters that have a known meaning. */
const QUERY_PARAMS: Record<string, { check: (value: string, field: string) => void; fallback?: string }> = {
  limit: { check: (v, f) => queryInt(v, f, BOUNDS.listLimitMin, BOUNDS.listLimitMax), fallback: String(BOUNDS.listLimitDefault) },
  count: { check: (v, f) => queryInt(v, f, 1, BOUNDS.previewCountMax), fallback: String(BOUNDS.previewCountDefault) },
  cursor: { check: (v, f) => void str(v, f, BOUNDS.cursorCharsMax) },
  queue: { check: (v, f) => void queueReader(v, f) },
  jobId: { check: (v, f) => void matching(v, f, ID_PATTERN, "job id") },
  state: { check: (v, f) => void oneOf(v, f, EXECUTION_STATES) },
  from: { check: (v, f) => void parseQueryTime(v, f) },
  to: { check: (v, f) => void parseQueryTime(v, f) },
  finishedFrom: { check: (v, f) => void parseQueryTime(v, f) },
  finishedTo: { check: (v, f) => void parseQueryTime(v, f) },
  reason: { check: (v, f) => void matching(v, f, REASON_PATTERN, "reason") },
  workerId: { check: (v, f) => void matching(v, f, WORKER_ID_PATTERN, "worker id") },
  label: { check: (v, f) => void parseLabelFilter(v, f) },
  action: { check: (v, f) => void oneOf(v, f, AUDIT_ACTIONS) },
  by: { check: (v, f) => void oneOf(v, f, STATS_GROUP_BY) },
  interval: { check: (v, f) => void statsInterval(v, f) },
  cancelRunning: { check: (v, f) => void oneOf(v, f, ["true", "false"]) },
  dryRun: { check: (v, f) => void oneOf(v, f, ["true", "false"]) },
};

function queryInt(value: string, field: string, min: number, max: number): void {
  if (!/^\d{1,16}$/.test(value)) {
    throw invalidArgument(`${field}: expected an integer, got '${clip(value)}'`, { field, expected: "an integer" });
  }
  int(Number(value), field, min, max);
}

/** `label=k=v` → [k, v]: the key follows the label key rules, the value up to 256 characters. */
export function parseLabelFilter(value: string, field = "label"): [string, string] {
  const eq = value.indexOf("=");
  if (eq < 0) throw invalidArgument(`${field}: expected key=value, got '${clip(value)}'`, { field });
  const key = matching(value.slice(0, eq), field, LABEL_KEY_PATTERN, "label key");
  const v = str(value.slice(eq + 1), field, BOUNDS.labelValueCharsMax, 0);
  return [key, v];
}

/**
 * Checks a query string against the parameters an endpoint accepts. Unknown parameters and repeated
 * ones are refused; an empty value (`?queue=`) counts as absent. Known names are checked
 * (`limit` 1..1000, default 100; `count` 1..1000, default 10; `cursor` opaque, ≤ 1024 characters;
 * `queue`, `jobId`, `state`, `from`/`to` (RFC 3339 or ms), `label` (k=v), `cancelRunning`
 * and `dryRun` (true|false)); `limit` and `count` get their default when allowed and absent. Values are returned
 * as given; `Number(q.limit)` is safe after this.
 */
export function parseListQuery(params: URLSearchParams, allowed: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const seen = new Set<string>();
  for (const [name, value] of params) {
    if (!allowed.includes(name)) throw invalidArgument(`unknown query parameter '${clip(name)}'`, { field: name });
    if (seen.has(name)) throw invalidArgument(`query parameter '${name}' given more than once`, { field: name });
    seen.add(name);
    if (value === "") continue;
    if (Object.prototype.hasOwnProperty.call(QUERY_PARAMS, name)) QUERY_PARAMS[name]!.check(value, name);
    out[name] = value;
  }
  for (const name of allowed) {
    const fallback = Object.prototype.hasOwnProperty.call(QUERY_PARAMS, name) ? QUERY_PARAMS[name]!.fallback : undefined;
    if (out[name] === undefined && fallback !== undefined) out[name] = fallback;
  }
  if (out.from !== undefined && out.to !== undefined && parseQueryTime(out.from, "from") >= parseQueryTime(out.to, "to")) {
    throw invalidArgument("to must be after from", { field: "to" });
  }
  if (out.finishedFrom !== undefined && out.finishedTo !== undefined && parseQueryTime(out.finishedFrom, "finishedFrom") >= parseQueryTime(out.finishedTo, "finishedTo")) {
    throw invalidArgument("finishedTo must be after finishedFrom", { field: "finishedTo" });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// stats
// ---------------------------------------------------------------------------------------------

const MINUTE = 60_000;
const HOUR = 3_600_000;
/** Intervals one stats answer may hold. */
export const STATS_POINTS_MAX = 10_000;

function statsInterval(value: string, field: string): number {
  const ms = /^\d{1,16}$/.test(value) ? Number(value) : parseDuration(value);
  if (ms === null || ms < MINUTE || ms % MINUTE !== 0) {
    throw invalidArgument(`${field}: expected a whole number of minutes ("5m", "1h", "1d" or ms), got '${clip(value)}'`, { field });
  }
  return ms;
}

export interface StatsParams {
  fromMs: number;
  toMs: number;
  intervalMs: number;
  by: StatsGroupBy | null;
  queue: string | undefined;
  jobId: string | undefined;
}

/**
 * `GET /v1/stats`'s query: the range defaults to the last 24 h and is widened to whole hours when
 * the interval is whole hours (it then reads hour rollups), else to whole minutes. A range that
 * starts more than MINUTE_ROLLUP_DAYS ago, where only hour rollups are kept, needs an interval of
 * whole hours. The interval defaults to 1 h and may cut the range into at most STATS_POINTS_MAX points.
 */
export function parseStatsQuery(params: URLSearchParams, nowMs: number): StatsParams {
  const q = parseListQuery(params, ["from", "to", "interval", "by", "queue", "jobId"]);
  let toMs = q.to === undefined ? nowMs : parseQueryTime(q.to, "to");
  let fromMs = q.from === undefined ? toMs - 24 * HOUR : parseQueryTime(q.from, "from");
  if (fromMs >= toMs) throw invalidArgument("to must be after from", { field: "to" });
  const intervalMs = q.interval === undefined ? HOUR : statsInterval(q.interval, "interval");
  const old = fromMs < nowMs - MINUTE_ROLLUP_DAYS * 24 * HOUR;
  const step = old || intervalMs % HOUR === 0 ? HOUR : MINUTE;
  if (old && intervalMs % HOUR !== 0) {
    throw invalidArgument(`interval: ranges starting over ${MINUTE_ROLLUP_DAYS} days ago are kept by the hour; use whole hours`, { field: "interval" });
  }
  fromMs -= ((fromMs % step) + step) % step;
  toMs += (step - (((toMs % step) + step) % step)) % step;
  const points = Math.ceil((toMs - fromMs) / intervalMs);
  if (points > STATS_POINTS_MAX) {
    throw invalidArgument(`interval: ${points} intervals in the range, more than ${STATS_POINTS_MAX}; use a longer interval`, { field: "interval", points, limit: STATS_POINTS_MAX });
  }
  return { fromMs, toMs, intervalMs, by: (q.by as StatsGroupBy | undefined) ?? null, queue: q.queue, jobId: q.jobId };
}
