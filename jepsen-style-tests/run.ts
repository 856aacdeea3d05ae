/**
 * `npm run jepsen -- --nemesis kill,pause,partition,skew --time 120 --seed 42`
 *
 * One run: a real three-member etcd and three `cronwheel server` processes (replication factor 3; every
 * node-to-node link, every node's etcd link and every worker's link to a node through a proxy the
 * nemesis controls), two worker processes (worker.ts), a seeded client workload (workload.ts) and a seeded fault schedule
 * (nemesis.ts). After `--time` seconds every fault is healed, the cluster gets `--recover`
 * seconds to settle, a final read records what it holds, and the checker judges the history.
 *
 * Everything lands in the results folder (default jepsen-style-tests/results/<time>-seed<seed>):
 * history.jsonl (client and nemesis), worker-*.jsonl, node logs, copies of the nodes' data
 * directories (data/, for the WAL checker), verdict.json and summary.txt — re-checkable offline
 * with `node dist/jepsen-style-tests/check.js <folder>`. Exit code 0 when
 * the history is valid, 1 when the checker found a violation, 2 on a harness error.
 *
 * `--unsafe-fencing` starts the nodes with fencing broken on purpose (a report with any fence is
 * accepted): the checker must then report the violation (test/faults/jepsen.test.ts proves it does).
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { TestCluster } from "../test/support/cluster.js";
import { TcpProxy } from "../test/support/tcp-proxy.js";
import { checkFolder, DATA_COPIES } from "./check.js";
import { HistoryWriter } from "./history.js";
import { FAULTS, Nemesis, type Fault, type WorkerHandle } from "./nemesis.js";
import { Random } from "./random.js";
import { StallSampler } from "./stalls.js";
import { copyDataDirs } from "./wal-checker.js";
import { finalRead, Workload } from "./workload.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The compiled worker script, whether this runs compiled (dist/) or from source under vitest. */
const WORKER_SCRIPT = HERE.split(path.sep).includes("dist")
  ? path.join(HERE, "worker.js")
  : path.join(HERE, "..", "dist", "jepsen-style-tests", "worker.js");

export interface RunOptions {
  faults: Fault[];
  seconds: number;
  seed: number;
  recoverSeconds: number;
  out: string;
  unsafeFencing: boolean;
  log?: (line: string) => void;
}

export async function runJepsen(opts: RunOptions): Promise<{ valid: boolean | "unknown"; out: string; summary: string }> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  fs.mkdirSync(opts.out, { recursive: true });
  fs.writeFileSync(path.join(opts.out, "run.json"), JSON.stringify({ ...opts, log: undefined, startedAt: new Date().toISOString(), gitSha: gitSha() }, null, 2));
  const random = new Random(opts.seed);
  const history = new HistoryWriter(path.join(opts.out, "history.jsonl"));
  const clockFile = (id: string) => path.join(opts.out, `clock-offset-${id}`);
  // Moving a replica needs a node that holds none: four nodes when the run moves replicas; the
  // ring partitions need five.
  const nodeCount = opts.faults.includes("ring") ? 5 : opts.faults.includes("rebalance") ? 4 : 3;
  log(`jepsen: starting etcd and ${nodeCount} nodes (seed ${opts.seed}, faults ${opts.faults.join(",") || "none"})`);
  const cluster = await TestCluster.start({
    nodes: nodeCount,
    shards: 6,
    name: "jepsen",
    peerProxies: true,
    etcdMembers: 3,
    args: ["--log-level", "warn"],
    env: (id) => ({
      CRONWHEEL_CLOCK_OFFSET_FILE: clockFile(id),
      ...(opts.unsafeFencing ? { CRONWHEEL_UNSAFE_ACCEPT_STALE_FENCES: "1" } : {}),
      // A power cut can only lose what was written and not yet synced: mark the synced lengths,
      // and make fsync slow enough that such bytes exist when it strikes.
      ...(opts.faults.includes("power-loss") ? { CRONWHEEL_FAULT_SYNC_MARKS: "1", CRONWHEEL_FAULT_FSYNC_DELAY_MS: "5" } : {}),
    }),
  });
  const workers: WorkerHandle[] = [];
  const stalls = new StallSampler(cluster, path.join(opts.out, "node-stats.jsonl"));
  stalls.start();
  try {
    for (const id of ["w1", "w2"]) {
      // Each worker reaches each node through its own proxy, so the nemesis can fault its links.
      const links = new Map<string, TcpProxy>();
      for (const n of cluster.nodes) links.set(n.id, await TcpProxy.start("127.0.0.1", n.port));
      const urls = [...links.values()].map((p) => p.endpoint).join(",");
      const via = [...links].map(([node, p]) => `${node}=127.0.0.1:${p.port}`).join(",");
      const child = spawn(process.execPath, [WORKER_SCRIPT, "--id", id, "--urls", urls, "--via", via, "--history", path.join(opts.out, `worker-${id}.jsonl`), "--seed", String(opts.seed * 31 + Number(id.slice(1)))], {
        stdio: ["ignore", "ignore", "inherit"],
      });
      workers.push({ id, process: child, links });
    }
    const workload = new Workload({ history, random, nodes: () => cluster.live().map((n) => n.base), clients: 4 });
    const nemesis = new Nemesis(cluster, history, random, opts.faults, clockFile, workers, path.join(opts.out, "admin.log"));
    workload.start();
    const end = Date.now() + opts.seconds * 1000;
    while (Date.now() < end) {
      await sleep(Math.min(random.int(2_000, 5_000), Math.max(0, end - Date.now())));
      if (Date.now() >= end) break;
      await nemesis.start();
      await sleep(Math.min(random.int(3_000, 8_000), Math.max(0, end - Date.now())));
      await nemesis.stop();
    }
    await nemesis.stop();
    await workload.stop();
    log(`jepsen: faults healed; letting the cluster settle for ${opts.recoverSeconds} s`);
    await cluster.waitForLeaders(60_000);
    await sleep(opts.recoverSeconds * 1000);
    nemesis.close();
    // Workers stop first: the final read must not race reports still being acknowledged.
    await Promise.all(workers.map((w) => stopChild(w.process)));
    await finalRead(cluster.live()[0]!.base, history);
    // The history threads commit every second: what the final read saw is then in every file
    // of a replica that applied it, before the kill below (the execution-history checker).
    await sleep(2_500);
  } finally {
    for (const w of workers) w.process.kill("SIGKILL");
    await Promise.all(workers.flatMap((w) => [...w.links.values()].map((p) => p.close())));
    for (const n of cluster.nodes) if (n.process) fs.writeFileSync(path.join(opts.out, `node-${n.id}.log`), n.process.output());
    stalls.stop();
    history.close();
    // kill -9, not a clean stop: a clean stop snapshots and drops the log the WAL checker reads.
    for (const n of cluster.nodes) await cluster.kill9(n.id);
    copyDataDirs(cluster.nodes, path.join(opts.out, DATA_COPIES));
    await cluster.stop();
  }
  const { verdict, summary } = checkFolder(opts.out);
  log(summary);
  log(stalls.summary());
  return { valid: verdict.valid, out: opts.out, summary: `${summary}\n${stalls.summary()}` };
}

/** The commit the run was made from (recorded with its results), when this is a git checkout. */
function gitSha(): string | null {
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { cwd: HERE, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGCONT");
  child.kill("SIGTERM");
  return exited;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const USAGE = `usage: npm run jepsen -- [--nemesis F1,F2,…] [--time S] [--seed N] [--recover S] [--out DIR] [--unsafe-fencing]
faults: ${FAULTS.join(", ")} (default: all; "none" for no faults)`;

function parseCommandLine() {
  try {
    return parseArgs({
      options: {
        help: { type: "boolean", short: "h", default: false },
        nemesis: { type: "string", default: FAULTS.join(",") },
        time: { type: "string", default: "60" },
        seed: { type: "string", default: String(Date.now() % 100_000) },
        recover: { type: "string", default: "12" },
        out: { type: "string" },
        "unsafe-fencing": { type: "boolean", default: false },
      },
    });
  } catch (error) {
    process.stderr.write(`jepsen: ${(error as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
}

async function main(): Promise<void> {
  const { values } = parseCommandLine();
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const faults = values.nemesis!.split(",").filter((f) => f !== "" && f !== "none") as Fault[];
  for (const f of faults) if (!FAULTS.includes(f)) throw new Error(`--nemesis: unknown fault '${f}' (known: ${FAULTS.join(", ")})`);
  const seed = Number(values.seed);
  const out = values.out ?? path.join(HERE, "..", "..", "jepsen-style-tests", "results", `${new Date().toISOString().replace(/[:.]/g, "-")}-seed${seed}`);
  const result = await runJepsen({ faults, seconds: Number(values.time), seed, recoverSeconds: Number(values.recover), out, unsafeFencing: values["unsafe-fencing"]! });
  process.stdout.write(`${result.summary}\nresults: ${result.out}\n`);
  process.exit(result.valid === true ? 0 : 1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((error: unknown) => {
    process.stderr.write(`jepsen: harness error: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(2);
  });
}
