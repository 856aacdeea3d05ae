/**
 * The offline WAL checker ("WAL prefix-agreement"; fault scenario 2, docs/jepsen.md): reads the shard
 * logs of every replica a run left behind — `<root>/<node>/shards/<shard>/`, copies of the nodes'
 * data directories — with the wal/ module's read-only reader, and judges:
 *
 * - wal-readable: every log reads back: frames with valid checksums, consecutive indexes, a start
 *   at 1 or within its snapshot. A torn tail (a write cut short at the very end) is a note, not a
 *   violation: nothing acknowledged can be in it.
 * - wal-log-matching: Raft's log matching across the replicas of a shard: an index holding the
 *   same epoch on two replicas holds the same bytes, and two logs that agree at (index, epoch)
 *   agree on the epoch of every index they share below it.
 * - wal-committed-prefix: what each replica knows is committed — up to its commit hint (written
 *   from its applied index, a lower bound) or its snapshot — is the same entry everywhere; a
 *   replica may still hold another entry at a committed index only from an older epoch (a
 *   leftover nobody overwrote yet), never from a newer one.
 * - wal-epochs: along a log epochs never decrease (the snapshot's included), and no entry has an
 *   epoch above the one the replica promised.
 *
 * What it cannot see: entries already folded into snapshots (only the snapshot's position is
 * compared), whether a commit index ever went back across restarts (only the final hint is on
 * disk), and bytes of a snapshot body (states are not compared).
 *
 * Read-only: it never repairs, truncates or deletes. `node dist/jepsen-style-tests/check.js
 * --check-wal DIR` runs it alone.
 */
import fs from "node:fs";
import path from "node:path";
import { COMMIT_HINT_FILE, PROMISE_FILE } from "../src/node/shard-replica.js";
import { readStoredLog, type StoredLog } from "../wal/reader.js";

export type WalInvariant = "wal-readable" | "wal-log-matching" | "wal-committed-prefix" | "wal-epochs" | "history-once" | "history-complete";

export interface WalResult {
  name: WalInvariant;
  valid: boolean;
  stats: Record<string, number>;
  /** Capped at VIOLATIONS_KEPT; `stats.violations` counts them all. */
  violations: string[];
  notes: string[];
}

export interface WalVerdict {
  valid: boolean;
  results: WalResult[];
}

export interface Replica {
  node: string;
  shard: number;
  log: StoredLog;
  commitHint: number;
  promised: number;
}

const VIOLATIONS_KEPT = 20;

/** Every replica's log under `root` (one folder per node, each a copy of its data directory). */
export function readReplicas(root: string): Replica[] {
  const replicas: Replica[] = [];
  for (const node of fs.readdirSync(root).sort()) {
    const shards = path.join(root, node, "shards");
    if (!fs.existsSync(shards)) continue;
    for (const name of fs.readdirSync(shards)) {
      if (!/^\d+$/.test(name)) continue;
      const dir = path.join(shards, name);
      replicas.push({ node, shard: Number(name), log: readStoredLog(dir), commitHint: readNumber(path.join(dir, COMMIT_HINT_FILE)), promised: readNumber(path.join(dir, PROMISE_FILE)) });
    }
  }
  return replicas;
}

function readNumber(file: string): number {
  try {
    const n = Number(fs.readFileSync(file, "utf8").trim());
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  } catch {
    return 0;
  }
}

class Result {
  readonly violations: string[] = [];
  readonly notes: string[] = [];
  readonly stats: Record<string, number> = { violations: 0 };
  constructor(readonly name: WalInvariant) {}
  violation(message: string): void {
    this.stats.violations!++;
    if (this.violations.length < VIOLATIONS_KEPT) this.violations.push(message);
  }
  count(stat: string, n = 1): void {
    this.stats[stat] = (this.stats[stat] ?? 0) + n;
  }
  done(): WalResult {
    return { name: this.name, valid: this.stats.violations === 0, stats: this.stats, violations: this.violations, notes: this.notes };
  }
}

/** A replica's log as positions: index → epoch, and the bytes where an entry (not a snapshot) holds it. */
interface Positions {
  replica: Replica;
  at: Map<number, { epoch: number; bytes?: Uint8Array }>;
  /** Highest index this replica knows is committed. */
  committed: number;
}

export function checkWal(replicas: Replica[]): WalVerdict {
  const readable = new Result("wal-readable");
  const matching = new Result("wal-log-matching");
  const committed = new Result("wal-committed-prefix");
  const epochs = new Result("wal-epochs");
  const byShard = new Map<number, Positions[]>();
  for (const r of replicas) {
    const p = positionsOf(r, readable, epochs);
    byShard.set(r.shard, [...(byShard.get(r.shard) ?? []), p]);
  }
  readable.count("replicas", replicas.length);
  for (const [shard, logs] of [...byShard].sort((a, b) => a[0] - b[0])) {
    matching.count("shards");
    for (let i = 0; i < logs.length; i++) for (let j = i + 1; j < logs.length; j++) checkPair(shard, logs[i]!, logs[j]!, matching);
    checkCommitted(shard, logs, committed);
  }
  const results = [readable.done(), matching.done(), committed.done(), epochs.done()];
  return { valid: results.every((r) => r.valid), results };
}

function name(r: Replica): string {
  return `${r.node} shard ${r.shard}`;
}

/** Reads one replica's log into positions, judging what concerns it alone (readable, epochs). */
function positionsOf(r: Replica, readable: Result, epochs: Result): Positions {
  const { snapshot, entries, defects } = r.log;
  for (const d of defects) {
    if (d.tornTail) readable.notes.push(`${name(r)}: torn tail at ${path.basename(d.file)}:${d.offset} (${d.reason})`);
    else readable.violation(`${name(r)}: unreadable at ${path.basename(d.file)}:${d.offset}: ${d.reason}`);
  }
  const at = new Map<number, { epoch: number; bytes?: Uint8Array }>();
  let usable = entries;
  // As recovery does: a log that does not continue its snapshot predates it (an interrupted install).
  if (snapshot) {
    const atSnap = entries.find((e) => e.index === snapshot.index);
    const last = entries.at(-1)?.index ?? 0;
    if (entries.length > 0 && (last < snapshot.index || (atSnap !== undefined && atSnap.epoch !== snapshot.epoch))) {
      readable.notes.push(`${name(r)}: its segments predate its snapshot ${snapshot.index}; recovery discards them, so does the checker`);
      usable = [];
    }
    at.set(snapshot.index, { epoch: snapshot.epoch });
  }
  const first = usable[0];
  if (first && !snapshot && first.index !== 1) readable.violation(`${name(r)}: the log starts at ${first.index} without a snapshot`);
  if (first && snapshot && first.index > snapshot.index + 1) readable.violation(`${name(r)}: a gap between snapshot ${snapshot.index} and the log's start at ${first.index}`);
  let prevEpoch = 0;
  let prevIndex = 0;
  for (const e of usable) {
    if (prevIndex !== 0 && e.index !== prevIndex + 1) readable.violation(`${name(r)}: index ${e.index} follows ${prevIndex}`);
    if (e.epoch < prevEpoch) epochs.violation(`${name(r)}: entry ${e.index} has epoch ${e.epoch} after epoch ${prevEpoch}`);
    if (snapshot && e.index > snapshot.index && e.epoch < snapshot.epoch) epochs.violation(`${name(r)}: entry ${e.index} has epoch ${e.epoch}, below its snapshot's ${snapshot.epoch}`);
    prevEpoch = Math.max(prevEpoch, e.epoch);
    prevIndex = e.index;
    at.set(e.index, { epoch: e.epoch, bytes: e.bytes });
  }
  readable.count("entries", usable.length);
  const lastEpoch = Math.max(prevEpoch, snapshot?.epoch ?? 0);
  if (r.promised === 0) {
    if (lastEpoch > 0) epochs.notes.push(`${name(r)}: no promised-epoch file (a standalone node?); entries not compared with it`);
  } else if (lastEpoch > r.promised) {
    epochs.violation(`${name(r)}: holds epoch ${lastEpoch} but promised only ${r.promised}`);
  }
  return { replica: r, at, committed: Math.max(r.commitHint, snapshot?.index ?? 0) };
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a === undefined || b === undefined || Buffer.compare(a, b) === 0;
}

function checkPair(shard: number, x: Positions, y: Positions, result: Result): void {
  const common = [...x.at.keys()].filter((i) => y.at.has(i)).sort((a, b) => a - b);
  let agreeUpTo = 0;
  for (const i of common) if (x.at.get(i)!.epoch === y.at.get(i)!.epoch) agreeUpTo = i;
  result.count("indexesCompared", common.length);
  for (const i of common) {
    const a = x.at.get(i)!;
    const b = y.at.get(i)!;
    if (a.epoch === b.epoch && !sameBytes(a.bytes, b.bytes)) {
      result.violation(`shard ${shard}: entry ${i} of epoch ${a.epoch} differs between ${x.replica.node} and ${y.replica.node}`);
    } else if (a.epoch !== b.epoch && i < agreeUpTo) {
      result.violation(`shard ${shard}: ${x.replica.node} and ${y.replica.node} agree at index ${agreeUpTo} (epoch ${x.at.get(agreeUpTo)!.epoch}) but not at ${i} (epochs ${a.epoch} and ${b.epoch})`);
    }
  }
}

function checkCommitted(shard: number, logs: Positions[], result: Result): void {
  // index → the committed entry, as the first replica that knows it committed holds it.
  const known = new Map<number, { epoch: number; bytes?: Uint8Array; node: string }>();
  for (const p of logs) {
    for (const [i, e] of p.at) {
      if (i > p.committed) continue;
      const k = known.get(i);
      if (!k) known.set(i, { ...e, node: p.replica.node });
      else if (k.epoch !== e.epoch || !sameBytes(k.bytes, e.bytes)) {
        result.violation(`shard ${shard}: committed entry ${i} is epoch ${k.epoch} on ${k.node} but epoch ${e.epoch}${k.epoch === e.epoch ? " with other bytes" : ""} on ${p.replica.node}`);
      } else if (k.bytes === undefined && e.bytes !== undefined) known.set(i, { ...e, node: p.replica.node });
    }
  }
  result.stats.committedIndexMax = Math.max(result.stats.committedIndexMax ?? 0, ...logs.map((p) => p.committed));
  result.count("committedEntries", known.size);
  for (const p of logs) {
    for (const [i, e] of p.at) {
      const k = known.get(i);
      if (!k || i <= p.committed) continue;
      // Not known committed here: an older epoch's leftover is allowed, a newer epoch is not.
      if (e.epoch > k.epoch) result.violation(`shard ${shard}: ${p.replica.node} holds epoch ${e.epoch} at committed index ${i} (committed: epoch ${k.epoch} on ${k.node})`);
    }
  }
}

export function walSummary(verdict: WalVerdict, maxPerInvariant = 3, title = "wal"): string {
  const lines = [`${title} verdict: ${verdict.valid ? "valid" : "INVALID"}`];
  for (const r of verdict.results) {
    const stats = Object.entries(r.stats).map(([k, n]) => `${k} ${n}`).join(", ");
    lines.push(`  ${r.valid ? "ok " : "BAD"} ${r.name}: ${r.valid ? "valid" : "INVALID"} (${stats})`);
    for (const note of r.notes.slice(0, maxPerInvariant)) lines.push(`      note: ${note}`);
    if (r.notes.length > maxPerInvariant) lines.push(`      … and ${r.notes.length - maxPerInvariant} more notes`);
    for (const v of r.violations.slice(0, maxPerInvariant)) lines.push(`      - ${v}`);
    if (r.stats.violations! > maxPerInvariant) lines.push(`      … and ${r.stats.violations! - maxPerInvariant} more`);
  }
  return lines.join("\n");
}

/** Judge the copies under `root`. */
export function checkWalDir(root: string): { verdict: WalVerdict; summary: string } {
  const verdict = checkWal(readReplicas(root));
  return { verdict, summary: walSummary(verdict) };
}

/** Copy each node's data directory to `<dest>/<node id>` (after the nodes stopped: no writer runs). */
export function copyDataDirs(nodes: ReadonlyArray<{ id: string; dataDir: string }>, dest: string): void {
  for (const n of nodes) if (fs.existsSync(n.dataDir)) fs.cpSync(n.dataDir, path.join(dest, n.id), { recursive: true });
}
