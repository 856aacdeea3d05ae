/**
 * Fills the gaps in this node's history files from its peers. A replica that installs a snapshot
 * (it was far behind, or it is new after a shard move) never applies the entries the snapshot
 * covers, so their executions and audit entries are missing from its file (a gap, history-db.ts).
 * Every replica derives the same rows with the same keys, so another replica's file holds exactly
 * the missing rows: those after this file's last row and before the snapshot's place in finish
 * order. They come over the peer connection a page at a time, each page committed with the gap's
 * progress, so a restart goes on where it stopped and no row is written twice.
 *
 * A peer answers only if its own file covers the gap's log entries (it applied them and has no gap
 * of its own there); otherwise the next replica is asked, and failing all, the next round (every
 * FILL_EVERY_MS, and whenever a gap is recorded). A standalone node has no peers: its gaps stay.
 */
import type { Logger } from "pino";
import type { ExecutionFacts } from "../core/execution.js";
import type { HistoryGap } from "../history/history-db.js";
import type { HistoryStore } from "../history/history-store.js";
import type { HistoryRange, HistoryRangeQuery } from "../history/history-thread.js";

/** How often the node looks for gaps to fill. */
const FILL_EVERY_MS = 5_000;
/** Rows per page (each page one peer request and one commit). */
export const FILL_PAGE_ROWS = 5_000;
const FILL_REQUEST_TIMEOUT_MS = 30_000;

/** What a node asks a peer for a page of a gap. */
export interface HistoryRangeRequest {
  t: "history-range";
  shard: number;
  query: HistoryRangeQuery;
}

export interface HistoryFillOptions {
  history: HistoryStore;
  /** Shards with a replica on this node. */
  localShards: () => number[];
  /** The other nodes holding a replica of the shard, its leader first. */
  peersOf: (shard: number) => string[];
  request: (nodeId: string, request: HistoryRangeRequest, timeoutMs: number) => Promise<HistoryRange>;
  logger: Logger;
}

export class HistoryFill {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;

  constructor(private readonly opts: HistoryFillOptions) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), FILL_EVERY_MS);
    this.timer.unref();
    this.kick();
  }

  /** Look for gaps now (one round at a time; a kick during a round runs another after it). */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.round()
      .catch((error: unknown) => this.opts.logger.warn({ err: error }, "history fill round failed; retrying later"))
      .finally(() => {
        this.running = null;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  private async round(): Promise<void> {
    for (const shard of this.opts.localShards()) {
      if (this.closed) return;
      for (const gap of await this.opts.history.gaps(shard)) {
        if (gap.after === null || gap.before === null) continue; // recorded before fills existed: nothing bounds it
        await this.fillGap(shard, gap);
      }
    }
  }

  /** Fill one gap from the first peer whose file covers it; false when none could. */
  private async fillGap(shard: number, gap: HistoryGap): Promise<boolean> {
    for (const peer of this.opts.peersOf(shard)) {
      let after = gap.after!;
      let rows = 0;
      try {
        for (;;) {
          if (this.closed) return false;
          const query: HistoryRangeQuery = { fromIndex: gap.from - 1, toIndex: gap.to, after, before: gap.before!, limit: FILL_PAGE_ROWS };
          const page = await this.opts.request(peer, { t: "history-range", shard, query }, FILL_REQUEST_TIMEOUT_MS);
          if (!page.complete) break;
          const done = page.rows.length < FILL_PAGE_ROWS;
          await this.opts.history.fill(shard, gap.id, page.rows, done ? page.audit : null, done);
          rows += page.rows.length;
          const last: ExecutionFacts | undefined = page.rows[page.rows.length - 1];
          if (last) after = { ms: last.finishedAt!, seq: last.finishSeq };
          if (done) {
            this.opts.logger.info({ shard, from: gap.from, to: gap.to, peer, rows, audit: page.audit?.length ?? 0 }, "history gap filled from a peer");
            return true;
          }
        }
      } catch (error) {
        this.opts.logger.warn({ shard, from: gap.from, to: gap.to, peer, rows, err: error }, "history gap fill from a peer failed; trying another");
      }
    }
    return false;
  }
}
