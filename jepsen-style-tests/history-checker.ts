/**
 * The offline execution-history checker: reads the history files every replica left behind —
 * `<root>/<node>/history/shard-NNNN.sqlite`, in the copies of the nodes' data directories — and
 * judges them against the final read:
 *
 * - history-once: no execution id is in one replica's file twice (the watermark's promise: a
 *   restart, a failover or a replay writes nothing twice).
 * - history-complete: every execution the final read shows ended (succeeded, failed, canceled,
 *   skipped) is in at least one replica's file (history is derived on every replica; losing
 *   nodes loses none of it).
 *
 * Notes, not violations: a replica's file without an execution its shard ended (a replica that
 * caught up by a snapshot records the skipped entries as a gap; one killed before its history
 * thread committed has them in its log, to replay at the next start); gaps recorded in a file.
 *
 * What it cannot see: whether a row matches its execution field by field (the API's reads are
 * judged by the other invariants), and history of executions the final read no longer lists.
 * The run waits a few commit intervals between the final read and the kill, so what the final
 * read saw has been committed by every replica that applied it.
 */
import fs from "node:fs";
import path from "node:path";
import { isTerminal, type ExecutionState } from "../src/core/execution.js";
import { HistoryDb } from "../src/history/history-db.js";
import type { FinalReadEvent } from "./history.js";
import { walSummary, type WalVerdict } from "./wal-checker.js";

const VIOLATIONS_KEPT = 20;
const TENANT = "default";

export function checkHistoryDir(root: string, finalRead: FinalReadEvent | undefined): { verdict: WalVerdict; summary: string } {
  const once = { name: "history-once" as const, valid: true, stats: { files: 0, rows: 0, violations: 0 }, violations: [] as string[], notes: [] as string[] };
  const complete = { name: "history-complete" as const, valid: true, stats: { ended: 0, violations: 0 }, violations: [] as string[], notes: [] as string[] };
  const inAny = new Set<string>();
  for (const node of fs.existsSync(root) ? fs.readdirSync(root).sort() : []) {
    const dir = path.join(root, node, "history");
    if (!fs.existsSync(dir)) continue;
    for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".sqlite")).sort()) {
      const db = new HistoryDb(path.join(dir, file));
      try {
        const rows = db.list({ tenant: TENANT, limit: Number.MAX_SAFE_INTEGER, examineMax: Number.MAX_SAFE_INTEGER }).items;
        once.stats.files++;
        once.stats.rows += rows.length;
        const seen = new Set<string>();
        for (const r of rows) {
          if (seen.has(r.id)) {
            once.stats.violations++;
            if (once.violations.length < VIOLATIONS_KEPT) once.violations.push(`${node}/${file}: execution '${r.id}' is written twice`);
          }
          seen.add(r.id);
          inAny.add(r.id);
        }
        for (const g of db.gaps()) once.notes.push(`${node}/${file}: entries ${g.from}..${g.to} skipped by a snapshot install (a gap)`);
      } finally {
        db.close();
      }
    }
  }
  if (!finalRead) {
    complete.notes.push("no final read: completeness not checked");
  } else {
    for (const e of finalRead.executions) {
      if (!isTerminal(e.state as ExecutionState)) continue;
      complete.stats.ended++;
      if (inAny.has(e.id)) continue;
      complete.stats.violations++;
      if (complete.violations.length < VIOLATIONS_KEPT) complete.violations.push(`execution '${e.id}' ended (${e.state}) but is in no replica's history`);
    }
  }
  once.valid = once.stats.violations === 0;
  complete.valid = complete.stats.violations === 0;
  const verdict: WalVerdict = { valid: once.valid && complete.valid, results: [once, complete] as WalVerdict["results"] };
  return { verdict, summary: walSummary(verdict, 3, "history") };
}
