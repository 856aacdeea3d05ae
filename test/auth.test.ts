import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

let server: ServerProcess;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

beforeAll(async () => {
  const dir = tempDir("auth");
  const tokens = path.join(dir, "tokens.json");
  fs.writeFileSync(
    tokens,
    JSON.stringify({
      tokens: [
        { token: "acme-client-token", tenant: "acme", role: "client" },
        { token: "acme-worker-token", tenant: "acme", role: "worker" },
        { token: "globex-client-token", tenant: "globex", role: "client" },
      ],
    }),
  );
  server = await startServer(path.join(dir, "data"), ["--shards", "2", "--tokens", tokens]);
});

afterAll(async () => {
  await server?.stop();
});

describe("auth and tenants", () => {
  it("refuses requests without a known token (401)", async () => {
    expect((await request(server.base, "GET", "/v1/jobs")).status).toBe(401);
    const res = await request(server.base, "GET", "/v1/jobs", undefined, bearer("not-a-token"));
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthenticated");
  });

  it("refuses a role that may not write (403)", async () => {
    const res = await request(server.base, "PUT", "/v1/jobs/j", { queue: "q" }, bearer("acme-worker-token"));
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("permission_denied");
  });

  it("keeps tenants apart: another tenant's job and execution are not found", async () => {
    expect((await request(server.base, "PUT", "/v1/jobs/shared-name", { queue: "q" }, bearer("acme-client-token"))).status).toBe(201);
    expect((await request(server.base, "GET", "/v1/jobs/shared-name", undefined, bearer("globex-client-token"))).status).toBe(404);
    // The same id in another tenant is another job.
    expect((await request(server.base, "PUT", "/v1/jobs/shared-name", { queue: "other" }, bearer("globex-client-token"))).status).toBe(201);
    expect((await request(server.base, "GET", "/v1/jobs/shared-name", undefined, bearer("acme-client-token"))).body.queue).toBe("q");

    const e = await request(server.base, "POST", "/v1/executions", { queue: "q" }, bearer("acme-client-token"));
    expect((await request(server.base, "GET", `/v1/executions/${e.body.id}`, undefined, bearer("globex-client-token"))).status).toBe(404);
    const list = await request(server.base, "GET", "/v1/jobs", undefined, bearer("globex-client-token"));
    expect(list.body.jobs.map((j: { queue: string }) => j.queue)).toEqual(["other"]);
  });
});
