/**
 * The one error type the SDK throws. Callers switch on `code` (the contract's error codes), never
 * on message text.
 *
 *   - An HTTP error answer: `code`, `message` and `details` from the server's body
 *     `{ error: { code, message, details? } }`, `status` the HTTP status, `retryAfterSec` from
 *     `Retry-After` (429 and 503). A body that is not the contract's (a proxy's HTML page, say) is
 *     mapped by status: 400 invalid_argument, 401 unauthenticated, 403 permission_denied,
 *     404 not_found, 409 conflict, 413 payload_too_large, 429 resource_exhausted,
 *     502/503/504 unavailable, anything else internal.
 *   - No answer at all (connection refused or reset, DNS failure, the client's timeout): code
 *     `unavailable`, `status` 0, the underlying error as `cause`.
 *   - Input the SDK can tell is wrong before sending (an invalid `Date`): code `invalid_argument`,
 *     `status` 0.
 */

/**
 * The contract's error codes (docs/api.md, "Errors"): the one list. It lives in the SDK, which
 * carries no server code; the server's src/core/errors.ts re-exports it, and src/api/http-errors.ts
 * maps each code to its HTTP status.
 */
export const ERROR_CODES = [
  "invalid_argument",
  "unauthenticated",
  "permission_denied",
  "not_found",
  "conflict",
  "payload_too_large",
  "resource_exhausted",
  "unavailable",
  "internal",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface CronwheelApiErrorOptions {
  status?: number;
  details?: Record<string, unknown>;
  retryAfterSec?: number;
  /** How many HTTP attempts the request made before this error (1 without retries). */
  attempts?: number;
  cause?: unknown;
}

export class CronwheelApiError extends Error {
  readonly code: ErrorCode;
  /** The HTTP status; 0 when there was no HTTP answer (network error, timeout, local check). */
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;
  /** Seconds the server asked the client to wait (`Retry-After`), when it did. */
  readonly retryAfterSec: number | undefined;
  /** HTTP attempts made, retries included. */
  readonly attempts: number;

  constructor(code: ErrorCode, message: string, options: CronwheelApiErrorOptions = {}) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "CronwheelApiError";
    this.code = code;
    this.status = options.status ?? 0;
    this.details = options.details;
    this.retryAfterSec = options.retryAfterSec;
    this.attempts = options.attempts ?? 1;
  }

  /** A copy that records the number of attempts the request made. */
  withAttempts(attempts: number): CronwheelApiError {
    return new CronwheelApiError(this.code, this.message, {
      status: this.status,
      details: this.details,
      retryAfterSec: this.retryAfterSec,
      attempts,
      cause: this.cause,
    });
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && (ERROR_CODES as readonly string[]).includes(value);
}

/** The code for an HTTP status when the body does not name one. */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return "invalid_argument";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
      return "not_found";
    case 409:
      return "conflict";
    case 413:
      return "payload_too_large";
    case 429:
      return "resource_exhausted";
    case 502:
    case 503:
    case 504:
      return "unavailable";
    default:
      return "internal";
  }
}

/**
 * The error for an HTTP answer: the contract's body when it is one, else a code from the status.
 * `body` is the parsed JSON (or the raw text when it was not JSON).
 */
export function errorFromResponse(status: number, body: unknown, retryAfterSec: number | undefined): CronwheelApiError {
  const e = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  if (e && typeof e === "object" && isErrorCode(e.code)) {
    return new CronwheelApiError(e.code, typeof e.message === "string" ? e.message : e.code, {
      status,
      details: typeof e.details === "object" && e.details !== null ? (e.details as Record<string, unknown>) : undefined,
      retryAfterSec,
    });
  }
  const text = typeof body === "string" ? body.trim().slice(0, 200) : "";
  return new CronwheelApiError(codeForStatus(status), `HTTP ${status}${text ? `: ${text}` : ""}`, { status, retryAfterSec });
}
