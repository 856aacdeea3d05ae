/**
 * The HTTP API against a real server process: the contract's statuses and bodies, and the
 * promise that bad input gets a clear error, never a 5xx or a crash.
 */
import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

let server: ServerProcess;
const call = (method: string, path: string, body?: unknown, headers?: Record<string, string>) => request(server.base, method, path, body, headers);

beforeAll(async () => {
  server = await startServer(tempDir("api"), ["--shards", "4"]);
});

afterAll(async () => {
  await server?.stop();
});

function expectError(res: { status: number; body: any }, status: number, code: string): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
  expect(typeof res.body.error.message).toBe("string");
}

describe("jobs", () => {
  it("creates (201), replaces (200), reads, lists, pauses, resumes and deletes a job", async () => {
    const created = await call("PUT", "/v1/jobs/report-1", { queue: "reports", cron: "0 0 3 * * *", timezone: "Europe/Berlin", labels: { team: "bi" } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id: "report-1", queue: "reports", version: 1, state: "active", timezone: "Europe/Berlin" });
    expect(Date.parse(created.body.nextFireAt)).toBeGreaterThan(Date.now());

    const replaced = await call("PUT", "/v1/jobs/report-1", { queue: "reports", every: "1h" }, { "if-match": "1" });
    expect(replaced.status).toBe(200);
    expect(replaced.body.version).toBe(2);
    expectError(await call("PUT", "/v1/jobs/report-1", { queue: "reports" }, { "if-match": "1" }), 409, "conflict");

    expect((await call("GET", "/v1/jobs/report-1")).body.every).toBe(3_600_000);
    const list = await call("GET", "/v1/jobs?queue=reports&limit=10");
    expect(list.body.jobs.map((j: { id: string }) => j.id)).toContain("report-1");

    expect((await call("POST", "/v1/jobs/report-1/pause")).body.state).toBe("paused");
    expect((await call("POST", "/v1/jobs/report-1/resume")).body.state).toBe("active");
    expect((await call("DELETE", "/v1/jobs/report-1")).status).toBe(200);
    expectError(await call("GET", "/v1/jobs/report-1"), 404, "not_found");
    expectError(await call("POST", "/v1/jobs/report-1/resume"), 409, "conflict");
  });

  it("pages through jobs with a cursor", async () => {
    for (let i = 0; i < 25; i++) expect((await call("PUT", `/v1/jobs/page-${String(i).padStart(2, "0")}`, { queue: "paging" })).status).toBe(201);
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: any = await call("GET", `/v1/jobs?queue=paging&limit=10${cursor ? `&cursor=${cursor}` : ""}`);
      seen.push(...res.body.jobs.map((j: { id: string }) => j.id));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...seen].sort());
    expect(seen).toHaveLength(25);
  });

  it("fires a seconds cron: executions reach ready, by their deterministic ids", async () => {
    await call("PUT", "/v1/jobs/tick", { queue: "fast", cron: "* * * * * *" });
    await new Promise((r) => setTimeout(r, 2_500));
    const res = await call("GET", "/v1/executions?jobId=tick&limit=10");
    expect(res.body.executions.length).toBeGreaterThanOrEqual(2);
    for (const e of res.body.executions) {
      expect(e.id).toBe(`tick:${Date.parse(e.scheduledAt)}`);
      expect(e.state).toBe("ready");
    }
    const one = await call("GET", `/v1/executions/${encodeURIComponent(res.body.executions[0].id)}`);
    expect(one.body.jobId).toBe("tick");
    await call("DELETE", "/v1/jobs/tick");
  });

  it("triggers, previews and backfills", async () => {
    const now = Date.now();
    await call("PUT", "/v1/jobs/manual", { queue: "m", every: "1m", payload: { a: 1 } });
    const t = await call("POST", "/v1/jobs/manual/trigger", { payload: { b: 2 }, idempotencyKey: "once" });
    expect(t.status).toBe(201);
    expect(t.body).toMatchObject({ jobId: "manual", state: "ready", payload: { b: 2 } });
    const repeated = await call("POST", "/v1/jobs/manual/trigger", { payload: { b: 2 }, idempotencyKey: "once" });
    expect(repeated.status).toBe(200);
    expect(repeated.body.id).toBe(t.body.id);
    // Without the payload it asks for another execution (the job's payload): 409, naming the first.
    const other = await call("POST", "/v1/jobs/manual/trigger", { idempotencyKey: "once" });
    expect(other.status).toBe(409);
    expect(other.body.error.details).toEqual({ executionId: t.body.id });

    const preview = await call("GET", "/v1/jobs/manual/preview?count=3");
    expect(preview.body.fires).toHaveLength(3);

    // An interval's schedule begins at its anchor (creation here): nothing to backfill before it.
    expect((await call("POST", "/v1/jobs/manual/backfill", { from: now - 10 * 60_000, to: now })).body.created).toBe(0);
    await call("PUT", "/v1/jobs/minutely", { queue: "m", cron: "* * * * *" });
    const backfill = await call("POST", "/v1/jobs/minutely/backfill", { from: now - 10 * 60_000, to: now });
    expect(backfill.status).toBe(200);
    expect(backfill.body).toMatchObject({ skipped: 0, truncated: false });
    expect(backfill.body.created).toBeGreaterThanOrEqual(9);
    const again = await call("POST", "/v1/jobs/minutely/backfill", { from: now - 10 * 60_000, to: now });
    expect(again.body).toMatchObject({ created: 0, existing: backfill.body.created });
  });
});

describe("executions", () => {
  it("enqueues now, later and idempotently; cancels; batches", async () => {
    const now = await call("POST", "/v1/executions", { queue: "emails", payload: { to: "a@b.c" } });
    expect(now.status).toBe(201);
    expect(now.body.state).toBe("ready");
    const later = await call("POST", "/v1/executions", { queue: "emails", delayMs: 60_000 });
    expect(later.body.state).toBe("scheduled");
    const k1 = await call("POST", "/v1/executions", { queue: "emails", idempotencyKey: "order-7" });
    const k2 = await call("POST", "/v1/executions", { queue: "emails", idempotencyKey: "order-7" });
    expect([k1.status, k2.status]).toEqual([201, 200]);
    expect(k2.body.id).toBe(k1.body.id);

    const canceled = await call("POST", `/v1/executions/${later.body.id}/cancel`);
    expect(canceled.body.state).toBe("canceled");
    expectError(await call("POST", `/v1/executions/${later.body.id}/cancel`), 409, "conflict");
    expect((await call("GET", `/v1/executions/${later.body.id}`)).body.state).toBe("canceled");

    const batch = await call("POST", "/v1/executions/batch", { executions: [{ queue: "b" }, { queue: "bad queue!" }, { queue: "b", priority: 9 }] });
    expect(batch.status).toBe(200);
    expect(batch.body.results.map((r: { status: number }) => r.status)).toEqual([201, 400, 201]);
    expect(batch.body.results[1].error.code).toBe("invalid_argument");
  });
});

describe("operations", () => {
  it("serves health, readiness, cluster view and Prometheus metrics", async () => {
    expect((await call("GET", "/healthz")).status).toBe(200);
    expect((await call("GET", "/readyz")).body).toEqual({ ready: true });
    const cluster = await call("GET", "/v1/cluster");
    expect(cluster.body.shards).toHaveLength(4);
    expect(cluster.body.shards.map((s: { range: number[] }) => s.range)).toEqual([[0, 16383], [16384, 32767], [32768, 49151], [49152, 65535]]);
    await call("POST", "/v1/executions", { queue: "metered" });
    const res = await fetch(`${server.base}/metrics`);
    const text = await res.text();
    for (const name of [
      "cronwheel_fire_lateness_seconds_bucket",
      'cronwheel_ready_depth{queue="metered"}',
      'cronwheel_oldest_ready_age_seconds{queue="metered"}',
      "cronwheel_executions_finished_total",
      "cronwheel_wal_batch_records_bucket",
      "cronwheel_wal_fsync_seconds_bucket",
    ]) {
      expect(text).toContain(name);
    }
  });
});

describe("time", () => {
  it("a step of the node's clock is seen within a second: a job due sooner by it fires then, not on the old timer", async () => {
    const dir = tempDir("api-clock");
    const offsetFile = path.join(dir, "clock-offset");
    fs.writeFileSync(offsetFile, "0");
    const node = await startServer(path.join(dir, "data"), ["--shards", "1"], { CRONWHEEL_CLOCK_OFFSET_FILE: offsetFile });
    try {
      expect((await request(node.base, "PUT", "/v1/jobs/stepped", { queue: "stepped", every: "1m" })).status).toBe(201);
      await new Promise((r) => setTimeout(r, 300)); // the shard's timer is armed for the fire a minute out
      fs.writeFileSync(offsetFile, "57000"); // the clock steps 57 s forward: the fire is 3 s away now
      const deadline = Date.now() + 8_000;
      let fired = 0;
      while (fired === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        fired = ((await request(node.base, "GET", "/v1/executions?jobId=stepped")).body as { executions: unknown[] }).executions.length;
      }
      expect(fired).toBe(1);
    } finally {
      await node.stop();
    }
  }, 20_000);
});

describe("bad input", () => {
  it("answers the contract's errors", async () => {
    expectError(await call("PUT", "/v1/jobs/x", "{not json"), 400, "invalid_argument");
    expectError(await call("PUT", "/v1/jobs/x", { queue: "q", quue: 1 }), 400, "invalid_argument");
    const badCron = await call("PUT", "/v1/jobs/x", { queue: "q", cron: "0 25 * * *" });
    expectError(badCron, 400, "invalid_argument");
    expect(badCron.body.error.message).toMatch(/cron/);
    expectError(await call("PUT", "/v1/jobs/x", { queue: "q", cron: "* * * * *", timezone: "Mars/Base" }), 400, "invalid_argument");
    expectError(await call("PUT", "/v1/jobs/x", { queue: "q", payload: "x".repeat(300_000) }), 413, "payload_too_large");
    expectError(await call("PUT", `/v1/jobs/${"a".repeat(300)}`, { queue: "q" }), 400, "invalid_argument");
    expectError(await call("GET", "/v1/executions/nope"), 404, "not_found");
    expectError(await call("GET", "/v1/nothing-here"), 404, "not_found");
    expectError(await call("GET", "/v1/jobs?bogus=1"), 400, "invalid_argument");
  });

  it("never answers 5xx or crashes, whatever the body (fast-check)", async () => {
    const paths = ["/v1/jobs/fuzz", "/v1/executions", "/v1/executions/batch", "/v1/jobs/fuzz/trigger", "/v1/jobs/fuzz/backfill"];
    const validJob = { queue: "q", cron: "*/5 * * * * *", retry: { maxAttempts: 2 }, concurrency: { limit: 1, overlap: "skip" } };
    const bodyArb = fc.oneof(
      fc.jsonValue(),
      fc.string(),
      fc.record({ queue: fc.oneof(fc.string(), fc.jsonValue()), cron: fc.string(), every: fc.jsonValue(), at: fc.jsonValue(), timezone: fc.string() }, { requiredKeys: [] }),
      fc.tuple(fc.constantFrom(...Object.keys(validJob)), fc.jsonValue()).map(([k, v]) => ({ ...validJob, [k]: v })),
      fc.record({ executions: fc.array(fc.jsonValue(), { maxLength: 5 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), fc.constantFrom("PUT", "POST"), bodyArb, async (path, method, body) => {
        const res = await call(method, path, typeof body === "string" ? body : JSON.stringify(body));
        expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
        if (res.status >= 400) expect(typeof res.body.error.code).toBe("string");
      }),
      { numRuns: 300 },
    );
    expect((await call("GET", "/healthz")).status).toBe(200);
  });
});
