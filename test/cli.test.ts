/**
 * The client commands of the real `cronwheel` binary (`jobs`, `executions`, `dead-letters`)
 * against a real server: tables and --json output, flags and --file, exit codes 0 / 1 / 2 and the
 * `cronwheel: <code>: <message>` error line.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RawWorker } from "./support/raw-worker.js";
import { BIN, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

let server: ServerProcess;
let authServer: ServerProcess;
let dir: string;

beforeAll(async () => {
  dir = tempDir("cli");
  const tokens = path.join(dir, "tokens.json");
  fs.writeFileSync(tokens, JSON.stringify({ tokens: [{ token: "cli-token", tenant: "acme", role: "client" }] }));
  [server, authServer] = await Promise.all([
    startServer(path.join(dir, "data"), ["--shards", "2"]),
    startServer(path.join(dir, "auth-data"), ["--shards", "1", "--tokens", tokens]),
  ]);
});

afterAll(async () => {
  await Promise.all([server?.stop(), authServer?.stop()]);
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cronwheel ARGS` with CRONWHEEL_URL pointing at the test server (unless `env` overrides it). */
function cli(args: string[], env: Record<string, string> = {}, stdin?: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, CRONWHEEL_URL: server.base, CRONWHEEL_TOKEN: "", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? "");
  });
}

/** Asserts success and returns stdout. */
async function ok(args: string[], env?: Record<string, string>, stdin?: string): Promise<string> {
  const r = await cli(args, env, stdin);
  expect(r.code, `cronwheel ${args.join(" ")}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`).toBe(0);
  return r.stdout;
}

async function okJson(args: string[]): Promise<any> {
  return JSON.parse(await ok([...args, "--json"]));
}

/** The column where each header starts in a table's first line. */
function columnStarts(header: string): number[] {
  return [...header.matchAll(/(?:^|\s{2})(\S)/g)].map((m) => m.index! + m[0].length - 1);
}

describe("jobs", () => {
  it("puts a job from flags and from a file, gets it as a record and as JSON", async () => {
    const created = await ok(["jobs", "put", "cli-nightly", "--queue", "reports", "--cron", "0 3 * * *", "--timezone", "Europe/Berlin", "--label", "team=bi", "--payload", '{"kind":"daily"}']);
    expect(created).toContain("created job cli-nightly (version 1)");
    expect(created).toMatch(/^queue\s+reports$/m);
    expect(created).toMatch(/^trigger\s+cron 0 3 \* \* \* \(Europe\/Berlin\)$/m);
    expect(created).toMatch(/^labels\s+team=bi$/m);

    const file = path.join(dir, "job.json");
    fs.writeFileSync(file, JSON.stringify({ queue: "mail", every: "90s", labels: { team: "growth" }, payload: { batch: 50 } }));
    expect(await ok(["jobs", "put", "cli-digest", "--file", file])).toContain("created job cli-digest (version 1)");
    // The file as `jobs get --json` wrote it (read-only fields included) is a valid definition; flags override it.
    const asRead = await ok(["jobs", "get", "cli-digest", "--json"]);
    const replaced = await ok(["jobs", "put", "cli-digest", "--file", "-", "--every", "5m", "--if-match", "1"], {}, asRead);
    expect(replaced).toContain("replaced job cli-digest (version 2)");
    expect(replaced).toMatch(/^trigger\s+every 5m$/m);

    // A trigger flag replaces the file's cron trigger (and its zone).
    const cronJob = await ok(["jobs", "get", "cli-nightly", "--json"]);
    expect(await ok(["jobs", "put", "cli-nightly-copy", "--file", "-", "--every", "1h"], {}, cronJob)).toMatch(/^trigger\s+every 1h$/m);

    const record = await ok(["jobs", "get", "cli-digest"]);
    expect(record).toMatch(/^id\s+cli-digest$/m);
    expect(record).toMatch(/^payload\s+\{"batch":50\}$/m);
    const job = await okJson(["jobs", "get", "cli-nightly"]);
    expect(job).toMatchObject({ id: "cli-nightly", queue: "reports", cron: "0 3 * * *", timezone: "Europe/Berlin", payload: { kind: "daily" }, version: 1 });
  });

  it("lists jobs as an aligned table, as JSON, filtered, a page at a time", async () => {
    await ok(["jobs", "put", "cli-ls-a", "--queue", "lsq", "--every", "1h", "--label", "tier=gold"]);
    await ok(["jobs", "put", "cli-ls-b", "--queue", "lsq", "--at", "2099-01-01T00:00:00Z"]);
    await ok(["jobs", "put", "cli-ls-c", "--queue", "lsq"]);

    const table = await ok(["jobs", "ls", "--queue", "lsq"]);
    const lines = table.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+QUEUE\s+TRIGGER\s+STATE\s+NEXT FIRE\s+VERSION\s+LABELS$/);
    expect(lines).toHaveLength(4);
    const starts = columnStarts(lines[0]!);
    for (const line of lines.slice(1)) {
      expect(line.slice(starts[1]!, starts[1]! + 3)).toBe("lsq"); // QUEUE column lines up
      expect(line).not.toMatch(/\s$/);
    }
    expect(lines[1]).toMatch(/^cli-ls-a\s+lsq\s+every 1h\s+active\s+\S+Z\s+1\s+tier=gold$/);
    expect(lines[2]).toContain("at 2099-01-01T00:00:00.000Z");
    expect(lines[3]).toContain("manual");

    const page = await okJson(["jobs", "ls", "--queue", "lsq", "--limit", "2"]);
    expect(page.jobs.map((j: { id: string }) => j.id)).toEqual(["cli-ls-a", "cli-ls-b"]);
    expect(typeof page.nextCursor).toBe("string");
    const rest = await okJson(["jobs", "ls", "--queue", "lsq", "--limit", "2", "--cursor", page.nextCursor]);
    expect(rest.jobs.map((j: { id: string }) => j.id)).toEqual(["cli-ls-c"]);

    const firstPage = await cli(["jobs", "ls", "--queue", "lsq", "--limit", "1"]);
    expect(firstPage.stderr).toMatch(/more with --cursor \S+/);
    expect(await ok(["jobs", "ls", "--label", "tier=gold"])).toContain("cli-ls-a");
  });

  it("pauses, resumes, previews, triggers (with payload and idempotency key) and removes", async () => {
    await ok(["jobs", "put", "cli-trig", "--queue", "trig", "--cron", "*/5 * * * *", "--payload", '{"from":"job"}']);
    expect(await ok(["jobs", "pause", "cli-trig"])).toBe("job cli-trig is paused\n");
    expect(await ok(["jobs", "resume", "cli-trig"])).toMatch(/^job cli-trig is active, next fire \S+Z\n$/);
    const preview = (await ok(["jobs", "preview", "cli-trig", "--count", "2"])).trimEnd().split("\n");
    expect(preview).toHaveLength(3);
    expect(preview[0]).toMatch(/^AT\s+NOMINAL\s+MARKS$/);

    const first = await ok(["jobs", "trigger", "cli-trig", "--payload", '{"n":1}', "--idempotency-key", "k1"]);
    const id = /^created execution (\S+) \(ready\)$/m.exec(first)?.[1];
    expect(id).toMatch(/^cli-trig:/);
    expect(await ok(["jobs", "trigger", "cli-trig", "--payload", '{"n":1}', "--idempotency-key", "k1"])).toBe(`existing execution ${id} (ready)\n`);
    const otherBody = await cli(["jobs", "trigger", "cli-trig", "--idempotency-key", "k1"]);
    expect(otherBody.code).toBe(1);
    expect(otherBody.stderr).toMatch(/^cronwheel: conflict: idempotency key 'k1' was used for another request/);
    const own = await okJson(["jobs", "trigger", "cli-trig"]);
    expect(own).toMatchObject({ jobId: "cli-trig", payload: { from: "job" } });

    expect(await ok(["jobs", "rm", "cli-trig", "--cancel-running"])).toBe("deleted job cli-trig (running executions canceled)\n");
    const gone = await cli(["jobs", "get", "cli-trig"]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe("cronwheel: not_found: job 'cli-trig' not found\n");
    expect(gone.stdout).toBe("");
  });
});

describe("executions and dead letters", () => {
  it("lists, shows and cancels executions", async () => {
    await ok(["jobs", "put", "cli-exec", "--queue", "execq"]);
    const a = await okJson(["jobs", "trigger", "cli-exec", "--payload", '"a"']);
    const b = await okJson(["jobs", "trigger", "cli-exec", "--payload", '"b"']);

    const table = (await ok(["executions", "ls", "--job", "cli-exec"])).trimEnd().split("\n");
    expect(table[0]).toMatch(/^ID\s+JOB\s+QUEUE\s+STATE\s+SCHEDULED\s+ATTEMPT\s+REASON$/);
    expect(table.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([b.id, a.id]); // newest first
    const page = await okJson(["executions", "ls", "--queue", "execq", "--state", "ready", "--limit", "5"]);
    expect(page.executions.map((e: { id: string }) => e.id)).toEqual([b.id, a.id]);

    const shown = await ok(["executions", "get", a.id]);
    expect(shown).toMatch(new RegExp(`^id\\s+${a.id}$`, "m"));
    expect(shown).toMatch(/^payload\s+"a"$/m);
    expect(shown).toMatch(/^state\s+ready$/m);

    expect(await ok(["executions", "cancel", a.id])).toBe(`execution ${a.id} is canceled\n`);
    const again = await cli(["executions", "cancel", a.id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^cronwheel: conflict: /);
    const badState = await cli(["executions", "ls", "--state", "exploded"]);
    expect(badState.code).toBe(1);
    expect(badState.stderr).toMatch(/^cronwheel: invalid_argument: /);
  });

  it("lists dead letters and replays one", async () => {
    const e = await okJson(["jobs", "put", "cli-doomed", "--queue", "cli-doomed"]);
    expect(e.id).toBe("cli-doomed");
    const x = await okJson(["jobs", "trigger", "cli-doomed"]);
    const w = await RawWorker.connect(server.base, "w-cli", ["cli-doomed"]);
    try {
      w.send({ t: "credit", n: 1 });
      const a = await w.assignment(x.id);
      w.send({ t: "failed", id: x.id, fence: a.fence, error: { message: "bad input" }, retryable: false });
      await w.next((m) => m.t === "ack" && m.of === "failed");
    } finally {
      w.close();
    }
    let letters = "";
    for (let i = 0; i < 50 && !letters.includes(x.id); i++) letters = await ok(["dead-letters", "ls", "--queue", "cli-doomed"]);
    expect(letters).toMatch(new RegExp(`^${x.id}\\s+cli-doomed\\s+cli-doomed\\s+failed\\s`, "m"));

    const replayed = await ok(["executions", "replay", x.id]);
    const newId = /^replayed as execution (\S+) \(ready\)$/m.exec(replayed)?.[1];
    expect(newId).toBeDefined();
    expect(newId).not.toBe(x.id);
    expect((await okJson(["dead-letters", "ls", "--queue", "cli-doomed"])).executions.map((d: { id: string }) => d.id)).toEqual([x.id]);
    // The history filters: by the worker of its last attempt, its reason, its finish time, its job.
    const finishedAt = Date.parse((await okJson(["executions", "get", x.id])).finishedAt);
    const filtered = (args: string[]) => okJson(["dead-letters", "ls", ...args]).then((p) => p.executions.map((d: { id: string }) => d.id));
    expect(await filtered(["--worker", "w-cli", "--reason", "non-retryable", "--job", "cli-doomed"])).toEqual([x.id]);
    expect(await filtered(["--finished-from", String(finishedAt), "--finished-to", String(finishedAt + 1)])).toEqual([x.id]);
    expect(await filtered(["--worker", "w-other"])).toEqual([]);
    expect(await filtered(["--finished-from", String(finishedAt + 1)])).toEqual([]);
    expect((await okJson(["executions", "ls", "--state", "failed", "--worker", "w-cli"])).executions.map((d: { id: string }) => d.id)).toEqual([x.id]);
    const badWorker = await cli(["executions", "ls", "--worker", "no spaces"]);
    expect(badWorker.code).toBe(1);
    expect(badWorker.stderr).toMatch(/^cronwheel: invalid_argument: workerId/);
  });
});

describe("errors, usage and auth", () => {
  it("exits 2 on usage errors and 0 on --help", async () => {
    const runs = await Promise.all([
      cli(["jobs", "get"]),
      cli(["jobs", "ls", "--bogus"]),
      cli(["jobs", "put", "x", "--queue", "q", "--payload", "{not json"]),
      cli(["jobs", "put", "x"]),
      cli(["jobs", "frobnicate"]),
      cli(["jobs", "ls", "--limit", "zero"]),
      cli(["executions"]),
      cli(["dead-letters", "rm"]),
      cli(["jobs", "put", "x", "--file", path.join(dir, "no-such-file.json")]),
    ]);
    for (const r of runs) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(/^cronwheel: /);
      expect(r.stdout).toBe("");
    }
    expect(runs[2]!.stderr).toContain("--payload: not valid JSON");
    expect(runs[3]!.stderr).toContain("--queue is required");

    const [jobsHelp, putHelp, mainHelp] = await Promise.all([cli(["jobs", "--help"]), cli(["jobs", "put", "-h"]), cli(["--help"])]);
    expect(jobsHelp.code).toBe(0);
    expect(jobsHelp.stdout).toContain("usage: cronwheel jobs <command>");
    expect(putHelp.stdout).toBe(jobsHelp.stdout);
    expect(mainHelp.stdout).toMatch(/^\s+jobs\s/m);
    expect(mainHelp.stdout).toMatch(/^\s+server\s/m);
  });

  it("exits 1 with unavailable when the server cannot be reached; --url overrides the environment", async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));

    const down = await cli(["jobs", "ls"], { CRONWHEEL_URL: `http://127.0.0.1:${port}` });
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^cronwheel: unavailable: .*ECONNREFUSED/);
    const viaFlag = await cli(["jobs", "ls", "--url", server.base], { CRONWHEEL_URL: `http://127.0.0.1:${port}` });
    expect(viaFlag.code).toBe(0);
  });

  it("sends the token from CRONWHEEL_TOKEN or --token", async () => {
    const noToken = await cli(["jobs", "ls", "--url", authServer.base]);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/^cronwheel: unauthenticated: /);
    expect(await ok(["jobs", "put", "auth-job", "--queue", "q", "--url", authServer.base, "--token", "cli-token"])).toContain("created job auth-job");
    expect(await ok(["jobs", "ls", "--json"], { CRONWHEEL_URL: authServer.base, CRONWHEEL_TOKEN: "cli-token" })).toContain('"auth-job"');
    const wrong = await cli(["jobs", "ls", "--token", "nope"], { CRONWHEEL_URL: authServer.base, CRONWHEEL_TOKEN: "cli-token" });
    expect(wrong.stderr).toMatch(/^cronwheel: unauthenticated: /);
  });
});
