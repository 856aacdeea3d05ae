/**
 * The jepsen-style suite's short CI matrix (the long runs and their results: docs/jepsen.md).
 * Each fault alone against a real three-node cluster with workers and a seeded workload, judged
 * by the history checker; and the proof that the checker can fail: nodes with fencing broken on
 * purpose must be caught.
 */
import os from "node:os";
import path from "node:path";
import fs from "node:fs";
import { describe, expect, test } from "vitest";
import { runJepsen } from "../../jepsen-style-tests/run.js";
import type { Fault } from "../../jepsen-style-tests/nemesis.js";

// 25 s of faults a run (about 40 s with start, recovery and checks): the faults and the
// self-test fit the CI budget. Longer runs are made by hand (docs/jepsen.md, "Results").
const SECONDS = Number(process.env.JEPSEN_CI_SECONDS ?? 25);
/** The self-test needs workers paused often enough for a late report to race a new claim. */
const SELF_TEST_SECONDS = 40;

// The workers run as compiled scripts (dist/): `npm test` builds before it tests.

function outDir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `cronwheel-jepsen-${name}-`));
}

async function run(faults: Fault[], seed: number, unsafeFencing = false, seconds = SECONDS) {
  const lines: string[] = [];
  const result = await runJepsen({ faults, seconds, seed, recoverSeconds: 12, out: outDir(faults.join("-")), unsafeFencing, log: (l) => lines.push(l) });
  return { ...result, report: `${result.summary}\n(results in ${result.out})` };
}

describe("jepsen-style: each fault alone", () => {
  const matrix: Array<[Fault, number]> = [
    ["kill", 101],
    ["kill-majority", 102],
    ["pause", 103],
    ["partition", 104],
    ["skew", 105],
    ["pause-worker", 106],
    ["etcd", 202],
    ["rebalance", 303],
    // FAULTS 8 and 10: each passed seeds 201-203 by hand (docs/jepsen.md).
    ["one-way", 201],
    ["half-open", 202],
    ["worker-link", 203],
    ["power-loss", 501],
  ];
  for (const [fault, seed] of matrix) {
    test(`${fault} (seed ${seed}): the history is valid`, async () => {
      const r = await run([fault], seed);
      expect(r.valid, r.report).toBe(true);
    }, (SECONDS + 120) * 1000);
  }
});

describe("jepsen-style: the checker can fail", () => {
  test("nodes that accept stale fences (a debug switch) are caught: a late report changed state", async () => {
    // Workers paused past their leases come back and report; a node that accepts any fence acks
    // some of those reports after the execution went to another worker. Several seeds: the race
    // is a matter of timing.
    const reports: string[] = [];
    // Six seeds: three went by without the race in a clean-clone CI run (at 055b915).
    for (const seed of [3, 4, 5, 6, 7, 8]) {
      const r = await run(["pause-worker"], seed, true, SELF_TEST_SECONDS);
      reports.push(r.report);
      if (r.valid === false) {
        // Either checker may see it first: single-lease sees an ack of a report sent after a newer
        // fence was assigned; single-terminal sees the stale success land after the reassignment
        // (the report was sent before it, answered after it: CI at cb8833d, seed 3).
        expect(r.summary).toMatch(/a report for stale fence \d+ of '[^']+' was acked|'[^']+' was assigned again \(fence \d+\) after fence \d+ succeeded/);
        return;
      }
    }
    throw new Error(`broken fencing went unnoticed in six runs:\n${reports.join("\n")}`);
  }, 6 * (SELF_TEST_SECONDS + 120) * 1000);
});
