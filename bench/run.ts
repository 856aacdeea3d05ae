/**
 * `npm run bench [-- scenario …]`: runs the benchmark scenarios and prints one JSON document with
 * the machine it ran on. Scenarios: wal, wheel, jobs (1M jobs: heap and restart), lateness.
 * Record the figures in bench/RESULTS.md, misses included.
 */
import os from "node:os";
import { runJobsAndRestartBench, runLatenessBench } from "./node-bench.js";
import { runWalBench } from "./wal-bench.js";
import { runWheelBench } from "./wheel-bench.js";

const SCENARIOS: Record<string, () => Promise<Record<string, unknown>>> = {
  wal: runWalBench,
  wheel: runWheelBench,
  jobs: () => runJobsAndRestartBench(Number(process.env.BENCH_JOBS ?? 1_000_000)),
  lateness: () => runLatenessBench(Number(process.env.BENCH_LATENESS_JOBS ?? 20_000), Number(process.env.BENCH_SECONDS ?? 15)),
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
