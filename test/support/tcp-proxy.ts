/**
 * A TCP proxy the test controls, to fault one link (a node's etcd link, a node-to-node link, a
 * worker's link to a node) without touching the rest. Every accepted connection is a pair of
 * sockets (client side, server side) and two one-way streams between them; the faults:
 *
 *   cut()            drop every open connection; new ones are accepted and never answered
 *   blackhole(dir)   drop the bytes of one direction ("to-server", "to-client") or both; the
 *                    sockets stay open and the other direction flows (asymmetric loss). TCP never
 *                    delivers a stream with a gap, so at heal a connection that lost bytes is
 *                    reset (as its retransmissions would have timed out); one that lost none flows on
 *   halfOpen()       stop forwarding both ways and stop reading, without FIN or RST: neither end
 *                    learns anything (a peer that vanished); a close on one end is not passed on
 *   reset()          destroy both sockets of every open connection with a TCP RST
 *   delay(ms)        deliver every chunk `ms` later, both ways
 *   rateLimit(bps)   at most `bps` bytes a second per direction of each connection; the proxy
 *                    stops reading from a sender it is behind on (backpressure reaches it, as
 *                    through a slow link)
 *
 * Faults apply to open and to new connections alike, and add up (delay with a rate limit).
 * `heal()` ends them all: bytes flow again on connections that were only delayed, slowed or
 * blackholed without losing a byte; those that lost bytes, were cut off or half-open are reset,
 * as a healed network does not revive them (their next packet would meet an RST).
 */
import net from "node:net";

export type Direction = "to-server" | "to-client";

/** Bytes the proxy holds for a slow direction before it stops reading from the sender. */
const QUEUE_BYTES_MAX = 64 * 1024;

/** One direction of a connection: bytes read from `from`, written to `to`. */
class Stream {
  private readonly queue: Array<{ chunk: Buffer; at: number }> = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  /** When the rate limit lets the next byte out (ms, Date.now()). */
  private nextFreeAt = 0;
  private waitingForDrain = false;

  constructor(
    private readonly proxy: TcpProxy,
    readonly direction: Direction,
    private readonly from: net.Socket,
    private readonly to: net.Socket,
  ) {
    from.on("data", (chunk: Buffer) => this.onData(chunk));
    to.on("drain", () => {
      this.waitingForDrain = false;
      this.resumeIfAllowed();
    });
  }

  /** Bytes were dropped here: the stream has a gap that no retransmission will fill. */
  damaged = false;

  private onData(chunk: Buffer): void {
    if (this.proxy.isBlackholed(this.direction)) {
      this.damaged = true;
      return;
    }
    this.queue.push({ chunk, at: Date.now() + this.proxy.delayMs });
    this.queuedBytes += chunk.length;
    this.pump();
  }

  /** Write what is due; come back when the next chunk is. */
  pump(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.proxy.frozen) return this.resumeIfAllowed();
    const rate = this.proxy.bytesPerSecond;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      const now = Date.now();
      const dueAt = Math.max(head.at, rate > 0 ? this.nextFreeAt : 0);
      if (dueAt > now) {
        this.timer = setTimeout(() => this.pump(), dueAt - now);
        break;
      }
      // Under a rate limit a big chunk goes in slices, so one read cannot burst past the rate.
      const slice = rate > 0 ? Math.max(1, Math.floor(rate / 20)) : head.chunk.length;
      const out = head.chunk.subarray(0, slice);
      if (out.length === head.chunk.length) this.queue.shift();
      else head.chunk = head.chunk.subarray(out.length);
      this.queuedBytes -= out.length;
      if (rate > 0) this.nextFreeAt = Math.max(now, this.nextFreeAt) + (out.length / rate) * 1000;
      if (!this.to.destroyed && !this.to.write(out)) this.waitingForDrain = true;
    }
    this.resumeIfAllowed();
  }

  /** Read from the sender only while the receiver keeps up and the proxy is not holding much. */
  resumeIfAllowed(): void {
    if (this.proxy.frozen || this.waitingForDrain || this.queuedBytes > QUEUE_BYTES_MAX) this.from.pause();
    else this.from.resume();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
  }
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  streams: [Stream, Stream];
}

function resetPair(p: Pair): void {
  for (const s of [p.client, p.upstream]) if (!s.destroyed) s.resetAndDestroy();
}

export class TcpProxy {
  private readonly pairs = new Set<Pair>();
  /** Connections accepted while cut off or half-open: held open, never answered. */
  private readonly held = new Set<net.Socket>();
  private cutOff = false;
  private blackholed = new Set<Direction>();
  /** Half-open: nothing moves and nothing is read; closes are not passed on. */
  frozen = false;
  delayMs = 0;
  /** 0: no limit. */
  bytesPerSecond = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private targetHost: string,
    private targetPort: number,
  ) {}

  /** New connections go here from now on (a restarted server on another port); open ones stay. */
  retarget(host: string, port: number): void {
    this.targetHost = host;
    this.targetPort = port;
  }

  static async start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | null = null;
    const server = net.createServer((client) => proxy!.accept(client));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
    proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port, targetHost, targetPort);
    return proxy;
  }

  private accept(client: net.Socket): void {
    client.on("error", () => client.destroy());
    if (this.cutOff || this.frozen) {
      // Nothing answers: hold it open, say nothing (a partition as the client sees it).
      client.pause();
      this.held.add(client);
      client.on("close", () => this.held.delete(client));
      return;
    }
    const upstream = net.connect(this.targetPort, this.targetHost);
    upstream.on("error", () => upstream.destroy());
    const pair: Pair = { client, upstream, streams: [new Stream(this, "to-server", client, upstream), new Stream(this, "to-client", upstream, client)] };
    this.pairs.add(pair);
    const closed = (other: net.Socket) => () => {
      // Half-open: the other end must not learn of it (no FIN, no RST reaches it).
      if (!this.frozen) other.destroy();
      if (client.destroyed && upstream.destroyed) {
        this.pairs.delete(pair);
        for (const s of pair.streams) s.stop();
      }
    };
    client.on("close", closed(upstream));
    upstream.on("close", closed(client));
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  isBlackholed(direction: Direction): boolean {
    return this.blackholed.has(direction);
  }

  /** Drop every open connection; new ones go into a black hole. */
  cut(): void {
    this.cutOff = true;
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream.destroy();
    }
  }

  /** Drop the bytes going one way (or both), on open and new connections; sockets stay open. */
  blackhole(direction: Direction | "both"): void {
    for (const d of direction === "both" ? (["to-server", "to-client"] as const) : [direction]) this.blackholed.add(d);
  }

  /** Stop forwarding and reading both ways, with no FIN or RST to either end. */
  halfOpen(): void {
    this.frozen = true;
    this.eachStream((s) => s.pump());
  }

  /** Reset every open connection (RST to both ends). New connections are not affected. */
  reset(): void {
    for (const p of this.pairs) resetPair(p);
  }

  delay(ms: number): void {
    this.delayMs = ms;
  }

  rateLimit(bytesPerSecond: number): void {
    this.bytesPerSecond = bytesPerSecond;
    this.eachStream((s) => s.pump());
  }

  /** End every fault (see the header for what happens to connections cut off or half-open). */
  heal(): void {
    this.cutOff = false;
    this.blackholed = new Set();
    this.delayMs = 0;
    this.bytesPerSecond = 0;
    const wasFrozen = this.frozen;
    this.frozen = false;
    for (const p of this.pairs) {
      if (wasFrozen || p.streams.some((s) => s.damaged)) resetPair(p);
    }
    for (const s of this.held) if (!s.destroyed) s.resetAndDestroy();
    this.held.clear();
    this.eachStream((s) => s.pump());
  }

  /** Open connections (both sockets still open). */
  get connections(): number {
    let n = 0;
    for (const p of this.pairs) if (!p.client.destroyed && !p.upstream.destroyed) n++;
    return n;
  }

  private eachStream(f: (s: Stream) => void): void {
    for (const p of this.pairs) for (const s of p.streams) f(s);
  }

  async close(): Promise<void> {
    this.cut();
    for (const s of this.held) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
