import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ReadyQueue, type ReadyItem } from "../src/core/ready-queue.js";

interface Item extends ReadyItem {
  id: number;
}

type Op =
  | { t: "push"; id: number; tenant: string; priority: number; delay: number }
  | { t: "forget"; id: number }
  | { t: "pop"; tenant: string | null }
  | { t: "advance"; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant("push" as const), id: fc.nat(30), tenant: fc.constantFrom("a", "b"), priority: fc.nat(1), delay: fc.integer({ min: -2, max: 6 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("forget" as const), id: fc.nat(30) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("pop" as const), tenant: fc.constantFrom("a", "b", null) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant("advance" as const), ms: fc.nat(8) }) },
);

/**
 * The model: an item becomes available when a push or pop sees its readyAt has come (staged ones
 * in (readyAt, push order)); a pop takes the highest priority, and within a priority and tenant the
 * first available. Which tenant a pop serves is the ring's business: the model only checks that
 * it is one with an available item at that priority.
 */
class Model {
  now = 0;
  private seq = 0;
  private availSeq = 0;
  readonly live = new Map<number, { item: Item; seq: number; avail: number | null }>();

  promote(now: number): void {
    const due = [...this.live.values()].filter((m) => m.avail === null && m.item.readyAt <= now);
    due.sort((x, y) => x.item.readyAt - y.item.readyAt || x.seq - y.seq);
    for (const m of due) m.avail = ++this.availSeq;
  }

  push(item: Item): void {
    this.promote(this.now);
    this.live.set(item.id, { item, seq: ++this.seq, avail: item.readyAt <= this.now ? ++this.availSeq : null });
  }

  available(tenant: string | null) {
    this.promote(this.now);
    return [...this.live.values()].filter((m) => m.avail !== null && (tenant === null || m.item.tenant === tenant));
  }
}

describe("ready queue", () => {
  it("hands out only what is due, by priority then availability within a tenant's line, each once; staged items wait and are counted apart", () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        const q = new ReadyQueue<Item>();
        const model = new Model();
        const items = new Map<number, Item>();
        let seenNow = 0; // the latest time the queue was told (by a push or a pop)
        for (const op of ops) {
          switch (op.t) {
            case "advance":
              model.now += op.ms;
              break;
            case "push": {
              if (model.live.has(op.id)) break;
              const item: Item = items.get(op.id) ?? { id: op.id, tenant: op.tenant, priority: op.priority, readySeq: 0, readyAt: 0, queued: false, staged: false };
              items.set(op.id, item);
              item.readyAt = model.now + op.delay;
              q.push(item, model.now);
              seenNow = model.now;
              model.push(item);
              break;
            }
            case "forget": {
              const item = items.get(op.id);
              if (!item) break;
              q.forget(item);
              model.live.delete(op.id);
              break;
            }
            case "pop": {
              const candidates = model.available(op.tenant);
              const got = q.pop(op.tenant, model.now);
              seenNow = model.now;
              if (candidates.length === 0) {
                expect(got).toBeUndefined();
                break;
              }
              expect(got).toBeDefined();
              const m = model.live.get(got!.id);
              expect(m?.avail).not.toBeNull();
              const top = Math.max(...candidates.map((c) => c.item.priority));
              expect(got!.priority).toBe(top);
              const sameLine = candidates.filter((c) => c.item.priority === top && c.item.tenant === got!.tenant);
              expect(m!.avail).toBe(Math.min(...sameLine.map((c) => c.avail!)));
              expect(got!.readyAt).toBeLessThanOrEqual(model.now);
              model.live.delete(got!.id);
              break;
            }
          }
          const staged = [...model.live.values()].filter((m) => m.item.readyAt > seenNow);
          expect(q.size).toBe(model.live.size - staged.length);
          expect(q.stagedSize).toBe(staged.length);
          expect(q.nextStagedAt()).toBe(staged.length === 0 ? null : Math.min(...staged.map((m) => m.item.readyAt)));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("staged items join their line by readyAt, and in push order among equal readyAt", () => {
    const q = new ReadyQueue<Item>();
    const times = [5, 3, 5, 9, 3, 5, 1, 9, 3, 5, 1, 5, 3, 9, 5];
    times.forEach((readyAt, id) => q.push({ id, tenant: "a", priority: 0, readySeq: 0, readyAt, queued: false, staged: false }, 0));
    expect(q.pop(null, 0)).toBeUndefined();
    const order: number[] = [];
    for (let item = q.pop(null, 10); item; item = q.pop(null, 10)) order.push(item.id);
    const expected = times.map((readyAt, id) => ({ readyAt, id })).sort((x, y) => x.readyAt - y.readyAt || x.id - y.id).map((x) => x.id);
    expect(order).toEqual(expected);
  });
});
