/**
 * The SDK's HTTP transport: HTTP/1.1 over kept-alive sockets (net, or tls for https), one request
 * at a time per socket, up to SOCKETS_PER_ORIGIN_MAX sockets per origin; requests beyond that wait
 * in line for a free socket.
 *
 * Why not node:http: its ClientRequest, IncomingMessage, agent bookkeeping and stream machinery
 * came to ~20 KB of garbage per request, two thirds of what a process enqueueing 1,000 executions
 * a second allocated; its scavenges were the largest share of the enqueue-to-start tail (see
 * bench/RESULTS.md). Node's global fetch costs more still (a stream, an AbortSignal, a timer).
 * What this transport needs is small: it sends JSON requests with a Content-Length and reads
 * responses framed by Content-Length, chunked encoding, or the connection's close.
 *
 * A failure before the request's socket connected (DNS failure, connection refused, unreachable,
 * no connect within the timeout) is a `NotSentError`: the request provably never reached a server,
 * so even a request that is not idempotent may be sent to another node. A failure after that
 * (reset, timeout waiting for the answer) may have come after the server acted on the request.
 */
import net from "node:net";
import tls from "node:tls";

export interface TransportResponse {
  status: number;
  retryAfter: string | null;
  text: string;
}

/** Sockets kept open per origin. */
const SOCKETS_PER_ORIGIN_MAX = 64;
/**
 * An idle socket is closed after this long, before a server's keep-alive timeout would close it
 * (Node's default is 5 s): a request written as the server closes the socket fails, maybe sent.
 */
const IDLE_SOCKET_MS = 4_000;
/** A response head larger than this is refused (the API's are a few hundred bytes). */
const RESPONSE_HEAD_BYTES_MAX = 64 * 1024;

const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");

/** The request failed before its socket connected: nothing was sent. `cause` is the error. */
export class NotSentError extends Error {
  constructor(readonly original: Error) {
    super(original.message, { cause: original });
    this.name = original.name === "TimeoutError" ? "TimeoutError" : "NotSentError";
  }
}

interface Origin {
  key: string;
  secure: boolean;
  /** For connecting (no brackets around an IPv6 address). */
  hostname: string;
  port: number;
  /** The Host header. */
  host: string;
  /** From user:password in the URL. */
  authorization: string | null;
  /** Every open socket (for close()), and those free for a request. */
  conns: Set<Conn>;
  idle: Conn[];
  /** Requests waiting for a socket, oldest first. */
  waiting: Pending[];
}

interface Pending {
  /** A HEAD request: its response has no body, whatever its headers say. */
  headOnly: boolean;
  head: string;
  body: string | undefined;
  timeoutMs: number;
  resolve: (r: TransportResponse) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout | null;
}

type BodyFraming = { kind: "length"; remaining: number } | { kind: "chunked" } | { kind: "close" };

/** One socket and the response it is reading. */
class Conn {
  connected = false;
  dropped = false;
  current: Pending | null = null;
  idleTimer: NodeJS.Timeout | null = null;
  /** Bytes read and not parsed yet. */
  private buf: Buffer | null = null;
  // the response being read
  private status = 0;
  private retryAfter: string | null = null;
  private keepAlive = true;
  private framing: BodyFraming | null = null;
  private body: Buffer[] = [];

  constructor(
    readonly socket: net.Socket,
    private readonly onResponse: (conn: Conn, response: TransportResponse, keepAlive: boolean) => void,
  ) {}

  /** Parses what arrived; throws on a malformed response or on bytes no request asked for. */
  feed(data: Buffer): void {
    if (this.current === null) throw new Error("the server sent bytes no request asked for");
    this.buf = this.buf === null ? data : Buffer.concat([this.buf, data]);
    while (this.current !== null && this.step());
  }

  /** The socket ended: completes a response framed by the connection's close. */
  ended(): boolean {
    if (this.current === null || this.framing?.kind !== "close") return false;
    this.complete(false);
    return true;
  }

  /** One parsing step; false when more bytes are needed. */
  private step(): boolean {
    const buf = this.buf;
    if (buf === null) {
      // Only an empty body completes without more bytes (a 204, a HEAD, Content-Length: 0).
      if (this.framing?.kind !== "length" || this.framing.remaining > 0) return false;
      this.complete(this.keepAlive);
      return true;
    }
    if (this.framing === null) {
      const end = buf.indexOf(HEAD_END);
      if (end < 0) {
        if (buf.length > RESPONSE_HEAD_BYTES_MAX) throw new Error(`response head over ${RESPONSE_HEAD_BYTES_MAX} bytes`);
        return false;
      }
      this.readHead(buf.toString("latin1", 0, end));
      this.take(end + HEAD_END.length);
      return true;
    }
    switch (this.framing.kind) {
      case "length": {
        const n = Math.min(this.framing.remaining, buf.length);
        if (n > 0) this.body.push(buf.subarray(0, n));
        this.framing.remaining -= n;
        this.take(n);
        if (this.framing.remaining > 0) return false;
        this.complete(this.keepAlive);
        return true;
      }
      case "chunked":
        return this.chunk(buf);
      case "close":
        this.body.push(buf);
        this.buf = null;
        return false;
    }
  }

  private readHead(head: string): void {
    const lines = head.split("\r\n");
    const statusLine = /^HTTP\/1\.([01]) (\d{3})/.exec(lines[0]!);
    if (!statusLine) throw new Error(`not an HTTP/1.x response: ${JSON.stringify(lines[0]!.slice(0, 80))}`);
    const status = Number(statusLine[2]);
    let length: number | null = null;
    let chunked = false;
    let connection = "";
    let retryAfter: string | null = null;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      if (name === "content-length") {
        if (!/^\d+$/.test(value) || (length !== null && length !== Number(value))) throw new Error(`bad content-length ${JSON.stringify(value)}`);
        length = Number(value);
      } else if (name === "transfer-encoding") chunked = value.toLowerCase().split(",").pop()!.trim() === "chunked";
      else if (name === "connection") connection = value.toLowerCase();
      else if (name === "retry-after") retryAfter = value;
    }
    if (status >= 100 && status < 200) return; // informational (103 Early Hints…): the real answer follows
    this.status = status;
    this.retryAfter = retryAfter;
    this.keepAlive = statusLine[1] === "1" ? !connection.includes("close") : connection.includes("keep-alive");
    if (status === 204 || status === 304 || this.current!.headOnly) this.framing = { kind: "length", remaining: 0 };
    else if (chunked) this.framing = { kind: "chunked" };
    else if (length !== null) this.framing = { kind: "length", remaining: length };
    else this.framing = { kind: "close" };
  }

  /** A chunked body: `size[;ext]\r\n data \r\n` … `0\r\n [trailers] \r\n`. */
  private chunk(buf: Buffer): boolean {
    const lineEnd = buf.indexOf(CRLF);
    if (lineEnd < 0) return false;
    const size = parseInt(buf.toString("latin1", 0, lineEnd).split(";")[0]!.trim(), 16);
    if (!Number.isSafeInteger(size) || size < 0) throw new Error("bad chunk size");
    if (size === 0) {
      // the last chunk, then optional trailers, then an empty line
      const end = buf.indexOf(HEAD_END, lineEnd);
      const bare = buf.length >= lineEnd + 4 && buf[lineEnd + 2] === 13 && buf[lineEnd + 3] === 10;
      if (!bare && end < 0) return false;
      this.take(bare ? lineEnd + 4 : end + HEAD_END.length);
      this.complete(this.keepAlive);
      return true;
    }
    const start = lineEnd + 2;
    if (buf.length < start + size + 2) return false;
    this.body.push(buf.subarray(start, start + size));
    this.take(start + size + 2);
    return true;
  }

  private take(n: number): void {
    this.buf = n >= this.buf!.length ? null : this.buf!.subarray(n);
  }

  private complete(keepAlive: boolean): void {
    const text = this.body.length === 1 ? this.body[0]!.toString("utf8") : Buffer.concat(this.body).toString("utf8");
    const response: TransportResponse = { status: this.status, retryAfter: this.retryAfter, text };
    this.framing = null;
    this.body = [];
    if (keepAlive && this.buf !== null) keepAlive = false; // bytes nobody asked for: do not reuse
    this.onResponse(this, response, keepAlive);
  }
}

export class HttpTransport {
  /** Origins by scheme://host:port (a client talks to a handful). */
  private readonly origins = new Map<string, Origin>();
  private closed = false;

  /** `tlsOptions`: extra options for https sockets (a CA for tests, say). */
  constructor(private readonly tlsOptions: tls.ConnectionOptions = {}) {}

  request(url: string, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<TransportResponse> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(new NotSentError(new Error("the client is closed")));
      let origin: Origin;
      let path: string;
      try {
        ({ origin, path } = this.split(url));
      } catch (error) {
        return reject(new NotSentError(error as Error));
      }
      let head = `${method} ${path} HTTP/1.1\r\nhost: ${origin.host}\r\n`;
      if (origin.authorization !== null && headers.authorization === undefined) head += `authorization: ${origin.authorization}\r\n`;
      for (const name in headers) head += `${name}: ${headers[name]}\r\n`;
      head += body === undefined ? "\r\n" : `content-length: ${Buffer.byteLength(body)}\r\n\r\n`;
      const pending: Pending = { headOnly: method === "HEAD", head, body, timeoutMs, resolve, reject, timer: null };
      const conn = this.idleConn(origin);
      if (conn) return this.send(origin, conn, pending);
      if (origin.conns.size < SOCKETS_PER_ORIGIN_MAX) return this.send(origin, this.connect(origin), pending);
      origin.waiting.push(pending);
      pending.timer = setTimeout(() => {
        origin.waiting.splice(origin.waiting.indexOf(pending), 1);
        reject(new NotSentError(timeoutError(timeoutMs)));
      }, timeoutMs);
    });
  }

  /** Closes every socket: requests in flight fail, waiting ones fail as not sent. */
  close(): void {
    this.closed = true;
    for (const origin of this.origins.values()) {
      for (const pending of origin.waiting.splice(0)) {
        if (pending.timer) clearTimeout(pending.timer);
        pending.reject(new NotSentError(new Error("the client is closed")));
      }
      for (const conn of [...origin.conns]) this.fail(origin, conn, new Error("the client is closed"));
    }
    this.origins.clear();
  }

  private idleConn(origin: Origin): Conn | undefined {
    const conn = origin.idle.pop();
    if (conn?.idleTimer) {
      clearTimeout(conn.idleTimer);
      conn.idleTimer = null;
    }
    return conn;
  }

  private send(origin: Origin, conn: Conn, pending: Pending): void {
    conn.current = pending;
    conn.socket.ref();
    if (pending.timer) clearTimeout(pending.timer); // it waited for a socket; the answer gets the full timeout
    pending.timer = setTimeout(() => this.fail(origin, conn, timeoutError(pending.timeoutMs)), pending.timeoutMs);
    if (!conn.connected) return; // written once connected
    conn.socket.write(pending.body === undefined ? pending.head : pending.head + pending.body);
  }

  private connect(origin: Origin): Conn {
    const socket = origin.secure
      ? tls.connect({ ...this.tlsOptions, host: origin.hostname, port: origin.port, servername: net.isIP(origin.hostname) ? undefined : origin.hostname, ALPNProtocols: ["http/1.1"] })
      : net.connect({ host: origin.hostname, port: origin.port });
    socket.setNoDelay(true);
    const conn = new Conn(socket, (c, response, keepAlive) => this.onResponse(origin, c, response, keepAlive));
    origin.conns.add(conn);
    socket.once(origin.secure ? "secureConnect" : "connect", () => {
      conn.connected = true;
      const pending = conn.current;
      if (pending) socket.write(pending.body === undefined ? pending.head : pending.head + pending.body);
    });
    socket.on("data", (data: Buffer) => {
      try {
        conn.feed(data);
      } catch (error) {
        this.fail(origin, conn, error as Error);
      }
    });
    socket.on("end", () => {
      if (!conn.ended()) this.fail(origin, conn, new Error("the server closed the connection"));
    });
    socket.on("error", (error) => this.fail(origin, conn, error));
    socket.on("close", () => this.fail(origin, conn, new Error("the connection closed")));
    return conn;
  }

  private onResponse(origin: Origin, conn: Conn, response: TransportResponse, keepAlive: boolean): void {
    const pending = conn.current!;
    conn.current = null;
    if (pending.timer) clearTimeout(pending.timer);
    if (keepAlive && !this.closed) this.release(origin, conn);
    else this.drop(origin, conn);
    pending.resolve(response);
  }

  /** A socket free for the next request: the oldest waiting one, or the idle list. */
  private release(origin: Origin, conn: Conn): void {
    const next = origin.waiting.shift();
    if (next) return this.send(origin, conn, next);
    conn.socket.unref(); // an idle socket must not keep the process alive
    conn.idleTimer = setTimeout(() => {
      const i = origin.idle.indexOf(conn);
      if (i >= 0) origin.idle.splice(i, 1);
      this.drop(origin, conn);
    }, IDLE_SOCKET_MS);
    conn.idleTimer.unref();
    origin.idle.push(conn);
  }

  /** The socket is done (closed, failed, not reusable): the line may use a new one. */
  private drop(origin: Origin, conn: Conn): void {
    if (conn.idleTimer) clearTimeout(conn.idleTimer);
    conn.idleTimer = null;
    if (!conn.socket.destroyed) conn.socket.destroy();
    if (conn.dropped) return;
    conn.dropped = true;
    origin.conns.delete(conn);
    const next = origin.waiting.shift();
    if (next && !this.closed) this.send(origin, this.connect(origin), next);
  }

  /** The socket failed or closed: its request (if any) fails; the socket is dropped. */
  private fail(origin: Origin, conn: Conn, error: Error): void {
    const pending = conn.current;
    conn.current = null;
    const i = origin.idle.indexOf(conn);
    if (i >= 0) origin.idle.splice(i, 1);
    this.drop(origin, conn);
    if (!pending) return;
    if (pending.timer) clearTimeout(pending.timer);
    pending.reject(conn.connected ? error : new NotSentError(error));
  }

  private split(url: string): { origin: Origin; path: string } {
    const slash = url.indexOf("/", url.indexOf("//") + 2);
    const key = slash < 0 ? url : url.slice(0, slash);
    let origin = this.origins.get(key);
    if (!origin) {
      const u = new URL(key);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error(`unsupported protocol ${u.protocol}`);
      const secure = u.protocol === "https:";
      const port = u.port === "" ? (secure ? 443 : 80) : Number(u.port);
      origin = {
        key,
        secure,
        // [::1] → ::1 for connecting; the Host header keeps the brackets.
        hostname: u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname,
        port,
        host: u.port === "" ? u.hostname : `${u.hostname}:${u.port}`,
        authorization: u.username !== "" || u.password !== "" ? `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}` : null,
        conns: new Set(),
        idle: [],
        waiting: [],
      };
      this.origins.set(key, origin);
    }
    return { origin, path: slash < 0 ? "/" : url.slice(slash) };
  }
}

function timeoutError(timeoutMs: number): Error {
  return Object.assign(new Error(`timed out after ${timeoutMs} ms`), { name: "TimeoutError" });
}
