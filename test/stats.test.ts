/**
 * `GET /v1/stats` and `cronwheel stats` on a real server: counts by state and group, reasons,
 * series, the ready backlog, the same figures after a kill -9 (rollups are written under the
 * history watermark: a replay neither loses nor double-counts them), and 400s that name the field.
 * (test/history-db.test.ts checks the rollups against a model of the rows.)
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { NonRetryableError, Worker } from "../src/client/index.js";
import { BIN, request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

const servers: ServerProcess[] = [];
const workers: Worker[] = [];
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close({ graceful: false })));
  await Promise.all(servers.map((s) => s.stop()));
});

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("stats", () => {
  it("count finished executions by state and group, with reasons, series and backlog, the same after kill -9", async () => {
    const dir = tempDir("stats");
    const args = ["--shards", "3"];
    let server = await startServer(dir, args);
    servers.push(server);
    const worker = new Worker({
      url: server.base,
      queues: ["work"],
      concurrency: 8,
      shutdownSignals: false,
      handler: async (ctx) => {
        const n = (ctx.payload as { n: number }).n;
        if (n % 4 === 0) throw new NonRetryableError(`bad ${n}`);
        await new Promise((r) => setTimeout(r, n % 3));
        return { n };
      },
    });
    worker.on("error", () => {});
    workers.push(worker);
    await worker.start();
    const batch = (queue: string, count: number) => ({ executions: Array.from({ length: count }, (_, n) => ({ queue, payload: { n } })) });
    expect((await request(server.base, "POST", "/v1/executions/batch", batch("work", 40))).status).toBe(200);
    expect((await request(server.base, "POST", "/v1/executions/batch", batch("idle", 7))).status).toBe(200);
    let stats: any;
    await until("40 finished executions in stats", async () => {
      stats = (await request(server.base, "GET", "/v1/stats?by=queue")).body;
      return stats.total?.count === 40;
    });
    await worker.close();
    expect(stats.total.byState).toEqual({ succeeded: 30, failed: 10, canceled: 0, skipped: 0 });
    expect(stats.total.latenessMs.p50).toBeGreaterThanOrEqual(0);
    expect(stats.total.runMs.p99).toBeGreaterThanOrEqual(0);
    expect(stats.groups.map((g: any) => [g.key, g.count])).toEqual([["work", 40]]);
    expect(stats.topReasons).toEqual([{ state: "failed", reason: "non-retryable", count: 10 }]);
    expect(stats.series.length).toBeGreaterThanOrEqual(24); // 25 unless it is now exactly on the hour: widened to whole hours
    expect(stats.series.length).toBeLessThanOrEqual(25);
    expect(stats.series[0].at).toMatch(/T\d\d:00:00.000Z$/);
    expect(stats.series.reduce((n: number, p: any) => n + p.count, 0)).toBe(40);
    expect(stats.backlog).toEqual([{ queue: "idle", ready: 7, oldestReadyAgeMs: expect.any(Number) }]);

    const byMinute = (await request(server.base, "GET", `/v1/stats?interval=1m&from=${Date.now() - 10 * 60_000}&by=job`)).body;
    expect(byMinute.series).toHaveLength(11); // widened to whole minutes
    expect(byMinute.groups.map((g: any) => [g.key, g.count])).toEqual([["(ad hoc)", 40]]);
    expect((await request(server.base, "GET", "/v1/stats?jobId=nosuchjob")).body.total.count).toBe(0);

    // kill -9, and the same figures from the same files.
    await server.kill9();
    server = await startServer(dir, args);
    servers.push(server);
    const after = (await request(server.base, "GET", "/v1/stats?by=queue")).body;
    expect([after.total, after.groups, after.topReasons]).toEqual([stats.total, stats.groups, stats.topReasons]);

    // Bad input names the field.
    const day = 86_400_000;
    for (const [query, field] of [
      ["interval=30s", "interval"],
      ["interval=soon", "interval"],
      ["by=week", "by"],
      [`from=${Date.now()}&to=${Date.now() - day}`, "to"],
      [`from=${Date.now() - 13 * day}&interval=1m`, "interval"],
      [`from=${Date.now() - 30 * day}&interval=15m`, "interval"],
      ["limit=5", "limit"],
    ]) {
      const res = await request(server.base, "GET", `/v1/stats?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.body.error).toMatchObject({ code: "invalid_argument", details: { field } });
    }

    const { stdout } = await promisify(execFile)(process.execPath, [BIN, "stats", "--by", "queue", "--url", server.base]);
    expect(stdout).toMatch(/FINISHED\s+SUCCEEDED\s+FAILED/);
    expect(stdout).toMatch(/^total\s+40\s+30\s+10\s+0\s+0/m);
    expect(stdout).toMatch(/^failed\s+non-retryable\s+10/m);
    expect(stdout).toMatch(/^idle\s+7\s/m);
  }, 90_000);

  it("show a job's counts and last run on GET /v1/jobs/{id}, as its executions say", async () => {
    const server = await startServer(tempDir("job-runs"), ["--shards", "2"]);
    servers.push(server);
    let n = 0;
    const worker = new Worker({
      url: server.base,
      queues: ["tick"],
      shutdownSignals: false,
      handler: async () => {
        if (++n % 2 === 0) throw new NonRetryableError("every other one");
      },
    });
    worker.on("error", () => {});
    workers.push(worker);
    await worker.start();
    expect((await request(server.base, "PUT", "/v1/jobs/ticker", { queue: "tick", every: "250ms" })).status).toBe(201);
    await until("six runs", async () => ((await request(server.base, "GET", "/v1/jobs/ticker")).body.counts?.succeeded ?? 0) >= 3);
    expect((await request(server.base, "POST", "/v1/jobs/ticker/pause")).status).toBe(200);
    await until("no execution left running", async () => (await request(server.base, "GET", "/v1/executions?jobId=ticker&state=running")).body.executions.length === 0 && (await request(server.base, "GET", "/v1/executions?jobId=ticker&state=ready")).body.executions.length === 0 && (await request(server.base, "GET", "/v1/executions?jobId=ticker&state=claimed")).body.executions.length === 0);
    const job = (await request(server.base, "GET", "/v1/jobs/ticker")).body;
    const executions = (await request(server.base, "GET", "/v1/executions?jobId=ticker&limit=1000")).body.executions;
    const ended = (state: string) => executions.filter((e: any) => e.state === state).length;
    expect(job.counts).toEqual({ succeeded: ended("succeeded"), failed: ended("failed"), canceled: ended("canceled"), skipped: ended("skipped") });
    const newest = executions.filter((e: any) => e.finishedAt).sort((a: any, b: any) => (a.finishedAt < b.finishedAt ? 1 : -1))[0];
    expect(job.lastRun).toMatchObject({ executionId: newest.id, state: newest.state, scheduledAt: newest.scheduledAt, finishedAt: newest.finishedAt });
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, "jobs", "get", "ticker", "--url", server.base]);
    expect(stdout).toMatch(new RegExp(`ended\\s+${job.counts.succeeded} succeeded, ${job.counts.failed} failed`));
    expect(stdout).toMatch(new RegExp(`last run\\s+${newest.state}`));
  }, 60_000);

  it("answers not_found when history is off", async () => {
    const server = await startServer(tempDir("stats-off"), ["--history", "off"]);
    servers.push(server);
    const res = await request(server.base, "GET", "/v1/stats");
    expect(res.status).toBe(404);
  });
});
