/**
 * Timing wheel benchmark: 1,000,000 timers spread uniformly over one day.
 *
 * Reports inserts/s, cancels/s (random order), advance pops/s (one sweep in batches, and the way
 * the node drives it: one advance per second of schedule), and heap bytes per scheduled timer.
 * Heap figures need `node --expose-gc`; without it they are null.
 *
 *     node --expose-gc dist/bench/wheel-bench.js
 */
import { pathToFileURL } from "node:url";
import { performance } from "node:perf_hooks";
import { TimingWheel, type WheelTimer } from "../src/core/timing-wheel.js";

/** The smallest schedulable object: the four wheel fields and an id. */
class BenchTimer implements WheelTimer {
  dueAt = 0;
  wheelNext: WheelTimer | null = null;
  wheelPrev: WheelTimer | null = null;
  wheelSlot: unknown | null = null;
  constructor(readonly id: number) {}
}

const timerCount = 1_000_000;
const startMs = 1_700_000_000_000;
const spreadMs = 86_400_000;
const popBatchMax = 10_000;
const driverStepMs = 1000;

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_103_515_245) + 12_345) >>> 0;
    return s / 4_294_967_296;
  };
}

function dueTimes(n: number): Float64Array {
  const random = lcg(42);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = startMs + Math.floor(random() * spreadMs);
  return out;
}

function shuffled(n: number): Uint32Array {
  const random = lcg(7);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

function makeTimers(n: number): BenchTimer[] {
  const timers = new Array<BenchTimer>(n);
  for (let i = 0; i < n; i++) timers[i] = new BenchTimer(i);
  return timers;
}

function scheduleAll(wheel: TimingWheel<BenchTimer>, timers: BenchTimer[], due: Float64Array): void {
  for (let i = 0; i < timers.length; i++) wheel.schedule(timers[i]!, due[i]!);
}

function perSec(ops: number, ms: number): number {
  return Math.round((ops / ms) * 1000);
}

interface Round {
  insertsPerSec: number;
  cancelsPerSec: number;
  sweepPopsPerSec: number;
  driverPopsPerSec: number;
  driverAdvanceCalls: number;
}

function round(n: number): Round {
  const due = dueTimes(n);
  const order = shuffled(n);
  const timers = makeTimers(n);

  let wheel = new TimingWheel<BenchTimer>(startMs);
  let t0 = performance.now();
  scheduleAll(wheel, timers, due);
  const insertMs = performance.now() - t0;

  t0 = performance.now();
  for (let i = 0; i < n; i++) wheel.cancel(timers[order[i]!]!);
  const cancelMs = performance.now() - t0;
  if (wheel.size !== 0) throw new Error("bench: cancel left timers behind");

  // One sweep to the end of the day, in batches of popBatchMax.
  wheel = new TimingWheel<BenchTimer>(startMs);
  scheduleAll(wheel, timers, due);
  let popped = 0;
  const onDue = (): void => {
    popped++;
  };
  t0 = performance.now();
  while (wheel.advance(startMs + spreadMs, popBatchMax, onDue) > 0 || wheel.size > 0) {
    /* keep going */
  }
  const sweepMs = performance.now() - t0;
  if (popped !== n) throw new Error(`bench: sweep popped ${popped} of ${n}`);

  // As the node drives it: one advance per second of schedule time.
  wheel = new TimingWheel<BenchTimer>(startMs);
  scheduleAll(wheel, timers, due);
  popped = 0;
  let calls = 0;
  t0 = performance.now();
  for (let now = startMs + driverStepMs; wheel.size > 0; now += driverStepMs) {
    while (wheel.advance(now, popBatchMax, onDue) === popBatchMax) calls++;
    calls++;
  }
  const driverMs = performance.now() - t0;
  if (popped !== n) throw new Error(`bench: driver popped ${popped} of ${n}`);

  return {
    insertsPerSec: perSec(n, insertMs),
    cancelsPerSec: perSec(n, cancelMs),
    sweepPopsPerSec: perSec(n, sweepMs),
    driverPopsPerSec: perSec(n, driverMs),
    driverAdvanceCalls: calls,
  };
}

function heapBytes(): { perTimerObject: number; wheelPerTimer: number; perScheduledTimer: number; levels: number } | null {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) return null;
  const due = dueTimes(timerCount);
  gc();
  const h0 = process.memoryUsage().heapUsed;
  const timers = makeTimers(timerCount);
  gc();
  const h1 = process.memoryUsage().heapUsed;
  const wheel = new TimingWheel<BenchTimer>(startMs);
  scheduleAll(wheel, timers, due);
  gc();
  const h2 = process.memoryUsage().heapUsed;
  if (wheel.size !== timerCount || timers.length !== timerCount) throw new Error("bench: lost timers");
  return {
    // Includes the 8-byte slot of the array that holds the timers.
    perTimerObject: Math.round(((h1 - h0) / timerCount) * 10) / 10,
    wheelPerTimer: Math.round(((h2 - h1) / timerCount) * 10) / 10,
    perScheduledTimer: Math.round(((h2 - h0) / timerCount) * 10) / 10,
    levels: wheel.levelCount,
  };
}

export async function runWheelBench(): Promise<Record<string, unknown>> {
  round(100_000); // warm up the JIT
  const rounds = [round(timerCount), round(timerCount), round(timerCount)];
  const best = (key: keyof Round): number => Math.max(...rounds.map((r) => r[key]));
  return {
    bench: "timing-wheel",
    timers: timerCount,
    spreadMs,
    slotsPerLevel: 64,
    popBatchMax,
    insertsPerSec: best("insertsPerSec"),
    cancelsPerSec: best("cancelsPerSec"),
    advancePopsPerSec: best("sweepPopsPerSec"),
    advancePopsPerSecDriver1s: best("driverPopsPerSec"),
    driverAdvanceCalls: rounds[0]!.driverAdvanceCalls,
    heapBytes: heapBytes(),
    heapNote: "bytes: perTimerObject = a 5-field timer + its array slot; wheelPerTimer = what scheduling adds; null without --expose-gc",
    node: process.version,
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await runWheelBench(), null, 2));
}
