/**
 * The client commands of the `cronwheel` binary: `jobs`, `executions`, `dead-letters`, and the
 * argument and output helpers `admin.ts` shares. Each talks to a node over HTTP through the SDK's
 * `Client`.
 *
 * Output: readable aligned tables and key/value records by default; `--json` prints the server's
 * answer as one JSON document (a list prints the page: `{ jobs | executions, nextCursor }`).
 * A list with more pages says so on stderr, with the `--cursor` to pass for the next one.
 *
 * Exit codes: 0 success; 1 the request failed (stderr: `cronwheel: <code>: <message>`, the
 * contract's error code — `unavailable` when the server cannot be reached); 2 a usage error
 * (unknown flag, missing argument, malformed --payload JSON, unreadable --file).
 */
import fs from "node:fs";
import { parseArgs } from "node:util";
import { Client, type ClientOptions } from "../client/client.js";
import { READ_ONLY_JOB_FIELDS, type DeadLetterFilter, type Execution, type ExecutionState, type Job, type JobInput } from "../client/types.js";
import { UsageError } from "./server.js";
import { formatRecord, formatTable } from "./table.js";

export const COMMON_FLAGS = `common options:
  --url URL        node to talk to (default $CRONWHEEL_URL, else http://127.0.0.1:7070)
  --token TOKEN    bearer token (default $CRONWHEEL_TOKEN)
  --json           print the server's answer as one JSON document instead of a table
  -h, --help       this help
`;

export const JOBS_USAGE = `usage: cronwheel jobs <command> [options]

  put ID [--file F] [--queue Q] [--cron EXPR [--timezone TZ] | --every DUR | --at TIME]
         [--payload JSON] [--label k=v]... [--if-match VERSION]
                   create or replace a job; --file F (JSON, '-' for stdin) is the definition,
                   flags override its fields (a trigger flag replaces its trigger); read-only
                   fields (id, version, …) in F are ignored, so 'jobs get --json' output works
  get ID           show a job
  ls [--queue Q] [--label k=v] [--limit N] [--cursor C]
                   list jobs in id order (one page; default 100)
  rm ID [--cancel-running]
                   delete a job; running executions finish unless --cancel-running
  pause ID         stop firing (idempotent)
  resume ID        fire again (missed fires follow the job's misfire policy)
  trigger ID [--payload JSON] [--idempotency-key K]
                   run the job now (without --payload: the job's payload)
  preview ID [--count N]
                   the next fire times

  DUR is milliseconds or "30s", "5m", "1h30m"; TIME is RFC 3339 with Z or an offset, or ms.

${COMMON_FLAGS}`;

const LIST_FILTERS_HELP = `
  FILTERS: --job J  --queue Q  --label k=v (of the jobs that carry it now)
           --reason R (misfire, non-retryable, timed-out, …)  --worker W (its last attempt's)
           --from TIME --to TIME (on scheduledAt)  --finished-from TIME --finished-to TIME
  A page may be short while there is a next cursor: keep paging with --cursor.
`;

export const EXECUTIONS_USAGE = `usage: cronwheel executions <command> [options]

  get ID           show an execution and its attempts
  ls [--state S] [FILTERS] [--limit N] [--cursor C]
                   one page (default 100) of executions, memory and history as one: those not
                   finished first (newest created first), then finished ones (newest finished first)
  cancel ID        cancel an execution that has not ended
  replay ID        run a dead letter (a failed execution) again, as a new execution

  S is one of scheduled, ready, claimed, running, succeeded, failed, canceled, skipped.
${LIST_FILTERS_HELP}
${COMMON_FLAGS}`;

export const DEAD_LETTERS_USAGE = `usage: cronwheel dead-letters ls [FILTERS] [--limit N] [--cursor C]

  ls               failed executions, newest finished first (one page; default 100)
${LIST_FILTERS_HELP}
${COMMON_FLAGS}`;

export type OptionSpec = { type: "string" | "boolean"; multiple?: boolean; short?: string };

const COMMON_OPTIONS: Record<string, OptionSpec> = {
  url: { type: "string" },
  token: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** "see: cronwheel jobs --help", from the usage text's first line. */
export function hintFor(usage: string): string {
  const m = /^usage: cronwheel ([a-z-]+)/.exec(usage);
  return `see: cronwheel ${m ? m[1] : ""} --help`;
}

/** Thrown by `parse` after printing the usage for `--help`; the command then ends with exit 0. */
class HelpShown extends Error {}

export function parse(argv: string[], options: Record<string, OptionSpec>, usage: string): Parsed {
  let parsed: Parsed;
  try {
    const { values, positionals } = parseArgs({ args: argv, options: { ...COMMON_OPTIONS, ...options }, strict: true, allowPositionals: true });
    parsed = { values: values as Parsed["values"], positionals };
  } catch (error) {
    if ((error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) throw new UsageError(`${(error as Error).message}\n${hintFor(usage)}`);
    throw error;
  }
  if (parsed.values.help === true) {
    write(usage);
    throw new HelpShown();
  }
  return parsed;
}

/**
 * A command group (`cronwheel jobs <command> …`): its usage for `help`, `--help` or `-h`, a usage
 * error for no command, else `body(command, args)`, where `--help` (HelpShown) is a success.
 */
export async function runGroup(argv: string[], group: string, usage: string, body: (sub: string, rest: string[]) => Promise<void>): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === undefined) throw new UsageError(`${group}: missing command\n${hintFor(usage)}`);
  if (sub === "help" || sub === "--help" || sub === "-h") return write(usage);
  try {
    await body(sub, rest);
  } catch (error) {
    if (!(error instanceof HelpShown)) throw error;
  }
}

/** A command without subcommands (`cronwheel audit …`): `body(args)`, where `--help` (HelpShown) is a success. */
export async function runSingle(argv: string[], body: (argv: string[]) => Promise<void>): Promise<void> {
  try {
    await body(argv);
  } catch (error) {
    if (!(error instanceof HelpShown)) throw error;
  }
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === "string" ? v : undefined;
}

function list(p: Parsed, name: string): string[] {
  const v = p.values[name];
  return Array.isArray(v) ? v : [];
}

export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
}

/** --url, else $CRONWHEEL_URL, else the default local node. */
export function urlOf(p: Parsed): string {
  return str(p, "url") ?? env("CRONWHEEL_URL") ?? "http://127.0.0.1:7070";
}

/** --token, else $CRONWHEEL_TOKEN, else none. */
export function tokenOf(p: Parsed): string | undefined {
  return str(p, "token") ?? env("CRONWHEEL_TOKEN");
}

/** The SDK client for --url and --token; `options` adds to them (a longer timeout, say). */
export function client(p: Parsed, options: Omit<ClientOptions, "url" | "token"> = {}): Client {
  const url = urlOf(p);
  try {
    return new Client({ ...options, url, token: tokenOf(p) });
  } catch (error) {
    throw new UsageError(`--url: ${(error as Error).message}`);
  }
}

/** Exactly one positional: the id. */
export function theId(p: Parsed, what: string, usage: string): string {
  if (p.positionals.length !== 1) {
    throw new UsageError(`${what}: expected exactly one ID, got ${p.positionals.length === 0 ? "none" : p.positionals.map((s) => `'${s}'`).join(" ")}\n${hintFor(usage)}`);
  }
  return p.positionals[0]!;
}

export function noPositionals(p: Parsed, what: string, usage: string): void {
  if (p.positionals.length > 0) throw new UsageError(`${what}: unexpected argument '${p.positionals[0]}'\n${hintFor(usage)}`);
}

export function positiveInt(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1) throw new UsageError(`${name}: expected a positive integer, got '${value}'`);
  return Number(value);
}

function jsonFlag(value: string, name: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new UsageError(`${name}: not valid JSON: ${(error as Error).message}`);
  }
}

/** A duration or time flag: digits are milliseconds, anything else goes to the server as written. */
export function msOrString(value: string): number | string {
  return /^\d{1,16}$/.test(value) ? Number(value) : value;
}

function labelPair(value: string, name: string): [string, string] {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new UsageError(`${name}: expected key=value, got '${value}'`);
  return [value.slice(0, eq), value.slice(eq + 1)];
}

export function write(text: string): void {
  process.stdout.write(text);
}

export function printJson(value: unknown): void {
  write(`${JSON.stringify(value, null, 2)}\n`);
}

export function moreHint(nextCursor: string | null, count: number): void {
  if (nextCursor) process.stderr.write(`(${count} shown; more with --cursor ${nextCursor})\n`);
}

// ---------------------------------------------------------------------------------------------
// rendering

/** 90_000 → "1m30s"; 500 → "500ms". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  let rest = ms;
  let out = "";
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1_000], ["ms", 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out || "0ms";
}

export function describeTrigger(job: Job): string {
  if (job.cron !== undefined) return `cron ${job.cron}${job.timezone && job.timezone !== "UTC" ? ` (${job.timezone})` : ""}`;
  if (job.every !== undefined) return `every ${formatDuration(job.every)}`;
  if (job.at !== undefined) return `at ${job.at}`;
  return "manual";
}

function labelsText(labels: Record<string, string> | undefined): string {
  return Object.entries(labels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

function json(value: unknown): string {
  return JSON.stringify(value) ?? "undefined";
}

function jobRecord(job: Job): string {
  const window = job.startAt !== undefined || job.endAt !== undefined ? `${job.startAt ?? "…"} .. ${job.endAt ?? "…"}` : undefined;
  return formatRecord([
    ["id", job.id],
    ["queue", job.queue],
    ["trigger", describeTrigger(job)],
    ["window", window],
    ["state", job.state],
    ["version", String(job.version)],
    ["next fire", job.nextFireAt ?? "-"],
    ["runs", job.maxRuns === null ? String(job.runs) : `${job.runs} of ${job.maxRuns}`],
    ["ended", job.counts && `${job.counts.succeeded} succeeded, ${job.counts.failed} failed, ${job.counts.canceled} canceled, ${job.counts.skipped} skipped`],
    ["last run", job.lastRun === undefined ? undefined : job.lastRun === null ? "-" : `${job.lastRun.state}${job.lastRun.reason ? ` (${job.lastRun.reason})` : ""}, scheduled ${job.lastRun.scheduledAt}, finished ${job.lastRun.finishedAt}${job.lastRun.durationMs === null ? "" : `, ran ${formatDuration(job.lastRun.durationMs)}`}`],
    ["priority", String(job.priority)],
    ["concurrency", job.concurrency ? `${job.concurrency.limit ?? "no limit"}, ${job.concurrency.overlap}` : undefined],
    ["retry", job.retry ? `${job.retry.maxAttempts} attempts, ${job.retry.backoff.type} backoff` : undefined],
    ["labels", labelsText(job.labels) || "-"],
    ["payload", json(job.payload)],
    ["created", job.createdAt],
    ["updated", job.updatedAt],
  ]);
}

function jobsTable(jobs: Job[]): string {
  return formatTable(
    ["ID", "QUEUE", "TRIGGER", "STATE", "NEXT FIRE", "VERSION", "LABELS"],
    jobs.map((j) => [j.id, j.queue, describeTrigger(j), j.state, j.nextFireAt ?? "-", String(j.version), labelsText(j.labels)]),
  );
}

function executionRecord(e: Execution): string {
  let text = formatRecord([
    ["id", e.id],
    ["job", e.jobId],
    ["queue", e.queue],
    ["state", e.state],
    ["reason", e.reason],
    ["scheduled", e.scheduledAt],
    ["ready at", e.readyAt],
    ["created", e.createdAt],
    ["started", e.startedAt],
    ["finished", e.finishedAt],
    ["attempt", String(e.attempt)],
    ["priority", String(e.priority)],
    ["ordering key", e.orderingKey],
    ["idempotency key", e.idempotencyKey],
    ["payload", json(e.payload)],
    ["result", e.result === undefined ? undefined : json(e.result)],
  ]);
  if (e.attempts.length > 0) {
    text += "\n";
    text += formatTable(
      ["ATTEMPT", "WORKER", "CLAIMED", "FINISHED", "OUTCOME", "ERROR"],
      e.attempts.map((a) => [String(a.attempt), a.workerId, a.claimedAt, a.finishedAt ?? "-", a.outcome ?? "-", a.error === undefined ? "" : json(a.error)]),
    );
    // Each attempt's ctx.log lines, under a heading of their own.
    for (const a of e.attempts) {
      if (a.progress !== undefined) text += `\nattempt ${a.attempt} progress: ${json(a.progress)}\n`;
      if (a.logs === undefined && a.logsDropped === undefined) continue;
      text += `\nattempt ${a.attempt} logs${a.logsDropped ? ` (${a.logsDropped} more dropped)` : ""}:\n`;
      for (const l of a.logs ?? []) text += `  ${l.at} ${l.level.toUpperCase().padEnd(5)} ${l.msg}\n`;
    }
  }
  return text;
}

function executionsTable(executions: Execution[]): string {
  return formatTable(
    ["ID", "JOB", "QUEUE", "STATE", "SCHEDULED", "ATTEMPT", "REASON"],
    executions.map((e) => [e.id, e.jobId ?? "-", e.queue, e.state, e.scheduledAt, String(e.attempt), e.reason ?? ""]),
    { maxCellWidth: 80 },
  );
}

// ---------------------------------------------------------------------------------------------
// jobs


function readDefinition(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file === "-" ? 0 : file, "utf8");
  } catch (error) {
    throw new UsageError(`--file: cannot read '${file}': ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  const value = jsonFlag(text, `--file ${file}`);
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new UsageError(`--file ${file}: expected a JSON object`);
  const def = { ...(value as Record<string, unknown>) };
  for (const key of READ_ONLY_JOB_FIELDS) delete def[key];
  return def;
}

function jobInputFrom(p: Parsed): JobInput {
  const file = str(p, "file");
  const input: Record<string, unknown> = file !== undefined ? readDefinition(file) : {};
  const queue = str(p, "queue");
  const cron = str(p, "cron");
  const timezone = str(p, "timezone");
  const every = str(p, "every");
  const at = str(p, "at");
  const payload = str(p, "payload");
  if (queue !== undefined) input.queue = queue;
  // A trigger flag replaces the file's trigger: one of cron/every/at, and a zone only with a cron.
  if (cron !== undefined || every !== undefined || at !== undefined) {
    for (const key of ["cron", "every", "at"]) delete input[key];
    if (cron === undefined) for (const key of ["timezone", "dst"]) delete input[key];
  }
  if (cron !== undefined) input.cron = cron;
  if (timezone !== undefined) input.timezone = timezone;
  if (every !== undefined) input.every = msOrString(every);
  if (at !== undefined) input.at = msOrString(at);
  if (payload !== undefined) input.payload = jsonFlag(payload, "--payload");
  const labels = list(p, "label");
  if (labels.length > 0) {
    const existing = typeof input.labels === "object" && input.labels !== null ? (input.labels as Record<string, string>) : {};
    input.labels = { ...existing, ...Object.fromEntries(labels.map((l) => labelPair(l, "--label"))) };
  }
  if (input.queue === undefined) throw new UsageError(`jobs put: --queue is required (or a --file with "queue")\n${hintFor(JOBS_USAGE)}`);
  return input as unknown as JobInput;
}

export function runJobsCommand(argv: string[]): Promise<void> {
  return runGroup(argv, "jobs", JOBS_USAGE, jobs);
}

async function jobs(sub: string, rest: string[]): Promise<void> {
  switch (sub) {
    case "put": {
      const p = parse(
        rest,
        {
          file: { type: "string" },
          queue: { type: "string" },
          cron: { type: "string" },
          timezone: { type: "string" },
          every: { type: "string" },
          at: { type: "string" },
          payload: { type: "string" },
          label: { type: "string", multiple: true },
          "if-match": { type: "string" },
        },
        JOBS_USAGE,
      );
      const id = theId(p, "jobs put", JOBS_USAGE);
      const input = jobInputFrom(p);
      const ifMatch = str(p, "if-match");
      const { job, created } = await client(p).putJob(id, input, ifMatch !== undefined ? { ifMatch } : {});
      if (flag(p, "json")) printJson(job);
      else write(`${created ? "created" : "replaced"} job ${job.id} (version ${job.version})\n\n${jobRecord(job)}`);
      return;
    }
    case "get": {
      const p = parse(rest, {}, JOBS_USAGE);
      const job = await client(p).getJob(theId(p, "jobs get", JOBS_USAGE));
      write(flag(p, "json") ? `${JSON.stringify(job, null, 2)}\n` : jobRecord(job));
      return;
    }
    case "ls":
    case "list": {
      const p = parse(rest, { queue: { type: "string" }, label: { type: "string" }, limit: { type: "string" }, cursor: { type: "string" } }, JOBS_USAGE);
      noPositionals(p, "jobs ls", JOBS_USAGE);
      const page = await client(p).listJobs({ queue: str(p, "queue"), label: labelFilterFlag(p), limit: positiveInt(str(p, "limit"), "--limit"), cursor: str(p, "cursor") });
      if (flag(p, "json")) return printJson(page);
      write(jobsTable(page.jobs));
      moreHint(page.nextCursor, page.jobs.length);
      return;
    }
    case "rm":
    case "delete": {
      const p = parse(rest, { "cancel-running": { type: "boolean" } }, JOBS_USAGE);
      const job = await client(p).deleteJob(theId(p, "jobs rm", JOBS_USAGE), { cancelRunning: flag(p, "cancel-running") });
      if (flag(p, "json")) printJson(job);
      else write(`deleted job ${job.id}${flag(p, "cancel-running") ? " (running executions canceled)" : ""}\n`);
      return;
    }
    case "pause":
    case "resume": {
      const p = parse(rest, {}, JOBS_USAGE);
      const id = theId(p, `jobs ${sub}`, JOBS_USAGE);
      const c = client(p);
      const job = sub === "pause" ? await c.pauseJob(id) : await c.resumeJob(id);
      if (flag(p, "json")) printJson(job);
      else write(`job ${job.id} is ${job.state}${job.nextFireAt ? `, next fire ${job.nextFireAt}` : ""}\n`);
      return;
    }
    case "trigger": {
      const p = parse(rest, { payload: { type: "string" }, "idempotency-key": { type: "string" } }, JOBS_USAGE);
      const id = theId(p, "jobs trigger", JOBS_USAGE);
      const payload = str(p, "payload");
      const key = str(p, "idempotency-key");
      const { execution, created } = await client(p).triggerJob(id, {
        ...(payload !== undefined ? { payload: jsonFlag(payload, "--payload") } : {}),
        ...(key !== undefined ? { idempotencyKey: key } : {}),
      });
      if (flag(p, "json")) printJson(execution);
      else write(`${created ? "created" : "existing"} execution ${execution.id} (${execution.state})\n`);
      return;
    }
    case "preview": {
      const p = parse(rest, { count: { type: "string" } }, JOBS_USAGE);
      const id = theId(p, "jobs preview", JOBS_USAGE);
      const preview = await client(p).previewJob(id, positiveInt(str(p, "count"), "--count"));
      if (flag(p, "json")) return printJson(preview);
      write(formatTable(["AT", "NOMINAL", "MARKS"], preview.fires.map((f) => [f.at, f.nominal, f.marks.join(",")])));
      return;
    }
    default:
      throw new UsageError(`jobs: unknown command '${sub}'\n${hintFor(JOBS_USAGE)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// executions

export function runExecutionsCommand(argv: string[]): Promise<void> {
  return runGroup(argv, "executions", EXECUTIONS_USAGE, executions);
}

async function executions(sub: string, rest: string[]): Promise<void> {
  switch (sub) {
    case "get": {
      const p = parse(rest, {}, EXECUTIONS_USAGE);
      const e = await client(p).getExecution(theId(p, "executions get", EXECUTIONS_USAGE));
      if (flag(p, "json")) printJson(e);
      else write(executionRecord(e));
      return;
    }
    case "ls":
    case "list": {
      const p = parse(rest, { ...LIST_FILTER_OPTIONS, state: { type: "string" } }, EXECUTIONS_USAGE);
      noPositionals(p, "executions ls", EXECUTIONS_USAGE);
      const page = await client(p).listExecutions({ ...listFilter(p), state: str(p, "state") as ExecutionState | undefined });
      if (flag(p, "json")) return printJson(page);
      write(executionsTable(page.executions));
      moreHint(page.nextCursor, page.executions.length);
      return;
    }
    case "cancel":
    case "replay": {
      const p = parse(rest, {}, EXECUTIONS_USAGE);
      const id = theId(p, `executions ${sub}`, EXECUTIONS_USAGE);
      const c = client(p);
      const e = sub === "cancel" ? await c.cancelExecution(id) : await c.replayExecution(id);
      if (flag(p, "json")) printJson(e);
      else write(sub === "cancel" ? `execution ${e.id} is ${e.state}\n` : `replayed as execution ${e.id} (${e.state})\n`);
      return;
    }
    default:
      throw new UsageError(`executions: unknown command '${sub}'\n${hintFor(EXECUTIONS_USAGE)}`);
  }
}

/** The filters `executions ls` and `dead-letters ls` share. */
const LIST_FILTER_OPTIONS: Record<string, OptionSpec> = {
  job: { type: "string" },
  queue: { type: "string" },
  label: { type: "string" },
  reason: { type: "string" },
  worker: { type: "string" },
  from: { type: "string" },
  to: { type: "string" },
  "finished-from": { type: "string" },
  "finished-to": { type: "string" },
  limit: { type: "string" },
  cursor: { type: "string" },
};

/** A time flag's value: ms when it is all digits, else the string (RFC 3339) for the server to read. */
export function timeFlag(p: Parsed, name: string): number | string | undefined {
  const v = str(p, name);
  return v === undefined ? undefined : msOrString(v);
}

/** --label k=v as a filter: checked here (a usage error), sent as it is. */
function labelFilterFlag(p: Parsed): string | undefined {
  const label = str(p, "label");
  if (label !== undefined) labelPair(label, "--label");
  return label;
}

function listFilter(p: Parsed): DeadLetterFilter {
  const time = (name: string) => timeFlag(p, name);
  return {
    jobId: str(p, "job"),
    queue: str(p, "queue"),
    label: labelFilterFlag(p),
    reason: str(p, "reason"),
    workerId: str(p, "worker"),
    from: time("from"),
    to: time("to"),
    finishedFrom: time("finished-from"),
    finishedTo: time("finished-to"),
    limit: positiveInt(str(p, "limit"), "--limit"),
    cursor: str(p, "cursor"),
  };
}

// ---------------------------------------------------------------------------------------------
// dead letters

export function runDeadLettersCommand(argv: string[]): Promise<void> {
  return runGroup(argv, "dead-letters", DEAD_LETTERS_USAGE, deadLetters);
}

async function deadLetters(sub: string, rest: string[]): Promise<void> {
  switch (sub) {
    case "ls":
    case "list": {
      const p = parse(rest, LIST_FILTER_OPTIONS, DEAD_LETTERS_USAGE);
      noPositionals(p, "dead-letters ls", DEAD_LETTERS_USAGE);
      const page = await client(p).listDeadLetters(listFilter(p));
      if (flag(p, "json")) return printJson(page);
      write(executionsTable(page.executions));
      moreHint(page.nextCursor, page.executions.length);
      return;
    }
    default:
      throw new UsageError(`dead-letters: unknown command '${sub}'\n${hintFor(DEAD_LETTERS_USAGE)}`);
  }
}
