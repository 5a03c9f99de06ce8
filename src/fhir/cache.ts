/**
 * A bounded least-recently-used map with a freshness deadline per entry, for resolved references. An entry may
 * hold `undefined`: "looked up and missing", so a deleted patient is not fetched again on every page.
 */
import type { Clock } from '../clock.js';

interface Entry<V> {
  readonly value: V | undefined;
  readonly expiresAt: number;
}

export class TtlLruCache<V> {
  private readonly entries = new Map<string, Entry<V>>();

  constructor(
    private readonly maxEntries: number,
    private readonly ttlMs: number,
    private readonly clock: Clock,
  ) {}

  /** True when `key` is cached and not expired; marks it recently used. */
  isFresh(key: string): boolean {
    const entry = this.entries.get(key);
    if (!entry || this.clock.now() >= entry.expiresAt) return false;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return true;
  }

  /** The cached value, expired or not (a caller reading right after a prefetch wants what it fetched). */
  peek(key: string): V | undefined {
    return this.entries.get(key)?.value;
  }

  /** `ttlMs` 0 keeps the entry for peek only: the next isFresh asks again (what a single answer cannot settle). */
  set(key: string, value: V | undefined, ttlMs = this.ttlMs): void {
    this.entries.delete(key);
    this.entries.set(key, { value, expiresAt: this.clock.now() + ttlMs });
    // Map iteration order is insertion order, so the first key is the least recently used.
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
