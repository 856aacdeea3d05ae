/**
 * Requests for a shard this node does not lead go to the node that does, as the same HTTP
 * request (the client's token, body and If-Match), and its answer comes back unchanged. A
 * forwarded request is marked: the receiving node serves it or answers 503, never forwards it
 * again, so a stale leadership view cannot make requests go round in circles.
 */
import http from "node:http";
import { CronwheelError } from "../core/errors.js";
import type { ApiRequest, ApiResponse } from "./routes.js";

export const FORWARDED_HEADER = "x-cronwheel-forwarded";
/** "local": list only the shards you lead (the asking node merges every leader's part). */
export const SCOPE_HEADER = "x-cronwheel-scope";

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

export interface ForwardOptions {
  fromNodeId: string;
  timeoutMs: number;
  /** Replace the request's body (one item of a batch). */
  body?: Buffer;
  method?: string;
  path?: string;
  scopeLocal?: boolean;
}

/** Send `req` to the node at `address` ("host:port") and return its answer as it is. */
export function forwardRequest(address: string, req: ApiRequest, opts: ForwardOptions): Promise<ApiResponse> {
  const body = opts.body ?? req.body;
  const [host, port] = splitAddress(address);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "content-length": String(body.length),
    [FORWARDED_HEADER]: opts.fromNodeId,
  };
  if (req.authorization) headers.authorization = req.authorization;
  if (req.ifMatch) headers["if-match"] = req.ifMatch;
  if (opts.scopeLocal) headers[SCOPE_HEADER] = "local";
  return new Promise((resolve, reject) => {
    const r = http.request({ host, port, method: opts.method ?? req.method, path: opts.path ?? req.rawPath, headers, agent, timeout: opts.timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const retryAfter = res.headers["retry-after"];
        resolve({
          status: res.statusCode ?? 502,
          body: undefined,
          raw: Buffer.concat(chunks).toString("utf8"),
          ...(typeof retryAfter === "string" ? { retryAfterSec: Number(retryAfter) } : {}),
        });
      });
      res.on("error", (e) => reject(unreachable(address, e)));
    });
    r.on("timeout", () => r.destroy(new Error(`no answer in ${opts.timeoutMs} ms`)));
    r.on("error", (e) => reject(unreachable(address, e)));
    r.end(body);
  });
}

/** The JSON of a forwarded answer, or its error as a CronwheelError. */
export function forwardedJson(res: ApiResponse): unknown {
  const parsed: unknown = JSON.parse(res.raw ?? "null");
  if (res.status >= 200 && res.status < 300) return parsed;
  const err = (parsed as { error?: { code?: string; message?: string; details?: Record<string, unknown> } } | null)?.error;
  throw new CronwheelError((err?.code as never) ?? "unavailable", err?.message ?? `a peer answered ${res.status}`, err?.details, res.retryAfterSec);
}

function unreachable(address: string, cause: Error): CronwheelError {
  return new CronwheelError("unavailable", `the shard's leader at ${address} cannot be reached: ${cause.message}`, undefined, 1);
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(":");
  return [address.slice(0, i), Number(address.slice(i + 1))];
}
