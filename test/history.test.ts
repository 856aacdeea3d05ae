/**
 * Execution history on a real server process: finished executions outlive the memory window
 * (listed, paged, read by id, across a restart), and a kill -9 during heavy ingest loses no
 * acknowledged terminal execution from history and writes none twice (checked in the SQLite files
 * themselves, where a duplicate row could not hide behind the API's merge).
 */
import fs from "node:fs";
import path from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { NonRetryableError, Worker } from "../src/client/index.js";
import { HistoryDb } from "../src/history/history-db.js";
import { request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";
import { TcpProxy } from "./support/tcp-proxy.js";

const servers: ServerProcess[] = [];
const workers: Worker[] = [];
const proxies: TcpProxy[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close({ graceful: false })));
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  await Promise.all(proxies.map((p) => p.close()));
});

async function newWorker(base: string, handler: (n: number) => unknown, concurrency = 16): Promise<Worker> {
  const w = new Worker({ url: base, queues: ["h"], concurrency, shutdownSignals: false, reconnect: { initialMs: 20, maxMs: 200 }, handler: async (ctx) => handler((ctx.payload as { n: number }).n) });
  w.on("error", () => {});
  workers.push(w);
  await w.start();
  return w;
}

async function enqueue(base: string, from: number, count: number, extra: Record<string, unknown> = {}): Promise<string[]> {
  const res = await request(base, "POST", "/v1/executions/batch", { executions: Array.from({ length: count }, (_, i) => ({ queue: "h", payload: { n: from + i }, ...extra })) });
  expect(res.status).toBe(200);
  return (res.body.results as Array<{ status: number; execution: { id: string } }>).map((r) => {
    expect(r.status).toBe(201);
    return r.execution.id;
  });
}

/** Every item of a listing, page by page. */
async function listAll(base: string, query: string, limit: number): Promise<any[]> {
  const items: any[] = [];
  let cursor: string | null = null;
  do {
    const res: any = await request(base, "GET", `${query}${query.includes("?") ? "&" : "?"}limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    items.push(...res.body.executions);
    cursor = res.body.nextCursor;
  } while (cursor);
  return items;
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every row of every shard's history file, decoded (the server must be stopped). */
function historyRows(historyDir: string): Array<{ id: string; state: string; result: unknown }> {
  const rows = [];
  for (const file of fs.readdirSync(historyDir).filter((f) => f.endsWith(".sqlite"))) {
    const db = new HistoryDb(path.join(historyDir, file));
    rows.push(...db.list({ tenant: "default", limit: 10_000_000, examineMax: Number.MAX_SAFE_INTEGER }).items);
    db.close();
  }
  return rows;
}

describe("execution history", () => {
  it("keeps finished executions past the memory window: listed in order, paged, read by id, and again after a restart", async () => {
    const dataDir = tempDir("history");
    const args = ["--shards", "2", "--finished-in-memory", "10"];
    let server = await startServer(dataDir, args);
    servers.push(server);
    const ids = await enqueue(server.base, 0, 300);
    await newWorker(server.base, (n) => {
      if (n % 2 === 1) throw new NonRetryableError(`odd ${n}`);
      return { double: n * 2 };
    });
    await until("all 300 to finish", async () => (await listAll(server.base, "/v1/executions?queue=h&state=succeeded", 1000)).length === 150 && (await listAll(server.base, "/v1/dead-letters?queue=h", 1000)).length === 150);

    const check = async (base: string) => {
      const succeeded = await listAll(base, "/v1/executions?queue=h&state=succeeded", 37);
      expect(new Set(succeeded.map((e) => e.id)).size).toBe(150);
      for (const e of succeeded) expect(e.result).toEqual({ double: e.payload.n * 2 });
      // Newest finished first.
      const times = succeeded.map((e) => Date.parse(e.finishedAt));
      expect(times).toEqual([...times].sort((a, b) => b - a));
      const dead = await listAll(base, "/v1/dead-letters?queue=h", 41);
      expect(new Set(dead.map((e) => e.id)).size).toBe(150);
      for (const e of dead) {
        expect(e.state).toBe("failed");
        expect(e.reason).toBe("non-retryable");
        expect(e.attempts).toHaveLength(1);
        expect(e.attempts[0].error.message).toBe(`odd ${e.payload.n}`);
      }
      // The first ones finished long before the last 10 per shard: memory forgot them, history did not.
      for (const id of ids.slice(0, 4)) {
        const res = await request(base, "GET", `/v1/executions/${id}`);
        expect(res.status, JSON.stringify(res.body)).toBe(200);
        expect(res.body.id).toBe(id);
        expect(["succeeded", "failed"]).toContain(res.body.state);
      }
      const all = await listAll(base, "/v1/executions?queue=h", 100);
      expect(all.map((e) => e.id).sort()).toEqual([...ids].sort());
    };
    await check(server.base);

    await server.stop();
    servers.splice(servers.indexOf(server), 1);
    server = await startServer(dataDir, args);
    servers.push(server);
    await check(server.base);
    const missing = await request(server.base, "GET", "/v1/executions/x0000nosuchexecution");
    expect(missing.status).toBe(404);
  }, 60_000);

  it("dedup outlives memory: a one-time job PUT again does not fire again; an idempotency key answers from history, or 409 for another body", async () => {
    const server = await startServer(tempDir("history-dedup"), ["--shards", "1", "--finished-in-memory", "1"]);
    servers.push(server);
    const w = new Worker({ url: server.base, queues: ["d"], shutdownSignals: false, handler: async (ctx) => ctx.payload });
    w.on("error", () => {});
    workers.push(w);
    await w.start();
    const finished = async (query: string, n: number) =>
      until(`${n} finished for ${query}`, async () => (await listAll(server.base, `/v1/executions?${query}&state=succeeded`, 100)).length >= n);
    const at = new Date(Date.now() + 300).toISOString();
    expect((await request(server.base, "PUT", "/v1/jobs/once", { queue: "d", at })).status).toBe(201);
    await finished("jobId=once", 1);
    const keyed = await request(server.base, "POST", "/v1/executions", { queue: "d", idempotencyKey: "k", payload: { a: 1 } });
    expect(keyed.status).toBe(201);
    await finished("queue=d", 2);
    // Others end after them: memory (one finished execution per shard) forgets both.
    for (let i = 0; i < 3; i++) expect((await request(server.base, "POST", "/v1/executions", { queue: "d", payload: { other: i } })).status).toBe(201);
    await finished("queue=d", 5);

    expect((await request(server.base, "PUT", "/v1/jobs/once", { queue: "d", at })).status).toBe(200);
    await new Promise((r) => setTimeout(r, 1_000));
    const onceRuns = await listAll(server.base, "/v1/executions?jobId=once", 100);
    expect(onceRuns.map((e) => e.id)).toEqual([`once:${Date.parse(at)}`]);

    const again = await request(server.base, "POST", "/v1/executions", { queue: "d", idempotencyKey: "k", payload: { a: 1 } });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body.id).toBe(keyed.body.id);
    expect(again.body.state).toBe("succeeded");
    expect(again.body.result).toEqual({ a: 1 });
    const other = await request(server.base, "POST", "/v1/executions", { queue: "d", idempotencyKey: "k", payload: { a: 2 } });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("conflict");
    expect(other.body.error.details).toEqual({ executionId: keyed.body.id });
    expect((await listAll(server.base, "/v1/executions?queue=d", 100)).length).toBe(5);
  }, 60_000);

  it("loses no acknowledged terminal execution and writes none twice through a kill -9 during heavy ingest", async () => {
    const dataDir = tempDir("history-kill");
    let server = await startServer(dataDir, ["--shards", "4", "--finished-in-memory", "100"]);
    servers.push(server);
    // The worker reaches the server through a proxy, which follows it to its new port after the restart.
    const proxy = await TcpProxy.start("127.0.0.1", server.port);
    proxies.push(proxy);
    const enqueued: string[] = [];
    const succeeded = new Set<string>();
    const w = await newWorker(proxy.endpoint, (n) => n, 64);
    w.on("completed", (c: { id: string; outcome: string }) => {
      if (c.outcome === "succeeded") succeeded.add(c.id);
    });
    let stop = false;
    const producer = (async () => {
      let n = 0;
      while (!stop) {
        try {
          enqueued.push(...(await enqueue(server.base, n, 200, { leaseMs: 2_000 })));
          n += 200;
        } catch {
          // the kill cut this batch: its outcome is unknown, which is allowed
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    // Long enough for the history thread to have committed a few times (every second): the kill
    // then leaves each shard's file with a watermark inside its log, rows on both sides of it.
    const started = Date.now();
    await until("3,000 acknowledged successes", async () => succeeded.size >= 3_000 && Date.now() - started > 3_500);
    await server.kill9();
    servers.splice(servers.indexOf(server), 1);
    const acknowledged = new Set(succeeded);
    server = await startServer(dataDir, ["--shards", "4", "--finished-in-memory", "100"]);
    proxy.retarget("127.0.0.1", server.port);
    servers.push(server);
    const recoveredLines = () => [...server.output().matchAll(/"lastIndex":(\d+),"historyAt":(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
    await until("every shard's recovery log line", async () => recoveredLines().length === 4);
    const recovered = recoveredLines();
    expect(recovered.some(([last, historyAt]) => historyAt > 0 && historyAt < last), JSON.stringify(recovered)).toBe(true);
    await until("more successes after the restart", async () => succeeded.size >= acknowledged.size + 2_000);
    stop = true;
    await producer;
    // Everything acknowledged as enqueued ends (claims cut by the kill come back when their lease runs out).
    await until(
      "every enqueued execution to succeed",
      async () => (await listAll(server.base, "/v1/executions?queue=h&state=succeeded", 1000)).length >= enqueued.length,
      60_000,
    );
    await server.stop();
    servers.splice(servers.indexOf(server), 1);

    const rows = historyRows(path.join(dataDir, "history"));
    const count = new Map<string, number>();
    for (const r of rows) count.set(r.id, (count.get(r.id) ?? 0) + 1);
    const twice = [...count].filter(([, n]) => n > 1).map(([id]) => id);
    expect(twice, `written twice: ${twice.slice(0, 5).join(", ")}`).toEqual([]);
    const missing = enqueued.filter((id) => !count.has(id));
    expect(missing, `not in history: ${missing.slice(0, 5).join(", ")}`).toEqual([]);
    const lostAcks = [...acknowledged].filter((id) => !count.has(id));
    expect(lostAcks).toEqual([]);
    for (const r of rows) expect(r.state).toBe("succeeded");
  }, 120_000);

  it("filters executions by a label of their job, from memory and history as one", async () => {
    const server = await startServer(tempDir("history-label"), ["--shards", "2", "--finished-in-memory", "2"]);
    servers.push(server);
    const jobs = { "lab-a": { team: "x" }, "lab-b": { team: "y" }, "lab-c": { team: "x", tier: "gold" } };
    for (const [id, labels] of Object.entries(jobs)) expect((await request(server.base, "PUT", `/v1/jobs/${id}`, { queue: "h", labels })).status).toBe(201);
    const triggered: Record<string, string[]> = { "lab-a": [], "lab-b": [], "lab-c": [] };
    for (let round = 0; round < 4; round++) {
      for (const id of Object.keys(jobs)) triggered[id]!.push((await request(server.base, "POST", `/v1/jobs/${id}/trigger`, { payload: { n: round } })).body.id);
    }
    await newWorker(server.base, (n) => ({ n }));
    await until("12 succeeded", async () => (await listAll(server.base, "/v1/executions?state=succeeded", 100)).length === 12);
    const byLabel = async (label: string) => (await listAll(server.base, `/v1/executions?label=${encodeURIComponent(label)}`, 3)).map((e) => e.id).sort();
    expect(await byLabel("team=x")).toEqual([...triggered["lab-a"]!, ...triggered["lab-c"]!].sort());
    expect(await byLabel("tier=gold")).toEqual([...triggered["lab-c"]!].sort());
    expect(await byLabel("team=z")).toEqual([]);
    const bad = await request(server.base, "GET", "/v1/executions?label=team");
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.field).toBe("label");
  });
});
