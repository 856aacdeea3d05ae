/**
 * How a Worker splits its capacity (`concurrency + prefetch`) across its node connections. Pure:
 * no sockets, no timers, no clock reads (the caller passes `now`).
 *
 * A credit given to a node stays there until that node assigns with it, the worker takes it back
 * with `withdraw` (answered `withdrawn`, a round trip later), or the connection closes. So the
 * worker never gives more than its free
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
 *   4. The rest goes to the busy connections — those that were assigned work since they were last
 *      given credit — in proportion to how much each was assigned since then, each up to the
 *      active cap: the capacity split over the connections assigned work within `activeMs` (all
 *      of it when one node alone has work). When no connection is busy the rest is held back — not
 *      parked at a node that may have nothing to do — and goes out as soon as an assign shows a
 *      node has work (one assign round trip later).
 *
 * Credit still collects where it is not needed: at a node whose work ran out, or above the cap
 * when another node becomes active. `pickWithdraw` finds credit to take back when nothing is free
 * and an active connection holds less than half the cap (or one waits with none): from the
 * connection holding the most above the cap, down to it — or, when its credit went unused for
 * `idleMs`, down to its probe (to nothing when capacity is below the number of connections and
 * probes cannot go round). The worker sends `withdraw`; the node answers `withdrawn` with what
 * it had not used yet, and that is free again.
 *
 * Limits: a node that goes from idle to busy starts with its probe and gets more one assign round
 * trip later; credit moves one withdraw round trip after a node runs dry; with
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
  /** A `withdraw` is on its way and not answered yet. */
  withdrawing?: boolean;
}

export interface PlanOptions {
  now: number;
  fairnessWaitMs: number;
  /** concurrency + prefetch: what the worker can hold in all. */
  capacity: number;
  /** A connection assigned work this recently is active: it competes for capacity. */
  activeMs: number;
}

/**
 * The most one connection should hold while `slots` compete: the capacity split over the active
 * connections (all of it when one alone has work).
 */
export function activeCap(slots: readonly CreditSlot[], capacity: number, now: number, activeMs: number): number {
  const active = slots.filter((s) => s.ready && (s.assignedSinceGrant > 0 || now - s.lastAssignAt < activeMs)).length;
  return Math.max(1, Math.floor(capacity / Math.max(1, active)));
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
  // 4. the busy share, in proportion to the work each took since its last grant, each up to the
  // active cap: a node whose work comes slower must not collect what busier ones need.
  const busy = ready.filter((s) => s.assignedSinceGrant > 0).sort((a, b) => b.assignedSinceGrant - a.assignedSinceGrant || a.lastGrantAt - b.lastGrantAt);
  if (busy.length === 0) return grants;
  const cap = activeCap(slots, opts.capacity, opts.now, opts.activeMs);
  const room = (s: CreditSlot) => Math.max(0, cap - s.outstanding - (grants.get(s.key) ?? 0));
  const total = busy.reduce((sum, s) => sum + s.assignedSinceGrant, 0);
  const pool = free;
  for (const s of busy) {
    const n = Math.min(room(s), Math.ceil((pool * s.assignedSinceGrant) / total), free);
    if (n > 0) give(s.key, n);
  }
  return grants;
}

export interface WithdrawOptions {
  now: number;
  /** Free capacity after this turn's grants. */
  free: number;
  capacity: number;
  idleMs: number;
  activeMs: number;
}

/**
 * Credit to take back, or null: only when nothing is free and an active ready connection holds
 * less than half the active cap (it runs dry while credit sits elsewhere). From the connection
 * holding the most above what it may keep: the active cap, or, idle for `idleMs`, its probe
 * (nothing when probes cannot go round).
 */
export function pickWithdraw(slots: readonly CreditSlot[], opts: WithdrawOptions): { key: string; n: number } | null {
  if (opts.free > 0) return null;
  const ready = slots.filter((s) => s.ready);
  if (ready.length < 2) return null;
  const cap = activeCap(slots, opts.capacity, opts.now, opts.activeMs);
  const isActive = (s: CreditSlot) => s.assignedSinceGrant > 0 || opts.now - s.lastAssignAt < opts.activeMs;
  if (!ready.some((s) => s.outstanding <= 0 || (isActive(s) && s.outstanding < cap / 2))) return null;
  const probe = opts.capacity >= slots.length ? 1 : 0;
  let best: { key: string; n: number } | null = null;
  for (const s of ready) {
    if (s.withdrawing) continue;
    const idle = opts.now - Math.max(s.lastAssignAt, s.lastGrantAt) >= opts.idleMs;
    const n = s.outstanding - (idle ? probe : cap);
    if (n > 0 && (best === null || n > best.n)) best = { key: s.key, n };
  }
  return best;
}
