/**
 * The client side of a run: a few concurrent client "processes", each issuing operations drawn
 * from a seeded generator against a random live node, recording invoke and completion.
 *
 * Completions follow Jepsen's meaning. ok: 2xx. fail: a definite refusal (400, 404, 409: nothing
 * changed). info: the outcome is unknown — a network error, a timeout, a 503 or 429 (a node may
 * have stepped down after proposing the write; it may still commit).
 */
import type { ClientOp, HistoryWriter } from "./history.js";
import { monoNow } from "./history.js";
import type { Random } from "./random.js";

const REQUEST_TIMEOUT_MS = 5_000;
const JOB_POOL = 24;
const ORDERING_KEYS = ["ok-a", "ok-b", "ok-c"];
/** Short leases, so a worker paused for a few seconds loses its executions within a run. */
const LEASE_MS = 2_000;

export interface WorkloadOptions {
  history: HistoryWriter;
  random: Random;
  /** Base URLs of the nodes that are up now (changes as the nemesis kills and restarts). */
  nodes: () => string[];
  clients: number;
}

interface Outcome {
  type: "ok" | "fail" | "info";
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}

export class Workload {
  private running = false;
  private opId = 0;
  private seq = 0;
  /** Execution ids the clients have seen, for cancels. */
  private readonly executions: string[] = [];
  private loops: Array<Promise<void>> = [];

  constructor(private readonly opts: WorkloadOptions) {}

  start(): void {
    this.running = true;
    this.loops = Array.from({ length: this.opts.clients }, (_, i) => this.loop(`c${i}`));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async loop(process: string): Promise<void> {
    while (this.running) {
      await this.invoke(process, this.generate());
      await new Promise((r) => setTimeout(r, this.opts.random.int(5, 40)));
    }
  }

  private generate(): ClientOp {
    const r = this.opts.random;
    const jobId = `job-${r.int(0, JOB_POOL - 1)}`;
    const roll = r.next();
    if (roll < 0.25) {
      return { op: "put-job", jobId, spec: { queue: "jobs", every: r.pick(["1s", "2s", "3s"]), leaseMs: LEASE_MS } };
    }
    if (roll < 0.3) return { op: "delete-job", jobId };
    if (roll < 0.35) return { op: "pause-job", jobId };
    if (roll < 0.4) return { op: "resume-job", jobId };
    if (roll < 0.45 && this.executions.length > 0) return { op: "cancel", executionId: r.pick(this.executions) };
    const seq = this.seq++;
    return {
      op: "enqueue",
      queue: "adhoc",
      seq,
      ...(r.chance(0.3) ? { idempotencyKey: `idem-${r.int(0, 200)}` } : {}),
      ...(r.chance(0.3) ? { orderingKey: r.pick(ORDERING_KEYS) } : {}),
    };
  }

  private async invoke(process: string, call: ClientOp): Promise<void> {
    const nodes = this.opts.nodes();
    if (nodes.length === 0) return;
    const base = this.opts.random.pick(nodes);
    const opId = ++this.opId;
    const h = this.opts.history;
    h.record({ type: "invoke", process, opId, t: monoNow(), call });
    const outcome = await this.perform(base, call);
    h.record({ type: outcome.type, process, opId, t: monoNow(), ...(outcome.result ? { result: outcome.result } : {}), ...(outcome.error ? { error: outcome.error } : {}) });
    if (outcome.type === "ok" && call.op === "enqueue") this.executions.push(String(outcome.result!.executionId));
  }

  private async perform(base: string, call: ClientOp): Promise<Outcome> {
    const job = (id: string) => `/v1/jobs/${encodeURIComponent(id)}`;
    switch (call.op) {
      case "put-job":
        return http(base, "PUT", job(call.jobId), call.spec, (b) => ({ version: b.version }));
      case "delete-job":
        return http(base, "DELETE", job(call.jobId), undefined, () => ({}));
      case "pause-job":
        return http(base, "POST", `${job(call.jobId)}/pause`, undefined, (b) => ({ version: b.version }));
      case "resume-job":
        return http(base, "POST", `${job(call.jobId)}/resume`, undefined, (b) => ({ version: b.version }));
      case "cancel":
        return http(base, "POST", `/v1/executions/${encodeURIComponent(call.executionId)}/cancel`, undefined, (b) => ({ state: b.state }));
      case "enqueue":
        return http(
          base,
          "POST",
          "/v1/executions",
          {
            queue: call.queue,
            // A key's requests are all the same request (the same key with another body is a 409 by
            // contract), so a repeat tests deduplication, not the refusal.
            payload: call.idempotencyKey ? { key: call.idempotencyKey } : { seq: call.seq },
            leaseMs: LEASE_MS,
            ...(call.idempotencyKey ? { idempotencyKey: call.idempotencyKey } : {}),
            ...(call.orderingKey ? { orderingKey: call.orderingKey } : {}),
          },
          (b, status) => ({ executionId: b.id, created: status === 201 }),
        );
    }
  }
}

async function http(
  base: string,
  method: string,
  path: string,
  body: unknown,
  result: (body: Record<string, unknown>, status: number) => Record<string, unknown>,
): Promise<Outcome> {
  try {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const parsed = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (res.status >= 200 && res.status < 300) return { type: "ok", result: result(parsed, res.status) };
    const error = (parsed.error as { code?: string; message?: string } | undefined) ?? {};
    const e = { code: error.code ?? String(res.status), message: error.message ?? "" };
    return { type: res.status === 503 || res.status === 429 || res.status >= 500 ? "info" : "fail", error: e };
  } catch (error) {
    return { type: "info", error: { code: "network", message: (error as Error).message } };
  }
}

/** Everything the healed cluster holds, through one node; retried until it answers whole. */
export async function finalRead(base: string, history: HistoryWriter): Promise<void> {
  for (let attempt = 0; attempt < 60; attempt++) {
    try {
      const jobs = await pages(base, "/v1/jobs", "jobs");
      const executions = await pages(base, "/v1/executions", "executions");
      history.record({
        type: "final-read",
        t: monoNow(),
        jobs: jobs.map((j) => ({ id: String(j.id), state: String(j.state), version: Number(j.version), ...(j.nextFireAt ? { nextFireAtMono: history.wallToMono(Date.parse(String(j.nextFireAt))) } : {}) })),
        executions: executions.map((e) => ({
          id: String(e.id),
          ...(e.jobId !== undefined ? { jobId: String(e.jobId) } : {}),
          queue: String(e.queue),
          state: String(e.state),
          attempt: Number(e.attempt),
          ...(e.orderingKey ? { orderingKey: String(e.orderingKey) } : {}),
          ...(e.idempotencyKey ? { idempotencyKey: String(e.idempotencyKey) } : {}),
          scheduledAtMono: history.wallToMono(Date.parse(String(e.scheduledAt))),
        })),
      });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  throw new Error(`the final read through ${base} never succeeded`);
}

async function pages(base: string, path: string, field: string): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  let cursor: string | null = null;
  do {
    const res = await fetch(`${base}${path}?limit=1000${cursor ? `&cursor=${cursor}` : ""}`, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    const body = (await res.json()) as Record<string, unknown>;
    out.push(...(body[field] as Array<Record<string, unknown>>));
    cursor = body.nextCursor as string | null;
  } while (cursor);
  return out;
}

