/**
 * The audit trail: on a real server with named tokens, every change to a job or an execution is
 * listed with its principal and outcome (refused changes too), filtered, paged, kept across a
 * kill -9 without a duplicate; bad filters answer 400 with the field. And the storage layer's
 * paging across shards, against a sorted array as the model.
 */
import fs from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { AUDIT_ACTIONS, auditPosition, type AuditRecord } from "../src/core/audit.js";
import { mergePages } from "../src/core/list-order.js";
import { DAY_MS, HistoryDb } from "../src/history/history-db.js";
import type { AuditRow } from "../src/history/audit-tables.js";
import { BIN, request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const servers: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

const ADMIN = { authorization: "Bearer admin-token-0001" };
const DEPLOY = { authorization: "Bearer deploy-token-0001" };
const OTHER = { authorization: "Bearer other-token-0001" };

async function auditAll(base: string, query: string, headers: Record<string, string>, limit: number): Promise<any[]> {
  const out: any[] = [];
  let cursor: string | null = null;
  do {
    const res: any = await request(base, "GET", `/v1/audit?${query}${query ? "&" : ""}limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`, undefined, headers);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    out.push(...res.body.entries);
    cursor = res.body.nextCursor;
  } while (cursor);
  return out;
}

describe("audit trail on a server", () => {
  it("records each change with its principal and outcome, lists it newest first, and keeps it across kill -9", async () => {
    const dir = tempDir("audit");
    const tokens = path.join(dir, "tokens.json");
    fs.writeFileSync(
      tokens,
      JSON.stringify({
        tokens: [
          { token: "admin-token-0001", tenant: "acme", role: "admin", name: "ops" },
          { token: "deploy-token-0001", tenant: "acme", role: "client", name: "deploy-bot" },
          { token: "other-token-0001", tenant: "globex", role: "client" },
        ],
      }),
    );
    const args = ["--shards", "3", "--tokens", tokens];
    let server = await startServer(path.join(dir, "data"), args);
    servers.push(server);
    const job = { queue: "q", cron: "0 * * * *" };
    const call = async (method: string, url: string, body: unknown, headers: Record<string, string>, status: number) => {
      const res = await request(server.base, method, url, body, headers);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      return res.body;
    };
    await call("PUT", "/v1/jobs/nightly", job, DEPLOY, 201);
    await call("PUT", "/v1/jobs/nightly", { ...job, payload: { v: 2 } }, DEPLOY, 200);
    await call("PUT", "/v1/jobs/nightly", job, { ...DEPLOY, "if-match": "1" }, 409); // refused in the log: the version is 2
    await call("POST", "/v1/jobs/nightly/pause", undefined, ADMIN, 200);
    await call("POST", "/v1/jobs/nightly/resume", undefined, ADMIN, 200);
    const triggered = await call("POST", "/v1/jobs/nightly/trigger", { payload: { n: 1 }, idempotencyKey: "k1" }, DEPLOY, 201);
    await call("POST", `/v1/executions/${encodeURIComponent(triggered.id)}/cancel`, undefined, ADMIN, 200);
    await call("POST", "/v1/jobs/nightly/backfill", { from: "2026-01-01T00:00:00Z", to: "2026-01-01T03:00:00Z" }, DEPLOY, 200);
    for (let i = 0; i < 12; i++) await call("PUT", `/v1/jobs/other-${i}`, job, DEPLOY, 201);
    await call("DELETE", "/v1/jobs/nightly", undefined, ADMIN, 200);
    await call("PUT", "/v1/jobs/globex-job", job, OTHER, 201);

    const nightly = await auditAll(server.base, "jobId=nightly", ADMIN, 100);
    expect(nightly.map((e) => [e.action, e.outcome, e.principal?.name ?? null])).toEqual([
      ["job.delete", "ok", "ops"],
      ["job.backfill", "ok", "deploy-bot"],
      ["exec.cancel", "ok", "ops"],
      ["job.trigger", "ok", "deploy-bot"],
      ["job.resume", "ok", "ops"],
      ["job.pause", "ok", "ops"],
      ["job.put", "conflict", "deploy-bot"],
      ["job.put", "ok", "deploy-bot"],
      ["job.put", "ok", "deploy-bot"],
    ]);
    expect(nightly[0].principal).toEqual({ tenant: "acme", role: "admin", name: "ops" });
    expect(nightly[0].details).toMatchObject({ version: 2, cancelRunning: false });
    expect(nightly[3]).toMatchObject({ executionId: triggered.id, details: { created: true, idempotencyKey: "k1", payload: { n: 1 } } });
    expect(nightly[2].executionId).toBe(triggered.id);
    expect(nightly[1].details).toMatchObject({ from: "2026-01-01T00:00:00.000Z", to: "2026-01-01T03:00:00.000Z", created: 3 });
    expect(nightly[6].details).toMatchObject({ ifMatch: 1 });
    expect(nightly[7].details).toMatchObject({ version: 2, created: false, spec: { payload: { v: 2 } } });
    expect(nightly[8].details).toMatchObject({ version: 1, created: true });

    // The whole trail, paged across three shards in small pages: newest first, each entry once.
    const all = await auditAll(server.base, "", ADMIN, 4);
    expect(all).toHaveLength(9 + 12);
    expect(new Set(all.map((e) => e.id)).size).toBe(all.length);
    for (let i = 1; i < all.length; i++) {
      const [a, b] = [all[i - 1], all[i]];
      expect(a.at > b.at || (a.at === b.at && a.id > b.id), `${a.id} before ${b.id}`).toBe(true);
    }
    // Filters: action, and a time range; tenants see their own trail only.
    expect((await auditAll(server.base, "action=job.pause", ADMIN, 10)).map((e) => e.jobId)).toEqual(["nightly"]);
    const putsAfter = await auditAll(server.base, `action=job.put&from=${encodeURIComponent(nightly[4].at)}`, ADMIN, 100);
    expect(putsAfter.map((e) => e.jobId).sort()).toEqual(Array.from({ length: 12 }, (_, i) => `other-${i}`).sort());
    const globex = await auditAll(server.base, "", OTHER, 10);
    expect(globex.map((e) => [e.jobId, e.principal])).toEqual([["globex-job", { tenant: "globex", role: "client" }]]);

    // Bad input names the field.
    for (const [query, field] of [["action=job.explode", "action"], ["from=yesterday", "from"], ["cursor=bm9wZQ", "cursor"], ["limit=0", "limit"], ["verb=x", "verb"]]) {
      const res = await request(server.base, "GET", `/v1/audit?${query}`, undefined, ADMIN);
      expect(res.status, query).toBe(400);
      expect(res.body.error).toMatchObject({ code: "invalid_argument", details: { field } });
    }
    // Workers do not read the trail.
    expect((await request(server.base, "GET", "/v1/audit", undefined, {})).status).toBe(401);

    // kill -9: what was committed or is still in the log comes back, once.
    await server.kill9();
    server = await startServer(path.join(dir, "data"), args);
    servers.push(server);
    const after = await auditAll(server.base, "", ADMIN, 100);
    expect(after.map((e) => e.id)).toEqual(all.map((e) => e.id));

    // The CLI prints it as a table.
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, "audit", "--job", "nightly", "--action", "job.put", "--url", server.base, "--token", "admin-token-0001"]);
    expect(stdout).toMatch(/^AT\s+ACTION\s+JOB\s+EXECUTION\s+BY\s+OUTCOME\s+DETAILS/);
    expect(stdout).toContain("acme/client/deploy-bot");
    expect(stdout.trim().split("\n")).toHaveLength(4);
  }, 90_000);

  it("answers not_found when history is off", async () => {
    const server = await startServer(tempDir("audit-off"), ["--history", "off"]);
    servers.push(server);
    const res = await request(server.base, "GET", "/v1/audit");
    expect(res.status).toBe(404);
    expect(res.body.error.message).toMatch(/history/);
  });
});

describe("audit tables", () => {
  const T0 = Date.UTC(2026, 2, 1, 23, 59, 0);

  it("page across shards like one sorted list, with any page size and filter (fast-check)", () => {
    const dir = tempDir("audit-db");
    const dbs = [0, 1, 2].map((s) => new HistoryDb(path.join(dir, `s${s}.sqlite`)));
    const model: AuditRecord[] = [];
    // Three shards' entries over two days, several in the same milliseconds.
    dbs.forEach((db, shard) => {
      const rows: AuditRow[] = [];
      let at = T0;
      for (let index = 1; index <= 60; index++) {
        at += (index * (shard + 3)) % 4 === 0 ? 0 : 7_000 * (shard + 1);
        const row: AuditRow = {
          index,
          at,
          tenant: index % 7 === 0 ? "other" : "t",
          action: AUDIT_ACTIONS[(index + shard) % AUDIT_ACTIONS.length]!,
          jobId: index % 5 === 0 ? null : `job-${index % 3}`,
          executionId: null,
          by: { role: "client" },
          outcome: "ok",
          details: { n: index },
        };
        rows.push(row);
        const { index: _index, ...entry } = row;
        model.push({ ...entry, id: `${String(shard).padStart(4, "0")}-${String(index).padStart(12, "0")}` });
      }
      db.append([], 60, rows);
      db.commit();
    });
    model.sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 25 }),
        fc.option(fc.constantFrom("job-0", "job-1", "job-2"), { nil: undefined }),
        fc.option(fc.constantFrom(...AUDIT_ACTIONS), { nil: undefined }),
        fc.option(fc.integer({ min: T0, max: T0 + 400_000 }), { nil: undefined }),
        fc.option(fc.integer({ min: T0, max: T0 + 800_000 }), { nil: undefined }),
        (limit, jobId, action, fromMs, toMs) => {
          const expected = model.filter(
            (e) => e.tenant === "t" && (jobId === undefined || e.jobId === jobId) && (action === undefined || e.action === action) && (fromMs === undefined || e.at >= fromMs) && (toMs === undefined || e.at < toMs),
          );
          const got: AuditRecord[] = [];
          let before: { at: number; id: string } | undefined;
          for (let pages = 0; pages < 500; pages++) {
            const parts = dbs.map((db, shard) => ({ items: db.listAudit(shard, { tenant: "t", jobId, action, fromMs, toMs, before, limit }), stoppedAt: null }));
            const page = mergePages(parts, limit, auditPosition).items;
            got.push(...page);
            if (page.length < limit) break;
            before = { at: page[page.length - 1]!.at, id: page[page.length - 1]!.id };
          }
          expect(got.map((e) => e.id)).toEqual(expected.map((e) => e.id));
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 150 },
    );
    for (const db of dbs) db.close();
  });

  it("refuses an entry outside the batch's log range, and drops whole days with retention", () => {
    const db = new HistoryDb(path.join(tempDir("audit-db2"), "s.sqlite"));
    const entry = (index: number, at: number): AuditRow => ({ index, at, tenant: "t", action: "job.put", jobId: "j", executionId: null, by: null, outcome: "ok", details: {} });
    db.append([], 2, [entry(1, T0), entry(2, T0 + DAY_MS)]);
    expect(() => db.append([], 3, [entry(2, T0 + DAY_MS)])).toThrow(/outside/);
    db.commit();
    expect(db.auditCount()).toBe(2);
    expect(db.dropBefore(T0 + DAY_MS)).toEqual([Math.floor(T0 / DAY_MS)]);
    expect(db.listAudit(0, { tenant: "t", limit: 10 }).map((e) => e.at)).toEqual([T0 + DAY_MS]);
    db.close();
  });
});
