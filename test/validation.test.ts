import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  BOUNDS,
  DEFAULT_LIMITS,
  ID_PATTERN,
  LABEL_KEY_PATTERN,
  QUEUE_PATTERN,
  parseBackfillBody,
  parseEnqueueBatchBody,
  parseEnqueueBody,
  parseJobBody,
  parseJsonBody,
  parseListQuery,
  parseQueryTime,
  parseTime,
  parseTriggerBody,
  validateJobId,
  type Limits,
} from "../src/api/validation.js";
import { CronwheelError, type ErrorCode } from "../src/core/errors.js";
import {
  DEFAULT_CONCURRENCY,
  DEFAULT_DST,
  DEFAULT_LEASE_MS,
  DEFAULT_MISFIRE,
  DEFAULT_PRIORITY,
  DEFAULT_RETRY,
  DEFAULT_TIMEOUT_MS,
  type EnqueueSpec,
  type JobSpec,
} from "../src/core/types.js";

const NOW = Date.UTC(2025, 5, 1, 12, 0, 0); // 2025-06-01T12:00:00Z
const L = DEFAULT_LIMITS;

/** Runs `fn`, expects a CronwheelError with `code` and (if given) `details.field`; returns it. */
function fails(fn: () => unknown, code: ErrorCode, field?: string): CronwheelError {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, "expected a throw").toBeInstanceOf(CronwheelError);
  const err = thrown as CronwheelError;
  expect(err.code).toBe(code);
  if (field !== undefined) expect(err.details?.field).toBe(field);
  return err;
}

const job = (extra: Record<string, unknown>): unknown => ({ queue: "q", ...extra });
const jobFails = (extra: Record<string, unknown>, field: string | undefined, code: ErrorCode = "invalid_argument") =>
  fails(() => parseJobBody(job(extra), L), code, field);

// ---------------------------------------------------------------------------------------------

describe("parseJsonBody", () => {
  it("parses JSON from a string or a Buffer", () => {
    expect(parseJsonBody('{"a":1}')).toEqual({ a: 1 });
    expect(parseJsonBody(Buffer.from('{"a":"é"}'))).toEqual({ a: "é" });
    expect(parseJsonBody("[1]")).toEqual([1]);
  });
  it("skips a leading byte order mark", () => {
    expect(parseJsonBody("\uFEFF{}")).toEqual({});
    expect(parseJsonBody(Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]))).toEqual({});
  });
  it("refuses malformed JSON and invalid UTF-8", () => {
    expect(fails(() => parseJsonBody("{a:1}"), "invalid_argument").message).toMatch(/^malformed JSON: /);
    expect(fails(() => parseJsonBody("{} x"), "invalid_argument").message).toMatch(/^malformed JSON: /);
    expect(fails(() => parseJsonBody(Buffer.from([0x22, 0xff, 0x22])), "invalid_argument").message).toMatch(/UTF-8/);
  });
  it("an empty body is refused unless optional", () => {
    fails(() => parseJsonBody(""), "invalid_argument");
    fails(() => parseJsonBody(Buffer.alloc(0)), "invalid_argument");
    expect(parseJsonBody("", { optional: true })).toEqual({});
    expect(parseJsonBody(" \n", { optional: true })).toEqual({});
    expect(parseJsonBody('{"x":1}', { optional: true })).toEqual({ x: 1 });
  });
  it("refuses a body over bytesMax with payload_too_large", () => {
    expect(parseJsonBody('{"a":1}', { bytesMax: 7 })).toEqual({ a: 1 });
    fails(() => parseJsonBody('{"a":12}', { bytesMax: 7 }), "payload_too_large");
  });
});

describe("validateJobId", () => {
  it("accepts ids of the documented alphabet", () => {
    for (const id of ["a", "job-1", "billing.invoice-42_x", "A".repeat(200)]) expect(validateJobId(id)).toBe(id);
    expect(ID_PATTERN.test("a/b")).toBe(false);
  });
  it("refuses others", () => {
    for (const id of ["", "a b", "a/b", "é", "A".repeat(201), ".", "..", "a\n", "a:1"]) fails(() => validateJobId(id), "invalid_argument", "jobId");
  });
});

// ---------------------------------------------------------------------------------------------

const DEFAULTS_REST = {
  maxRuns: null,
  payload: null,
  priority: DEFAULT_PRIORITY,
  retry: DEFAULT_RETRY,
  timeoutMs: DEFAULT_TIMEOUT_MS,
  leaseMs: DEFAULT_LEASE_MS,
  concurrency: DEFAULT_CONCURRENCY,
  pauseOnFailure: false,
  misfire: DEFAULT_MISFIRE,
  labels: {},
};

describe("parseJobBody: normalization", () => {
  it("a minimal body gets every default", () => {
    const spec = parseJobBody({ queue: "emails" }, L);
    expect(spec).toEqual({
      queue: "emails",
      schedule: { trigger: { kind: "none" }, anchorMs: null, startAtMs: null, endAtMs: null, jitterMs: 0 },
      ...DEFAULTS_REST,
    });
    // Defaults are copies: the frozen constants are never handed out.
    expect(spec.retry).not.toBe(DEFAULT_RETRY);
    expect(Object.isFrozen(spec.retry.backoff)).toBe(false);
  });

  it("a full cron body normalizes field by field", () => {
    const spec = parseJobBody(
      {
        queue: "reports.daily",
        cron: "0 30 9 * * 1-5",
        timezone: "Europe/Berlin",
        dst: { repeated: "both", missing: "skip" },
        startAt: "2025-01-01T00:00:00+01:00",
        endAt: 1_800_000_000_000,
        jitterMs: 5000,
        maxRuns: 10,
        payload: { report: "sales", n: [1, 2, null] },
        priority: 9,
        retry: { maxAttempts: 7, backoff: { type: "linear", initialMs: 500, maxMs: 60000, multiplier: 1.5, jitter: "equal" } },
        timeoutMs: 60000,
        leaseMs: 10000,
        concurrency: { limit: 2, overlap: "queue" },
        pauseOnFailure: true,
        misfire: { policy: "run-all", graceMs: 0 },
        labels: { team: "finance", "app.kubernetes.io/name": "" },
      },
      L,
    );
    const startAtMs = Date.UTC(2024, 11, 31, 23, 0, 0);
    expect(spec).toEqual({
      queue: "reports.daily",
      schedule: {
        trigger: { kind: "cron", expr: "0 30 9 * * 1-5", timezone: "Europe/Berlin", dst: { repeated: "both", missing: "skip" } },
        anchorMs: startAtMs,
        startAtMs,
        endAtMs: 1_800_000_000_000,
        jitterMs: 5000,
      },
      maxRuns: 10,
      payload: { report: "sales", n: [1, 2, null] },
      priority: 9,
      retry: { maxAttempts: 7, backoff: { type: "linear", initialMs: 500, maxMs: 60000, multiplier: 1.5, jitter: "equal" } },
      timeoutMs: 60000,
      leaseMs: 10000,
      concurrency: { limit: 2, overlap: "queue" },
      pauseOnFailure: true,
      misfire: { policy: "run-all", graceMs: 0 },
      labels: { team: "finance", "app.kubernetes.io/name": "" },
    } satisfies JobSpec);
  });

  it("cron defaults: timezone UTC, dst first/shift, partial dst merges", () => {
    expect(parseJobBody(job({ cron: "*/5 * * * *" }), L).schedule.trigger).toEqual({
      kind: "cron",
      expr: "*/5 * * * *",
      timezone: "UTC",
      dst: DEFAULT_DST,
    });
    expect(parseJobBody(job({ cron: "0 3 * * *", dst: { repeated: "last" } }), L).schedule.trigger).toMatchObject({
      dst: { repeated: "last", missing: "shift" },
    });
  });

  it("every: milliseconds or a duration string; anchored at startAt, else where the shard applies the put (null here)", () => {
    expect(parseJobBody(job({ every: 60000 }), L).schedule).toEqual({
      trigger: { kind: "every", everyMs: 60000 },
      anchorMs: null,
      startAtMs: null,
      endAtMs: null,
      jitterMs: 0,
    });
    expect(parseJobBody(job({ every: "5m" }), L).schedule.trigger).toEqual({ kind: "every", everyMs: 300_000 });
    expect(parseJobBody(job({ every: "30s" }), L).schedule.trigger).toEqual({ kind: "every", everyMs: 30_000 });
    expect(parseJobBody(job({ every: "1h" }), L).schedule.trigger).toEqual({ kind: "every", everyMs: 3_600_000 });
    expect(parseJobBody(job({ every: "250ms" }), L).schedule.trigger).toEqual({ kind: "every", everyMs: 250 });
    const s = parseJobBody(job({ every: 1000, startAt: "2025-06-01T00:00:00Z" }), L).schedule;
    expect(s.anchorMs).toBe(Date.UTC(2025, 5, 1));
    expect(s.startAtMs).toBe(Date.UTC(2025, 5, 1));
  });

  it("at: a one-time trigger (in the past is allowed)", () => {
    expect(parseJobBody(job({ at: "2025-06-02T08:00:00.250Z" }), L).schedule.trigger).toEqual({
      kind: "at",
      atMs: Date.UTC(2025, 5, 2, 8, 0, 0, 250),
    });
    expect(parseJobBody(job({ at: 0 }), L).schedule.trigger).toEqual({ kind: "at", atMs: 0 });
  });

  it("null means none for nullable fields", () => {
    const spec = parseJobBody(
      job({ cron: null, every: null, at: null, startAt: null, endAt: null, maxRuns: null, concurrency: { limit: null } }),
      L,
    );
    expect(spec.schedule.trigger).toEqual({ kind: "none" });
    expect(spec.maxRuns).toBeNull();
    expect(spec.concurrency).toEqual({ limit: null, overlap: "allow" });
    // `every: null` alongside a cron is not a conflict.
    expect(parseJobBody(job({ cron: "* * * * *", every: null }), L).schedule.trigger.kind).toBe("cron");
  });

  it("partial retry merges with DEFAULT_RETRY member by member", () => {
    expect(parseJobBody(job({ retry: { maxAttempts: 1 } }), L).retry).toEqual({ ...DEFAULT_RETRY, maxAttempts: 1 });
    expect(parseJobBody(job({ retry: { backoff: { jitter: "none" } } }), L).retry).toEqual({
      maxAttempts: DEFAULT_RETRY.maxAttempts,
      backoff: { ...DEFAULT_RETRY.backoff, jitter: "none" },
    });
    expect(parseJobBody(job({ retry: {} }), L).retry).toEqual(DEFAULT_RETRY);
    expect(parseJobBody(job({ retry: { backoff: { initialMs: 0, maxMs: 0 } } }), L).retry.backoff).toMatchObject({ initialMs: 0, maxMs: 0 });
  });

  it("concurrency: a non-allow overlap without a limit means limit 1; partial misfire merges", () => {
    expect(parseJobBody(job({ concurrency: { overlap: "skip" } }), L).concurrency).toEqual({ limit: 1, overlap: "skip" });
    expect(parseJobBody(job({ concurrency: { limit: 3 } }), L).concurrency).toEqual({ limit: 3, overlap: "allow" });
    expect(parseJobBody(job({ misfire: { policy: "skip" } }), L).misfire).toEqual({ policy: "skip", graceMs: 60_000 });
  });

  it("integers: -0 is stored as 0, 1e3 is an integer", () => {
    const spec = parseJobBody(job({ jitterMs: -0, priority: 1e0, every: 1e3 }), L);
    expect(Object.is(spec.schedule.jitterMs, 0)).toBe(true);
    expect(spec.schedule.trigger).toEqual({ kind: "every", everyMs: 1000 });
  });

  it("a __proto__ label stays an ordinary label", () => {
    const body = JSON.parse('{"queue":"q","labels":{"__proto__":"x","a":"b"}}') as unknown;
    const spec = parseJobBody(body, L);
    expect(Object.keys(spec.labels).sort()).toEqual(["__proto__", "a"]);
    expect(Object.getPrototypeOf(spec.labels)).toBe(Object.prototype);
  });

  it("payload: any JSON; exactly at the limit passes", () => {
    const limits: Limits = { payloadBytesMax: 12 };
    expect(parseJobBody(job({ payload: "ééééé" }), limits).payload).toBe("ééééé"); // 2 + 5*2 = 12 bytes
    fails(() => parseJobBody(job({ payload: "éééééé" }), limits), "payload_too_large", "payload");
    expect(parseJobBody(job({ payload: [false, 0, "", {}] }), L).payload).toEqual([false, 0, "", {}]);
  });
});

describe("parseJobBody: every rule has a failing case", () => {
  it("the body must be an object", () => {
    for (const body of [null, [], "x", 1, true]) {
      const err = fails(() => parseJobBody(body, L), "invalid_argument");
      expect(err.message).toMatch(/JSON object/);
    }
  });

  it("unknown fields, top-level and nested, are named", () => {
    const err = jobFails({ quue: "x" }, "quue");
    expect(err.message).toBe("unknown field 'quue'");
    jobFails({ retry: { maxAttempt: 3 } }, "retry.maxAttempt");
    jobFails({ retry: { backoff: { kind: "fixed" } } }, "retry.backoff.kind");
    jobFails({ cron: "* * * * *", dst: { skip: true } }, "dst.skip");
    jobFails({ concurrency: { max: 1 } }, "concurrency.max");
    jobFails({ misfire: { grace: 1 } }, "misfire.grace");
    jobFails({ id: "x" }, "id");
    jobFails(JSON.parse('{"__proto__":{"x":1}}') as Record<string, unknown>, "__proto__");
    jobFails({ constructor: 1 }, "constructor");
  });

  it("queue: required, a string of the contract's alphabet", () => {
    fails(() => parseJobBody({}, L), "invalid_argument", "queue");
    jobFails({ queue: null }, "queue");
    jobFails({ queue: 1 }, "queue");
    jobFails({ queue: "" }, "queue");
    jobFails({ queue: "a:b" }, "queue");
    jobFails({ queue: "x".repeat(129) }, "queue");
    expect(parseJobBody(job({ queue: "x".repeat(128) }), L).queue).toHaveLength(128);
  });

  it("trigger: at most one of cron/every/at", () => {
    const err = jobFails({ cron: "* * * * *", every: 1000 }, "every");
    expect(err.details?.conflictsWith).toBe("cron");
    jobFails({ every: 1000, at: NOW }, "at");
    jobFails({ cron: "* * * * *", at: NOW }, "at");
  });

  it("cron: a string that the cron parser accepts", () => {
    jobFails({ cron: 5 }, "cron");
    jobFails({ cron: "" }, "cron");
    const err = jobFails({ cron: "0 25 * * *" }, "cron");
    expect(err.message).toMatch(/cron/);
    jobFails({ cron: "not a cron" }, "cron");
    jobFails({ cron: "* ".repeat(600) }, "cron");
  });

  it("timezone and dst: only with cron, and valid", () => {
    jobFails({ timezone: "UTC" }, "timezone");
    jobFails({ every: 1000, timezone: "UTC" }, "timezone");
    jobFails({ dst: { repeated: "first" } }, "dst");
    jobFails({ at: NOW, dst: {} }, "dst");
    const err = jobFails({ cron: "* * * * *", timezone: "Mars/Olympus_Mons" }, "timezone");
    expect(err.message).toMatch(/time zone/);
    jobFails({ cron: "* * * * *", timezone: 1 }, "timezone");
    jobFails({ cron: "* * * * *", timezone: null }, "timezone");
    jobFails({ cron: "* * * * *", timezone: "A/".repeat(40) }, "timezone");
    jobFails({ cron: "* * * * *", dst: "first" }, "dst");
    jobFails({ cron: "* * * * *", dst: { repeated: "middle" } }, "dst.repeated");
    jobFails({ cron: "* * * * *", dst: { missing: "shift-back" } }, "dst.missing");
  });

  it("every: a positive integer in bounds or a duration string", () => {
    jobFails({ every: 0 }, "every");
    jobFails({ every: -1000 }, "every");
    jobFails({ every: BOUNDS.everyMsMin - 1 }, "every");
    jobFails({ every: BOUNDS.everyMsMax + 1 }, "every");
    jobFails({ every: 1500.5 }, "every");
    jobFails({ every: "10ms" }, "every");
    jobFails({ every: "soon" }, "every");
    jobFails({ every: "" }, "every");
    jobFails({ every: true }, "every");
    jobFails({ every: { ms: 1000 } }, "every");
    jobFails({ every: 2 ** 60 }, "every");
    expect(parseJobBody(job({ every: BOUNDS.everyMsMin }), L).schedule.trigger).toEqual({ kind: "every", everyMs: BOUNDS.everyMsMin });
  });

  it("at, startAt, endAt: times; startAt < endAt", () => {
    jobFails({ at: "2025-06-02T08:00:00" }, "at");
    jobFails({ at: "tomorrow" }, "at");
    jobFails({ at: 1.5 }, "at");
    jobFails({ startAt: -1 }, "startAt");
    jobFails({ endAt: true }, "endAt");
    jobFails({ startAt: 2000, endAt: 1000 }, "endAt");
    jobFails({ startAt: 1000, endAt: 1000 }, "endAt");
    jobFails({ startAt: "2025-06-01T10:00:00Z", endAt: "2025-06-01T11:00:00+02:00" }, "endAt");
  });

  it("jitterMs: 0..1 day", () => {
    jobFails({ jitterMs: -1 }, "jitterMs");
    jobFails({ jitterMs: BOUNDS.jitterMsMax + 1 }, "jitterMs");
    jobFails({ jitterMs: 0.5 }, "jitterMs");
    jobFails({ jitterMs: "5s" }, "jitterMs");
    jobFails({ jitterMs: null }, "jitterMs");
  });

  it("maxRuns: int ≥ 1", () => {
    jobFails({ maxRuns: 0 }, "maxRuns");
    jobFails({ maxRuns: 1.5 }, "maxRuns");
    jobFails({ maxRuns: "3" }, "maxRuns");
    jobFails({ maxRuns: Number.MAX_SAFE_INTEGER + 2 }, "maxRuns");
  });

  it("priority: int 0..9", () => {
    const err = jobFails({ priority: 10 }, "priority");
    expect(err.message).toBe("priority: out of range: 10 (allowed 0..9)");
    expect(err.details).toMatchObject({ field: "priority", min: 0, max: 9, value: 10 });
    jobFails({ priority: -1 }, "priority");
    jobFails({ priority: 4.5 }, "priority");
    jobFails({ priority: "5" }, "priority");
    jobFails({ priority: null }, "priority");
  });

  it("numbers must be finite (programmatic callers can pass NaN/Infinity)", () => {
    jobFails({ priority: Number.NaN }, "priority");
    jobFails({ timeoutMs: Number.POSITIVE_INFINITY }, "timeoutMs");
    jobFails({ retry: { backoff: { multiplier: Number.NaN } } }, "retry.backoff.multiplier");
    jobFails({ at: Number.NEGATIVE_INFINITY }, "at");
  });

  it("retry: maxAttempts 1..100, backoff members, initialMs ≤ maxMs", () => {
    jobFails({ retry: 3 }, "retry");
    jobFails({ retry: null }, "retry");
    jobFails({ retry: { maxAttempts: 0 } }, "retry.maxAttempts");
    jobFails({ retry: { maxAttempts: 101 } }, "retry.maxAttempts");
    jobFails({ retry: { backoff: [] } }, "retry.backoff");
    jobFails({ retry: { backoff: { type: "quadratic" } } }, "retry.backoff.type");
    jobFails({ retry: { backoff: { initialMs: -1 } } }, "retry.backoff.initialMs");
    jobFails({ retry: { backoff: { maxMs: BOUNDS.backoffMsMax + 1 } } }, "retry.backoff.maxMs");
    jobFails({ retry: { backoff: { multiplier: 0.5 } } }, "retry.backoff.multiplier");
    jobFails({ retry: { backoff: { multiplier: 101 } } }, "retry.backoff.multiplier");
    jobFails({ retry: { backoff: { jitter: "half" } } }, "retry.backoff.jitter");
    // initialMs over the default maxMs: blames the member the client set.
    const err = jobFails({ retry: { backoff: { initialMs: 600_000 } } }, "retry.backoff.initialMs");
    expect(err.message).toMatch(/the default/);
    jobFails({ retry: { backoff: { initialMs: 5000, maxMs: 1000 } } }, "retry.backoff.maxMs");
    jobFails({ retry: { backoff: { maxMs: 500 } } }, "retry.backoff.maxMs");
  });

  it("timeoutMs and leaseMs: bounded positive ints", () => {
    jobFails({ timeoutMs: 0 }, "timeoutMs");
    jobFails({ timeoutMs: BOUNDS.timeoutMsMin - 1 }, "timeoutMs");
    jobFails({ timeoutMs: BOUNDS.timeoutMsMax + 1 }, "timeoutMs");
    jobFails({ leaseMs: BOUNDS.leaseMsMin - 1 }, "leaseMs");
    jobFails({ leaseMs: BOUNDS.leaseMsMax + 1 }, "leaseMs");
    jobFails({ leaseMs: "30s" }, "leaseMs");
  });

  it("concurrency: limit int ≥ 1 or null; overlap enum; a non-allow overlap needs a limit", () => {
    jobFails({ concurrency: 1 }, "concurrency");
    jobFails({ concurrency: { limit: 0 } }, "concurrency.limit");
    jobFails({ concurrency: { limit: BOUNDS.concurrencyLimitMax + 1 } }, "concurrency.limit");
    jobFails({ concurrency: { limit: "1" } }, "concurrency.limit");
    jobFails({ concurrency: { overlap: "wait" } }, "concurrency.overlap");
    jobFails({ concurrency: { limit: null, overlap: "skip" } }, "concurrency.overlap");
  });

  it("pauseOnFailure: boolean", () => {
    jobFails({ pauseOnFailure: "true" }, "pauseOnFailure");
    jobFails({ pauseOnFailure: 1 }, "pauseOnFailure");
  });

  it("misfire: policy enum, graceMs ≥ 0", () => {
    jobFails({ misfire: "skip" }, "misfire");
    jobFails({ misfire: { policy: "run-twice" } }, "misfire.policy");
    jobFails({ misfire: { graceMs: -1 } }, "misfire.graceMs");
    jobFails({ misfire: { graceMs: BOUNDS.misfireGraceMsMax + 1 } }, "misfire.graceMs");
  });

  it("labels: a string map with bounded keys, values and count", () => {
    jobFails({ labels: [] }, "labels");
    jobFails({ labels: "a=b" }, "labels");
    expect(jobFails({ labels: { "bad key": "x" } }, "labels").details?.key).toBe("bad key");
    jobFails({ labels: { ["k".repeat(64)]: "x" } }, "labels");
    jobFails({ labels: { "": "x" } }, "labels");
    expect(jobFails({ labels: { n: 1 } }, "labels").details?.key).toBe("n");
    jobFails({ labels: { n: null } }, "labels");
    jobFails({ labels: { v: "x".repeat(257) } }, "labels.v");
    const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, "v"]));
    jobFails({ labels: many }, "labels");
    const max = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, "v".repeat(256)]));
    expect(Object.keys(parseJobBody(job({ labels: max }), L).labels)).toHaveLength(64);
  });

  it("payload: over the limit → payload_too_large (413), too deep → invalid_argument", () => {
    const err = jobFails({ payload: "x".repeat(L.payloadBytesMax) }, "payload", "payload_too_large");
    expect(err.details).toMatchObject({ limitBytes: 262_144, bytes: 262_146 });
    let deep: unknown = 1;
    for (let i = 0; i < BOUNDS.payloadDepthMax + 1; i++) deep = [deep];
    jobFails({ payload: deep }, "payload");
    let ok: unknown = 1;
    for (let i = 0; i < BOUNDS.payloadDepthMax; i++) ok = { a: ok };
    expect(parseJobBody(job({ payload: ok }), L).payload).toEqual(ok);
    // Not JSON at all (programmatic callers).
    jobFails({ payload: () => 1 }, "payload");
    jobFails({ payload: 10n }, "payload");
  });
});

// ---------------------------------------------------------------------------------------------

describe("parseTime", () => {
  it("RFC 3339 with Z or an offset, and integer milliseconds", () => {
    expect(parseTime("2025-06-01T12:00:00Z", "t")).toBe(NOW);
    expect(parseTime("2025-06-01t12:00:00z", "t")).toBe(NOW);
    expect(parseTime("2025-06-01T14:00:00+02:00", "t")).toBe(NOW);
    expect(parseTime("2025-06-01T06:30:00-05:30", "t")).toBe(NOW);
    expect(parseTime("2025-06-01T12:00:00-00:00", "t")).toBe(NOW);
    expect(parseTime("2025-06-01T12:00:00.1Z", "t")).toBe(NOW + 100);
    expect(parseTime("2025-06-01T12:00:00.123456789Z", "t")).toBe(NOW + 123);
    expect(parseTime("2024-02-29T00:00:00Z", "t")).toBe(Date.UTC(2024, 1, 29));
    expect(parseTime("2016-12-31T23:59:60Z", "t")).toBe(Date.UTC(2017, 0, 1)); // leap second → next second
    expect(parseTime("1970-01-01T00:00:00Z", "t")).toBe(0);
    expect(parseTime("9999-12-31T23:59:59.999Z", "t")).toBe(BOUNDS.timeMsMax);
    expect(parseTime(NOW, "t")).toBe(NOW);
    expect(parseTime(0, "t")).toBe(0);
  });
  it("refuses offset-less, malformed, impossible and out-of-range times, naming the field", () => {
    expect(fails(() => parseTime("2025-06-01T12:00:00", "runAt"), "invalid_argument", "runAt").message).toMatch(/offset/);
    expect(fails(() => parseTime("2025-06-01", "runAt"), "invalid_argument", "runAt").message).toMatch(/offset/);
    expect(fails(() => parseTime("2025-06-01 12:00", "runAt"), "invalid_argument", "runAt").message).toMatch(/offset/);
    for (const bad of [
      "2025-02-29T00:00:00Z",
      "2025-13-01T00:00:00Z",
      "2025-04-31T00:00:00Z",
      "2025-06-01T24:00:00Z",
      "2025-06-01T12:60:00Z",
      "2025-06-01T12:00:61Z",
      "2025-06-01T12:00:00+24:00",
      "2025-06-01T12:00:00+02:60",
      "2025-06-01T12:00:00+0200",
      "2025-06-01T12:00Z",
      "Sun, 01 Jun 2025 12:00:00 GMT",
      "1748779200000",
      "1969-12-31T23:59:59Z",
      "0000-01-01T00:00:00Z",
      "9999-12-31T23:59:59-01:00",
      " 2025-06-01T12:00:00Z",
      "",
    ]) {
      fails(() => parseTime(bad, "t"), "invalid_argument", "t");
    }
    for (const bad of [-1, 1.5, BOUNDS.timeMsMax + 1, Number.MAX_VALUE, Number.NaN, null, true, {}, []]) {
      fails(() => parseTime(bad, "t"), "invalid_argument", "t");
    }
  });
  it("query times also take decimal milliseconds", () => {
    expect(parseQueryTime("1748779200000", "from")).toBe(1748779200000);
    expect(parseQueryTime("2025-06-01T12:00:00Z", "from")).toBe(NOW);
    fails(() => parseQueryTime("-5", "from"), "invalid_argument", "from");
  });
});

// ---------------------------------------------------------------------------------------------

describe("parseEnqueueBody", () => {
  it("a minimal body", () => {
    expect(parseEnqueueBody({ queue: "q" }, L)).toEqual({
      queue: "q",
      payload: null,
      runAtMs: null,
      delayMs: null,
      idempotencyKey: null,
      priority: DEFAULT_PRIORITY,
      retry: DEFAULT_RETRY,
      timeoutMs: DEFAULT_TIMEOUT_MS,
      leaseMs: DEFAULT_LEASE_MS,
      orderingKey: null,
    } satisfies EnqueueSpec);
  });
  it("a full body; delayMs stays relative (the shard resolves it at the enqueue's time)", () => {
    expect(
      parseEnqueueBody(
        {
          queue: "q",
          payload: { a: 1 },
          delayMs: 5000,
          idempotencyKey: "order-42",
          priority: 0,
          retry: { maxAttempts: 1 },
          timeoutMs: 1000,
          leaseMs: 2000,
          orderingKey: "customer-7",
        },
        L,
      ),
    ).toEqual({
      queue: "q",
      payload: { a: 1 },
      runAtMs: null,
      delayMs: 5000,
      idempotencyKey: "order-42",
      priority: 0,
      retry: { ...DEFAULT_RETRY, maxAttempts: 1 },
      timeoutMs: 1000,
      leaseMs: 2000,
      orderingKey: "customer-7",
    });
    expect(parseEnqueueBody({ queue: "q", runAt: "2025-06-01T13:00:00+01:00" }, L)).toMatchObject({ runAtMs: NOW, delayMs: null });
    expect(parseEnqueueBody({ queue: "q", delayMs: 0 }, L)).toMatchObject({ runAtMs: null, delayMs: 0 });
  });
  it("every rule has a failing case", () => {
    const enq = (extra: Record<string, unknown>, field: string | undefined, code: ErrorCode = "invalid_argument") =>
      fails(() => parseEnqueueBody({ queue: "q", ...extra }, L), code, field);
    fails(() => parseEnqueueBody([], L), "invalid_argument");
    fails(() => parseEnqueueBody({}, L), "invalid_argument", "queue");
    enq({ queue: "no spaces" }, "queue");
    enq({ cron: "* * * * *" }, "cron");
    enq({ runAt: NOW, delayMs: 1 }, "delayMs");
    enq({ runAt: "2025-06-01T13:00:00" }, "runAt");
    enq({ delayMs: -1 }, "delayMs");
    enq({ delayMs: "5s" }, "delayMs");
    enq({ delayMs: BOUNDS.delayMsMax + 1 }, "delayMs");
    enq({ idempotencyKey: "" }, "idempotencyKey");
    enq({ idempotencyKey: "k".repeat(257) }, "idempotencyKey");
    enq({ idempotencyKey: 42 }, "idempotencyKey");
    enq({ orderingKey: "" }, "orderingKey");
    enq({ orderingKey: "k".repeat(257) }, "orderingKey");
    enq({ priority: 10 }, "priority");
    enq({ retry: { maxAttempts: 0 } }, "retry.maxAttempts");
    enq({ timeoutMs: 0 }, "timeoutMs");
    enq({ leaseMs: 999 }, "leaseMs");
    enq({ payload: "x".repeat(L.payloadBytesMax) }, "payload", "payload_too_large");
    // 256 characters, counted as code points: 256 emoji are fine.
    expect(parseEnqueueBody({ queue: "q", idempotencyKey: "😀".repeat(256) }, L).idempotencyKey).toHaveLength(512);
  });
});

describe("parseEnqueueBatchBody", () => {
  it("answers per item, in order", () => {
    const out = parseEnqueueBatchBody({ executions: [{ queue: "a" }, { queue: "b", priority: 11 }, 7] }, L);
    expect(out).toHaveLength(3);
    expect((out[0] as EnqueueSpec).queue).toBe("a");
    expect(out[1]).toBeInstanceOf(CronwheelError);
    expect((out[1] as CronwheelError).details).toMatchObject({ field: "priority", index: 1 });
    expect((out[2] as CronwheelError).details).toMatchObject({ index: 2 });
    expect(parseEnqueueBatchBody({ executions: [] }, L)).toEqual([]);
  });
  it("refuses a bad envelope", () => {
    fails(() => parseEnqueueBatchBody({}, L), "invalid_argument", "executions");
    fails(() => parseEnqueueBatchBody({ executions: {} }, L), "invalid_argument", "executions");
    fails(() => parseEnqueueBatchBody({ executions: [], x: 1 }, L), "invalid_argument", "x");
    const tooMany = Array.from({ length: BOUNDS.batchItemsMax + 1 }, () => ({ queue: "q" }));
    fails(() => parseEnqueueBatchBody({ executions: tooMany }, L), "invalid_argument", "executions");
  });
});

describe("parseTriggerBody", () => {
  it("payload absent → undefined (the job's payload); null is a payload", () => {
    expect(parseTriggerBody({}, L)).toEqual({ payload: undefined, idempotencyKey: null });
    expect(parseTriggerBody({ payload: null, idempotencyKey: "k" }, L)).toEqual({ payload: null, idempotencyKey: "k" });
    expect(parseTriggerBody(parseJsonBody("", { optional: true }), L)).toEqual({ payload: undefined, idempotencyKey: null });
  });
  it("refuses unknown fields, bad keys, big payloads", () => {
    fails(() => parseTriggerBody({ runAt: 1 }, L), "invalid_argument", "runAt");
    fails(() => parseTriggerBody({ idempotencyKey: "" }, L), "invalid_argument", "idempotencyKey");
    fails(() => parseTriggerBody({ payload: "x".repeat(L.payloadBytesMax) }, L), "payload_too_large", "payload");
    fails(() => parseTriggerBody("x", L), "invalid_argument");
  });
});

describe("parseBackfillBody", () => {
  it("from < to ≤ now, span ≤ 366 days", () => {
    expect(parseBackfillBody({ from: "2025-05-01T00:00:00Z", to: NOW }, NOW)).toEqual({ fromMs: Date.UTC(2025, 4, 1), toMs: NOW });
    fails(() => parseBackfillBody({ to: NOW }, NOW), "invalid_argument", "from");
    fails(() => parseBackfillBody({ from: 0 }, NOW), "invalid_argument", "to");
    fails(() => parseBackfillBody({ from: NOW - 10, to: NOW - 10 }, NOW), "invalid_argument", "to");
    fails(() => parseBackfillBody({ from: NOW - 10, to: NOW + 1 }, NOW), "invalid_argument", "to");
    fails(() => parseBackfillBody({ from: NOW - BOUNDS.backfillSpanMsMax - 1, to: NOW }, NOW), "invalid_argument", "from");
    expect(parseBackfillBody({ from: NOW - BOUNDS.backfillSpanMsMax, to: NOW }, NOW).fromMs).toBe(NOW - BOUNDS.backfillSpanMsMax);
    fails(() => parseBackfillBody({ from: "2025-05-01", to: NOW }, NOW), "invalid_argument", "from");
    fails(() => parseBackfillBody({ from: 0, to: NOW, count: 1 }, NOW), "invalid_argument", "count");
  });
});

describe("parseListQuery", () => {
  const q = (s: string) => new URLSearchParams(s);
  it("fills limit's default, keeps values as given", () => {
    expect(parseListQuery(q(""), ["queue", "cursor", "limit"])).toEqual({ limit: "100" });
    expect(parseListQuery(q("queue=mail&limit=5&cursor=abc"), ["queue", "cursor", "limit"])).toEqual({ queue: "mail", limit: "5", cursor: "abc" });
    expect(parseListQuery(q("label=team%3Dops"), ["label"])).toEqual({ label: "team=ops" });
    expect(parseListQuery(q("count=3"), ["count"])).toEqual({ count: "3" });
    expect(parseListQuery(q(""), ["count"])).toEqual({ count: "10" });
    expect(parseListQuery(q("queue=&cursor="), ["queue", "cursor"])).toEqual({});
    expect(parseListQuery(q("state=failed&from=0&to=2025-06-01T12:00:00Z&jobId=j1"), ["state", "from", "to", "jobId"])).toMatchObject({
      state: "failed",
    });
  });
  it("refuses unknown, repeated and invalid parameters", () => {
    fails(() => parseListQuery(q("qeue=x"), ["queue"]), "invalid_argument", "qeue");
    fails(() => parseListQuery(q("limit=5"), ["queue"]), "invalid_argument", "limit");
    fails(() => parseListQuery(q("queue=a&queue=b"), ["queue"]), "invalid_argument", "queue");
    for (const bad of ["0", "1001", "-1", "1.5", "ten", "1e2", "99999999999999999999"]) {
      fails(() => parseListQuery(q(`limit=${bad}`), ["limit"]), "invalid_argument", "limit");
    }
    fails(() => parseListQuery(q(`cursor=${"c".repeat(1025)}`), ["cursor"]), "invalid_argument", "cursor");
    fails(() => parseListQuery(q("queue=a%20b"), ["queue"]), "invalid_argument", "queue");
    fails(() => parseListQuery(q("state=done"), ["state"]), "invalid_argument", "state");
    fails(() => parseListQuery(q("from=2025-06-01"), ["from"]), "invalid_argument", "from");
    fails(() => parseListQuery(q("from=10&to=5"), ["from", "to"]), "invalid_argument", "to");
    fails(() => parseListQuery(q("label=team"), ["label"]), "invalid_argument", "label");
    fails(() => parseListQuery(q("label=bad%20key=x"), ["label"]), "invalid_argument", "label");
    fails(() => parseListQuery(q("cancelRunning=yes"), ["cancelRunning"]), "invalid_argument", "cancelRunning");
    // A rebalance or drain with a dry run the node did not understand must not run for real.
    for (const bad of ["1", "yes", "TRUE"]) fails(() => parseListQuery(q(`dryRun=${bad}`), ["dryRun"]), "invalid_argument", "dryRun");
    fails(() => parseListQuery(q("count=0"), ["count"]), "invalid_argument", "count");
  });
});

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

function byteLength(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v), "utf8");
}

function checkAttemptPolicy(s: Pick<JobSpec, "priority" | "retry" | "timeoutMs" | "leaseMs">): void {
  expect(Number.isSafeInteger(s.priority) && s.priority >= 0 && s.priority <= 9).toBe(true);
  const { maxAttempts, backoff } = s.retry;
  expect(Number.isSafeInteger(maxAttempts) && maxAttempts >= 1 && maxAttempts <= BOUNDS.retryMaxAttemptsMax).toBe(true);
  expect(["exponential", "fixed", "linear"]).toContain(backoff.type);
  expect(["none", "full", "equal"]).toContain(backoff.jitter);
  expect(Number.isSafeInteger(backoff.initialMs) && backoff.initialMs >= 0).toBe(true);
  expect(Number.isSafeInteger(backoff.maxMs) && backoff.maxMs <= BOUNDS.backoffMsMax && backoff.initialMs <= backoff.maxMs).toBe(true);
  expect(Number.isFinite(backoff.multiplier) && backoff.multiplier >= 1 && backoff.multiplier <= 100).toBe(true);
  expect(Number.isSafeInteger(s.timeoutMs) && s.timeoutMs >= BOUNDS.timeoutMsMin && s.timeoutMs <= BOUNDS.timeoutMsMax).toBe(true);
  expect(Number.isSafeInteger(s.leaseMs) && s.leaseMs >= BOUNDS.leaseMsMin && s.leaseMs <= BOUNDS.leaseMsMax).toBe(true);
}

function isTime(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= 0 && ms <= BOUNDS.timeMsMax;
}

function checkJobSpec(spec: JobSpec, limits: Limits): void {
  expect(QUEUE_PATTERN.test(spec.queue)).toBe(true);
  checkAttemptPolicy(spec);
  const { trigger, anchorMs, startAtMs, endAtMs, jitterMs } = spec.schedule;
  switch (trigger.kind) {
    case "cron":
      expect(typeof trigger.expr).toBe("string");
      expect(typeof trigger.timezone).toBe("string");
      expect(["first", "last", "both"]).toContain(trigger.dst.repeated);
      expect(["shift", "skip"]).toContain(trigger.dst.missing);
      break;
    case "every":
      expect(Number.isSafeInteger(trigger.everyMs) && trigger.everyMs >= BOUNDS.everyMsMin && trigger.everyMs <= BOUNDS.everyMsMax).toBe(true);
      break;
    case "at":
      expect(isTime(trigger.atMs)).toBe(true);
      break;
    case "none":
      break;
  }
  if (startAtMs !== null) expect(isTime(startAtMs)).toBe(true);
  if (endAtMs !== null) expect(isTime(endAtMs)).toBe(true);
  if (startAtMs !== null && endAtMs !== null) expect(startAtMs < endAtMs).toBe(true);
  expect(anchorMs).toBe(startAtMs);
  expect(Number.isSafeInteger(jitterMs) && jitterMs >= 0 && jitterMs <= BOUNDS.jitterMsMax).toBe(true);
  if (spec.maxRuns !== null) expect(Number.isSafeInteger(spec.maxRuns) && spec.maxRuns >= 1).toBe(true);
  expect(byteLength(spec.payload)).toBeLessThanOrEqual(limits.payloadBytesMax);
  const { limit, overlap } = spec.concurrency;
  expect(["allow", "skip", "buffer-one", "queue", "replace"]).toContain(overlap);
  if (limit !== null) expect(Number.isSafeInteger(limit) && limit >= 1 && limit <= BOUNDS.concurrencyLimitMax).toBe(true);
  if (overlap !== "allow") expect(limit).not.toBeNull();
  expect(typeof spec.pauseOnFailure).toBe("boolean");
  expect(["run-once", "skip", "run-all"]).toContain(spec.misfire.policy);
  expect(Number.isSafeInteger(spec.misfire.graceMs) && spec.misfire.graceMs >= 0).toBe(true);
  const labels = Object.entries(spec.labels);
  expect(labels.length).toBeLessThanOrEqual(BOUNDS.labelsCountMax);
  for (const [k, v] of labels) {
    expect(LABEL_KEY_PATTERN.test(k)).toBe(true);
    expect(typeof v === "string" && [...v].length <= BOUNDS.labelValueCharsMax).toBe(true);
  }
}

function checkEnqueueSpec(spec: EnqueueSpec, limits: Limits): void {
  expect(QUEUE_PATTERN.test(spec.queue)).toBe(true);
  checkAttemptPolicy(spec);
  if (spec.delayMs !== null) expect(spec.runAtMs).toBeNull();
  if (spec.runAtMs !== null) expect(Number.isSafeInteger(spec.runAtMs) && spec.runAtMs >= 0).toBe(true);
  for (const key of [spec.idempotencyKey, spec.orderingKey]) {
    if (key !== null) expect(typeof key === "string" && key.length >= 1 && [...key].length <= BOUNDS.keyCharsMax).toBe(true);
  }
  expect(byteLength(spec.payload)).toBeLessThanOrEqual(limits.payloadBytesMax);
}

/** Returns the result or the CronwheelError; any other throw fails the property. */
function attempt<T>(fn: () => T): T | CronwheelError {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CronwheelError) {
      expect(err.code === "invalid_argument" || err.code === "payload_too_large").toBe(true);
      expect(typeof err.message).toBe("string");
      return err;
    }
    throw err;
  }
}

const FULL_JOB = {
  queue: "reports",
  cron: "0 */5 * * * *",
  timezone: "America/New_York",
  dst: { repeated: "last", missing: "skip" },
  startAt: "2025-01-01T00:00:00Z",
  endAt: "2026-01-01T00:00:00Z",
  jitterMs: 1000,
  maxRuns: 100,
  payload: { x: [1, "two", null] },
  priority: 3,
  retry: { maxAttempts: 4, backoff: { type: "fixed", initialMs: 2000, maxMs: 2000, multiplier: 1, jitter: "none" } },
  timeoutMs: 10_000,
  leaseMs: 5_000,
  concurrency: { limit: 1, overlap: "skip" },
  pauseOnFailure: true,
  misfire: { policy: "skip", graceMs: 5000 },
  labels: { team: "ops", tier: "1" },
};
const EVERY_JOB = { queue: "ticks", every: "30s", startAt: 1_700_000_000_000 };
const AT_JOB = { queue: "once", at: "2030-01-01T00:00:00+05:00", payload: "hi" };
const FULL_ENQUEUE = {
  queue: "emails",
  payload: { to: "a@example.com" },
  delayMs: 1000,
  idempotencyKey: "k1",
  priority: 7,
  retry: { maxAttempts: 2 },
  timeoutMs: 5000,
  leaseMs: 5000,
  orderingKey: "user-1",
};

const PATHS_JOB = [
  ...Object.keys(FULL_JOB),
  "dst.repeated", "dst.missing", "retry.maxAttempts", "retry.backoff", "retry.backoff.type", "retry.backoff.initialMs",
  "retry.backoff.maxMs", "retry.backoff.multiplier", "retry.backoff.jitter", "concurrency.limit", "concurrency.overlap",
  "misfire.policy", "misfire.graceMs", "labels.team", "every", "at", "runAt", "quue",
];
const PATHS_ENQUEUE = [...Object.keys(FULL_ENQUEUE), "retry.backoff.maxMs", "runAt", "every"];

/** Deep-clones `base` and sets (or deletes, for `undefined`) the value at a dotted path. */
function mutate(base: object, dotted: string, value: unknown): unknown {
  const root = structuredClone(base) as Record<string, unknown>;
  const keys = dotted.split(".");
  let obj = root;
  for (const k of keys.slice(0, -1)) {
    if (typeof obj[k] !== "object" || obj[k] === null || Array.isArray(obj[k])) obj[k] = {};
    obj = obj[k] as Record<string, unknown>;
  }
  const last = keys[keys.length - 1]!;
  if (value === undefined) delete obj[last];
  else obj[last] = value;
  return root;
}

const replacement = fc.oneof(
  fc.jsonValue(),
  fc.constantFrom(undefined, null, -0, 0, -1, 1, 0.5, 99, 100, 1e21, Number.MAX_SAFE_INTEGER + 1, "", "5m", "x"),
  fc.integer(),
);

describe("properties", () => {
  it("fixtures are valid", () => {
    checkJobSpec(parseJobBody(FULL_JOB, L), L);
    checkJobSpec(parseJobBody(EVERY_JOB, L), L);
    checkJobSpec(parseJobBody(AT_JOB, L), L);
    checkEnqueueSpec(parseEnqueueBody(FULL_ENQUEUE, L), L);
  });

  it("arbitrary JSON: a spec satisfying the invariants, or a CronwheelError", () => {
    const smallLimits: Limits = { payloadBytesMax: 64 };
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (value, small) => {
        const limits = small ? smallLimits : L;
        const job = attempt(() => parseJobBody(value, limits));
        if (!(job instanceof CronwheelError)) checkJobSpec(job, limits);
        const enq = attempt(() => parseEnqueueBody(value, limits));
        if (!(enq instanceof CronwheelError)) checkEnqueueSpec(enq, limits);
        // Wrapped in an object with a valid queue, so more of the readers are reached.
        if (typeof value === "object" && value !== null && !Array.isArray(value)) {
          const withQueue = { ...value, queue: "q" };
          const j = attempt(() => parseJobBody(withQueue, limits));
          if (!(j instanceof CronwheelError)) checkJobSpec(j, limits);
          const e = attempt(() => parseEnqueueBody(withQueue, limits));
          if (!(e instanceof CronwheelError)) checkEnqueueSpec(e, limits);
        }
        attempt(() => parseTriggerBody(value, limits));
        attempt(() => parseBackfillBody(value, NOW));
        attempt(() => parseEnqueueBatchBody(value, limits));
        attempt(() => parseTime(value, "t"));
      }),
      { numRuns: 1000 },
    );
  });

  it("valid bodies with one field replaced by random JSON: a valid spec, or a CronwheelError", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(FULL_JOB, EVERY_JOB, AT_JOB),
        fc.constantFrom(...PATHS_JOB),
        replacement,
        (base, at, value) => {
          const body = mutate(base, at, value);
          const spec = attempt(() => parseJobBody(body, L));
          if (!(spec instanceof CronwheelError)) checkJobSpec(spec, L);
          else if (spec.details?.field !== undefined) expect(typeof spec.details.field).toBe("string");
        },
      ),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.constantFrom(...PATHS_ENQUEUE), replacement, (at, value) => {
        const body = mutate(FULL_ENQUEUE, at, value);
        const spec = attempt(() => parseEnqueueBody(body, L));
        if (!(spec instanceof CronwheelError)) checkEnqueueSpec(spec, L);
      }),
      { numRuns: 1000 },
    );
  });

  it("the error names the mutated field when the mutated field alone is wrong", () => {
    // Out-of-range integers at numeric paths always name that path.
    const numeric = ["priority", "jitterMs", "maxRuns", "timeoutMs", "leaseMs", "retry.maxAttempts", "misfire.graceMs", "concurrency.limit"];
    fc.assert(
      fc.property(fc.constantFrom(...numeric), fc.integer({ max: -1 }), (at, value) => {
        const err = attempt(() => parseJobBody(mutate(FULL_JOB, at, value), L));
        expect(err).toBeInstanceOf(CronwheelError);
        expect((err as CronwheelError).details?.field).toBe(at);
      }),
    );
  });

  it("in-range values round-trip", () => {
    fc.assert(
      fc.property(
        fc.record({
          priority: fc.integer({ min: 0, max: 9 }),
          jitterMs: fc.integer({ min: 0, max: BOUNDS.jitterMsMax }),
          every: fc.integer({ min: BOUNDS.everyMsMin, max: BOUNDS.everyMsMax }),
          timeoutMs: fc.integer({ min: BOUNDS.timeoutMsMin, max: BOUNDS.timeoutMsMax }),
          leaseMs: fc.integer({ min: BOUNDS.leaseMsMin, max: BOUNDS.leaseMsMax }),
          startAt: fc.integer({ min: 0, max: BOUNDS.timeMsMax - 1 }),
          maxAttempts: fc.integer({ min: 1, max: 100 }),
        }),
        (r) => {
          const spec = parseJobBody(
            {
              queue: "q",
              every: r.every,
              startAt: new Date(r.startAt).toISOString(),
              priority: r.priority,
              jitterMs: r.jitterMs,
              timeoutMs: r.timeoutMs,
              leaseMs: r.leaseMs,
              retry: { maxAttempts: r.maxAttempts },
            },
            L,
          );
          expect(spec.schedule).toEqual({
            trigger: { kind: "every", everyMs: r.every },
            anchorMs: r.startAt,
            startAtMs: r.startAt,
            endAtMs: null,
            jitterMs: r.jitterMs,
          });
          expect(spec).toMatchObject({ priority: r.priority, timeoutMs: r.timeoutMs, leaseMs: r.leaseMs, retry: { maxAttempts: r.maxAttempts } });
        },
      ),
    );
  });

  it("RFC 3339 with any offset agrees with Date for every instant in range", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: BOUNDS.timeMsMax }),
        fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }),
        (ms, offsetMin) => {
          const local = new Date(ms + offsetMin * 60_000);
          const iso = local.toISOString(); // "YYYY-MM-DDTHH:MM:SS.mmmZ" for years 0..9999
          if (!/^\d{4}-/.test(iso)) return;
          const sign = offsetMin < 0 ? "-" : "+";
          const abs = Math.abs(offsetMin);
          const off = `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
          expect(parseTime(iso.slice(0, -1) + off, "t")).toBe(ms);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
