/**
 * The `cronwheel` commands that read history's aggregates and trails rather than single records:
 * `audit` (who changed what, GET /v1/audit) and `stats` (GET /v1/stats). Same conventions as commands.ts: a table by default,
 * `--json` for the server's answer, exit 1 for a failed request, 2 for a usage error.
 */
import type { AuditAction, AuditEntry, Percentiles, Stats, StatsFilter } from "../client/types.js";
import { COMMON_FLAGS, client, flag, formatDuration, moreHint, noPositionals, parse, positiveInt, printJson, runSingle, str, timeFlag, write } from "./commands.js";
import { formatTable } from "./table.js";

export const AUDIT_USAGE = `usage: cronwheel audit [--job J] [--action A] [--from TIME] [--to TIME] [--limit N] [--cursor C]

  The audit trail: each change made to a job or an execution (put, delete, pause, resume,
  trigger, backfill, cancel, replay), who made it (tenant, role, token name) and its outcome,
  newest first (one page; default 100). Kept in history, for its retention.

  A is one of job.put, job.delete, job.pause, job.resume, job.trigger, job.backfill,
  exec.cancel, exec.replay. TIME is RFC 3339 or ms, on the change's time.

${COMMON_FLAGS}`;

export function runAuditCommand(argv: string[]): Promise<void> {
  return runSingle(argv, async (args) => {
    const options = { job: { type: "string" }, action: { type: "string" }, from: { type: "string" }, to: { type: "string" }, limit: { type: "string" }, cursor: { type: "string" } } as const;
    const p = parse(args, options, AUDIT_USAGE);
    noPositionals(p, "audit", AUDIT_USAGE);
    const time = (name: string) => timeFlag(p, name);
    const page = await client(p).listAudit({
      jobId: str(p, "job"),
      action: str(p, "action") as AuditAction | undefined,
      from: time("from"),
      to: time("to"),
      limit: positiveInt(str(p, "limit"), "--limit"),
      cursor: str(p, "cursor"),
    });
    if (flag(p, "json")) return printJson(page);
    write(auditTable(page.entries));
    moreHint(page.nextCursor, page.entries.length);
  });
}

function auditTable(entries: AuditEntry[]): string {
  return formatTable(
    ["AT", "ACTION", "JOB", "EXECUTION", "BY", "OUTCOME", "DETAILS"],
    entries.map((e) => [e.at, e.action, e.jobId ?? "-", e.executionId ?? "-", principalText(e.principal), e.outcome, detailsText(e)]),
    { maxCellWidth: 60 },
  );
}

function principalText(p: AuditEntry["principal"]): string {
  if (p === null) return "-";
  return p.name === undefined ? `${p.tenant}/${p.role}` : `${p.tenant}/${p.role}/${p.name}`;
}

/** The details worth a glance in a table (the spec of a put is left to --json). */
function detailsText(e: AuditEntry): string {
  const { spec: _spec, ...rest } = e.details;
  return Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

export const STATS_USAGE = `usage: cronwheel stats [--from TIME] [--to TIME] [--interval DUR] [--by queue|job|state|reason|tenant]
                      [--queue Q] [--job J]

  Executions that finished in the range (default: the last 24 h): counts by state, lateness
  and run-time percentiles, the top reasons, a group per --by value, and one line per interval
  (default 1h); then the ready backlog per queue as it is now. From history's rollups, so a
  year answers as fast as a day (--by job and --job read the rows, up to 1,000,000).

  DUR is "1m", "15m", "1h", "1d" or ms (whole minutes). TIME is RFC 3339 or ms.

${COMMON_FLAGS}`;

export function runStatsCommand(argv: string[]): Promise<void> {
  return runSingle(argv, async (args) => {
    const options = { from: { type: "string" }, to: { type: "string" }, interval: { type: "string" }, by: { type: "string" }, queue: { type: "string" }, job: { type: "string" } } as const;
    const p = parse(args, options, STATS_USAGE);
    noPositionals(p, "stats", STATS_USAGE);
    const time = (name: string) => timeFlag(p, name);
    const stats = await client(p).stats({
      from: time("from"),
      to: time("to"),
      interval: timeFlag(p, "interval"),
      by: str(p, "by") as StatsFilter["by"],
      queue: str(p, "queue"),
      jobId: str(p, "job"),
    });
    if (flag(p, "json")) return printJson(stats);
    write(statsText(stats));
  });
}

function statsText(s: Stats): string {
  const pct = (x: Percentiles) => [x.p50, x.p95, x.p99].map((v) => (v === null ? "-" : formatDuration(v))).join(" / ");
  const summaryRow = (key: string, t: Stats["total"]) => [key, String(t.count), String(t.byState.succeeded), String(t.byState.failed), String(t.byState.canceled), String(t.byState.skipped), pct(t.latenessMs), pct(t.runMs)];
  const head = ["", "FINISHED", "SUCCEEDED", "FAILED", "CANCELED", "SKIPPED", "LATENESS p50/p95/p99", "RUN p50/p95/p99"];
  let text = `${s.from} .. ${s.to}\n\n`;
  text += formatTable(head, [summaryRow("total", s.total), ...(s.groups ?? []).map((g) => summaryRow(g.key, g))]);
  if (s.topReasons.length > 0) text += `\n${formatTable(["STATE", "REASON", "COUNT"], s.topReasons.map((r) => [r.state, r.reason, String(r.count)]))}`;
  text += `\n${formatTable(["INTERVAL", "FINISHED", "PER SECOND", "FAILED"], s.series.map((p) => [p.at, String(p.count), String(p.perSecond), String(p.byState.failed)]))}`;
  if (s.backlog.length > 0) {
    text += `\n${formatTable(["QUEUE", "READY", "OLDEST READY"], s.backlog.map((b) => [b.queue, String(b.ready), b.oldestReadyAgeMs === null ? "-" : formatDuration(b.oldestReadyAgeMs)]))}`;
  }
  return text;
}
