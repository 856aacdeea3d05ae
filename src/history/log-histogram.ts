/**
 * A histogram of durations in log-spaced buckets, so percentiles can come from rollups: two
 * histograms merge by adding their counts, and a year of hours merges as fast as a day of them.
 * Bucket b ≥ 1 holds (GROWTH^(b-1), GROWTH^b] ms; bucket 0 holds 0 ms and less (a clock step).
 * With GROWTH = 1.1 a percentile is within 5 % of the true value, and 24 h is bucket 193.
 *
 * Stored sparse, as JSON `[[bucket, count], …]` in bucket order: a rollup row of one queue and one
 * minute usually touches a handful of buckets.
 */
const GROWTH = 1.1;
const LOG_GROWTH = Math.log(GROWTH);

export class LogHistogram {
  private readonly counts = new Map<number, number>();
  total = 0;

  static parse(text: string | null): LogHistogram {
    const h = new LogHistogram();
    if (text !== null) for (const [b, n] of JSON.parse(text) as Array<[number, number]>) h.addBucket(b, n);
    return h;
  }

  add(ms: number): void {
    this.addBucket(LogHistogram.bucketOf(ms), 1);
  }

  /** The bucket `ms` falls in (to add one value to several histograms, compute it once). */
  static bucketOf(ms: number): number {
    return ms <= 0 ? 0 : Math.max(1, Math.ceil(Math.log(ms) / LOG_GROWTH));
  }

  merge(other: LogHistogram): void {
    for (const [b, n] of other.counts) this.addBucket(b, n);
  }

  /** The value at quantile q (0..1): the geometric middle of its bucket; null when empty. */
  quantile(q: number): number | null {
    if (this.total === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (const b of [...this.counts.keys()].sort((x, y) => x - y)) {
      seen += this.counts.get(b)!;
      if (seen >= rank) return b === 0 ? 0 : Math.round(GROWTH ** (b - 0.5));
    }
    return null;
  }

  encode(): string | null {
    if (this.total === 0) return null;
    return JSON.stringify([...this.counts.entries()].sort((a, b) => a[0] - b[0]));
  }

  addBucket(b: number, n: number): void {
    this.counts.set(b, (this.counts.get(b) ?? 0) + n);
    this.total += n;
  }
}
