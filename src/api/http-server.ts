/**
 * The HTTP server (uWebSockets.js). It reads a request (headers synchronously, as uWS requires,
 * then the body in chunks up to `bodyBytesMax`), authenticates it, hands it to the router and
 * writes the JSON answer. Every failure becomes the contract's error body: a CronwheelError maps to
 * its status; anything else is a bug, logged, and answered 500 `internal` without details.
 */
import type { Logger } from "pino";
import uWS from "uWebSockets.js";
import { CronwheelError } from "../core/errors.js";
import type { CronwheelNode } from "../node/node.js";
import type { Auth } from "./auth.js";
import { FORWARDED_HEADER, SCOPE_HEADER } from "./forwarding.js";
import { errorBody, STATUS_OF, STATUS_TEXT } from "./http-errors.js";
import { dispatch, type ApiRequest, type ApiResponse, type RouteContext } from "./routes.js";
import type { Limits } from "./validation.js";

export interface HttpServerOptions {
  host: string;
  port: number;
  node: CronwheelNode;
  auth: Auth;
  limits: Limits;
  /** A request body larger than this is refused with 413 before it is read whole. */
  bodyBytesMax: number;
  logger: Logger;
  advertise: string;
  /** Adds more routes (the worker WebSocket) before the server listens. */
  configure?: (app: uWS.TemplatedApp) => void;
}

/** Seconds a client should wait before retrying a 503 with no better estimate. */
const RETRY_AFTER_DEFAULT_SEC = 1;

export class HttpServer {
  private listenSocket: uWS.us_listen_socket | null = null;

  private constructor(
    private readonly app: uWS.TemplatedApp,
    readonly port: number,
    listenSocket: uWS.us_listen_socket,
  ) {
    this.listenSocket = listenSocket;
  }

  static listen(opts: HttpServerOptions): Promise<HttpServer> {
    const app = uWS.App();
    const ctx: RouteContext = {
      node: opts.node,
      limits: opts.limits,
      advertise: opts.advertise,
      // Times a request is validated against (a schedule's anchor, delayMs): the cluster's clock.
      now: () => opts.node.clusterNow(),
    };

    app.get("/healthz", (res) => {
      res.cork(() => res.writeHeader("content-type", "application/json").end('{"status":"ok"}'));
    });
    app.get("/readyz", (res) => {
      const ready = opts.node.ready;
      res.cork(() =>
        res
          .writeStatus(ready ? STATUS_TEXT[200]! : STATUS_TEXT[503]!)
          .writeHeader("content-type", "application/json")
          .end(JSON.stringify({ ready })),
      );
    });
    app.get("/metrics", (res) => {
      let aborted = false;
      res.onAborted(() => (aborted = true));
      const registry = opts.node.metrics.registry;
      void registry.metrics().then((text) => {
        if (!aborted) res.cork(() => res.writeHeader("content-type", registry.contentType).end(text));
      });
    });
    opts.configure?.(app);
    app.any("/*", (res, req) => handle(res, req, opts, ctx));

    return new Promise((resolve, reject) => {
      app.listen(opts.host, opts.port, (socket) => {
        if (!socket) {
          reject(new Error(`cannot listen on ${opts.host}:${opts.port}`));
          return;
        }
        resolve(new HttpServer(app, uWS.us_socket_local_port(socket), socket));
      });
    });
  }

  get uwsApp(): uWS.TemplatedApp {
    return this.app;
  }

  close(): void {
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
  }
}

function handle(res: uWS.HttpResponse, req: uWS.HttpRequest, opts: HttpServerOptions, ctx: RouteContext): void {
  // uWS invalidates `req` when this function returns: copy what we need now.
  const method = req.getMethod().toUpperCase();
  const url = req.getUrl();
  const queryString = req.getQuery() ?? "";
  const authorization = req.getHeader("authorization");
  const ifMatch = req.getHeader("if-match");
  const forwardedBy = req.getHeader(FORWARDED_HEADER);
  const scopeLocal = req.getHeader(SCOPE_HEADER) === "local";
  const declaredLength = Number(req.getHeader("content-length") || "0");
  let aborted = false;
  res.onAborted(() => (aborted = true));

  const send = (r: ApiResponse, retryAfterSec = r.retryAfterSec) => {
    if (aborted) return;
    aborted = true;
    const text = r.raw ?? (r.status === 204 ? "" : JSON.stringify(r.body));
    res.cork(() => {
      res.writeStatus(STATUS_TEXT[r.status] ?? `${r.status} Unknown`);
      res.writeHeader("content-type", "application/json");
      if (retryAfterSec !== undefined) res.writeHeader("retry-after", String(retryAfterSec));
      res.end(text);
    });
  };
  const fail = (error: unknown) => {
    if (error instanceof CronwheelError) {
      const retryAfter =
        error.code === "unavailable" || error.code === "resource_exhausted" ? (error.retryAfterSec ?? RETRY_AFTER_DEFAULT_SEC) : undefined;
      send({ status: STATUS_OF[error.code], body: errorBody(error) }, retryAfter);
      return;
    }
    opts.logger.error({ err: error, method, url }, "request failed with an unexpected error");
    send({ status: 500, body: errorBody(new CronwheelError("internal", "internal error")) });
  };

  if (declaredLength > opts.bodyBytesMax) {
    fail(tooLarge(declaredLength, opts.bodyBytesMax));
    return;
  }

  let principal;
  let segments: string[];
  try {
    principal = opts.auth.authenticate(authorization);
    segments = url
      .split("/")
      .filter((s) => s !== "")
      .map((s) => decodeURIComponent(s));
  } catch (error) {
    fail(error instanceof URIError ? new CronwheelError("invalid_argument", "malformed percent-encoding in the path") : error);
    return;
  }

  const chunks: Buffer[] = [];
  let received = 0;
  res.onData((chunk, isLast) => {
    if (aborted) return;
    received += chunk.byteLength;
    if (received > opts.bodyBytesMax) {
      fail(tooLarge(received, opts.bodyBytesMax));
      return;
    }
    // uWS reuses the chunk's memory after this callback: copy it.
    chunks.push(Buffer.from(new Uint8Array(chunk)));
    if (!isLast) return;
    const apiRequest: ApiRequest = {
      method,
      rawPath: queryString ? `${url}?${queryString}` : url,
      authorization,
      forwardedBy,
      scopeLocal,
      segments,
      query: new URLSearchParams(queryString),
      ifMatch,
      body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
      principal,
    };
    try {
      const result = dispatch(apiRequest, ctx);
      if (result instanceof Promise) result.then(send, fail);
      else send(result);
    } catch (error) {
      fail(error);
    }
  });
}

function tooLarge(bytes: number, max: number): CronwheelError {
  return new CronwheelError("payload_too_large", `request body over the limit of ${max} bytes`, { limitBytes: max, bytes });
}
