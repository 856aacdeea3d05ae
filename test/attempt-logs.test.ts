/**
 * What a handler writes with ctx.log, and its last heartbeat progress, are kept with the attempt:
 * shown on the execution, bounded (100 lines, 16 KiB; the rest counted as dropped), still there
 * once memory forgot the execution and history answers, printed by `cronwheel executions get`.
 * A worker in another language that sends malformed logs gets the protocol's error; one that
 * sends too many gets them bounded by the node.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { Worker } from "../src/client/index.js";
import { RawWorker } from "./support/raw-worker.js";
import { BIN, request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

const servers: ServerProcess[] = [];
const workers: Worker[] = [];
afterAll(async () => {
  await Promise.all(workers.map((w) => w.close({ graceful: false })));
  await Promise.all(servers.map((s) => s.stop()));
});

async function until<T>(what: string, check: () => Promise<T | null>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("attempt logs", () => {
  it("keeps each attempt's ctx.log lines and last progress, bounded, in memory and in history", async () => {
    const server = await startServer(tempDir("attempt-logs"), ["--finished-in-memory", "1"]);
    servers.push(server);
    const worker = new Worker({
      url: server.base,
      queues: ["logs"],
      shutdownSignals: false,
      handler: async (ctx) => {
        ctx.log(`attempt ${ctx.attempt} starts`);
        ctx.log({ payload: ctx.payload });
        await ctx.heartbeat({ pct: 50 * ctx.attempt });
        if (ctx.attempt === 1) {
          for (let i = 0; i < 150; i++) ctx.log(`line ${i}`, "debug");
          ctx.log(new Error("boom"), "error");
          throw new Error("first attempt fails");
        }
        ctx.log("x".repeat(3000), "warn");
        return "ok";
      },
    });
    worker.on("error", () => {});
    workers.push(worker);
    await worker.start();
    const enq = await request(server.base, "POST", "/v1/executions", { queue: "logs", payload: { n: 1 }, retry: { maxAttempts: 2, backoff: { type: "fixed", initialMs: 10 } } });
    expect(enq.status, JSON.stringify(enq.body)).toBe(201);
    const id = enq.body.id as string;
    const done = await until("the execution to succeed", async () => {
      const r = await request(server.base, "GET", `/v1/executions/${id}`);
      return r.body.state === "succeeded" ? r.body : null;
    });
    const check = (e: any) => {
      const [first, second] = e.attempts;
      expect(first.progress).toEqual({ pct: 50 });
      expect(first.logs).toHaveLength(100);
      expect(first.logs.slice(0, 3).map((l: any) => [l.level, l.msg])).toEqual([["info", "attempt 1 starts"], ["info", '{"payload":{"n":1}}'], ["debug", "line 0"]]);
      expect(first.logsDropped).toBe(53); // 2 + 150 + 1 lines, 100 kept
      expect(Date.parse(first.logs[0].at)).toBeGreaterThan(0);
      expect(second.progress).toEqual({ pct: 100 });
      expect(second.logs.map((l: any) => l.level)).toEqual(["info", "info", "warn"]);
      expect(second.logs[2].msg).toHaveLength(1024); // a line is cut at 1,024 characters
      expect(second.logsDropped).toBeUndefined();
    };
    check(done);

    // Memory keeps one finished execution: after another finishes, this one is read from history.
    const other = await request(server.base, "POST", "/v1/executions", { queue: "logs", payload: { n: 2 } });
    await until("the second execution", async () => ((await request(server.base, "GET", `/v1/executions/${other.body.id}`)).body.state === "succeeded" ? true : null));
    await until("the first to be read from history", async () => {
      const r = await request(server.base, "GET", `/v1/executions/${id}`);
      check(r.body);
      return true;
    });
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, "executions", "get", id, "--url", server.base]);
    expect(stdout).toContain("attempt 1 logs (53 more dropped):");
    expect(stdout).toMatch(/^ {2}\S+ INFO {2}attempt 2 starts$/m);
    expect(stdout).toContain('attempt 2 progress: {"pct":100}');
  }, 60_000);

  it("closes a raw worker's connection on malformed logs, and bounds too many", async () => {
    const server = await startServer(tempDir("attempt-logs-raw"));
    servers.push(server);
    for (const n of [1, 2]) expect((await request(server.base, "POST", "/v1/executions", { queue: "raw", payload: { n } })).status).toBe(201);
    const raw = await RawWorker.connect(server.base, "raw-1", ["raw"]);
    raw.send({ t: "credit", n: 2 });
    const a = await raw.assignment();
    const b = await raw.assignment();
    const many = Array.from({ length: 300 }, (_, i) => ({ at: Date.now(), level: "info" as const, msg: `l${i}` }));
    raw.send({ t: "succeeded", id: a.id, fence: a.fence, logs: many, logsDropped: 7 });
    await raw.next((m) => m.t === "ack" && m.id === a.id);
    const e = (await request(server.base, "GET", `/v1/executions/${a.id}`)).body;
    expect(e.attempts[0].logs).toHaveLength(100);
    expect(e.attempts[0].logsDropped).toBe(207);
    raw.send({ t: "succeeded", id: b.id, fence: b.fence, logs: [{ at: "yesterday", level: "loud", msg: 3 }] } as never);
    const error = await raw.next((m) => m.t === "error");
    expect(error).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/logs\[0\]/) });
    await raw.closed();
  });
});
