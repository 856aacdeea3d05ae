import type { Clock } from "../core/clock.js";

/**
 * The wall clock, plus an offset that the jepsen-style tests set to skew one node
 * (CRONWHEEL_CLOCK_OFFSET_MS at start; the offset can also be changed at run time).
 */
export class SystemClock implements Clock {
  constructor(public offsetMs = 0) {}
  now(): number {
    return Date.now() + this.offsetMs;
  }
}
