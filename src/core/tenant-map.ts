/**
 * A two-level map, tenant → id → value. Keeping the id as the inner key (instead of one
 * "tenant/id" string) saves a concatenated string per entry, which matters at a million jobs.
 */
export class TenantMap<V> {
  private readonly byTenant = new Map<string, Map<string, V>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(tenant: string, id: string): V | undefined {
    return this.byTenant.get(tenant)?.get(id);
  }

  has(tenant: string, id: string): boolean {
    return this.byTenant.get(tenant)?.has(id) ?? false;
  }

  set(tenant: string, id: string, value: V): void {
    let inner = this.byTenant.get(tenant);
    if (!inner) {
      inner = new Map();
      this.byTenant.set(tenant, inner);
    }
    const before = inner.size;
    inner.set(id, value);
    this.count += inner.size - before;
  }

  delete(tenant: string, id: string): boolean {
    const inner = this.byTenant.get(tenant);
    if (!inner || !inner.delete(id)) return false;
    this.count--;
    if (inner.size === 0) this.byTenant.delete(tenant);
    return true;
  }

  /** The values of one tenant, in insertion order. */
  valuesOf(tenant: string): IterableIterator<V> {
    return (this.byTenant.get(tenant) ?? new Map<string, V>()).values();
  }

  *entries(): IterableIterator<[tenant: string, id: string, value: V]> {
    for (const [tenant, inner] of this.byTenant) for (const [id, value] of inner) yield [tenant, id, value];
  }

  *values(): IterableIterator<V> {
    for (const inner of this.byTenant.values()) yield* inner.values();
  }
}
