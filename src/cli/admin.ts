/**
 * `cronwheel admin …`: operating a cluster through the admin endpoints (docs/operations.md,
 * "Admin CLI"). The conventions of the other client commands: tables by default, `--json` for
 * scripts, exit 0 / 1 (`cronwheel: <code>: <message>`) / 2 (usage error).
 *
 * - status: `GET /v1/cluster` from --url, then from every node it lists (at http://ADDRESS, same
 *   token). Each node answers with its own view: its replicas' commit indexes, and — on a shard's
 *   leader only — each follower's match index, which gives the replication lag. A node that does
 *   not answer is shown as unreachable.
 * - move-shard: one `POST /v1/cluster/shards/{id}/move`.
 * - rebalance: the server's plan (a dry run), then each step through the move or leader endpoint,
 *   with a progress line per step. A failed step stops the run: the later steps were planned
 *   around it; running the command again plans from where the cluster is.
 * - drain: the plan (a dry run) and each step with progress as for rebalance, then
 *   `POST /v1/cluster/nodes/{id}/drain` itself. That call is what marks the node drained (there is
 *   no other way to); it also moves whatever is still on the node — by then normally nothing, or
 *   a replica another operation put back meanwhile.
 */
import { Client } from "../client/client.js";
import { CronwheelApiError } from "../client/errors.js";
import type { ClusterShard, ClusterView, RebalanceRun, RebalanceStep, RebalanceStepResult } from "../client/types.js";
import { client, COMMON_FLAGS, flag, hintFor, noPositionals, parse, printJson, runGroup, str, theId, tokenOf, urlOf, write, type Parsed } from "./commands.js";
import { UsageError } from "./server.js";
import { formatTable } from "./table.js";

/** How long one step may take: the server gives a step up to 2 minutes per phase (catching up, then a serving leader). */
const STEP_TIMEOUT_MS = 600_000;

/** `status` asks each node once, this long at most: a node that is down must not hold up the rest. */
const NODE_TIMEOUT_MS = 3_000;

export const ADMIN_USAGE = `usage: cronwheel admin <command> [options]

  status           nodes (shards held and led, reachable or not) and shards (leader, epoch,
                   replicas, commit index, each follower's replication lag); asks every node
  move-shard SHARD --from NODE --to NODE
                   move SHARD's replica from one node to another; returns when the new replica
                   has caught up and the old one is gone
  rebalance [--dry-run]
                   spread replicas and leaders evenly over the live nodes: prints the plan, then
                   runs it one step at a time, a progress line per step
  drain NODE [--dry-run]
                   move every replica off NODE (the plan, then a progress line per step) and
                   mark it drained: rebalances leave it out until it restarts

  --dry-run prints the plan only. A step takes seconds (longer while a big shard catches up);
  the command waits up to 10 minutes for each. A failed step stops the run: run the command
  again to plan from where the cluster is. Admin commands need a cluster (a standalone node
  answers invalid_argument) and, when auth is on, a token with the admin role.

${COMMON_FLAGS}`;

export function runAdminCommand(argv: string[]): Promise<void> {
  return runGroup(argv, "admin", ADMIN_USAGE, admin);
}

async function admin(sub: string, rest: string[]): Promise<void> {
  switch (sub) {
    case "status": {
      const p = parse(rest, {}, ADMIN_USAGE);
      noPositionals(p, "admin status", ADMIN_USAGE);
      const first = await client(p).cluster();
      const status = mergeViews(first, await viewsOfEveryNode(p, first));
      if (flag(p, "json")) return printJson(status);
      write(`${nodesTable(status)}\n${shardsTable(status)}`);
      return;
    }
    case "move-shard": {
      const p = parse(rest, { from: { type: "string" }, to: { type: "string" } }, ADMIN_USAGE);
      const shard = shardNumber(theId(p, "admin move-shard", ADMIN_USAGE), "admin move-shard");
      const step: RebalanceStep = { kind: "move", shard, from: required(p, "from", "admin move-shard"), to: required(p, "to", "admin move-shard") };
      const [result] = await runSteps(p, [step], "move-shard");
      if (flag(p, "json")) printJson(result);
      return;
    }
    case "rebalance": {
      const p = parse(rest, { "dry-run": { type: "boolean" } }, ADMIN_USAGE);
      noPositionals(p, "admin rebalance", ADMIN_USAGE);
      const { steps } = await client(p).planRebalance();
      if (showPlan(p, steps, "rebalance", "nothing to do: replicas and leaders are spread evenly")) return;
      const results = await runSteps(p, steps, "rebalance");
      if (flag(p, "json")) return printJson({ steps, results });
      write(`rebalanced: ${steps.length} step${steps.length === 1 ? "" : "s"} in ${totalMs(results)} ms\n`);
      return;
    }
    case "drain": {
      const p = parse(rest, { "dry-run": { type: "boolean" } }, ADMIN_USAGE);
      const node = theId(p, "admin drain", ADMIN_USAGE);
      const { steps } = await client(p).planDrain(node);
      if (steps.length === 0) await mustBeMember(p, node);
      if (showPlan(p, steps, `drain ${node}`, `node ${node} holds no replica`)) return;
      const results = await runSteps(p, steps, `drain ${node}`);
      // Marks the node drained; moves whatever is still on it (normally nothing by now).
      const last = await client(p, { timeoutMs: STEP_TIMEOUT_MS }).drainNode(node);
      const all: RebalanceRun = { steps: [...steps, ...last.steps], results: [...results, ...last.results] };
      if (flag(p, "json")) return printJson(all);
      for (const r of last.results) write(`${stepText(r.step)} (found on the node at the end) … ${doneText(r)}\n`);
      write(`node ${node} is drained: it holds no replica, and rebalances leave it out until it restarts\n`);
      return;
    }
    default:
      throw new UsageError(`admin: unknown command '${sub}'\n${hintFor(ADMIN_USAGE)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// arguments

function shardNumber(value: string, what: string): number {
  if (!/^\d{1,6}$/.test(value)) throw new UsageError(`${what}: SHARD: expected a shard number, got '${value}'\n${hintFor(ADMIN_USAGE)}`);
  return Number(value);
}

function required(p: Parsed, name: string, what: string): string {
  const value = str(p, name);
  if (value === undefined || value === "") throw new UsageError(`${what}: --${name} NODE is required\n${hintFor(ADMIN_USAGE)}`);
  return value;
}

/** An empty drain plan for a node nobody knows would still mark it drained: refuse it. */
async function mustBeMember(p: Parsed, node: string): Promise<void> {
  const view = await client(p).cluster();
  if (view.nodes.some((n) => n.id === node)) return;
  const members = view.nodes.map((n) => n.id).join(", ") || "none";
  throw new CronwheelApiError("not_found", `node '${node}' is not a member of the cluster and holds no replica (members: ${members})`);
}

// ---------------------------------------------------------------------------------------------
// plans and steps

function stepText(step: RebalanceStep): string {
  const what = step.kind === "move" ? `move ${step.from} → ${step.to}` : step.kind === "leader" ? `leader → ${step.to}` : `remove the extra replica on ${step.node}`;
  return `shard ${step.shard}: ${what}`;
}

function doneText(r: RebalanceStepResult): string {
  return `done in ${r.ms} ms (epoch ${r.epoch})`;
}

function totalMs(results: RebalanceStepResult[]): number {
  return results.reduce((sum, r) => sum + r.ms, 0);
}

/**
 * Prints the plan (with --json only for a dry run: otherwise the run prints plan and results
 * together). True when there is nothing more to do: a dry run, or an empty plan.
 */
function showPlan(p: Parsed, steps: RebalanceStep[], what: string, nothing: string): boolean {
  const dryRun = flag(p, "dry-run");
  if (flag(p, "json")) {
    if (dryRun) printJson({ steps });
    return dryRun;
  }
  if (steps.length === 0) {
    write(`${what}: ${nothing}\n`);
    return true;
  }
  write(`${what}: ${steps.length} step${steps.length === 1 ? "" : "s"}\n`);
  write(formatTable(["STEP", "SHARD", "CHANGE"], steps.map((s, i) => [String(i + 1), String(s.shard), stepText(s).replace(/^shard \d+: /, "")])));
  if (!dryRun) write("\n");
  return dryRun;
}

/**
 * The steps one at a time, a progress line each: `[2/5] shard 3: move n1 → n4 … done in 812 ms
 * (epoch 1234)` (on stderr with --json, so that stdout is one JSON document). A failure ends the
 * line with "failed", says how far the run got, and throws the step's error.
 */
async function runSteps(p: Parsed, steps: RebalanceStep[], what: string): Promise<RebalanceStepResult[]> {
  const out = flag(p, "json") ? (t: string) => process.stderr.write(t) : write;
  const stepper = client(p, { timeoutMs: STEP_TIMEOUT_MS });
  const results: RebalanceStepResult[] = [];
  for (const [i, step] of steps.entries()) {
    out(`${steps.length > 1 ? `[${i + 1}/${steps.length}] ` : ""}${stepText(step)} … `);
    try {
      const result = await stepper.runStep(step);
      results.push(result);
      out(`${doneText(result)}\n`);
    } catch (error) {
      out("failed\n");
      if (steps.length > 1) process.stderr.write(`${what} stopped at step ${i + 1} of ${steps.length}; run it again to plan from where the cluster is now\n`);
      throw error;
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------------------
// status

export interface NodeStatus {
  id: string;
  /** "host:port"; null for a node that holds replicas but is not registered (down). */
  address: string | null;
  /** As --url's node lists it; "absent" for a replica holder that is not registered. */
  state: string;
  /** It answered `GET /v1/cluster`. */
  reachable: boolean;
  /** Why it did not. */
  error?: string;
  /** Shards it holds a replica of, and those it leads. */
  held: number[];
  leads: number[];
}

export interface ShardStatus extends Pick<ClusterShard, "id" | "range" | "replicas" | "leader" | "epoch"> {
  /** The leader's commit index (null: no leader, or the leader did not answer). */
  commitIndex: number | null;
  /** Each follower's lag behind the leader's commit index, in entries (null when the leader gave none). */
  lag: Record<string, number> | null;
  /** Each replica's own commit index (null where the node did not answer). */
  commitIndexes: Record<string, number | null>;
  /** Replicas whose node says they are repairing their log (docs/replication.md): they do not count. */
  repairing: string[];
}

export interface AdminStatus {
  nodes: NodeStatus[];
  shards: ShardStatus[];
}

/** Each listed node's own view, or why it could not be read. */
async function viewsOfEveryNode(p: Parsed, first: ClusterView): Promise<Map<string, ClusterView | string>> {
  const base = new URL(urlOf(p));
  const views = new Map<string, ClusterView | string>();
  await Promise.all(
    first.nodes.map(async (node) => {
      // The node --url reached needs no second request; a lone node is the one that answered (a
      // standalone node started with port 0 advertises ":0").
      if (first.nodes.length === 1 || node.address === base.host) {
        views.set(node.id, first);
        return;
      }
      let c: Client | undefined;
      try {
        c = new Client({ url: `${base.protocol}//${node.address}`, token: tokenOf(p), timeoutMs: NODE_TIMEOUT_MS, retry: { attempts: 1 } });
        views.set(node.id, await c.cluster());
      } catch (error) {
        const e = error as CronwheelApiError;
        views.set(node.id, e instanceof CronwheelApiError && e.status !== 0 ? `${e.code}: ${e.message}` : e.message);
      } finally {
        c?.close();
      }
    }),
  );
  return views;
}

export function mergeViews(first: ClusterView, views: Map<string, ClusterView | string>): AdminStatus {
  const listed = first.nodes.map((n) => ({ id: n.id, address: n.address as string | null, state: n.state }));
  const absent = [...new Set(first.shards.flatMap((s) => s.replicas))].filter((id) => !listed.some((n) => n.id === id)).sort();
  const nodes = [...listed, ...absent.map((id) => ({ id, address: null, state: "absent" }))].map((n): NodeStatus => {
    const view = views.get(n.id);
    const error = view === undefined ? "not registered: the node is down or was removed" : typeof view === "string" ? view : undefined;
    return {
      ...n,
      reachable: error === undefined,
      ...(error !== undefined ? { error } : {}),
      held: first.shards.filter((s) => s.replicas.includes(n.id)).map((s) => s.id),
      leads: first.shards.filter((s) => s.leader === n.id).map((s) => s.id),
    };
  });
  const shards = first.shards.map((s): ShardStatus => {
    const own = (node: string | null) => {
      const view = node === null ? undefined : views.get(node);
      return typeof view === "object" ? view.shards.find((x) => x.id === s.id) : undefined;
    };
    const leader = own(s.leader);
    const commitIndex = leader?.commitIndex ?? null;
    const followers = leader?.followers;
    return {
      id: s.id,
      range: s.range,
      replicas: s.replicas,
      leader: s.leader,
      epoch: s.epoch,
      commitIndex,
      lag: followers && commitIndex !== null ? Object.fromEntries(Object.entries(followers).map(([id, match]) => [id, Math.max(0, commitIndex - match)])) : null,
      commitIndexes: Object.fromEntries(s.replicas.map((id) => [id, own(id)?.commitIndex ?? null])),
      repairing: s.replicas.filter((id) => own(id)?.repairing === true),
    };
  });
  return { nodes, shards };
}

function idsText(ids: number[]): string {
  return ids.length === 0 ? "0" : `${ids.length} (${ids.join(",")})`;
}

function nodesTable(status: AdminStatus): string {
  return formatTable(
    ["NODE", "ADDRESS", "STATE", "HELD", "LEADS", "VIEW"],
    status.nodes.map((n) => [n.id, n.address ?? "-", n.state, idsText(n.held), idsText(n.leads), n.reachable ? "ok" : `unreachable: ${n.error}`]),
    { maxCellWidth: 120 },
  );
}

function shardsTable(status: AdminStatus): string {
  const reachable = new Set(status.nodes.filter((n) => n.reachable).map((n) => n.id));
  return formatTable(
    ["SHARD", "RANGE", "LEADER", "EPOCH", "REPLICAS", "COMMIT", "LAG"],
    status.shards.map((s) => {
      // "?": the leader did not answer; "-": no leader, or its view had no followers (standalone).
      const unknown = s.leader !== null && !reachable.has(s.leader) ? "?" : "-";
      const lag = s.lag === null ? unknown : Object.entries(s.lag).map(([id, n]) => `${id}=${n}`).join(" ") || "-";
      const replicas = s.replicas.map((id) => (s.repairing.includes(id) ? `${id}(repairing)` : id)).join(",");
      return [String(s.id), `${s.range[0]}-${s.range[1]}`, s.leader ?? "-", s.epoch === null ? "-" : String(s.epoch), replicas, s.commitIndex === null ? unknown : String(s.commitIndex), lag];
    }),
  );
}
