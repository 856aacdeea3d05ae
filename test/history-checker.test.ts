/**
 * The jepsen-style suite's execution-history checker (jepsen-style-tests/history-checker.ts) on
 * hand-made replica files: it passes a clean set, and catches a row written twice and an ended
 * execution missing from every replica.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { ExecutionFacts } from "../src/core/execution.js";
import { HistoryDb } from "../src/history/history-db.js";
import { checkHistoryDir } from "../jepsen-style-tests/history-checker.js";
import type { FinalReadEvent } from "../jepsen-style-tests/history.js";

const T0 = Date.UTC(2026, 11, 7);

function facts(id: string, finishedAt: number, finishSeq = 0): ExecutionFacts {
  return {
    id, tenant: "default", jobId: null, queue: "q", state: "succeeded", reason: null, scheduledAt: finishedAt - 10, createdAt: finishedAt - 10,
    readyAt: finishedAt - 10, startedAt: finishedAt - 2, finishedAt, finishSeq, attempt: 1,
    attempts: [{ attempt: 1, workerId: "w", claimedAt: finishedAt - 3, finishedAt, outcome: "succeeded", error: null }],
    payload: null, priority: 5, result: null, orderingKey: null, idempotencyKey: null,
  };
}

function replicaFiles(rows: Record<string, ExecutionFacts[][]>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "cronwheel-history-checker-"));
  for (const [node, batches] of Object.entries(rows)) {
    const db = new HistoryDb(path.join(root, node, "history", "shard-0000.sqlite"));
    batches.forEach((batch, i) => db.append(batch, i + 1));
    db.close();
  }
  return root;
}

const finalRead = (ids: Array<[string, string]>): FinalReadEvent => ({
  type: "final-read", t: 0, jobs: [], executions: ids.map(([id, state]) => ({ id, queue: "q", state, attempt: 1, scheduledAtMono: 0 })),
});

describe("execution-history checker", () => {
  it("passes replicas that each hold every ended execution once", () => {
    const root = replicaFiles({ n1: [[facts("xa", T0), facts("xb", T0 + 1)]], n2: [[facts("xa", T0)], [facts("xb", T0 + 1)]] });
    const { verdict } = checkHistoryDir(root, finalRead([["xa", "succeeded"], ["xb", "succeeded"], ["xc", "ready"]]));
    expect(verdict.valid).toBe(true);
  });

  it("catches an execution written twice in one replica's file", () => {
    const root = replicaFiles({ n1: [[facts("xa", T0)], [facts("xa", T0, 1)]] });
    const { verdict, summary } = checkHistoryDir(root, finalRead([["xa", "succeeded"]]));
    expect(verdict.valid).toBe(false);
    expect(summary).toMatch(/execution 'xa' is written twice/);
  });

  it("catches an ended execution that no replica's history holds", () => {
    const root = replicaFiles({ n1: [[facts("xa", T0)]], n2: [[facts("xa", T0)]] });
    const { verdict, summary } = checkHistoryDir(root, finalRead([["xa", "succeeded"], ["xb", "failed"]]));
    expect(verdict.valid).toBe(false);
    expect(summary).toMatch(/execution 'xb' ended \(failed\) but is in no replica's history/);
  });
});
