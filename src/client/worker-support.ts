/**
 * Pure helpers of the worker SDK (worker.ts): reading the node's frames, serializing a handler's
 * error, the reconnect backoff, the WebSocket URL. No sockets, no timers, no clock reads.
 *
 *   decodeFrame(pack([{ t: "welcome", nodeId: "n1", protocol: 1 }]))  // → [{ t: "welcome", … }]
 *   decodeFrame(pack({ t: "welcome" }))                               // throws MalformedFrameError
 *   reconnectDelayMs(3, { initialMs: 100, maxMs: 10_000 }, 0.5)       // cap 400 ms → 300 ms
 *   workerUrl("https://cw.example.com:7070")                          // "wss://cw.example.com:7070/v1/workers"
 *   httpBase("ws://10.0.0.5:7070/v1/workers")                         // "http://10.0.0.5:7070"
 *   leaderTargets(view, "http://10.0.0.5:7070")                       // the leader nodes' worker URLs
 */
import { unpack } from "msgpackr";
import { WORKER_PATH, type NodeMessage, type ReportMessage } from "./protocol.js";

/** A frame from the node that is not the protocol: the worker logs it and reconnects. */
export class MalformedFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MalformedFrameError";
  }
}

/** Longest `message` and `stack` of a serialized handler error (characters): errors are stored. */
export const ERROR_MESSAGE_CHARS_MAX = 4 * 1024;
export const ERROR_STACK_CHARS_MAX = 16 * 1024;

/** How a thrown value travels in a `failed` report: `{ message, name, stack? }`. */
export interface SerializedError {
  message: string;
  name: string;
  stack?: string;
}

export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const out: SerializedError = { message: clip(String(error.message), ERROR_MESSAGE_CHARS_MAX), name: clip(String(error.name || "Error"), 200) };
    if (typeof error.stack === "string") out.stack = clip(error.stack, ERROR_STACK_CHARS_MAX);
    return out;
  }
  let message: string;
  try {
    message = typeof error === "string" ? error : JSON.stringify(error) ?? String(error);
  } catch {
    message = String(error);
  }
  return { message: clip(message, ERROR_MESSAGE_CHARS_MAX), name: "Error" };
}

function clip(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/**
 * A handler's result (or a heartbeat's progress) as the JSON the node stores and the HTTP API
 * returns: `toJsonValue({ at: new Date(0) })` → `{ at: "1970-01-01T00:00:00.000Z" }`. `undefined`
 * (and a function) → undefined, i.e. no value. A BigInt or a cycle cannot be JSON: throws TypeError.
 */
export function toJsonValue(value: unknown): unknown {
  if (value === undefined) return undefined;
  // Most handlers return nothing or a primitive: those need no round trip through a string.
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  const text = JSON.stringify(value);
  return text === undefined ? undefined : JSON.parse(text);
}

/**
 * Delay before reconnect attempt `attempt` (1-based): capped exponential with "equal jitter" —
 * half the cap fixed, half random — so a fleet that lost one node does not come back in lockstep,
 * and no delay is ever 0. `random` is in [0, 1).
 */
export function reconnectDelayMs(attempt: number, opts: { initialMs: number; maxMs: number }, random: number): number {
  const exp = Math.min(30, Math.max(0, attempt - 1));
  const cap = Math.min(opts.maxMs, opts.initialMs * 2 ** exp);
  return Math.round(cap / 2 + random * (cap / 2));
}

/** The node's worker endpoint from its HTTP base URL (`http` → `ws`, `https` → `wss`). */
export function workerUrl(base: string): string {
  const u = new URL(base);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  else if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new TypeError(`url must be http(s):// or ws(s)://, got '${base}'`);
  if (!u.pathname.endsWith(WORKER_PATH)) u.pathname = u.pathname.replace(/\/+$/, "") + WORKER_PATH;
  u.search = "";
  u.hash = "";
  return u.toString();
}

const REPORT_TYPES: ReadonlySet<string> = new Set<ReportMessage["t"]>(["started", "heartbeat", "succeeded", "failed"]);

/**
 * One binary frame from the node → its messages, each checked for the fields the worker relies
 * on (unknown fields are ignored, as the protocol says). Anything else throws MalformedFrameError.
 */
export function decodeFrame(data: Buffer): NodeMessage[] {
  let decoded: unknown;
  try {
    decoded = unpack(data);
  } catch (error) {
    throw new MalformedFrameError(`frame is not msgpack: ${(error as Error).message}`);
  }
  if (!Array.isArray(decoded)) throw new MalformedFrameError("a frame is an array of messages");
  for (let i = 0; i < decoded.length; i++) checkMessage(decoded[i], i);
  return decoded as NodeMessage[];
}

// Module-level, not per message: a frame brings hundreds of messages and each closure is garbage.
const isInt = (v: unknown): boolean => Number.isSafeInteger(v);
const isTime = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v);
const isStr = (v: unknown): boolean => typeof v === "string";

function refuse(i: number, o: Record<string, unknown>, what: string): never {
  throw new MalformedFrameError(`message ${i} (${String(o.t)}): ${what}`);
}

function checkMessage(m: unknown, i: number): void {
  if (typeof m !== "object" || m === null || typeof (m as { t?: unknown }).t !== "string") throw new MalformedFrameError(`message ${i}: an object with a string field t`);
  const o = m as Record<string, unknown>;
  switch (o.t) {
    case "welcome":
      if (!(isStr(o.nodeId) && isInt(o.protocol))) refuse(i, o, "nodeId (string) and protocol (integer)");
      break;
    case "assign":
      if (!(isStr(o.id) && isInt(o.attempt) && isInt(o.fence) && isStr(o.queue))) refuse(i, o, "id, attempt, fence, queue");
      if (!(isTime(o.scheduledAt) && isTime(o.leaseDeadline) && isTime(o.timeoutAt))) refuse(i, o, "scheduledAt, leaseDeadline, timeoutAt (ms)");
      if (!(typeof o.leaseMs === "number" && o.leaseMs > 0 && Number.isFinite(o.leaseMs))) refuse(i, o, "leaseMs > 0");
      if (!(o.jobId === undefined || o.jobId === null || isStr(o.jobId))) refuse(i, o, "jobId a string");
      break;
    case "ack":
      if (!(isStr(o.id) && isInt(o.fence) && REPORT_TYPES.has(o.of as string))) refuse(i, o, "id, fence, of (a report type)");
      if (!(o.leaseDeadline === undefined || o.leaseDeadline === null || isTime(o.leaseDeadline))) refuse(i, o, "leaseDeadline (ms)");
      break;
    case "stale":
      if (!(isStr(o.id) && isInt(o.fence) && REPORT_TYPES.has(o.of as string))) refuse(i, o, "id, fence, of (a report type)");
      break;
    case "cancel":
      if (!(isStr(o.id) && isInt(o.fence))) refuse(i, o, "id and fence");
      if (!(o.reason === undefined || isStr(o.reason))) refuse(i, o, "reason a string");
      break;
    case "withdrawn":
      if (!(isInt(o.n) && (o.n as number) >= 0)) refuse(i, o, "n (a non-negative integer)");
      break;
    case "drain":
      break;
    case "error":
      if (!(isStr(o.code) && isStr(o.message))) refuse(i, o, "code and message");
      break;
    default:
      throw new MalformedFrameError(`message ${i}: unknown type '${String(o.t)}'`);
  }
}

/** The HTTP base URL for a configured worker URL (`ws` → `http`, `wss` → `https`, `/v1/workers` dropped). */
export function httpBase(url: string): string {
  const u = new URL(url);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  else if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError(`url must be http(s):// or ws(s)://, got '${url}'`);
  if (u.pathname.endsWith(WORKER_PATH)) u.pathname = u.pathname.slice(0, -WORKER_PATH.length);
  u.search = "";
  u.hash = "";
  return u.toString().replace(/\/+$/, "");
}

/** One node the worker should hold a connection to. */
export interface WorkerTarget {
  /** The node's worker endpoint, ws(s)://…/v1/workers. */
  url: string;
  nodeId: string;
}

export interface LeaderTargets {
  /** One per node that leads at least one shard, in the order the shards name them. */
  targets: WorkerTarget[];
  /** Leaders that cannot be connected to (no such node, an address that cannot be dialed). */
  problems: string[];
}

/**
 * The worker endpoints of the nodes that lead at least one shard, from a `GET /v1/cluster` answer
 * (`view`) that `answeredBase` (an http(s) base URL) gave. A node's `address` is "host:port",
 * dialed with the scheme of `answeredBase`. The URL that answered is used instead of the address
 * when it reaches that node for sure: the view has a single node (the one that answered), or the
 * address is the answering URL's own host:port — so a standalone server behind a proxy, or one
 * that advertises an address the worker cannot dial, still works. null: not a cluster view.
 */
export function leaderTargets(view: unknown, answeredBase: string): LeaderTargets | null {
  if (typeof view !== "object" || view === null) return null;
  const { nodes, shards } = view as { nodes?: unknown; shards?: unknown };
  if (!Array.isArray(nodes) || !Array.isArray(shards)) return null;
  const byId = new Map<string, string>();
  for (const n of nodes) {
    if (typeof n !== "object" || n === null) return null;
    const { id, address } = n as { id?: unknown; address?: unknown };
    if (typeof id !== "string" || typeof address !== "string") return null;
    byId.set(id, address);
  }
  const leaders: string[] = [];
  for (const s of shards) {
    if (typeof s !== "object" || s === null) return null;
    const leader = (s as { leader?: unknown }).leader;
    if (leader === null || leader === undefined) continue;
    if (typeof leader !== "string") return null;
    if (!leaders.includes(leader)) leaders.push(leader);
  }
  const base = new URL(answeredBase);
  const scheme = base.protocol === "https:" ? "wss:" : "ws:";
  const out: LeaderTargets = { targets: [], problems: [] };
  const seen = new Set<string>();
  for (const nodeId of leaders) {
    const address = byId.get(nodeId);
    if (address === undefined) {
      out.problems.push(`leader '${nodeId}' is not among the cluster's nodes`);
      continue;
    }
    let url: string;
    if (byId.size === 1 || address.toLowerCase() === hostPort(base)) {
      url = workerUrl(answeredBase);
    } else {
      const dialable = dialableAddress(address);
      if (dialable === null) {
        out.problems.push(`node '${nodeId}' has an address a worker cannot dial: '${address}'`);
        continue;
      }
      url = `${scheme}//${dialable}${WORKER_PATH}`;
    }
    if (seen.has(url)) continue;
    seen.add(url);
    out.targets.push({ url, nodeId });
  }
  return out;
}

/** "host:port" checked, or null for one that cannot be dialed (no port, port 0, 0.0.0.0, [::], a path). */
function dialableAddress(address: string): string | null {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s/:@?#[\]]+):(\d{1,5})$/.exec(address);
  if (!m) return null;
  const port = Number(m[2]);
  if (port === 0 || port > 65535) return null;
  if (m[1] === "0.0.0.0" || m[1] === "[::]") return null;
  return `${m[1]}:${port}`;
}

/** host:port of a URL, with the scheme's default port spelled out. */
function hostPort(u: URL): string {
  return `${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`.toLowerCase();
}
