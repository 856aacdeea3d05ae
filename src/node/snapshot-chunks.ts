/**
 * Encoding a shard snapshot without stalling the node: the big arrays (jobs, executions) are
 * packed in chunks, with the event loop free between chunks, and stored as msgpack byte strings
 * inside the snapshot; the WAL then writes a small object. The capture itself (toSnapshot) stays
 * synchronous — it is what makes the snapshot exactly the state at its log index.
 */
import { Packr } from "msgpackr";
import type { ExecutionSnapshot, JobSnapshot, ShardSnapshot } from "../core/shard-state.js";

/** Tuples per chunk: ~5–10 ms of encoding each on this machine. */
const SNAPSHOT_CHUNK_ITEMS = 5_000;

const packr = new Packr({ useRecords: false });

export interface ChunkedShardSnapshot extends Omit<ShardSnapshot, "jobs" | "executions"> {
  jobChunks: Uint8Array[];
  executionChunks: Uint8Array[];
}

async function packInChunks<T>(items: T[]): Promise<Uint8Array[]> {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < items.length; i += SNAPSHOT_CHUNK_ITEMS) {
    chunks.push(packr.pack(items.slice(i, i + SNAPSHOT_CHUNK_ITEMS)));
    await new Promise((resolve) => setImmediate(resolve));
  }
  return chunks;
}

export async function encodeSnapshotChunks(snapshot: ShardSnapshot): Promise<ChunkedShardSnapshot> {
  const { jobs, executions, ...rest } = snapshot;
  return { ...rest, jobChunks: await packInChunks(jobs), executionChunks: await packInChunks(executions) };
}

/** The stored snapshot back as a ShardSnapshot (a snapshot written whole is returned as it is). */
export function decodeSnapshotChunks(stored: ShardSnapshot | ChunkedShardSnapshot): ShardSnapshot {
  if (!("jobChunks" in stored)) return stored;
  const { jobChunks, executionChunks, ...rest } = stored;
  const unpackAll = <T>(chunks: Uint8Array[]): T[] => chunks.flatMap((c) => packr.unpack(c) as T[]);
  return { ...rest, jobs: unpackAll<JobSnapshot>(jobChunks), executions: unpackAll<ExecutionSnapshot>(executionChunks) };
}
