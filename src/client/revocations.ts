/**
 * Revocations that reached a worker before their assignment. One node sends an assignment before
 * any revocation of it, but after a failover they can come over two connections: the old
 * leader's assignment still in flight, the new leader's cancel already here. Such an assignment
 * is no longer the worker's to run; without this memory the worker would ignore the cancel (it
 * knew no such execution) and then run the work anyway — beside the next one in its ordering line.
 */
export class EarlyRevocations {
  /** executionId → highest revoked fence; Map order is age, the oldest go first. */
  private readonly fences = new Map<string, number>();

  constructor(private readonly max = 4096) {}

  /** A cancel for an execution this worker does not hold (under that fence): remember it. */
  note(executionId: string, fence: number): void {
    const known = this.fences.get(executionId);
    if (known !== undefined && known >= fence) return;
    this.fences.delete(executionId);
    this.fences.set(executionId, fence);
    if (this.fences.size > this.max) this.fences.delete(this.fences.keys().next().value!);
  }

  /** True when this assignment was revoked before it arrived: do not run it. */
  revoked(executionId: string, fence: number): boolean {
    const known = this.fences.get(executionId);
    return known !== undefined && known >= fence;
  }
}
