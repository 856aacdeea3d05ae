/**
 * The worker protocol, version 1: WebSocket `/v1/workers`, binary frames. Every frame is one
 * msgpack-encoded ARRAY of messages (a batch; often of one). Messages are objects with a `t`
 * field. Both sides ignore unknown fields; an unknown `t` or a malformed frame closes the
 * connection with an `error` message (code `invalid_argument`) and nothing else is affected.
 *
 * Worker → node                      Node → worker
 *   hello   (first message)            welcome (answer to hello)
 *   credit  (can take n more)          assign  (one execution to run)
 *   started, heartbeat,                ack     (report accepted; heartbeat: new lease deadline)
 *   succeeded, failed  (reports)       stale   (fence no longer valid: stop and drop the work)
 *   drain   (take no more work)        cancel  (execution canceled / lease lost: abort it)
 *                                      drain   (node stops assigning; finish in-flight work)
 *                                      error   (fatal for this connection; then it closes)
 *
 * Every report carries the execution id and the fence from its `assign`; a report with a stale
 * fence changes nothing and is answered `stale`. Times are milliseconds since the epoch.
 *
 * The message shapes are defined once, in the SDK (which carries no server code); the gateway
 * speaks exactly those.
 */

export * from "../client/protocol.js";
