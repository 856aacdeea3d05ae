/**
 * A real etcd for tests and benchmarks: one member (the default) or a cluster of several on free
 * loopback ports, each with a temporary data directory, started as child processes and stopped
 * (their directories removed) by stop(). Members can be killed, restarted with their data and
 * paused, for the jepsen-style suite's etcd faults. (Cutting one member off from the others
 * would need a network namespace: etcd advertises one peer URL per member, and a proxy there cuts
 * one direction only, which raft's pipeline path routes around.) Installs Debian's etcd-server when the binary is missing, so a clean CI machine needs
 * nothing beyond `.ci/run`.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export interface EtcdMember {
  name: string;
  /** Client URL, e.g. http://127.0.0.1:23791 */
  endpoint: string;
  running(): boolean;
  /** SIGSTOP / SIGCONT. */
  pause(): void;
  resume(): void;
  kill9(): Promise<void>;
  /** Start again with its data (after kill9). */
  restart(): Promise<void>;
}

export interface EtcdProcess {
  /** The first member's client URL. */
  endpoint: string;
  /** Every member's client URL. */
  endpoints: string[];
  members: EtcdMember[];
  /** SIGSTOP / SIGCONT every member (fault tests). */
  pause(): void;
  resume(): void;
  /** The member that leads etcd's raft group now, as a running member reports it. */
  leader(): Promise<EtcdMember | null>;
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

const HEALTHY_WITHIN_MS = 15_000;

/** `members` etcd processes forming one cluster. */
export async function startEtcd(opts: { quiet?: boolean; members?: number } = {}): Promise<EtcdProcess> {
  const binary = ensureEtcdInstalled();
  // In memory when possible: etcd's fsyncs should not queue behind the shard logs' on one disk.
  const base = fs.existsSync("/dev/shm") ? "/dev/shm" : os.tmpdir();
  const count = opts.members ?? 1;
  const specs = [];
  for (let i = 1; i <= count; i++) {
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    specs.push({ name: `etcd${i}`, clientPort, peer: `http://127.0.0.1:${peerPort}`, dir: fs.mkdtempSync(path.join(base, "cronwheel-etcd-")) });
  }
  const initialCluster = specs.map((s) => `${s.name}=${s.peer}`).join(",");
  const members = specs.map((s) => {
    const endpoint = `http://127.0.0.1:${s.clientPort}`;
    const args = [
      "--name", s.name,
      "--data-dir", s.dir,
      "--listen-client-urls", endpoint,
      "--advertise-client-urls", endpoint,
      "--listen-peer-urls", s.peer,
      "--initial-advertise-peer-urls", s.peer,
      "--initial-cluster", initialCluster,
      "--initial-cluster-state", "new",
      "--log-level", "error",
    ];
    return new Member(binary, s.name, endpoint, args, s.dir, opts.quiet !== false);
  });
  // Together: a member of a new cluster waits for the others before it is healthy.
  await Promise.all(members.map((m) => m.restart()));
  return {
    endpoint: members[0]!.endpoint,
    endpoints: members.map((m) => m.endpoint),
    members,
    pause: () => members.forEach((m) => m.pause()),
    resume: () => members.forEach((m) => m.resume()),
    leader: () => leaderOf(members),
    async stop() {
      await Promise.all(members.map((m) => m.kill9()));
      for (const m of members) m.dispose();
    },
  };
}

class Member implements EtcdMember {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stderr = "";

  constructor(
    private readonly binary: string,
    readonly name: string,
    readonly endpoint: string,
    private readonly args: string[],
    private readonly dir: string,
    private readonly quiet: boolean,
  ) {}

  running(): boolean {
    return this.child !== null;
  }

  pause(): void {
    this.child?.kill("SIGSTOP");
  }

  resume(): void {
    this.child?.kill("SIGCONT");
  }

  async restart(): Promise<void> {
    if (this.child) return;
    const child = spawn(this.binary, this.args, { stdio: ["ignore", this.quiet ? "ignore" : "inherit", "pipe"] });
    this.child = child;
    child.stderr!.on("data", (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
    this.exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const deadline = Date.now() + HEALTHY_WITHIN_MS;
    while (!(await healthy(this.endpoint))) {
      if (child.exitCode !== null) throw new Error(`etcd ${this.name} exited with ${child.exitCode}: ${this.stderr}`);
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`etcd ${this.name} did not become healthy in ${HEALTHY_WITHIN_MS} ms: ${this.stderr}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async kill9(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGCONT");
      child.kill("SIGKILL");
    }
    await this.exited;
  }

  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

async function healthy(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    return res.ok && ((await res.json()) as { health?: string }).health === "true";
  } catch {
    return false;
  }
}

/** Asks running members (through the gRPC gateway's status call) which member leads. */
async function leaderOf(members: Member[]): Promise<Member | null> {
  for (const m of members) {
    if (!m.running()) continue;
    try {
      const res = await fetch(`${m.endpoint}/v3/maintenance/status`, { method: "POST", body: "{}", signal: AbortSignal.timeout(1000) });
      const status = (await res.json()) as { header?: { member_id?: string }; leader?: string };
      if (!status.leader || status.leader === "0") continue;
      const list = await fetch(`${m.endpoint}/v3/cluster/member/list`, { method: "POST", body: "{}", signal: AbortSignal.timeout(1000) });
      const byId = ((await list.json()) as { members?: Array<{ ID: string; name: string }> }).members ?? [];
      const name = byId.find((x) => x.ID === status.leader)?.name;
      return members.find((x) => x.name === name) ?? null;
    } catch {
      // paused or cut off: ask the next one
    }
  }
  return null;
}

/**
 * A port for a server that keeps it across restarts (a cluster node, an etcd member), free now.
 * It comes from below the kernel's ephemeral range (32768+ by default), which everything that
 * binds port 0 draws from: a kernel-chosen port given back here could be handed to another test's
 * proxy or client while this server is down (a killed node, one that joins later), and its
 * restart would find it taken. Each process walks the range from its own random start and never
 * hands a port out twice.
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < STABLE_PORT_COUNT; tries++) {
    const port = STABLE_PORT_FIRST + (nextStablePort++ % STABLE_PORT_COUNT);
    if (await canListen(port)) return port;
  }
  throw new Error("no free port below the ephemeral range");
}

const STABLE_PORT_FIRST = 20_000;
const STABLE_PORT_COUNT = 12_000;
let nextStablePort = Math.floor(Math.random() * STABLE_PORT_COUNT);

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

function which(name: string): string | null {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}
