/**
 * Hierarchical timing wheel: millions of logical timers, one native timer.
 *
 * Why
 * ---
 * A shard keeps every pending fire, retry, lease expiry and timeout of its jobs in a timing wheel.
 * Up to 1,000,000 timers per process must cost O(1) to insert and cancel, must not wake the event
 * loop on empty ticks, and must not hold more than a few dozen bytes each. Following Kafka's
 * TimingWheel, the wheel is hierarchical (coarser levels are created on demand, so the horizon is
 * unlimited) and its lists are intrusive (the scheduled object carries its own links, so an insert
 * allocates nothing). Following undici, one native timer drives all of it: the driver asks
 * `nextDueAt()`, arms a single `setTimeout`, and calls `advance()` when it fires. Following Netty,
 * the work of one `advance()` is bounded, so a burst cannot stall the loop.
 *
 * This module is pure: it never reads a clock, arms a timer or does I/O. Time comes in as an
 * argument (milliseconds since the epoch, integers), so tests can run years of schedule in
 * milliseconds and replicas given the same calls behave identically.
 *
 * Layout
 * ------
 * With S = slotsPerLevel (a power of two, default 64), level k has S slots of tickMs(k) = S^k ms;
 * level 0 has one slot per millisecond. The wheel keeps a cursor C (the time up to which it has
 * processed slots; C <= currentMs). A timer with dueAt >= C lives at the lowest level k whose
 * window holds it, tick-aligned as in Kafka:
 *
 *     floor(dueAt / tickMs(k)) - floor(C / tickMs(k)) < S,   slot = floor(dueAt / tickMs(k)) mod S
 *
 * so a level-0 slot holds timers of one exact millisecond, and a slot at level k >= 1 holds timers
 * due in [j * tickMs(k), (j + 1) * tickMs(k)) for one absolute tick j with
 * floor(C / tickMs(k)) < j < floor(C / tickMs(k)) + S. That slot is "reached" at time j * tickMs(k):
 * the cursor stops there and cascades the slot, re-placing each of its timers relative to the new
 * cursor, which puts it at a finer level (its tick now equals the cursor's). At level 0 the
 * cascade ends: the timers of slot C are exactly those due at C.
 *
 * Each level has an occupancy bitmap (S bits), so the next non-empty slot of a level is found by
 * scanning S / 32 words, never by ticking. Moving the cursor from C to the earliest reached slot
 * start over all levels skips every empty slot in between; advancing across an empty hour costs
 * O(levels * S / 32) word reads, not 3,600,000 ticks. Levels never shrink; with S = 64 and
 * epoch-millisecond times, 8 or 9 levels exist.
 *
 * Two side structures complete it:
 * - overdue: a timer scheduled with dueAt < C (in the past, or behind a cursor that stopped at a
 *   limit) cannot go into the wheel, which only looks forward. It goes into a bucket per distinct
 *   dueAt, and the distinct values sit in a binary min-heap, so overdue timers still come out in
 *   dueAt order. This costs O(log d) for a dueAt not yet present (d = distinct overdue dueAts) and
 *   O(1) otherwise; the normal case (dueAt >= C) never touches it.
 * - deferred: see "Rescheduling from onDue" below.
 *
 * Every bucket is a doubly linked list through the timers' own `wheelNext` / `wheelPrev`, and
 * `wheelSlot` points at the bucket, so cancel unlinks in O(1) and clears the bitmap bit when the
 * bucket empties. Insert is O(levels) divisions (at most 9 for S = 64), with no allocation except
 * a new overdue dueAt.
 *
 * Worked example (S = 4, so ticks are 1, 4, 16 and 64 ms; everything starts at C = 0)
 * ------------------------------------------------------------------------------------
 *     schedule(A, 2)    level 0: 2 - 0 < 4                        -> level 0 slot 2
 *     schedule(B, 13)   level 1: floor(13/4) = 3, 3 - 0 < 4        -> level 1 slot 3  (12..15)
 *     schedule(C, 50)   level 2: floor(50/16) = 3                  -> level 2 slot 3  (48..63)
 *     schedule(D, 70)   level 2: floor(70/16) = 4, 4 - 0 = 4 >= 4  -> level 3 slot 1  (64..127)
 *     nextDueAt()       = min(2, 12, 48, 64) = 2
 *     advance(100, limit = Infinity):
 *       cursor -> 2    level 0 slot 2 holds A                          hand out A
 *       cursor -> 12   reach level 1 slot 3: B re-placed, 13 - 12 < 4   -> level 0 slot 1
 *       cursor -> 13   hand out B
 *       cursor -> 48   reach level 2 slot 3: C re-placed                -> level 0 slot 2
 *       cursor -> 50   hand out C
 *       cursor -> 64   reach level 3 slot 1: D re-placed, 70 - 64 >= 4,
 *                      floor(70/4) - floor(64/4) = 1 < 4                -> level 1 slot 1  (68..71)
 *       cursor -> 68   reach level 1 slot 1: D re-placed                -> level 0 slot 2
 *       cursor -> 70   hand out D
 *       no slot left before 100: cursor -> 100; returns 4
 * Eight cursor stops instead of 100 ticks; a timer two years out takes about one stop per level.
 *
 * Promises (what `advance(nowMs, limit, onDue)` guarantees)
 * --------------------------------------------------------
 * - Time never goes backwards: currentMs = max(currentMs, nowMs).
 * - It hands out up to `limit` timers with dueAt <= currentMs, earliest first, in non-decreasing
 *   dueAt order within the call. A timer is never handed out before its dueAt nor missed: each
 *   call either hands out every due timer or stops at a bound, and the rest stay due.
 * - Ties (equal dueAt) come out in a deterministic order: the same sequence of calls gives the
 *   same order. Within one bucket it is FIFO, but a cascade appends, so two equal-dueAt timers
 *   that reached the same slot along different paths may come out in either order; the order also
 *   depends on when advance() was called. A state machine that needs an order that replicas agree
 *   on regardless of their advance() timing must sort ties itself (e.g. by id).
 * - Each timer is unscheduled (wheelSlot = null) before onDue(timer) is called, so onDue may
 *   schedule it again, cancel others, or schedule new ones. advance() is not re-entrant.
 * - If onDue throws, the exception propagates; the wheel is left consistent and the timer that
 *   was being handed out stays unscheduled.
 *
 * Rescheduling from onDue: a timer scheduled during advance() with dueAt <= nowMs (whether it was
 * just handed out, is a new timer, or is moved from elsewhere in the wheel) is NOT handed out by
 * the same call; it is due at the next call. Such timers wait in the deferred list and enter the
 * wheel when advance() returns. So one advance() always terminates (even with limit = Infinity
 * and an onDue that always reschedules to "now"), its output is non-decreasing, and its output is
 * exactly the `limit` earliest of the timers that were due when it was called (modulo ties).
 * Timers scheduled during advance() with dueAt > nowMs go straight into the wheel.
 *
 * Bounds: each call hands out at most `limit` timers and moves at most
 * `cascadeTimersPerAdvanceMax` timers between levels (a cascade can be interrupted mid-slot and
 * resumes at the next call). Besides that it does O(levels * S / 32) work per cursor stop, and
 * every stop hands out or moves at least one timer, except the last one of a call (where a bound
 * hit, or the jump to nowMs). So one call costs O((limit + cascadeTimersPerAdvanceMax) * levels)
 * at worst, whatever the number of timers and however far time moves.
 *
 * `nextDueAt()` returns a time no later than the earliest dueAt of any scheduled timer: either
 * that dueAt, or the start of the slot that must be cascaded first (which is what the driver
 * needs: at that time it calls advance(), which cascades and usually hands out nothing, then
 * re-arms). A value <= currentMs means "call advance() again now" (work left over at a bound, or
 * overdue timers). null means the wheel is empty.
 *
 * Driver loop (in src/node, not here):
 *     function onNativeTimer(): void {
 *       wheel.advance(clock.nowMs(), duePerTurnMax, fire);
 *       const next = wheel.nextDueAt();
 *       if (next === null) disarm();
 *       else if (next <= wheel.currentMs) setImmediate(onNativeTimer);   // work left at a bound
 *       else arm(next - clock.nowMs());                                   // ONE setTimeout
 *     }
 * and after schedule(), re-arm if nextDueAt() became earlier than the armed time.
 */

/**
 * Fields a schedulable object carries; the wheel owns them. Initialize them in your class
 * constructor (dueAt = 0, wheelNext = wheelPrev = null, wheelSlot = null) so the hidden class is
 * stable. Memory: four fields per timer and nothing else in the wheel; V8 keeps an epoch-ms
 * dueAt (> 2^31) as a boxed double, 16 bytes more (measured in bench/wheel-bench.ts).
 */
export interface WheelTimer {
  /** Milliseconds since the epoch; set by schedule(). */
  dueAt: number;
  wheelNext: WheelTimer | null;
  wheelPrev: WheelTimer | null;
  /** The bucket it is in; null when not scheduled. */
  wheelSlot: unknown | null;
}

export interface TimingWheelOptions {
  /** Slots per level, a power of two in [slotsPerLevelMin, slotsPerLevelMax]; default 64. */
  slotsPerLevel?: number;
  /** Most timers one advance() moves from a coarse level to a finer one; default 65,536. */
  cascadeTimersPerAdvanceMax?: number;
}

export const slotsPerLevelDefault = 64;
export const slotsPerLevelMin = 2;
export const slotsPerLevelMax = 65_536;
/** About 3-6 ms of re-placing at ~50-100 ns per timer. */
export const cascadeTimersPerAdvanceMaxDefault = 65_536;
/** No more levels can be needed: with 2 slots, level 54 has ticks of 2^54 ms > any safe integer. */
const levelsMax = 64;
const bitsPerWord = 32;

/** Bucket kinds other than a wheel level (levels are 0, 1, 2, ...). */
const kindOverdue = -1;
const kindDeferred = -2;

/** One intrusive list: a wheel slot, an overdue dueAt, or the deferred list. */
class Bucket {
  head: WheelTimer | null = null;
  tail: WheelTimer | null = null;
  constructor(
    readonly owner: object,
    /** Level number >= 0, or kindOverdue / kindDeferred. */
    readonly kind: number,
    /** Slot index within the level (levels only). */
    readonly index: number,
    /** The dueAt of every timer in it (overdue buckets only). */
    readonly key: number,
  ) {}
}

class Level {
  readonly buckets: Bucket[];
  /** Bit i set iff buckets[i] is non-empty. */
  readonly occupied: Uint32Array;
  constructor(
    owner: object,
    readonly level: number,
    readonly tickMs: number,
    slots: number,
  ) {
    this.buckets = new Array<Bucket>(slots);
    for (let i = 0; i < slots; i++) this.buckets[i] = new Bucket(owner, level, i, 0);
    this.occupied = new Uint32Array(Math.max(1, slots / bitsPerWord));
  }
}

function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`TimingWheel: ${message}`);
}

/** Index of the lowest set bit of a non-zero 32-bit word. */
function lowestBit(word: number): number {
  return 31 - Math.clz32(word & -word);
}

export class TimingWheel<T extends WheelTimer> {
  private readonly slots: number;
  private readonly cascadeTimersPerAdvanceMax: number;
  private readonly levels: Level[] = [];
  /** Slots before this time have been processed; every timer in a level has dueAt >= cursorMs. */
  private cursorMs: number;
  /** The time the wheel has been advanced to; cursorMs <= nowMs. */
  private nowMs: number;
  private count = 0;
  /** Levels 1..cascadeLevel may still hold timers in their slot at cursorMs (cascade under way). */
  private cascadeLevel = 0;
  /** Min-heap of the distinct dueAts in overdueBuckets; its top bucket is never empty. */
  private readonly overdueKeys: number[] = [];
  private readonly overdueBuckets = new Map<number, Bucket>();
  private readonly deferred: Bucket;
  private deferredDueAtMin = Infinity;
  private advancing = false;
  private work = 0;

  constructor(nowMs: number, options: TimingWheelOptions = {}) {
    const slots = options.slotsPerLevel ?? slotsPerLevelDefault;
    const cascadeMax = options.cascadeTimersPerAdvanceMax ?? cascadeTimersPerAdvanceMaxDefault;
    assert(Number.isSafeInteger(nowMs) && nowMs >= 0, `nowMs must be a non-negative integer, got ${nowMs}`);
    assert(
      Number.isInteger(slots) && slots >= slotsPerLevelMin && slots <= slotsPerLevelMax && (slots & (slots - 1)) === 0,
      `slotsPerLevel must be a power of two in [${slotsPerLevelMin}, ${slotsPerLevelMax}], got ${slots}`,
    );
    assert(Number.isSafeInteger(cascadeMax) && cascadeMax >= 1, `cascadeTimersPerAdvanceMax must be >= 1, got ${cascadeMax}`);
    this.slots = slots;
    this.cascadeTimersPerAdvanceMax = cascadeMax;
    this.cursorMs = nowMs;
    this.nowMs = nowMs;
    this.deferred = new Bucket(this, kindDeferred, 0, 0);
    this.levels.push(new Level(this, 0, 1, slots));
  }

  /** Timers currently scheduled. */
  get size(): number {
    return this.count;
  }

  /** The time the wheel has advanced to. */
  get currentMs(): number {
    return this.nowMs;
  }

  /** Levels created so far (for tests and metrics). */
  get levelCount(): number {
    return this.levels.length;
  }

  /**
   * Units of work done since construction: timers handed out, timers cascaded, bitmap words and
   * levels scanned. A cheap counter for tests ("an empty hour costs little") and metrics.
   */
  get workUnits(): number {
    return this.work;
  }

  isScheduled(timer: T): boolean {
    const slot = timer.wheelSlot;
    return slot !== null && (slot as Bucket).owner === this;
  }

  /** Insert, or move if already scheduled. dueAt <= currentMs means due at the next advance(). */
  schedule(timer: T, dueAt: number): void {
    assert(Number.isSafeInteger(dueAt), `dueAt must be an integer number of ms, got ${dueAt}`);
    const slot = timer.wheelSlot;
    if (slot === null) {
      assert(timer.wheelNext === null && timer.wheelPrev === null, "unscheduled timer has links (fields not initialized?)");
      this.count++;
    } else {
      this.unlink(timer, this.ownBucket(slot));
    }
    timer.dueAt = dueAt;
    if (this.advancing && dueAt <= this.nowMs) {
      this.link(this.deferred, timer);
      if (dueAt < this.deferredDueAtMin) this.deferredDueAtMin = dueAt;
      return;
    }
    this.place(timer);
  }

  /** O(1); false if it was not scheduled. */
  cancel(timer: T): boolean {
    const slot = timer.wheelSlot;
    if (slot === null) return false;
    this.unlink(timer, this.ownBucket(slot));
    this.count--;
    return true;
  }

  /**
   * No later than the earliest dueAt of any scheduled timer: that dueAt, or the start of a slot
   * that must be cascaded first. <= currentMs: call advance() now. null: empty.
   */
  nextDueAt(): number | null {
    if (this.count === 0) return null;
    let best = this.deferredDueAtMin;
    if (this.overdueKeys.length > 0) return Math.min(best, this.overdueKeys[0]!);
    if (this.cascadeLevel > 0 || this.levels[0]!.buckets[this.cursorMs % this.slots]!.head !== null) {
      return Math.min(best, this.cursorMs);
    }
    best = Math.min(best, this.nextStopAfterCursor());
    assert(best !== Infinity, "size > 0 but no timer found");
    return best;
  }

  /**
   * Move time to nowMs (never backwards) and hand out up to `limit` due timers (dueAt <= nowMs)
   * in non-decreasing dueAt order. Each is unscheduled before onDue is called. Timers scheduled
   * from onDue with dueAt <= nowMs wait for the next call. Returns the number handed out.
   */
  advance(nowMs: number, limit: number, onDue: (timer: T) => void): number {
    assert(Number.isSafeInteger(nowMs), `nowMs must be an integer number of ms, got ${nowMs}`);
    assert((Number.isSafeInteger(limit) && limit >= 0) || limit === Infinity, `limit must be an integer >= 0, got ${limit}`);
    assert(!this.advancing, "advance() is not re-entrant");
    if (nowMs > this.nowMs) this.nowMs = nowMs;
    this.advancing = true;
    let handed = 0;
    try {
      handed = this.run(limit, onDue);
    } finally {
      this.advancing = false;
      this.flushDeferred();
      this.settleCascadeLevel();
    }
    return handed;
  }

  /** The advance loop: overdue first, then a cascade under way, then slot C, then move C. */
  private run(limit: number, onDue: (timer: T) => void): number {
    const level0 = this.levels[0]!;
    let handed = 0;
    let cascadeBudget = this.cascadeTimersPerAdvanceMax;
    while (handed < limit) {
      if (this.overdueKeys.length > 0) {
        const bucket = this.overdueBuckets.get(this.overdueKeys[0]!)!;
        this.handOut(bucket.head as T, bucket, onDue);
        handed++;
        continue;
      }
      if (this.cascadeLevel > 0) {
        const level = this.levels[this.cascadeLevel]!;
        const bucket = level.buckets[Math.floor(this.cursorMs / level.tickMs) % this.slots]!;
        const timer = bucket.head;
        if (timer === null) {
          this.cascadeLevel--;
          continue;
        }
        if (cascadeBudget === 0) break;
        cascadeBudget--;
        this.work++;
        this.unlink(timer, bucket);
        this.place(timer);
        assert(timer.wheelSlot !== bucket, "a cascaded timer must move to a finer level");
        continue;
      }
      const current = level0.buckets[this.cursorMs % this.slots]!;
      if (current.head !== null) {
        this.handOut(current.head as T, current, onDue);
        handed++;
        continue;
      }
      const stop = this.nextStopAfterCursor();
      if (stop > this.nowMs) {
        // Nothing is reached before nowMs: every occupied slot stays valid relative to nowMs.
        this.cursorMs = this.nowMs;
        break;
      }
      assert(stop > this.cursorMs, "cursor must move forward");
      this.cursorMs = stop;
      this.cascadeLevel = this.cascadeLevelAt(stop);
    }
    return handed;
  }

  private handOut(timer: T, bucket: Bucket, onDue: (timer: T) => void): void {
    assert(timer.dueAt <= this.nowMs, "handing out a timer that is not due");
    this.unlink(timer, bucket);
    this.count--;
    this.work++;
    onDue(timer);
  }

  /** Put an unlinked timer where it belongs relative to the cursor. */
  private place(timer: WheelTimer): void {
    const dueAt = timer.dueAt;
    const cursor = this.cursorMs;
    const slots = this.slots;
    if (dueAt < cursor) {
      this.placeOverdue(timer);
      return;
    }
    if (dueAt - cursor < slots) {
      this.link(this.levels[0]!.buckets[dueAt % slots]!, timer);
      return;
    }
    for (let k = 1; ; k++) {
      if (k === this.levels.length) this.addLevel();
      const level = this.levels[k]!;
      const tick = Math.floor(dueAt / level.tickMs);
      if (tick - Math.floor(cursor / level.tickMs) < slots) {
        this.link(level.buckets[tick % slots]!, timer);
        return;
      }
    }
  }

  private placeOverdue(timer: WheelTimer): void {
    const dueAt = timer.dueAt;
    let bucket = this.overdueBuckets.get(dueAt);
    if (bucket === undefined) {
      bucket = new Bucket(this, kindOverdue, 0, dueAt);
      this.overdueBuckets.set(dueAt, bucket);
      this.heapPush(dueAt);
    }
    this.link(bucket, timer);
  }

  private addLevel(): void {
    const k = this.levels.length;
    assert(k < levelsMax, `more than ${levelsMax} levels`);
    this.levels.push(new Level(this, k, this.levels[k - 1]!.tickMs * this.slots, this.slots));
  }

  private link(bucket: Bucket, timer: WheelTimer): void {
    const tail = bucket.tail;
    timer.wheelSlot = bucket;
    timer.wheelNext = null;
    timer.wheelPrev = tail;
    if (tail === null) {
      bucket.head = timer;
      if (bucket.kind >= 0) {
        const occupied = this.levels[bucket.kind]!.occupied;
        occupied[bucket.index >>> 5] = occupied[bucket.index >>> 5]! | (1 << (bucket.index & 31));
      }
    } else {
      tail.wheelNext = timer;
    }
    bucket.tail = timer;
  }

  private unlink(timer: WheelTimer, bucket: Bucket): void {
    const prev = timer.wheelPrev;
    const next = timer.wheelNext;
    if (prev === null) {
      assert(bucket.head === timer, "list corrupted: timer without prev is not the head");
      bucket.head = next;
    } else {
      prev.wheelNext = next;
    }
    if (next === null) {
      assert(bucket.tail === timer, "list corrupted: timer without next is not the tail");
      bucket.tail = prev;
    } else {
      next.wheelPrev = prev;
    }
    timer.wheelNext = null;
    timer.wheelPrev = null;
    timer.wheelSlot = null;
    if (bucket.head === null) this.bucketEmptied(bucket);
  }

  private bucketEmptied(bucket: Bucket): void {
    if (bucket.kind >= 0) {
      const occupied = this.levels[bucket.kind]!.occupied;
      occupied[bucket.index >>> 5] = occupied[bucket.index >>> 5]! & ~(1 << (bucket.index & 31));
    } else if (bucket.kind === kindOverdue && this.overdueKeys[0] === bucket.key) {
      this.trimOverdue();
    }
  }

  private ownBucket(slot: unknown): Bucket {
    assert(slot instanceof Bucket && slot.owner === this, "timer is scheduled in another wheel");
    return slot;
  }

  /** Empty overdue buckets stay in the heap until they reach the top; drop them there. */
  private trimOverdue(): void {
    while (this.overdueKeys.length > 0) {
      const key = this.overdueKeys[0]!;
      if (this.overdueBuckets.get(key)!.head !== null) return;
      this.heapPop();
      this.overdueBuckets.delete(key);
      this.work++;
    }
  }

  private flushDeferred(): void {
    const deferred = this.deferred;
    while (deferred.head !== null) {
      const timer = deferred.head;
      this.unlink(timer, deferred);
      this.place(timer);
    }
    this.deferredDueAtMin = Infinity;
  }

  private settleCascadeLevel(): void {
    while (this.cascadeLevel > 0) {
      const level = this.levels[this.cascadeLevel]!;
      if (level.buckets[Math.floor(this.cursorMs / level.tickMs) % this.slots]!.head !== null) return;
      this.cascadeLevel--;
    }
  }

  /** The highest level whose slot boundary is at timeMs (0 if only level 0's is). */
  private cascadeLevelAt(timeMs: number): number {
    let k = 0;
    while (k + 1 < this.levels.length && timeMs % this.levels[k + 1]!.tickMs === 0) k++;
    return k;
  }

  /**
   * The earliest start of an occupied slot after the cursor's slot, over all levels (Infinity if
   * none). Level 0's slot start is its timers' dueAt; a coarser slot's start is its cascade time.
   */
  private nextStopAfterCursor(): number {
    const slots = this.slots;
    let best = Infinity;
    for (let k = 0; k < this.levels.length; k++) {
      const level = this.levels[k]!;
      const cursorTick = Math.floor(this.cursorMs / level.tickMs);
      // Level k's stops are at or after its next boundary, and boundaries only get later with k:
      // once a finer level has a stop that early, no coarser level can beat it.
      if (k > 0 && best <= (cursorTick + 1) * level.tickMs) break;
      this.work++;
      const cursorIndex = cursorTick % slots;
      let index = this.nextOccupied(level.occupied, cursorIndex + 1, slots);
      if (index < 0) index = this.nextOccupied(level.occupied, 0, cursorIndex);
      if (index < 0) continue;
      const ahead = index > cursorIndex ? index - cursorIndex : index + slots - cursorIndex;
      const stop = (cursorTick + ahead) * level.tickMs;
      if (stop < best) best = stop;
    }
    return best;
  }

  /** First set bit in [from, end), or -1. */
  private nextOccupied(occupied: Uint32Array, from: number, end: number): number {
    if (from >= end) return -1;
    let w = from >>> 5;
    let bits = occupied[w]! & (-1 << (from & 31));
    for (;;) {
      this.work++;
      if (bits !== 0) {
        const index = (w << 5) + lowestBit(bits);
        return index < end ? index : -1;
      }
      w++;
      if (w << 5 >= end) return -1;
      bits = occupied[w]!;
    }
  }

  private heapPush(key: number): void {
    const heap = this.overdueKeys;
    let i = heap.length;
    heap.push(key);
    while (i > 0) {
      const parent = (i - 1) >>> 1;
      if (heap[parent]! <= key) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = key;
  }

  private heapPop(): void {
    const heap = this.overdueKeys;
    const last = heap.pop()!;
    const n = heap.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1]! < heap[child]!) child++;
      if (heap[child]! >= last) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
  }

  /**
   * Check every invariant by walking the whole structure: O(size + levels * slots). For tests;
   * throws on the first violation.
   */
  verify(): void {
    const slots = this.slots;
    assert(!this.advancing, "verify() during advance()");
    assert(this.cursorMs <= this.nowMs, "cursor ahead of currentMs");
    assert(this.deferred.head === null && this.deferred.tail === null, "deferred list not empty");
    let seen = 0;
    for (const level of this.levels) {
      const cursorTick = Math.floor(this.cursorMs / level.tickMs);
      for (let i = 0; i < slots; i++) {
        const bucket = level.buckets[i]!;
        const bit = (level.occupied[i >>> 5]! >>> (i & 31)) & 1;
        assert(bit === (bucket.head === null ? 0 : 1), `level ${level.level} slot ${i}: bitmap disagrees`);
        seen += this.verifyList(bucket, (timer) => {
          const tick = Math.floor(timer.dueAt / level.tickMs);
          assert(tick % slots === i, `level ${level.level} slot ${i}: timer in wrong slot`);
          assert(timer.dueAt >= this.cursorMs, "timer in a level is before the cursor");
          const pendingCascade = level.level >= 1 && level.level <= this.cascadeLevel && tick === cursorTick;
          const lower = level.level === 0 ? cursorTick : cursorTick + 1;
          assert(pendingCascade || (tick >= lower && tick < cursorTick + slots), `level ${level.level}: timer outside window`);
        });
      }
    }
    const heap = this.overdueKeys;
    assert(heap.length === this.overdueBuckets.size, "overdue heap and map disagree");
    for (let i = 0; i < heap.length; i++) {
      if (i > 0) assert(heap[(i - 1) >>> 1]! <= heap[i]!, "overdue heap order");
      const bucket = this.overdueBuckets.get(heap[i]!);
      assert(bucket !== undefined && bucket.key === heap[i], "overdue key without bucket");
      assert(heap[i]! < this.cursorMs, "overdue key not before cursor");
      if (i === 0) assert(bucket.head !== null, "overdue top bucket empty");
      seen += this.verifyList(bucket, (timer) => assert(timer.dueAt === bucket.key, "overdue timer under wrong key"));
    }
    assert(seen === this.count, `size ${this.count} but ${seen} timers linked`);
  }

  private verifyList(bucket: Bucket, check: (timer: WheelTimer) => void): number {
    let n = 0;
    let prev: WheelTimer | null = null;
    for (let t = bucket.head; t !== null; t = t.wheelNext) {
      assert(t.wheelSlot === bucket && t.wheelPrev === prev, "list links broken");
      check(t);
      prev = t;
      n++;
    }
    assert(bucket.tail === prev, "list tail wrong");
    return n;
  }
}
