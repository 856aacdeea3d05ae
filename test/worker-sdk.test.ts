/**
 * The worker SDK (src/client/worker.ts) against a real server process: executions are created and
 * checked over HTTP, the SDK's Worker runs them over `/v1/workers`. Throughput with stored
 * results, the concurrency bound, retries and dead letters, cancel reaching the handler's signal,
 * heartbeats keeping a short lease, graceful and signal-driven shutdown, a socket killed under a
 * running handler, and a refused hello.
 *
 * Several nodes: a worker given a dead URL and a live one; a worker following a cluster view that
 * names two real server processes as the leaders (the view is served by a small directory stub,
 * because a standalone server's own view names only itself), with the credit split, a node that
 * stops leading and one that comes back; and a real three-node cluster (etcd, three server
 * processes): one Worker serves every shard, and follows a leader's kill -9 — its in-flight
 * executions report through another node. Frame-level checks against scripted nodes: a report goes
 * on another connection after the delivering one closed, and unused credit at an idle node is
 * taken back for a busy one. Unit tests of the pure parts: the credit policy and the view parser.
 */
import fs from "node:fs";
import http from "node:http";
import type net from "node:net";
import path from "node:path";
import { pack, unpack } from "msgpackr";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocketServer, type WebSocket as ServerSocket } from "ws";
import type { WorkerMessage } from "../src/gateway/protocol.js";
import { pickWithdraw, planCredits, type CreditSlot } from "../src/client/credit-policy.js";
import { ExecutionAbortedError, NonRetryableError, Worker, type ExecutionContext, type WorkerOptions } from "../src/client/worker.js";
import { httpBase, leaderTargets } from "../src/client/worker-support.js";
import { request, requestRetryingUnavailable, startServer, tempDir, type ServerProcess } from "./support/server-process.js";
import { TestCluster } from "./support/cluster.js";
import { slotOf } from "../src/core/routing.js";

let server: ServerProcess;
let authServer: ServerProcess;
/** A second standalone node (node id node-b) for the several-node tests. */
let second: ServerProcess;
/** The URL of a server that was started and stopped: nothing listens there now. */
let deadBase: string;
const workers: Worker[] = [];

const call = (method: string, p: string, body?: unknown) => request(server.base, method, p, body);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function enqueue(body: Record<string, unknown>): Promise<string> {
  return enqueueOn(server, body);
}

async function enqueueOn(on: ServerProcess, body: Record<string, unknown>): Promise<string> {
  const res = await request(on.base, "POST", "/v1/executions", body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

const getOn = async (on: ServerProcess, id: string) => (await request(on.base, "GET", `/v1/executions/${encodeURIComponent(id)}`)).body;

async function waitForStateOn(on: ServerProcess, id: string, state: string, timeoutMs = 10_000) {
  return waitFor(`${id} to be ${state}`, async () => {
    const e = await getOn(on, id);
    return e.state === state ? e : undefined;
  }, timeoutMs);
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

/** Cut every node connection of w at the socket, as a network failure would (reaches inside). */
function cutConnections(w: Worker): void {
  for (const c of (w as unknown as { active: Map<string, { ws: { terminate(): void } | null }> }).active.values()) c.ws?.terminate();
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
  let doomed: ServerProcess;
  [server, authServer, second, doomed] = await Promise.all([
    startServer(tempDir("worker-sdk"), ["--shards", "2"]),
    startServer(path.join(dir, "data"), ["--tokens", tokens]),
    startServer(tempDir("worker-sdk-b"), ["--shards", "2", "--node-id", "node-b"]),
    startServer(tempDir("worker-sdk-dead"), ["--shards", "1"]),
  ]);
  await doomed.stop();
  deadBase = doomed.base;
});

afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close({ graceful: false })));
});

afterAll(async () => {
  await Promise.all([server?.stop(), authServer?.stop(), second?.stop()]);
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


  it("a handler that first looks at its signal after the cancel finds it aborted, with the reason", async () => {
    // The signal is made on first use (most handlers never ask): a late look must still see the abort.
    let release: (() => void) | undefined;
    let seen: { aborted: boolean; reason: unknown } | undefined;
    let started = false;
    const w = newWorker({
      queues: ["cancel-late"],
      handler: async (ctx) => {
        started = true;
        await new Promise<void>((r) => (release = r));
        seen = { aborted: ctx.signal.aborted, reason: ctx.signal.reason };
      },
    });
    let canceled = false;
    w.on("completed", (c) => (canceled ||= c.outcome === "canceled"));
    await w.start();
    const id = await enqueue({ queue: "cancel-late" });
    await waitFor("the handler to run", () => started || undefined);
    await waitForState(id, "running");
    expect((await call("POST", `/v1/executions/${id}/cancel`)).status).toBe(200);
    await waitFor("the cancel to reach the worker", () => canceled || undefined);
    release!();
    await waitFor("the handler to look", () => seen);
    expect(seen!.aborted).toBe(true);
    expect((seen!.reason as ExecutionAbortedError).reason).toBe("canceled");
  });
  it("a handler's context destructures, serializes, and carries the assignment's fields", async () => {
    const runAt = Date.now() + 300;
    let seen: Record<string, unknown> | undefined;
    const w = newWorker({
      queues: ["ctx"],
      handler: async (ctx) => {
        const { id, attempt, fence, queue, payload, scheduledAt, signal, heartbeat } = ctx;
        await heartbeat({ step: 1 }); // detached from ctx, as a destructured function is
        seen = { id, attempt, fence, queue, payload, scheduledAt, sameDate: ctx.scheduledAt === scheduledAt, aborted: signal.aborted, json: JSON.parse(JSON.stringify(ctx)) };
        return "ok";
      },
    });
    await w.start();
    const id = await enqueue({ queue: "ctx", payload: { n: 7 }, runAt: new Date(runAt).toISOString() });
    await waitForState(id, "succeeded");
    expect(seen).toMatchObject({ id, attempt: 1, queue: "ctx", payload: { n: 7 }, sameDate: true, aborted: false });
    expect((seen!.scheduledAt as Date).getTime()).toBe(runAt);
    expect(seen!.fence).toBeGreaterThan(0);
    expect(seen!.json).toEqual({ id, attempt: 1, fence: seen!.fence, queue: "ctx", payload: { n: 7 }, scheduledAt: new Date(runAt).toISOString() });
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
    cutConnections(w);
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
    kill = () => cutConnections(w);
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
              setTimeout(() => cutConnections(w), 100);
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

// ---------------------------------------------------------------------------------------------
// several nodes

/** Serves `GET /v1/cluster` with `view` (settable): the membership a cluster would report. */
interface Directory {
  url: string;
  view: unknown;
  close(): Promise<void>;
}

async function directory(view: unknown): Promise<Directory> {
  const srv = http.createServer((req, res) => {
    req.resume();
    const found = req.method === "GET" && req.url === "/v1/cluster";
    res.writeHead(found ? 200 : 404, { "content-type": "application/json" });
    res.end(JSON.stringify(found ? d.view : { error: { code: "not_found", message: "directory stub" } }));
  });
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const d: Directory = {
    url: `http://127.0.0.1:${(srv.address() as net.AddressInfo).port}`,
    view,
    close: () => new Promise<void>((resolve) => (srv.closeAllConnections(), srv.close(() => resolve()))),
  };
  return d;
}

/** A two-shard cluster view: `nodes` is [id, "host:port"][], `leaders` the leader of shard 0 and 1. */
function clusterView(nodes: Array<[string, string]>, leaders: [string | null, string | null]) {
  return {
    nodes: nodes.map(([id, address]) => ({ id, address, state: "ready" })),
    shards: leaders.map((leader, i) => ({ id: i, range: [i * 32768, i * 32768 + 32767], replicas: nodes.map(([id]) => id), leader, epoch: 1, commitIndex: 0 })),
  };
}

/** Warnings and errors a worker logged. */
function recordingLogger(): { lines: string[]; logger: NonNullable<WorkerOptions["logger"]> } {
  const lines: string[] = [];
  return { lines, logger: { info() {}, warn: (_o, m) => lines.push(`warn: ${m}`), error: (_o, m) => lines.push(`error: ${m}`) } };
}

const wsUrl = (s: ServerProcess) => `ws://127.0.0.1:${s.port}/v1/workers`;

describe("Worker SDK with several nodes", () => {
  it("given a dead URL and a live one, reads the cluster view from the live node and works", async () => {
    const w = newWorker({ url: [deadBase, server.base], queues: ["two-urls"], concurrency: 4, handler: async (ctx) => ({ ran: ctx.id }) });
    await w.start();
    await waitFor("its credit", () => w.connections[0]?.credit === 4);
    // A single-node view: the worker dials the URL that answered (the node's advertised address may not be dialable).
    expect(w.connections).toEqual([{ url: wsUrl(server), nodeId: "node-1", ready: true, credit: 4, retiring: false }]);
    const id = await enqueue({ queue: "two-urls" });
    expect((await waitForState(id, "succeeded")).result).toEqual({ ran: id });
  });

  it("connects to every leader the cluster view names, splits its concurrency across them, and follows leader changes", async () => {
    const nodes: Array<[string, string]> = [["node-1", `127.0.0.1:${server.port}`], ["node-b", `127.0.0.1:${second.port}`]];
    const dir = await directory(clusterView(nodes, ["node-1", "node-b"]));
    const { lines, logger } = recordingLogger();
    let now = 0;
    let max = 0;
    const ran: string[] = [];
    const w = newWorker({
      url: dir.url,
      queues: ["multi"],
      concurrency: 2,
      clusterRefreshMs: 100,
      logger,
      handler: async (ctx) => {
        max = Math.max(max, ++now);
        ran.push((ctx.payload as { on: string }).on);
        await sleep(20);
        now--;
        return ctx.payload;
      },
    });
    const disconnected: Array<{ nodeId: string; reason: string }> = [];
    w.on("disconnected", (d) => disconnected.push(d));
    try {
      await w.start();
      await waitFor("both leaders connected", () => w.connections.filter((c) => c.ready).length === 2);
      expect(w.connections.map((c) => `${c.nodeId} ${c.url}`).sort()).toEqual([`node-1 ${wsUrl(server)}`, `node-b ${wsUrl(second)}`]);

      const [onA, onB] = await Promise.all([
        Promise.all(Array.from({ length: 12 }, (_, n) => enqueueOn(server, { queue: "multi", payload: { on: "a", n } }))),
        Promise.all(Array.from({ length: 12 }, (_, n) => enqueueOn(second, { queue: "multi", payload: { on: "b", n } }))),
      ]);
      for (const id of onA) expect((await waitForStateOn(server, id, "succeeded")).attempt).toBe(1);
      for (const id of onB) expect((await waitForStateOn(second, id, "succeeded")).attempt).toBe(1);
      expect(max).toBeLessThanOrEqual(2);
      // Neither node waited for the other's backlog to be done.
      expect(ran.indexOf("b")).toBeLessThan(ran.lastIndexOf("a"));
      expect(ran.indexOf("a")).toBeLessThan(ran.lastIndexOf("b"));
      // The nodes never had to refuse or over-assign: the credit never exceeded free capacity.
      expect(lines.filter((l) => /credit|beyond/.test(l))).toEqual([]);

      // node-b takes over shard 0: the connection to node-1 is drained and closed.
      dir.view = clusterView(nodes, ["node-b", "node-b"]);
      await waitFor("node-1's connection retired", () => disconnected.some((d) => d.nodeId === "node-1" && d.reason === "retired"), 5_000);
      expect(w.connections.map((c) => c.nodeId)).toEqual(["node-b"]);
      await waitFor("all its credit on node-b", () => w.connections[0]!.credit === 2);
      const parked = await enqueueOn(server, { queue: "multi", payload: { on: "a", n: 99 } });
      const moved = await enqueueOn(second, { queue: "multi", payload: { on: "b", n: 99 } });
      await waitForStateOn(second, moved, "succeeded");
      await sleep(300);
      expect((await getOn(server, parked)).state).toBe("ready"); // node-1 leads nothing: the worker is not there

      // node-1 leads again: a connection is made and its waiting work runs.
      dir.view = clusterView(nodes, ["node-1", "node-b"]);
      await waitForStateOn(server, parked, "succeeded");
      expect(w.connections.filter((c) => c.ready).map((c) => c.nodeId).sort()).toEqual(["node-1", "node-b"]);
      expect(lines.filter((l) => /credit|beyond/.test(l))).toEqual([]);
    } finally {
      await w.close({ graceful: false });
      await dir.close();
    }
  });

  it("a view in which no shard has a leader (an election) keeps the connections there are", async () => {
    const nodes: Array<[string, string]> = [["node-1", `127.0.0.1:${server.port}`], ["node-b", `127.0.0.1:${second.port}`]];
    const dir = await directory(clusterView(nodes, ["node-1", "node-b"]));
    const w = newWorker({ url: dir.url, queues: ["no-leader"], clusterRefreshMs: 50, handler: async () => "ok" });
    const disconnected: unknown[] = [];
    w.on("disconnected", (d) => disconnected.push(d));
    try {
      await w.start();
      await waitFor("both leaders connected", () => w.connections.filter((c) => c.ready).length === 2);
      dir.view = clusterView(nodes, [null, null]);
      await sleep(300);
      expect(disconnected).toEqual([]);
      expect(w.connections.filter((c) => c.ready && !c.retiring)).toHaveLength(2);
      const [a, b] = await Promise.all([enqueueOn(server, { queue: "no-leader" }), enqueueOn(second, { queue: "no-leader" })]);
      await waitForStateOn(server, a, "succeeded");
      await waitForStateOn(second, b, "succeeded");
    } finally {
      await w.close({ graceful: false });
      await dir.close();
    }
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
      // This node has no `GET /v1/cluster` (an older server): the worker uses the URL it was given.
      expect(w.connections.map((c) => c.url)).toEqual([`ws://127.0.0.1:${port}/v1/workers`]);
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

describe("Worker SDK against a real three-node cluster", () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3, shards: 6, name: "worker-sdk-cluster" });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  /** `n` idempotency keys whose executions live on the shard with `range`. */
  function keysOnShard(prefix: string, range: [number, number], n: number): string[] {
    const keys: string[] = [];
    for (let i = 0; keys.length < n; i++) {
      const slot = slotOf("default", `idempotency/${prefix}-${i}`);
      if (slot >= range[0] && slot <= range[1]) keys.push(`${prefix}-${i}`);
    }
    return keys;
  }

  async function enqueueVia(base: string, body: Record<string, unknown>): Promise<string> {
    // An earlier test moved leaders: a new one may still be recovering.
    const res = await requestRetryingUnavailable(base, "POST", "/v1/executions", body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  }

  async function waitForStateVia(base: () => string, id: string, state: string, timeoutMs = 15_000) {
    return waitFor(`${id} to be ${state}`, async () => {
      const r = await request(base(), "GET", `/v1/executions/${encodeURIComponent(id)}`).catch(() => undefined);
      return r?.status === 200 && r.body.state === state ? r.body : undefined;
    }, timeoutMs);
  }

  const readyLeaders = (w: Worker) => w.connections.filter((c) => c.ready && !c.retiring).map((c) => c.nodeId).sort();

  it("given one node's URL, connects to every shard leader and runs executions of every shard", async () => {
    const view = await cluster.view();
    const leaders = [...new Set(view.shards.map((s) => s.leader!))].sort();
    const { lines, logger } = recordingLogger();
    const w = newWorker({ url: cluster.nodes[0]!.base, queues: ["cluster-all"], concurrency: 6, clusterRefreshMs: 200, logger, handler: async (ctx) => ({ ran: ctx.id }) });
    await w.start();
    await waitFor("a connection to every leader", () => JSON.stringify(readyLeaders(w)) === JSON.stringify(leaders));
    const ids = await Promise.all(
      view.shards.flatMap((s, i) => keysOnShard(`all-${s.id}`, s.range, 4).map((key, k) => enqueueVia(cluster.nodes[(i + k) % 3]!.base, { queue: "cluster-all", idempotencyKey: key }))),
    );
    for (const id of ids) expect(await waitForStateVia(() => cluster.nodes[0]!.base, id, "succeeded")).toMatchObject({ attempt: 1, result: { ran: id } });
    expect(lines.filter((l) => /credit|beyond/.test(l))).toEqual([]);
  });

  it("follows a shard leader's kill -9: its in-flight executions report through another node; the new leaders get connections", async () => {
    const before = await cluster.view();
    const victim = before.shards[0]!.leader!;
    const survivor = cluster.nodes.find((n) => n.id !== victim)!;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const w = newWorker({
      url: cluster.nodes.map((n) => n.base),
      queues: ["cluster-failover"],
      concurrency: 8,
      clusterRefreshMs: 200,
      handler: async (ctx) => {
        if ((ctx.payload as { hold?: boolean } | null)?.hold) await gate;
        return { ran: ctx.id, aborted: ctx.signal.aborted };
      },
    });
    await w.start();
    await waitFor("a connection to every leader", () => readyLeaders(w).length === new Set(before.shards.map((s) => s.leader)).size);
    // Two executions on the victim's shard, running in this worker when their leader dies.
    const held = await Promise.all(keysOnShard("held", before.shards[0]!.range, 2).map((key) => enqueueVia(survivor.base, { queue: "cluster-failover", idempotencyKey: key, payload: { hold: true } })));
    for (const id of held) await waitForStateVia(() => survivor.base, id, "running");

    await cluster.kill9(victim);
    const after = await cluster.waitForLeaders(30_000, [victim]);
    const newLeaders = [...new Set(after.shards.map((s) => s.leader!))].sort();
    await waitFor("connections to the new leaders only", () => JSON.stringify(readyLeaders(w)) === JSON.stringify(newLeaders), 15_000);

    release();
    for (const id of held) expect(await waitForStateVia(() => survivor.base, id, "succeeded")).toMatchObject({ attempt: 1, result: { ran: id, aborted: false } });
    // Every shard's work still flows.
    const more = await Promise.all(after.shards.map((s) => enqueueVia(survivor.base, { queue: "cluster-failover", idempotencyKey: keysOnShard(`more-${s.id}`, s.range, 1)[0]! })));
    for (const id of more) await waitForStateVia(() => survivor.base, id, "succeeded");
  });
});

/** A scripted node: welcomes every hello, records every frame by connection, sends what a test says. */
interface ScriptedNode {
  nodeId: string;
  address: string;
  frames: Array<{ conn: number; batch: WorkerMessage[] }>;
  sockets: ServerSocket[];
  closed: boolean[];
  close(): Promise<void>;
}

async function scriptedNode(nodeId: string): Promise<ScriptedNode> {
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", path: "/v1/workers" });
  await new Promise((r) => wss.once("listening", r));
  const node: ScriptedNode = {
    nodeId,
    address: `127.0.0.1:${(wss.address() as net.AddressInfo).port}`,
    frames: [],
    sockets: [],
    closed: [],
    close: () => new Promise<void>((resolve) => (wss.clients.forEach((c) => c.terminate()), wss.close(() => resolve()))),
  };
  wss.on("connection", (ws) => {
    const conn = node.sockets.push(ws) - 1;
    node.closed.push(false);
    ws.on("close", () => (node.closed[conn] = true));
    ws.on("message", (data: Buffer) => {
      const batch = unpack(data) as WorkerMessage[];
      node.frames.push({ conn, batch });
      if (batch[0]?.t === "hello") ws.send(pack([{ t: "welcome", nodeId, protocol: 1 }]));
    });
  });
  return node;
}

const sent = (node: ScriptedNode, conn?: number): WorkerMessage[] => node.frames.filter((f) => conn === undefined || f.conn === conn).flatMap((f) => f.batch);
const creditOn = (node: ScriptedNode, conn?: number): number => sent(node, conn).reduce((n, m) => n + (m.t === "credit" ? m.n : 0), 0);
function assign(id: string, fence: number) {
  const now = Date.now();
  return { t: "assign", id, attempt: 1, fence, queue: "q", payload: null, scheduledAt: now, leaseMs: 30_000, leaseDeadline: now + 30_000, timeoutAt: now + 300_000 };
}

describe("Worker SDK against scripted nodes (several connections)", () => {
  it("reports on another connection once the one that delivered the execution is closed (its node stopped leading)", async () => {
    const [n1, n2] = await Promise.all([scriptedNode("node-1"), scriptedNode("node-2")]);
    const nodes: Array<[string, string]> = [["node-1", n1.address], ["node-2", n2.address]];
    const dir = await directory(clusterView(nodes, ["node-1", "node-2"]));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const w = new Worker({ url: dir.url, workerId: "w-two", queues: ["q"], concurrency: 3, clusterRefreshMs: 50, shutdownSignals: false, handler: async () => (await gate, "done") });
    const completed: unknown[] = [];
    w.on("completed", (c) => completed.push(c));
    try {
      await w.start();
      await waitFor("a credit on each node", () => creditOn(n1) > 0 && creditOn(n2) > 0);
      await sleep(50);
      // Three slots, two nodes, no work yet: one credit each, the third held back.
      expect([creditOn(n1), creditOn(n2)]).toEqual([1, 1]);

      n1.sockets[0]!.send(pack([assign("a", 7)]));
      await waitFor("started on node-1", () => sent(n1).some((m) => m.t === "started" && m.id === "a"));
      await waitFor("node-1's credit back", () => creditOn(n1) === 2);
      await sleep(50);
      // Given so far: 2 + 1 credits, one used by the running execution — never beyond the 3 slots.
      expect(creditOn(n1) + creditOn(n2)).toBe(3);

      dir.view = clusterView(nodes, ["node-2", "node-2"]);
      await waitFor("drain on node-1", () => sent(n1, 0).some((m) => m.t === "drain"));
      await waitFor("node-1's connection closed", () => n1.closed[0] === true, 5_000);
      // Its credit is free again: node-2, the only leader now, gets all the free capacity (3 slots
      // less the running execution).
      await waitFor("node-2 holding the free slots", () => creditOn(n2) === 2);
      release();
      await waitFor("the report on node-2", () => sent(n2).some((m) => m.t === "succeeded" && m.id === "a" && m.fence === 7));
      expect(sent(n1).some((m) => m.t === "succeeded")).toBe(false);
      expect(n1.sockets).toHaveLength(1); // not reconnected: node-1 leads nothing
      n2.sockets[0]!.send(pack([{ t: "ack", id: "a", fence: 7, of: "succeeded" }]));
      await waitFor("completed", () => completed.length === 1);
      expect(completed).toEqual([{ id: "a", attempt: 1, fence: 7, outcome: "succeeded" }]);
      await waitFor("its slot given to node-2", () => creditOn(n2) === 3);
    } finally {
      await w.close({ graceful: false });
      await Promise.all([n1.close(), n2.close(), dir.close()]);
    }
  });

  it("withdraws credit held above the active cap when another active node runs dry", async () => {
    const [n1, n2] = await Promise.all([scriptedNode("node-1"), scriptedNode("node-2")]);
    const dir = await directory(clusterView([["node-1", n1.address], ["node-2", n2.address]], ["node-1", "node-2"]));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const w = new Worker({ url: dir.url, workerId: "w-reclaim", queues: ["q"], concurrency: 4, clusterRefreshMs: 100, shutdownSignals: false, handler: async (ctx) => (ctx.id.startsWith("long") ? (await gate, "long") : "quick") });
    const reasons: string[] = [];
    w.on("disconnected", (d: { reason: string }) => reasons.push(d.reason));
    try {
      await w.start();
      await waitFor("a credit on each node", () => creditOn(n1) === 1 && creditOn(n2) === 1);
      // node-1 shows it has work: the held-back slots go to it.
      n1.sockets[0]!.send(pack([assign("quick-1", 1)]));
      await waitFor("node-1 given the rest", () => creditOn(n1, 0) === 4);
      n1.sockets[0]!.send(pack([{ t: "ack", id: "quick-1", fence: 1, of: "succeeded" }]));
      // …and then has nothing more, while node-2 uses its one credit and waits with none.
      n2.sockets[0]!.send(pack([assign("long-1", 2)]));
      await waitFor("started on node-2", () => sent(n2).some((m) => m.t === "started"));
      expect(creditOn(n2)).toBe(1);
      // node-2 is active and runs dry while node-1 holds 3: the worker asks node-1 for what is
      // above the active cap (4 / 2 active connections) …
      await waitFor("withdraw on node-1", () => sent(n1).some((m) => m.t === "withdraw"), 6_000);
      const withdraw = sent(n1).find((m) => m.t === "withdraw") as { n: number };
      expect(withdraw.n).toBe(1);
      // … the node gives back what it had not used, and that goes where work waits.
      n1.sockets[0]!.send(pack([{ t: "withdrawn", n: 1 }]));
      await waitFor("node-2 given credit again", () => creditOn(n2) > 1);
      expect(reasons).toEqual([]); // no reconnect needed
      await sleep(50);
      // Held now: node-1's credit less its assign and the 1 withdrawn, node-2's less its assign, and the running one.
      expect(creditOn(n1) - 1 - 1 + (creditOn(n2) - 1) + 1).toBeLessThanOrEqual(4);
      release();
    } finally {
      await w.close({ graceful: false });
      await Promise.all([n1.close(), n2.close(), dir.close()]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// the pure parts

const slot = (key: string, over: Partial<CreditSlot> = {}): CreditSlot => ({ key, ready: true, outstanding: 0, assignedSinceGrant: 0, lastGrantAt: 0, lastAssignAt: 0, zeroSince: null, ...over });
const plan = (free: number, slots: CreditSlot[], now = 10_000, capacity = 100) => Object.fromEntries(planCredits(free, slots, { now, fairnessWaitMs: 2_000, capacity, activeMs: 500 }));

describe("credit policy", () => {
  it("one connection gets all the free capacity; nothing when nothing is free or nothing is ready", () => {
    expect(plan(5, [slot("a", { outstanding: 3 })])).toEqual({ a: 5 });
    expect(plan(0, [slot("a"), slot("b")])).toEqual({});
    expect(plan(-2, [slot("a")])).toEqual({});
    expect(plan(5, [slot("a", { ready: false }), slot("b", { ready: false })])).toEqual({});
  });

  it("several: a credit for each one without any; the rest held back until a node shows it has work", () => {
    expect(plan(10, [slot("a"), slot("b"), slot("c", { outstanding: 1 })])).toEqual({ a: 1, b: 1 });
  });

  it("the rest goes to the busy connections in proportion to the work each took since its last grant", () => {
    expect(plan(6, [slot("a", { assignedSinceGrant: 3 }), slot("b", { outstanding: 1 })])).toEqual({ a: 6 });
    expect(plan(7, [slot("a", { assignedSinceGrant: 1, lastGrantAt: 5 }), slot("b", { assignedSinceGrant: 2, lastGrantAt: 4 })])).toEqual({ a: 2, b: 5 });
    expect(plan(8, [slot("a", { assignedSinceGrant: 3, lastGrantAt: 5 }), slot("b", { assignedSinceGrant: 3, lastGrantAt: 4 })])).toEqual({ a: 4, b: 4 });
    expect(plan(9, [slot("a", { assignedSinceGrant: 1, lastGrantAt: 5 }), slot("b", { assignedSinceGrant: 1, lastGrantAt: 4 })])).toEqual({ a: 4, b: 5 });
  });

  it("holds one credit back for each connection that is not ready yet", () => {
    expect(plan(3, [slot("a", { assignedSinceGrant: 1 }), slot("b", { ready: false })])).toEqual({ a: 2 });
    expect(plan(1, [slot("a", { assignedSinceGrant: 1 }), slot("b", { ready: false })])).toEqual({ a: 1 });
  });

  it("when short: the connection that waited longest goes first, then a busy one, then the least recently granted", () => {
    const now = 10_000;
    expect(plan(1, [slot("a", { assignedSinceGrant: 1, zeroSince: now - 10 }), slot("b", { zeroSince: now - 5_000 })], now)).toEqual({ b: 1 });
    expect(plan(1, [slot("a", { zeroSince: now - 10, lastGrantAt: 1 }), slot("b", { assignedSinceGrant: 1, zeroSince: now - 10, lastGrantAt: 9 })], now)).toEqual({ b: 1 });
    expect(plan(1, [slot("a", { lastGrantAt: 9 }), slot("b", { lastGrantAt: 1 })], now)).toEqual({ b: 1 });
  });

  it("never grants more than is free, whatever the connections", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -3, max: 50 }),
        fc.array(fc.record({ ready: fc.boolean(), outstanding: fc.integer({ min: 0, max: 5 }), assignedSinceGrant: fc.integer({ min: 0, max: 3 }), lastGrantAt: fc.nat(100), zeroSince: fc.option(fc.nat(10_000)) }), { minLength: 1, maxLength: 6 }),
        (free, raw) => {
          const slots = raw.map((r, i) => slot(`c${i}`, r));
          const grants = planCredits(free, slots, { now: 10_000, fairnessWaitMs: 2_000, capacity: 60, activeMs: 500 });
          const total = [...grants.values()].reduce((a, b) => a + b, 0);
          expect(total).toBeLessThanOrEqual(Math.max(0, free));
          for (const [key, n] of grants) {
            expect(n).toBeGreaterThan(0);
            expect(slots.find((x) => x.key === key)!.ready).toBe(true);
          }
          // Nobody ready goes without a credit while the floor is not covered.
          const empty = slots.filter((x) => x.ready && x.outstanding === 0);
          if (free >= empty.length) for (const x of empty) expect(grants.get(x.key) ?? 0).toBeGreaterThanOrEqual(1);
        },
      ),
    );
  });

  it("withdraws credit only when another waits with none and nothing is free: down to the fair share, or an idle one's to its probe", () => {
    const now = 10_000;
    const busy = slot("a", { outstanding: 7, lastGrantAt: now - 10, lastAssignAt: now - 5 });
    const waiting = slot("b", { outstanding: 0, assignedSinceGrant: 1, lastAssignAt: now - 5 });
    const opts = { now, free: 0, capacity: 8, idleMs: 2_000, activeMs: 500 };
    expect(pickWithdraw([busy, waiting], opts)).toEqual({ key: "a", n: 3 }); // down to 8 / 2
    expect(pickWithdraw([busy, waiting], { ...opts, free: 1 })).toBeNull(); // free capacity covers it
    expect(pickWithdraw([busy, slot("b", { outstanding: 1 })], opts)).toBeNull(); // nobody waits
    expect(pickWithdraw([{ ...busy, withdrawing: true }, waiting], opts)).toBeNull(); // one at a time
    expect(pickWithdraw([{ ...busy, outstanding: 4 }, waiting], opts)).toBeNull(); // at its fair share
    const idle = { ...busy, outstanding: 3, lastGrantAt: 1_000, lastAssignAt: 1_000 };
    expect(pickWithdraw([idle, waiting], opts)).toEqual({ key: "a", n: 2 }); // idle: all but its probe…
    expect(pickWithdraw([{ ...idle, outstanding: 1 }, waiting], { ...opts, capacity: 1 })).toEqual({ key: "a", n: 1 }); // …or all, when probes cannot go round
    expect(pickWithdraw([busy, { ...waiting, ready: false }], opts)).toBeNull(); // the one without is not connected
  });
});

describe("cluster view → connections", () => {
  const view = (nodes: Array<[string, string]>, leaders: Array<string | null>) => ({
    nodes: nodes.map(([id, address]) => ({ id, address, state: "ready" })),
    shards: leaders.map((leader, id) => ({ id, range: [id, id], replicas: [], leader, epoch: 1, commitIndex: 0 })),
  });

  it("one connection per leader, dialed at its address with the scheme of the URL that answered", () => {
    const v = view([["n1", "10.0.0.1:7070"], ["n2", "10.0.0.2:7070"], ["n3", "10.0.0.3:7070"]], ["n2", "n1", "n2", null]);
    expect(leaderTargets(v, "http://10.0.0.9:7070")).toEqual({ targets: [{ url: "ws://10.0.0.2:7070/v1/workers", nodeId: "n2" }, { url: "ws://10.0.0.1:7070/v1/workers", nodeId: "n1" }], problems: [] });
    expect(leaderTargets(v, "https://cw.example.com")!.targets[0]!.url).toBe("wss://10.0.0.2:7070/v1/workers");
  });

  it("uses the URL that answered for the node it reaches for sure: the only node, or the one at its own address", () => {
    expect(leaderTargets(view([["solo", "0.0.0.0:0"]], ["solo", "solo"]), "https://proxy.example.com/cw")).toEqual({ targets: [{ url: "wss://proxy.example.com/cw/v1/workers", nodeId: "solo" }], problems: [] });
    const two = view([["n1", "10.0.0.1:80"], ["n2", "10.0.0.2:7070"]], ["n1", "n2"]);
    expect(leaderTargets(two, "http://10.0.0.1/prefix")!.targets.map((t) => t.url)).toEqual(["ws://10.0.0.1/prefix/v1/workers", "ws://10.0.0.2:7070/v1/workers"]);
  });

  it("reports leaders it cannot dial; refuses what is not a cluster view", () => {
    const v = view([["n1", "0.0.0.0:7070"], ["n2", "10.0.0.2:0"], ["n3", "10.0.0.3:7070"]], ["n1", "n2", "n3", "ghost"]);
    const found = leaderTargets(v, "http://10.0.0.9:7070")!;
    expect(found.targets).toEqual([{ url: "ws://10.0.0.3:7070/v1/workers", nodeId: "n3" }]);
    expect(found.problems).toHaveLength(3);
    expect(leaderTargets({ nodes: [] }, "http://x:1")).toBeNull();
    expect(leaderTargets("<html>", "http://x:1")).toBeNull();
    expect(leaderTargets({ nodes: [{ id: 1 }], shards: [] }, "http://x:1")).toBeNull();
  });

  it("derives the HTTP base of a configured worker URL", () => {
    expect(httpBase("ws://10.0.0.5:7070/v1/workers")).toBe("http://10.0.0.5:7070");
    expect(httpBase("https://cw.example.com/cw/")).toBe("https://cw.example.com/cw");
    expect(() => httpBase("ftp://x")).toThrow(TypeError);
  });
});
