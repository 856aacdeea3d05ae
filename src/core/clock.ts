/** Time is a dependency: everything that needs "now" is handed a Clock, so tests can run a year in milliseconds and the jepsen-style tests can skew one node. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
}

/** A clock a test moves by hand. */
export class ManualClock implements Clock {
  constructor(private ms: number) {}
  now(): number {
    return this.ms;
  }
  set(ms: number): void {
    this.ms = ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
}
