/**
 * The worker protocol, version 1, as the SDK speaks it: WebSocket `/v1/workers`, binary frames.
 * Every frame is one msgpack-encoded ARRAY of messages (a batch; often of one). Messages are
 * objects with a `t` field. Both sides ignore unknown fields. docs/api.md ("Worker protocol") has the frames.
 *
 * The one definition of the wire shapes: the SDK carries no server code, and the server's
 * gateway (src/gateway/protocol.ts) uses these.
 *
 * Worker → node                      Node → worker
 *   hello   (first message)            welcome (answer to hello)
 *   credit  (can take n more)          assign  (one execution to run)
 *   withdraw (give back unused credit) withdrawn (how much was given back)
 *   started, heartbeat,                ack     (report accepted; heartbeat: new lease deadline)
 *   succeeded, failed  (reports)       stale   (fence no longer valid: stop and drop the work)
 *   drain   (take no more work)        cancel  (execution canceled / lease lost: abort it)
 *                                      drain   (node stops assigning; finish in-flight work)
 *                                      error   (fatal for this connection; then it closes)
 */

export const PROTOCOL_VERSION = 1;
export const WORKER_PATH = "/v1/workers";
/** What a worker may call itself in its hello (and what `?workerId=` filters accept). */
export const WORKER_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,200}$/;

// ---- worker → node

export interface HelloMessage {
  t: "hello";
  workerId: string;
  /** Bearer token (when the server has a token file); the token's tenant scopes the work. */
  token?: string;
  queues: string[];
  protocol: number;
}

/** The worker can take `n` more executions (credits add up; never sent more than asked). */
export interface CreditMessage {
  t: "credit";
  n: number;
}

/** Give back up to n credits not used yet (to move them to a node that has work); answered `withdrawn`. */
export interface WithdrawMessage {
  t: "withdraw";
  n: number;
}

export interface ReportBase {
  id: string;
  fence: number;
  /** The execution's tenant as `assign` gave it (all-tenant workers only): any node can route the report. */
  tenant?: string;
}

export interface StartedMessage extends ReportBase {
  t: "started";
}

export interface HeartbeatMessage extends ReportBase {
  t: "heartbeat";
  progress?: unknown;
}

/**
 * The lines a handler wrote through `ctx.log` in this attempt (sent with its final report), and how
 * many it wrote past the bound (ATTEMPT_LOG_BOUNDS) that were dropped.
 */
export interface AttemptLogs {
  logs?: LogLine[];
  logsDropped?: number;
}

export interface SucceededMessage extends ReportBase, AttemptLogs {
  t: "succeeded";
  result?: unknown;
}

export interface FailedMessage extends ReportBase, AttemptLogs {
  t: "failed";
  error: unknown;
  /** false: no retry, the execution becomes a dead letter now. Default true. */
  retryable?: boolean;
}

// ---- attempt logs (both sides)

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** A line a handler logged: when (the worker's clock, ms), how loud, what. */
export interface LogLine {
  at: number;
  level: LogLevel;
  msg: string;
}

/**
 * What an attempt keeps of its logs: the first `lines` lines, `chars` characters in all, each line
 * cut at `lineChars`; the rest is counted as dropped. The SDK keeps to it, and the node holds every
 * report to it again (a worker in any language may not).
 */
export const ATTEMPT_LOG_BOUNDS = { lines: 100, chars: 16_384, lineChars: 1_024 } as const;

/** An attempt's logs as they grow: `add` keeps a line within ATTEMPT_LOG_BOUNDS or counts it dropped. */
export class AttemptLogBuffer {
  lines: LogLine[] = [];
  dropped = 0;
  private chars = 0;

  add(line: LogLine): void {
    const msg = line.msg.length > ATTEMPT_LOG_BOUNDS.lineChars ? `${line.msg.slice(0, ATTEMPT_LOG_BOUNDS.lineChars - 1)}…` : line.msg;
    if (this.lines.length >= ATTEMPT_LOG_BOUNDS.lines || this.chars + msg.length > ATTEMPT_LOG_BOUNDS.chars) {
      this.dropped++;
      return;
    }
    this.chars += msg.length;
    this.lines.push(msg === line.msg ? line : { ...line, msg });
  }
}

export interface DrainMessage {
  t: "drain";
}

export type WorkerMessage =
  | HelloMessage
  | CreditMessage
  | WithdrawMessage
  | StartedMessage
  | HeartbeatMessage
  | SucceededMessage
  | FailedMessage
  | DrainMessage;

export type ReportMessage = StartedMessage | HeartbeatMessage | SucceededMessage | FailedMessage;

// ---- node → worker

export interface WelcomeMessage {
  t: "welcome";
  nodeId: string;
  protocol: number;
}

export interface AssignMessage {
  t: "assign";
  id: string;
  attempt: number;
  fence: number;
  queue: string;
  payload: unknown;
  /** The execution's nominal time. */
  scheduledAt: number;
  leaseMs: number;
  /** Heartbeat before this (a heartbeat's ack carries the next one). */
  leaseDeadline: number;
  /** The attempt must end by this time, heartbeats or not. */
  timeoutAt: number;
  jobId?: string;
  /** For a job's fire: the result of the job's previous succeeded execution, if still known. */
  previousResult?: unknown;
  /** The execution's tenant, to workers that serve every tenant (an admin token); reports echo it. */
  tenant?: string;
}

export interface AckMessage {
  t: "ack";
  id: string;
  fence: number;
  /** Which report this answers. */
  of: ReportMessage["t"];
  leaseDeadline?: number;
}

export interface StaleMessage {
  t: "stale";
  id: string;
  fence: number;
  of: ReportMessage["t"];
}

export interface CancelMessage {
  t: "cancel";
  id: string;
  fence: number;
  /** canceled | replaced | job-deleted | lease-expired | timed-out */
  reason: string;
}

export interface ErrorMessage {
  t: "error";
  code: string;
  message: string;
}

/** How many credits a `withdraw` took back: those the node had not used when it read it (0..n). */
export interface WithdrawnMessage {
  t: "withdrawn";
  n: number;
}

export type NodeMessage = WelcomeMessage | AssignMessage | AckMessage | StaleMessage | CancelMessage | DrainMessage | WithdrawnMessage | ErrorMessage;
