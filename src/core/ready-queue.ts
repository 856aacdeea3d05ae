/**
 * The ready queue of one named queue: executions that are due and wait for a worker.
 * Order of hand-out: higher priority first, then round-robin across tenants (so one tenant's
 * flood cannot starve another's trickle), then oldest first.
 *
 * Removal is lazy: a canceled execution stays in its deque until it reaches the head, where
 * `isLive` drops it. `size` counts only live entries, so metrics stay exact.
 */

export interface ReadyItem {
  tenant: string;
  priority: number;
  /** Stamp given when the item was pushed; an entry whose stamp no longer matches is dead. */
  readySeq: number;
  readyAt: number;
}

const PRIORITY_LEVELS = 10;

class Deque<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  push(item: T): void {
    this.items.push(item);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head]!;
    this.head++;
    // Compact once the dead prefix dominates, so memory is O(live entries) amortized.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
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

  /** The next live item in round-robin order, removed; dead heads are discarded on the way. */
  pop(isLive: (item: T) => boolean): T | undefined {
    while (this.order.length > 0) {
      if (this.cursor >= this.order.length) this.cursor = 0;
      const tenant = this.order[this.cursor]!;
      const deque = this.byTenant.get(tenant)!;
      const item = popLive(deque, isLive);
      if (item === undefined) {
        this.byTenant.delete(tenant);
        this.order.splice(this.cursor, 1);
        continue;
      }
      if (deque.length === 0) {
        this.byTenant.delete(tenant);
        this.order.splice(this.cursor, 1);
      } else {
        this.cursor++;
      }
      return item;
    }
    return undefined;
  }
}

function popLive<T>(deque: Deque<T>, isLive: (item: T) => boolean): T | undefined {
  for (let item = deque.shift(); item !== undefined; item = deque.shift()) {
    if (isLive(item)) return item;
  }
  return undefined;
}

export class ReadyQueue<T extends ReadyItem> {
  private readonly levels: Array<TenantRing<T> | undefined> = new Array(PRIORITY_LEVELS);
  private liveCount = 0;

  constructor(private readonly isLive: (item: T) => boolean) {}

  get size(): number {
    return this.liveCount;
  }

  push(item: T): void {
    const level = (this.levels[item.priority] ??= new TenantRing<T>());
    level.push(item);
    this.liveCount++;
  }

  /** Tell the queue that a pushed item stopped being live (canceled, claimed elsewhere). */
  forget(): void {
    this.liveCount--;
    if (this.liveCount < 0) throw new Error("ready queue: live count below zero");
  }

  pop(): T | undefined {
    for (let p = PRIORITY_LEVELS - 1; p >= 0; p--) {
      const item = this.levels[p]?.pop(this.isLive);
      if (item !== undefined) {
        this.liveCount--;
        return item;
      }
    }
    return undefined;
  }

  /** readyAt of the oldest live item, or null; drops dead heads on the way. */
  oldestReadyAt(): number | null {
    let oldest: number | null = null;
    for (const level of this.levels) {
      if (!level) continue;
      for (const deque of level.byTenant.values()) {
        let head = deque.peek();
        while (head !== undefined && !this.isLive(head)) {
          deque.shift();
          head = deque.peek();
        }
        if (head !== undefined && (oldest === null || head.readyAt < oldest)) oldest = head.readyAt;
      }
    }
    return oldest;
  }
}
