/**
 * Re-check a run's folder offline: `node dist/jepsen-style-tests/check.js <results folder>`.
 * Reads history.jsonl and worker-*.jsonl, and — when the run left copies of the nodes' data
 * directories in `data/` — the replicas' shard logs (wal-checker.ts) and execution history files
 * (history-checker.ts); writes verdict.json and summary.txt next to them. The run is valid only if
 * all three are.
 *
 * `node dist/jepsen-style-tests/check.js --check-wal DIR` checks only the logs under DIR
 * (`DIR/<node>/shards/<shard>/`), and writes nothing.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { check, summary as summarize, type Validity } from "./checker.js";
import { readHistory, type FinalReadEvent } from "./history.js";
import { checkHistoryDir } from "./history-checker.js";
import { checkWalDir, type WalVerdict } from "./wal-checker.js";

/** How long after the last fault healed every active job must have fired again (runs recover 12 s by default). */
const FIRE_BOUND_MS = 10_000;
/**
 * How long an unfinished execution may go without progress before the final read: a lost
 * assignment comes back after its 2 s lease and 1 s grace, a retry after at most 2 s of backoff.
 */
const STRAND_BOUND_MS = 8_000;

/** Where a run keeps the copies of its nodes' data directories. */
export const DATA_COPIES = "data";

export function checkFolder(folder: string): { verdict: ReturnType<typeof check> & { wal?: WalVerdict; executionHistory?: WalVerdict }; summary: string } {
  const files = fs
    .readdirSync(folder)
    .filter((f) => f === "history.jsonl" || (f.startsWith("worker-") && f.endsWith(".jsonl")))
    .map((f) => path.join(folder, f));
  const events = readHistory(files);
  const history = check(events, { fireBoundMs: FIRE_BOUND_MS, strandBoundMs: STRAND_BOUND_MS });
  let summary = summarize(history);
  let verdict: ReturnType<typeof check> & { wal?: WalVerdict; executionHistory?: WalVerdict } = history;
  const data = path.join(folder, DATA_COPIES);
  if (fs.existsSync(data)) {
    // The replicas' logs, and the execution history each derived from its log.
    const wal = checkWalDir(data);
    const executionHistory = checkHistoryDir(data, events.find((e): e is FinalReadEvent => e.type === "final-read"));
    const valid: Validity = wal.verdict.valid && executionHistory.verdict.valid ? history.valid : false;
    verdict = { ...history, valid, wal: wal.verdict, executionHistory: executionHistory.verdict };
    summary = `${summary}\n${wal.summary}\n${executionHistory.summary}${valid === history.valid ? "" : "\nverdict (history, logs and execution history): INVALID"}`;
  }
  fs.writeFileSync(path.join(folder, "verdict.json"), JSON.stringify(verdict, null, 2));
  fs.writeFileSync(path.join(folder, "summary.txt"), `${summary}\n`);
  return { verdict, summary };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  const walOnly = args[0] === "--check-wal";
  const folder = walOnly ? args[1] : args[0];
  if (!folder) {
    process.stderr.write("usage: node dist/jepsen-style-tests/check.js RESULTS_FOLDER\n       node dist/jepsen-style-tests/check.js --check-wal DATA_COPIES_FOLDER\n");
    process.exit(2);
  }
  const { verdict, summary } = walOnly ? checkWalDir(folder) : checkFolder(folder);
  process.stdout.write(`${summary}\n`);
  process.exit(verdict.valid === true ? 0 : 1);
}
