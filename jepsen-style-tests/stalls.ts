/**
 * CPU starvation, recorded so that it explains what it causes. On two cores a node can miss its
 * etcd keep-alives or its followers' deadlines only because it did not get to run; a lease lost
 * that way is a fault of the machine, not a bug, and the run's report should say so. Every
 * second each live node's longest event-loop stall of the last minute (its
 * `cronwheel_event_loop_stall_max_seconds`) goes to `node-stats.jsonl` on the shared monotonic
 * clock, and the run prints each node's worst stall and when it was first seen.
 */
import fs from "node:fs";
import type { TestCluster } from "../test/support/cluster.js";
import { monoNow } from "./history.js";

const SAMPLE_EVERY_MS = 1_000;
const STALL_MAX = /^cronwheel_event_loop_stall_max_seconds (\S+)$/m;

export interface NodeStall {
  node: string;
  eventLoopMaxMs: number;
  t: number;
}

export class StallSampler {
  private timer: NodeJS.Timeout | null = null;
  private readonly worst = new Map<string, NodeStall>();

  constructor(
    private readonly cluster: TestCluster,
    private readonly file: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sample(), SAMPLE_EVERY_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One line: each node's worst event-loop stall and when it was seen. */
  summary(): string {
    const parts = [...this.worst.values()].sort((a, b) => (a.node < b.node ? -1 : 1)).map((s) => `${s.node} ${s.eventLoopMaxMs} ms (t=${s.t.toFixed(0)})`);
    return `worst event-loop stall per node: ${parts.join(", ") || "none sampled"}`;
  }

  private async sample(): Promise<void> {
    await Promise.all(
      this.cluster.live().map(async (n) => {
        try {
          const res = await fetch(`${n.base}/metrics`, { signal: AbortSignal.timeout(SAMPLE_EVERY_MS) });
          const seconds = Number(STALL_MAX.exec(await res.text())?.[1]);
          if (!Number.isFinite(seconds)) return;
          const stall: NodeStall = { node: n.id, eventLoopMaxMs: Math.round(seconds * 1000), t: monoNow() };
          fs.appendFileSync(this.file, `${JSON.stringify(stall)}\n`);
          if (stall.eventLoopMaxMs > (this.worst.get(n.id)?.eventLoopMaxMs ?? -1)) this.worst.set(n.id, stall); // first seen: the earliest sample with it
        } catch {
          // paused, killed or starved past the timeout: the next sample shows the stall
        }
      }),
    );
  }
}
