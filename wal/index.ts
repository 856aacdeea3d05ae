/**
 * Cronwheel write-ahead log: the public API. See wal.ts for the design and the driver order
 * (append -> flush -> durable -> caller applies), recovery.ts for the recovery rules, frame.ts
 * and snapshot.ts for the on-disk formats.
 */

export {
  Wal,
  type FsyncMode,
  type WalOptions,
  type WalStats,
  SEGMENT_BYTES_MAX_DEFAULT,
  BATCH_BYTES_MAX_DEFAULT,
  PENDING_BYTES_MAX_DEFAULT,
} from "./wal.js";
export type { LogEntry } from "./frame.js";
export type { Snapshot } from "./snapshot.js";
export type { RecoveryReport, WalLogger } from "./recovery.js";
export { WalCorruptionError, WalError, walAssert, type WalErrorCode } from "./errors.js";
export { crc32c } from "./crc32c.js";
