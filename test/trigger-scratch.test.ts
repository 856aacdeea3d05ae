import { it } from "vitest";
import { nextFire } from "../src/core/trigger.js";
import type { Schedule, DstPolicy } from "../src/core/types.js";
const cron = (expr: string, timezone: string, dst: DstPolicy = { repeated: "first", missing: "shift" }): Schedule => ({ trigger: { kind: "cron", expr, timezone, dst }, anchorMs: 0, startAtMs: null, endAtMs: null, jitterMs: 0 });
it("perf", () => {
  for (const tz of ["Europe/Berlin", "UTC"]) for (const r of ["first", "last", "both", "first", "last", "both"] as const) {
    const s = cron("* * * * *", tz, { repeated: r, missing: "shift" });
    const start = Date.UTC(2022, 11, 31, 23), end = Date.UTC(2023, 11, 31, 23);
    const t0 = performance.now();
    let n = 0; let t = start - 1;
    for (;;) { const x = nextFire(s, t); if (x === null || x >= end) break; n++; t = x; }
    console.log(tz, r, n, ((performance.now() - t0) * 1000 / n).toFixed(3), "us/call");
  }
  const s = cron("*/5 * * * *", "America/New_York");
  const N = 200000; const xs = Array.from({ length: N }, (_, i) => Date.UTC(2024, 0, 1) + ((i * 7919 * 60013) % (365 * 86400000)));
  for (let rep = 0; rep < 4; rep++) {
    let t0 = performance.now(); let acc = 0;
    for (const x of xs) acc += nextFire(s, x)!;
    console.log("miss us/call", ((performance.now() - t0) * 1000 / N).toFixed(3));
    const same = Date.UTC(2024, 5, 1, 12, 0, 30);
    t0 = performance.now();
    for (let i = 0; i < N; i++) acc += nextFire(s, same + (i % 1000))!;
    console.log("hit us/call", ((performance.now() - t0) * 1000 / N).toFixed(3), acc > 0);
  }
});
