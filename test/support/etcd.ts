/**
 * A real etcd for tests and benchmarks: one member on free loopback ports with a temporary data
 * directory, started as a child process and stopped (and its directory removed) by stop().
 * Installs Debian's etcd-server when the binary is missing, so a clean CI machine needs nothing
 * beyond `.ci/run`.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export interface EtcdProcess {
  /** Client URL, e.g. http://127.0.0.1:23791 */
  endpoint: string;
  child: ChildProcess;
  /** SIGSTOP / SIGCONT the member (fault tests). */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

/** Path of the etcd binary, installing the Debian package first if it is missing. */
export function ensureEtcdInstalled(): string {
  const found = which("etcd");
  if (found) return found;
  execFileSync("sh", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server"], {
    stdio: "inherit",
  });
  const installed = which("etcd");
  if (!installed) throw new Error("etcd-server was installed but no etcd binary is on PATH");
  return installed;
}

export async function startEtcd(opts: { quiet?: boolean } = {}): Promise<EtcdProcess> {
  const binary = ensureEtcdInstalled();
  // In memory when possible: etcd's fsyncs should not queue behind the shard logs' on one disk.
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const dir = fs.mkdtempSync(path.join(base, "cronwheel-etcd-"));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const endpoint = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(
    binary,
    [
      "--name", "test",
      "--data-dir", dir,
      "--listen-client-urls", endpoint,
      "--advertise-client-urls", endpoint,
      "--listen-peer-urls", peer,
      "--initial-advertise-peer-urls", peer,
      "--initial-cluster", `test=${peer}`,
      "--initial-cluster-state", "new",
      "--log-level", "error",
    ],
    { stdio: ["ignore", opts.quiet === false ? "inherit" : "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const deadline = Date.now() + 15_000;
  while (!(await healthy(endpoint))) {
    if (child.exitCode !== null) throw new Error(`etcd exited with ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`etcd did not become healthy in 15 s: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    endpoint,
    child,
    pause: () => child.kill("SIGSTOP"),
    resume: () => child.kill("SIGCONT"),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGCONT");
        child.kill("SIGKILL");
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok && ((await res.json()) as { health?: string }).health === "true";
  } catch {
    return false;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

function which(name: string): string | null {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}
