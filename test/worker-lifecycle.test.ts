/**
 * The worker protocol against a real server process: leases, fences, retries with backoff,
 * timeouts, dead letters, replay, cancel reaching a worker, a worker killed with -9, and bad frames.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AssignMessage, CancelMessage } from "../src/gateway/protocol.js";
import { RawWorker } from "./support/raw-worker.js";
import { request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

let server: ServerProcess;
const call = (method: string, p: string, body?: unknown) => request(server.base, method, p, body);
const enqueue = async (body: Record<string, unknown>) => {
  const res = await call("POST", "/v1/executions", body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string };
};
const getExecution = async (id: string) => (await call("GET", `/v1/executions/${id}`)).body;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

beforeAll(async () => {
  server = await startServer(tempDir("workers"), ["--shards", "2"]);
});

afterAll(async () => {
  await server?.stop();
});

describe("worker protocol", () => {
  it("assigns only after a committed claim, within credit, and acks fenced reports", async () => {
    const ids = await Promise.all([1, 2, 3].map((n) => enqueue({ queue: "credit", payload: { n } })));
    const w = await RawWorker.connect(server.base, "w-credit", ["credit"]);
    w.send({ t: "credit", n: 2 });
    await sleep(300);
    const assigned = w.received.filter((m) => m.t === "assign") as AssignMessage[];
    expect(assigned).toHaveLength(2); // never more than the credit
    for (const a of assigned) expect((await getExecution(a.id)).state).toBe("claimed");
    const [a] = assigned;
    w.send({ t: "started", id: a!.id, fence: a!.fence }, { t: "heartbeat", id: a!.id, fence: a!.fence });
    const hb = await w.next((m) => m.t === "ack" && m.of === "heartbeat");
    expect((hb as { leaseDeadline: number }).leaseDeadline).toBeGreaterThanOrEqual(a!.leaseDeadline);
    w.send({ t: "succeeded", id: a!.id, fence: a!.fence, result: { done: true } });
    await w.next((m) => m.t === "ack" && m.of === "succeeded");
    const e = await getExecution(a!.id);
    expect(e).toMatchObject({ state: "succeeded", result: { done: true }, attempt: 1 });
    // A report with a wrong fence changes nothing.
    w.send({ t: "succeeded", id: assigned[1]!.id, fence: assigned[1]!.fence + 1000 });
    await w.next((m) => m.t === "stale" && m.id === assigned[1]!.id);
    expect((await getExecution(assigned[1]!.id)).state).toBe("claimed");
    w.close();
    expect(ids).toHaveLength(3);
  });

  it("withdraw gives back credit not used yet, never more; what is left still assigns", async () => {
    const w = await RawWorker.connect(server.base, "w-withdraw", ["withdraw"]);
    w.send({ t: "credit", n: 5 }, { t: "withdraw", n: 3 });
    expect(await w.next((m) => m.t === "withdrawn")).toEqual({ t: "withdrawn", n: 3 });
    w.send({ t: "withdraw", n: 10 });
    expect(await w.next((m) => m.t === "withdrawn" && m.n !== 3)).toEqual({ t: "withdrawn", n: 2 });
    const { id } = await enqueue({ queue: "withdraw" });
    await sleep(200);
    expect(w.received.some((m) => m.t === "assign")).toBe(false); // no credit left
    w.send({ t: "credit", n: 1 });
    await w.assignment(id);
    w.close();
  });

  it("an idle worker gets a fresh enqueue claimed in the same commit; a backlog keeps its order", async () => {
    const w = await RawWorker.connect(server.base, "w-fresh", ["fresh"]);
    w.send({ t: "credit", n: 1 });
    await sleep(100);
    const { id } = await enqueue({ queue: "fresh" });
    const a = await w.assignment(id);
    expect((await getExecution(id)).state).toBe("claimed");
    w.send({ t: "succeeded", id, fence: a.fence });
    await w.next((m) => m.t === "ack" && m.id === id);
    // Older work waits in the queue: a newer enqueue must not overtake it.
    const older = await enqueue({ queue: "fresh" });
    const other = await RawWorker.connect(server.base, "w-fresh-2", ["fresh"]);
    other.send({ t: "credit", n: 1 });
    const newer = await enqueue({ queue: "fresh" });
    const first = await other.assignment();
    expect(first.id).toBe(older.id);
    expect(newer.id).not.toBe(older.id);
    w.close();
    other.close();
  });

  it("retries a failed attempt after its backoff, then makes a dead letter, which replay brings back", async () => {
    const { id } = await enqueue({
      queue: "retry",
      payload: { x: 1 },
      retry: { maxAttempts: 2, backoff: { type: "fixed", initialMs: 400, maxMs: 400, jitter: "none" } },
    });
    const w = await RawWorker.connect(server.base, "w-retry", ["retry"]);
    w.send({ t: "credit", n: 1 });
    const first = await w.assignment(id);
    const failedAt = Date.now();
    w.send({ t: "failed", id, fence: first.fence, error: { message: "boom" } });
    await w.next((m) => m.t === "ack" && m.of === "failed");
    expect((await getExecution(id)).state).toBe("scheduled");
    w.send({ t: "credit", n: 1 });
    const second = await w.next((m) => m.t === "assign" && m.id === id && (m as AssignMessage).attempt === 2);
    expect(Date.now() - failedAt).toBeGreaterThanOrEqual(400);
    expect((second as AssignMessage).fence).toBeGreaterThan(first.fence);
    w.send({ t: "failed", id, fence: (second as AssignMessage).fence, error: { message: "boom again" } });
    await w.next((m) => m.t === "ack" && m.of === "failed" && m.fence === (second as AssignMessage).fence);
    const dead = await getExecution(id);
    expect(dead).toMatchObject({ state: "failed", attempt: 2 });
    expect(dead.attempts.map((a: { outcome: string }) => a.outcome)).toEqual(["failed", "failed"]);
    const letters = await call("GET", "/v1/dead-letters?queue=retry");
    expect(letters.body.executions.map((e: { id: string }) => e.id)).toContain(id);

    const replayed = await call("POST", `/v1/executions/${id}/replay`);
    expect(replayed.status).toBe(201);
    expect(replayed.body).toMatchObject({ state: "ready", attempt: 0, payload: { x: 1 }, queue: "retry" });
    expect(replayed.body.id).not.toBe(id);
    expect((await call("POST", `/v1/executions/${replayed.body.id}/replay`)).status).toBe(409);
    w.close();
  });

  it("a non-retryable failure is a dead letter at once", async () => {
    const { id } = await enqueue({ queue: "fatal", retry: { maxAttempts: 5 } });
    const w = await RawWorker.connect(server.base, "w-fatal", ["fatal"]);
    w.send({ t: "credit", n: 1 });
    const a = await w.assignment(id);
    w.send({ t: "failed", id, fence: a.fence, error: { message: "bad input" }, retryable: false });
    await w.next((m) => m.t === "ack" && m.of === "failed");
    expect(await getExecution(id)).toMatchObject({ state: "failed", attempt: 1 });
    w.close();
  });

  it("an attempt that runs past its timeout is revoked (cancel frame) and retried", async () => {
    const { id } = await enqueue({ queue: "slow", timeoutMs: 300, leaseMs: 5_000, retry: { maxAttempts: 2, backoff: { type: "fixed", initialMs: 0, maxMs: 0, jitter: "none" } } });
    const w = await RawWorker.connect(server.base, "w-slow", ["slow"]);
    w.send({ t: "credit", n: 2 });
    const a = await w.assignment(id);
    w.send({ t: "started", id, fence: a.fence });
    const cancel = (await w.next((m) => m.t === "cancel" && m.id === id)) as CancelMessage;
    expect(cancel).toMatchObject({ fence: a.fence, reason: "timed-out" });
    const retry = (await w.next((m) => m.t === "assign" && m.id === id && (m as AssignMessage).attempt === 2)) as AssignMessage;
    w.send({ t: "succeeded", id, fence: a.fence });
    await w.next((m) => m.t === "stale" && m.fence === a.fence && m.of === "succeeded");
    w.send({ t: "succeeded", id, fence: retry.fence });
    await w.next((m) => m.t === "ack" && m.fence === retry.fence && m.of === "succeeded");
    const e = await getExecution(id);
    expect(e.attempts.map((x: { outcome: string }) => x.outcome)).toEqual(["timed-out", "succeeded"]);
    w.close();
  });

  it("cancel over HTTP reaches the running worker", async () => {
    const { id } = await enqueue({ queue: "cancel-me" });
    const w = await RawWorker.connect(server.base, "w-cancel", ["cancel-me"]);
    w.send({ t: "credit", n: 1 });
    const a = await w.assignment(id);
    w.send({ t: "started", id, fence: a.fence });
    await w.next((m) => m.t === "ack" && m.of === "started");
    expect((await call("POST", `/v1/executions/${id}/cancel`)).body.state).toBe("canceled");
    expect(await w.next((m) => m.t === "cancel" && m.id === id)).toMatchObject({ fence: a.fence, reason: "canceled" });
    w.send({ t: "succeeded", id, fence: a.fence });
    await w.next((m) => m.t === "stale" && m.id === id);
    expect((await getExecution(id)).state).toBe("canceled");
    w.close();
  });

  it("a worker killed with -9 mid-execution: the lease expires, another worker runs attempt 2, and the late report is stale", async () => {
    const { id } = await enqueue({ queue: "kill", leaseMs: 1_000, retry: { maxAttempts: 3, backoff: { type: "fixed", initialMs: 0, maxMs: 0, jitter: "none" } } });
    const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../dist/test/support/hanging-worker.js");
    const child = spawn(process.execPath, [script, server.base, "kill", "doomed-worker"], { stdio: ["ignore", "pipe", "inherit"] });
    const first = await new Promise<AssignMessage>((resolve) => child.stdout.once("data", (d: Buffer) => resolve(JSON.parse(d.toString()))));
    expect(first).toMatchObject({ id, attempt: 1 });
    expect((await getExecution(id)).state).toBe("running");
    child.kill("SIGKILL");

    const rescuer = await RawWorker.connect(server.base, "rescuer", ["kill"]);
    rescuer.send({ t: "credit", n: 1 });
    const second = await rescuer.assignment(id);
    expect(second.attempt).toBe(2);
    expect(second.fence).toBeGreaterThan(first.fence);
    expect(Date.now()).toBeGreaterThanOrEqual(first.leaseDeadline); // never before the first lease ended
    rescuer.send({ t: "succeeded", id, fence: second.fence });
    await rescuer.next((m) => m.t === "ack" && m.of === "succeeded");

    // The first worker comes back (same worker id) and reports late with its old fence: refused.
    const ghost = await RawWorker.connect(server.base, "doomed-worker", ["kill"]);
    ghost.send({ t: "succeeded", id, fence: first.fence, result: "late" });
    await ghost.next((m) => m.t === "stale" && m.id === id);
    const e = await getExecution(id);
    expect(e).toMatchObject({ state: "succeeded", attempt: 2 });
    expect(e.result).toBeNull();
    expect(e.attempts.map((x: { outcome: string; workerId: string }) => [x.workerId, x.outcome])).toEqual([
      ["doomed-worker", "lease-expired"],
      ["rescuer", "succeeded"],
    ]);
    rescuer.close();
    ghost.close();
  });

  it("a worker that disconnects and reconnects keeps its in-flight execution if it reports within the lease", async () => {
    const { id } = await enqueue({ queue: "reconnect", leaseMs: 3_000 });
    const before = await RawWorker.connect(server.base, "w-flaky", ["reconnect"]);
    before.send({ t: "credit", n: 1 });
    const a = await before.assignment(id);
    before.send({ t: "started", id, fence: a.fence });
    await before.next((m) => m.t === "ack" && m.of === "started");
    before.close();
    await before.closed();
    await sleep(500);
    const after = await RawWorker.connect(server.base, "w-flaky", ["reconnect"]);
    after.send({ t: "heartbeat", id, fence: a.fence }, { t: "succeeded", id, fence: a.fence, result: 42 });
    await after.next((m) => m.t === "ack" && m.of === "succeeded");
    expect(await getExecution(id)).toMatchObject({ state: "succeeded", attempt: 1, result: 42 });
    after.close();
  });

  it("executions with one ordering key run one at a time, in enqueue order", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await enqueue({ queue: "ordered", orderingKey: "customer-7", payload: i })).id);
    const w = await RawWorker.connect(server.base, "w-order", ["ordered"]);
    w.send({ t: "credit", n: 10 });
    const ran: string[] = [];
    for (let i = 0; i < 4; i++) {
      const a = await w.next((m) => m.t === "assign" && !ran.includes((m as AssignMessage).id));
      await sleep(100);
      // Nothing else of the key was handed out while this one runs.
      expect(w.received.filter((m) => m.t === "assign")).toHaveLength(i + 1);
      ran.push((a as AssignMessage).id);
      w.send({ t: "succeeded", id: (a as AssignMessage).id, fence: (a as AssignMessage).fence });
    }
    expect(ran).toEqual(ids);
    w.close();
  });

  it("honors a job's concurrency limit at claim time", async () => {
    await call("PUT", "/v1/jobs/limited", { queue: "limited", concurrency: { limit: 1, overlap: "allow" } });
    for (let i = 0; i < 3; i++) expect((await call("POST", "/v1/jobs/limited/trigger")).status).toBe(201);
    const w = await RawWorker.connect(server.base, "w-limit", ["limited"]);
    w.send({ t: "credit", n: 3 });
    const first = await w.assignment();
    await sleep(300);
    expect(w.received.filter((m) => m.t === "assign")).toHaveLength(1);
    w.send({ t: "succeeded", id: first.id, fence: first.fence });
    await waitFor("second assignment", async () => (w.received.filter((m) => m.t === "assign").length === 2 ? true : undefined));
    w.close();
  });

  it("a job's next execution carries the previous run's result", async () => {
    await call("PUT", "/v1/jobs/chained", { queue: "chained" });
    const w = await RawWorker.connect(server.base, "w-chain", ["chained"]);
    w.send({ t: "credit", n: 1 });
    await call("POST", "/v1/jobs/chained/trigger");
    const first = await w.assignment();
    expect(first.previousResult).toBeUndefined();
    w.send({ t: "succeeded", id: first.id, fence: first.fence, result: { cursor: 17 } }, { t: "credit", n: 1 });
    await w.next((m) => m.t === "ack" && m.of === "succeeded");
    await call("POST", "/v1/jobs/chained/trigger");
    const second = (await w.next((m) => m.t === "assign" && m.id !== first.id)) as AssignMessage;
    expect(second.previousResult).toEqual({ cursor: 17 });
    w.close();
  });

  it("a malformed frame closes only that connection; the node keeps serving", async () => {
    const bad = await RawWorker.connect(server.base, "w-bad", ["x"]);
    bad.sendRaw(Buffer.from([0xc1, 0xff, 0x00]));
    const error = await bad.next((m) => m.t === "error");
    expect(error).toMatchObject({ code: "invalid_argument" });
    await bad.closed();
    // A result JSON cannot carry (a 64-bit integer decodes as a BigInt) is refused the same way.
    const big = await RawWorker.connect(server.base, "w-bigint", ["x"]);
    big.send({ t: "succeeded", id: "x0000nothing", fence: 1, result: 2n ** 63n } as never);
    expect(await big.next((m) => m.t === "error" || m.t === "stale")).toMatchObject({ t: "error", code: "invalid_argument" });
    await big.closed();
    const good = await RawWorker.connect(server.base, "w-good", ["x"]);
    good.close();
    expect((await call("GET", "/healthz")).status).toBe(200);
  });
});
