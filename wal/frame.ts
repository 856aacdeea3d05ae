/**
 * The frame: the unit written to a segment file.
 *
 *   [u32 LE bodyBytes][u32 LE crc32c(body)][body]
 *   body = msgpack array of three: [index, epoch, record]
 *
 * The body is a plain msgpack array so any msgpack reader can decode it. We write the array
 * header and the two integers by hand and let msgpackr encode only the record: that saves one
 * array allocation per record on the hot path and lets recovery cheaply recognise a frame start
 * (the body always begins with 0x93, "fixarray of 3").
 *
 * Example: entry {index: 1, epoch: 7, record: "a"} is
 *   04 00 00 00 | crc(4 bytes) | 93 01 07 a1 61
 */

import type { Packr } from "msgpackr";
import { crc32c } from "./crc32c.js";

export const FRAME_HEADER_BYTES = 8;
/** Upper bound of one body; also makes a garbage length field recognisable. */
export const FRAME_BODY_BYTES_MAX = 64 * 1024 * 1024;
/** 0x93 + two 1-byte integers + a 1-byte record. */
export const FRAME_BODY_BYTES_MIN = 4;
const BODY_ARRAY3 = 0x93;
const TWO_POW_32 = 0x1_0000_0000;

export interface LogEntry {
  index: number;
  epoch: number;
  record: unknown;
  /**
   * The record as encoded in its frame (msgpack): set on entries read with `raw` and on those
   * still in memory, so replication ships bytes instead of re-encoding objects.
   */
  bytes?: Uint8Array;
}

/** Bytes msgpack uses for a non-negative safe integer. */
export function uintBytes(n: number): number {
  if (n < 0x80) return 1;
  if (n < 0x100) return 2;
  if (n < 0x1_0000) return 3;
  if (n < TWO_POW_32) return 5;
  return 9;
}

/** Writes a non-negative safe integer in msgpack (big-endian) form; returns the next position. */
export function writeUint(buf: Buffer, pos: number, n: number): number {
  if (n < 0x80) {
    buf[pos] = n;
    return pos + 1;
  }
  if (n < 0x100) {
    buf[pos] = 0xcc;
    buf[pos + 1] = n;
    return pos + 2;
  }
  if (n < 0x1_0000) {
    buf[pos] = 0xcd;
    buf.writeUInt16BE(n, pos + 1);
    return pos + 3;
  }
  if (n < TWO_POW_32) {
    buf[pos] = 0xce;
    buf.writeUInt32BE(n, pos + 1);
    return pos + 5;
  }
  buf[pos] = 0xcf;
  buf.writeUInt32BE(Math.floor(n / TWO_POW_32), pos + 1);
  buf.writeUInt32BE(n >>> 0, pos + 5);
  return pos + 9;
}

/** Frame size for an entry whose record encodes to `recordBytes` bytes. */
export function frameBytesFor(index: number, epoch: number, recordBytes: number): number {
  return FRAME_HEADER_BYTES + 1 + uintBytes(index) + uintBytes(epoch) + recordBytes;
}

/** Encodes one frame at `pos` (the caller made room); returns the position after it. */
export function writeFrame(buf: Buffer, pos: number, index: number, epoch: number, record: Uint8Array): number {
  let p = pos + FRAME_HEADER_BYTES;
  buf[p++] = BODY_ARRAY3;
  p = writeUint(buf, p, index);
  p = writeUint(buf, p, epoch);
  buf.set(record, p);
  p += record.length;
  const bodyStart = pos + FRAME_HEADER_BYTES;
  buf.writeUInt32LE(p - bodyStart, pos);
  buf.writeUInt32LE(crc32c(buf, bodyStart, p), pos + 4);
  return p;
}

export type FrameParse =
  | { ok: true; end: number; entry: LogEntry }
  /** `torn` is true when the bytes look like an interrupted write (bad length or checksum); false
   * when a checksummed body does not decode into an entry, which no torn write can produce. */
  | { ok: false; torn: boolean; reason: string };

/** Reads a msgpack non-negative integer written by `writeUint`; [value, next position], or null. */
function readUint(buf: Buffer, pos: number, end: number): [number, number] | null {
  if (pos >= end) return null;
  const tag = buf[pos]!;
  if (tag < 0x80) return [tag, pos + 1];
  const width = tag === 0xcc ? 1 : tag === 0xcd ? 2 : tag === 0xce ? 4 : tag === 0xcf ? 8 : 0;
  if (width === 0 || pos + 1 + width > end) return null;
  if (width === 8) return [buf.readUInt32BE(pos + 1) * TWO_POW_32 + buf.readUInt32BE(pos + 5), pos + 9];
  return [buf.readUIntBE(pos + 1, width), pos + 1 + width];
}

/**
 * Reads and verifies the frame starting at `off`. Never throws. A frame whose index is at most
 * `skipRecordsThrough` (covered by a snapshot) is checksummed but its record is not decoded:
 * recovery only needs its position, and decoding it would dominate a restart.
 */
export function parseFrameAt(buf: Buffer, off: number, packr: Packr, skipRecordsThrough = 0): FrameParse {
  if (buf.length - off < FRAME_HEADER_BYTES) {
    return { ok: false, torn: true, reason: `partial frame header (${buf.length - off} bytes)` };
  }
  const bodyBytes = buf.readUInt32LE(off);
  if (bodyBytes < FRAME_BODY_BYTES_MIN || bodyBytes > FRAME_BODY_BYTES_MAX) {
    return { ok: false, torn: true, reason: `bad frame length ${bodyBytes}` };
  }
  const bodyStart = off + FRAME_HEADER_BYTES;
  const end = bodyStart + bodyBytes;
  if (end > buf.length) {
    return { ok: false, torn: true, reason: `frame length ${bodyBytes} runs past the end of the file` };
  }
  const expectedCrc = buf.readUInt32LE(off + 4);
  if (crc32c(buf, bodyStart, end) !== expectedCrc) {
    return { ok: false, torn: true, reason: "checksum mismatch" };
  }
  if (skipRecordsThrough > 0 && buf[bodyStart] === BODY_ARRAY3) {
    const index = readUint(buf, bodyStart + 1, end);
    const epoch = index && readUint(buf, index[1], end);
    if (index && epoch && index[0] >= 1 && index[0] <= skipRecordsThrough) {
      return { ok: true, end, entry: { index: index[0], epoch: epoch[0], record: undefined } };
    }
  }
  let body: unknown;
  try {
    body = packr.unpack(buf.subarray(bodyStart, end));
  } catch (err) {
    return { ok: false, torn: false, reason: `undecodable body: ${(err as Error).message}` };
  }
  if (!Array.isArray(body) || body.length !== 3) {
    return { ok: false, torn: false, reason: "body is not [index, epoch, record]" };
  }
  const [index, epoch, record] = body as [unknown, unknown, unknown];
  if (!isLogPosition(index) || index < 1 || !isLogPosition(epoch)) {
    return { ok: false, torn: false, reason: "body has a bad index or epoch" };
  }
  return { ok: true, end, entry: { index, epoch, record } };
}

/**
 * The frame at `off` without decoding its record: index, epoch and the record's bytes (a view of
 * `buf`). For shipping entries to another replica, which stores the bytes as they are.
 */
export function parseFrameRaw(buf: Buffer, off: number): FrameParse {
  if (buf.length - off < FRAME_HEADER_BYTES) return { ok: false, torn: true, reason: "partial frame header" };
  const bodyBytes = buf.readUInt32LE(off);
  const bodyStart = off + FRAME_HEADER_BYTES;
  const end = bodyStart + bodyBytes;
  if (bodyBytes < FRAME_BODY_BYTES_MIN || bodyBytes > FRAME_BODY_BYTES_MAX || end > buf.length) {
    return { ok: false, torn: true, reason: `bad frame length ${bodyBytes}` };
  }
  if (crc32c(buf, bodyStart, end) !== buf.readUInt32LE(off + 4)) return { ok: false, torn: true, reason: "checksum mismatch" };
  const index = buf[bodyStart] === BODY_ARRAY3 ? readUint(buf, bodyStart + 1, end) : null;
  const epoch = index && readUint(buf, index[1], end);
  if (!index || !epoch || index[0] < 1) return { ok: false, torn: false, reason: "body does not start with [index, epoch" };
  return { ok: true, end, entry: { index: index[0], epoch: epoch[0], record: undefined, bytes: buf.subarray(epoch[1], end) } };
}

/**
 * True when a frame with a valid length and checksum starts anywhere in [from, end of buf).
 * Recovery uses it to tell a torn tail (nothing valid after the bad frame) from corruption in the
 * middle (acknowledged frames follow). Linear in practice: the 0x93 first-body-byte test rejects
 * almost every position before the checksum is computed.
 */
export function validFrameFollows(buf: Buffer, from: number): boolean {
  const last = buf.length - FRAME_HEADER_BYTES - FRAME_BODY_BYTES_MIN;
  for (let p = from; p <= last; p++) {
    if (buf[p + FRAME_HEADER_BYTES] !== BODY_ARRAY3) continue;
    const bodyBytes = buf.readUInt32LE(p);
    if (bodyBytes < FRAME_BODY_BYTES_MIN || bodyBytes > FRAME_BODY_BYTES_MAX) continue;
    const end = p + FRAME_HEADER_BYTES + bodyBytes;
    if (end > buf.length) continue;
    if (crc32c(buf, p + FRAME_HEADER_BYTES, end) === buf.readUInt32LE(p + 4)) return true;
  }
  return false;
}

export function isLogPosition(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}
