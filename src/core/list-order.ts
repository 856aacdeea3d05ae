/**
 * The order `GET /v1/executions` lists in, and how pages from several sources (each shard's
 * memory, each shard's history file, other nodes) merge into one page with a cursor.
 *
 * Live executions (not ended) come first, newest created first; then finished ones, newest
 * finished first. Ids break ties. Memory holds every live execution and the recently finished;
 * history holds every finished one: the same finished execution may come from both, and is kept
 * once. The order is total, so a cursor (the last position served) continues exactly where the
 * page ended. An execution that finishes between two pages moves from the live part to the
 * finished part: it may be seen twice or, if it finished before the cursor's finish time, missed
 * (docs/api.md says so).
 */
import { isTerminal, type ExecutionFacts } from "./execution.js";
import { compareCreationOrder } from "./routing.js";

export type ListPosition = { live: true; createdAt: number; id: string } | { live: false; finishedAt: number; id: string };

export function positionOf(e: ExecutionFacts): ListPosition {
  return isTerminal(e.state) ? { live: false, finishedAt: e.finishedAt!, id: e.id } : { live: true, createdAt: e.createdAt, id: e.id };
}

/** Negative when `a` is listed before `b`. */
export function compareListOrder(a: ListPosition, b: ListPosition): number {
  if (a.live !== b.live) return a.live ? -1 : 1;
  if (a.live && b.live) return compareCreationOrder(b.createdAt, b.id, a.createdAt, a.id);
  const af = (a as { finishedAt: number }).finishedAt;
  const bf = (b as { finishedAt: number }).finishedAt;
  if (af !== bf) return bf - af;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** Listed strictly after `cursor`. */
export function isAfter(e: ExecutionFacts, cursor: ListPosition | undefined): boolean {
  return cursor === undefined || compareListOrder(positionOf(e), cursor) > 0;
}

/** One source's answer: its first items after the cursor, and where it stopped if it stopped early. */
export interface PagePart<T = ExecutionFacts> {
  items: T[];
  /** The source examined everything up to here and no further; it may hold more after it. */
  stoppedAt: ListPosition | null;
}

export interface MergedPage<T> {
  items: T[];
  /** Where the next page starts after; null when nothing is left. */
  next: ListPosition | null;
}

/**
 * Merge sources' parts, each sorted in list order and holding at least `limit` items or all it
 * has (or stopped early), into the first `limit` items overall. Nothing past the earliest place a
 * source stopped is served: that source may hold items before the others' there.
 */
export function mergePages<T extends ExecutionFacts>(parts: PagePart<T>[], limit: number): MergedPage<T>;
export function mergePages<T>(parts: PagePart<T>[], limit: number, position: (item: T) => ListPosition): MergedPage<T>;
export function mergePages<T>(parts: PagePart<T>[], limit: number, position = positionOf as unknown as (item: T) => ListPosition): MergedPage<T> {
  const seen = new Set<string>();
  const all: Array<{ item: T; at: ListPosition }> = [];
  for (const part of parts) {
    for (const item of part.items) {
      const at = position(item);
      if (seen.has(at.id)) continue;
      seen.add(at.id);
      all.push({ item, at });
    }
  }
  all.sort((a, b) => compareListOrder(a.at, b.at));
  let stop: ListPosition | null = null;
  for (const part of parts) if (part.stoppedAt && (stop === null || compareListOrder(part.stoppedAt, stop) < 0)) stop = part.stoppedAt;
  const before = stop === null ? all : all.filter((e) => compareListOrder(e.at, stop!) <= 0);
  if (before.length >= limit) {
    const page = before.slice(0, limit);
    return { items: page.map((e) => e.item), next: page[page.length - 1]!.at };
  }
  return { items: before.map((e) => e.item), next: stop };
}
