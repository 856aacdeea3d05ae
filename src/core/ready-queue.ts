/**
 * The ready queue of one named queue: executions that are due and wait for a worker.
 * Order of hand-out: higher priority first, then round-robin across tenants (so one tenant's
 * flood cannot starve another's trickle), then oldest first. A worker bound to one tenant takes
 * from that tenant's line only.
 *
 * Removal is lazy: each push stamps the item (`readySeq`) and the deque remembers the stamp; an
 * entry is live while its item is still `queued` with that stamp. A canceled or claimed item's
 * entry is dropped when it reaches the head. `size` counts live entries only.
 */

export interface ReadyItem {
  tenant: string;
  priority: number;
  readySeq: number;
  readyAt: number;
  /** In this queue right now (set by push, cleared by pop and forget). */
  queued: boolean;
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

export class ReadyQueue<T extends ReadyItem> {
  private readonly levels: Array<TenantRing<T> | undefined> = new Array(PRIORITY_LEVELS);
  private liveCount = 0;
  private seq = 0;

  get size(): number {
    return this.liveCount;
  }

  push(item: T): void {
    if (item.queued) throw new Error("ready queue: item is already queued");
    item.queued = true;
    item.readySeq = ++this.seq;
    (this.levels[item.priority] ??= new TenantRing<T>()).push(item);
    this.liveCount++;
  }

  /** Take a queued item out without handing it out (canceled, claimed by a replicated record). */
  forget(item: T): void {
    if (!item.queued) return;
    item.queued = false;
    this.liveCount--;
  }

  /** The next item by priority, tenant round-robin (or `tenant`'s own line), age. */
  pop(tenant: string | null = null): T | undefined {
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
