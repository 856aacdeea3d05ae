/**
 * Worker connection chaos against a real standalone server (fault scenario 10 in docs/jepsen.md, the parts a
 * single node shows): a malformed frame closes only its own connection and the node keeps
 * serving; a worker that stops reading its socket does not make the node buffer without bound.
 */
import { pack } from "msgpackr";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { WS_SEND_BUFFER_BYTES_MAX } from "../src/gateway/gateway.js";
import { RawWorker } from "./support/raw-worker.js";
import { request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

let server: ServerProcess;

beforeAll(async () => {
  server = await startServer(tempDir("worker-chaos"), ["--shards", "2"]);
});

afterAll(async () => {
  await server?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function enqueue(queue: string, payload: unknown): Promise<string> {
  const r = await request(server.base, "POST", "/v1/executions", { queue, payload });
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  return r.body.id as string;
}

/** One gauge's value from /metrics. */
async function metric(name: string): Promise<number> {
  const res = await fetch(`${server.base}/metrics`);
  const line = (await res.text()).split("\n").find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no ${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

/** The node still serves: a healthy worker is assigned new work and its report is acked. */
async function servesAnotherWorker(queue: string): Promise<void> {
  const good = await RawWorker.connect(server.base, `good-${queue}`, [queue]);
  try {
    good.send({ t: "credit", n: 1 });
    const id = await enqueue(queue, { n: 1 });
    const a = await good.assignment(id);
    good.send({ t: "succeeded", id, fence: a.fence });
    await good.next((m) => m.t === "ack" && m.id === id);
  } finally {
    good.close();
  }
}

describe("a malformed frame closes only its own connection", () => {
  test.each([
    // A report cut short mid-message, as a connection reset mid-frame leaves it (if the
    // WebSocket framing still held): the msgpack decoder runs out of bytes.
    ["a truncated msgpack frame", () => Buffer.from(pack([{ t: "heartbeat", id: "x0000000000000000000000000", fence: 1 }])).subarray(0, 20)],
    // 0xc1 is the one byte msgpack never uses.
    ["a garbage binary frame", () => Buffer.from([0xc1, 0xff, 0x00, 0x13, 0x37])],
  ])("%s: that worker gets an error and close code 1008, the others are served", async (_, frame) => {
    const bystander = await RawWorker.connect(server.base, "bystander", ["chaos-b"]);
    const bad = await RawWorker.connect(server.base, "bad", ["chaos-a"]);
    const closed = bad.closed();
    bad.sendRaw(frame());
    expect(await closed).toBe(1008);
    expect(bad.received.find((m) => m.t === "error")).toMatchObject({ code: "invalid_argument" });
    // The connection opened before the bad frame is still served, and so is a new one.
    bystander.send({ t: "credit", n: 1 });
    const id = await enqueue("chaos-b", { n: 2 });
    await bystander.assignment(id);
    bystander.close();
    await servesAnotherWorker("chaos-c");
  });
});

describe("a slow consumer (a worker that stops reading its socket)", () => {
  test("is sent no more than the send-buffer limit (and one assignment), even with credit for everything; others are served; it gets the rest when it reads again", async () => {
    // 160 executions of ~200 KB: 32 MB, far more than the socket buffers and the limit hold. They
    // are ready before the worker gives credit, so one dispatch pass could take them all.
    const count = 160;
    const payload = "x".repeat(200_000);
    const ids: string[] = [];
    for (let i = 0; i < count; i += 16) ids.push(...(await Promise.all(Array.from({ length: Math.min(16, count - i) }, () => enqueue("big", payload)))));
    const slow = await RawWorker.connect(server.base, "slow", ["big"]);
    slow.pauseReading();
    slow.send({ t: "credit", n: 5000 });

    // While it does not read, the node's buffer for it (sampled) stays within the limit and one
    // assignment (before the bound, one dispatch pass queued all 32 MB)...
    let peak = 0;
    for (let i = 0; i < 20; i++) {
      peak = Math.max(peak, await metric("cronwheel_worker_send_buffer_bytes"));
      await sleep(100);
    }
    expect(peak).toBeLessThanOrEqual(WS_SEND_BUFFER_BYTES_MAX + payload.length + 1024);
    // ...because the rest waits in the shard, unassigned, instead of in the node's memory.
    expect(await metric("cronwheel_ready_depth{queue=\"big\"}")).toBeGreaterThan(count / 2);
    await servesAnotherWorker("small");

    // Reading again, it is sent the rest as its buffer drains.
    slow.resumeReading();
    const deadline = Date.now() + 30_000;
    const assigned = () => new Set(slow.received.filter((m) => m.t === "assign").map((m) => (m as { id: string }).id));
    while (assigned().size < count && Date.now() < deadline) await sleep(100);
    expect(assigned().size).toBe(count);
    expect([...assigned()].sort()).toEqual([...ids].sort());
    slow.close();
  }, 60_000);
});
