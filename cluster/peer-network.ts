/**
 * Node-to-node messages: request/reply over long-lived WebSocket connections, msgpack-encoded.
 * Every node serves `PEER_PATH` on its one uWS server (the same port as the API) and opens one
 * outgoing connection per peer it talks to; a request goes out on the sender's own connection
 * and its reply comes back on it, so each direction has one ordered stream.
 *
 * A frame is a batch: everything one side has for a connection in one event-loop turn goes out
 * as one WebSocket message (a leader of many shards sends each follower one frame per turn, not
 * one per shard). Messages: [REQUEST, id, payload] and [REPLY, id, ok, payload-or-error-message].
 * A request has a deadline; a connection that drops fails every request in flight on it.
 */
import { performance } from "node:perf_hooks";
import { Packr } from "msgpackr";
import type { Logger } from "pino";
import uWS from "uWebSockets.js";
import WebSocket from "ws";
import { withDeadline } from "./timing.js";

export const PEER_PATH = "/internal/peers";
/** Replication batches and snapshot transfers travel here. */
const PEER_FRAME_BYTES_MAX = 512 * 1024 * 1024;
const REQUEST = 0;
const REPLY = 1;

const packr = new Packr({ useRecords: false });

export type PeerHandler = (from: string, request: unknown) => Promise<unknown>;

export class PeerError extends Error {}

interface Outgoing {
  ws: WebSocket;
  address: string;
  open: Promise<void>;
  /** Requests of this turn, sent together. */
  batch: unknown[][];
  /** performance.now() of the last frame received (replies). */
  lastHeard: number;
  inflight: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>;
}

export interface PeerNetworkOptions {
  nodeId: string;
  /** Where a node listens ("host:port"), or null if unknown. */
  addressOf: (nodeId: string) => string | null;
  handler: PeerHandler;
  /** Bearer token peers present (an admin token) when auth is on; null when off. */
  token: string | null;
  /** Whether a presented Authorization header may act as a peer. */
  authorize: (authorization: string) => boolean;
  logger: Logger;
}

type PeerSocket = uWS.WebSocket<{ from: string; replies: unknown[][] }>;

export class PeerNetwork {
  private readonly outgoing = new Map<string, Outgoing>();
  private nextId = 1;
  private closed = false;
  /** Connections with requests (out) or replies (in) to send at the end of this turn. */
  private readonly toFlush = new Set<Outgoing>();
  private readonly repliesToFlush = new Set<PeerSocket>();
  private flushScheduled = false;

  constructor(private readonly opts: PeerNetworkOptions) {}

  attach(app: uWS.TemplatedApp): void {
    app.ws<{ from: string; replies: unknown[][] }>(PEER_PATH, {
      compression: uWS.DISABLED,
      maxPayloadLength: PEER_FRAME_BYTES_MAX,
      maxBackpressure: PEER_FRAME_BYTES_MAX,
      idleTimeout: 60,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        const from = new URLSearchParams(req.getQuery() ?? "").get("from") ?? "";
        if (!this.opts.authorize(req.getHeader("authorization")) || from === "") {
          res.writeStatus("401 Unauthorized").end("peer authentication failed");
          return;
        }
        res.upgrade({ from, replies: [] }, req.getHeader("sec-websocket-key"), req.getHeader("sec-websocket-protocol"), req.getHeader("sec-websocket-extensions"), context);
      },
      message: (ws, data) => {
        let frame: unknown[][];
        try {
          // Copied: uWS reuses `data` after this callback, and the requests are served asynchronously.
          frame = packr.unpack(Buffer.from(new Uint8Array(data))) as unknown[][];
          if (!Array.isArray(frame)) throw new Error("not a batch");
        } catch {
          ws.end(1008, "malformed peer frame");
          return;
        }
        const from = ws.getUserData().from;
        for (const m of frame) {
          if (!Array.isArray(m) || m[0] !== REQUEST) continue;
          const id = m[1] as number;
          this.opts.handler(from, m[2]).then(
            (reply) => this.reply(ws, [REPLY, id, true, reply]),
            (error: Error) => this.reply(ws, [REPLY, id, false, error.message]),
          );
        }
      },
      close: (ws) => {
        ws.getUserData().replies = [];
        this.repliesToFlush.delete(ws);
      },
    });
  }

  /** Send `request` to `nodeId` and wait for its reply, at most `timeoutMs`. */
  async request<T>(nodeId: string, request: unknown, timeoutMs: number): Promise<T> {
    const conn = this.connection(nodeId);
    try {
      await withDeadline(conn.open, timeoutMs, `connect to ${nodeId}`);
    } catch (error) {
      // A connection that does not open in time (a black-holed network) is dropped, so the next
      // request dials again instead of waiting on it forever.
      this.drop(nodeId, conn);
      throw error;
    }
    if (conn.ws.readyState !== WebSocket.OPEN) throw new PeerError(`connection to ${nodeId} is closed`);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.inflight.delete(id);
        // Silent for a whole timeout on an open connection: half-open, most likely. Start over.
        if (performance.now() - conn.lastHeard >= timeoutMs) this.drop(nodeId, conn);
        reject(new PeerError(`${nodeId} did not answer in ${timeoutMs} ms`));
      }, timeoutMs);
      conn.inflight.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      conn.batch.push([REQUEST, id, request]);
      this.toFlush.add(conn);
      this.scheduleFlush();
    });
  }

  private reply(ws: PeerSocket, message: unknown[]): void {
    ws.getUserData().replies.push(message);
    this.repliesToFlush.add(ws);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /** One WebSocket message per connection for everything this turn produced. */
  private flush(): void {
    this.flushScheduled = false;
    for (const conn of this.toFlush) {
      const batch = conn.batch;
      conn.batch = [];
      if (batch.length === 0 || conn.ws.readyState !== WebSocket.OPEN) continue;
      conn.ws.send(packr.pack(batch), { binary: true }, (error) => {
        if (error) for (const m of batch) this.failInflight(conn, m[1] as number, error);
      });
    }
    this.toFlush.clear();
    for (const ws of this.repliesToFlush) {
      const replies = ws.getUserData().replies;
      ws.getUserData().replies = [];
      if (replies.length > 0) sendIfOpen(ws, packr.pack(replies));
    }
    this.repliesToFlush.clear();
  }

  private drop(nodeId: string, conn: Outgoing): void {
    if (this.outgoing.get(nodeId) === conn) this.outgoing.delete(nodeId);
    conn.ws.terminate();
  }

  close(): void {
    this.closed = true;
    for (const conn of this.outgoing.values()) conn.ws.terminate();
    this.outgoing.clear();
  }

  private connection(nodeId: string): Outgoing {
    const address = this.opts.addressOf(nodeId);
    if (address === null) throw new PeerError(`no address known for node ${nodeId}`);
    const existing = this.outgoing.get(nodeId);
    if (existing && existing.address === address && existing.ws.readyState <= WebSocket.OPEN) return existing;
    if (existing) existing.ws.terminate();
    if (this.closed) throw new PeerError("peer network closed");
    const headers: Record<string, string> = this.opts.token ? { authorization: `Bearer ${this.opts.token}` } : {};
    const ws = new WebSocket(`ws://${address}${PEER_PATH}?from=${encodeURIComponent(this.opts.nodeId)}`, {
      headers,
      maxPayload: PEER_FRAME_BYTES_MAX,
      perMessageDeflate: false,
    });
    const conn: Outgoing = {
      ws,
      address,
      batch: [],
      lastHeard: performance.now(),
      inflight: new Map(),
      open: new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", (error) => reject(new PeerError(`connect to ${nodeId} at ${address}: ${error.message}`)));
      }),
    };
    conn.open.catch(() => undefined);
    ws.on("message", (data: Buffer) => {
      conn.lastHeard = performance.now();
      let frame: unknown[][];
      try {
        frame = packr.unpack(data) as unknown[][];
        if (!Array.isArray(frame)) throw new Error("not a batch");
      } catch {
        ws.terminate();
        return;
      }
      for (const m of frame) {
        if (!Array.isArray(m) || m[0] !== REPLY) continue;
        const waiter = conn.inflight.get(m[1] as number);
        if (!waiter) continue;
        conn.inflight.delete(m[1] as number);
        clearTimeout(waiter.timer);
        if (m[2] === true) waiter.resolve(m[3]);
        else waiter.reject(new PeerError(`${nodeId}: ${String(m[3])}`));
      }
    });
    ws.on("error", () => undefined); // "close" follows and fails what is in flight
    ws.on("close", () => {
      if (this.outgoing.get(nodeId) === conn) this.outgoing.delete(nodeId);
      for (const id of [...conn.inflight.keys()]) this.failInflight(conn, id, new PeerError(`connection to ${nodeId} closed`));
    });
    this.outgoing.set(nodeId, conn);
    return conn;
  }

  private failInflight(conn: Outgoing, id: number, error: Error): void {
    const waiter = conn.inflight.get(id);
    if (!waiter) return;
    conn.inflight.delete(id);
    clearTimeout(waiter.timer);
    waiter.reject(error);
  }
}

function sendIfOpen(ws: PeerSocket, bytes: Uint8Array): void {
  try {
    ws.send(bytes, true);
  } catch {
    // The peer went away; it fails its own request on close.
  }
}
