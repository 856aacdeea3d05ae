/**
 * The worker gateway: WebSocket `/v1/workers` on the node's uWS server (protocol.ts has the frames).
 *
 * Dispatch, once per event-loop turn when anything changed (credit arrived, work became ready, an
 * execution ended): for each connected worker with credit, in rotating order, take ready
 * executions of its queues from each shard (priority, then tenant round-robin, then age), reserve
 * the credit, and propose one claim record per shard. Only when the claim is committed does the
 * assignment frame leave; executions the claim refused are put back and the credit returned.
 *
 * Reports are batched the same way: all reports that arrive in one turn for one shard become one
 * report record; each is answered `ack` or `stale` once the record is applied. The gateway keeps
 * no state that matters for safety: leases, fences and retries live in the replicated shard state,
 * so a worker that reconnects (here or, later, to another node) just reports again.
 */
import { Packr } from "msgpackr";
import { Gauge } from "prom-client";
import type { Logger } from "pino";
import uWS from "uWebSockets.js";
import type { Auth } from "../api/auth.js";
import { CronwheelError } from "../core/errors.js";
import { isLeased, type Execution } from "../core/execution.js";
import type { EnqueueRecord, ExecutionRef, ReportItem, ReportRecord, ShardRecord } from "../core/records.js";
import { approxBytes } from "../core/approx-bytes.js";
import { enqueueRunAt, type ClaimOutcome, type ShardObserver } from "../core/shard-state.js";
import type { CronwheelNode } from "../node/node.js";
import type { ShardReplica } from "../node/shard-replica.js";
import {
  AttemptLogBuffer,
  LOG_LEVELS,
  PROTOCOL_VERSION,
  WORKER_ID_PATTERN,
  WORKER_PATH,
  type AttemptLogs,
  type LogLevel,
  type LogLine,
  type AssignMessage,
  type NodeMessage,
  type ReportMessage,
  type WorkerMessage,
} from "./protocol.js";

/** Largest frame a worker may send. */
const WORKER_FRAME_BYTES_MAX = 16 * 1024 * 1024;
/**
 * A worker's unsent bytes (queued in uWS, plus assignments claimed for it and not yet handed to
 * uWS) may reach this and one assignment more; then it is given no new work until it drains (a
 * slow consumer: what it does not read waits in the shard, not in this node's memory).
 */
export const WS_SEND_BUFFER_BYTES_MAX = 4 * 1024 * 1024;
/** uWS's own limit (maxBackpressure), far above the one dispatch keeps to. */
export const WS_SEND_BUFFER_HARD_MAX = 64 * 1024 * 1024;
/** An assign frame's bytes beyond its payload and previous result (ids, times, field names). */
const ASSIGN_OVERHEAD_BYTES = 256;
/** Ready executions taken per step while a connection's byte room is checked. */
const TAKE_STEP = 64;
/**
 * Executions one dispatch pass claims for one worker; its remaining credit is used by the next
 * pass, one turn later, whose claim goes into the next group commit. A worker holding 400 credits
 * then gets two assign frames a commit apart and starts on the first while the node commits the
 * second: worker and node overlap instead of taking turns (a 50,000 herd: 0.74 s mean, 0.79 s
 * worst over 5 paired runs, against 0.77 s and 0.87 s with one claim for all the credit).
 */
const CLAIM_PASS_MAX = 200;
/** Credits one worker may hold: bounds what one dispatch pass can take for it. */
const WORKER_CREDIT_MAX = 10_000;
/** A result or error a worker reports, as JSON (the API's payload limit). */
const REPORT_VALUE_CHARS_MAX = 256 * 1024;
/** Queues one worker may subscribe to. */
const WORKER_QUEUES_MAX = 64;
/** Seconds without any frame (pings included) before uWS closes a connection. */
const IDLE_TIMEOUT_SEC = 30;

// copyBuffers: binary values in a result must not point into the frame, which uWS reuses.
const packr = new Packr({ useRecords: false, copyBuffers: true });

interface Connection {
  ws: uWS.WebSocket<ConnectionData>;
  open: boolean;
  hello: boolean;
  workerId: string;
  /** The tenant whose work it gets, or null for all tenants (an admin token). */
  tenant: string | null;
  queues: string[];
  credit: number;
  draining: boolean;
  outbox: NodeMessage[];
  /** Estimated bytes of assignments claimed for it (in flight or in the outbox), not yet in uWS. */
  unsentEstimate: number;
  /** The part of `unsentEstimate` in the outbox: handed to uWS at the next flush. */
  outboxEstimate: number;
  /** A dispatch pass stopped for lack of room, with credit left: dispatch again once there is room. */
  roomLimited: boolean;
}

interface ConnectionData {
  conn: Connection | null;
}

/** Reports for one shard in this turn: each item (its log record's) with the connection to answer. */
interface ReportBatch {
  conns: Connection[];
  items: ReportItem[];
}

export class WorkerGateway {
  private readonly connections = new Set<Connection>();
  private readonly byWorkerId = new Map<string, Set<Connection>>();
  /** Tenant of each execution this node assigned, for reports from all-tenant (admin) workers. */
  private readonly assignedTenant = new Map<string, string>();
  private dispatchScheduled = false;
  private dispatchTimer: NodeJS.Timeout | null = null;
  private readonly flushQueue = new Set<Connection>();
  private flushScheduled = false;
  /** Reports by shard index, committed once per turn (on this node or forwarded to the leader). */
  private reports = new Map<number, ReportBatch>();
  private reportsScheduled = false;
  private draining = false;
  private rotation = 0;

  constructor(
    private readonly node: CronwheelNode,
    private readonly auth: Auth,
    private readonly logger: Logger,
  ) {
    node.addObserver(this.observer());
    node.onEnqueueProposed((shard, record) => this.claimFresh(shard, record));
    node.onServingChange(() => this.scheduleDispatch());
    const connections = this.connections;
    new Gauge({
      name: "cronwheel_worker_send_buffer_bytes",
      help: "Largest number of bytes queued for one worker connection and not yet sent (sampled at scrape)",
      registers: [node.metrics.registry],
      collect() {
        let max = 0;
        for (const c of connections) if (c.open) max = Math.max(max, c.ws.getBufferedAmount());
        this.set(max);
      },
    });
  }

  attach(app: uWS.TemplatedApp): void {
    app.ws<ConnectionData>(WORKER_PATH, {
      compression: uWS.DISABLED,
      maxPayloadLength: WORKER_FRAME_BYTES_MAX,
      idleTimeout: IDLE_TIMEOUT_SEC,
      sendPingsAutomatically: true,
      maxBackpressure: WS_SEND_BUFFER_HARD_MAX,
      upgrade: (res, req, context) => {
        res.upgrade<ConnectionData>(
          { conn: null },
          req.getHeader("sec-websocket-key"),
          req.getHeader("sec-websocket-protocol"),
          req.getHeader("sec-websocket-extensions"),
          context,
        );
      },
      open: (ws) => {
        const conn: Connection = { ws, open: true, hello: false, workerId: "", tenant: null, queues: [], credit: 0, draining: false, outbox: [], unsentEstimate: 0, outboxEstimate: 0, roomLimited: false };
        ws.getUserData().conn = conn;
        this.connections.add(conn);
        if (this.draining) this.send(conn, { t: "drain" });
      },
      message: (ws, data, isBinary) => {
        const conn = ws.getUserData().conn;
        if (conn) this.onFrame(conn, data, isBinary);
      },
      drain: () => this.scheduleDispatch(),
      close: (ws) => {
        const conn = ws.getUserData().conn;
        if (conn) this.onClose(conn);
      },
    });
  }

  /** Stop assigning work (node shutting down); workers are told to drain. */
  drainAll(): void {
    this.draining = true;
    for (const conn of this.connections) this.send(conn, { t: "drain" });
  }

  close(): void {
    if (this.dispatchTimer) clearTimeout(this.dispatchTimer);
    for (const conn of this.connections) if (conn.open) conn.ws.end(1001, "node stopping");
  }

  get workerCount(): number {
    return this.connections.size;
  }

  // ---------------------------------------------------------------------------------------------
  // frames in

  private onFrame(conn: Connection, data: ArrayBuffer, isBinary: boolean): void {
    let messages: WorkerMessage[];
    try {
      if (!isBinary) throw new Error("text frames are not part of the protocol");
      const decoded: unknown = packr.unpack(Buffer.from(data));
      if (!Array.isArray(decoded)) throw new Error("a frame is an array of messages");
      messages = decoded as WorkerMessage[];
      for (const m of messages) this.onMessage(conn, m);
    } catch (error) {
      this.refuse(conn, error instanceof CronwheelError ? error : new CronwheelError("invalid_argument", `malformed frame: ${(error as Error).message}`));
    }
  }

  private onMessage(conn: Connection, m: WorkerMessage): void {
    if (typeof m !== "object" || m === null || typeof (m as { t?: unknown }).t !== "string") throw bad("a message is an object with a string field t");
    if (!conn.hello && m.t !== "hello") throw bad("the first message must be hello");
    switch (m.t) {
      case "hello":
        return this.onHello(conn, m);
      case "credit":
        if (!Number.isSafeInteger(m.n) || m.n < 0) throw bad("credit.n must be a non-negative integer");
        conn.credit = Math.min(WORKER_CREDIT_MAX, conn.credit + m.n);
        this.scheduleDispatch();
        return;
      case "withdraw": {
        if (!Number.isSafeInteger(m.n) || m.n < 0) throw bad("withdraw.n must be a non-negative integer");
        // Credit not yet used goes back; assigns already sent used theirs (the worker counts them).
        const n = Math.min(m.n, conn.credit);
        conn.credit -= n;
        this.send(conn, { t: "withdrawn", n });
        return;
      }
      case "drain":
        conn.draining = true;
        return;
      case "started":
      case "heartbeat":
      case "succeeded":
      case "failed":
        return this.onReport(conn, m);
      default:
        throw bad(`unknown message type '${String((m as { t: unknown }).t)}'`);
    }
  }

  private onHello(conn: Connection, m: WorkerMessage & { t: "hello" }): void {
    if (conn.hello) throw bad("hello was already sent");
    if (m.protocol !== PROTOCOL_VERSION) throw bad(`protocol ${String(m.protocol)} is not supported; this node speaks ${PROTOCOL_VERSION}`);
    if (typeof m.workerId !== "string" || !WORKER_ID_PATTERN.test(m.workerId)) throw bad("hello.workerId must match [A-Za-z0-9._:@-]{1,200}");
    if (!Array.isArray(m.queues) || m.queues.length === 0 || m.queues.length > WORKER_QUEUES_MAX || !m.queues.every((q) => typeof q === "string" && /^[A-Za-z0-9._-]{1,128}$/.test(q))) {
      throw bad(`hello.queues must be 1..${WORKER_QUEUES_MAX} queue names`);
    }
    const principal = this.auth.authenticate(typeof m.token === "string" ? `Bearer ${m.token}` : "");
    if (principal.role === "client") throw new CronwheelError("permission_denied", "a client token may not run a worker");
    conn.hello = true;
    conn.workerId = m.workerId;
    conn.tenant = principal.role === "admin" && this.auth.enabled ? null : principal.tenant;
    conn.queues = [...new Set(m.queues)];
    let same = this.byWorkerId.get(conn.workerId);
    if (!same) this.byWorkerId.set(conn.workerId, (same = new Set()));
    same.add(conn);
    this.send(conn, { t: "welcome", nodeId: this.node.opts.nodeId, protocol: PROTOCOL_VERSION });
  }

  private onReport(conn: Connection, m: ReportMessage): void {
    if (typeof m.id !== "string" || !Number.isSafeInteger(m.fence)) throw bad(`${m.t} needs an execution id and a fence`);
    // An all-tenant worker names the tenant (from its assign): this node may not have assigned it.
    const tenant = conn.tenant ?? this.assignedTenant.get(m.id) ?? (typeof m.tenant === "string" ? m.tenant : undefined);
    let shard: number;
    try {
      if (tenant === undefined) throw new CronwheelError("not_found", "unknown execution");
      shard = this.node.executionShardIndex(tenant, m.id);
    } catch {
      this.send(conn, { t: "stale", id: m.id, fence: m.fence, of: m.t });
      return;
    }
    const item: ReportItem = { tenant: tenant!, executionId: m.id, fence: m.fence, kind: m.t };
    if (m.t === "succeeded") item.result = jsonValue(m.result ?? null, "succeeded.result");
    if (m.t === "heartbeat" && m.progress !== undefined) item.progress = jsonValue(m.progress, "heartbeat.progress");
    if (m.t === "failed") {
      item.error = jsonValue(m.error ?? null, "failed.error");
      item.retryable = m.retryable !== false;
    }
    if ((m.t === "succeeded" || m.t === "failed") && (m.logs !== undefined || m.logsDropped !== undefined)) Object.assign(item, attemptLogs(m));
    let batch = this.reports.get(shard);
    if (!batch) this.reports.set(shard, (batch = { conns: [], items: [] }));
    batch.conns.push(conn);
    batch.items.push(item);
    if (!this.reportsScheduled) {
      this.reportsScheduled = true;
      setImmediate(() => this.flushReports());
    }
  }

  private flushReports(): void {
    this.reportsScheduled = false;
    const batches = this.reports;
    this.reports = new Map();
    for (const [shard, { conns, items }] of batches) {
      const record: ReportRecord = { type: "exec.report", at: this.node.opts.clock.now(), workerId: conns[0]!.workerId, items };
      this.node.commitReports(shard, record).then(
        (result) => {
          for (let i = 0; i < result.length; i++) {
            const outcome = result[i]!;
            const { executionId: id, fence, kind } = items[i]!;
            if (outcome.ok) {
              if (kind === "succeeded" || kind === "failed") this.assignedTenant.delete(id);
              const ack: NodeMessage = { t: "ack", id, fence, of: kind };
              if (kind === "heartbeat") ack.leaseDeadline = outcome.leaseDeadline;
              this.send(conns[i]!, ack);
            } else {
              this.send(conns[i]!, { t: "stale", id, fence, of: kind });
            }
          }
        },
        // The shard cannot commit now: no answer; the worker resends after it reconnects.
        (error: Error) => this.logger.warn({ err: error, reports: items.length }, "reports not committed"),
      );
    }
  }

  private onClose(conn: Connection): void {
    conn.open = false;
    this.connections.delete(conn);
    this.flushQueue.delete(conn);
    const same = this.byWorkerId.get(conn.workerId);
    same?.delete(conn);
    if (same && same.size === 0) this.byWorkerId.delete(conn.workerId);
    // Its executions keep their leases: reported in time (after a reconnect) they finish normally.
  }

  private refuse(conn: Connection, error: CronwheelError): void {
    this.logger.warn({ workerId: conn.workerId, code: error.code, msg: error.message }, "closing worker connection");
    if (!conn.open) return;
    this.flushNow(conn, [{ t: "error", code: error.code, message: error.message }]);
    conn.ws.end(1008, error.message.slice(0, 100));
  }

  // ---------------------------------------------------------------------------------------------
  // dispatch

  private observer(): ShardObserver {
    return {
      fired: () => {},
      ready: () => this.scheduleDispatch(),
      finished: () => this.scheduleDispatch(),
      revoked: (e, workerId, fence, reason) => {
        this.assignedTenant.delete(e.id);
        for (const conn of this.byWorkerId.get(workerId) ?? []) this.send(conn, { t: "cancel", id: e.id, fence, reason });
      },
    };
  }

  private scheduleDispatch(): void {
    if (this.dispatchScheduled || this.connections.size === 0) return;
    this.dispatchScheduled = true;
    setImmediate(() => {
      this.dispatchScheduled = false;
      this.dispatch();
    });
  }

  private dispatch(): void {
    if (this.draining || !this.anyCredit()) return;
    const conns = [...this.connections];
    const shards = this.node.servingShards();
    let retryIn: number | null = null;
    const start = this.rotation++ % Math.max(1, conns.length);
    let more = false;
    for (let k = 0; k < conns.length; k++) {
      const conn = conns[(start + k) % conns.length]!;
      if (!conn.open || !conn.hello || conn.draining || conn.credit <= 0) continue;
      const creditAfterPass = Math.max(0, conn.credit - CLAIM_PASS_MAX);
      for (const shard of shards) {
        if (conn.credit <= creditAfterPass) break;
        if (this.room(conn) <= 0) {
          conn.roomLimited = true;
          break;
        }
        if (!hasQueuedFor(shard, conn)) continue;
        const taken: Taken = { executions: [], bytes: [] };
        for (const queue of conn.queues) {
          if (conn.credit <= creditAfterPass) break;
          // The shard's time (the replicas' median clock), not this node's: due is due cluster-wide.
          const now = shard.clusterNow();
          const retryAt = this.take(shard, conn, queue, now, taken, creditAfterPass);
          if (retryAt !== null) retryIn = Math.min(retryIn ?? Infinity, retryAt - now);
        }
        if (taken.executions.length > 0) this.claim(shard, conn, taken);
      }
      if (conn.credit > 0 && conn.credit <= creditAfterPass) more = true; // it used this pass's share
    }
    if (more) this.scheduleDispatch();
    if (retryIn !== null) this.dispatchIn(retryIn);
  }

  /** Whether some connection could take work now (a pass allocates; most wake-ups find none). */
  private anyCredit(): boolean {
    for (const conn of this.connections) if (conn.open && conn.hello && !conn.draining && conn.credit > 0) return true;
    return false;
  }

  /** Bytes that may still be queued for `conn` (see WS_SEND_BUFFER_BYTES_MAX). */
  private room(conn: Connection): number {
    return WS_SEND_BUFFER_BYTES_MAX - conn.ws.getBufferedAmount() - conn.unsentEstimate;
  }

  /**
   * Take ready executions of `queue` for `conn` into `taken`, until its credit is down to
   * `creditAfterPass` (this pass's share is used; see CLAIM_PASS_MAX) and while it has room for
   * their bytes: one pass must not queue more for a worker than the limit (a worker that
   * gave 5,000 credits and stopped reading would otherwise be sent every ready execution at once).
   * Returns the earliest time a skipped execution becomes due, or null.
   */
  private take(shard: ShardReplica, conn: Connection, queue: string, now: number, taken: Taken, creditAfterPass: number): number | null {
    let retryAt: number | null = null;
    while (conn.credit > creditAfterPass) {
      if (this.room(conn) <= 0) {
        conn.roomLimited = true;
        break;
      }
      const step = Math.min(conn.credit - creditAfterPass, TAKE_STEP);
      const r = shard.state.takeReady(queue, conn.tenant, step, now);
      if (r.retryAt !== null) retryAt = Math.min(retryAt ?? Infinity, r.retryAt);
      for (const e of r.items) {
        if (this.room(conn) <= 0) {
          shard.state.requeue(e); // the rest of this step goes back for the next pass
          conn.roomLimited = true;
          continue;
        }
        const bytes = assignBytes(shard, e);
        conn.credit--;
        conn.unsentEstimate += bytes;
        taken.executions.push(e);
        taken.bytes.push(bytes);
      }
      if (r.items.length < step) break;
    }
    return retryAt;
  }

  /**
   * Creation and claim in one group commit: an ad-hoc execution that is ready at once, in a queue
   * with nothing older waiting, is claimed for an idle worker right behind its enqueue record, so
   * it reaches the worker one commit sooner. Anything else (ordering or idempotency keys, a later
   * runAt, a backlog) goes through the ready queue and the regular dispatch order.
   */
  private claimFresh(shard: ShardReplica, r: EnqueueRecord): void {
    const spec = r.spec;
    if (this.draining || spec.orderingKey !== null || spec.idempotencyKey !== null) return;
    if (enqueueRunAt(spec, r.at) > r.at) return;
    if (shard.state.readyDepth(spec.queue) > 0) return;
    const conn = this.idleConnection(spec.queue, r.tenant);
    if (!conn) return;
    conn.credit--;
    const bytes = ASSIGN_OVERHEAD_BYTES + approxBytes(spec.payload);
    conn.unsentEstimate += bytes;
    const record: ShardRecord = { type: "exec.claim", at: r.at, workerId: conn.workerId, items: [{ tenant: r.tenant, executionId: r.executionId }] };
    shard.propose(record).then(
      (result) => {
        const [outcome] = result as ClaimOutcome[];
        if (outcome?.ok) return this.assign(conn, shard, outcome, bytes);
        this.giveBack(conn, bytes); // the execution stayed in the ready queue; regular dispatch takes it
      },
      () => this.giveBack(conn, bytes),
    );
  }

  /** A claim taken for `conn` that will not be assigned: its credit and send-buffer estimate come back. */
  private giveBack(conn: Connection, bytes: number): void {
    conn.credit++;
    conn.unsentEstimate -= bytes;
    this.scheduleDispatch();
  }

  /** A connection that can take one more execution of `queue` for `tenant`, in rotating order. */
  private idleConnection(queue: string, tenant: string): Connection | null {
    for (const conn of this.connections) {
      if (!conn.open || !conn.hello || conn.draining || conn.credit <= 0) continue;
      if (conn.tenant !== null && conn.tenant !== tenant) continue;
      if (!conn.queues.includes(queue) || this.room(conn) <= 0) continue;
      // Move it to the back, so the next fresh execution goes to another idle worker.
      this.connections.delete(conn);
      this.connections.add(conn);
      return conn;
    }
    return null;
  }

  /** Some ready work is not due yet (committed ahead of time): look again when it is. */
  private dispatchIn(ms: number): void {
    if (this.dispatchTimer) clearTimeout(this.dispatchTimer);
    this.dispatchTimer = setTimeout(() => {
      this.dispatchTimer = null;
      this.scheduleDispatch();
    }, Math.max(0, ms));
  }

  private claim(shard: ShardReplica, conn: Connection, { executions, bytes }: Taken): void {
    const items: ExecutionRef[] = executions.map((e) => ({ tenant: e.tenant, executionId: e.id }));
    const record: ShardRecord = { type: "exec.claim", at: this.node.opts.clock.now(), workerId: conn.workerId, items };
    shard.propose(record).then(
      (result) => {
        const outcomes = result as ClaimOutcome[];
        for (let i = 0; i < outcomes.length; i++) {
          const outcome = outcomes[i]!;
          if (outcome.ok) {
            this.assign(conn, shard, outcome, bytes[i]!);
          } else {
            shard.state.requeue(executions[i]!);
            this.giveBack(conn, bytes[i]!);
          }
        }
      },
      (error: Error) => {
        this.logger.warn({ err: error, items: executions.length }, "claim not committed; executions put back");
        for (let i = 0; i < executions.length; i++) {
          shard.state.requeue(executions[i]!);
          conn.unsentEstimate -= bytes[i]!;
        }
        conn.credit += executions.length;
      },
    );
  }

  /**
   * Send a committed claim to its worker. `bytes`: its estimate, counted in `unsentEstimate` until
   * the outbox is flushed. A record committed in the same batch after the claim (a cancel, say)
   * has already ended it and sent its revocation: an assignment sent now would arrive after that
   * revocation, and a worker would run what is no longer its to run.
   */
  private assign(conn: Connection, shard: ShardReplica, claim: ClaimOutcome & { ok: true }, bytes: number): void {
    const e = claim.execution;
    if (!isLeased(e.state) || e.fence !== claim.fence) return this.giveBack(conn, bytes);
    conn.outboxEstimate += bytes;
    // Only an all-tenant connection's reports may need it (see onReport); a tenant's name theirs.
    if (conn.tenant === null) this.assignedTenant.set(e.id, e.tenant);
    const message: AssignMessage = {
      t: "assign",
      id: e.id,
      attempt: e.attempt,
      fence: e.fence,
      queue: e.queue,
      payload: e.payload,
      scheduledAt: e.scheduledAt,
      leaseMs: e.leaseMs,
      leaseDeadline: e.leaseDeadline,
      timeoutAt: e.attemptDeadline,
    };
    if (e.jobId !== null) message.jobId = e.jobId;
    if (conn.tenant === null) message.tenant = e.tenant;
    const previous = e.jobId !== null ? shard.state.getJob(e.tenant, e.jobId)?.lastResult : undefined;
    if (previous !== undefined) message.previousResult = previous;
    // A worker that vanished between claim and commit: the lease expires and the work is retried.
    this.send(conn, message);
  }

  // ---------------------------------------------------------------------------------------------
  // frames out: everything for one worker in one turn goes in one frame

  private send(conn: Connection, message: NodeMessage): void {
    if (!conn.open) return;
    conn.outbox.push(message);
    this.flushQueue.add(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushAll());
    }
  }

  private flushAll(): void {
    this.flushScheduled = false;
    for (const conn of this.flushQueue) {
      const messages = conn.outbox;
      conn.outbox = [];
      // From here uWS counts these bytes (getBufferedAmount), until the socket takes them.
      conn.unsentEstimate -= conn.outboxEstimate;
      conn.outboxEstimate = 0;
      this.flushNow(conn, messages);
      // The socket may have taken it all at once: then no uWS drain event will say there is room.
      if (conn.open && conn.roomLimited && this.room(conn) > 0) {
        conn.roomLimited = false;
        this.scheduleDispatch();
      }
    }
    this.flushQueue.clear();
  }

  private flushNow(conn: Connection, messages: NodeMessage[]): void {
    if (!conn.open || messages.length === 0) return;
    conn.ws.cork(() => conn.ws.send(packr.pack(messages), true));
  }
}

/** Executions taken for one claim, and the estimated bytes of each one's assign frame. */
interface Taken {
  executions: Execution[];
  bytes: number[];
}

/** Whether `shard` has ready or staged work in one of `conn`'s queues. */
function hasQueuedFor(shard: ShardReplica, conn: Connection): boolean {
  for (const queue of conn.queues) if (shard.state.hasQueued(queue)) return true;
  return false;
}

/** The estimated size of `e`'s assign frame (its payload, and for a job's fire the previous result). */
function assignBytes(shard: ShardReplica, e: Execution): number {
  const previous = e.jobId !== null ? shard.state.getJob(e.tenant, e.jobId)?.lastResult : undefined;
  return ASSIGN_OVERHEAD_BYTES + approxBytes(e.payload) + (previous === undefined ? 0 : approxBytes(previous));
}

/** Results and errors are served back as JSON by the API: refuse what JSON cannot carry or what is too big. */
function jsonValue(value: unknown, field: string): unknown {
  // Most results are null, a number or a flag: JSON as they are, nothing to measure.
  if (value === null || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value))) return value;
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw bad(`${field} is not JSON: ${(error as Error).message}`);
  }
  if (text === undefined) throw bad(`${field} is not JSON`);
  if (text.length > REPORT_VALUE_CHARS_MAX) throw bad(`${field} is over the limit of ${REPORT_VALUE_CHARS_MAX} characters of JSON`);
  return value;
}

function bad(message: string): CronwheelError {
  return new CronwheelError("invalid_argument", message);
}

/**
 * A final report's `logs` and `logsDropped`, checked (a malformed one closes the connection, as
 * any malformed frame does) and held to ATTEMPT_LOG_BOUNDS: lines past it are counted as dropped.
 */
function attemptLogs(m: AttemptLogs & { t: string }): { logs?: LogLine[]; logsDropped?: number } {
  const dropped = m.logsDropped ?? 0;
  if (!Number.isSafeInteger(dropped) || dropped < 0) throw bad(`${m.t}.logsDropped must be a whole number ≥ 0`);
  if (m.logs !== undefined && !Array.isArray(m.logs)) throw bad(`${m.t}.logs must be an array of { at, level, msg }`);
  const kept = new AttemptLogBuffer();
  for (const [i, line] of (m.logs ?? []).entries()) {
    const l = line as Partial<LogLine> | null;
    if (typeof l !== "object" || l === null || typeof l.msg !== "string" || !Number.isFinite(l.at) || !LOG_LEVELS.includes(l.level as LogLevel)) {
      throw bad(`${m.t}.logs[${i}] must be { at: ms, level: ${LOG_LEVELS.join("|")}, msg: string }`);
    }
    kept.add({ at: Math.round(l.at!), level: l.level!, msg: l.msg });
  }
  const out: { logs?: LogLine[]; logsDropped?: number } = {};
  if (kept.lines.length > 0) out.logs = kept.lines;
  if (dropped + kept.dropped > 0) out.logsDropped = dropped + kept.dropped;
  return out;
}
