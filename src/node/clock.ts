import fs from "node:fs";
import type { Clock } from "../core/clock.js";

/** How often a clock-offset file is re-read. */
const OFFSET_FILE_POLL_MS = 100;

/**
 * The wall clock, plus an offset that the jepsen-style tests set to skew one node: fixed at start
 * (CRONWHEEL_CLOCK_OFFSET_MS), or read at run time from a file holding the offset in ms
 * (CRONWHEEL_CLOCK_OFFSET_FILE; test-only: a clock skew a test can move while the node runs).
 */
export class SystemClock implements Clock {
  private timer: NodeJS.Timeout | null = null;

  constructor(public offsetMs = 0) {}

  now(): number {
    return Date.now() + this.offsetMs;
  }

  /** Follow the offset written in `file` (a missing or unreadable file leaves it as it is). */
  followOffsetFile(file: string): void {
    const read = () => {
      try {
        const n = Number(fs.readFileSync(file, "utf8").trim());
        if (Number.isFinite(n)) this.offsetMs = n;
      } catch {
        // not there (yet): keep the current offset
      }
    };
    read();
    this.timer = setInterval(read, OFFSET_FILE_POLL_MS);
    this.timer.unref();
  }
}
