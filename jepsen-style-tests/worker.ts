/**
 * A worker process for the jepsen-style runs. It speaks the worker protocol itself (not through
 * the SDK) so that it can record exactly what it was told and what it answered: every
 * assignment, every acked heartbeat, the side effect (the "sink" write), every final report and
 * the node's answer. It connects to every node that leads shards (from /v1/cluster) and follows
 * changes; a final report still unanswered is sent again on any open connection.
 *
 * Half of the executions taken away from it (cancel, lost lease) it finishes anyway and reports —
 * a handler that ignores its abort signal, as real ones do — so that late reports with old
 * fences reach the nodes, which must answer them `stale` and change nothing.
 *
 * It keeps the SDK's liveness rule (src/client/liveness.ts: ping, and drop a connection nothing was
 * heard on for three intervals while this process ran), with 1 s intervals instead of 10 s so that a half-open link is
 * found within a fault; every connection opened, closed or dropped is recorded ("link" events).
 * `--via n1=127.0.0.1:PORT,…` dials a node through that address (the run's per-worker proxies).
 *
 *   node dist/jepsen-style-tests/worker.js --id w1 --urls http://127.0.0.1:7071,… --history w1.jsonl --seed 7
 */
import { parseArgs } from "node:util";
import { Packr } from "msgpackr";
import WebSocket from "ws";
import { LinkLiveness } from "../src/client/liveness.js";
import { EarlyRevocations } from "../src/client/revocations.js";
import type { AssignMessage, NodeMessage, WorkerMessage } from "../src/client/protocol.js";
import { HistoryWriter, LIVENESS_PING_MS, LIVENESS_PINGS, monoNow } from "./history.js";
import { Random } from "./random.js";

const packr = new Packr({ useRecords: false });
/**
 * Credit each connection starts with (and gets back as executions end): enough that the
 * workload's ~100 executions/s never build a backlog, so lateness after a fault is the
 * cluster's, not the workers'.
 */
const CREDIT_PER_CONNECTION = 8;
const CLUSTER_POLL_MS = 1000;
const REPORT_RESEND_MS = 1000;

interface Job {
  assign: AssignMessage;
  via: Conn;
  timer: NodeJS.Timeout | null;
  heartbeat: NodeJS.Timeout | null;
  report: WorkerMessage | null;
  lastSentAt: number;
  done: boolean;
  /** Told it lost the execution (it may still finish and report: a late report). */
  aborted: boolean;
}

interface Conn {
  nodeId: string;
  address: string;
  ws: WebSocket;
  open: boolean;
  liveness: LinkLiveness;
  livenessTimer: NodeJS.Timeout | null;
}

const { values } = parseArgs({
  options: {
    id: { type: "string" },
    urls: { type: "string" },
    history: { type: "string" },
    seed: { type: "string", default: "1" },
    queues: { type: "string", default: "jobs,adhoc" },
    via: { type: "string", default: "" },
  },
});
const workerId = values.id!;
const urls = values.urls!.split(",");
const history = new HistoryWriter(values.history!);
const random = new Random(Number(values.seed));
const queues = values.queues!.split(",");
const via = new Map(values.via!.split(",").filter(Boolean).map((kv) => kv.split("=") as [string, string]));
const conns = new Map<string, Conn>();
const jobs = new Map<string, Job>();
const earlyRevocations = new EarlyRevocations();

function send(conn: Conn, ...messages: WorkerMessage[]): void {
  if (conn.open) conn.ws.send(packr.pack(messages));
}

function anyOpen(preferred: Conn): Conn | null {
  if (preferred.open) return preferred;
  for (const c of conns.values()) if (c.open) return c;
  return null;
}

function connect(nodeId: string, address: string): void {
  // A handshake through a dead link must not hold the node's slot forever.
  const ws = new WebSocket(`ws://${address}/v1/workers`, { perMessageDeflate: false, handshakeTimeout: LIVENESS_PING_MS * LIVENESS_PINGS });
  const conn: Conn = { nodeId, address, ws, open: false, liveness: new LinkLiveness(LIVENESS_PING_MS, LIVENESS_PINGS, monoNow()), livenessTimer: null };
  conns.set(nodeId, conn);
  const heard = () => conn.liveness.heard(monoNow());
  ws.on("open", () => {
    conn.open = true;
    heard();
    history.record({ type: "link", worker: workerId, node: nodeId, action: "open", t: monoNow() });
    send(conn, { t: "hello", workerId, queues, protocol: 1 }, { t: "credit", n: CREDIT_PER_CONNECTION });
    conn.livenessTimer = setInterval(() => {
      if (conn.liveness.check(monoNow()) === "ping") return ws.ping();
      history.record({ type: "link", worker: workerId, node: nodeId, action: "dropped", reason: "nothing heard", t: monoNow() });
      conn.open = false;
      ws.terminate();
    }, LIVENESS_PING_MS);
  });
  ws.on("message", (data: Buffer) => {
    heard();
    for (const m of packr.unpack(data) as NodeMessage[]) onMessage(conn, m);
  });
  ws.on("pong", heard);
  ws.on("ping", heard);
  ws.on("error", () => undefined);
  ws.on("close", () => {
    if (conn.open) history.record({ type: "link", worker: workerId, node: nodeId, action: "closed", t: monoNow() });
    conn.open = false;
    if (conn.livenessTimer) clearInterval(conn.livenessTimer);
    if (conns.get(nodeId) === conn) conns.delete(nodeId);
  });
}

function onMessage(conn: Conn, m: NodeMessage): void {
  const t = monoNow();
  switch (m.t) {
    case "assign": {
      const old = jobs.get(m.id);
      if (old && !old.done) stop(old);
      history.record({
        type: "assigned",
        worker: workerId,
        executionId: m.id,
        attempt: m.attempt,
        fence: m.fence,
        node: conn.nodeId,
        ...(m.jobId !== undefined ? { jobId: m.jobId } : {}),
        scheduledAtMono: history.wallToMono(m.scheduledAt),
        leaseDeadlineMono: history.wallToMono(m.leaseDeadline),
        t,
      });
      const job: Job = { assign: m, via: conn, timer: null, heartbeat: null, report: null, lastSentAt: 0, done: false, aborted: false };
      // Revoked before it arrived (as the SDK does): recorded, not run.
      if (earlyRevocations.revoked(m.id, m.fence)) {
        job.aborted = true;
        history.record({ type: "aborted", worker: workerId, executionId: m.id, fence: m.fence, reason: "revoked before assigned", t });
        stop(job);
        return;
      }
      run(job);
      return;
    }
    case "ack": {
      const job = jobs.get(m.id);
      if (!job || job.assign.fence !== m.fence) return;
      if (m.of === "heartbeat" && m.leaseDeadline !== undefined) {
        history.record({ type: "lease-extended", worker: workerId, executionId: m.id, fence: m.fence, leaseDeadlineMono: history.wallToMono(m.leaseDeadline), t });
      } else if (m.of === "succeeded" || m.of === "failed") {
        answered(job, m.of, "ack", t);
      }
      return;
    }
    case "stale": {
      const job = jobs.get(m.id);
      if (!job || job.assign.fence !== m.fence) return;
      if (m.of === "succeeded" || m.of === "failed") answered(job, m.of, "stale", t);
      else if (!job.done) takenAway(job, "stale", t);
      return;
    }
    case "cancel": {
      const job = jobs.get(m.id);
      if (!job || job.assign.fence < m.fence) earlyRevocations.note(m.id, m.fence);
      if (!job || job.assign.fence !== m.fence || job.done) return;
      takenAway(job, m.reason, t);
      return;
    }
    default:
      return;
  }
}

/** The execution was taken away: stop — or, half the time, finish and report anyway (a late report). */
function takenAway(job: Job, reason: string, t: number): void {
  if (job.aborted) return;
  job.aborted = true;
  history.record({ type: "aborted", worker: workerId, executionId: job.assign.id, fence: job.assign.fence, reason, t });
  if (job.heartbeat) clearInterval(job.heartbeat);
  job.heartbeat = null;
  if (random.chance(0.5)) stop(job);
}

/** The handler: works a while (heartbeating), writes its side effect, reports. */
function run(job: Job): void {
  const { assign } = job;
  jobs.set(assign.id, job);
  const workMs = random.int(10, 300);
  job.heartbeat = setInterval(() => {
    const c = anyOpen(job.via);
    if (c) send(c, { t: "heartbeat", id: assign.id, fence: assign.fence });
  }, Math.max(50, assign.leaseMs / 3));
  job.timer = setTimeout(() => {
    if (job.heartbeat) clearInterval(job.heartbeat);
    job.heartbeat = null;
    history.record({ type: "sink-write", worker: workerId, executionId: assign.id, attempt: assign.attempt, fence: assign.fence, t: monoNow() });
    const failed = random.chance(0.1);
    job.report = failed
      ? { t: "failed", id: assign.id, fence: assign.fence, error: { message: "chaos" }, retryable: true }
      : { t: "succeeded", id: assign.id, fence: assign.fence, result: { by: workerId } };
    sendReport(job);
  }, workMs);
}

function sendReport(job: Job): void {
  const c = anyOpen(job.via);
  if (!c || !job.report) return;
  job.lastSentAt = monoNow();
  history.record({ type: "report-sent", worker: workerId, executionId: job.assign.id, fence: job.assign.fence, kind: job.report.t as "succeeded" | "failed", t: job.lastSentAt });
  send(c, job.report);
}

function answered(job: Job, kind: "succeeded" | "failed", answer: "ack" | "stale", t: number): void {
  if (job.done) return;
  history.record({ type: "report-answered", worker: workerId, executionId: job.assign.id, fence: job.assign.fence, kind, answer, t });
  stop(job);
}

function stop(job: Job): void {
  job.done = true;
  if (job.timer) clearTimeout(job.timer);
  if (job.heartbeat) clearInterval(job.heartbeat);
  jobs.delete(job.assign.id);
  // The credit goes back where it was used: handed to another node, credit would drift to
  // one connection and starve the others. (A closed connection's credit went with it; its
  // replacement starts with a full share.)
  if (job.via.open) send(job.via, { t: "credit", n: 1 });
}

/** Connect to every node that leads a shard; resend reports nobody answered. */
async function poll(): Promise<void> {
  for (const url of urls) {
    try {
      const res = await fetch(`${url}/v1/cluster`, { signal: AbortSignal.timeout(1000) });
      const view = (await res.json()) as { nodes: Array<{ id: string; address: string }>; shards: Array<{ leader: string | null }> };
      const leaders = new Set(view.shards.map((s) => s.leader).filter((l): l is string => l !== null));
      for (const n of view.nodes) if (leaders.has(n.id) && !conns.has(n.id)) connect(n.id, via.get(n.id) ?? n.address);
      break;
    } catch {
      // that node is down or paused: ask the next
    }
  }
  const now = monoNow();
  for (const job of jobs.values()) if (job.report && now - job.lastSentAt > REPORT_RESEND_MS) sendReport(job);
}

setInterval(() => void poll(), CLUSTER_POLL_MS);
void poll();
process.on("SIGTERM", () => {
  history.close();
  process.exit(0);
});
