/**
 * A worker that speaks the wire protocol directly (no SDK), so tests can do what a well-behaved
 * SDK never would: report late, with old fences, or not at all.
 */
import { pack, unpack } from "msgpackr";
import WebSocket from "ws";
import type { AssignMessage, NodeMessage, WorkerMessage } from "../../src/gateway/protocol.js";

export class RawWorker {
  readonly received: NodeMessage[] = [];
  private waiters: Array<{ match: (m: NodeMessage) => boolean; resolve: (m: NodeMessage) => void }> = [];
  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data: Buffer) => {
      for (const m of unpack(data) as NodeMessage[]) {
        this.received.push(m);
        this.waiters = this.waiters.filter((w) => (w.match(m) ? (w.resolve(m), false) : true));
      }
    });
  }

  static async connect(base: string, workerId: string, queues: string[], token?: string): Promise<RawWorker> {
    const ws = new WebSocket(`${base.replace(/^http/, "ws")}/v1/workers`);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    const worker = new RawWorker(ws);
    worker.send({ t: "hello", workerId, queues, protocol: 1, ...(token ? { token } : {}) });
    await worker.next((m) => m.t === "welcome");
    return worker;
  }

  send(...messages: WorkerMessage[]): void {
    this.ws.send(pack(messages));
  }

  sendRaw(data: Buffer | string): void {
    this.ws.send(data);
  }

  /** The first message (already received or still to come) that matches. */
  next(match: (m: NodeMessage) => boolean, timeoutMs = 10_000): Promise<NodeMessage> {
    const seen = this.received.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.received.slice(-5))}`)), timeoutMs);
      this.waiters.push({ match, resolve: (m) => (clearTimeout(timer), resolve(m)) });
    });
  }

  assignment(id?: string): Promise<AssignMessage> {
    return this.next((m) => m.t === "assign" && (id === undefined || m.id === id)) as Promise<AssignMessage>;
  }

  closed(): Promise<number> {
    return new Promise((resolve) => (this.ws.readyState === WebSocket.CLOSED ? resolve(0) : this.ws.once("close", (code: number) => resolve(code))));
  }

  /** Stop reading the socket (a slow consumer): what the node sends piles up in its buffers. */
  pauseReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }

  close(): void {
    this.ws.close();
  }
}
