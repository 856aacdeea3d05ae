/**
 * The audit trail: who changed what. Every change a user asks of a job or an execution — put,
 * delete, pause, resume, trigger, backfill, cancel, replay — is one shard log record carrying its
 * principal (`by`); applying it yields one audit entry with the outcome. Like history, the trail is
 * derived from the replicated log on every replica (ShardState hands entries to its audit sink as
 * it applies them), so it is as durable as the changes themselves and no replica writes it twice.
 *
 * Refused changes that reached the log (a put whose If-Match lost a race, a pause of a completed
 * job) are entries too, with the error code as the outcome: the trail answers "who tried". Requests
 * refused before the log (malformed input, a missing role) change nothing and are not in it.
 */
import { CronwheelError } from "./errors.js";
import type { ListPosition } from "./list-order.js";
import type { Actor, ShardRecord } from "./records.js";

export const AUDIT_ACTIONS = ["job.put", "job.delete", "job.pause", "job.resume", "job.trigger", "job.backfill", "exec.cancel", "exec.replay"] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export interface AuditEntry {
  /** Shard time of the change (the record's time as applied). */
  at: number;
  tenant: string;
  action: AuditAction;
  jobId: string | null;
  executionId: string | null;
  /** Who asked; null for records written before the audit trail existed. */
  by: Actor | null;
  /** "ok", or the error code the change was refused with. */
  outcome: string;
  /** What the change was and did, per action (docs/api.md, "Audit trail"). */
  details: Record<string, unknown>;
}

/** An entry as a query returns it: `id` is unique in the cluster (`{shard}-{log index}`). */
export interface AuditRecord extends AuditEntry {
  id: string;
}

/** An entry's place in the trail's order (newest first, then id descending), as list-order.ts merges it. */
export function auditPosition(e: { at: number; id: string }): ListPosition {
  return { live: false, finishedAt: e.at, id: e.id };
}

export type AuditedRecord = Extract<ShardRecord, { type: AuditAction }>;

/**
 * Hears each audited change on every replica as it is applied, during replay too: the record, the
 * apply's answer and the time it took effect. The sink builds the entry (auditEntryOf) only if it
 * keeps it — a replay at start skips what history already holds without decoding a spec.
 */
export type AuditSink = (record: AuditedRecord, result: unknown, at: number) => void;

export function isAudited(record: ShardRecord): record is AuditedRecord {
  return (AUDIT_ACTIONS as readonly string[]).includes(record.type);
}

interface JobAnswer {
  job?: { version: number };
  created?: boolean;
}
interface ExecutionAnswer {
  execution?: { id: string; jobId: string | null };
  duplicateOf?: string;
  created?: boolean;
}

/** The entry for an audited record applied at `at` with `result` (ShardState.apply's answer). */
export function auditEntryOf(record: AuditedRecord, result: unknown, at: number): AuditEntry {
  const refused = result instanceof CronwheelError ? result : null;
  const entry: AuditEntry = {
    at,
    tenant: record.tenant,
    action: record.type,
    jobId: "jobId" in record ? record.jobId : null,
    executionId: null,
    by: record.by ?? null,
    outcome: refused ? refused.code : "ok",
    details: refused ? { message: refused.message } : {},
  };
  const job = (result ?? {}) as JobAnswer;
  const execution = (result ?? {}) as ExecutionAnswer;
  switch (record.type) {
    case "job.put":
      if (record.ifMatch !== null) entry.details.ifMatch = record.ifMatch;
      if (refused) break;
      entry.details.version = job.job?.version;
      entry.details.created = job.created;
      entry.details.spec = JSON.parse(record.specJson) as unknown;
      break;
    case "job.delete":
      entry.details.cancelRunning = record.cancelRunning;
      if (!refused) entry.details.version = job.job?.version;
      break;
    case "job.pause":
    case "job.resume":
      if (!refused) entry.details.version = job.job?.version;
      break;
    case "job.trigger":
      if (record.idempotencyKey !== null) entry.details.idempotencyKey = record.idempotencyKey;
      if (record.hasPayload) entry.details.payload = record.payload;
      if (refused) break;
      entry.executionId = execution.execution?.id ?? execution.duplicateOf ?? null;
      entry.details.created = execution.created;
      break;
    case "job.backfill":
      entry.details.from = new Date(record.fromMs).toISOString();
      entry.details.to = new Date(record.toMs).toISOString();
      if (!refused) Object.assign(entry.details, result);
      break;
    case "exec.cancel":
    case "exec.replay":
      // A job's execution belongs to its job's trail; a refused one's job is in its id.
      entry.executionId = record.executionId;
      entry.jobId = execution.execution?.jobId ?? jobOfId(record.executionId);
      if (record.type === "exec.replay" && !refused) entry.details.newExecutionId = record.newExecutionId;
      break;
  }
  return entry;
}

/** The job an execution id names (`{jobId}:{…}`); null for an ad-hoc id. */
function jobOfId(executionId: string): string | null {
  const colon = executionId.indexOf(":");
  return colon > 0 ? executionId.slice(0, colon) : null;
}
