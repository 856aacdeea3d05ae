/**
 * The contract's HTTP routes (docs/api.md): each turns a request into a validated call on the node and
 * its result into the contract's JSON. Validation lives in `validation.ts`, rendering in
 * `views.ts`, decisions in the shard state machine; this file only translates.
 */
import { CronwheelError, invalidArgument } from "../core/errors.js";
import { enqueueSlot } from "../node/node.js";
import type { Step } from "../../cluster/rebalancer.js";
import type { ExecutionResult, JobPutResult } from "../core/shard-state.js";
import type { CronwheelNode, ExecutionAnswer } from "../node/node.js";
import { actorOf, requireRole, type Principal } from "./auth.js";
import {
  parseBackfillBody,
  parseEnqueueBatchBody,
  parseEnqueueBody,
  parseJobBody,
  parseJsonBody,
  parseLabelFilter,
  parseListQuery,
  parseQueryTime,
  parseStatsQuery,
  parseTriggerBody,
  validateJobId,
  type Limits,
} from "./validation.js";
import { errorBody, STATUS_OF } from "./http-errors.js";
import { auditView, executionView, jobRunsView, jobView, previewView } from "./views.js";
import { auditPosition, type AuditAction } from "../core/audit.js";
import { mergeBacklogs, renderStats, StatsTallies } from "../history/stats.js";
import { forwardedJson, forwardRequest } from "./forwarding.js";
import { CLUSTER_TIMING } from "../../cluster/timing.js";
import { slotOf, slotOfExecution } from "../core/routing.js";
import type { EnqueueSpec } from "../core/types.js";
import { mergePages, type ListPosition, type PagePart } from "../core/list-order.js";
import { isTerminal, type ExecutionState } from "../core/execution.js";

export interface ApiRequest {
  method: string;
  /** The path and query as received, for forwarding. */
  rawPath: string;
  authorization: string;
  /** Set when another node forwarded this request here (it is served or refused, never forwarded again). */
  forwardedBy: string;
  /** A listing asked for this node's own shards only (by a node merging every leader's part). */
  scopeLocal: boolean;
  /** Path segments after the leading slash, percent-decoded. */
  segments: string[];
  query: URLSearchParams;
  ifMatch: string;
  body: Buffer;
  principal: Principal;
}

export interface ApiResponse {
  status: number;
  body: unknown;
  /** An answer passed through from another node as it was. */
  raw?: string;
  retryAfterSec?: number;
}

export interface RouteContext {
  node: CronwheelNode;
  limits: Limits;
  advertise: string;
  now(): number;
}

type Handler = (req: ApiRequest, params: string[], ctx: RouteContext) => Promise<ApiResponse> | ApiResponse;

/**
 * Where a request runs: the routing slot of the shard it touches (forwarded to that shard's
 * leader), "any" (any leader will do: ad-hoc work without keys), or, when absent, this node
 * (cluster views, listings that merge every leader's part themselves).
 */
type Placer = (req: ApiRequest, params: string[]) => number | "any" | "here";

interface Route {
  method: string;
  /** Literal segments, or null where a parameter goes. */
  pattern: Array<string | null>;
  handler: Handler;
  placer?: Placer;
}

const routes: Route[] = [];

function route(method: string, path: string, handler: Handler, placer?: Placer): void {
  const pattern = path
    .split("/")
    .filter((s) => s !== "")
    .map((s) => (s.startsWith(":") ? null : s));
  routes.push({ method, pattern, handler, placer });
}

/** Run the route here, or pass the request to the node that leads its shard. */
function placed(r: Route, req: ApiRequest, params: string[], ctx: RouteContext): Promise<ApiResponse> | ApiResponse {
  if (!r.placer) return r.handler(req, params, ctx);
  const where = r.placer(req, params);
  if (where === "here") return r.handler(req, params, ctx);
  const placement = where === "any" ? ctx.node.anyLeader() : ctx.node.placement(where);
  if (placement.kind === "local") return r.handler(req, params, ctx);
  if (req.forwardedBy !== "") throw notLeaderHere(req);
  return forwardRequest(placement.address, req, { fromNodeId: ctx.node.opts.nodeId, timeoutMs: CLUSTER_TIMING.forwardTimeoutMs });
}

function notLeaderHere(req: ApiRequest): CronwheelError {
  return new CronwheelError("unavailable", `leadership moved while ${req.forwardedBy} forwarded this request; retry`, undefined, 1);
}

/** The other leaders' parts of a listing (none when this node serves every shard or was asked for its own part). */
async function otherParts<T>(req: ApiRequest, ctx: RouteContext): Promise<T[]> {
  if (req.scopeLocal) return [];
  const others = ctx.node.otherLeaders();
  const answers = await Promise.all(
    others.map((o) => forwardRequest(o.address, req, { fromNodeId: ctx.node.opts.nodeId, timeoutMs: CLUSTER_TIMING.forwardTimeoutMs, scopeLocal: true })),
  );
  return answers.map((a) => forwardedJson(a) as T);
}

/** Finds the route; 404 for an unknown path, 405-as-400 for a known path with another method. */
export function dispatch(req: ApiRequest, ctx: RouteContext): Promise<ApiResponse> | ApiResponse {
  let pathMatched = false;
  for (const r of routes) {
    if (r.pattern.length !== req.segments.length) continue;
    const params: string[] = [];
    let ok = true;
    for (let i = 0; i < r.pattern.length; i++) {
      const literal = r.pattern[i];
      if (literal === null) params.push(req.segments[i]!);
      else if (literal !== req.segments[i]) {
        ok = false;
        break;
      }
    }
    if (!ok) continue;
    pathMatched = true;
    if (r.method === req.method) return placed(r, req, params, ctx);
  }
  if (pathMatched) throw invalidArgument(`method ${req.method} is not allowed on /${req.segments.join("/")}`);
  throw new CronwheelError("not_found", `no such endpoint: /${req.segments.join("/")}`);
}

const ok = (body: unknown): ApiResponse => ({ status: 200, body });

function body(req: ApiRequest, optional = false): unknown {
  return parseJsonBody(req.body, { optional });
}

function noBody(req: ApiRequest): void {
  if (req.body.length > 0 && req.body.toString("utf8").trim() !== "") {
    throw invalidArgument("this endpoint takes no request body");
  }
}

function ifMatch(req: ApiRequest): number | null {
  if (req.ifMatch === "") return null;
  const v = req.ifMatch.replace(/^W\//, "").replace(/^"(.*)"$/, "$1");
  if (!/^\d{1,15}$/.test(v)) throw invalidArgument(`If-Match: expected a job version number, got '${req.ifMatch.slice(0, 40)}'`, { field: "If-Match" });
  return Number(v);
}

/** Opaque cursors: base64url JSON, so clients cannot come to depend on their shape. */
function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

function decodeCursor<T>(cursor: string | undefined, check: (v: unknown) => v is T): T | undefined {
  if (cursor === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    value = undefined;
  }
  if (!check(value)) throw invalidArgument("cursor: not a cursor this server gave out", { field: "cursor" });
  return value;
}

const isJobCursor = (v: unknown): v is { a: string } => typeof v === "object" && v !== null && typeof (v as { a: unknown }).a === "string";
const isExecutionCursor = (v: unknown): v is { t: number; i: string; f?: 1 } =>
  typeof v === "object" && v !== null && Number.isSafeInteger((v as { t: unknown }).t) && typeof (v as { i: unknown }).i === "string" && [undefined, 1].includes((v as { f?: unknown }).f as 1);

const clientRoles = ["admin", "client"] as const;

function isJobId(id: string): boolean {
  try {
    validateJobId(id);
    return true;
  } catch {
    return false;
  }
}

// Placers: which shard a request touches. An id that fails validation runs here, to be refused.
const jobSlot: Placer = (req, [id]) => (isJobId(id!) ? slotOf(req.principal.tenant, id!) : "here");
const executionSlot: Placer = (req, [id]) => slotOfExecution(req.principal.tenant, id!) ?? "here";
/** An enqueue goes where its keys say, or to any leader; a body that does not parse is refused here. */
const enqueuePlacer: Placer = (req) => {
  const keys = enqueueKeys(req.body);
  if (keys === null) return "here";
  return enqueueSlot(req.principal.tenant, keys) ?? "any";
};

/** The ordering and idempotency keys of an enqueue body, or null if it is not a JSON object. */
function enqueueKeys(raw: Buffer | unknown): { orderingKey: string | null; idempotencyKey: string | null } | null {
  let v: unknown = raw;
  if (Buffer.isBuffer(raw)) {
    try {
      v = JSON.parse(raw.toString("utf8"));
    } catch {
      return null;
    }
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
  const o = v as { orderingKey?: unknown; idempotencyKey?: unknown };
  const key = (k: unknown) => (typeof k === "string" ? k : null);
  return { orderingKey: key(o.orderingKey), idempotencyKey: key(o.idempotencyKey) };
}

// ---------------------------------------------------------------------------------------------
// jobs

route("PUT", "/v1/jobs/:id", async (req, [id], ctx) => {
  requireRole(req.principal, ...clientRoles);
  const jobId = validateJobId(id!);
  const spec = parseJobBody(body(req), ctx.limits);
  const r: JobPutResult = await ctx.node.putJob(req.principal.tenant, jobId, spec, ifMatch(req), actorOf(req.principal));
  return { status: r.created ? 201 : 200, body: jobView(r.job) };
}, jobSlot);

route("GET", "/v1/jobs/:id", async (req, [id], ctx) => {
  const jobId = validateJobId(id!);
  const job = ctx.node.getJob(req.principal.tenant, jobId);
  const runs = await ctx.node.jobRuns(req.principal.tenant, jobId);
  return ok({ ...jobView(job), ...(runs && jobRunsView(runs)) });
}, jobSlot);

route("GET", "/v1/jobs", async (req, _p, ctx) => {
  const q = parseListQuery(req.query, ["queue", "label", "cursor", "limit"]);
  const limit = Number(q.limit);
  const after = decodeCursor(q.cursor, isJobCursor);
  const jobs = ctx.node
    .listJobs(req.principal.tenant, {
      queue: q.queue,
      label: q.label !== undefined ? parseLabelFilter(q.label) : undefined,
      afterId: after?.a,
      limit,
    })
    .map((j) => jobView(j) as unknown as JobListView);
  // Every leader lists its own shards; the merge keeps id order and the page size.
  const merged = jobs.concat(...(await otherParts<{ jobs: JobListView[] }>(req, ctx)).map((p) => p.jobs));
  merged.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const page = merged.slice(0, limit);
  const last = page[page.length - 1];
  return ok({ jobs: page, nextCursor: page.length === limit && last ? encodeCursor({ a: last.id }) : null });
});

route("DELETE", "/v1/jobs/:id", async (req, [id], ctx) => {
  requireRole(req.principal, ...clientRoles);
  const q = parseListQuery(req.query, ["cancelRunning"]);
  const r: JobPutResult = await ctx.node.deleteJob(req.principal.tenant, validateJobId(id!), q.cancelRunning === "true", actorOf(req.principal));
  return ok({ ...jobView(r.job), deleted: true });
}, jobSlot);

for (const action of ["pause", "resume"] as const) {
  route("POST", `/v1/jobs/:id/${action}`, async (req, [id], ctx) => {
    requireRole(req.principal, ...clientRoles);
    noBody(req);
    const r: JobPutResult = await ctx.node.setJobPaused(req.principal.tenant, validateJobId(id!), action === "pause", actorOf(req.principal));
    return ok(jobView(r.job));
  }, jobSlot);
}

route("POST", "/v1/jobs/:id/trigger", async (req, [id], ctx) => {
  requireRole(req.principal, ...clientRoles);
  const jobId = validateJobId(id!);
  const t = parseTriggerBody(body(req, true), ctx.limits);
  const r: ExecutionAnswer = await ctx.node.triggerJob(req.principal.tenant, jobId, t.payload, t.idempotencyKey, actorOf(req.principal));
  return { status: r.created ? 201 : 200, body: executionView(r.execution) };
}, jobSlot);

route("GET", "/v1/jobs/:id/preview", (req, [id], ctx) => {
  const q = parseListQuery(req.query, ["count"]);
  return ok(previewView(ctx.node.previewJob(req.principal.tenant, validateJobId(id!), Number(q.count))));
}, jobSlot);

route("POST", "/v1/jobs/:id/backfill", async (req, [id], ctx) => {
  requireRole(req.principal, ...clientRoles);
  const jobId = validateJobId(id!);
  const { fromMs, toMs } = parseBackfillBody(body(req), ctx.now());
  return ok(await ctx.node.backfillJob(req.principal.tenant, jobId, fromMs, toMs, actorOf(req.principal)));
}, jobSlot);

// ---------------------------------------------------------------------------------------------
// executions

route("POST", "/v1/executions", async (req, _p, ctx) => {
  requireRole(req.principal, ...clientRoles);
  const spec = parseEnqueueBody(body(req), ctx.limits);
  const r: ExecutionAnswer = await ctx.node.enqueue(req.principal.tenant, spec);
  return { status: r.created ? 201 : 200, body: executionView(r.execution) };
}, enqueuePlacer);

route("POST", "/v1/executions/batch", async (req, _p, ctx) => {
  requireRole(req.principal, ...clientRoles);
  const json = body(req);
  const items = parseEnqueueBatchBody(json, ctx.limits);
  const originals = (json as { executions: unknown[] }).executions;
  type Result = { status: number; execution?: unknown; error?: unknown };
  const results: Result[] = new Array(items.length);
  const failed = (i: number, error: unknown): void => {
    if (!(error instanceof CronwheelError)) throw error;
    results[i] = { status: STATUS_OF[error.code], ...errorBody(error) };
  };
  // Each item goes where its shard is led: this node's items in one record per shard, every
  // other leader's items in one forwarded batch.
  const local: number[] = [];
  const remote = new Map<string, number[]>();
  items.forEach((item, i) => {
    try {
      if (item instanceof CronwheelError) throw item;
      const slot = enqueueSlot(req.principal.tenant, item);
      const placement = slot === null ? ctx.node.anyLeader() : ctx.node.placement(slot);
      if (placement.kind === "local") return void local.push(i);
      if (req.forwardedBy !== "") throw notLeaderHere(req);
      const theirs = remote.get(placement.address);
      if (theirs) theirs.push(i);
      else remote.set(placement.address, [i]);
    } catch (error) {
      failed(i, error);
    }
  });
  const here = ctx.node.enqueueBatch(req.principal.tenant, local.map((i) => items[i] as EnqueueSpec)).then((answers) =>
    answers.forEach((answer, k) => {
      if (answer instanceof CronwheelError) return failed(local[k]!, answer);
      results[local[k]!] = { status: answer.created ? 201 : 200, execution: executionView(answer.execution) };
    }),
  );
  const elsewhere = [...remote].map(async ([address, indexes]) => {
    try {
      const answer = await forwardRequest(address, req, {
        fromNodeId: ctx.node.opts.nodeId,
        timeoutMs: CLUSTER_TIMING.forwardTimeoutMs,
        body: Buffer.from(JSON.stringify({ executions: indexes.map((i) => originals[i]) })),
      });
      const { results: theirs } = forwardedJson(answer) as { results: Result[] };
      indexes.forEach((i, k) => (results[i] = theirs[k]!));
    } catch (error) {
      for (const i of indexes) failed(i, error);
    }
  });
  await Promise.all([here, ...elsewhere]);
  return ok({ results });
});

route("GET", "/v1/executions/:id", async (req, [id], ctx) => ok(executionView(await ctx.node.getExecution(req.principal.tenant, id!))), executionSlot);

route("POST", "/v1/executions/:id/cancel", async (req, [id], ctx) => {
  requireRole(req.principal, ...clientRoles);
  noBody(req);
  const r: ExecutionResult = await ctx.node.cancelExecution(req.principal.tenant, id!, actorOf(req.principal));
  return ok(executionView(r.execution));
}, executionSlot);

route("POST", "/v1/executions/:id/replay", async (req, [id], ctx) => {
  requireRole(req.principal, ...clientRoles);
  noBody(req);
  const r: ExecutionResult = await ctx.node.replayExecution(req.principal.tenant, id!, actorOf(req.principal));
  return { status: 201, body: executionView(r.execution) };
}, executionSlot);

async function listExecutions(req: ApiRequest, ctx: RouteContext, allowed: string[], state?: string): Promise<ApiResponse> {
  const q = parseListQuery(req.query, allowed);
  const limit = Number(q.limit);
  const after = decodeCursor(q.cursor, isExecutionCursor);
  const time = (name: string) => (q[name] !== undefined ? parseQueryTime(q[name]!, name) : undefined);
  const here = await ctx.node.listExecutions(
    req.principal.tenant,
    {
      jobId: q.jobId,
      queue: q.queue,
      state: state ?? q.state,
      reason: q.reason,
      workerId: q.workerId,
      label: q.label === undefined ? undefined : parseLabelFilter(q.label),
      fromMs: time("from"),
      toMs: time("to"),
      finishedFromMs: time("finishedFrom"),
      finishedToMs: time("finishedTo"),
      limit,
    },
    after && cursorPosition(after),
  );
  // Every leader's part, merged in list order (live first, then finished; see list-order.ts).
  const parts: PagePart<ExecutionListView>[] = [
    { items: here.items.map((e) => executionView(e) as unknown as ExecutionListView), stoppedAt: here.items.length < limit ? here.next : null },
  ];
  for (const theirs of await otherParts<{ executions: ExecutionListView[]; nextCursor: string | null }>(req, ctx)) {
    const next = theirs.nextCursor === null ? undefined : decodeCursor(theirs.nextCursor, isExecutionCursor);
    parts.push({ items: theirs.executions, stoppedAt: next && theirs.executions.length < limit ? cursorPosition(next) : null });
  }
  const page = mergePages(parts, limit, viewPosition);
  return ok({ executions: page.items, nextCursor: page.next ? encodeCursor(positionCursor(page.next)) : null });
}

interface JobListView {
  id: string;
}

interface ExecutionListView {
  id: string;
  state: string;
  createdAt: string;
  finishedAt?: string;
}

function viewPosition(v: ExecutionListView): ListPosition {
  return v.finishedAt !== undefined && isTerminal(v.state as ExecutionState)
    ? { live: false, finishedAt: Date.parse(v.finishedAt), id: v.id }
    : { live: true, createdAt: Date.parse(v.createdAt), id: v.id };
}

/** An execution cursor: `f` set for a place among finished executions (cursors from before history have none). */
type ExecutionCursor = { t: number; i: string; f?: 1 };

function cursorPosition(c: ExecutionCursor): ListPosition {
  return c.f === 1 ? { live: false, finishedAt: c.t, id: c.i } : { live: true, createdAt: c.t, id: c.i };
}

function positionCursor(p: ListPosition): ExecutionCursor {
  return p.live ? { t: p.createdAt, i: p.id } : { t: p.finishedAt, i: p.id, f: 1 };
}
const EXECUTION_FILTERS = ["jobId", "queue", "label", "reason", "workerId", "from", "to", "finishedFrom", "finishedTo", "cursor", "limit"];
route("GET", "/v1/executions", (req, _p, ctx) => listExecutions(req, ctx, ["state", ...EXECUTION_FILTERS]));
route("GET", "/v1/dead-letters", (req, _p, ctx) => listExecutions(req, ctx, EXECUTION_FILTERS, "failed"));

// ---------------------------------------------------------------------------------------------
// stats

route("GET", "/v1/stats", async (req, _p, ctx) => {
  const nowMs = ctx.now();
  const p = parseStatsQuery(req.query, nowMs);
  const mine = await ctx.node.executionStats(req.principal.tenant, p);
  // A peer asked for this node's part: the mergeable tallies. The node asked answers for all.
  if (req.scopeLocal) return ok(mine);
  const tallies = StatsTallies.fromWire(mine.tallies);
  const backlogs = [mine.backlog];
  for (const theirs of await otherParts<typeof mine>(req, ctx)) {
    tallies.merge(StatsTallies.fromWire(theirs.tallies));
    backlogs.push(theirs.backlog);
  }
  return ok(renderStats(tallies, mergeBacklogs(backlogs), { ...p, nowMs, topReasons: 10 }));
});

// ---------------------------------------------------------------------------------------------
// audit trail

type AuditListView = { id: string; at: string };
const auditViewPosition = (v: AuditListView): ListPosition => auditPosition({ at: Date.parse(v.at), id: v.id });
const isAuditCursor = (v: unknown): v is { a: number; i: string } =>
  typeof v === "object" && v !== null && Number.isSafeInteger((v as { a: unknown }).a) && typeof (v as { i: unknown }).i === "string" && /^\d{4}-\d{12}$/.test((v as { i: string }).i);

route("GET", "/v1/audit", async (req, _p, ctx) => {
  requireRole(req.principal, ...clientRoles);
  const q = parseListQuery(req.query, ["jobId", "action", "from", "to", "cursor", "limit"]);
  const limit = Number(q.limit);
  const after = decodeCursor(q.cursor, isAuditCursor);
  const entries = await ctx.node.listAudit(req.principal.tenant, {
    jobId: q.jobId,
    action: q.action as AuditAction | undefined,
    fromMs: q.from === undefined ? undefined : parseQueryTime(q.from, "from"),
    toMs: q.to === undefined ? undefined : parseQueryTime(q.to, "to"),
    before: after && { at: after.a, id: after.i },
    limit,
  });
  // Every node's part is complete up to `limit`: the first `limit` of all of them is the page.
  const parts: PagePart<AuditListView>[] = [{ items: entries.map((e) => auditView(e) as AuditListView), stoppedAt: null }];
  for (const theirs of await otherParts<{ entries: AuditListView[] }>(req, ctx)) parts.push({ items: theirs.entries, stoppedAt: null });
  const page = mergePages(parts, limit, auditViewPosition);
  const last = page.items[page.items.length - 1];
  return ok({ entries: page.items, nextCursor: page.items.length === limit && last ? encodeCursor({ a: Date.parse(last.at), i: last.id }) : null });
});

// ---------------------------------------------------------------------------------------------
// cluster

route("GET", "/v1/cluster", (_req, _p, ctx) => ok(ctx.node.clusterView()));

// Admin operations (cluster mode): each step changes one replica or leadership at a time.

function stepBody(req: ApiRequest, fields: string[]): Record<string, string> {
  const b = body(req);
  if (typeof b !== "object" || b === null || Array.isArray(b)) throw invalidArgument("expected a JSON object");
  const out: Record<string, string> = {};
  for (const f of fields) {
    const v = (b as Record<string, unknown>)[f];
    if (typeof v !== "string" || v === "") throw invalidArgument(`${f}: expected a node id`, { field: f });
    out[f] = v;
  }
  return out;
}

function shardIdParam(id: string): number {
  if (!/^\d{1,6}$/.test(id)) throw invalidArgument(`shard id: expected a number, got '${id.slice(0, 20)}'`, { field: "shardId" });
  return Number(id);
}

/** `?dryRun=true` answers the plan only; otherwise the steps run one after another. */
async function runSteps(req: ApiRequest, ctx: RouteContext, steps: Step[]): Promise<ApiResponse> {
  const q = parseListQuery(req.query, ["dryRun"]);
  if (q.dryRun === "true") return ok({ steps });
  const results = [];
  for (const step of steps) results.push(await ctx.node.rebalancer().run(step));
  return ok({ steps, results });
}

route("POST", "/v1/cluster/shards/:id/move", async (req, [id], ctx) => {
  requireRole(req.principal, "admin");
  const { from, to } = stepBody(req, ["from", "to"]);
  return ok(await ctx.node.rebalancer().run({ kind: "move", shard: shardIdParam(id!), from: from!, to: to! }));
});

route("POST", "/v1/cluster/shards/:id/leader", async (req, [id], ctx) => {
  requireRole(req.principal, "admin");
  const { node } = stepBody(req, ["node"]);
  return ok(await ctx.node.rebalancer().run({ kind: "leader", shard: shardIdParam(id!), to: node! }));
});

route("POST", "/v1/cluster/shards/:id/remove", async (req, [id], ctx) => {
  requireRole(req.principal, "admin");
  const { node } = stepBody(req, ["node"]);
  return ok(await ctx.node.rebalancer().run({ kind: "remove", shard: shardIdParam(id!), node: node! }));
});

route("POST", "/v1/cluster/rebalance", async (req, _p, ctx) => {
  requireRole(req.principal, "admin");
  return runSteps(req, ctx, await ctx.node.rebalancer().plan());
});

route("POST", "/v1/cluster/nodes/:id/drain", async (req, [id], ctx) => {
  requireRole(req.principal, "admin");
  const rebalancer = ctx.node.rebalancer();
  const steps = await rebalancer.drainPlan(id!);
  if (parseListQuery(req.query, ["dryRun"]).dryRun !== "true") await rebalancer.markDrained(id!);
  return runSteps(req, ctx, steps);
});
