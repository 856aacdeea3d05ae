/**
 * The SDK's HTTP client against a real server process: every method, its typed results and its
 * errors (`CronwheelApiError` with the contract's code); then the retry rules against a stub HTTP
 * server that counts requests, a closed port and a server that never answers; then several URLs:
 * a dead node and a live one, a node that dies between requests, and a connection reset after the
 * request was sent (a POST without a key must not go to a second node).
 */
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Client, CronwheelApiError, jobToInput, type Execution, type Job } from "../src/client/index.js";
import { RawWorker } from "./support/raw-worker.js";
import { startServer, tempDir, type ServerProcess } from "./support/server-process.js";

let server: ServerProcess;
let authServer: ServerProcess;
let client: Client;

beforeAll(async () => {
  const dir = tempDir("client-auth");
  const tokens = path.join(dir, "tokens.json");
  fs.writeFileSync(
    tokens,
    JSON.stringify({
      tokens: [
        { token: "acme-client", tenant: "acme", role: "client" },
        { token: "acme-worker", tenant: "acme", role: "worker" },
      ],
    }),
  );
  [server, authServer] = await Promise.all([
    startServer(tempDir("client"), ["--shards", "2"]),
    startServer(path.join(dir, "data"), ["--shards", "1", "--tokens", tokens]),
  ]);
  client = new Client({ url: server.base });
});

afterAll(async () => {
  await Promise.all([server?.stop(), authServer?.stop()]);
});

/** The error a promise rejects with, asserted to be a CronwheelApiError. */
async function apiError(promise: Promise<unknown>): Promise<CronwheelApiError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(CronwheelApiError);
    return error as CronwheelApiError;
  }
  throw new Error("expected the call to fail");
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

describe("jobs", () => {
  it("creates, replaces with If-Match, and refuses a stale version with conflict", async () => {
    const first = await client.putJob("c-report", { queue: "reports", cron: "0 3 * * *", timezone: "Europe/Berlin", labels: { team: "bi" } });
    expect(first.created).toBe(true);
    expect(first.job).toMatchObject({ id: "c-report", queue: "reports", cron: "0 3 * * *", timezone: "Europe/Berlin", version: 1, state: "active" });
    expect(Date.parse(first.job.nextFireAt!)).toBeGreaterThan(Date.now());

    // Read-modify-write: the job as read, minus its cron trigger, plus an interval.
    const { cron: _cron, timezone: _tz, dst: _dst, ...rest } = jobToInput(first.job);
    const second = await client.putJob("c-report", { ...rest, every: "1h" }, { ifMatch: first.job.version });
    expect(second.created).toBe(false);
    expect(second.job.version).toBe(2);
    expect(second.job.every).toBe(3_600_000);
    expect(second.job.labels).toEqual({ team: "bi" });

    const stale = await apiError(client.putJob("c-report", { queue: "reports" }, { ifMatch: 1 }));
    expect(stale).toMatchObject({ code: "conflict", status: 409, name: "CronwheelApiError" });
    expect(stale.details?.currentVersion).toBe(2);
    expect(stale.attempts).toBe(1);

    expect((await client.getJob("c-report")).version).toBe(2);
  });

  it("answers not_found and invalid_argument with the server's details; ids are URL-encoded", async () => {
    expect(await apiError(client.getJob("c-missing"))).toMatchObject({ code: "not_found", status: 404 });
    const bad = await apiError(client.putJob("c-bad", { queue: "q", cron: "0 25 * * *" }));
    expect(bad).toMatchObject({ code: "invalid_argument", status: 400 });
    expect(bad.details?.field).toBe("cron");
    // A slash stays inside the id segment: the server sees the id "a/b" and refuses it.
    expect(await apiError(client.getJob("a/b"))).toMatchObject({ code: "invalid_argument" });
    // An invalid Date is refused before anything is sent.
    expect(await apiError(client.putJob("c-bad", { queue: "q", at: new Date("nonsense") }))).toMatchObject({ code: "invalid_argument", status: 0 });
  });

  it("lists a page at a time and iterates across pages, with queue and label filters", async () => {
    for (let i = 0; i < 5; i++) {
      await client.putJob(`c-page-${i}`, { queue: "paged", every: "1h", labels: { parity: i % 2 === 0 ? "even" : "odd" } });
    }
    const page1 = await client.listJobs({ queue: "paged", limit: 2 });
    expect(page1.jobs.map((j) => j.id)).toEqual(["c-page-0", "c-page-1"]);
    expect(typeof page1.nextCursor).toBe("string");
    const page2 = await client.listJobs({ queue: "paged", limit: 2, cursor: page1.nextCursor! });
    expect(page2.jobs.map((j) => j.id)).toEqual(["c-page-2", "c-page-3"]);

    const all = await collect(client.iterateJobs({ queue: "paged", limit: 2 }));
    expect(all.map((j) => j.id)).toEqual(["c-page-0", "c-page-1", "c-page-2", "c-page-3", "c-page-4"]);
    const even = await collect(client.iterateJobs({ queue: "paged", label: "parity=even" }));
    expect(even.map((j) => j.id)).toEqual(["c-page-0", "c-page-2", "c-page-4"]);
  });

  it("pauses, resumes, previews and backfills", async () => {
    await client.putJob("c-ten", { queue: "ticks", cron: "*/10 * * * *" });
    const paused = await client.pauseJob("c-ten");
    expect(paused.state).toBe("paused");
    expect(paused.nextFireAt).toBeNull();
    expect((await client.pauseJob("c-ten")).state).toBe("paused"); // idempotent
    expect((await client.resumeJob("c-ten")).state).toBe("active");

    const preview = await client.previewJob("c-ten", 3);
    expect(preview.fires).toHaveLength(3);
    expect(Date.parse(preview.fires[1]!.at) - Date.parse(preview.fires[0]!.at)).toBe(600_000);

    const now = Date.now();
    const result = await client.backfillJob("c-ten", { from: new Date(now - 3_600_000), to: now - 1_000 });
    expect(result.created + result.skipped).toBeGreaterThanOrEqual(5);
    expect(result.truncated).toBe(false);
    const again = await client.backfillJob("c-ten", { from: new Date(now - 3_600_000).toISOString(), to: new Date(now - 1_000) });
    expect(again.created).toBe(0); // deterministic fire ids: nothing new
  });

  it("triggers with a payload and an idempotency key; deletes", async () => {
    await client.putJob("c-trig", { queue: "manual", payload: { from: "job" } });
    const own = await client.triggerJob("c-trig");
    expect(own.execution.payload).toEqual({ from: "job" });
    const a = await client.triggerJob("c-trig", { payload: { n: 1 }, idempotencyKey: "trig-1" });
    const b = await client.triggerJob("c-trig", { payload: { n: 1 }, idempotencyKey: "trig-1" });
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.execution.id).toBe(a.execution.id);
    // The same key for another payload is another request: refused, naming the first execution.
    expect(await apiError(client.triggerJob("c-trig", { payload: { n: 2 }, idempotencyKey: "trig-1" }))).toMatchObject({ code: "conflict", details: { executionId: a.execution.id } });
    expect(a.execution).toMatchObject({ jobId: "c-trig", queue: "manual", payload: { n: 1 } });

    const deleted = await client.deleteJob("c-trig", { cancelRunning: true });
    expect(deleted).toMatchObject({ id: "c-trig", deleted: true });
    expect(await apiError(client.getJob("c-trig"))).toMatchObject({ code: "not_found" });
    expect(await apiError(client.resumeJob("c-trig"))).toMatchObject({ code: "conflict" });
  });
});

describe("executions", () => {
  it("enqueues, deduplicates by idempotency key, schedules for later", async () => {
    const a = await client.enqueue({ queue: "mail", payload: { to: "a" }, idempotencyKey: "mail-a" });
    const b = await client.enqueue({ queue: "mail", payload: { to: "a" }, idempotencyKey: "mail-a" });
    expect(a.created).toBe(true);
    expect(b.created).toBe(false);
    expect(b.execution.id).toBe(a.execution.id);
    expect(b.execution.payload).toEqual({ to: "a" });
    expect(await apiError(client.enqueue({ queue: "mail", payload: { to: "changed" }, idempotencyKey: "mail-a" }))).toMatchObject({ code: "conflict", details: { executionId: a.execution.id } });
    expect(a.execution.state).toBe("ready");

    const runAt = new Date(Date.now() + 3_600_000);
    const later = await client.enqueue({ queue: "mail", runAt });
    expect(later.execution.state).toBe("scheduled");
    expect(later.execution.scheduledAt).toBe(runAt.toISOString());
    const delayed = await client.enqueue({ queue: "mail", delayMs: 60_000 });
    expect(delayed.execution.state).toBe("scheduled");

    const got = await client.getExecution(a.execution.id);
    expect(got).toMatchObject({ id: a.execution.id, queue: "mail", idempotencyKey: "mail-a", attempt: 0, attempts: [] });
  });

  it("enqueues a batch: one result per item, in order, a bad item as its error", async () => {
    const results = await client.enqueueBatch([
      { queue: "batch", payload: 1 },
      { queue: "not a queue!", payload: 2 },
      { queue: "batch", payload: 3, runAt: Date.now() + 60_000 },
    ]);
    expect(results).toHaveLength(3);
    const [r0, r1, r2] = results;
    expect(r0).not.toBeInstanceOf(CronwheelApiError);
    expect((r0 as { execution: Execution; created: boolean }).created).toBe(true);
    expect((r0 as { execution: Execution }).execution.payload).toBe(1);
    expect(r1).toBeInstanceOf(CronwheelApiError);
    expect(r1).toMatchObject({ code: "invalid_argument", status: 400 });
    expect((r1 as CronwheelApiError).details).toMatchObject({ index: 1, field: "queue" });
    expect((r2 as { execution: Execution }).execution.state).toBe("scheduled");
  });

  it("lists history newest first; filters by job, queue, state and time", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await client.enqueue({ queue: "history", payload: i })).execution.id);
    const page = await client.listExecutions({ queue: "history", limit: 2 });
    expect(page.executions.map((e) => e.id)).toEqual([ids[4], ids[3]]);
    expect(page.nextCursor).not.toBeNull();
    expect((await client.listExecutions({ queue: "history" })).executions.map((e) => e.id)).toEqual([...ids].reverse());

    expect((await client.listExecutions({ queue: "history", state: "scheduled" })).executions).toEqual([]);
    const recent = await client.listExecutions({ queue: "history", from: new Date(Date.now() - 60_000), to: Date.now() + 60_000 });
    expect(recent.executions).toHaveLength(5);

    await client.putJob("c-hist", { queue: "history-job" });
    const t = await client.triggerJob("c-hist");
    const byJob = await client.listExecutions({ jobId: "c-hist" });
    expect(byJob.executions.map((e) => e.id)).toEqual([t.execution.id]);
  });

  it("iterates history across pages by cursor", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await client.enqueue({ queue: "history-paged", payload: i })).execution.id);
    const all = await collect(client.iterateExecutions({ queue: "history-paged", limit: 2 }));
    expect(all.map((e) => e.id)).toEqual([...ids].reverse());
  });

  it("cancels (execution ids with ':' in the path), and refuses a second cancel with conflict", async () => {
    await client.putJob("c-cancel", { queue: "cancel-q" });
    const { execution } = await client.triggerJob("c-cancel");
    expect(execution.id).toContain(":");
    const canceled = await client.cancelExecution(execution.id);
    expect(canceled).toMatchObject({ id: execution.id, state: "canceled" });
    expect(await apiError(client.cancelExecution(execution.id))).toMatchObject({ code: "conflict", status: 409 });
    expect(await apiError(client.getExecution("xffff-nope"))).toMatchObject({ code: "not_found", status: 404 });
  });

  it("lists dead letters and replays one as a new execution", async () => {
    expect(await client.listDeadLetters({ queue: "doomed", limit: 10 })).toEqual({ executions: [], nextCursor: null });
    // A worker (the raw protocol; the SDK's Worker comes separately) fails two executions for good.
    const ids = [(await client.enqueue({ queue: "doomed", payload: { n: 1 } })).execution.id, (await client.enqueue({ queue: "doomed", payload: { n: 2 } })).execution.id];
    const w = await RawWorker.connect(server.base, "w-doomed", ["doomed"]);
    try {
      w.send({ t: "credit", n: 2 });
      for (const id of ids) {
        const a = await w.assignment(id);
        w.send({ t: "failed", id, fence: a.fence, error: { message: "bad input" }, retryable: false });
        await w.next((m) => m.t === "ack" && m.of === "failed" && m.fence === a.fence);
      }
    } finally {
      w.close();
    }
    // The ack can reach the worker a moment before a read sees the failure: poll briefly.
    let letters = await client.listDeadLetters({ queue: "doomed" });
    for (let i = 0; i < 100 && letters.executions.length < ids.length; i++) {
      await new Promise((r) => setTimeout(r, 20));
      letters = await client.listDeadLetters({ queue: "doomed" });
    }
    expect(letters.executions.map((e) => e.id).sort()).toEqual([...ids].sort());
    expect(letters.executions[0]).toMatchObject({ state: "failed", attempt: 1 });
    expect(letters.executions[0]!.attempts[0]).toMatchObject({ workerId: "w-doomed", outcome: "failed", error: { message: "bad input" } });
    expect((await collect(client.iterateDeadLetters({ queue: "doomed", limit: 10 }))).map((e) => e.id).sort()).toEqual([...ids].sort());

    const replayed = await client.replayExecution(ids[0]!);
    expect(replayed).toMatchObject({ state: "ready", attempt: 0, queue: "doomed", payload: { n: 1 } });
    expect(replayed.id).not.toBe(ids[0]);
    // Only a dead letter can be replayed: the new execution is not one.
    expect(await apiError(client.replayExecution(replayed.id))).toMatchObject({ code: "conflict", status: 409 });
  });
});

describe("cluster and operations", () => {
  it("reads the cluster view, health and readiness", async () => {
    const view = await client.cluster();
    expect(view.nodes).toHaveLength(1);
    expect(view.shards).toHaveLength(2);
    expect(view.shards[0]).toMatchObject({ id: 0, leader: view.nodes[0]!.id, epoch: 1 });
    expect(view.shards[0]!.range[0]).toBe(0);
    expect(await client.health()).toEqual({ status: "ok" });
    expect(await client.ready()).toEqual({ ready: true });
  });
});

describe("auth", () => {
  it("sends the bearer token; no or unknown token is unauthenticated, a worker token may not write", async () => {
    expect(await apiError(new Client({ url: authServer.base }).listJobs())).toMatchObject({ code: "unauthenticated", status: 401 });
    expect(await apiError(new Client({ url: authServer.base, token: "wrong" }).getJob("x"))).toMatchObject({ code: "unauthenticated" });
    const worker = new Client({ url: authServer.base, token: "acme-worker" });
    expect(await apiError(worker.putJob("x", { queue: "q" }))).toMatchObject({ code: "permission_denied", status: 403 });
    const acme = new Client({ url: `${authServer.base}/`, token: "acme-client" });
    expect((await acme.putJob("x", { queue: "q" })).created).toBe(true);
    expect((await acme.listJobs()).jobs.map((j: Job) => j.id)).toEqual(["x"]);
  });
});

// ---------------------------------------------------------------------------------------------
// retries

interface Stub {
  url: string;
  hits: Array<{ method: string; url: string }>;
  close(): Promise<void>;
}

/** An HTTP server that answers each request with the next of `answers` (the last one repeats). */
async function stub(answers: Array<{ status: number; body: unknown; headers?: Record<string, string> } | "hang">): Promise<Stub> {
  const hits: Stub["hits"] = [];
  const srv = http.createServer((req, res) => {
    const answer = answers[Math.min(hits.length, answers.length - 1)]!;
    hits.push({ method: req.method!, url: req.url! });
    req.resume();
    if (answer === "hang") return;
    res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
    res.end(JSON.stringify(answer.body));
  });
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

const unavailable = { status: 503, body: { error: { code: "unavailable", message: "shard 3 has no leader" } }, headers: { "retry-after": "0" } };

async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

describe("retries", () => {
  it("retries an idempotent request through 503 and 429 answers, honoring Retry-After", async () => {
    const s = await stub([
      unavailable,
      { status: 429, body: { error: { code: "resource_exhausted", message: "slow down" } }, headers: { "retry-after": "0" } },
      { status: 200, body: { jobs: [], nextCursor: null } },
    ]);
    try {
      const c = new Client({ url: s.url, retry: { attempts: 3, baseDelayMs: 1 } });
      expect(await c.listJobs({ queue: "q" })).toEqual({ jobs: [], nextCursor: null });
      expect(s.hits.map((h) => h.url)).toEqual(["/v1/jobs?queue=q", "/v1/jobs?queue=q", "/v1/jobs?queue=q"]);
    } finally {
      await s.close();
    }
  });

  it("gives up after the configured attempts with the last error; caps a long Retry-After", async () => {
    const s = await stub([{ ...unavailable, headers: { "retry-after": "3600" } }]);
    try {
      const c = new Client({ url: s.url, retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 20 } });
      const started = Date.now();
      const error = await apiError(c.getJob("j"));
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(error).toMatchObject({ code: "unavailable", status: 503, retryAfterSec: 3600, attempts: 3 });
      expect(s.hits).toHaveLength(3);
    } finally {
      await s.close();
    }
  });

  it("does not retry a POST without an idempotency key; retries one with a key; never retries other errors", async () => {
    const s = await stub([unavailable]);
    try {
      const c = new Client({ url: s.url, retry: { attempts: 3, baseDelayMs: 1 } });
      expect(await apiError(c.enqueue({ queue: "q" }))).toMatchObject({ code: "unavailable", attempts: 1 });
      expect(s.hits).toHaveLength(1);
      expect(await apiError(c.triggerJob("j"))).toMatchObject({ attempts: 1 });
      expect(await apiError(c.cancelExecution("x0000-a"))).toMatchObject({ attempts: 1 });
      expect(await apiError(c.enqueueBatch([{ queue: "q", idempotencyKey: "a" }, { queue: "q" }]))).toMatchObject({ attempts: 1 });
      expect(s.hits).toHaveLength(4);

      expect(await apiError(c.enqueue({ queue: "q", idempotencyKey: "k" }))).toMatchObject({ attempts: 3 });
      expect(await apiError(c.triggerJob("j", { idempotencyKey: "k" }))).toMatchObject({ attempts: 3 });
      expect(await apiError(c.deleteJob("j"))).toMatchObject({ attempts: 3 });
      expect(await apiError(c.putJob("j", { queue: "q" }))).toMatchObject({ attempts: 3 });
      expect(s.hits).toHaveLength(16);
    } finally {
      await s.close();
    }
    const conflict = await stub([{ status: 409, body: { error: { code: "conflict", message: "no" } } }]);
    try {
      const c = new Client({ url: conflict.url, retry: { attempts: 3, baseDelayMs: 1 } });
      expect(await apiError(c.getJob("j"))).toMatchObject({ code: "conflict", attempts: 1 });
      expect(conflict.hits).toHaveLength(1);
    } finally {
      await conflict.close();
    }
  });

  it("maps a closed port to unavailable after N attempts (GET) or one (POST without key)", async () => {
    const port = await closedPort();
    const c = new Client({ url: `http://127.0.0.1:${port}`, retry: { attempts: 4, baseDelayMs: 5 } });
    const get = await apiError(c.getJob("j"));
    expect(get).toMatchObject({ code: "unavailable", status: 0, attempts: 4 });
    expect(get.message).toContain("ECONNREFUSED");
    expect(await apiError(c.enqueue({ queue: "q" }))).toMatchObject({ code: "unavailable", status: 0, attempts: 1 });
  });

  it("times out a request that gets no answer, as unavailable", async () => {
    const s = await stub(["hang"]);
    try {
      const c = new Client({ url: s.url, timeoutMs: 150, retry: { attempts: 2, baseDelayMs: 1 } });
      const error = await apiError(c.getJob("j"));
      expect(error).toMatchObject({ code: "unavailable", status: 0, attempts: 2 });
      expect(error.message).toContain("no answer within 150 ms");
      expect(s.hits).toHaveLength(2);
    } finally {
      await s.close();
    }
  });

  it("maps a non-contract error body by status", async () => {
    const s = await stub([{ status: 502, body: "<html>bad gateway</html>" }]);
    try {
      const error = await apiError(new Client({ url: s.url, retry: { attempts: 1 } }).getJob("j"));
      expect(error).toMatchObject({ code: "unavailable", status: 502 });
    } finally {
      await s.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// several URLs

describe("several node URLs", () => {
  /** A server that was started and stopped: its port refuses connections now. */
  let dead: ServerProcess;
  /** A second live standalone server. */
  let other: ServerProcess;

  beforeAll(async () => {
    [dead, other] = await Promise.all([startServer(tempDir("client-dead"), ["--shards", "1"]), startServer(tempDir("client-other"), ["--shards", "1"])]);
    await dead.stop();
  });

  afterAll(async () => {
    await other?.stop();
  });

  it("given a dead node first, every request reaches the live one — a POST without a key too (a refused connection sent nothing)", async () => {
    const c = new Client({ url: [dead.base, server.base], retry: { attempts: 1 } });
    try {
      expect(c.url).toBe(dead.base);
      expect(c.urls).toEqual([dead.base, server.base]);
      expect((await c.putJob("multi-url", { queue: "mu" })).created).toBe(true);
      expect((await c.getJob("multi-url")).queue).toBe("mu");
      const { execution, created } = await c.enqueue({ queue: "mu", payload: { n: 1 } });
      expect(created).toBe(true);
      expect((await client.getExecution(execution.id)).payload).toEqual({ n: 1 });
      expect((await c.cancelExecution(execution.id)).state).toBe("canceled");
      const [item] = await c.enqueueBatch([{ queue: "mu" }]);
      expect(item).not.toBeInstanceOf(CronwheelApiError);
      expect((await c.cluster()).nodes).toHaveLength(1);
    } finally {
      c.close();
    }
  });

  it("stays on the node that answered; when it dies, moves on to the next", async () => {
    const victim = await startServer(tempDir("client-victim"), ["--shards", "1"]);
    const c = new Client({ url: [victim.base, other.base], retry: { attempts: 1 } });
    try {
      await c.putJob("where", { queue: "on-victim" });
      expect((await c.listJobs()).jobs.map((j) => j.id)).toEqual(["where"]); // the victim's jobs
      await victim.stop();
      await new Promise((r) => setTimeout(r, 100)); // its kept-alive socket is closed by now
      expect((await c.listJobs()).jobs.map((j) => j.id)).toEqual([]); // the other node's
      const { created } = await c.enqueue({ queue: "after-failover" }); // refused first: never sent, so moved on
      expect(created).toBe(true);
    } finally {
      c.close();
      if (victim.child.exitCode === null) await victim.stop();
    }
  });

  it("a request that may have reached a node (reset after it was sent) moves on only when it is idempotent", async () => {
    // Accepts, reads the request, and drops the connection without an answer.
    const received: string[] = [];
    const resetter = net.createServer((socket) => socket.once("data", (d) => (received.push(d.toString().split("\r\n")[0]!), socket.destroy())));
    await new Promise<void>((resolve) => resetter.listen(0, "127.0.0.1", resolve));
    const resetUrl = `http://127.0.0.1:${(resetter.address() as net.AddressInfo).port}`;
    const c = new Client({ url: [resetUrl, server.base], retry: { attempts: 2, baseDelayMs: 1 } });
    try {
      const error = await apiError(c.enqueue({ queue: "maybe-sent" }));
      expect(error).toMatchObject({ code: "unavailable", status: 0, attempts: 1 });
      expect(received).toEqual(["POST /v1/executions HTTP/1.1"]);
      expect((await client.listExecutions({ queue: "maybe-sent" })).executions).toEqual([]); // never sent twice
      // Idempotent: moves on to the live node within the same attempt.
      expect((await c.enqueue({ queue: "maybe-sent", idempotencyKey: "k-1" })).created).toBe(true);
      expect((await c.getJob("multi-url")).id).toBe("multi-url");
    } finally {
      c.close();
      await new Promise<void>((resolve) => resetter.close(() => resolve()));
    }
  });

  it("every node unreachable: unavailable after the configured attempts, each trying every URL", async () => {
    const port = await closedPort();
    const c = new Client({ url: [dead.base, `http://127.0.0.1:${port}`], retry: { attempts: 2, baseDelayMs: 1 } });
    const error = await apiError(c.getJob("j"));
    expect(error).toMatchObject({ code: "unavailable", status: 0, attempts: 2 });
    expect(await apiError(c.enqueue({ queue: "q" }))).toMatchObject({ code: "unavailable", status: 0, attempts: 1 });
    expect(() => new Client({ url: [] })).toThrow(TypeError);
    expect(() => new Client({ url: [server.base, "ftp://x"] })).toThrow(TypeError);
  });
});
