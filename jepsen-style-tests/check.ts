/**
 * Re-check a run's folder offline: `node dist/jepsen-style-tests/check.js <results folder>`.
 * Reads history.jsonl and worker-*.jsonl, writes verdict.json and summary.txt next to them.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { check, summary as summarize } from "./checker.js";
import { readHistory } from "./history.js";

/** How long after the last fault healed every active job must have fired again (runs recover 12 s by default). */
const FIRE_BOUND_MS = 10_000;
/**
 * How long an unfinished execution may go without progress before the final read: a lost
 * assignment comes back after its 2 s lease and 1 s grace, a retry after at most 2 s of backoff.
 */
const STRAND_BOUND_MS = 8_000;

export function checkFolder(folder: string): { verdict: ReturnType<typeof check>; summary: string } {
  const files = fs
    .readdirSync(folder)
    .filter((f) => f === "history.jsonl" || (f.startsWith("worker-") && f.endsWith(".jsonl")))
    .map((f) => path.join(folder, f));
  const verdict = check(readHistory(files), { fireBoundMs: FIRE_BOUND_MS, strandBoundMs: STRAND_BOUND_MS });
  const summary = summarize(verdict);
  fs.writeFileSync(path.join(folder, "verdict.json"), JSON.stringify(verdict, null, 2));
  fs.writeFileSync(path.join(folder, "summary.txt"), `${summary}\n`);
  return { verdict, summary };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const folder = process.argv[2];
  if (!folder) {
    process.stderr.write("usage: node dist/jepsen-style-tests/check.js RESULTS_FOLDER\n");
    process.exit(2);
  }
  const { verdict, summary } = checkFolder(folder);
  process.stdout.write(`${summary}\n`);
  process.exit(verdict.valid === true ? 0 : 1);
}
