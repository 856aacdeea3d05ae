/** The one place that maps error codes to HTTP statuses and renders the contract's error body. */
import { CronwheelError, type ErrorCode } from "../core/errors.js";

export const STATUS_OF: Record<ErrorCode, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  permission_denied: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  resource_exhausted: 429,
  unavailable: 503,
  internal: 500,
};

export const STATUS_TEXT: Record<number, string> = {
  200: "200 OK",
  201: "201 Created",
  204: "204 No Content",
  400: "400 Bad Request",
  401: "401 Unauthorized",
  403: "403 Forbidden",
  404: "404 Not Found",
  405: "405 Method Not Allowed",
  409: "409 Conflict",
  413: "413 Payload Too Large",
  429: "429 Too Many Requests",
  500: "500 Internal Server Error",
  503: "503 Service Unavailable",
};

export function errorBody(error: CronwheelError): { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } {
  return {
    error: {
      code: error.code,
      message: error.message,
      ...(error.details !== undefined ? { details: error.details } : {}),
    },
  };
}
