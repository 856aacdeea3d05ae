/**
 * The SDK's HTTP transport: node:http(s) with keep-alive agents (one per scheme, made on first
 * use). Node's global fetch costs a stream, an AbortSignal and a timer per request; at thousands of
 * requests a second that showed as a 3x worse p99 enqueue latency than plain http with keep-alive.
 *
 * A failure before the request's socket connected (DNS failure, connection refused, unreachable,
 * no connect within the timeout) is a `NotSentError`: the request provably never reached a server,
 * so even a request that is not idempotent may be sent to another node. A failure after that
 * (reset, timeout waiting for the answer) may have come after the server acted on the request.
 */
import http from "node:http";
import https from "node:https";

export interface TransportResponse {
  status: number;
  retryAfter: string | null;
  text: string;
}

/** Sockets kept open per scheme (per host). */
const SOCKETS_PER_CLIENT_MAX = 64;

/** The request failed before its socket connected: nothing was sent. `cause` is the error. */
export class NotSentError extends Error {
  constructor(readonly original: Error) {
    super(original.message, { cause: original });
    this.name = original.name === "TimeoutError" ? "TimeoutError" : "NotSentError";
  }
}

interface Origin {
  protocol: string;
  hostname: string;
  port: string;
  auth?: string;
}

export class HttpTransport {
  private httpAgent: http.Agent | null = null;
  private httpsAgent: https.Agent | null = null;
  /** Parsed origins (a client talks to a handful): Node would parse the whole URL per request. */
  private readonly origins = new Map<string, Origin>();

  request(url: string, method: string, headers: Record<string, string>, body: string | undefined, timeoutMs: number): Promise<TransportResponse> {
    const secure = url.startsWith("https:");
    const lib = secure ? https : http;
    const agent = secure
      ? (this.httpsAgent ??= new https.Agent({ keepAlive: true, maxSockets: SOCKETS_PER_CLIENT_MAX }))
      : (this.httpAgent ??= new http.Agent({ keepAlive: true, maxSockets: SOCKETS_PER_CLIENT_MAX }));
    return new Promise((resolve, reject) => {
      let connected = false;
      const outgoing = body === undefined ? headers : { ...headers, "content-length": String(Buffer.byteLength(body)) };
      const { origin, path } = this.split(url);
      const req = lib.request({ ...origin, path, method, headers: outgoing, agent, timeout: timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const retryAfter = res.headers["retry-after"];
          resolve({ status: res.statusCode ?? 0, retryAfter: typeof retryAfter === "string" ? retryAfter : null, text: Buffer.concat(chunks).toString("utf8") });
        });
        res.on("error", reject);
      });
      req.on("socket", (socket) => {
        // A kept-alive socket is connected already; a new one connects (or fails) first.
        if (!socket.connecting) connected = true;
        else socket.once("connect", () => (connected = true));
      });
      req.on("timeout", () => req.destroy(Object.assign(new Error(`timed out after ${timeoutMs} ms`), { name: "TimeoutError" })));
      req.on("error", (error) => reject(connected ? error : new NotSentError(error)));
      req.end(body);
    });
  }

  private split(url: string): { origin: Origin; path: string } {
    const slash = url.indexOf("/", url.indexOf("//") + 2);
    const key = slash < 0 ? url : url.slice(0, slash);
    let origin = this.origins.get(key);
    if (!origin) {
      const u = new URL(key);
      // [::1] → ::1, as Node's own URL-to-options conversion does.
      origin = { protocol: u.protocol, hostname: u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname, port: u.port };
      if (u.username !== "" || u.password !== "") origin.auth = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
      this.origins.set(key, origin);
    }
    return { origin, path: slash < 0 ? "/" : url.slice(slash) };
  }

  close(): void {
    this.httpAgent?.destroy();
    this.httpsAgent?.destroy();
  }
}
