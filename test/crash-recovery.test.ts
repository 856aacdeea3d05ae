/**
 * kill -9 of a real server process during 10,000 job creations: after restart every acknowledged
 * job exists, and the jobs fire on time.
 */
import { afterAll, describe, expect, it } from "vitest";
import { request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

const JOBS = 10_000;
const IN_FLIGHT = 64;
const EVERY_MS = 5_000;

let server: ServerProcess | undefined;
afterAll(async () => {
  await server?.stop();
});

describe("crash recovery", () => {
  it("keeps every acknowledged job through kill -9, and fires them on time after restart", async () => {
    const dataDir = tempDir("crash");
    server = await startServer(dataDir, ["--shards", "4", "--fsync", "batch"]);
    const acked = new Set<string>();
    let next = 0;
    let killed = false;
    const killAt = Math.floor(JOBS * 0.6);

    const creator = async () => {
      while (next < JOBS && !killed) {
        const id = `crash-${next++}`;
        try {
          const res = await request(server!.base, "PUT", `/v1/jobs/${id}`, { queue: "crash", every: EVERY_MS });
          if (res.status === 201) acked.add(id);
        } catch {
          // connection reset by the kill: the outcome of this create is unknown, which is allowed
        }
        if (!killed && acked.size >= killAt) {
          killed = true;
          await server!.kill9();
        }
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, creator));
    expect(killed).toBe(true);
    expect(acked.size).toBeGreaterThanOrEqual(killAt);

    server = await startServer(dataDir, ["--shards", "4", "--fsync", "batch"]);
    const restartedAt = Date.now();

    // Every acknowledged job is there.
    const found = new Set<string>();
    let cursor: string | null = null;
    do {
      const res: any = await request(server.base, "GET", `/v1/jobs?queue=crash&limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      for (const j of res.body.jobs) found.add(j.id);
      cursor = res.body.nextCursor;
    } while (cursor);
    const lost = [...acked].filter((id) => !found.has(id));
    expect(lost, `lost ${lost.length} acknowledged jobs, e.g. ${lost.slice(0, 5).join(", ")}`).toEqual([]);

    // And they fire on time: every sampled job has a fire due after the restart, created within 1 s of its time.
    await new Promise((r) => setTimeout(r, EVERY_MS + 1_500));
    const sample = [...acked].filter((_, i) => i % 100 === 0);
    for (const id of sample) {
      const res: any = await request(server.base, "GET", `/v1/executions?jobId=${id}&limit=20`);
      const afterRestart = res.body.executions.filter((e: any) => Date.parse(e.scheduledAt) > restartedAt + 500);
      expect(afterRestart.length, `job ${id} did not fire after restart`).toBeGreaterThanOrEqual(1);
      for (const e of afterRestart) {
        expect(Date.parse(e.createdAt) - Date.parse(e.scheduledAt), `job ${id} fired late`).toBeLessThan(1_000);
      }
    }
  });
});
