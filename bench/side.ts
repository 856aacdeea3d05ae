/**
 * One side of one Cronwheel-vs-BullMQ workload, in a process of its own: `node side.js <name>`
 * prints that side's figures as JSON on stdout. run.ts starts one per side, so neither system runs
 * in a process the other has already used (its heap, its JIT state, a client's leftover timers):
 * run in one process, whichever went second measured 10–30 % slower.
 */
import { bullmqHerd, bullmqLatency, bullmqRepeat, bullmqThroughput } from "./bullmq-bench.js";
import { cronwheelHerd, cronwheelLatency, cronwheelRepeat, cronwheelThroughput } from "./cronwheel-bench.js";

const SIDES: Record<string, () => Promise<Record<string, unknown>>> = {
  "bullmq-throughput": () => bullmqThroughput(),
  "cronwheel-throughput-prefetch0": () => cronwheelThroughput(),
  "cronwheel-throughput-prefetch300": () => cronwheelThroughput({ prefetch: 300 }),
  "bullmq-latency": () => bullmqLatency(),
  "cronwheel-latency": () => cronwheelLatency(),
  "bullmq-herd": () => bullmqHerd(),
  "cronwheel-herd-prefetch0": () => cronwheelHerd(),
  "cronwheel-herd-prefetch300": () => cronwheelHerd({ prefetch: 300 }),
  "bullmq-repeat": () => bullmqRepeat(),
  "cronwheel-repeat": () => cronwheelRepeat(),
};

async function main(): Promise<void> {
  const name = process.argv[2] ?? "";
  const side = SIDES[name];
  if (!side) throw new Error(`unknown side '${name}'; known: ${Object.keys(SIDES).join(", ")}`);
  process.stdout.write(`${JSON.stringify(await side())}\n`);
}

main().then(
  () => process.exit(0), // a client's leftover keep-alive sockets must not hold the process open
  (error: unknown) => {
    process.stderr.write(`bench side failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
