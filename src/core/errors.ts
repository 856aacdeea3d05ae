/**
 * Errors with stable codes. Callers switch on `code`, never on message text. The codes are the
 * contract's (docs/api.md): each maps to one HTTP status at the edge, in `src/api/http-errors.ts`.
 */

import { ERROR_CODES, type ErrorCode } from "../client/errors.js";

/** The contract's error codes (docs/api.md): one list, defined in the SDK (which carries no server code). */
export { ERROR_CODES, type ErrorCode };

export class CronwheelError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds a client should wait before retrying (429 and 503). */
  readonly retryAfterSec: number | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, retryAfterSec?: number) {
    super(message);
    this.name = "CronwheelError";
    this.code = code;
    this.details = details;
    this.retryAfterSec = retryAfterSec;
  }
}

export function invalidArgument(message: string, details?: Record<string, unknown>): CronwheelError {
  return new CronwheelError("invalid_argument", message, details);
}

export function notFound(message: string): CronwheelError {
  return new CronwheelError("not_found", message);
}

export function conflict(message: string, details?: Record<string, unknown>): CronwheelError {
  return new CronwheelError("conflict", message, details);
}
