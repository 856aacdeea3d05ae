/**
 * The worker SDK (src/client/worker.ts) against a real server process: executions are created and
 * checked over HTTP, the SDK's Worker runs them over `/v1/workers`. Throughput with stored
 * results, the concurrency bound, retries and dead letters, cancel reaching the handler's signal,
 * heartbeats keeping a short lease, graceful and signal-driven shutdown, a socket killed under a
 * running handler, and a refused hello.
 */
import fs from "node:fs";
import path from "node:path";
import { pack, unpack } from "msgpackr";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket as ServerSocket } from "ws";
import type { WorkerMessage } from "../src/gateway/protocol.js";
import { ExecutionAbortedError, NonRetryableError, Worker, type ExecutionContext, type WorkerOptions } from "../src/client/worker.js";
import { request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

let server: ServerProcess;
let authServer: ServerProcess;
const workers: Worker[] = [];

const call = (method: string, p: string, body?: unknown) => request(server.base, method, p, body);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function enqueue(body: Record<string, unknown>): Promise<string> {
  const res = await call("POST", "/v1/executions", body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

const getExecution = async (id: string) => (await call("GET", `/v1/executions/${encodeURIComponent(id)}`)).body;

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

async function waitForState(id: string, state: string, timeoutMs = 10_000) {
  return waitFor(`${id} to be ${state}`, async () => {
    const e = await getExecution(id);
    return e.state === state ? e : undefined;
  }, timeoutMs);
}

function newWorker(opts: Partial<WorkerOptions> & Pick<WorkerOptions, "queues" | "handler">): Worker {
  const w = new Worker({ url: server.base, shutdownSignals: false, reconnect: { initialMs: 20, maxMs: 200 }, ...opts });
  w.on("error", () => {}); // asserted where it matters
  workers.push(w);
  return w;
}

beforeAll(async () => {
  const dir = tempDir("worker-sdk-auth");
  const tokens = path.join(dir, "tokens.json");
  fs.writeFileSync(tokens, JSON.stringify({ tokens: [{ token: "client-token-1", tenant: "acme", role: "client" }, { token: "worker-token-1", tenant: "acme", role: "worker" }] }));
  [server, authServer] = await Promise.all([startServer(tempDir("worker-sdk"), ["--shards", "2"]), startServer(path.join(dir, "data"), ["--tokens", tokens])]);
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close({ graceful: false })));
});

afterAll(async () => {
  await Promise.all([server?.stop(), authServer?.stop()]);
});

describe("Worker SDK", () => {
  it("processes 200 executions: all succeed with their results stored", async () => {
    const ids = await Promise.all(Array.from({ length: 200 }, (_, n) => enqueue({ queue: "bulk", payload: { n } })));
    const seen = new Set<string>();
    const w = newWorker({
      queues: ["bulk"],
      concurrency: 16,
      handler: async (ctx) => {
        seen.add(ctx.id);
        await sleep(Math.random() * 5);
        return { double: (ctx.payload as { n: number }).n * 2, fence: ctx.fence };
      },
    });
    let acked = 0;
    w.on("completed", (c: { outcome: string }) => c.outcome === "succeeded" && acked++);
    await w.start();
    await waitFor("200 acked reports", () => acked === 200, 20_000);
    expect(seen.size).toBe(200);
    const executions = await Promise.all(ids.map(getExecution));
    executions.forEach((e, n) => {
      expect(e.state).toBe("succeeded");
      expect(e.attempt).toBe(1);
      expect(e.result.double).toBe(n * 2);
    });
    expect(w.inFlight).toBe(0);
  });

  it("never runs more handlers than its concurrency", async () => {
    let now = 0;
    let max = 0;
    const w = newWorker({
      queues: ["bounded"],
      concurrency: 3,
      handler: async () => {
        max = Math.max(max, ++now);
        expect(now).toBeLessThanOrEqual(3);
        await sleep(30);
        now--;
      },
    });
    await w.start();
    const ids = await Promise.all(Array.from({ length: 30 }, () => enqueue({ queue: "bounded" })));
    for (const id of ids) await waitForState(id, "succeeded");
    expect(max).toBe(3);
  });

  it("with prefetch, holds extra executions claimed but never runs more handlers than its concurrency", async () => {
    let now = 0;
    let max = 0;
    const w = newWorker({
      queues: ["prefetched"],
      concurrency: 2,
      prefetch: 3,
      handler: async () => {
        max = Math.max(max, ++now);
        expect(now).toBeLessThanOrEqual(2);
        await sleep(30);
        now--;
      },
    });
    const ids = await Promise.all(Array.from({ length: 20 }, () => enqueue({ queue: "prefetched" })));
    await w.start();
    await sleep(15);
    // Two run; three more are already claimed for this worker, waiting for a slot.
    const states = await Promise.all(ids.map(async (id) => (await request(server.base, "GET", `/v1/executions/${id}`)).body.state));
    expect(states.filter((s) => s === "claimed" || s === "running").length).toBe(5);
    for (const id of ids) await waitForState(id, "succeeded");
    expect(max).toBe(2);
  });

  it("a throwing handler is retried per the execution's policy; NonRetryableError dead-letters at once", async () => {
    const retry = { maxAttempts: 3, backoff: { type: "fixed", initialMs: 50, maxMs: 50 } };
    const flaky = await enqueue({ queue: "retry", payload: { kind: "flaky" }, retry });
    const broken = await enqueue({ queue: "retry", payload: { kind: "broken" }, retry });
    const fatal = await enqueue({ queue: "retry", payload: { kind: "fatal" }, retry });
    const attempts: Record<string, number[]> = {};
    const w = newWorker({
      queues: ["retry"],
      handler: async (ctx) => {
        const kind = (ctx.payload as { kind: string }).kind;
        (attempts[kind] ??= []).push(ctx.attempt);
        if (kind === "fatal") throw new NonRetryableError("bad input");
        if (kind === "broken" || ctx.attempt < 3) throw new TypeError(`boom ${ctx.attempt}`);
        return "third time lucky";
      },
    });
    await w.start();
    const ok = await waitForState(flaky, "succeeded");
    expect(ok).toMatchObject({ attempt: 3, result: "third time lucky" });
    expect(ok.attempts[0]).toMatchObject({ outcome: "failed", error: { name: "TypeError", message: "boom 1" } });
    expect(typeof ok.attempts[0].error.stack).toBe("string");
    const dead = await waitForState(broken, "failed");
    expect(dead.attempt).toBe(3);
    const now = await waitForState(fatal, "failed");
    expect(now.attempt).toBe(1);
    expect(now.attempts[0]).toMatchObject({ outcome: "failed", error: { name: "NonRetryableError", message: "bad input" } });
    expect(attempts).toEqual({ flaky: [1, 2, 3], broken: [1, 2, 3], fatal: [1] });
    const letters = await call("GET", "/v1/dead-letters?queue=retry");
    expect(letters.body.executions.map((e: { id: string }) => e.id).sort()).toEqual([broken, fatal].sort());
  });

  it("stores results as JSON; a result that is not JSON fails the attempt for good", async () => {
    const dated = await enqueue({ queue: "json", payload: "date" });
    const big = await enqueue({ queue: "json", payload: "bigint" });
    const w = newWorker({ queues: ["json"], handler: async (ctx) => (ctx.payload === "date" ? { at: new Date(0), skip: undefined } : { n: 10n }) });
    await w.start();
    expect((await waitForState(dated, "succeeded")).result).toEqual({ at: "1970-01-01T00:00:00.000Z" });
    const failed = await waitForState(big, "failed");
    expect(failed.attempt).toBe(1);
    expect(failed.attempts[0].error.name).toBe("ResultNotSerializable");
  });

  it("cancel over HTTP aborts the running handler's signal", async () => {
    let running: ExecutionContext | undefined;
    let abortedWith: unknown;
    const w = newWorker({
      queues: ["cancel"],
      handler: (ctx) =>
        new Promise((_, reject) => {
          running = ctx;
          ctx.signal.addEventListener("abort", () => {
            abortedWith = ctx.signal.reason;
            reject(ctx.signal.reason);
          });
        }),
    });
    const completed: unknown[] = [];
    w.on("completed", (c) => completed.push(c));
    await w.start();
    const id = await enqueue({ queue: "cancel" });
    await waitFor("the handler to run", () => running);
    await waitForState(id, "running");
    expect((await call("POST", `/v1/executions/${id}/cancel`)).status).toBe(200);
    await waitFor("the signal to abort", () => running!.signal.aborted);
    expect(abortedWith).toBeInstanceOf(ExecutionAbortedError);
    expect((abortedWith as ExecutionAbortedError).reason).toBe("canceled");
    await waitFor("the slot to free", () => w.inFlight === 0);
    expect(completed).toEqual([{ id, attempt: 1, fence: running!.fence, outcome: "canceled" }]);
    expect((await getExecution(id)).state).toBe("canceled");
    await expect(running!.heartbeat()).rejects.toBeInstanceOf(ExecutionAbortedError);
  });

  it("heartbeats keep a short lease alive; a manual heartbeat resolves on its ack", async () => {
    const w = newWorker({
      queues: ["lease"],
      handler: async (ctx) => {
        await ctx.heartbeat({ step: 1 });
        await sleep(2_600); // 2.6 leases of 1 s: only heartbeats keep it
        return ctx.signal.aborted ? "aborted" : "kept";
      },
    });
    await w.start();
    const id = await enqueue({ queue: "lease", leaseMs: 1_000 });
    const e = await waitForState(id, "succeeded");
    expect(e).toMatchObject({ attempt: 1, result: "kept" });
  });

  it("graceful close finishes in-flight work, reports it, and takes no more", async () => {
    const ids = await Promise.all(Array.from({ length: 4 }, () => enqueue({ queue: "graceful" })));
    let started = 0;
    const w = newWorker({
      queues: ["graceful"],
      concurrency: 4,
      handler: async (ctx) => {
        started++;
        await sleep(400);
        return { aborted: ctx.signal.aborted };
      },
    });
    let closedEvent = false;
    w.on("closed", () => (closedEvent = true));
    await w.start();
    await waitFor("4 handlers running", () => started === 4);
    const closing = w.close();
    const late = await enqueue({ queue: "graceful" });
    await closing;
    expect(closedEvent).toBe(true);
    expect(w.inFlight).toBe(0);
    for (const id of ids) expect(await getExecution(id)).toMatchObject({ state: "succeeded", attempt: 1, result: { aborted: false } });
    await sleep(100);
    expect((await getExecution(late)).state).toBe("ready");
    expect(started).toBe(4);
    // Someone else picks it up.
    await newWorker({ queues: ["graceful"], handler: async () => "later" }).start();
    await waitForState(late, "succeeded");
  });

  it("the first shutdown signal drains, the second aborts the handlers", async () => {
    let ctx: ExecutionContext | undefined;
    const w = newWorker({
      queues: ["signals"],
      shutdownSignals: ["SIGUSR2"],
      handler: (c) =>
        new Promise((_, reject) => {
          ctx = c;
          c.signal.addEventListener("abort", () => reject(c.signal.reason));
        }),
    });
    let closed = false;
    w.on("closed", () => (closed = true));
    await w.start();
    const id = await enqueue({ queue: "signals" });
    await waitFor("the handler to run", () => ctx);
    process.emit("SIGUSR2", "SIGUSR2");
    await sleep(100);
    expect(closed).toBe(false); // still waiting for the handler
    expect(ctx!.signal.aborted).toBe(false);
    process.emit("SIGUSR2", "SIGUSR2");
    await waitFor("closed", () => closed);
    expect((ctx!.signal.reason as ExecutionAbortedError).reason).toBe("shutdown");
    expect(process.listenerCount("SIGUSR2")).toBe(0);
    // Nothing was reported: the lease expires on the node and the execution goes back to wait.
    expect(["claimed", "running"]).toContain((await getExecution(id)).state);
  });

  it("keeps its execution across a dropped socket: reports after reconnecting, attempt 1", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const w = newWorker({
      queues: ["reconnect"],
      handler: async (ctx) => {
        await gate;
        return { aborted: ctx.signal.aborted };
      },
    });
    const events: string[] = [];
    let reconnectedAt = 0;
    // The handler finishes while the worker is disconnected: its report is kept and sent after the welcome.
    w.on("reconnecting", () => (events.push("reconnecting"), release()));
    w.on("connected", () => (events.push("connected"), (reconnectedAt = Date.now())));
    await w.start();
    const id = await enqueue({ queue: "reconnect", leaseMs: 6_000 });
    await waitForState(id, "running");
    (w as unknown as { socket: { terminate(): void } }).socket.terminate();
    await waitFor("a reconnect", () => events.filter((e) => e === "connected").length >= 2);
    const e = await waitForState(id, "succeeded");
    // Resent on the welcome, not by the periodic resend (every leaseMs/3 = 2 s).
    expect(Date.now() - reconnectedAt).toBeLessThan(1_000);
    expect(e).toMatchObject({ attempt: 1, result: { aborted: false } });
    expect(events.slice(0, 3)).toEqual(["connected", "reconnecting", "connected"]);
    // Credit is restored on the new connection: more work still flows.
    const next = await enqueue({ queue: "reconnect" });
    await waitForState(next, "succeeded");
  });

  it("keeps heartbeating a running execution across a reconnect", async () => {
    let kill!: () => void;
    const w = newWorker({
      queues: ["reconnect-hb"],
      handler: async (ctx) => {
        await sleep(400);
        kill();
        await sleep(2_000); // two leases of 1 s after the reconnect: heartbeats must resume
        return ctx.signal.aborted ? "aborted" : "kept";
      },
    });
    kill = () => (w as unknown as { socket: { terminate(): void } }).socket.terminate();
    await w.start();
    const id = await enqueue({ queue: "reconnect-hb", leaseMs: 1_000 });
    expect(await waitForState(id, "succeeded")).toMatchObject({ attempt: 1, result: "kept" });
  });

  it("aborts the signal with lease-lost when disconnected past the lease; the retry runs as attempt 2", async () => {
    const reasons: string[] = [];
    const w = newWorker({
      queues: ["lease-lost"],
      reconnect: { initialMs: 4_000, maxMs: 4_000 }, // back after 2–4 s: the 1 s lease is long gone
      handler: (ctx) =>
        ctx.attempt > 1
          ? Promise.resolve("second")
          : new Promise((_, reject) => {
              ctx.signal.addEventListener("abort", () => {
                reasons.push((ctx.signal.reason as ExecutionAbortedError).reason);
                reject(ctx.signal.reason);
              });
              setTimeout(() => (w as unknown as { socket: { terminate(): void } }).socket.terminate(), 100);
            }),
    });
    await w.start();
    const id = await enqueue({ queue: "lease-lost", leaseMs: 1_000, retry: { maxAttempts: 3, backoff: { type: "fixed", initialMs: 0, maxMs: 0 } } });
    await waitFor("the lease to be lost", () => reasons.length > 0, 3_000);
    expect(reasons).toEqual(["lease-lost"]);
    const e = await waitForState(id, "succeeded", 8_000);
    expect(e).toMatchObject({ attempt: 2, result: "second" });
    expect(e.attempts[0].outcome).toBe("lease-expired");
  });

  it("start() rejects when the node refuses the hello; a worker token is welcome", async () => {
    const refused = new Worker({ url: authServer.base, token: "client-token-1", queues: ["q"], shutdownSignals: false, handler: async () => {} });
    workers.push(refused);
    await expect(refused.start()).rejects.toMatchObject({ name: "CronwheelApiError", code: "permission_denied" });
    const badQueue = new Worker({ url: authServer.base, token: "worker-token-1", queues: ["no spaces"], shutdownSignals: false, handler: async () => {} });
    workers.push(badQueue);
    await expect(badQueue.start()).rejects.toMatchObject({ code: "invalid_argument" });
    const ok = new Worker({ url: authServer.base, token: "worker-token-1", queues: ["q"], shutdownSignals: false, handler: async () => "ok" });
    workers.push(ok);
    await ok.start();
    const res = await request(authServer.base, "POST", "/v1/executions", { queue: "q" }, { authorization: "Bearer client-token-1" });
    const id = res.body.id as string;
    await waitFor("the acme worker to run it", async () => {
      const e = await request(authServer.base, "GET", `/v1/executions/${id}`, undefined, { authorization: "Bearer client-token-1" });
      return e.body.state === "succeeded" ? e : undefined;
    });
  });
});

describe("Worker SDK against a scripted node (frame-level checks)", () => {
  it("sends one frame per event-loop turn, and reconnects after a malformed frame", async () => {
    const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", path: "/v1/workers" });
    await new Promise((r) => wss.once("listening", r));
    const frames: WorkerMessage[][] = [];
    const sockets: ServerSocket[] = [];
    wss.on("connection", (ws) => {
      sockets.push(ws);
      ws.on("message", (data: Buffer) => {
        const batch = unpack(data) as WorkerMessage[];
        frames.push(batch);
        if (batch[0]?.t === "hello") ws.send(pack([{ t: "welcome", nodeId: "fake", protocol: 1 }]));
      });
    });
    const port = (wss.address() as { port: number }).port;
    const w = new Worker({ url: `http://127.0.0.1:${port}`, workerId: "w-fake", queues: ["q"], concurrency: 5, shutdownSignals: false, reconnect: { initialMs: 10, maxMs: 50 }, handler: async (ctx) => ctx.id });
    const errors: Error[] = [];
    w.on("error", (e) => errors.push(e));
    try {
      await w.start();
      await waitFor("credit", () => frames.length >= 2);
      expect(frames[0]).toEqual([{ t: "hello", workerId: "w-fake", queues: ["q"], protocol: 1 }]);
      expect(frames[1]).toEqual([{ t: "credit", n: 5 }]);
      const now = Date.now();
      const assign = (id: string, fence: number) => ({ t: "assign", id, attempt: 1, fence, queue: "q", payload: null, scheduledAt: now, leaseMs: 30_000, leaseDeadline: now + 30_000, timeoutAt: now + 300_000 });
      sockets[0]!.send(pack([assign("a", 1), assign("b", 2), assign("c", 3)]));
      await waitFor("the reports", () => frames.length >= 3);
      await sleep(50);
      // Handlers that resolve at once: outcome and the freed credit share one frame, and the
      // `started` reports their outcomes overtook are left out.
      expect(frames.slice(2)).toEqual([
        [
          { t: "succeeded", id: "a", fence: 1, result: "a" }, { t: "succeeded", id: "b", fence: 2, result: "b" }, { t: "succeeded", id: "c", fence: 3, result: "c" },
          { t: "credit", n: 3 },
        ],
      ]);
      let completed = 0;
      w.on("completed", () => completed++);
      sockets[0]!.send(pack(["a", "b", "c"].map((id, i) => ({ t: "ack", id, fence: i + 1, of: "succeeded" }))));
      await waitFor("acks", () => completed === 3);
      const before = frames.length;
      sockets[0]!.send(pack({ t: "not an array" }));
      await waitFor("a second hello", () => sockets.length === 2 && frames.length > before && frames[before]![0]!.t === "hello");
      expect(errors.map((e) => e.name)).toEqual(["MalformedFrameError"]);
      await waitFor("credit again", () => frames.length > before + 1);
      expect(frames[before + 1]).toEqual([{ t: "credit", n: 5 }]);
    } finally {
      await w.close({ graceful: false });
      await new Promise((r) => wss.close(r));
    }
  });
});
