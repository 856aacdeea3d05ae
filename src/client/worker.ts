/**
 * The worker half of Cronwheel's TypeScript SDK: connects to a node's `/v1/workers` WebSocket
 * (protocol.ts has the frames), takes executions of its queues and runs a handler for each.
 *
 *   const worker = new Worker({
 *     url: "http://127.0.0.1:7070",
 *     queues: ["mail"],
 *     concurrency: 20,
 *     handler: async (ctx) => {
 *       await sendMail(ctx.payload, { idempotencyKey: ctx.id, fence: ctx.fence, signal: ctx.signal });
 *       return { sent: true };                       // → succeeded, result stored
 *     },                                             // throw → failed, retried per the execution's policy
 *   });                                              // throw new NonRetryableError(…) → dead letter now
 *   await worker.start();                            // resolves after the node's welcome
 *   worker.on("closed", () => process.exit(0));      // SIGTERM/SIGINT drain by default; the app exits
 *
 * Connection. `hello` → `welcome` → `credit(concurrency − inFlight)`. The node never assigns
 * more than the credit given; every handler that ends gives its slot back as credit (all credits
 * of one event-loop turn in one `credit` message). So at most `concurrency` handlers run at once.
 * Every message produced in one event-loop turn leaves in one frame (an outbox flushed by
 * `setImmediate`). When the socket closes or errors, the worker reconnects with capped
 * exponential backoff and jitter (`reconnect`, default 100 ms … 10 s), says hello again and goes on.
 * A malformed frame from the node is logged and the connection is dropped and remade.
 *
 * Leases. The worker sends `started` at once, then a `heartbeat` for each running execution every
 * leaseMs/3 (one timer for all executions; heartbeats due at about the same time share a frame).
 * The worker keeps a local lease deadline: on `assign` min(leaseDeadline, received + leaseMs), and
 * on each heartbeat `ack` min(ack.leaseDeadline, heartbeat sent + leaseMs). The node's times are
 * compared with the local clock, so the clocks are assumed to agree (NTP) to well within a third of
 * a lease; a worker clock that runs ahead makes it give up early, never late. When the local
 * deadline passes without an acked heartbeat (a long disconnect), or the attempt's `timeoutAt`
 * passes, the handler's `signal` aborts — the handler should stop; if it still returns, its
 * report is sent anyway and the node decides (`ack` if the lease was in fact still valid, else
 * `stale`). `cancel` and `stale` for the execution's fence abort the signal and drop the
 * execution: nothing more is reported for it.
 *
 * Reports across reconnects. `started`, `succeeded` and `failed` are kept until the node answers
 * them (`ack` or `stale`). After a reconnect the worker resends every unanswered one (same id and
 * fence) and sends a fresh heartbeat for every running execution, so a worker that comes back
 * within the lease keeps its executions. A finished execution's report is also resent every
 * leaseMs/3 while it stays unanswered on a live connection (the node gives no answer when a shard
 * cannot commit). A report answered `stale` after a resend may mean the first copy was accepted;
 * the node's state is the truth.
 *
 * Shutdown. `close()` (graceful, the default) sends `drain`, takes no more work, waits for the
 * in-flight handlers to finish and their reports to be answered, then closes the socket and emits
 * "closed" (`timeoutMs`: then it closes hard). `close({ graceful: false })` aborts every handler
 * (`signal.reason` is an ExecutionAbortedError with reason "shutdown") and closes at once; the
 * unreported executions' leases expire on the node and they are retried. `shutdownSignals`
 * (default SIGTERM and SIGINT): the first starts a graceful close, the second forces a hard one.
 * The worker never calls `process.exit`: the app decides (listen for "closed"). Note that a
 * listener for SIGINT/SIGTERM replaces Node's default of exiting, until the worker has closed.
 *
 * Events: "connected" ({ nodeId }), "reconnecting" ({ attempt, delayMs }), "assigned"
 * ({ id, attempt, fence, queue }), "completed" ({ id, attempt, fence, outcome }: outcome
 * `succeeded` | `failed` — the node acked the report — `stale` — the node refused it or the
 * execution was superseded — or `canceled`), "error" (Error; emitted only when someone listens,
 * else logged), "closed".
 *
 * Not done here: a cluster worker should connect to every node that leads shards (learning them
 * from `/v1/cluster`); this worker connects to the one `url`.
 */
import { EventEmitter } from "node:events";
import os from "node:os";
import { randomBytes } from "node:crypto";
import { pack } from "msgpackr";
import WebSocket from "ws";
import {
  PROTOCOL_VERSION,
  type AckMessage,
  type AssignMessage,
  type CancelMessage,
  type ErrorMessage,
  type FailedMessage,
  type HeartbeatMessage,
  type NodeMessage,
  type StaleMessage,
  type StartedMessage,
  type SucceededMessage,
  type WelcomeMessage,
  type WorkerMessage,
} from "../gateway/protocol.js";
import { CronwheelApiError, isErrorCode } from "./errors.js";
import { MalformedFrameError, decodeFrame, reconnectDelayMs, serializeError, toJsonValue, workerUrl } from "./worker-support.js";

export { MalformedFrameError, serializeError, type SerializedError } from "./worker-support.js";

export interface WorkerLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
}

export interface WorkerOptions {
  /** http(s)://host:port of a node; the WebSocket URL is derived (ws(s)://…/v1/workers). */
  url: string;
  /** Bearer token with role `worker` (or `admin`) when the node has a token file. */
  token?: string;
  /** Default: hostname-pid-random. The node sends cancels to every connection with this id. */
  workerId?: string;
  queues: string[];
  /** Most handlers running at once (default 10). */
  concurrency?: number;
  /**
   * Executions to hold ready beyond `concurrency` (default 0), so the next one is already here
   * when a handler ends: it hides the claim round trip for short handlers. A prefetched execution
   * is leased (and heartbeated) while it waits, and its `timeoutMs` runs from its claim, so keep
   * this small for long handlers.
   */
  prefetch?: number;
  /** Resolves → succeeded(result); throws → failed(error, retryable unless NonRetryableError). */
  handler: (ctx: ExecutionContext) => Promise<unknown>;
  /** Reconnect backoff: capped exponential with jitter, default 100 ms … 10 s. */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** Default ["SIGTERM", "SIGINT"]: first → graceful close, second → hard close. false: none. */
  shutdownSignals?: NodeJS.Signals[] | false;
  logger?: WorkerLogger;
}

export interface ExecutionContext {
  /** The execution id: use it as your idempotency key. */
  id: string;
  attempt: number;
  /** Only grows per execution: pass it to downstream writes so they can refuse stale ones. */
  fence: number;
  queue: string;
  payload: unknown;
  scheduledAt: Date;
  jobId?: string;
  previousResult?: unknown;
  /**
   * Aborts when the execution is canceled, its lease is lost (`stale`/`cancel` from the node, or
   * the lease deadline passed without an acked heartbeat), its timeout passed, or the worker
   * closes hard. `signal.reason` is an ExecutionAbortedError.
   */
  signal: AbortSignal;
  /**
   * A heartbeat now (automatic ones happen every leaseMs/3 anyway), optionally with progress.
   * Resolves when the node acks it; rejects with `signal.reason` when the execution is dropped
   * (stale, canceled, hard close) first. Await it (or catch it).
   */
  heartbeat(progress?: unknown): Promise<void>;
}

/** Throw it from a handler to make the execution a dead letter at once (failed, retryable false). */
export class NonRetryableError extends Error {
  constructor(message?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/**
 * Why a handler's signal aborted: `stale` (the node refused a report for this fence), `lease-lost`
 * (no acked heartbeat before the local lease deadline), `timed-out` (timeoutAt passed), `shutdown`
 * (hard close), `superseded` (the node assigned the same execution again with a newer fence), or
 * a node `cancel` reason: `canceled`, `replaced`, `job-deleted`, `lease-expired`, `timed-out`.
 */
export class ExecutionAbortedError extends Error {
  constructor(
    readonly reason: string,
    readonly executionId: string,
  ) {
    super(`execution ${executionId} aborted: ${reason}`);
    this.name = "ExecutionAbortedError";
  }
}

export type CompletedOutcome = "succeeded" | "failed" | "stale" | "canceled";

export const DEFAULT_CONCURRENCY = 10;
export const DEFAULT_RECONNECT_INITIAL_MS = 100;
export const DEFAULT_RECONNECT_MAX_MS = 10_000;
/** No welcome this long after the socket opened: drop it and reconnect. */
const WELCOME_TIMEOUT_MS = 10_000;
/** The worker pings this often; nothing heard for 3 intervals → the connection is dead. */
const LIVENESS_PING_MS = 10_000;
/** Unanswered heartbeats remembered per execution (their send times bound the lease). */
const HEARTBEATS_UNACKED_MAX = 8;
/** hello.workerId as the node accepts it. */
const WORKER_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,200}$/;
/** Server error codes that fail `start()` when they come before the first welcome. */
const FATAL_BEFORE_WELCOME = new Set(["unauthenticated", "permission_denied", "invalid_argument"]);

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

interface SentHeartbeat {
  sentAt: number;
  waiters: Waiter[];
}

/** One assigned attempt (id + fence) the worker still owes the node something for. */
interface Exec {
  readonly assign: AssignMessage;
  readonly ctrl: AbortController;
  readonly ctx: ExecutionContext;
  readonly intervalMs: number;
  /** The handler has not settled yet (or, prefetched, has not started yet). */
  running: boolean;
  /** Prefetched: waits for a free handler slot. */
  queuedStart: boolean;
  /** Stale, canceled, superseded or hard-closed: report nothing more. */
  dropped: boolean;
  startedAcked: boolean;
  /** The handler's outcome, until the node answers it. */
  final: SucceededMessage | FailedMessage | null;
  /** Local lease deadline (ms, local clock). */
  leaseDeadline: number;
  /** Next heartbeat (running) or report resend (finished). */
  nextSendAt: number;
  /** Heartbeats sent on this connection, not yet acked, oldest first. */
  heartbeatsSent: SentHeartbeat[];
  /** The heartbeat queued in this turn's outbox (progress and waiters merge into it). */
  queuedHeartbeat: { message: HeartbeatMessage; entry: SentHeartbeat } | null;
  /** Manual-heartbeat waiters and progress not sent yet (disconnected). */
  unsentWaiters: Waiter[];
  unsentProgress: { value: unknown } | null;
}

type State = "idle" | "running" | "draining" | "closed";

export class Worker extends EventEmitter {
  private readonly opts: {
    url: string;
    token: string | undefined;
    workerId: string;
    queues: string[];
    concurrency: number;
    prefetch: number;
    handler: (ctx: ExecutionContext) => Promise<unknown>;
    reconnectInitialMs: number;
    reconnectMaxMs: number;
    shutdownSignals: NodeJS.Signals[];
  };
  private readonly log: WorkerLogger;
  private state: State = "idle";

  // connection
  private socket: WebSocket | null = null;
  /** Welcome received on `socket`. */
  private ready = false;
  private everConnected = false;
  private reconnectAttempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private welcomeTimer: NodeJS.Timeout | null = null;
  private livenessTimer: NodeJS.Timeout | null = null;
  private lastHeardAt = 0;
  /** The node said drain on this connection: no credits until the next one. */
  private nodeDraining = false;
  /** Credits given on this connection and not yet used by an assign. */
  private creditOutstanding = 0;
  /** Prefetched executions waiting for a handler slot, in assignment order. */
  private readonly waiting: Exec[] = [];

  // work
  private readonly execs = new Map<string, Exec>();
  private running = 0;
  private outbox: WorkerMessage[] = [];
  private turnScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Infinity;

  // lifecycle
  private startPromise: Promise<void> | null = null;
  private startSettle: { resolve(): void; reject(e: unknown): void } | null = null;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;
  private graceTimer: NodeJS.Timeout | null = null;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.state === "running" || this.state === "idle") {
      this.log.info({ signal }, "signal: closing gracefully (again to force)");
      void this.close({ graceful: true });
    } else if (this.state === "draining") {
      this.log.warn({ signal }, "second signal: closing hard");
      void this.close({ graceful: false });
    }
  };

  constructor(opts: WorkerOptions) {
    super();
    if (!Array.isArray(opts.queues) || opts.queues.length === 0) throw new TypeError("queues: at least one queue");
    if (typeof opts.handler !== "function") throw new TypeError("handler: a function");
    const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new TypeError(`concurrency: an integer ≥ 1, got ${String(opts.concurrency)}`);
    const prefetch = opts.prefetch ?? 0;
    if (!Number.isSafeInteger(prefetch) || prefetch < 0) throw new TypeError(`prefetch: an integer ≥ 0, got ${String(opts.prefetch)}`);
    const initialMs = opts.reconnect?.initialMs ?? DEFAULT_RECONNECT_INITIAL_MS;
    const maxMs = opts.reconnect?.maxMs ?? DEFAULT_RECONNECT_MAX_MS;
    if (!(initialMs > 0) || !(maxMs >= initialMs)) throw new TypeError("reconnect: 0 < initialMs ≤ maxMs");
    const workerId = opts.workerId ?? defaultWorkerId();
    if (!WORKER_ID_PATTERN.test(workerId)) throw new TypeError(`workerId must match ${WORKER_ID_PATTERN}`);
    this.opts = {
      url: workerUrl(opts.url),
      token: opts.token,
      workerId,
      queues: [...opts.queues],
      concurrency,
      prefetch,
      handler: opts.handler,
      reconnectInitialMs: initialMs,
      reconnectMaxMs: maxMs,
      shutdownSignals: opts.shutdownSignals === false ? [] : (opts.shutdownSignals ?? ["SIGTERM", "SIGINT"]),
    };
    this.log = opts.logger ?? { info() {}, warn() {}, error() {} };
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
  }

  get workerId(): string {
    return this.opts.workerId;
  }

  /** Handlers running now (including aborted ones that have not returned yet). */
  get inFlight(): number {
    return this.running;
  }

  /**
   * Connects; resolves after the node's welcome. Connection failures are retried with backoff
   * (the node may not be up yet). Rejects when the node refuses the hello (bad token, bad queue
   * names: a CronwheelApiError with the node's code) or when the worker is closed first.
   */
  start(): Promise<void> {
    if (this.startPromise) return this.startPromise;
    if (this.state === "closed") return Promise.reject(new Error("worker is closed"));
    this.state = "running";
    this.startPromise = new Promise<void>((resolve, reject) => (this.startSettle = { resolve, reject }));
    for (const s of this.opts.shutdownSignals) process.on(s, this.onSignal);
    this.connect();
    return this.startPromise;
  }

  /**
   * Graceful (default): send `drain`, take no more work, wait for in-flight handlers to finish and
   * their reports to be answered, then close (after `timeoutMs`, if given, close hard). Hard:
   * abort every handler's signal and close now. Resolves once closed ("closed" is emitted).
   */
  close(opts: { graceful?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.state === "closed") return this.closedPromise;
    const graceful = opts.graceful ?? true;
    if (!graceful) {
      this.closeHard();
      return this.closedPromise;
    }
    if (this.state !== "draining") {
      this.state = "draining";
      this.log.info({ inFlight: this.running, unreported: this.execs.size }, "draining");
      if (this.ready) this.enqueue({ t: "drain" });
    }
    if (opts.timeoutMs !== undefined && this.graceTimer === null) {
      this.graceTimer = setTimeout(() => {
        this.log.warn({ inFlight: this.running, timeoutMs: opts.timeoutMs }, "graceful close timed out: closing hard");
        this.closeHard();
      }, opts.timeoutMs);
      this.graceTimer.unref();
    }
    this.closeIfIdle();
    return this.closedPromise;
  }

  // ---------------------------------------------------------------------------------------------
  // connection

  private connect(): void {
    this.reconnectTimer = null;
    if (this.state === "closed") return;
    const ws = new WebSocket(this.opts.url, { perMessageDeflate: false, handshakeTimeout: WELCOME_TIMEOUT_MS });
    this.socket = ws;
    this.ready = false;
    this.nodeDraining = false;
    this.creditOutstanding = 0;
    ws.on("open", () => {
      if (ws !== this.socket) return;
      this.lastHeardAt = Date.now();
      const hello: WorkerMessage = { t: "hello", workerId: this.opts.workerId, queues: this.opts.queues, protocol: PROTOCOL_VERSION, ...(this.opts.token !== undefined ? { token: this.opts.token } : {}) };
      ws.send(pack([hello]));
      this.welcomeTimer = setTimeout(() => this.dropConnection(ws, "no welcome in time"), WELCOME_TIMEOUT_MS);
      this.livenessTimer = setInterval(() => this.checkLiveness(ws), LIVENESS_PING_MS);
      this.livenessTimer.unref();
    });
    ws.on("message", (data, isBinary) => {
      if (ws !== this.socket) return;
      this.lastHeardAt = Date.now();
      this.onFrame(ws, data, isBinary);
    });
    ws.on("ping", () => (this.lastHeardAt = Date.now()));
    ws.on("pong", () => (this.lastHeardAt = Date.now()));
    ws.on("error", (error) => {
      if (ws === this.socket) this.log.warn({ err: error, url: this.opts.url }, "worker connection error");
    });
    ws.on("close", (code, reason) => this.onSocketClosed(ws, code, reason.toString()));
  }

  private checkLiveness(ws: WebSocket): void {
    if (ws !== this.socket || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastHeardAt > 3 * LIVENESS_PING_MS) return this.dropConnection(ws, "nothing heard from the node");
    ws.ping();
  }

  /** Give up on this connection; its close event schedules the reconnect. */
  private dropConnection(ws: WebSocket, why: string): void {
    if (ws !== this.socket) return;
    this.log.warn({ why }, "dropping worker connection");
    ws.terminate();
  }

  private onSocketClosed(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.socket) return;
    this.socket = null;
    const wasReady = this.ready;
    this.ready = false;
    this.creditOutstanding = 0;
    this.outbox = [];
    this.clearConnectionTimers();
    for (const x of this.execs.values()) {
      // Their answers would have come on this socket: whatever was unanswered is sent again.
      for (const hb of x.heartbeatsSent) x.unsentWaiters.push(...hb.waiters);
      x.heartbeatsSent = [];
      if (x.queuedHeartbeat) {
        x.unsentWaiters.push(...x.queuedHeartbeat.entry.waiters);
        if (x.queuedHeartbeat.message.progress !== undefined && x.unsentProgress === null) x.unsentProgress = { value: x.queuedHeartbeat.message.progress };
        x.queuedHeartbeat = null;
      }
    }
    if (this.state === "closed") return;
    if (wasReady) this.log.warn({ code, reason, inFlight: this.running }, "worker connection closed");
    this.reconnectAttempt++;
    const delayMs = reconnectDelayMs(this.reconnectAttempt, { initialMs: this.opts.reconnectInitialMs, maxMs: this.opts.reconnectMaxMs }, Math.random());
    this.emit("reconnecting", { attempt: this.reconnectAttempt, delayMs });
    this.reconnectTimer = setTimeout(() => this.connect(), delayMs);
    this.scheduleTurn(); // lease timers keep running while disconnected
  }

  private clearConnectionTimers(): void {
    if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
    if (this.livenessTimer) clearInterval(this.livenessTimer);
    this.welcomeTimer = this.livenessTimer = null;
  }

  // ---------------------------------------------------------------------------------------------
  // frames in

  private onFrame(ws: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
    let messages: NodeMessage[];
    try {
      if (!isBinary) throw new MalformedFrameError("text frame (the protocol is binary)");
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      messages = decodeFrame(buf);
      if (!this.ready && messages.length > 0 && messages[0]!.t !== "welcome" && messages[0]!.t !== "error") throw new MalformedFrameError(`expected welcome first, got '${messages[0]!.t}'`);
    } catch (error) {
      this.log.error({ err: error }, "malformed frame from the node: reconnecting");
      this.emitError(error as Error);
      this.dropConnection(ws, "malformed frame");
      return;
    }
    for (const m of messages) {
      if (ws !== this.socket || ws.readyState !== WebSocket.OPEN) return; // an error message or a close ended it
      this.onMessage(ws, m);
    }
  }

  private onMessage(ws: WebSocket, m: NodeMessage): void {
    switch (m.t) {
      case "welcome":
        return this.onWelcome(m);
      case "assign":
        return this.onAssign(m);
      case "ack":
        return this.onAck(m);
      case "stale":
        return this.onStale(m);
      case "cancel":
        return this.onCancel(m);
      case "drain":
        this.log.info({}, "node asked to drain: no more credits on this connection");
        this.nodeDraining = true;
        return;
      case "error":
        return this.onNodeError(ws, m);
    }
  }

  private onWelcome(m: WelcomeMessage): void {
    if (this.ready) return this.log.warn({ nodeId: m.nodeId }, "second welcome ignored");
    if (m.protocol !== PROTOCOL_VERSION) this.log.warn({ nodeProtocol: m.protocol, protocol: PROTOCOL_VERSION }, "node speaks another protocol version");
    if (this.welcomeTimer) clearTimeout(this.welcomeTimer);
    this.welcomeTimer = null;
    this.ready = true;
    this.reconnectAttempt = 0;
    this.log.info({ nodeId: m.nodeId, workerId: this.opts.workerId, resumed: this.execs.size }, "worker connected");
    if (this.state === "draining") this.enqueue({ t: "drain" });
    const now = Date.now();
    for (const x of this.execs.values()) {
      if (!x.startedAcked && !x.queuedStart) this.enqueue(started(x));
      if (x.running) this.sendHeartbeat(x, now);
      else if (x.final) {
        this.enqueue(x.final);
        x.nextSendAt = now + x.intervalMs;
      }
    }
    this.scheduleTurn(); // credits go out with the flush
    this.emit("connected", { nodeId: m.nodeId });
    if (!this.everConnected) {
      this.everConnected = true;
      this.startSettle?.resolve();
      this.startSettle = null;
    }
  }

  private onNodeError(ws: WebSocket, m: ErrorMessage): void {
    const error = new CronwheelApiError(isErrorCode(m.code) ? m.code : "internal", m.message, { details: { nodeCode: m.code } });
    this.log.error({ code: m.code, message: m.message }, "node closed the worker connection with an error");
    if (!this.everConnected && FATAL_BEFORE_WELCOME.has(m.code)) {
      this.startSettle?.reject(error);
      this.startSettle = null;
      this.closeHard();
      return;
    }
    this.emitError(error);
    this.dropConnection(ws, `node error ${m.code}`);
  }

  private onAssign(m: AssignMessage): void {
    if (this.state === "closed") return;
    if (this.creditOutstanding > 0) this.creditOutstanding--;
    else this.log.warn({ id: m.id }, "assign without credit");
    const old = this.execs.get(m.id);
    if (old) {
      if (old.assign.fence >= m.fence) return this.log.warn({ id: m.id, fence: m.fence, have: old.assign.fence }, "duplicate assign ignored");
      this.drop(old, "superseded", "stale");
    }
    if (this.running + this.waiting.length >= this.opts.concurrency + this.opts.prefetch) {
      // The node gave more than the credit: refuse without running it (it is retried).
      this.log.error({ id: m.id, inFlight: this.running }, "assign beyond concurrency refused");
      this.enqueue({ t: "failed", id: m.id, fence: m.fence, error: { name: "WorkerOverCapacity", message: "assigned beyond the worker's credit" }, retryable: true });
      return;
    }
    const x = this.newExec(m, Date.now());
    this.execs.set(m.id, x);
    if (this.running < this.opts.concurrency) {
      this.begin(x);
    } else {
      x.queuedStart = true;
      this.waiting.push(x);
    }
  }

  /** Start prefetched executions while handler slots are free. */
  private beginWaiting(): void {
    while (this.running < this.opts.concurrency && this.waiting.length > 0) {
      const x = this.waiting.shift()!;
      if (!x.dropped) this.begin(x);
    }
  }

  private begin(x: Exec): void {
    const m = x.assign;
    x.queuedStart = false;
    this.running++;
    this.enqueue(started(x));
    this.emit("assigned", { id: m.id, attempt: m.attempt, fence: m.fence, queue: m.queue });
    const handler = this.opts.handler;
    // After this frame is processed, so a handler's synchronous start cannot delay the others.
    Promise.resolve()
      .then(() => handler(x.ctx))
      .then(
        (result) => this.onHandlerDone(x, { t: "succeeded", id: m.id, fence: m.fence, ...(result === undefined ? {} : { result }) }),
        (error: unknown) => this.onHandlerDone(x, { t: "failed", id: m.id, fence: m.fence, error: serializeError(error), retryable: !(error instanceof NonRetryableError) }),
      );
  }

  private newExec(m: AssignMessage, now: number): Exec {
    const ctrl = new AbortController();
    const intervalMs = Math.max(1, Math.floor(m.leaseMs / 3));
    const x: Exec = {
      assign: m,
      ctrl,
      ctx: undefined as unknown as ExecutionContext,
      intervalMs,
      running: true,
      queuedStart: false,
      dropped: false,
      startedAcked: false,
      final: null,
      leaseDeadline: Math.min(m.leaseDeadline, now + m.leaseMs),
      nextSendAt: now + intervalMs,
      heartbeatsSent: [],
      queuedHeartbeat: null,
      unsentWaiters: [],
      unsentProgress: null,
    };
    const ctx: ExecutionContext = {
      id: m.id,
      attempt: m.attempt,
      fence: m.fence,
      queue: m.queue,
      payload: m.payload,
      scheduledAt: new Date(m.scheduledAt),
      signal: ctrl.signal,
      heartbeat: (progress?: unknown) => this.manualHeartbeat(x, progress),
    };
    if (typeof m.jobId === "string") ctx.jobId = m.jobId;
    if (m.previousResult !== undefined) ctx.previousResult = m.previousResult;
    (x as { ctx: ExecutionContext }).ctx = ctx;
    return x;
  }

  private onHandlerDone(x: Exec, report: SucceededMessage | FailedMessage): void {
    this.running--;
    x.running = false;
    this.beginWaiting();
    for (const w of this.takeWaiters(x)) w.resolve();
    if (x.dropped || this.state === "closed") {
      this.scheduleTurn(); // the slot is free: credit
      this.closeIfIdle();
      return;
    }
    x.final = jsonReport(report);
    x.nextSendAt = Date.now() + x.intervalMs;
    this.enqueue(x.final);
  }

  private onAck(m: AckMessage): void {
    const x = this.execs.get(m.id);
    if (!x || x.assign.fence !== m.fence) return; // an answer to a resend of something already settled
    switch (m.of) {
      case "started":
        x.startedAcked = true;
        return;
      case "heartbeat": {
        const entry = x.heartbeatsSent.shift();
        if (!entry) return;
        const deadline = Math.min(m.leaseDeadline ?? Infinity, entry.sentAt + x.assign.leaseMs);
        if (deadline > x.leaseDeadline) x.leaseDeadline = deadline;
        for (const w of entry.waiters) w.resolve();
        return;
      }
      case "succeeded":
      case "failed":
        if (x.final?.t !== m.of) return;
        this.settle(x, m.of);
        return;
    }
  }

  private onStale(m: StaleMessage): void {
    const x = this.execs.get(m.id);
    if (!x || x.assign.fence !== m.fence) return;
    this.log.warn({ id: m.id, fence: m.fence, of: m.of }, "node says stale: dropping the execution");
    this.drop(x, "stale", "stale");
  }

  private onCancel(m: CancelMessage): void {
    const x = this.execs.get(m.id);
    if (!x || x.assign.fence !== m.fence) return;
    this.log.info({ id: m.id, fence: m.fence, reason: m.reason }, "execution canceled");
    this.drop(x, m.reason || "canceled", "canceled");
  }

  /** Abort and forget: nothing more is reported for this fence. */
  private drop(x: Exec, reason: string, outcome: CompletedOutcome): void {
    x.dropped = true;
    if (x.queuedStart) {
      // Prefetched and never started: nothing runs, nothing to wait for.
      this.waiting.splice(this.waiting.indexOf(x), 1);
      x.queuedStart = false;
      x.running = false;
    }
    const error = new ExecutionAbortedError(reason, x.assign.id);
    if (!x.ctrl.signal.aborted) x.ctrl.abort(error);
    for (const w of this.takeWaiters(x)) w.reject(error);
    this.settle(x, outcome);
  }

  private settle(x: Exec, outcome: CompletedOutcome): void {
    if (this.execs.get(x.assign.id) === x) this.execs.delete(x.assign.id);
    this.emit("completed", { id: x.assign.id, attempt: x.assign.attempt, fence: x.assign.fence, outcome });
    this.closeIfIdle();
  }

  private takeWaiters(x: Exec): Waiter[] {
    const all = [...x.unsentWaiters];
    for (const hb of x.heartbeatsSent) all.push(...hb.waiters);
    if (x.queuedHeartbeat) all.push(...x.queuedHeartbeat.entry.waiters);
    x.unsentWaiters = [];
    x.heartbeatsSent.forEach((hb) => (hb.waiters = []));
    if (x.queuedHeartbeat) x.queuedHeartbeat.entry.waiters = [];
    return all;
  }

  // ---------------------------------------------------------------------------------------------
  // heartbeats and leases

  private manualHeartbeat(x: Exec, progress: unknown): Promise<void> {
    if (x.dropped) {
      const p = Promise.reject(x.ctrl.signal.reason);
      p.catch(() => {});
      return p;
    }
    if (!x.running) return Promise.resolve();
    let json: unknown;
    try {
      json = toJsonValue(progress);
    } catch (error) {
      return Promise.reject(new TypeError(`heartbeat progress is not JSON: ${(error as Error).message}`));
    }
    const p = new Promise<void>((resolve, reject) => {
      const waiter = { resolve, reject };
      if (json !== undefined) x.unsentProgress = { value: json };
      x.unsentWaiters.push(waiter);
      if (this.ready) this.sendHeartbeat(x, Date.now());
    });
    p.catch(() => {}); // a fire-and-forget heartbeat must not become an unhandled rejection
    return p;
  }

  /** Queue a heartbeat for x (merged with one already queued this turn). */
  private sendHeartbeat(x: Exec, now: number): void {
    x.nextSendAt = now + x.intervalMs;
    const waiters = x.unsentWaiters;
    x.unsentWaiters = [];
    const progress = x.unsentProgress;
    x.unsentProgress = null;
    if (x.queuedHeartbeat) {
      x.queuedHeartbeat.entry.waiters.push(...waiters);
      if (progress) x.queuedHeartbeat.message.progress = progress.value;
      return;
    }
    const message: HeartbeatMessage = { t: "heartbeat", id: x.assign.id, fence: x.assign.fence, ...(progress ? { progress: progress.value } : {}) };
    const entry: SentHeartbeat = { sentAt: now, waiters };
    x.heartbeatsSent.push(entry);
    if (x.heartbeatsSent.length > HEARTBEATS_UNACKED_MAX) {
      const oldest = x.heartbeatsSent.shift()!;
      x.heartbeatsSent[0]!.waiters.unshift(...oldest.waiters);
    }
    x.queuedHeartbeat = { message, entry };
    this.enqueue(message);
  }

  /** The one timer: heartbeats and resends due, local lease and timeout expiry. */
  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = Date.now();
    for (const x of [...this.execs.values()]) {
      const slack = x.intervalMs / 4; // send a little early so due heartbeats share a frame
      if (x.running) {
        if (!x.ctrl.signal.aborted && now >= x.assign.timeoutAt) this.abortRunning(x, "timed-out");
        else if (!x.ctrl.signal.aborted && now >= x.leaseDeadline) this.abortRunning(x, "lease-lost");
        if (this.ready && now >= x.nextSendAt - slack) this.sendHeartbeat(x, now);
      } else if (x.final && this.ready && now >= x.nextSendAt - slack) {
        this.enqueue(x.final);
        x.nextSendAt = now + x.intervalMs;
      }
    }
    this.scheduleTurn();
  }

  /** The handler should stop, but the execution is not dropped: if it returns, it is reported. */
  private abortRunning(x: Exec, reason: string): void {
    this.log.warn({ id: x.assign.id, fence: x.assign.fence, reason }, "aborting handler");
    x.ctrl.abort(new ExecutionAbortedError(reason, x.assign.id));
  }

  private armTimer(): void {
    let at = Infinity;
    for (const x of this.execs.values()) {
      if (x.running) {
        if (!x.ctrl.signal.aborted) at = Math.min(at, x.leaseDeadline, x.assign.timeoutAt);
        if (this.ready) at = Math.min(at, x.nextSendAt - x.intervalMs / 4);
      } else if (x.final && this.ready) at = Math.min(at, x.nextSendAt - x.intervalMs / 4);
    }
    if (at === this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = at;
    if (at === Infinity || this.state === "closed") return;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, Math.ceil(at - Date.now())));
    this.timer.unref();
  }

  // ---------------------------------------------------------------------------------------------
  // frames out: one frame per event-loop turn

  private enqueue(m: WorkerMessage): void {
    this.outbox.push(m);
    this.scheduleTurn();
  }

  private scheduleTurn(): void {
    if (this.turnScheduled) return;
    this.turnScheduled = true;
    setImmediate(() => {
      this.turnScheduled = false;
      this.flush();
      this.armTimer();
    });
  }

  /**
   * A `started` whose final report leaves in the same frame tells the node nothing (a short
   * handler): drop it, halving the reports and acks of short executions.
   */
  private dropOvertakenStarts(): void {
    let finals: Set<string> | null = null;
    for (const m of this.outbox) if (m.t === "succeeded" || m.t === "failed") (finals ??= new Set()).add(`${m.id}#${m.fence}`);
    if (finals === null) return;
    const done = finals;
    this.outbox = this.outbox.filter((m) => {
      if (m.t !== "started" || !done.has(`${m.id}#${m.fence}`)) return true;
      const x = this.execs.get(m.id);
      if (x) x.startedAcked = true;
      return false;
    });
  }

  /** Send this turn's messages, plus the credit for the free slots, in one frame. */
  private flush(): void {
    for (const x of this.execs.values()) x.queuedHeartbeat = null;
    const ws = this.socket;
    if (!this.ready || !ws || ws.readyState !== WebSocket.OPEN) {
      this.outbox = []; // reports stay in their executions and go out after the next welcome
      return;
    }
    this.dropOvertakenStarts();
    if (this.state === "running" && !this.nodeDraining) {
      const free = this.opts.concurrency + this.opts.prefetch - this.running - this.waiting.length - this.creditOutstanding;
      if (free > 0) {
        this.outbox.push({ t: "credit", n: free });
        this.creditOutstanding += free;
      }
    }
    if (this.outbox.length === 0) return;
    let frame: Buffer;
    try {
      frame = pack(this.outbox);
    } catch (error) {
      // Unreachable by construction (reports carry JSON only); never let it kill the process.
      this.log.error({ err: error, messages: this.outbox.length }, "frame not encodable: dropped");
      this.outbox = [];
      return;
    }
    this.outbox = [];
    ws.send(frame, { binary: true }, (error) => {
      if (error && ws === this.socket) this.log.warn({ err: error }, "send failed");
    });
  }

  // ---------------------------------------------------------------------------------------------
  // shutdown

  private closeIfIdle(): void {
    if (this.state === "draining" && this.running === 0 && this.execs.size === 0) this.finishClose();
  }

  private closeHard(): void {
    if (this.state === "closed") return;
    const n = this.execs.size;
    for (const x of [...this.execs.values()]) {
      x.dropped = true;
      const error = new ExecutionAbortedError("shutdown", x.assign.id);
      if (!x.ctrl.signal.aborted) x.ctrl.abort(error);
      for (const w of this.takeWaiters(x)) w.reject(error);
    }
    this.execs.clear();
    if (n > 0) this.log.warn({ abandoned: n, inFlight: this.running }, "closing hard: unreported executions are retried after their leases expire");
    this.finishClose();
  }

  private finishClose(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.flush(); // the drain and any last reports (no credit: closed)
    for (const s of this.opts.shutdownSignals) process.removeListener(s, this.onSignal);
    for (const t of [this.reconnectTimer, this.graceTimer, this.timer]) if (t) clearTimeout(t);
    this.reconnectTimer = this.graceTimer = this.timer = null;
    this.clearConnectionTimers();
    const ws = this.socket;
    this.socket = null;
    this.ready = false;
    if (ws) {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000, "worker closing");
      else ws.terminate();
    }
    this.startSettle?.reject(new Error("worker closed before it connected"));
    this.startSettle = null;
    this.log.info({ workerId: this.opts.workerId }, "worker closed");
    this.emit("closed");
    this.resolveClosed();
  }

  private emitError(error: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", error);
  }
}

function started(x: Exec): StartedMessage {
  return { t: "started", id: x.assign.id, fence: x.assign.fence };
}

/**
 * The result travels as the JSON the node stores (a Date becomes its ISO string). One that is not
 * JSON (a BigInt, a cycle) fails the attempt, not retryable: the same handler would return it again.
 */
function jsonReport(report: SucceededMessage | FailedMessage): SucceededMessage | FailedMessage {
  if (report.t === "failed" || report.result === undefined) return report;
  try {
    const result = toJsonValue(report.result);
    return { t: "succeeded", id: report.id, fence: report.fence, ...(result === undefined ? {} : { result }) };
  } catch (error) {
    return { t: "failed", id: report.id, fence: report.fence, error: { name: "ResultNotSerializable", message: `the handler's result is not JSON: ${(error as Error).message}` }, retryable: false };
  }
}

function defaultWorkerId(): string {
  const host = os.hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 150) || "worker";
  return `${host}-${process.pid}-${randomBytes(3).toString("hex")}`;
}
