/**
 * The worker half of Cronwheel's TypeScript SDK: connects to the `/v1/workers` WebSocket of every
 * node that leads shards (protocol.ts has the frames), takes executions of its queues and runs a
 * handler for each.
 *
 *   const worker = new Worker({
 *     url: "http://127.0.0.1:7070",                  // or several: ["http://n1:7070", "http://n2:7070"]
 *     queues: ["mail"],
 *     concurrency: 20,
 *     handler: async (ctx) => {
 *       await sendMail(ctx.payload, { idempotencyKey: ctx.id, fence: ctx.fence, signal: ctx.signal });
 *       return { sent: true };                       // → succeeded, result stored
 *     },                                             // throw → failed, retried per the execution's policy
 *   });                                              // throw new NonRetryableError(…) → dead letter now
 *   await worker.start();                            // resolves after the first node's welcome
 *   worker.on("closed", () => process.exit(0));      // SIGTERM/SIGINT drain by default; the app exits
 *
 * Nodes. A node hands out only the executions of the shards it leads, so the worker holds one
 * connection to each node that leads at least one shard. It learns them from `GET /v1/cluster`,
 * asked of the configured URLs in turn (the one that answered last first), at start, every
 * `clusterRefreshMs` (default 2 s) and at once when a connection closes or a node says `drain`.
 * A leader's `address` ("host:port") is dialed with the configured URL's scheme; when the view
 * has a single node, or the address is the configured URL's own, the configured URL is used (it
 * reaches that node for sure). New leaders get a connection; a connection to a node that leads
 * nothing any more is drained (`drain`: the node assigns nothing more on it) and closed a second
 * later (RETIRE_GRACE_MS). A view without any leader (an election) changes nothing. When no view
 * can be read (a network problem, an older server without the endpoint) and the worker has no
 * connection yet, it connects to the configured URLs themselves: a standalone server works either
 * way.
 *
 * Connection. `hello` → `welcome` → `credit(n)`. Every message produced in one event-loop turn
 * leaves in one frame per connection (outboxes flushed by `setImmediate`). When a socket closes or
 * errors, that connection is remade with capped exponential backoff and jitter (`reconnect`,
 * default 100 ms … 10 s) for as long as its node leads shards. A malformed frame from a node is
 * logged and that connection is dropped and remade.
 *
 * Credit. The node never assigns more than the credit it was given on that connection, and the
 * worker never gives, over all its connections together, more than its free capacity
 * (`concurrency + prefetch − executions held − credit outstanding`). So at most `concurrency`
 * handlers run at once and at most `prefetch` more wait. How free capacity is split across nodes
 * (credit-policy.ts): one connection gets it all; with several, each gets one credit (so any node
 * can start work at once), the rest goes to the nodes that are using their credit, and credit left
 * unused at an idle node while another waits is taken back with `withdraw` (answered `withdrawn`).
 *
 * Reports. A report (`started`, `heartbeat`, `succeeded`, `failed`) may go on any connection: a
 * node forwards it to the execution's shard leader. It goes on the connection the execution's
 * answers came on last — at first the one that delivered it — and, once that one closes, on
 * another open one.
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
 * Reports across reconnects. `started`, `succeeded` and `failed` are kept until a node answers
 * them (`ack` or `stale`). When the connection they went on closes, the worker resends every
 * unanswered one (same id and fence) on another open connection — or on the first connection that
 * opens — with a fresh heartbeat for every running execution, so a worker that comes back within
 * the lease keeps its executions. A finished execution's report is also resent every leaseMs/3
 * while it stays unanswered on a live connection (a node gives no answer when a shard cannot
 * commit). A report answered `stale` after a resend may mean the first copy was accepted; the
 * node's state is the truth.
 *
 * Shutdown. `close()` (graceful, the default) sends `drain` on every connection, takes no more
 * work, waits for the in-flight handlers to finish and their reports to be answered, then closes
 * the sockets and emits "closed" (`timeoutMs`: then it closes hard). `close({ graceful: false })`
 * aborts every handler (`signal.reason` is an ExecutionAbortedError with reason "shutdown") and
 * closes at once; the unreported executions' leases expire on the node and they are retried.
 * `shutdownSignals` (default SIGTERM and SIGINT): the first starts a graceful close, the second
 * forces a hard one. The worker never calls `process.exit`: the app decides (listen for "closed").
 * Note that a listener for SIGINT/SIGTERM replaces Node's default of exiting, until the worker has
 * closed.
 *
 * Events: "connected" ({ nodeId, url }), "disconnected" ({ nodeId, url, reason }: `lost`, or
 * `retired` — the node leads nothing now),
 * "reconnecting" ({ attempt, delayMs, url }), "assigned" ({ id, attempt, fence, queue }),
 * "completed" ({ id, attempt, fence, outcome }: outcome `succeeded` | `failed` — the node acked the
 * report — `stale` — the node refused it or the execution was superseded — or `canceled`),
 * "error" (Error; emitted only when someone listens, else logged), "closed".
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
  type SucceededMessage,
  type WelcomeMessage,
  type WorkerMessage,
  type ReportBase,
  WORKER_ID_PATTERN,
  AttemptLogBuffer,
  LOG_LEVELS,
  type LogLevel,
} from "./protocol.js";
import { CronwheelApiError, isErrorCode } from "./errors.js";
import { HttpTransport } from "./http-transport.js";
import { pickWithdraw, planCredits, type CreditSlot } from "./credit-policy.js";
import { LinkLiveness } from "./liveness.js";
import { EarlyRevocations } from "./revocations.js";
import { MalformedFrameError, decodeFrame, httpBase, leaderTargets, reconnectDelayMs, serializeError, toJsonValue, workerUrl, type LeaderTargets } from "./worker-support.js";

export { MalformedFrameError, serializeError, type SerializedError } from "./worker-support.js";

export interface WorkerLogger {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
}

export interface WorkerOptions {
  /**
   * http(s)://host:port of a node, or several: asked in turn for `GET /v1/cluster`, which names the
   * nodes to connect to. When no cluster view can be read, the worker connects to these URLs
   * themselves. The WebSocket URLs are derived (ws(s)://…/v1/workers); ws(s):// URLs are accepted.
   */
  url: string | readonly string[];
  /** Bearer token with role `worker` (or `admin`) when the nodes have a token file. */
  token?: string;
  /** Default: hostname-pid-random. The node sends cancels to every connection with this id. */
  workerId?: string;
  queues: string[];
  /** Most handlers running at once, over all nodes (default 10). */
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
  /** Reconnect backoff per connection: capped exponential with jitter, default 100 ms … 10 s. */
  reconnect?: { initialMs?: number; maxMs?: number };
  /** How often to re-read `GET /v1/cluster` (default 2,000 ms); also at once when a connection closes. */
  clusterRefreshMs?: number;
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
  /**
   * Log a line with this attempt: kept in the execution's history with the attempt (the first 100
   * lines and 16 KiB; the rest counted as dropped), sent with the attempt's final report — an
   * attempt whose worker dies before reporting keeps none. Objects are written as JSON.
   */
  log(message: unknown, level?: LogLevel): void;
}

/** One of the worker's node connections, as `worker.connections` shows it. */
export interface WorkerConnectionInfo {
  /** ws(s)://…/v1/workers */
  url: string;
  /** From the node's welcome (null before it); else the id the cluster view gave. */
  nodeId: string | null;
  /** Welcomed and open. */
  ready: boolean;
  /** Credit given on this connection and not yet used. */
  credit: number;
  /** Being closed: its node leads nothing now, or its unused credit is being taken back. */
  retiring: boolean;
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
export const DEFAULT_CLUSTER_REFRESH_MS = 2_000;
/** No welcome this long after the socket opened: drop it and reconnect. */
const WELCOME_TIMEOUT_MS = 10_000;
/** The worker pings this often; nothing heard for LIVENESS_PINGS intervals → the connection is dead (liveness.ts). */
const LIVENESS_PING_MS = 10_000;
const LIVENESS_PINGS = 3;
/** Unanswered heartbeats remembered per execution (their send times bound the lease). */
const HEARTBEATS_UNACKED_MAX = 8;
/** Server error codes that fail `start()` when they come before the first welcome. */
const FATAL_BEFORE_WELCOME = new Set(["unauthenticated", "permission_denied", "invalid_argument"]);
/** One `GET /v1/cluster` request. */
const CLUSTER_QUERY_TIMEOUT_MS = 3_000;
/** A retired connection (its node leads nothing) is closed this long after its `drain`. */
const RETIRE_GRACE_MS = 1_000;
/** …and terminated if its close handshake has not ended this long after that. */
const CLOSE_HANDSHAKE_MS = 2_000;
/** Credit unused this long at one node while another node waits without any is taken back, all but a probe. */
const WITHDRAW_IDLE_MS = 2_000;
/** A connection assigned work this recently competes for capacity (credit-policy.ts: the active cap). */
const ACTIVE_MS = 500;
/** A connection without credit this long goes first when free capacity is short. */
const FAIRNESS_WAIT_MS = 2_000;

interface Waiter {
  resolve(): void;
  reject(error: unknown): void;
}

interface SentHeartbeat {
  sentAt: number;
  waiters: Waiter[];
}

/** One node connection (kept across its reconnects while its node leads shards). */
interface Conn {
  /** The ws(s) URL; the key of `active`. */
  readonly url: string;
  /** The node the cluster view names at this URL (null: a configured URL, no view). */
  expectedNodeId: string | null;
  /** From the welcome. */
  nodeId: string | null;
  ws: WebSocket | null;
  /** The welcome came on `ws`. */
  welcomed: boolean;
  /** Welcomed and not closing: messages may be sent on it. */
  ready: boolean;
  /** Retired (its node leads nothing): drained, closing. */
  retiring: "retired" | null;
  /** The node said drain: no credit until the next connection. */
  nodeDraining: boolean;
  /** Credit given and not yet used by an assign. */
  outstanding: number;
  assignedSinceGrant: number;
  lastGrantAt: number;
  lastAssignAt: number;
  /** Ready with no credit since (null otherwise). */
  zeroSince: number | null;
  /** A `withdraw` was sent and its `withdrawn` has not come yet. */
  withdrawing: boolean;
  reconnectAttempt: number;
  liveness: LinkLiveness;
  outbox: WorkerMessage[];
  reconnectTimer: NodeJS.Timeout | null;
  welcomeTimer: NodeJS.Timeout | null;
  livenessTimer: NodeJS.Timeout | null;
  retireTimer: NodeJS.Timeout | null;
}

/** One assigned attempt (id + fence) the worker still owes the node something for. */
interface Exec {
  readonly assign: AssignMessage;
  readonly ctrl: LazyAbort;
  readonly ctx: ExecutionContext;
  readonly intervalMs: number;
  /** URL of the connection that delivered it (preferred for its reports). */
  readonly origin: string;
  /** The connection its reports go on now (ready), or null: none chosen or it closed. */
  via: Conn | null;
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
  /** Heartbeats sent on `via`, not yet acked, oldest first. */
  heartbeatsSent: SentHeartbeat[];
  /** The heartbeat queued in this turn's outbox (progress and waiters merge into it). */
  queuedHeartbeat: { message: HeartbeatMessage; entry: SentHeartbeat } | null;
  /** Manual-heartbeat waiters and progress not sent yet (disconnected). */
  unsentWaiters: Waiter[];
  unsentProgress: { value: unknown } | null;
  /** What the handler logged (made on its first ctx.log). */
  logs: AttemptLogBuffer | null;
}

type State = "idle" | "running" | "draining" | "closed";

type ClusterRead = { base: string; found: LeaderTargets } | { error: string };

export class Worker extends EventEmitter {
  private readonly opts: {
    /** http(s) base URLs, for `GET /v1/cluster`. */
    bases: string[];
    /** ws(s) URLs of the same, for when no cluster view can be read. */
    fallback: string[];
    token: string | undefined;
    workerId: string;
    queues: string[];
    concurrency: number;
    prefetch: number;
    handler: (ctx: ExecutionContext) => Promise<unknown>;
    reconnectInitialMs: number;
    reconnectMaxMs: number;
    clusterRefreshMs: number;
    shutdownSignals: NodeJS.Signals[];
  };
  private readonly log: WorkerLogger;
  private state: State = "idle";

  // connections
  /** Connections to the nodes that lead shards (or the configured URLs), by ws URL. */
  private readonly active = new Map<string, Conn>();
  /** Drained connections waiting to close. */
  private readonly retiring = new Set<Conn>();
  private everConnected = false;
  private readonly http = new HttpTransport();
  private refreshTimer: NodeJS.Timeout | null = null;
  private refreshing = false;
  private refreshAgain = false;
  /** Index in `opts.bases` of the URL that answered the cluster query last. */
  private clusterBase = 0;
  /** What the last cluster query found wrong, logged when it changes. */
  private viewTrouble = "";
  private warnedCapacity = false;
  /** Prefetched executions waiting for a handler slot, in assignment order. */
  private readonly waiting: Exec[] = [];

  // work
  private readonly execs = new Map<string, Exec>();
  private readonly earlyRevocations = new EarlyRevocations();
  private running = 0;
  /** Begun in this turn, their handlers not called yet (see begin). */
  private toRun: Exec[] = [];
  private runScheduled = false;
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
    const urls = typeof opts.url === "string" ? [opts.url] : Array.isArray(opts.url) ? [...(opts.url as readonly string[])] : [];
    if (urls.length === 0) throw new TypeError("url: at least one node URL");
    const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new TypeError(`concurrency: an integer ≥ 1, got ${String(opts.concurrency)}`);
    const prefetch = opts.prefetch ?? 0;
    if (!Number.isSafeInteger(prefetch) || prefetch < 0) throw new TypeError(`prefetch: an integer ≥ 0, got ${String(opts.prefetch)}`);
    const initialMs = opts.reconnect?.initialMs ?? DEFAULT_RECONNECT_INITIAL_MS;
    const maxMs = opts.reconnect?.maxMs ?? DEFAULT_RECONNECT_MAX_MS;
    if (!(initialMs > 0) || !(maxMs >= initialMs)) throw new TypeError("reconnect: 0 < initialMs ≤ maxMs");
    const clusterRefreshMs = opts.clusterRefreshMs ?? DEFAULT_CLUSTER_REFRESH_MS;
    if (!(clusterRefreshMs > 0) || !Number.isFinite(clusterRefreshMs)) throw new TypeError(`clusterRefreshMs: a number > 0, got ${String(opts.clusterRefreshMs)}`);
    const workerId = opts.workerId ?? defaultWorkerId();
    if (!WORKER_ID_PATTERN.test(workerId)) throw new TypeError(`workerId must match ${WORKER_ID_PATTERN}`);
    this.opts = {
      bases: urls.map(httpBase),
      fallback: [...new Set(urls.map(workerUrl))],
      token: opts.token,
      workerId,
      queues: [...opts.queues],
      concurrency,
      prefetch,
      handler: opts.handler,
      reconnectInitialMs: initialMs,
      reconnectMaxMs: maxMs,
      clusterRefreshMs,
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

  /** The node connections now: to the leaders, then those being closed. */
  get connections(): WorkerConnectionInfo[] {
    return [...this.active.values(), ...this.retiring].map((c) => ({
      url: c.url,
      nodeId: c.nodeId ?? c.expectedNodeId,
      ready: c.ready,
      credit: c.outstanding,
      retiring: c.retiring !== null,
    }));
  }

  /**
   * Connects; resolves after the first node's welcome. Connection failures are retried with
   * backoff (the nodes may not be up yet). Rejects when a node refuses the hello (bad token, bad
   * queue names: a CronwheelApiError with the node's code) or when the worker is closed first.
   */
  start(): Promise<void> {
    if (this.startPromise) return this.startPromise;
    if (this.state === "closed") return Promise.reject(new Error("worker is closed"));
    this.state = "running";
    this.startPromise = new Promise<void>((resolve, reject) => (this.startSettle = { resolve, reject }));
    for (const s of this.opts.shutdownSignals) process.on(s, this.onSignal);
    void this.refreshCluster();
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
      for (const c of this.allConns()) if (c.ready) c.outbox.push({ t: "drain" });
      this.scheduleTurn();
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
  // the cluster: which nodes to hold connections to

  /** (A getter: TypeScript keeps `state` narrowed across an await.) */
  private get closed(): boolean {
    return this.state === "closed";
  }

  /** Read `/v1/cluster` and open or retire connections to match; then again in clusterRefreshMs. */
  private async refreshCluster(): Promise<void> {
    if (this.state === "closed") return;
    if (this.refreshing) {
      this.refreshAgain = true;
      return;
    }
    this.refreshing = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    try {
      do {
        this.refreshAgain = false;
        const read = await this.readCluster();
        if (this.closed) return;
        this.applyView(read);
      } while (this.refreshAgain);
    } catch (error) {
      this.log.error({ err: error }, "cluster refresh failed"); // unreachable by construction
    } finally {
      this.refreshing = false;
      if (!this.closed) {
        this.refreshTimer = setTimeout(() => void this.refreshCluster(), this.opts.clusterRefreshMs);
        this.refreshTimer.unref();
      }
    }
  }

  /** `GET /v1/cluster` from each configured URL in turn, the one that answered last first. */
  private async readCluster(): Promise<ClusterRead> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.opts.token !== undefined) headers.authorization = `Bearer ${this.opts.token}`;
    const bases = this.opts.bases;
    const trouble: string[] = [];
    for (let i = 0; i < bases.length; i++) {
      const index = (this.clusterBase + i) % bases.length;
      const base = bases[index]!;
      try {
        const res = await this.http.request(`${base}/v1/cluster`, "GET", headers, undefined, CLUSTER_QUERY_TIMEOUT_MS);
        if (res.status !== 200) {
          trouble.push(`${base}: HTTP ${res.status}`);
          continue;
        }
        const found = leaderTargets(JSON.parse(res.text), base);
        if (found === null) {
          trouble.push(`${base}: not a cluster view`);
          continue;
        }
        this.clusterBase = index;
        return { base, found };
      } catch (error) {
        trouble.push(`${base}: ${(error as Error).message}`);
      }
    }
    return { error: trouble.join("; ") };
  }

  private applyView(read: ClusterRead): void {
    let targets: Array<{ url: string; nodeId: string | null }> | null = null;
    let trouble = "";
    if ("error" in read) {
      trouble = `cannot read the cluster view: ${read.error}`;
    } else {
      if (read.found.problems.length > 0) trouble = read.found.problems.join("; ");
      if (read.found.targets.length > 0) targets = read.found.targets;
      else trouble ||= "no shard has a leader";
    }
    if (trouble !== this.viewTrouble) {
      if (trouble) this.log.warn({ trouble, connections: this.active.size }, "cluster view: keeping the connections there are, or using the configured URLs");
      else this.log.info({ nodes: targets?.map((t) => t.nodeId) }, "cluster view read");
      this.viewTrouble = trouble;
    }
    if (targets === null) {
      if (this.active.size > 0) return; // keep what there is until a view names leaders
      targets = this.opts.fallback.map((url) => ({ url, nodeId: null }));
    }
    const want = new Set(targets.map((t) => t.url));
    for (const c of [...this.active.values()]) if (!want.has(c.url)) this.retire(c, "retired");
    for (const t of targets) {
      const c = this.active.get(t.url);
      if (c) c.expectedNodeId = t.nodeId;
      else this.openConn(t.url, t.nodeId);
    }
    const capacity = this.opts.concurrency + this.opts.prefetch;
    if (capacity < this.active.size && !this.warnedCapacity) {
      this.warnedCapacity = true;
      this.log.warn({ capacity, leaderNodes: this.active.size }, "concurrency + prefetch is below the number of leader nodes: credit rotates among them (see docs/workers.md)");
    }
    this.scheduleTurn();
  }

  // ---------------------------------------------------------------------------------------------
  // connections

  private openConn(url: string, expectedNodeId: string | null): Conn {
    const c: Conn = {
      url,
      expectedNodeId,
      nodeId: null,
      ws: null,
      welcomed: false,
      ready: false,
      retiring: null,
      nodeDraining: false,
      outstanding: 0,
      withdrawing: false,
      assignedSinceGrant: 0,
      lastGrantAt: Date.now(),
      lastAssignAt: 0,
      zeroSince: null,
      reconnectAttempt: 0,
      liveness: new LinkLiveness(LIVENESS_PING_MS, LIVENESS_PINGS, performance.now()),
      outbox: [],
      reconnectTimer: null,
      welcomeTimer: null,
      livenessTimer: null,
      retireTimer: null,
    };
    this.active.set(url, c);
    this.connect(c);
    return c;
  }

  private *allConns(): Iterable<Conn> {
    yield* this.active.values();
    yield* this.retiring;
  }

  private connect(c: Conn): void {
    c.reconnectTimer = null;
    if (this.state === "closed" || c.retiring !== null) return;
    const ws = new WebSocket(c.url, { perMessageDeflate: false, handshakeTimeout: WELCOME_TIMEOUT_MS });
    c.ws = ws;
    c.welcomed = c.ready = false;
    c.nodeDraining = false;
    c.outstanding = 0;
    c.withdrawing = false;
    c.assignedSinceGrant = 0;
    c.zeroSince = null;
    c.outbox = [];
    ws.on("open", () => {
      if (ws !== c.ws) return;
      c.liveness = new LinkLiveness(LIVENESS_PING_MS, LIVENESS_PINGS, performance.now());
      const hello: WorkerMessage = { t: "hello", workerId: this.opts.workerId, queues: this.opts.queues, protocol: PROTOCOL_VERSION, ...(this.opts.token !== undefined ? { token: this.opts.token } : {}) };
      ws.send(pack([hello]));
      c.welcomeTimer = setTimeout(() => this.dropConnection(c, ws, "no welcome in time"), WELCOME_TIMEOUT_MS);
      c.livenessTimer = setInterval(() => this.checkLiveness(c, ws), LIVENESS_PING_MS);
      c.livenessTimer.unref();
    });
    ws.on("message", (data, isBinary) => {
      if (ws !== c.ws) return;
      c.liveness.heard(performance.now());
      this.onFrame(c, ws, data, isBinary);
    });
    ws.on("ping", () => ws === c.ws && c.liveness.heard(performance.now()));
    ws.on("pong", () => ws === c.ws && c.liveness.heard(performance.now()));
    ws.on("error", (error) => {
      if (ws === c.ws) this.log.warn({ err: error, url: c.url }, "worker connection error");
    });
    ws.on("close", (code, reason) => this.onSocketClosed(c, ws, code, reason.toString()));
  }

  private checkLiveness(c: Conn, ws: WebSocket): void {
    if (ws !== c.ws || ws.readyState !== WebSocket.OPEN) return;
    if (c.liveness.check(performance.now()) === "drop") return this.dropConnection(c, ws, "nothing heard from the node");
    ws.ping();
  }

  /** Give up on this socket now (its connection is remade unless retiring). */
  private dropConnection(c: Conn, ws: WebSocket, why: string): void {
    if (ws !== c.ws) return;
    this.log.warn({ why, url: c.url }, "dropping worker connection");
    ws.terminate();
    this.onSocketClosed(c, ws, 1006, why);
  }

  /**
   * Drain a connection and close it after RETIRE_GRACE_MS: its node leads nothing any more.
   * Messages that still arrive on it are handled; its credit counts as given until it has closed.
   */
  private retire(c: Conn, reason: "retired"): void {
    if (this.active.get(c.url) === c) this.active.delete(c.url);
    c.retiring = reason;
    if (c.reconnectTimer) clearTimeout(c.reconnectTimer);
    c.reconnectTimer = null;
    const ws = c.ws;
    if (!ws) return; // between reconnects: nothing to close
    this.retiring.add(c);
    if (!c.welcomed) {
      this.dropConnection(c, ws, reason);
      return;
    }
    this.log.info({ url: c.url, nodeId: c.nodeId, reason, credit: c.outstanding }, "node leads no shard now: draining its connection");
    c.outbox.push({ t: "drain" });
    this.scheduleTurn();
    c.retireTimer = setTimeout(() => {
      c.retireTimer = null;
      if (ws !== c.ws) return;
      // Reports go on other connections from now on; an assign still in flight is handled.
      c.ready = false;
      this.rerouteFrom(c);
      ws.close(1000, "node leads no shard");
      c.retireTimer = setTimeout(() => ws === c.ws && this.dropConnection(c, ws, "close handshake timed out"), CLOSE_HANDSHAKE_MS);
    }, RETIRE_GRACE_MS);
  }

  private onSocketClosed(c: Conn, ws: WebSocket, code: number, reason: string): void {
    if (ws !== c.ws) return;
    c.ws = null;
    const wasWelcomed = c.welcomed;
    c.welcomed = c.ready = false;
    c.outstanding = 0;
    c.outbox = [];
    c.zeroSince = null;
    this.clearConnectionTimers(c);
    if (c.retireTimer) clearTimeout(c.retireTimer);
    c.retireTimer = null;
    if (this.state === "closed") return;
    if (wasWelcomed) this.emit("disconnected", { url: c.url, nodeId: c.nodeId, reason: c.retiring ?? "lost" });
    if (c.retiring !== null) {
      this.retiring.delete(c);
    } else {
      if (wasWelcomed) this.log.warn({ url: c.url, nodeId: c.nodeId, code, reason, inFlight: this.running }, "worker connection closed");
      c.reconnectAttempt++;
      const delayMs = reconnectDelayMs(c.reconnectAttempt, { initialMs: this.opts.reconnectInitialMs, maxMs: this.opts.reconnectMaxMs }, Math.random());
      this.emit("reconnecting", { attempt: c.reconnectAttempt, delayMs, url: c.url });
      c.reconnectTimer = setTimeout(() => this.connect(c), delayMs);
      void this.refreshCluster(); // did the leaders change?
    }
    this.rerouteFrom(c);
    this.scheduleTurn(); // lease timers keep running while disconnected; the credit is free again
  }

  /** The executions whose reports went on c go on another connection now, resent in full. */
  private rerouteFrom(c: Conn): void {
    const moved: Exec[] = [];
    for (const x of this.execs.values()) {
      if (x.via !== c) continue;
      x.via = null;
      // Their answers would have come on c: whatever was unanswered is sent again.
      for (const hb of x.heartbeatsSent) x.unsentWaiters.push(...hb.waiters);
      x.heartbeatsSent = [];
      if (x.queuedHeartbeat) {
        x.unsentWaiters.push(...x.queuedHeartbeat.entry.waiters);
        if (x.queuedHeartbeat.message.progress !== undefined && x.unsentProgress === null) x.unsentProgress = { value: x.queuedHeartbeat.message.progress };
        x.queuedHeartbeat = null;
      }
      moved.push(x);
    }
    if (this.state === "closed") return;
    const now = Date.now();
    for (const x of moved) this.resend(x, now);
  }

  private clearConnectionTimers(c: Conn): void {
    if (c.welcomeTimer) clearTimeout(c.welcomeTimer);
    if (c.livenessTimer) clearInterval(c.livenessTimer);
    c.welcomeTimer = c.livenessTimer = null;
  }

  /** The connection x's messages go on: the one they went on, else its origin, else any. */
  private routeFor(x: Exec): Conn | null {
    if (x.via?.ready) return x.via;
    let pick: Conn | null = null;
    const origin = this.active.get(x.origin);
    if (origin?.ready) pick = origin;
    else {
      for (const c of this.allConns()) {
        if (c.ready) {
          pick = c;
          break;
        }
      }
    }
    x.via = pick;
    return pick;
  }

  private anyReady(): boolean {
    for (const c of this.allConns()) if (c.ready) return true;
    return false;
  }

  // ---------------------------------------------------------------------------------------------
  // frames in

  private onFrame(c: Conn, ws: WebSocket, data: WebSocket.RawData, isBinary: boolean): void {
    let messages: NodeMessage[];
    try {
      if (!isBinary) throw new MalformedFrameError("text frame (the protocol is binary)");
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      messages = decodeFrame(buf);
      if (!c.welcomed && messages.length > 0 && messages[0]!.t !== "welcome" && messages[0]!.t !== "error") throw new MalformedFrameError(`expected welcome first, got '${messages[0]!.t}'`);
    } catch (error) {
      this.log.error({ err: error, url: c.url }, "malformed frame from the node: reconnecting");
      this.emitError(error as Error);
      this.dropConnection(c, ws, "malformed frame");
      return;
    }
    for (const m of messages) {
      if (ws !== c.ws) return; // an error message or a close ended it
      this.onMessage(c, ws, m);
    }
  }

  private onMessage(c: Conn, ws: WebSocket, m: NodeMessage): void {
    switch (m.t) {
      case "welcome":
        return this.onWelcome(c, m);
      case "assign":
        return this.onAssign(c, m);
      case "ack":
        return this.onAck(m);
      case "stale":
        return this.onStale(m);
      case "cancel":
        return this.onCancel(m);
      case "withdrawn":
        return this.onWithdrawn(c, Number.isSafeInteger(m.n) && m.n > 0 ? m.n : 0);
      case "drain":
        this.log.info({ url: c.url, nodeId: c.nodeId }, "node asked to drain: no more credit on this connection");
        c.nodeDraining = true;
        void this.refreshCluster(); // it is likely stopping: who leads its shards next?
        return;
      case "error":
        return this.onNodeError(c, ws, m);
    }
  }

  private onWelcome(c: Conn, m: WelcomeMessage): void {
    if (c.welcomed) return this.log.warn({ nodeId: m.nodeId, url: c.url }, "second welcome ignored");
    if (m.protocol !== PROTOCOL_VERSION) this.log.warn({ nodeProtocol: m.protocol, protocol: PROTOCOL_VERSION }, "node speaks another protocol version");
    if (c.expectedNodeId !== null && c.expectedNodeId !== m.nodeId) this.log.warn({ url: c.url, expected: c.expectedNodeId, nodeId: m.nodeId }, "the node at this address is not the one the cluster view names");
    if (c.welcomeTimer) clearTimeout(c.welcomeTimer);
    c.welcomeTimer = null;
    c.welcomed = true;
    c.ready = true;
    c.nodeId = m.nodeId;
    c.reconnectAttempt = 0;
    c.zeroSince = Date.now();
    this.log.info({ nodeId: m.nodeId, url: c.url, workerId: this.opts.workerId, unreported: this.execs.size }, "worker connected");
    if (this.state === "draining") c.outbox.push({ t: "drain" });
    // Executions with nowhere to report (every connection was down) report here.
    const now = Date.now();
    for (const x of this.execs.values()) if (x.via === null) this.resend(x, now);
    this.scheduleTurn(); // credit goes out with the flush
    this.emit("connected", { nodeId: m.nodeId, url: c.url });
    if (!this.everConnected) {
      this.everConnected = true;
      this.startSettle?.resolve();
      this.startSettle = null;
    }
  }

  private onNodeError(c: Conn, ws: WebSocket, m: ErrorMessage): void {
    const error = new CronwheelApiError(isErrorCode(m.code) ? m.code : "internal", m.message, { details: { nodeCode: m.code } });
    this.log.error({ code: m.code, message: m.message, url: c.url }, "node closed the worker connection with an error");
    if (!this.everConnected && FATAL_BEFORE_WELCOME.has(m.code)) {
      this.startSettle?.reject(error);
      this.startSettle = null;
      this.closeHard();
      return;
    }
    this.emitError(error);
    this.dropConnection(c, ws, `node error ${m.code}`);
  }

  private onAssign(c: Conn, m: AssignMessage): void {
    if (this.state === "closed") return;
    const now = Date.now();
    if (c.outstanding > 0) c.outstanding--;
    else this.log.warn({ id: m.id, url: c.url }, "assign without credit");
    c.assignedSinceGrant++;
    c.lastAssignAt = now;
    if (c.outstanding === 0 && c.zeroSince === null) c.zeroSince = now;
    if (this.earlyRevocations.revoked(m.id, m.fence)) {
      this.log.info({ id: m.id, fence: m.fence, url: c.url }, "assignment revoked before it arrived: not run");
      this.scheduleTurn(); // its credit is free again
      return;
    }
    const old = this.execs.get(m.id);
    if (old) {
      if (old.assign.fence >= m.fence) return this.log.warn({ id: m.id, fence: m.fence, have: old.assign.fence }, "duplicate assign ignored");
      this.drop(old, "superseded", "stale");
    }
    if (this.running + this.waiting.length >= this.opts.concurrency + this.opts.prefetch) {
      // The node gave more than the credit: refuse without running it (it is retried).
      this.log.error({ id: m.id, inFlight: this.running, url: c.url }, "assign beyond concurrency refused");
      const refusal = failedReport(m, { name: "WorkerOverCapacity", message: "assigned beyond the worker's credit" }, true);
      const on = c.ready ? c : [...this.allConns()].find((o) => o.ready);
      on?.outbox.push(refusal);
      this.scheduleTurn();
      return;
    }
    const x = this.newExec(m, now, c);
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
    this.sendFor(x, reportOf("started", m));
    if (this.listenerCount("assigned") > 0) this.emit("assigned", { id: m.id, attempt: m.attempt, fence: m.fence, queue: m.queue });
    // After this frame is processed, so a handler's synchronous start cannot delay the others. One
    // microtask for all that begin in this turn: Node's queueMicrotask makes an AsyncResource each.
    this.toRun.push(x);
    if (!this.runScheduled) {
      this.runScheduled = true;
      queueMicrotask(this.runBegun);
    }
  }

  private readonly runBegun = (): void => {
    const list = this.toRun;
    this.toRun = [];
    this.runScheduled = false;
    for (const x of list) this.runHandler(x);
  };

  private runHandler(x: Exec): void {
    const m = x.assign;
    const failed = (error: unknown) => this.onHandlerDone(x, failedReport(m, serializeError(error), !(error instanceof NonRetryableError)));
    let outcome: unknown;
    try {
      outcome = this.opts.handler(x.ctx);
    } catch (error) {
      failed(error);
      return;
    }
    Promise.resolve(outcome).then((result) => this.onHandlerDone(x, succeededReport(m, result)), failed);
  }

  private newExec(m: AssignMessage, now: number, c: Conn): Exec {
    const ctrl = new LazyAbort();
    const intervalMs = Math.max(1, Math.floor(m.leaseMs / 3));
    const x: Exec = {
      assign: m,
      ctrl,
      ctx: undefined as unknown as ExecutionContext,
      intervalMs,
      origin: c.url,
      via: c.ready ? c : null,
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
      logs: null,
    };
    (x as { ctx: ExecutionContext }).ctx = new HandlerContext(m, x, this.heartbeatOf);
    return x;
  }

  /** One function for every context's heartbeat (HandlerContext binds it to its execution on first use). */
  private readonly heartbeatOf = (x: Exec, progress: unknown): Promise<void> => this.manualHeartbeat(x, progress);

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
    if (x.logs) {
      report.logs = x.logs.lines;
      if (x.logs.dropped > 0) report.logsDropped = x.logs.dropped;
    }
    x.final = report;
    x.nextSendAt = Date.now() + x.intervalMs;
    this.sendFor(x, x.final);
    this.scheduleTurn(); // the slot is free: credit
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
    if (!x || x.assign.fence < m.fence) this.earlyRevocations.note(m.id, m.fence);
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
      this.scheduleTurn(); // its slot is free
    }
    const error = new ExecutionAbortedError(reason, x.assign.id);
    if (!x.ctrl.aborted) x.ctrl.abort(error);
    for (const w of this.takeWaiters(x)) w.reject(error);
    this.settle(x, outcome);
  }

  private settle(x: Exec, outcome: CompletedOutcome): void {
    if (this.execs.get(x.assign.id) === x) this.execs.delete(x.assign.id);
    if (this.listenerCount("completed") > 0) this.emit("completed", { id: x.assign.id, attempt: x.assign.attempt, fence: x.assign.fence, outcome });
    this.closeIfIdle();
  }

  private takeWaiters(x: Exec): Waiter[] {
    // Most executions never call ctx.heartbeat(): nothing to gather, nothing to allocate.
    if (x.unsentWaiters.length === 0 && x.heartbeatsSent.length === 0 && x.queuedHeartbeat === null) return NO_WAITERS;
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
      const p = Promise.reject(x.ctrl.reason);
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
      this.sendHeartbeat(x, Date.now()); // or with the next connection's welcome
    });
    p.catch(() => {}); // a fire-and-forget heartbeat must not become an unhandled rejection
    return p;
  }

  /** Queue a heartbeat for x (merged with one already queued this turn); none without a connection. */
  private sendHeartbeat(x: Exec, now: number): void {
    const c = this.routeFor(x);
    if (!c) return;
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
    const message = reportOf("heartbeat", x.assign) as HeartbeatMessage;
    if (progress) message.progress = progress.value;
    const entry: SentHeartbeat = { sentAt: now, waiters };
    x.heartbeatsSent.push(entry);
    if (x.heartbeatsSent.length > HEARTBEATS_UNACKED_MAX) {
      const oldest = x.heartbeatsSent.shift()!;
      x.heartbeatsSent[0]!.waiters.unshift(...oldest.waiters);
    }
    x.queuedHeartbeat = { message, entry };
    c.outbox.push(message);
    this.scheduleTurn();
  }

  /** Everything x still owes a node, on its (new) connection: started, a heartbeat, its outcome. */
  private resend(x: Exec, now: number): void {
    if (x.dropped) return;
    if (!x.startedAcked && !x.queuedStart) this.sendFor(x, reportOf("started", x.assign));
    if (x.running) this.sendHeartbeat(x, now);
    else if (x.final) {
      this.sendFor(x, x.final);
      x.nextSendAt = now + x.intervalMs;
    }
  }

  /** The one timer: heartbeats and resends due, local lease and timeout expiry. */
  private onTimer(): void {
    this.timer = null;
    this.timerAt = Infinity;
    const now = Date.now();
    const connected = this.anyReady();
    for (const x of [...this.execs.values()]) {
      const slack = x.intervalMs / 4; // send a little early so due heartbeats share a frame
      if (x.running) {
        if (!x.ctrl.aborted && now >= x.assign.timeoutAt) this.abortRunning(x, "timed-out");
        else if (!x.ctrl.aborted && now >= x.leaseDeadline) this.abortRunning(x, "lease-lost");
        if (connected && now >= x.nextSendAt - slack) this.sendHeartbeat(x, now);
      } else if (x.final && connected && now >= x.nextSendAt - slack) {
        this.sendFor(x, x.final);
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
    const connected = this.anyReady();
    for (const x of this.execs.values()) {
      if (x.running) {
        if (!x.ctrl.aborted) at = Math.min(at, x.leaseDeadline, x.assign.timeoutAt);
        if (connected) at = Math.min(at, x.nextSendAt - x.intervalMs / 4);
      } else if (x.final && connected) at = Math.min(at, x.nextSendAt - x.intervalMs / 4);
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
  // frames out: one frame per connection per event-loop turn

  /** Queue m on x's connection; false when no connection is open (it goes after the next welcome). */
  private sendFor(x: Exec, m: WorkerMessage): boolean {
    const c = this.routeFor(x);
    if (!c) return false;
    c.outbox.push(m);
    this.scheduleTurn();
    return true;
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
   * A `started` whose final report leaves in the same frame (or left already) tells the node
   * nothing (a short handler): drop it, halving the reports and acks of short executions.
   */
  private dropOvertakenStarts(c: Conn): void {
    const outbox = c.outbox;
    let kept = 0;
    for (let i = 0; i < outbox.length; i++) {
      const m = outbox[i]!;
      if (m.t === "started") {
        const x = this.execs.get(m.id);
        if (x !== undefined && x.assign.fence === m.fence && x.final !== null) {
          x.startedAcked = true;
          continue;
        }
      }
      outbox[kept++] = m;
    }
    outbox.length = kept;
  }

  /** What the worker can hold in all: running, waiting and credit given. */
  private get capacity(): number {
    return this.opts.concurrency + this.opts.prefetch;
  }

  /** Capacity not held by an execution or by credit outstanding on some connection. */
  private freeCapacity(): number {
    let outstanding = 0;
    for (const c of this.allConns()) outstanding += c.outstanding;
    return this.opts.concurrency + this.opts.prefetch - this.running - this.waiting.length - outstanding;
  }

  /** The connections credit may go to (ready) or is reserved for (not ready yet). */
  private creditSlots(): CreditSlot[] {
    const slots: CreditSlot[] = [];
    for (const c of this.active.values()) {
      if (c.nodeDraining) continue;
      slots.push({
        key: c.url,
        ready: c.ready,
        outstanding: c.outstanding,
        assignedSinceGrant: c.assignedSinceGrant,
        lastGrantAt: c.lastGrantAt,
        lastAssignAt: c.lastAssignAt,
        zeroSince: c.zeroSince,
        withdrawing: c.withdrawing,
      });
    }
    return slots;
  }

  /** Send this turn's messages, plus the credit each connection gets, one frame per connection. */
  private flush(): void {
    for (const x of this.execs.values()) x.queuedHeartbeat = null;
    const now = Date.now();
    const grants = this.state === "running" ? planCredits(this.freeCapacity(), this.creditSlots(), { now, fairnessWaitMs: FAIRNESS_WAIT_MS, capacity: this.capacity, activeMs: ACTIVE_MS }) : null;
    for (const c of this.allConns()) {
      const ws = c.ws;
      if (!c.welcomed || !ws || ws.readyState !== WebSocket.OPEN) {
        c.outbox = []; // reports stay in their executions and go out on another connection
        continue;
      }
      this.dropOvertakenStarts(c);
      const n = c.retiring === null ? (grants?.get(c.url) ?? 0) : 0;
      if (n > 0) {
        c.outbox.push({ t: "credit", n });
        c.outstanding += n;
        c.assignedSinceGrant = 0;
        c.lastGrantAt = now;
        c.zeroSince = null;
      }
      if (c.outbox.length === 0) continue;
      let frame: Buffer;
      try {
        frame = pack(c.outbox);
      } catch (error) {
        // Unreachable by construction (reports carry JSON only); never let it kill the process.
        this.log.error({ err: error, messages: c.outbox.length }, "frame not encodable: dropped");
        c.outbox = [];
        continue;
      }
      c.outbox = [];
      ws.send(frame, { binary: true }, (error) => {
        if (error && ws === c.ws) this.log.warn({ err: error, url: c.url }, "send failed");
      });
    }
    if (this.state === "running") this.withdrawExcessCredit(now);
  }

  /** Take back credit collected at one node while another waits with none (credit-policy.ts). */
  private withdrawExcessCredit(now: number): void {
    const w = pickWithdraw(this.creditSlots(), { now, free: this.freeCapacity(), capacity: this.capacity, idleMs: WITHDRAW_IDLE_MS, activeMs: ACTIVE_MS });
    const c = w === null ? undefined : this.active.get(w.key);
    if (!c || !c.ws || c.ws.readyState !== WebSocket.OPEN) return;
    c.withdrawing = true;
    c.ws.send(pack([{ t: "withdraw", n: w!.n }]), { binary: true });
  }

  /** The node gave back `n` credits it had not used: they are free again. */
  private onWithdrawn(c: Conn, n: number): void {
    c.withdrawing = false;
    c.outstanding = Math.max(0, c.outstanding - n);
    if (c.outstanding === 0 && c.zeroSince === null) c.zeroSince = Date.now();
    this.scheduleTurn();
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
      if (!x.ctrl.aborted) x.ctrl.abort(error);
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
    for (const t of [this.graceTimer, this.timer, this.refreshTimer]) if (t) clearTimeout(t);
    this.graceTimer = this.timer = this.refreshTimer = null;
    for (const c of [...this.allConns()]) {
      this.clearConnectionTimers(c);
      for (const t of [c.reconnectTimer, c.retireTimer]) if (t) clearTimeout(t);
      c.reconnectTimer = c.retireTimer = null;
      const ws = c.ws;
      c.ws = null;
      c.welcomed = c.ready = false;
      if (ws) {
        if (ws.readyState === WebSocket.OPEN) ws.close(1000, "worker closing");
        else ws.terminate();
      }
    }
    this.active.clear();
    this.retiring.clear();
    this.http.close();
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

/** A report of `t` for assignment `m`: the execution, its fence, and for an all-tenant worker its tenant. */
function reportOf<T extends "started" | "heartbeat" | "succeeded" | "failed">(t: T, m: AssignMessage): ReportBase & { t: T } {
  const r: ReportBase & { t: T } = { t, id: m.id, fence: m.fence };
  if (m.tenant !== undefined) r.tenant = m.tenant;
  return r;
}

/**
 * The report of a handler that returned `result`. The result travels as the JSON the node stores
 * (a Date becomes its ISO string); one that is not JSON (a BigInt, a cycle) fails the attempt, not
 * retryable: the same handler would return it again.
 */
function succeededReport(m: AssignMessage, result: unknown): SucceededMessage | FailedMessage {
  let value: unknown;
  try {
    value = toJsonValue(result);
  } catch (error) {
    return failedReport(m, { name: "ResultNotSerializable", message: `the handler's result is not JSON: ${(error as Error).message}` }, false);
  }
  const report = reportOf("succeeded", m) as SucceededMessage;
  if (value !== undefined) report.result = value;
  return report;
}

function failedReport(m: AssignMessage, error: unknown, retryable: boolean): FailedMessage {
  const report = reportOf("failed", m) as FailedMessage;
  report.error = error;
  report.retryable = retryable;
  return report;
}

function defaultWorkerId(): string {
  const host = os.hostname().replace(/[^A-Za-z0-9._-]/g, "-").slice(0, 150) || "worker";
  return `${host}-${process.pid}-${randomBytes(3).toString("hex")}`;
}

const NO_WAITERS: Waiter[] = [];

/**
 * What a handler gets. Most handlers never read `scheduledAt`, `signal` or `heartbeat`: each is
 * made on first use, not per execution (a no-op execution costs this process ~10 µs in all).
 * Private fields (#) keep the execution out of a logged or serialized context.
 */
class HandlerContext implements ExecutionContext {
  readonly id: string;
  readonly attempt: number;
  readonly fence: number;
  readonly queue: string;
  readonly payload: unknown;
  readonly jobId?: string;
  readonly previousResult?: unknown;
  readonly #scheduledAtMs: number;
  readonly #exec: Exec;
  readonly #heartbeatOf: (x: Exec, progress: unknown) => Promise<void>;
  #scheduledAt: Date | null = null;
  #heartbeat: ((progress?: unknown) => Promise<void>) | null = null;
  #log: ((message: unknown, level?: LogLevel) => void) | null = null;

  constructor(m: AssignMessage, exec: Exec, heartbeatOf: (x: Exec, progress: unknown) => Promise<void>) {
    this.id = m.id;
    this.attempt = m.attempt;
    this.fence = m.fence;
    this.queue = m.queue;
    this.payload = m.payload;
    if (typeof m.jobId === "string") this.jobId = m.jobId;
    if (m.previousResult !== undefined) this.previousResult = m.previousResult;
    this.#scheduledAtMs = m.scheduledAt;
    this.#exec = exec;
    this.#heartbeatOf = heartbeatOf;
  }

  get scheduledAt(): Date {
    return (this.#scheduledAt ??= new Date(this.#scheduledAtMs));
  }

  get signal(): AbortSignal {
    return this.#exec.ctrl.signal;
  }

  /** What a logged context shows: the assignment's fields, as a plain object did. */
  toJSON(): object {
    return { ...this, scheduledAt: this.scheduledAt };
  }

  /** A function, so that `const { heartbeat } = ctx` works as it did for a plain object. */
  get heartbeat(): (progress?: unknown) => Promise<void> {
    return (this.#heartbeat ??= (progress?: unknown) => this.#heartbeatOf(this.#exec, progress));
  }

  /** A function too (`const { log } = ctx`); lines after the handler settled are not sent. */
  get log(): (message: unknown, level?: LogLevel) => void {
    return (this.#log ??= (message: unknown, level: LogLevel = "info") => {
      if (!LOG_LEVELS.includes(level)) throw new TypeError(`ctx.log: level must be one of ${LOG_LEVELS.join(", ")}`);
      const msg = typeof message === "string" ? message : message instanceof Error ? (message.stack ?? message.message) : safeJson(message);
      (this.#exec.logs ??= new AttemptLogBuffer()).add({ at: Date.now(), level, msg });
    });
  }
}

/**
 * An AbortController made only when a handler asks for its signal: most never do, and making one
 * (with its AbortSignal) costs about 2 µs, a tenth of what a no-op execution costs this process.
 */
class LazyAbort {
  private controller: AbortController | null = null;
  private abortedWith: { reason: unknown } | null = null;

  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.abortedWith !== null) this.controller.abort(this.abortedWith.reason);
    }
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.abortedWith !== null;
  }

  get reason(): unknown {
    return this.abortedWith?.reason;
  }

  abort(reason: unknown): void {
    if (this.abortedWith !== null) return;
    this.abortedWith = { reason };
    this.controller?.abort(reason);
  }
}

/** A logged value as text: JSON, or String() for what JSON cannot say (a BigInt, a cycle). */
function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
