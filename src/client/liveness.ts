/**
 * The worker's rule for a silent connection: ping every interval, and drop a connection on which
 * nothing was heard for `pings` intervals (a half-open link: no FIN, no RST, nothing). Silence
 * counts only while this process ran. A worker that was itself stopped (a long GC, SIGSTOP, a
 * paused VM) heard nothing because it did not listen: after such a stall its connections get a
 * fresh chance to answer instead of being dropped at once — which would also strand the reports
 * the worker is about to send on them.
 */
export class LinkLiveness {
  private lastHeard: number;
  private lastCheck: number;

  constructor(
    private readonly intervalMs: number,
    private readonly pings: number,
    now: number,
  ) {
    this.lastHeard = now;
    this.lastCheck = now;
  }

  /** Anything arrived on the connection (a message, a ping, a pong). */
  heard(now: number): void {
    this.lastHeard = now;
  }

  /** Called every interval: "ping" to keep checking, "drop" when the link is dead. */
  check(now: number): "ping" | "drop" {
    const stalled = now - this.lastCheck > 2 * this.intervalMs;
    this.lastCheck = now;
    if (stalled) this.lastHeard = now;
    return now - this.lastHeard > this.pings * this.intervalMs ? "drop" : "ping";
  }
}
