/**
 * Opens a node on an existing data directory in a fresh process and reports how long recovery
 * took: a restart as an operator sees it, without the benchmark's own heap in the way.
 * Usage (by node-bench.ts): node restart-child.js DATA_DIR SHARDS
 */
import pino from "pino";
import { SystemClock } from "../src/node/clock.js";
import { CronwheelNode } from "../src/node/node.js";

const [dataDir, shards] = process.argv.slice(2);
const started = performance.now();
const node = await CronwheelNode.start({
  address: "127.0.0.1:0",
    nodeId: "bench",
  dataDir: dataDir!,
  shardCount: Number(shards),
  fsync: "batch",
  clock: new SystemClock(),
  logger: pino({ level: "warn" }),
});
const sec = (performance.now() - started) / 1000;
const jobs = node.localShards().reduce((sum, s) => sum + s.state.jobs.size, 0);
process.stdout.write(`${JSON.stringify({ sec, jobs })}\n`);
process.exit(0); // no clean stop: it would write snapshots and change the directory being measured
