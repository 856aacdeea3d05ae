/**
 * Errors of the WAL. Callers switch on `code`, never on message text.
 *
 * - WalCorruptionError (`WAL_CORRUPT`): bytes on disk are not what the WAL wrote: a bad checksum
 *   or length in the middle of the log, a gap in indexes, an unreadable snapshot. It names the file
 *   and the byte offset so an operator can inspect it (and decide on `repair: true`).
 * - WalError: everything else, with a stable code (below).
 * - walAssert: invariants that are on in production; a failure means a bug in the WAL or its
 *   caller, and crashing is safer than writing a log we cannot trust.
 */

export type WalErrorCode =
  | "WAL_BAD_ARGUMENT" // the caller broke a precondition (index, epoch, option)
  | "WAL_COMPACTED" // the requested entries were folded into a snapshot; ship the snapshot instead
  | "WAL_BUSY" // a snapshot is already being saved
  | "WAL_BACKPRESSURE" // too many appended bytes wait for a flush (pendingBytesMax)
  | "WAL_CLOSED" // the log was closed
  | "WAL_FAILED" // a write or fsync failed; the on-disk state is unknown, reopen to recover
  | "WAL_INVARIANT"; // an internal invariant was violated (bug)

export class WalError extends Error {
  readonly code: WalErrorCode;

  constructor(code: WalErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "WalError";
    this.code = code;
  }
}

export class WalCorruptionError extends Error {
  readonly code = "WAL_CORRUPT" as const;
  readonly file: string;
  readonly offset: number;
  readonly reason: string;

  constructor(file: string, offset: number, reason: string) {
    super(`WAL corruption in ${file} at byte offset ${offset}: ${reason}`);
    this.name = "WalCorruptionError";
    this.file = file;
    this.offset = offset;
    this.reason = reason;
  }
}

export function walAssert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new WalError("WAL_INVARIANT", `WAL invariant violated: ${message}`);
}
