/**
 * The worker's link-liveness rule (src/client/liveness.ts), time passed in: a silent link is
 * dropped after its pings go unanswered; a worker that was itself stopped does not drop its links
 * for the silence it slept through.
 */
import { describe, expect, it } from "vitest";
import { LinkLiveness } from "../src/client/liveness.js";

const INTERVAL = 1000;

/** Checks on time from `from` to `to` (inclusive), the verdicts in order. */
function checks(l: LinkLiveness, from: number, to: number): Array<"ping" | "drop"> {
  const out: Array<"ping" | "drop"> = [];
  for (let t = from; t <= to; t += INTERVAL) out.push(l.check(t));
  return out;
}

describe("link liveness", () => {
  it("drops a link nothing was heard on for three intervals, checked on time", () => {
    const l = new LinkLiveness(INTERVAL, 3, 0);
    expect(checks(l, 1000, 4000)).toEqual(["ping", "ping", "ping", "drop"]);
  });

  it("keeps a link that answers", () => {
    const l = new LinkLiveness(INTERVAL, 3, 0);
    for (let t = 1000; t <= 20_000; t += INTERVAL) {
      expect(l.check(t)).toBe("ping");
      l.heard(t + 5); // the pong
    }
  });

  it("after the worker itself was stopped 6 s, gives the link a fresh chance; still drops it if it stays silent", () => {
    const l = new LinkLiveness(INTERVAL, 3, 0);
    expect(l.check(1000)).toBe("ping");
    expect(l.check(7000)).toBe("ping"); // late by 5 intervals: this process did not run
    expect(checks(l, 8000, 11_000)).toEqual(["ping", "ping", "ping", "drop"]);
  });

  it("a stall shorter than two intervals is not excused", () => {
    const l = new LinkLiveness(INTERVAL, 3, 0);
    expect(l.check(1000)).toBe("ping");
    expect(l.check(2900)).toBe("ping");
    expect(l.check(3900)).toBe("drop"); // 3.9 s of silence, every check within 2 intervals of the last
  });
});
