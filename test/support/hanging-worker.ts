/**
 * A worker process that takes one assignment, prints it as a JSON line, and never reports: the
 * kill -9 test kills it mid-execution. Usage: node hanging-worker.js BASE_URL QUEUE WORKER_ID
 */
import { RawWorker } from "./raw-worker.js";

const [base, queue, workerId] = process.argv.slice(2);
const worker = await RawWorker.connect(base!, workerId!, [queue!]);
worker.send({ t: "credit", n: 1 });
const a = await worker.assignment();
worker.send({ t: "started", id: a.id, fence: a.fence });
await worker.next((m) => m.t === "ack" && m.id === a.id);
process.stdout.write(`${JSON.stringify(a)}\n`);
setInterval(() => {}, 1 << 30); // hold the work until killed
