/**
 * The HTTP half of Cronwheel's TypeScript SDK: a typed client for the `/v1` API (jobs, executions,
 * dead letters, cluster and its admin operations) and the health endpoints, over the SDK's own
 * HTTP/1.1 transport (http-transport.ts: kept-alive sockets, no dependency).
 *
 *   const client = new Client({ url: "http://127.0.0.1:7070", token: process.env.CRONWHEEL_TOKEN });
 *   const { job, created } = await client.putJob("nightly-report", { queue: "reports", cron: "0 3 * * *" });
 *   const { execution } = await client.enqueue({ queue: "mail", payload: { to: "a@b.c" }, idempotencyKey: "welcome-42" });
 *
 * Errors. Every failure is a `CronwheelApiError` (see errors.ts) with the contract's `code`
 * (`invalid_argument`, `unauthenticated`, `permission_denied`, `not_found`, `conflict`,
 * `payload_too_large`, `resource_exhausted`, `unavailable`, `internal`), the HTTP `status`, the
 * server's `details` and `retryAfterSec`. A request that got no HTTP answer — connection refused
 * or reset, DNS failure, or no complete answer within `timeoutMs` — fails with code `unavailable`
 * and `status` 0 (the underlying error is its `cause`).
 *
 * Retries. A request is retried only when BOTH hold:
 *   1. the failure is retryable: a 503 (`unavailable`) or 429 (`resource_exhausted`) answer, or no
 *      answer at all (connection error or timeout); and
 *   2. the request is idempotent: GET, PUT, DELETE; `pauseJob`/`resumeJob` (the server documents
 *      them as idempotent); and a POST that carries an idempotency key (`triggerJob` and `enqueue`
 *      with `idempotencyKey`, `enqueueBatch` when every item has one); the admin dry runs
 *      `planRebalance` and `planDrain`.
 * Everything else is sent once: `triggerJob`/`enqueue`/`enqueueBatch` without keys,
 * `cancelExecution`, `replayExecution`, `backfillJob`, and the admin steps (`moveShard`,
 * `transferLeader`, `removeReplica`, `rebalance`, `drainNode`). A retry could otherwise run the work twice.
 * `retry.attempts` (default 3) counts all attempts, the first included. Between attempts the client
 * waits the server's `Retry-After` when it sent one, else an exponential backoff with jitter
 * (`baseDelayMs` · 2^(n-1), halved-to-full random), both capped at `retry.maxDelayMs`. The error
 * finally thrown records the attempts made (`error.attempts`).
 * Two consequences of retrying after a lost answer: a conditional PUT (`ifMatch`) whose first
 * attempt did land fails its retry with `conflict`, and a DELETE's retry with `not_found`.
 *
 * Several nodes. `url` may be a list of base URLs (any node serves every request: it forwards to
 * the shard's leader). Requests go to one URL — the last one that answered — and move to the next
 * URL at once, within the same attempt, when the current one fails at the connection level:
 *   - any request, when it provably never left: DNS failure, connection refused or unreachable,
 *     no connection within `timeoutMs` (the socket never connected, so nothing was sent);
 *   - an idempotent request (see above) also when the connection broke or timed out after the
 *     request was sent but before the complete answer.
 * A request that is not idempotent and may have reached a node (a reset or timeout after the
 * connection was made) is not sent anywhere else: it fails with `unavailable`, as with one URL.
 * An attempt fails when every URL failed; then the retry rules above apply (the next attempt
 * starts again at the next URL). HTTP answers (503 included) do not move to another URL: any node
 * answers for the whole cluster. With a single URL nothing changes: a request that is not
 * idempotent is never sent twice.
 *
 * Times. Inputs (`at`, `startAt`, `endAt`, `runAt`, backfill `from`/`to`, list `from`/`to`) accept
 * a `Date` (sent as RFC 3339 UTC, `toISOString()`), a number (sent as milliseconds since the
 * epoch) or a string (sent as is: RFC 3339 with `Z` or an offset; the server refuses offset-less
 * strings). An invalid `Date` is refused locally with `invalid_argument`. Outputs are the server's
 * RFC 3339 UTC strings, returned unchanged (not `Date` objects).
 *
 * Ids in paths are URL-encoded (`encodeURIComponent`), so execution ids with `:` are safe.
 */
import { HttpTransport, NotSentError } from "./http-transport.js";
import { CronwheelApiError, errorFromResponse } from "./errors.js";
import type {
  AuditEntry,
  AuditFilter,
  AuditPage,
  Stats,
  StatsFilter,
  BackfillInput,
  BackfillResult,
  ClusterView,
  DeadLetterFilter,
  DeletedJob,
  DeleteJobOptions,
  EnqueueInput,
  Execution,
  ExecutionFilter,
  ExecutionPage,
  ExecutionResult,
  Health,
  Job,
  JobFilter,
  JobInput,
  JobPage,
  Preview,
  PutJobOptions,
  PutJobResult,
  Readiness,
  RebalancePlan,
  RebalanceRun,
  RebalanceStep,
  RebalanceStepResult,
  TimeInput,
  TriggerOptions,
} from "./types.js";

export interface ClientRetryOptions {
  /** All attempts, the first included; 1 disables retries. Default 3. */
  attempts?: number;
  /** First backoff step when the server gave no `Retry-After`. Default 200 ms. */
  baseDelayMs?: number;
  /** Cap on any wait between attempts, `Retry-After` included. Default 5,000 ms. */
  maxDelayMs?: number;
}

export interface ClientOptions {
  /**
   * Base URL of any node, e.g. `http://127.0.0.1:7070` (a path prefix is kept), or several: a
   * request moves to the next one when a node cannot be reached (see the file header).
   */
  url: string | readonly string[];
  /** Bearer token; omit when the server runs without a tokens file. */
  token?: string;
  /** Per attempt: the time to get the complete answer. Default 10,000 ms. */
  timeoutMs?: number;
  retry?: ClientRetryOptions;
}

export const DEFAULT_TIMEOUT_MS = 10_000;
export const DEFAULT_RETRY_ATTEMPTS = 3;
export const DEFAULT_RETRY_BASE_DELAY_MS = 200;
export const DEFAULT_RETRY_MAX_DELAY_MS = 5_000;

type QueryValue = string | number | boolean | undefined | null;

interface RequestSpec {
  method: "GET" | "PUT" | "POST" | "DELETE";
  path: string;
  query?: Record<string, QueryValue>;
  /** JSON body; undefined sends none. */
  body?: unknown;
  headers?: Record<string, string>;
  /** May be retried (see the file header). */
  idempotent: boolean;
  /** Statuses besides 2xx whose body is returned instead of thrown (readiness answers 503). */
  passStatuses?: number[];
}

interface RawResponse<T> {
  status: number;
  body: T;
}

/** An answer that may be retried, or a failure without an answer. */
class AttemptFailure {
  constructor(
    readonly error: CronwheelApiError,
    readonly retryable: boolean,
    /** No HTTP answer: the connection failed (another URL may work). */
    readonly connection: "not-sent" | "maybe-sent" | null = null,
  ) {}
}

export class Client {
  /** The first base URL (trailing slashes removed). */
  readonly url: string;
  /** Every base URL, in the order given. */
  readonly urls: readonly string[];
  /** Index in `urls` of the URL requests go to first (the last one that answered). */
  private current = 0;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly transport: HttpTransport;

  constructor(options: ClientOptions) {
    const given = typeof options.url === "string" ? [options.url] : [...(options.url ?? [])];
    if (given.length === 0) throw new TypeError("Client: url: at least one base URL");
    for (const url of given) {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new TypeError(`Client: url is not a URL: '${url}'`);
      }
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
        throw new TypeError(`Client: url must be http or https, got '${url}'`);
      }
    }
    this.urls = Object.freeze(given.map((url) => url.replace(/\/+$/, "")));
    this.url = this.urls[0]!;
    this.token = options.token;
    this.timeoutMs = positive(options.timeoutMs, DEFAULT_TIMEOUT_MS, "timeoutMs");
    this.attempts = Math.max(1, Math.floor(positive(options.retry?.attempts, DEFAULT_RETRY_ATTEMPTS, "retry.attempts")));
    this.baseDelayMs = nonNegative(options.retry?.baseDelayMs, DEFAULT_RETRY_BASE_DELAY_MS, "retry.baseDelayMs");
    this.maxDelayMs = nonNegative(options.retry?.maxDelayMs, DEFAULT_RETRY_MAX_DELAY_MS, "retry.maxDelayMs");
    this.transport = new HttpTransport();
  }

  /** Close the kept-alive connections (a Client that is dropped closes them when they idle out). */
  close(): void {
    this.transport.close();
  }

  // -------------------------------------------------------------------------------------------
  // jobs

  /** `PUT /v1/jobs/{id}`: creates (`created: true`) or replaces the job. */
  async putJob(id: string, input: JobInput, options: PutJobOptions = {}): Promise<PutJobResult> {
    const headers: Record<string, string> = {};
    if (options.ifMatch !== undefined) headers["if-match"] = String(options.ifMatch);
    const res = await this.request<Job>({ method: "PUT", path: jobPath(id), body: jobBody(input), headers, idempotent: true });
    return { job: res.body, created: res.status === 201 };
  }

  /** `GET /v1/jobs/{id}`. */
  async getJob(id: string): Promise<Job> {
    return (await this.request<Job>({ method: "GET", path: jobPath(id), idempotent: true })).body;
  }

  /** `GET /v1/jobs`: one page, in id order. */
  async listJobs(filter: JobFilter = {}): Promise<JobPage> {
    const query = { queue: filter.queue, label: filter.label, cursor: filter.cursor, limit: filter.limit };
    return (await this.request<JobPage>({ method: "GET", path: "/v1/jobs", query, idempotent: true })).body;
  }

  /** Every job matching the filter, page after page (`limit` is the page size). */
  async *iterateJobs(filter: JobFilter = {}): AsyncGenerator<Job, void, undefined> {
    let cursor = filter.cursor;
    for (;;) {
      const page = await this.listJobs({ ...filter, cursor });
      yield* page.jobs;
      if (page.nextCursor === null || page.nextCursor === undefined) return;
      cursor = nextCursor(cursor, page.nextCursor);
    }
  }

  /** `DELETE /v1/jobs/{id}`: no further fires; answers the job as it was. */
  async deleteJob(id: string, options: DeleteJobOptions = {}): Promise<DeletedJob> {
    const query = { cancelRunning: options.cancelRunning ? "true" : undefined };
    return (await this.request<DeletedJob>({ method: "DELETE", path: jobPath(id), query, idempotent: true })).body;
  }

  /** `POST /v1/jobs/{id}/pause` (idempotent). */
  async pauseJob(id: string): Promise<Job> {
    return (await this.request<Job>({ method: "POST", path: `${jobPath(id)}/pause`, idempotent: true })).body;
  }

  /** `POST /v1/jobs/{id}/resume` (idempotent; `conflict` for a completed or deleted job). */
  async resumeJob(id: string): Promise<Job> {
    return (await this.request<Job>({ method: "POST", path: `${jobPath(id)}/resume`, idempotent: true })).body;
  }

  /** `POST /v1/jobs/{id}/trigger`: run now. Retried only with an `idempotencyKey`. */
  async triggerJob(id: string, options: TriggerOptions = {}): Promise<ExecutionResult> {
    const body: Record<string, unknown> = {};
    if (options.payload !== undefined) body.payload = options.payload;
    if (options.idempotencyKey !== undefined) body.idempotencyKey = options.idempotencyKey;
    const res = await this.request<Execution>({
      method: "POST",
      path: `${jobPath(id)}/trigger`,
      body,
      idempotent: hasKey(options.idempotencyKey),
    });
    return { execution: res.body, created: res.status === 201 };
  }

  /** `GET /v1/jobs/{id}/preview?count=`: the next fire times (server default 10, at most 1000). */
  async previewJob(id: string, count?: number): Promise<Preview> {
    return (await this.request<Preview>({ method: "GET", path: `${jobPath(id)}/preview`, query: { count }, idempotent: true })).body;
  }

  /** `POST /v1/jobs/{id}/backfill`: creates the job's fires in `[from, to)` now. Sent once. */
  async backfillJob(id: string, range: BackfillInput): Promise<BackfillResult> {
    const body = { from: wireTime(range.from, "from"), to: wireTime(range.to, "to") };
    return (await this.request<BackfillResult>({ method: "POST", path: `${jobPath(id)}/backfill`, body, idempotent: false })).body;
  }

  // -------------------------------------------------------------------------------------------
  // executions

  /** `POST /v1/executions`: ad-hoc work. Retried only with an `idempotencyKey`. */
  async enqueue(input: EnqueueInput): Promise<ExecutionResult> {
    const res = await this.request<Execution>({
      method: "POST",
      path: "/v1/executions",
      body: enqueueBody(input),
      idempotent: hasKey(input.idempotencyKey),
    });
    return { execution: res.body, created: res.status === 201 };
  }

  /**
   * `POST /v1/executions/batch` (up to 1,000 items): one result per input, in order — either
   * `{ execution, created }` or the item's `CronwheelApiError` (its `details.index` is the item's
   * position). Tell them apart with `instanceof CronwheelApiError`. An error of the request as a
   * whole (auth, malformed body, too many items) throws. Retried only when every item has an
   * `idempotencyKey`.
   */
  async enqueueBatch(inputs: EnqueueInput[]): Promise<Array<ExecutionResult | CronwheelApiError>> {
    const res = await this.request<{ results: BatchItem[] }>({
      method: "POST",
      path: "/v1/executions/batch",
      body: { executions: inputs.map(enqueueBody) },
      idempotent: inputs.length > 0 && inputs.every((i) => hasKey(i.idempotencyKey)),
    });
    return res.body.results.map((item) =>
      item.execution !== undefined ? { execution: item.execution, created: item.status === 201 } : errorFromResponse(item.status, item, undefined),
    );
  }

  /** `GET /v1/executions/{id}`. */
  async getExecution(id: string): Promise<Execution> {
    return (await this.request<Execution>({ method: "GET", path: executionPath(id), idempotent: true })).body;
  }

  /** `GET /v1/executions`: one page, memory and history as one (live first, then newest finished first). */
  async listExecutions(filter: ExecutionFilter = {}): Promise<ExecutionPage> {
    return (await this.request<ExecutionPage>({ method: "GET", path: "/v1/executions", query: executionQuery(filter), idempotent: true })).body;
  }

  /** Every execution matching the filter, in list order, page after page. */
  iterateExecutions(filter: ExecutionFilter = {}): AsyncGenerator<Execution, void, undefined> {
    return everyPage(filter.cursor, async (cursor) => {
      const page = await this.listExecutions({ ...filter, cursor });
      return [page.executions, page.nextCursor];
    });
  }

  /** `POST /v1/executions/{id}/cancel` (`conflict` when it already ended). Sent once. */
  async cancelExecution(id: string): Promise<Execution> {
    return (await this.request<Execution>({ method: "POST", path: `${executionPath(id)}/cancel`, idempotent: false })).body;
  }

  /** `POST /v1/executions/{id}/replay`: a dead letter becomes a new execution. Sent once. */
  async replayExecution(id: string): Promise<Execution> {
    return (await this.request<Execution>({ method: "POST", path: `${executionPath(id)}/replay`, idempotent: false })).body;
  }

  /** `GET /v1/dead-letters`: executions in state `failed`, newest first. */
  async listDeadLetters(filter: DeadLetterFilter = {}): Promise<ExecutionPage> {
    return (await this.request<ExecutionPage>({ method: "GET", path: "/v1/dead-letters", query: executionQuery(filter), idempotent: true })).body;
  }

  /** Every dead letter matching the filter, page after page. */
  iterateDeadLetters(filter: DeadLetterFilter = {}): AsyncGenerator<Execution, void, undefined> {
    return everyPage(filter.cursor, async (cursor) => {
      const page = await this.listDeadLetters({ ...filter, cursor });
      return [page.executions, page.nextCursor];
    });
  }

  /** `GET /v1/audit`: one page of the audit trail, newest change first. */
  async listAudit(filter: AuditFilter = {}): Promise<AuditPage> {
    const time = (value: TimeInput | undefined, field: string) => (value === undefined ? undefined : wireTime(value, field));
    const query = { jobId: filter.jobId, action: filter.action, from: time(filter.from, "from"), to: time(filter.to, "to"), cursor: filter.cursor, limit: filter.limit };
    return (await this.request<AuditPage>({ method: "GET", path: "/v1/audit", query, idempotent: true })).body;
  }

  /** `GET /v1/stats`: counts, throughput, lateness and run-time percentiles, reasons and backlog over a range. */
  async stats(filter: StatsFilter = {}): Promise<Stats> {
    const time = (value: TimeInput | undefined, field: string) => (value === undefined ? undefined : wireTime(value, field));
    const query = { from: time(filter.from, "from"), to: time(filter.to, "to"), interval: filter.interval, by: filter.by, queue: filter.queue, jobId: filter.jobId };
    return (await this.request<Stats>({ method: "GET", path: "/v1/stats", query, idempotent: true })).body;
  }

  /** Every audit entry matching the filter, newest first, page after page. */
  iterateAudit(filter: AuditFilter = {}): AsyncGenerator<AuditEntry, void, undefined> {
    return everyPage(filter.cursor, async (cursor) => {
      const page = await this.listAudit({ ...filter, cursor });
      return [page.entries, page.nextCursor];
    });
  }

  // -------------------------------------------------------------------------------------------
  // cluster and operations

  /** `GET /v1/cluster`: nodes and shards. */
  async cluster(): Promise<ClusterView> {
    return (await this.request<ClusterView>({ method: "GET", path: "/v1/cluster", idempotent: true })).body;
  }

  // Admin operations (cluster mode; the admin role when auth is on; a standalone node answers
  // `invalid_argument`). A step blocks until it is done — seconds, longer while a big shard's new
  // replica catches up — so give the client a `timeoutMs` to match. Steps are sent once (a retry
  // of a move that did happen fails); dry runs change nothing and may be retried.

  /** `POST /v1/cluster/shards/{id}/move`: one replica of `shard` from node `from` to node `to`. */
  async moveShard(shard: number, from: string, to: string): Promise<RebalanceStepResult> {
    return (await this.request<RebalanceStepResult>({ method: "POST", path: `${shardPath(shard)}/move`, body: { from, to }, idempotent: false })).body;
  }

  /** `POST /v1/cluster/shards/{id}/leader`: `to` (which holds a replica) becomes the shard's leader. */
  async transferLeader(shard: number, to: string): Promise<RebalanceStepResult> {
    return (await this.request<RebalanceStepResult>({ method: "POST", path: `${shardPath(shard)}/leader`, body: { node: to }, idempotent: false })).body;
  }

  /**
   * `POST /v1/cluster/shards/{id}/remove`: take `node`'s replica out of a shard that has more than
   * the replication factor (what a move that stopped halfway leaves); refused otherwise.
   */
  async removeReplica(shard: number, node: string): Promise<RebalanceStepResult> {
    return (await this.request<RebalanceStepResult>({ method: "POST", path: `${shardPath(shard)}/remove`, body: { node }, idempotent: false })).body;
  }

  /** One step of a plan, through `moveShard`, `transferLeader` or `removeReplica`. */
  runStep(step: RebalanceStep): Promise<RebalanceStepResult> {
    switch (step.kind) {
      case "move":
        return this.moveShard(step.shard, step.from, step.to);
      case "leader":
        return this.transferLeader(step.shard, step.to);
      case "remove":
        return this.removeReplica(step.shard, step.node);
    }
  }

  /** `POST /v1/cluster/rebalance?dryRun=true`: the steps that would spread replicas and leaders evenly. */
  async planRebalance(): Promise<RebalancePlan> {
    return (await this.request<RebalancePlan>({ method: "POST", path: "/v1/cluster/rebalance", query: { dryRun: "true" }, idempotent: true })).body;
  }

  /** `POST /v1/cluster/rebalance`: plans and runs every step, then answers. */
  async rebalance(): Promise<RebalanceRun> {
    return (await this.request<RebalanceRun>({ method: "POST", path: "/v1/cluster/rebalance", idempotent: false })).body;
  }

  /** `POST /v1/cluster/nodes/{id}/drain?dryRun=true`: the moves that would take every replica off `node`. */
  async planDrain(node: string): Promise<RebalancePlan> {
    return (await this.request<RebalancePlan>({ method: "POST", path: `${nodePath(node)}/drain`, query: { dryRun: "true" }, idempotent: true })).body;
  }

  /** `POST /v1/cluster/nodes/{id}/drain`: marks `node` drained (rebalances leave it out), then runs its plan. */
  async drainNode(node: string): Promise<RebalanceRun> {
    return (await this.request<RebalanceRun>({ method: "POST", path: `${nodePath(node)}/drain`, idempotent: false })).body;
  }

  /** `GET /healthz`: `{ status: "ok" }` while the process is alive. */
  async health(): Promise<Health> {
    return (await this.request<Health>({ method: "GET", path: "/healthz", idempotent: true })).body;
  }

  /**
   * `GET /readyz`: `{ ready }`. A node that answers "not ready" (503 with `{ ready: false }`)
   * gives `{ ready: false }` at once, without retries; no answer at all throws `unavailable`.
   */
  async ready(): Promise<Readiness> {
    const res = await this.request<unknown>({ method: "GET", path: "/readyz", idempotent: true, passStatuses: [503] });
    const ready = (res.body as { ready?: unknown } | null)?.ready;
    if (typeof ready === "boolean") return { ready };
    if (res.status === 503) throw errorFromResponse(res.status, res.body, undefined);
    return { ready: true };
  }

  // -------------------------------------------------------------------------------------------
  // transport

  private async request<T>(spec: RequestSpec): Promise<RawResponse<T>> {
    for (let attempt = 1; ; attempt++) {
      const outcome = await this.attemptEachUrl<T>(spec);
      if (!(outcome instanceof AttemptFailure)) return outcome;
      if (!outcome.retryable || !spec.idempotent || attempt >= this.attempts) throw outcome.error.withAttempts(attempt);
      if (outcome.connection !== null && this.urls.length > 1) this.current = (this.current + 1) % this.urls.length;
      await sleep(this.delayBefore(attempt + 1, outcome.error.retryAfterSec));
    }
  }

  /**
   * One attempt: the current URL, then — on a connection-level failure the request may be resent
   * after (see the file header) — each other URL once, in order. The URL that answers becomes the
   * current one.
   */
  private async attemptEachUrl<T>(spec: RequestSpec): Promise<RawResponse<T> | AttemptFailure> {
    const first = this.current;
    let outcome: RawResponse<T> | AttemptFailure | undefined;
    for (let i = 0; i < this.urls.length; i++) {
      const index = (first + i) % this.urls.length;
      outcome = await this.attempt<T>(spec, this.urls[index]!);
      const failover = outcome instanceof AttemptFailure && (outcome.connection === "not-sent" || (outcome.connection === "maybe-sent" && spec.idempotent));
      if (!failover) {
        if (i > 0 || !(outcome instanceof AttemptFailure)) this.current = index;
        return outcome;
      }
    }
    return outcome!;
  }

  /** The wait before attempt `next` (≥ 2). */
  private delayBefore(next: number, retryAfterSec: number | undefined): number {
    if (retryAfterSec !== undefined) return Math.min(retryAfterSec * 1000, this.maxDelayMs);
    const step = Math.min(this.baseDelayMs * 2 ** (next - 2), this.maxDelayMs);
    return step / 2 + Math.random() * (step / 2);
  }

  private async attempt<T>(spec: RequestSpec, base: string): Promise<RawResponse<T> | AttemptFailure> {
    const url = base + spec.path + queryString(spec.query);
    const headers: Record<string, string> = { accept: "application/json", ...spec.headers };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let body: string | undefined;
    if (spec.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(spec.body);
    }
    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      ({ status, text, retryAfter } = await this.transport.request(url, spec.method, headers, body, this.timeoutMs));
    } catch (error) {
      return new AttemptFailure(networkError(error, spec.method, url, this.timeoutMs), true, error instanceof NotSentError ? "not-sent" : "maybe-sent");
    }
    let parsed: unknown = text;
    let isJson = false;
    if (text !== "") {
      try {
        parsed = JSON.parse(text);
        isJson = true;
      } catch {
        // not JSON: kept as text for the error message
      }
    } else {
      parsed = null;
      isJson = true;
    }
    if ((status >= 200 && status < 300) || spec.passStatuses?.includes(status)) {
      if (!isJson) {
        return new AttemptFailure(
          new CronwheelApiError("internal", `${spec.method} ${spec.path}: the answer is not JSON: ${text.slice(0, 200)}`, { status }),
          false,
        );
      }
      return { status, body: parsed as T };
    }
    const error = errorFromResponse(status, parsed, parseRetryAfter(retryAfter));
    return new AttemptFailure(error, status === 503 || status === 429);
  }
}

interface BatchItem {
  status: number;
  execution?: Execution;
  error?: { code: string; message: string; details?: Record<string, unknown> };
}

function jobPath(id: string): string {
  return `/v1/jobs/${encodeURIComponent(id)}`;
}

function executionPath(id: string): string {
  return `/v1/executions/${encodeURIComponent(id)}`;
}

function shardPath(shard: number): string {
  if (!Number.isSafeInteger(shard) || shard < 0) throw new CronwheelApiError("invalid_argument", `shard: expected a shard number, got ${shard}`, { details: { field: "shard" } });
  return `/v1/cluster/shards/${shard}`;
}

function nodePath(node: string): string {
  return `/v1/cluster/nodes/${encodeURIComponent(node)}`;
}

/** The cursor for the next page; a server that hands back the same cursor would loop forever. */
function nextCursor(previous: string | undefined, next: string): string {
  if (next === previous) throw new CronwheelApiError("internal", "the server returned the same page cursor twice");
  return next;
}

function hasKey(key: string | null | undefined): boolean {
  return typeof key === "string" && key.length > 0;
}

function queryString(query: Record<string, QueryValue> | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    params.append(name, String(value));
  }
  const s = params.toString();
  return s === "" ? "" : `?${s}`;
}

/** A time for the wire: Date → RFC 3339 UTC, number → ms, string → as is. */
export function wireTime(value: TimeInput, field: string): string | number {
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new CronwheelApiError("invalid_argument", `${field}: invalid Date`, { details: { field } });
    return value.toISOString();
  }
  if (typeof value === "number" || typeof value === "string") return value;
  throw new CronwheelApiError("invalid_argument", `${field}: expected a Date, ms since the epoch or an RFC 3339 string`, { details: { field } });
}

function nullableTime(value: TimeInput | null | undefined, field: string): string | number | null | undefined {
  return value === undefined || value === null ? value : wireTime(value, field);
}

function jobBody(input: JobInput): Record<string, unknown> {
  const body: Record<string, unknown> = { ...input };
  for (const field of ["at", "startAt", "endAt"] as const) {
    if (body[field] !== undefined) body[field] = nullableTime(input[field], field);
  }
  return body;
}

function enqueueBody(input: EnqueueInput): Record<string, unknown> {
  const body: Record<string, unknown> = { ...input };
  if (body.runAt !== undefined) body.runAt = nullableTime(input.runAt, "runAt");
  return body;
}

function parseRetryAfter(header: string | null): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

function networkError(error: unknown, method: string, url: string, timeoutMs: number): CronwheelApiError {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") {
    return new CronwheelApiError("unavailable", `${method} ${url}: no answer within ${timeoutMs} ms`, { cause: error });
  }
  const why = e?.cause?.code ?? e?.cause?.message ?? e?.message ?? String(error);
  return new CronwheelApiError("unavailable", `${method} ${url}: cannot reach the server: ${why}`, { cause: error });
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) throw new TypeError(`Client: ${name} must be a positive number`);
  return value;
}

function nonNegative(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value) || value < 0) throw new TypeError(`Client: ${name} must be a number ≥ 0`);
  return value;
}

/** Every item of a listing, from `cursor` on: `fetch` answers one page and the cursor after it. */
async function* everyPage<T>(cursor: string | undefined, fetch: (cursor: string | undefined) => Promise<[T[], string | null | undefined]>): AsyncGenerator<T, void, undefined> {
  for (;;) {
    const [items, next] = await fetch(cursor);
    yield* items;
    if (next === null || next === undefined) return;
    cursor = nextCursor(cursor, next);
  }
}

/** The query string of an execution or dead-letter listing. */
function executionQuery(filter: ExecutionFilter): Record<string, string | number | undefined> {
  const time = (value: TimeInput | undefined, field: string) => (value === undefined ? undefined : wireTime(value, field));
  return {
    jobId: filter.jobId,
    queue: filter.queue,
    label: filter.label,
    state: filter.state,
    reason: filter.reason,
    workerId: filter.workerId,
    from: time(filter.from, "from"),
    to: time(filter.to, "to"),
    finishedFrom: time(filter.finishedFrom, "finishedFrom"),
    finishedTo: time(filter.finishedTo, "finishedTo"),
    cursor: filter.cursor,
    limit: filter.limit,
  };
}
