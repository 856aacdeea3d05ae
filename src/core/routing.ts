/**
 * Where a key lives. The key space is 2^16 slots; a shard owns a contiguous range of slots
 * (`[lo, hi]`), so shards can later move between nodes without rehashing anything.
 *
 * - a job, and every execution of it, lives at slot(tenant/jobId);
 * - an ad-hoc execution lives at slot(tenant/ordering/{orderingKey}) when it has an ordering key
 *   (one shard keeps the order), else slot(tenant/idempotency/{idempotencyKey}) (one shard
 *   dedupes), else anywhere (enqueueSlot in src/node/node.ts); its id
 *   carries the slot (`x` + 4 hex digits + unique part), so reads find it without a directory.
 */
import { hash32, mix32 } from "./hash.js";

export const SLOT_COUNT = 65_536;

export function slotOf(tenant: string, key: string): number {
  return mix32(hash32(`${tenant}/${key}`)) & (SLOT_COUNT - 1);
}

/** The slot ranges of `shardCount` equal shards: shard i owns [lo, hi]. */
export function shardRanges(shardCount: number): Array<[number, number]> {
  if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 4096) {
    throw new Error(`shard count must be an integer in 1..4096, got ${shardCount}`);
  }
  const ranges: Array<[number, number]> = [];
  for (let i = 0; i < shardCount; i++) {
    ranges.push([Math.floor((i * SLOT_COUNT) / shardCount), Math.floor(((i + 1) * SLOT_COUNT) / shardCount) - 1]);
  }
  return ranges;
}

const AD_HOC_PREFIX = "x";
/** The prefix and the 4 hex digits of the slot. */
const AD_HOC_HEAD = 5;

/** An ad-hoc execution id that routes to `slot`. `unique` must be unique within the slot's shard. */
export function adHocExecutionId(slot: number, unique: string): string {
  return `${AD_HOC_PREFIX}${slot.toString(16).padStart(4, "0")}${unique}`;
}

/**
 * History order, oldest first: by creation time, then, within one millisecond, by the order the
 * ids were made. An ad-hoc id's slot prefix is a hash, so it is skipped: the unique part after it
 * starts with the creating node's time and counter. Ids that tie on that fall back to the whole id,
 * so the order is total (cursors need that).
 */
export function compareCreationOrder(aAt: number, aId: string, bAt: number, bId: string): number {
  if (aAt !== bAt) return aAt - bAt;
  const a = creationKey(aId);
  const b = creationKey(bId);
  if (a !== b) return a < b ? -1 : 1;
  return aId < bId ? -1 : aId > bId ? 1 : 0;
}

function creationKey(executionId: string): string {
  return isAdHocId(executionId) ? executionId.slice(AD_HOC_HEAD) : executionId;
}

function isAdHocId(executionId: string): boolean {
  return adHocSlot(executionId) !== null;
}

/**
 * The slot an ad-hoc id carries, or null when it is not one. Read char by char: every worker
 * report is routed through this, and a slice and a regex per report were garbage.
 */
function adHocSlot(executionId: string): number | null {
  if (executionId.length <= AD_HOC_HEAD || !executionId.startsWith(AD_HOC_PREFIX) || executionId.includes(":")) return null;
  let slot = 0;
  for (let i = 1; i < AD_HOC_HEAD; i++) {
    const c = executionId.charCodeAt(i);
    const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : -1; // 0-9, a-f
    if (digit < 0) return null;
    slot = slot * 16 + digit;
  }
  return slot;
}

/**
 * The slot of an execution id: ad-hoc ids carry it; job executions (`{jobId}:{…}`) live with
 * their job. Job ids cannot contain ':' and cannot start with 'x' followed by 4 hex digits and
 * no ':' — ad-hoc ids never contain ':'. Returns null for an id that is neither.
 */
export function slotOfExecution(tenant: string, executionId: string): number | null {
  const colon = executionId.indexOf(":");
  if (colon > 0) return slotOf(tenant, executionId.slice(0, colon));
  return adHocSlot(executionId);
}
