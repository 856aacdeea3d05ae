/**
 * Snapshots: the whole shard state at one log index, so the segments it covers can be deleted.
 *
 * File layout (one file per snapshot, named by its index, see files.ts):
 *
 *   offset  0  8 bytes  magic "CWSNAP01"
 *   offset  8  u64 LE   index   (last log index folded into the state)
 *   offset 16  u64 LE   epoch   (epoch of that entry)
 *   offset 24  u64 LE   bodyBytes
 *   offset 32  u32 LE   crc32c(body)
 *   offset 36  u32 LE   crc32c(bytes 0..35)
 *   offset 40  body = msgpackr encoding of the state
 *
 * The state can be large (a million jobs), so it is encoded with msgpackr "records": repeated
 * object shapes are written once and referenced, which measured about 2x smaller and 1.6x faster
 * (both ways) than plain msgpack maps for job-like objects. A fresh Packr per snapshot keeps
 * every file self-contained (no structures shared across files).
 *
 * Atomic replace: write "snapshot.tmp", fsync it, rename to the final name, fsync the directory.
 * A crash leaves either the old snapshot or the new one, never a half-written file under a
 * snapshot name.
 */

import { promises as fsp } from "node:fs";
import path from "node:path";
import { Packr } from "msgpackr";
import { crc32c } from "./crc32c.js";
import { WalCorruptionError } from "./errors.js";
import { fsyncDir, SNAPSHOT_TMP_NAME, snapshotFileName, writeAll } from "./files.js";

export interface Snapshot {
  index: number;
  epoch: number;
  state: unknown;
}

const MAGIC = Buffer.from("CWSNAP01", "ascii");
const SNAPSHOT_HEADER_BYTES = 40;

export interface EncodedSnapshot {
  index: number;
  epoch: number;
  header: Buffer;
  body: Uint8Array;
}

export function encodeSnapshot(index: number, epoch: number, state: unknown): EncodedSnapshot {
  const body = new Packr({ useRecords: true }).pack(state);
  const header = Buffer.alloc(SNAPSHOT_HEADER_BYTES);
  MAGIC.copy(header, 0);
  header.writeBigUInt64LE(BigInt(index), 8);
  header.writeBigUInt64LE(BigInt(epoch), 16);
  header.writeBigUInt64LE(BigInt(body.length), 24);
  header.writeUInt32LE(crc32c(body), 32);
  header.writeUInt32LE(crc32c(header, 0, 36), 36);
  return { index, epoch, header, body };
}

/** Durably installs the snapshot file (tmp + fsync + rename + fsync dir); returns its path. */
export async function writeSnapshotFile(dir: string, snap: EncodedSnapshot): Promise<string> {
  const tmp = path.join(dir, SNAPSHOT_TMP_NAME);
  const final = path.join(dir, snapshotFileName(snap.index));
  const h = await fsp.open(tmp, "w");
  try {
    await writeAll(h, [snap.header, snap.body]);
    await h.sync();
  } finally {
    await h.close();
  }
  await fsp.rename(tmp, final);
  await fsyncDir(dir);
  return final;
}

/** Reads and verifies a snapshot file; any defect is a WalCorruptionError. */
export async function readSnapshotFile(file: string, expectedIndex: number): Promise<Snapshot> {
  return parseSnapshot(await fsp.readFile(file), file, expectedIndex, true);
}

/**
 * Verifies a snapshot file's bytes (header, both checksums) and returns its position; the state
 * is decoded only with `decode` (a checker that wants the position alone skips the cost).
 */
export function parseSnapshot(buf: Buffer, file: string, expectedIndex: number, decode: boolean): Snapshot {
  const fail = (offset: number, reason: string): never => {
    throw new WalCorruptionError(file, offset, `snapshot: ${reason}`);
  };
  if (buf.length < SNAPSHOT_HEADER_BYTES) fail(0, `file is ${buf.length} bytes, shorter than its header`);
  if (!buf.subarray(0, 8).equals(MAGIC)) fail(0, "bad magic");
  if (crc32c(buf, 0, 36) !== buf.readUInt32LE(36)) fail(0, "header checksum mismatch");
  const index = Number(buf.readBigUInt64LE(8));
  const epoch = Number(buf.readBigUInt64LE(16));
  const bodyBytes = Number(buf.readBigUInt64LE(24));
  if (index !== expectedIndex) fail(8, `header index ${index} does not match file name index ${expectedIndex}`);
  if (bodyBytes !== buf.length - SNAPSHOT_HEADER_BYTES) {
    fail(24, `body length ${bodyBytes} does not match file length ${buf.length}`);
  }
  if (crc32c(buf, SNAPSHOT_HEADER_BYTES) !== buf.readUInt32LE(32)) fail(SNAPSHOT_HEADER_BYTES, "body checksum mismatch");
  if (!decode) return { index, epoch, state: undefined };
  let state: unknown;
  try {
    state = new Packr({ useRecords: true, copyBuffers: true }).unpack(buf.subarray(SNAPSHOT_HEADER_BYTES));
  } catch (err) {
    fail(SNAPSHOT_HEADER_BYTES, `undecodable body: ${(err as Error).message}`);
  }
  return { index, epoch, state };
}
