// An example Cronwheel worker: takes executions of its queues and logs them.
//
//   npm run build
//   CRONWHEEL_URLS=http://127.0.0.1:7070 CRONWHEEL_QUEUES=demo node docs/examples/worker.mjs
//
// docker-compose.yml runs it as the `worker` service against the three nodes. Settings come from
// the environment:
//   CRONWHEEL_URLS         comma-separated node URLs (default http://127.0.0.1:7070)
//   CRONWHEEL_QUEUES       comma-separated queues (default demo)
//   CRONWHEEL_CONCURRENCY  most handlers running at once (default 4)
//   CRONWHEEL_TOKEN        bearer token with role worker, when the nodes have a token file
//
// One Worker learns the shard leaders from any node it can reach (the URLs are tried in turn) and
// keeps a connection to each: every node hands out the work of the shards it leads. (An
// application would import from the package, "cronwheel"; this file sits in the repository and
// imports the build output.)
import { NonRetryableError, Worker } from "../../dist/src/client/index.js";

const urls = list(process.env.CRONWHEEL_URLS ?? "http://127.0.0.1:7070");
const queues = list(process.env.CRONWHEEL_QUEUES ?? "demo");
const concurrency = Number(process.env.CRONWHEEL_CONCURRENCY ?? 4);
const token = process.env.CRONWHEEL_TOKEN || undefined;

const logger = {
  info: (o, m) => log("info", o, m),
  warn: (o, m) => log("warn", o, m),
  error: (o, m) => log("error", o, m),
};

/** The work: the execution id is the idempotency key for anything this does outside. */
async function handler(ctx) {
  log("info", { id: ctx.id, attempt: ctx.attempt, queue: ctx.queue, jobId: ctx.jobId, payload: ctx.payload }, "running");
  if (ctx.payload && typeof ctx.payload === "object" && ctx.payload.fail === "permanent") {
    throw new NonRetryableError("payload asked for a permanent failure"); // → dead letter now
  }
  if (ctx.payload && typeof ctx.payload === "object" && ctx.payload.fail === true) {
    throw new Error("payload asked for a failure"); // → retried per the job's retry policy
  }
  await sleep(100, ctx.signal); // stands in for real work; stops when the execution is aborted
  return { handledAt: new Date().toISOString() };
}

const worker = new Worker({
  url: urls,
  token,
  queues,
  concurrency,
  prefetch: 0,
  handler,
  reconnect: { initialMs: 200, maxMs: 5_000 },
  logger,
});

worker.on("connected", ({ nodeId, url }) => log("info", { url, nodeId }, "connected"));
worker.on("reconnecting", ({ attempt, delayMs }) => log("warn", { attempt, delayMs }, "reconnecting"));
worker.on("completed", ({ id, outcome }) => log("info", { id, outcome }, "completed"));
worker.on("error", (error) => log("error", { err: String(error) }, "worker error"));
// SIGTERM (docker compose stop) drains: finish what is in hand, then leave.
worker.on("closed", () => process.exit(0));

await worker.start();
log("info", { urls, queues, concurrency }, "worker ready");

function list(value) {
  return value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

function log(level, o, m) {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level, msg: m, ...o }) + "\n");
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
