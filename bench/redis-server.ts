/**
 * A throwaway redis-server for the BullMQ side of the benchmarks: Debian's `redis-server` on a free
 * 127.0.0.1 port, no persistence (`--save "" --appendonly no`), its working directory a temp dir.
 *
 * If the binary is missing it is installed with apt (`apt-get update`, `apt-get install -y
 * redis-server`; we run as root, and so does CI). Debian's package also starts a system service on
 * the default port 6379 when a service manager lets it; we never talk to that one (our own port),
 * and right after the install we stop it so it does not sit on a core of this 2-core machine.
 *
 * Use `withRedis(fn)` so the server is stopped whatever `fn` does; `startRedis()` also kills its
 * server if the process exits without calling `stop()`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { processCpuSeconds } from "./stats.js";

export interface RedisHandle {
  port: number;
  /** The redis-server process id (for CPU accounting via /proc). */
  pid: number;
  /** CPU seconds (user + system) the server has used so far, from /proc/<pid>/stat; NaN where unreadable. */
  cpuSeconds(): number;
  /** `INFO <section>` as a field → value map (raw socket, no client library). */
  info(section: string): Promise<Record<string, string>>;
  stop(): Promise<void>;
}

const HOST = "127.0.0.1";
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

function log(message: string): void {
  process.stderr.write(`redis-server: ${message}\n`);
}

function redisBinary(): string | null {
  const probe = spawnSync("redis-server", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) return null;
  return "redis-server";
}

/** Debian's postinstall may have started the system service (port 6379): stop it, by the ordinary means, then by its pid file. */
function stopSystemService(): void {
  const pidFile = "/run/redis/redis-server.pid";
  const readPid = (): number | null => {
    try {
      const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  };
  if (readPid() === null) return; // nothing was started (no service manager, or policy-rc.d forbade it)
  log("stopping the system redis-server service that apt's postinstall started (we use our own port)");
  spawnSync("service", ["redis-server", "stop"], { stdio: "ignore" });
  const pid = readPid();
  if (pid !== null) {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
}

function ensureRedisInstalled(): string {
  const found = redisBinary();
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new Error("redis-server is not installed and we are not root: install it with `apt-get install -y redis-server`");
  }
  // apt's output must not mix with the JSON a bench prints on stdout: send it all to stderr.
  log("redis-server not found: installing Debian's redis-server package (apt-get update && apt-get install -y redis-server)…");
  try {
    runToStderr("apt-get", ["-o", "DPkg::Lock::Timeout=120", "update"]);
    // Wait (up to 2 min) rather than fail if another apt/dpkg run holds the lock.
    runToStderr("apt-get", ["-o", "DPkg::Lock::Timeout=120", "install", "-y", "redis-server"]);
  } catch (error) {
    throw new Error(`could not install redis-server with apt-get: ${(error as Error).message}`);
  }
  stopSystemService();
  const installed = redisBinary();
  if (!installed) throw new Error("apt-get installed redis-server but `redis-server --version` still fails");
  log("redis-server installed");
  return installed;
}

function runToStderr(command: string, args: string[]): void {
  const result = spawnSync(command, args, {
    stdio: ["ignore", process.stderr.fd, process.stderr.fd],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
  if (result.error) throw new Error(`${command} ${args.join(" ")} could not run: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} exited with ${result.status ?? result.signal}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

/** One command over a raw socket (RESP); resolves the reply's text (simple, integer or bulk string). */
function command(port: number, args: string[], timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: HOST, port });
    let buffer = Buffer.alloc(0);
    const done = (error: Error | null, value?: string) => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(value!);
    };
    const timer = setTimeout(() => done(new Error(`redis ${args[0]}: no reply within ${timeoutMs} ms`)), timeoutMs);
    socket.on("connect", () => {
      const parts = [`*${args.length}\r\n`];
      for (const arg of args) parts.push(`$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
      socket.write(parts.join(""));
    });
    socket.on("data", (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const lineEnd = buffer.indexOf("\r\n");
      if (lineEnd < 0) return;
      const head = buffer.subarray(1, lineEnd).toString("utf8");
      switch (String.fromCharCode(buffer[0]!)) {
        case "+":
        case ":":
          return done(null, head);
        case "-":
          return done(new Error(`redis ${args[0]}: ${head}`));
        case "$": {
          const length = Number(head);
          if (length < 0) return done(null, "");
          if (buffer.length < lineEnd + 2 + length + 2) return; // wait for the rest
          return done(null, buffer.subarray(lineEnd + 2, lineEnd + 2 + length).toString("utf8"));
        }
        default:
          return done(new Error(`redis ${args[0]}: unexpected reply ${JSON.stringify(buffer.subarray(0, 40).toString())}`));
      }
    });
    socket.on("error", (error) => done(error));
  });
}

async function info(port: number, section: string): Promise<Record<string, string>> {
  const text = await command(port, ["INFO", section]);
  const out: Record<string, string> = {};
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon > 0 && !line.startsWith("#")) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}

/** One PING over a raw socket; resolves true on +PONG. */
function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let reply = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk.toString("utf8");
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
    socket.on("error", () => done(false));
  });
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function startOnce(binary: string, extraArgs: string[]): Promise<RedisHandle> {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "cronwheel-bench-redis-"));
  const logFile = path.join(dir, "redis.log");
  const args = [
    "--port", String(port),
    "--bind", HOST,
    "--protected-mode", "yes",
    "--save", "",
    "--appendonly", "no",
    "--dir", dir,
    "--daemonize", "no",
    "--logfile", logFile,
    "--maxmemory-policy", "noeviction", // what BullMQ requires (also Redis' default)
    "--databases", "1",
    ...extraArgs,
  ];
  const child = spawn(binary, args, { stdio: "ignore" });
  const spawned = new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  await spawned;
  const pid = child.pid!;
  // If the process exits without stop() (an uncaught error, process.exit), don't leave the server behind.
  const onExit = () => {
    try {
      child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    } catch {
      // already gone
    }
  };
  process.once("exit", onExit);

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    process.removeListener("exit", onExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      if (!(await waitExit(child, STOP_TIMEOUT_MS))) {
        child.kill("SIGKILL");
        await waitExit(child, STOP_TIMEOUT_MS);
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const tail = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8").split("\n").slice(-10).join("\n") : "(no log)";
      await stop();
      throw new Error(`redis-server on port ${port} exited (${child.exitCode ?? child.signalCode}) before answering PING:\n${tail}`);
    }
    if (await ping(port)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`redis-server on port ${port} did not answer PING within ${START_TIMEOUT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, pid, cpuSeconds: () => processCpuSeconds(pid), info: (section) => info(port, section), stop };
}

export interface StartRedisOptions {
  /** More `--name value` arguments for redis-server (e.g. ["--hz", "100"]); none by default. */
  extraArgs?: string[];
}

/** Starts a private redis-server on a free loopback port and waits until it answers PING. */
export async function startRedis({ extraArgs = [] }: StartRedisOptions = {}): Promise<RedisHandle> {
  const binary = ensureRedisInstalled();
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(binary, extraArgs); // the free port can be taken between probing and binding: retry
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

/** Runs `fn` against a fresh redis-server and always stops it afterwards. */
export async function withRedis<T>(fn: (redis: RedisHandle) => Promise<T>, options: StartRedisOptions = {}): Promise<T> {
  const redis = await startRedis(options);
  try {
    return await fn(redis);
  } finally {
    await redis.stop();
  }
}
