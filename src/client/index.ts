/**
 * Cronwheel's TypeScript SDK.
 *
 *   import { Client, CronwheelApiError } from "<this module>";   // dist/src/client/index.js
 *   (a package.json "exports" entry for it is the lead's to add)
 *
 * - HTTP: `Client` (client.ts) — jobs, executions, dead letters, cluster, health; one node URL or several.
 * - Workers: `Worker` (worker.ts) — runs handlers for executions, connected to every shard leader.
 * - Errors: `CronwheelApiError` (errors.ts) — one error type with the contract's `code`.
 * - Types: the wire shapes (types.ts).
 */
export { Client, wireTime, DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_BASE_DELAY_MS, DEFAULT_RETRY_MAX_DELAY_MS, DEFAULT_TIMEOUT_MS } from "./client.js";
export type { ClientOptions, ClientRetryOptions } from "./client.js";
export { CronwheelApiError, ERROR_CODES, codeForStatus, isErrorCode } from "./errors.js";
export type { CronwheelApiErrorOptions, ErrorCode } from "./errors.js";
export type { LogLine, LogLevel } from "./protocol.js";
export { jobToInput } from "./types.js";
export type * from "./types.js";

// --- Worker (WebSocket protocol) -----------------------------------------------------------
export { Worker, NonRetryableError, ExecutionAbortedError, MalformedFrameError, DEFAULT_CONCURRENCY, DEFAULT_RECONNECT_INITIAL_MS, DEFAULT_RECONNECT_MAX_MS, DEFAULT_CLUSTER_REFRESH_MS } from "./worker.js";
export type { WorkerOptions, ExecutionContext, WorkerLogger, WorkerConnectionInfo, CompletedOutcome, SerializedError } from "./worker.js";
