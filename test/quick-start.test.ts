/**
 * The quick start does the job: the commands a new node prints (src/cli/banner.ts) are run as
 * printed, by bash, against that node — a cron job, an execution, the example worker, the listing —
 * and README.md's TypeScript program is run as written (only its import and URL pointed at this
 * checkout and this node). If either drifts from what the node and the SDK accept, this fails.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { request, startServer, tempDir, type ServerProcess } from "./support/server-process.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

let server: ServerProcess;
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startServer(path.join(tempDir("quick-start"), "data"), ["--shards", "2"]);
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) process.kill(-c.pid!, "SIGKILL");
  await server?.stop();
});

/** The numbered steps of the banner: each step's command, continuation lines joined. */
function bannerSteps(output: string): Map<number, string> {
  const banner = output.slice(output.indexOf("Cronwheel is running"));
  const steps = new Map<number, string>();
  let current: number | undefined;
  for (const line of banner.split("\n")) {
    const step = /^\s{2}(\d)\. /.exec(line);
    if (step) {
      current = Number(step[1]);
      steps.set(current, "");
    } else if (current !== undefined && /^\s{7,}\S/.test(line)) {
      steps.set(current, steps.get(current)! + line.trim().replace(/\\$/, "") + " ");
    } else if (!/^\s{7}/.test(line)) current = undefined;
  }
  return steps;
}

function run(command: string, opts: { cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", command], { cwd: opts.cwd ?? process.cwd(), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.once("error", reject);
    child.once("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

async function waitFor<T>(what: () => string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("the quick start", () => {
  it("the commands the node prints create a cron job and an execution, run a worker, and list what ran", async () => {
    const steps = bannerSteps(server.output());
    expect([...steps.keys()], server.output()).toEqual([1, 2, 3, 4]);
    for (const command of steps.values()) expect(command).toContain(server.base);

    const job = await run(steps.get(1)!);
    expect(job.code, job.stderr).toBe(0);
    expect(JSON.parse(job.stdout)).toMatchObject({ id: "hello", queue: "demo", state: "active" });
    const enqueued = await run(steps.get(2)!);
    expect(enqueued.code, enqueued.stderr).toBe(0);
    const execution = JSON.parse(enqueued.stdout) as { id: string; state: string };
    expect(execution.state).toBe("ready");

    // In a process group of its own, so that the signal reaches the worker under bash.
    const worker = spawn("bash", ["-c", steps.get(3)!], { cwd: process.cwd(), stdio: ["ignore", "pipe", "pipe"], detached: true });
    children.push(worker);
    let workerLog = "";
    worker.stdout!.on("data", (c: Buffer) => (workerLog += c.toString()));
    worker.stderr!.on("data", (c: Buffer) => (workerLog += c.toString()));

    // The enqueued execution and a fire of the cron job (every 5 s) both run and succeed.
    await waitFor(
      () => `both executions to succeed (worker log:\n${workerLog})`,
      async () => {
        const listed = await run(steps.get(4)!);
        const executions = (JSON.parse(listed.stdout) as { executions: Array<{ id: string; jobId?: string; state: string }> }).executions;
        const adHoc = executions.find((x) => x.id === execution.id);
        const fire = executions.find((x) => x.jobId === "hello" && x.state === "succeeded");
        return adHoc?.state === "succeeded" && fire ? true : undefined;
      },
      20_000,
    );
    expect(workerLog).toContain(execution.id);

    process.kill(-worker.pid!, "SIGTERM"); // the example drains and exits
    const code = await new Promise((resolve) => (worker.exitCode !== null ? resolve(worker.exitCode) : worker.once("exit", resolve)));
    expect(code).toBe(0);
  });

  it("README.md's TypeScript program runs as written", async () => {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const program = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(program, "README.md has a ```ts block").toBeDefined();
    expect(program).toContain('from "cronwheel/client"');
    expect(program).toContain('"http://127.0.0.1:7070"');
    // Its types are all inferred, so it is JavaScript too: run it as a module, importing this
    // checkout's build instead of the installed package, against this test's node.
    const sdk = path.join(ROOT, "dist", "src", "client", "index.js");
    const file = path.join(tempDir("quick-start-ts"), "quick-start.mjs");
    fs.writeFileSync(file, program!.replace('"cronwheel/client"', JSON.stringify(sdk)).replace('"http://127.0.0.1:7070"', JSON.stringify(server.base)));
    const result = await run(`timeout 30 ${JSON.stringify(process.execPath)} ${JSON.stringify(file)}`);
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
    expect(result.stdout).toMatch(/running x[0-9a-f]+\S* emails \{ to: 'ada@example.com' \}/);
    expect(result.stdout).toContain("succeeded { sent: true }");

    const job = await request(server.base, "GET", "/v1/jobs/daily-report");
    expect(job.status).toBe(200);
    expect(job.body).toMatchObject({ queue: "reports", cron: "0 9 * * *", timezone: "Europe/Berlin", state: "active" });
  });
});
