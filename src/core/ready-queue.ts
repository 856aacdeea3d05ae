/**
 * The ready queue of one named queue: executions that are due and wait for a worker.
 * Order of hand-out: higher priority first, then round-robin across tenants (so one tenant's
 * flood cannot starve another's trickle), then oldest first. A worker bound to one tenant takes
 * from that tenant's line only.
 *
 * Removal is lazy: each push stamps the item (`readySeq`) and the deque remembers the stamp; an
 * entry is live while its item is still `queued` with that stamp. A canceled or claimed item's
 * entry is dropped when it reaches the head. `size` counts live entries only.
 *
 * An item pushed before its `readyAt` is staged: it waits in a min-heap by readyAt (then push
 * order) and joins its line when a push or pop finds its time has come. So work committed ahead of
 * its time (a herd's tick is applied well before the herd is due) is neither handed out early nor
 * in the way of due work behind it. Staged items are not counted in `size`.
 */

export interface ReadyItem {
  tenant: string;
  priority: number;
  readySeq: number;
  readyAt: number;
  /** In this queue right now (set by push, cleared by pop and forget). */
  queued: boolean;
  /** Queued, and waiting for its readyAt in the staging heap. */
  staged: boolean;
}

const PRIORITY_LEVELS = 10;
const COMPACT_DEAD_ENTRIES_MIN = 1024;

class Deque<T extends ReadyItem> {
  private items: T[] = [];
  private seqs: number[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
    this.seqs.push(item.readySeq);
  }

  /** Drops dead entries at the head; returns the live head or undefined. */
  peekLive(): T | undefined {
    while (this.head < this.items.length) {
      const item = this.items[this.head]!;
      if (item.queued && item.readySeq === this.seqs[this.head]) return item;
      this.head++;
    }
    this.compact();
    return undefined;
  }

  shift(): void {
    this.head++;
    this.compact();
  }

  private compact(): void {
    if (this.head > COMPACT_DEAD_ENTRIES_MIN && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.seqs = this.seqs.slice(this.head);
      this.head = 0;
    } else if (this.head === this.items.length && this.head > 0) {
      this.items.length = 0;
      this.seqs.length = 0;
      this.head = 0;
    }
  }
}

/** Tenants at one priority level, served round-robin. */
class TenantRing<T extends ReadyItem> {
  readonly byTenant = new Map<string, Deque<T>>();
  private order: string[] = [];
  private cursor = 0;

  push(item: T): void {
    let deque = this.byTenant.get(item.tenant);
    if (!deque) {
      deque = new Deque<T>();
      this.byTenant.set(item.tenant, deque);
      this.order.push(item.tenant);
    }
    deque.push(item);
  }

  /** The next live item (round-robin across tenants, or of one tenant), removed. */
  pop(tenant: string | null): T | undefined {
    if (tenant !== null) {
      const deque = this.byTenant.get(tenant);
      const item = deque?.peekLive();
      if (item) deque!.shift();
      return item;
    }
    while (this.order.length > 0) {
      if (this.cursor >= this.order.length) this.cursor = 0;
      const name = this.order[this.cursor]!;
      const deque = this.byTenant.get(name)!;
      const item = deque.peekLive();
      if (item === undefined) {
        this.byTenant.delete(name);
        this.order.splice(this.cursor, 1);
        continue;
      }
      deque.shift();
      this.cursor++;
      return item;
    }
    return undefined;
  }
}

/** Items waiting for their readyAt: a binary min-heap by (readyAt, seq), with lazy removal. */
class StagingHeap<T extends ReadyItem> {
  private items: T[] = [];
  private seqs: number[] = [];
  /** The latest readyAt of any entry (live or not); -Infinity when empty. */
  private maxReadyAt = Number.NEGATIVE_INFINITY;

  push(item: T): void {
    this.items.push(item);
    this.seqs.push(item.readySeq);
    if (item.readyAt > this.maxReadyAt) this.maxReadyAt = item.readyAt;
    this.up(this.items.length - 1);
  }

  /**
   * When every entry is due by `now` and the array is already in (readyAt, seq) order — a herd
   * staged together: equal readyAt, pushed in order, so no push ever sifted — its live items in
   * that order, and the heap is emptied: one pass instead of a sift-down per item. Else null.
   */
  takeAllIfOrdered(now: number): T[] | null {
    if (this.maxReadyAt > now || this.items.length === 0) return null;
    for (let i = 0; i + 1 < this.items.length; i++) if (!this.before(i, i + 1)) return null;
    const live = this.items.filter((item, i) => item.queued && item.staged && item.readySeq === this.seqs[i]);
    this.items = [];
    this.seqs = [];
    this.maxReadyAt = Number.NEGATIVE_INFINITY;
    return live;
  }

  /** The live item with the earliest readyAt (dead tops are dropped), or undefined. */
  peekLive(): T | undefined {
    while (this.items.length > 0) {
      const top = this.items[0]!;
      if (top.queued && top.staged && top.readySeq === this.seqs[0]) return top;
      this.removeTop();
    }
    return undefined;
  }

  removeTop(): void {
    const lastItem = this.items.pop()!;
    const lastSeq = this.seqs.pop()!;
    if (this.items.length === 0) {
      this.maxReadyAt = Number.NEGATIVE_INFINITY;
      return;
    }
    this.items[0] = lastItem;
    this.seqs[0] = lastSeq;
    this.down(0);
  }

  private before(i: number, j: number): boolean {
    const a = this.items[i]!.readyAt;
    const b = this.items[j]!.readyAt;
    return a < b || (a === b && this.seqs[i]! < this.seqs[j]!);
  }

  private swap(i: number, j: number): void {
    const item = this.items[i]!;
    this.items[i] = this.items[j]!;
    this.items[j] = item;
    const seq = this.seqs[i]!;
    this.seqs[i] = this.seqs[j]!;
    this.seqs[j] = seq;
  }

  private up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private down(i: number): void {
    const n = this.items.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) return;
      const child = left + 1 < n && this.before(left + 1, left) ? left + 1 : left;
      if (!this.before(child, i)) return;
      this.swap(i, child);
      i = child;
    }
  }
}

export class ReadyQueue<T extends ReadyItem> {
  private readonly levels: Array<TenantRing<T> | undefined> = new Array(PRIORITY_LEVELS);
  private readonly staging = new StagingHeap<T>();
  private liveCount = 0;
  private stagedCount = 0;
  private seq = 0;

  /** Queued items whose time has come (staged ones not included). */
  get size(): number {
    return this.liveCount;
  }

  /** Queued items still waiting for their readyAt. */
  get stagedSize(): number {
    return this.stagedCount;
  }

  /** Queue `item`; `now` says whether its readyAt has come (else it is staged until then). */
  push(item: T, now: number): void {
    if (item.queued) throw new Error("ready queue: item is already queued");
    this.promote(now);
    item.queued = true;
    item.readySeq = ++this.seq;
    if (item.readyAt > now) {
      item.staged = true;
      this.staging.push(item);
      this.stagedCount++;
      return;
    }
    item.staged = false;
    this.line(item);
  }

  /** Take a queued item out without handing it out (canceled, claimed by a replicated record). */
  forget(item: T): void {
    if (!item.queued) return;
    item.queued = false;
    if (item.staged) this.stagedCount--;
    else this.liveCount--;
    item.staged = false;
  }

  /** The earliest readyAt of a staged item, or null. */
  nextStagedAt(): number | null {
    return this.staging.peekLive()?.readyAt ?? null;
  }

  /** The next item by priority, tenant round-robin (or `tenant`'s own line), age; only one due by `now`. */
  pop(tenant: string | null, now: number): T | undefined {
    this.promote(now);
    for (let p = PRIORITY_LEVELS - 1; p >= 0; p--) {
      const item = this.levels[p]?.pop(tenant);
      if (item !== undefined) {
        item.queued = false;
        this.liveCount--;
        return item;
      }
    }
    return undefined;
  }

  /** Staged items due by `now` join their lines, earliest first. */
  private promote(now: number): void {
    const all = this.staging.takeAllIfOrdered(now);
    if (all !== null) {
      for (const item of all) this.join(item);
      return;
    }
    for (let top = this.staging.peekLive(); top !== undefined && top.readyAt <= now; top = this.staging.peekLive()) {
      this.staging.removeTop();
      this.join(top);
    }
  }

  /** A staged item whose time has come joins its line. */
  private join(item: T): void {
    item.staged = false;
    this.stagedCount--;
    this.line(item);
  }

  private line(item: T): void {
    (this.levels[item.priority] ??= new TenantRing<T>()).push(item);
    this.liveCount++;
  }

  /** readyAt of the oldest live item, or null. */
  oldestReadyAt(): number | null {
    let oldest: number | null = null;
    for (const level of this.levels) {
      if (!level) continue;
      for (const deque of level.byTenant.values()) {
        const head = deque.peekLive();
        if (head !== undefined && (oldest === null || head.readyAt < oldest)) oldest = head.readyAt;
      }
    }
    return oldest;
  }
}
