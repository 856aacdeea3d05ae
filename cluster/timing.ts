/**
 * The cluster's clocks, in one place: how fast a dead leader is replaced and how long a leader
 * keeps serving without hearing from etcd or its followers. All durations are measured on this
 * process's monotonic clock, never on the (skewable) wall clock.
 *
 * The safety of the log does not depend on these (epochs and promises do); they decide how soon a
 * cut-off leader stops serving and how soon another one starts:
 *   - a leader stops serving `leaseSafetyMs` before its etcd lease can expire, counting from when
 *     it *sent* the last keep-alive etcd answered, so it stops before etcd lets another node win;
 *   - a follower that hears nothing from its leader for `deposeAfterMs` deletes the leader's
 *     election key (only that epoch's key), so a killed leader is replaced without waiting for
 *     its etcd lease to run out.
 */
export const CLUSTER_TIMING = {
  /** etcd lease of a node (seconds, etcd's unit); its keys (registration, leaderships) die with it. */
  leaseTtlSec: 3,
  /** Keep-alive period of that lease. */
  keepAliveMs: 500,
  /** A leader stops this long before its lease could expire at etcd. */
  leaseSafetyMs: 1000,
  /** Empty appends from a leader to idle followers. */
  heartbeatMs: 100,
  /** A leader that hears from no majority for this long steps down. */
  quorumTimeoutMs: 1000,
  /** A follower deposes a leader it has not heard from for this long. */
  deposeAfterMs: 1000,
  /** How often each node reads the cluster's keys from etcd. */
  pollMs: 150,
  /** Replicas later in a shard's preference order wait this much longer before campaigning. */
  campaignStaggerMs: 150,
  appendTimeoutMs: 2000,
  prepareTimeoutMs: 1500,
  snapshotTimeoutMs: 60_000,
  /** Forwarded API requests to another node. */
  forwardTimeoutMs: 10_000,
  /** A stopping node waits this long for etcd to revoke its lease (else it expires after leaseTtlSec). */
  revokeTimeoutMs: 2000,
} as const;

/** `promise`, or a rejection naming `what` after `ms`. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e as Error);
      },
    );
  });
}
