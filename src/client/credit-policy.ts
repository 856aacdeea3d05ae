/**
 * How a Worker splits its capacity (`concurrency + prefetch`) across its node connections. Pure:
 * no sockets, no timers, no clock reads (the caller passes `now`).
 *
 * The protocol has no way to take a credit back: a credit given to a node stays there until that
 * node assigns with it or the connection closes. So the worker never gives more than its free
 * capacity (`capacity − executions held − credit outstanding on every connection`), and gives it
 * where it will be used:
 *
 *   1. One connection (standalone, or a cluster whose shards one node leads): all free capacity.
 *   2. Floor: every ready connection with no credit left gets one ("a probe"), so a node that
 *      gets work can always start one execution at once. When free capacity is short, the order
 *      is: connections that have waited longest without credit (≥ `fairnessWaitMs`), then busy
 *      ones (see 4), then the least recently granted.
 *   3. Reserve: one credit is held back for each connection that is not ready yet (connecting or
 *      reconnecting), so that it gets its floor when it comes up.
 *   4. The rest goes, split evenly, to the busy connections: those that were assigned work since
 *      they were last given credit. When no connection is busy the rest is held back — not parked
 *      at a node that may have nothing to do — and goes out as soon as an assign shows a node has
 *      work (one assign round trip later).
 *
 * Credit still gets stranded at an idle node: the probe, plus whatever it was given just before
 * its work ran out. `pickReclaim` finds a connection to take it back from when another ready
 * connection waits with no credit at all and nothing is free: one whose credit went unused for
 * `idleMs` and that holds more than its probe (or, when capacity is below the number of
 * connections and probes cannot go round, any credit). The worker then drains that connection
 * and reconnects: the node forgets the credit with the connection.
 *
 * Limits: a node that goes from idle to busy starts with its probe and gets more one assign round
 * trip later; stranded credit waits `idleMs` (plus the drain) before it moves; with
 * `capacity < connections` the credit rotates among nodes, each holding it up to `idleMs` when it
 * has no work, so give a worker at least as much capacity as there are leader nodes.
 */

export interface CreditSlot {
  key: string;
  /** Welcomed and not draining: may be given credit. */
  ready: boolean;
  /** Credit given and not yet used by an assign. */
  outstanding: number;
  /** Assigns since it was last given credit. */
  assignedSinceGrant: number;
  /** When it was last given credit (or opened). */
  lastGrantAt: number;
  /** When it last got an assign. */
  lastAssignAt: number;
  /** Since when it has been ready with no credit (null: it has credit, or is not ready). */
  zeroSince: number | null;
}

export interface PlanOptions {
  now: number;
  fairnessWaitMs: number;
}

/** Credits to give now, by key (only positive entries). `free` is the worker's free capacity. */
export function planCredits(free: number, slots: readonly CreditSlot[], opts: PlanOptions): Map<string, number> {
  const grants = new Map<string, number>();
  if (!(free > 0)) return grants;
  const ready = slots.filter((s) => s.ready);
  if (ready.length === 0) return grants;
  const give = (key: string, n: number): void => {
    grants.set(key, (grants.get(key) ?? 0) + n);
    free -= n;
  };
  if (slots.length === 1) {
    give(ready[0]!.key, free);
    return grants;
  }
  // 2. the floor
  const waited = (s: CreditSlot): number => (s.zeroSince === null ? 0 : opts.now - s.zeroSince);
  const empty = ready.filter((s) => s.outstanding <= 0);
  empty.sort((a, b) => {
    const la = waited(a) >= opts.fairnessWaitMs ? waited(a) : -1;
    const lb = waited(b) >= opts.fairnessWaitMs ? waited(b) : -1;
    if (la !== lb) return lb - la;
    const ba = a.assignedSinceGrant > 0 ? 1 : 0;
    const bb = b.assignedSinceGrant > 0 ? 1 : 0;
    if (ba !== bb) return bb - ba;
    return a.lastGrantAt - b.lastGrantAt;
  });
  for (const s of empty) {
    if (free <= 0) return grants;
    give(s.key, 1);
  }
  // 3. the reserve
  free -= Math.min(free, slots.length - ready.length);
  if (free <= 0) return grants;
  // 4. the busy share
  const busy = ready.filter((s) => s.assignedSinceGrant > 0).sort((a, b) => a.lastGrantAt - b.lastGrantAt);
  if (busy.length === 0) return grants;
  const each = Math.floor(free / busy.length);
  let extra = free - each * busy.length;
  for (const s of busy) {
    const n = each + (extra > 0 ? 1 : 0);
    if (extra > 0) extra--;
    if (n > 0) give(s.key, n);
  }
  return grants;
}

export interface ReclaimOptions {
  now: number;
  /** Free capacity after this turn's grants. */
  free: number;
  capacity: number;
  idleMs: number;
}

/**
 * The connection whose unused credit should be taken back (by draining and reconnecting it), or
 * null. Only when nothing is free and another ready connection has no credit at all.
 */
export function pickReclaim(slots: readonly CreditSlot[], opts: ReclaimOptions): string | null {
  if (opts.free > 0) return null;
  const ready = slots.filter((s) => s.ready);
  if (ready.length < 2) return null;
  if (!ready.some((s) => s.outstanding <= 0)) return null;
  // With enough capacity every connection keeps its probe; without, probes must rotate.
  const keep = opts.capacity >= slots.length ? 1 : 0;
  let best: CreditSlot | null = null;
  for (const s of ready) {
    if (s.outstanding <= keep) continue;
    if (opts.now - Math.max(s.lastAssignAt, s.lastGrantAt) < opts.idleMs) continue;
    if (best === null || s.outstanding > best.outstanding || (s.outstanding === best.outstanding && s.lastGrantAt < best.lastGrantAt)) best = s;
  }
  return best?.key ?? null;
}
