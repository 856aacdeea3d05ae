import { it } from "vitest";
import { nextFire, clearTriggerMemo } from "../src/core/trigger.js";
import type { Schedule, DstPolicy } from "../src/core/types.js";
const cron = (expr: string, timezone: string, dst: DstPolicy = { repeated: "first", missing: "shift" }): Schedule => ({ trigger: { kind: "cron", expr, timezone, dst }, anchorMs: 0, startAtMs: null, endAtMs: null, jitterMs: 0 });
it("bench", () => {
  const N = 200_000;
  const base = Date.UTC(2024, 0, 1);
  const qs = Array.from({ length: N }, (_, i) => base + ((i * 7919 * 60013) % (365 * 86400000)));
  for (const [expr, tz] of [["*/5 * * * *", "America/New_York"], ["* * * * *", "Europe/Berlin"], ["30 2 * * *", "Europe/Berlin"], ["0 9 * * 1-5", "Asia/Kolkata"], ["*/5 * * * *", "UTC"], ["0 0 L * *", "Pacific/Chatham"]] as const) {
    const s = cron(expr, tz);
    let sink = 0;
    for (const q of qs.slice(0, 20000)) sink += nextFire(s, q)!;
    const res: string[] = [];
    for (let rep = 0; rep < 3; rep++) {
      let t0 = performance.now();
      for (const q of qs) sink += nextFire(s, q)!;
      const miss = (performance.now() - t0) * 1000 / N;
      const h = base + 86400000 * 150 + 1234;
      t0 = performance.now();
      for (let i = 0; i < N; i++) sink += nextFire(s, h + (i % 1000))!;
      const hit = (performance.now() - t0) * 1000 / N;
      let t = base; t0 = performance.now();
      for (let i = 0; i < N; i++) { t = nextFire(s, t)!; }
      const seq = (performance.now() - t0) * 1000 / N;
      res.push(`miss ${miss.toFixed(2)} hit ${hit.toFixed(3)} seq ${seq.toFixed(2)}`);
    }
    // cold: first call of a new expression in a known zone
    let t0 = performance.now();
    for (let i = 0; i < 200; i++) { nextFire(cron(`${i % 60} ${i % 24} * * *`, tz), base + i * 1000); }
    const cold = (performance.now() - t0) * 1000 / 200;
    console.log(expr.padEnd(12), tz.padEnd(18), res.join(" | "), `cold(compile) ${cold.toFixed(0)}`, sink > 0);
    clearTriggerMemo();
  }
});
