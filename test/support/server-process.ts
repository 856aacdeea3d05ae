/**
 * Starts a real `cronwheel server` process (the compiled binary, as an operator would) on a free
 * loopback port, and stops or kills it. Tests talk to it over real HTTP.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, whether this runs from test/support (vitest) or dist/test/support (benchmarks). */
const ROOT = ((dir) => (path.basename(dir) === "dist" ? path.dirname(dir) : dir))(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../.."));
export const BIN = path.join(ROOT, "bin", "cronwheel.js");

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  base: string;
  dataDir: string;
  /** Everything the process printed, for failure messages. */
  output(): string;
  kill9(): Promise<void>;
  stop(): Promise<number | null>;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `cronwheel-${prefix}-`));
}

export function startServer(dataDir: string, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<ServerProcess> {
  return launchServer(dataDir, ["--standalone", "--data-dir", dataDir, "--listen", "127.0.0.1:0", ...extraArgs], env);
}

/** A `cronwheel server` with exactly these arguments (cluster nodes: fixed ports, --etcd). */
export async function launchServer(dataDir: string, args: string[], env: Record<string, string> = {}): Promise<ServerProcess> {
  // CRONWHEEL_NODE_FLAGS: flags for the server's node (e.g. --cpu-prof), for profiling a benchmark.
  const nodeFlags = (process.env.CRONWHEEL_NODE_FLAGS ?? "").split(/\s+/).filter(Boolean);
  const child = spawn(process.execPath, [...nodeFlags, BIN, "server", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      // The banner the server prints once it listens, whatever the log level: "  API:     http://HOST:PORT/v1".
      const match = /API:\s+http:\/\/[^\s:]+:(\d+)\/v1/.exec(output);
      if (match) resolve(Number(match[1]));
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    void exited.then((code) => reject(new Error(`server exited with ${code} before it was ready:\n${output}`)));
  });
  return {
    child,
    port,
    base: `http://127.0.0.1:${port}`,
    dataDir,
    output: () => output,
    kill9: async () => {
      child.kill("SIGKILL");
      await exited;
    },
    stop: async () => {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

/**
 * request(), retrying a 503 `unavailable` for up to `timeoutMs`, as the contract tells clients to:
 * a shard's leader may be moving or still recovering (on a loaded machine, also right after a
 * cluster came up and every shard served once).
 */
export async function requestRetryingUnavailable(base: string, method: string, urlPath: string, body?: unknown, timeoutMs = 15_000): Promise<JsonResponse> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await request(base, method, urlPath, body);
    if (r.status !== 503 || r.body?.error?.code !== "unavailable" || Date.now() > deadline) return r;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface JsonResponse {
  status: number;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  headers: Headers;
}

export async function request(base: string, method: string, urlPath: string, body?: unknown, headers: Record<string, string> = {}): Promise<JsonResponse> {
  const res = await fetch(`${base}${urlPath}`, {
    method,
    headers: { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text === "" ? null : JSON.parse(text);
  } catch {
    // not JSON: keep the text so the assertion shows it
  }
  return { status: res.status, body: parsed, headers: res.headers };
}
