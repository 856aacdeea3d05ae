/**
 * The worker protocol, version 1: WebSocket `/v1/workers`, binary frames. Every frame is one
 * msgpack-encoded ARRAY of messages (a batch; often of one). Messages are objects with a `t`
 * field. Both sides ignore unknown fields; an unknown `t` or a malformed frame closes the
 * connection with an `error` message (code `invalid_argument`) and nothing else is affected.
 *
 * Every report carries the execution id and the fence from its `assign`; a report with a stale
 * fence changes nothing and is answered `stale`. Times are milliseconds since the epoch.
 *
 * The messages themselves (and the table of who sends what) are defined once, in the SDK's
 * src/client/protocol.ts, which carries no server code; the gateway speaks exactly those.
 */

export * from "../client/protocol.js";
