/**
 * The history of a run: every client call, every worker event and every fault, one JSON object a
 * line (JSONL), each stamped with `t`, milliseconds on CLOCK_MONOTONIC (`process.hrtime`), which
 * every process on this host shares — so events from the client, the workers and the nemesis sit
 * on one exact timeline (docs/jepsen.md). Wall-clock times that nodes hand out (lease deadlines,
 * scheduled times) are converted with `wallToMono`, from an offset each recorder measures at start.
 *
 * The checker (checker.ts) reads only this: a run's history must be re-checkable offline.
 */
import fs from "node:fs";

/** Milliseconds on the host's monotonic clock (shared by every process on it). */
export function monoNow(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

// ---------------------------------------------------------------------------------------------
// client operations: invoke, then exactly one of ok / fail / info (Jepsen's meaning: info = the
// outcome is unknown — a timeout, a dropped connection, a 503 after the request may have landed)

export type ClientOp =
  | { op: "put-job"; jobId: string; spec: { queue: string; every?: string; cron?: string; leaseMs?: number } }
  | { op: "delete-job"; jobId: string }
  | { op: "pause-job"; jobId: string }
  | { op: "resume-job"; jobId: string }
  | { op: "enqueue"; queue: string; idempotencyKey?: string; orderingKey?: string; seq: number }
  | { op: "cancel"; executionId: string };

export interface InvokeEvent {
  type: "invoke";
  /** The client process/thread ("c0", "c1", …). */
  process: string;
  /** Unique per invocation; its completion carries the same id. */
  opId: number;
  t: number;
  call: ClientOp;
}

export interface CompleteEvent {
  type: "ok" | "fail" | "info";
  process: string;
  opId: number;
  t: number;
  /** ok: put-job → { version }; enqueue → { executionId, created }; cancel → { state }. */
  result?: Record<string, unknown>;
  /** fail / info: the contract's error code (or "network") and message. */
  error?: { code: string; message: string };
}

// ---------------------------------------------------------------------------------------------
// worker events (each worker process records its own; `worker` is its workerId)

export interface AssignedEvent {
  type: "assigned";
  worker: string;
  executionId: string;
  attempt: number;
  fence: number;
  /** The node that sent the assignment. */
  node: string;
  jobId?: string;
  orderingKey?: string;
  scheduledAtMono: number;
  leaseDeadlineMono: number;
  t: number;
}

/** An acked heartbeat: the lease now runs to `leaseDeadlineMono`. */
export interface LeaseExtendedEvent {
  type: "lease-extended";
  worker: string;
  executionId: string;
  fence: number;
  leaseDeadlineMono: number;
  t: number;
}

/** The handler's side effect, recorded by the sink (the stand-in for the external world). */
export interface SinkWriteEvent {
  type: "sink-write";
  worker: string;
  executionId: string;
  attempt: number;
  fence: number;
  t: number;
}

export interface ReportSentEvent {
  type: "report-sent";
  worker: string;
  executionId: string;
  fence: number;
  kind: "succeeded" | "failed";
  t: number;
}

/** The node's answer to a final report: `ack` (it changed the state) or `stale` (it changed nothing). */
export interface ReportAnsweredEvent {
  type: "report-answered";
  worker: string;
  executionId: string;
  fence: number;
  kind: "succeeded" | "failed";
  answer: "ack" | "stale";
  t: number;
}

/** The worker's handler was aborted: canceled, lease lost, shutdown. */
export interface AbortedEvent {
  type: "aborted";
  worker: string;
  executionId: string;
  fence: number;
  reason: string;
  t: number;
}

/**
 * The harness worker's liveness rule (the SDK's, with shorter intervals): it pings every
 * LIVENESS_PING_MS and drops a connection on which nothing was heard for LIVENESS_PINGS of them.
 */
export const LIVENESS_PING_MS = 1000;
export const LIVENESS_PINGS = 3;

/** A worker's connection to a node opened, closed, or was dropped by the worker (nothing heard: half-open). */
export interface LinkEvent {
  type: "link";
  worker: string;
  node: string;
  action: "open" | "closed" | "dropped";
  reason?: string;
  t: number;
}

// ---------------------------------------------------------------------------------------------
// faults and the final read

export interface NemesisEvent {
  type: "nemesis";
  action: "start" | "stop";
  fault: string;
  /** Node ids (or "etcd", a worker id) the fault hit. */
  targets: string[];
  /** What exactly was done, when the fault has a size (a clock skew's offset). */
  detail?: string;
  t: number;
}

/** What the healed cluster holds at the end: the jobs and the executions the client can see. */
export interface FinalReadEvent {
  type: "final-read";
  t: number;
  jobs: Array<{ id: string; state: string; version: number; nextFireAtMono?: number }>;
  executions: Array<{
    id: string;
    jobId?: string;
    queue: string;
    state: string;
    attempt: number;
    orderingKey?: string;
    idempotencyKey?: string;
    scheduledAtMono: number;
  }>;
}

export type HistoryEvent =
  | InvokeEvent
  | CompleteEvent
  | AssignedEvent
  | LeaseExtendedEvent
  | SinkWriteEvent
  | ReportSentEvent
  | ReportAnsweredEvent
  | AbortedEvent
  | LinkEvent
  | NemesisEvent
  | FinalReadEvent;

/** Appends events to a JSONL file (synchronously: a process killed by the nemesis loses nothing it recorded). */
export class HistoryWriter {
  private readonly fd: number;
  /** wall ms − monotonic ms, measured once: converts times the nodes hand out. */
  readonly wallMinusMono: number;

  constructor(file: string) {
    this.fd = fs.openSync(file, "a");
    this.wallMinusMono = Date.now() - monoNow();
  }

  wallToMono(wallMs: number): number {
    return wallMs - this.wallMinusMono;
  }

  record(event: HistoryEvent): void {
    fs.writeSync(this.fd, `${JSON.stringify(event)}\n`);
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}

/** Every event of every JSONL file, ordered by time (ties keep file order). */
export function readHistory(files: string[]): HistoryEvent[] {
  const events: HistoryEvent[] = [];
  for (const file of files) {
    for (const line of fs.readFileSync(file, "utf8").split("\n")) {
      if (line.trim() === "") continue;
      try {
        events.push(JSON.parse(line) as HistoryEvent);
      } catch {
        // A process killed mid-line leaves a torn last line; what it recorded before counts.
      }
    }
  }
  return events.map((e, i) => [e, i] as const).sort((a, b) => a[0].t - b[0].t || a[1] - b[1]).map(([e]) => e);
}
