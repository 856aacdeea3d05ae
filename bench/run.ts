/**
 * `npm run bench [-- scenario …]`: runs the benchmark scenarios and prints one JSON document with
 * the machine it ran on. Scenarios: wal, wheel, jobs (1M jobs: heap and restart), lateness, the
 * Cronwheel-vs-BullMQ workloads (vs-*), and the three-node cluster (cluster-*).
 * Record the figures in bench/RESULTS.md, misses included.
 */
import { spawn } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { clusterFailover, clusterLateness, clusterThroughput } from "./cluster-bench.js";
import { runJobsAndRestartBench, runLatenessBench } from "./node-bench.js";
import { runWalBench } from "./wal-bench.js";
import { waitForQuietDisk } from "./stats.js";
import { runWheelBench } from "./wheel-bench.js";

type Figures = Record<string, unknown>;

/**
 * Run one side of a versus workload in a fresh process (bench/side.ts) and return its figures,
 * with the seconds it first waited for the disk to be quiet after the previous side (stats.ts).
 */
async function side(name: string): Promise<Figures> {
  const diskSettleSec = await waitForQuietDisk();
  return { ...(await sideProcess(name)), diskSettleSec };
}

function sideProcess(name: string): Promise<Figures> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, path.join(path.dirname(fileURLToPath(import.meta.url)), "side.js"), name], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`bench side ${name} exited with ${code}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").pop()!) as Figures);
      } catch (error) {
        reject(new Error(`bench side ${name} printed no figures: ${(error as Error).message}`));
      }
    });
  });
}

/** The BullMQ side of one workload, then the Cronwheel side(s), each in its own process, and the ratio. */
async function versus(bullmq: string, cronwheel: string | Record<string, string>, ratioOf: (b: Figures, c: Figures) => number): Promise<Figures> {
  const b = await side(bullmq);
  let c: Figures;
  if (typeof cronwheel === "string") {
    c = await side(cronwheel);
  } else {
    c = {};
    for (const [label, name] of Object.entries(cronwheel)) c[label] = await side(name);
  }
  return { bullmq: b, cronwheel: c, cronwheelOverBullmq: Math.round(ratioOf(b, c) * 100) / 100 };
}

const num = (f: Figures, key: string) => Number(f[key]);

const SCENARIOS: Record<string, () => Promise<Record<string, unknown>>> = {
  wal: runWalBench,
  wheel: runWheelBench,
  jobs: () => runJobsAndRestartBench(Number(process.env.BENCH_JOBS ?? 1_000_000)),
  lateness: () => runLatenessBench(Number(process.env.BENCH_LATENESS_JOBS ?? 20_000), Number(process.env.BENCH_SECONDS ?? 15)),
  // Cronwheel vs BullMQ, same workload, same machine (ratios: throughput up is better; latency and lateness down is better).
  // Cronwheel runs with the SDK's default prefetch 0 and with prefetch 300; the ratio is of the better one.
  "vs-throughput": () =>
    versus("bullmq-throughput", { prefetch0: "cronwheel-throughput-prefetch0", prefetch300: "cronwheel-throughput-prefetch300" }, (b, c) =>
      Math.max(num(c.prefetch0 as Figures, "executionsPerSec"), num(c.prefetch300 as Figures, "executionsPerSec")) / num(b, "executionsPerSec"),
    ),
  "vs-latency": () => versus("bullmq-latency", "cronwheel-latency", (b, c) => num(c, "latencyMsP99") / num(b, "latencyMsP99")),
  "vs-herd": () =>
    versus("bullmq-herd", { prefetch0: "cronwheel-herd-prefetch0", prefetch300: "cronwheel-herd-prefetch300" }, (b, c) =>
      Math.min(num(c.prefetch0 as Figures, "lastStartedAfterDueSec"), num(c.prefetch300 as Figures, "lastStartedAfterDueSec")) / num(b, "lastStartedAfterDueSec"),
    ),
  // A three-node cluster, replication factor 3, on this one machine (issue 4).
  "cluster-throughput": () => clusterThroughput({ prefetch: Number(process.env.BENCH_PREFETCH ?? 100) }),
  "cluster-lateness": () => clusterLateness(),
  "cluster-failover": () => clusterFailover({ rounds: Number(process.env.BENCH_FAILOVER_ROUNDS ?? 20) }),
  "vs-repeat": () => versus("bullmq-repeat", "cronwheel-repeat", (b, c) => num(c, "latenessMsP99") / num(b, "latenessMsP99")),
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const names = wanted.length > 0 ? wanted : Object.keys(SCENARIOS);
  const unknown = names.filter((n) => !SCENARIOS[n]);
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(", ")}; known: ${Object.keys(SCENARIOS).join(", ")}`);
  const machine = {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    date: new Date().toISOString(),
  };
  const results: Record<string, unknown> = {};
  for (const name of names) {
    process.stderr.write(`bench: ${name}…\n`);
    results[name] = await SCENARIOS[name]!();
    process.stderr.write(`bench: ${name}: ${JSON.stringify(results[name])}\n`);
  }
  process.stdout.write(`${JSON.stringify({ machine, results }, null, 2)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
