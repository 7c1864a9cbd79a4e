/**
 * The process's one bounded cache: at most `maxEntries` entries, the least recently used
 * forgotten first, each entry also forgotten at a time of its own. Lives in adapters/ because it
 * is the lowest layer both the coordinator and the scanner may import (eslint.config.js); it
 * imports nothing itself.
 */
export interface BoundedCacheOptions {
  /** entries kept at most; past it the least recently used is forgotten first */
  maxEntries: number;
  /** how long an entry set without its own expiry is kept (default: until evicted) */
  ttlMs?: number;
  now?: () => number;
}

/**
 * A size-bounded LRU map whose entries expire. A Map keeps insertion order, so re-inserting on a
 * hit makes its first key the least recently used one. An expired entry is dropped when read.
 */
export class BoundedCache<K, V> {
  private readonly entries = new Map<K, { value: V; expiresAt: number }>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: BoundedCacheOptions) {
    if (!Number.isInteger(options.maxEntries) || options.maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    if (options.ttlMs !== undefined && !(options.ttlMs > 0)) throw new RangeError('ttlMs must be positive');
    this.maxEntries = options.maxEntries;
    this.ttlMs = options.ttlMs ?? Number.POSITIVE_INFINITY;
    this.now = options.now ?? Date.now;
  }

  /** The live value for `key` (now the most recently used), or undefined. */
  get(key: K): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    this.entries.delete(key);
    if (entry.expiresAt <= this.now()) return undefined;
    this.entries.set(key, entry);
    return entry.value;
  }

  /** Keeps `value` until `expiresAt` (ms since the epoch; default now + ttlMs); one already expired replaces nothing. */
  set(key: K, value: V, expiresAt: number = this.now() + this.ttlMs): void {
    this.entries.delete(key);
    if (expiresAt <= this.now()) return;
    this.entries.set(key, { value, expiresAt });
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next();
      if (oldest.done === true) break;
      this.entries.delete(oldest.value);
    }
  }

  delete(key: K): void {
    this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  /** entries held, expired ones not yet read included */
  get size(): number {
    return this.entries.size;
  }
}

/**
 * Single flight over a bounded cache of answers: concurrent asks for one key share one
 * computation (the pending promise is what is cached); one that fails, or whose answer `keep`
 * refuses, is forgotten, so the next ask computes again.
 */
export class SharedAnswers<K, V> {
  private readonly cache: BoundedCache<K, Promise<V>>;

  constructor(
    options: BoundedCacheOptions,
    private readonly keep: (value: V) => boolean = () => true,
  ) {
    this.cache = new BoundedCache(options);
  }

  get size(): number {
    return this.cache.size;
  }

  get(key: K, compute: () => Promise<V>): Promise<V> {
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const pending = compute();
    this.cache.set(key, pending);
    const forget = (): void => {
      if (this.cache.get(key) === pending) this.cache.delete(key);
    };
    void pending.then((value) => {
      if (!this.keep(value)) forget();
      // The time to live counts from the answer, as if it had been set then.
      else if (this.cache.get(key) === pending) this.cache.set(key, pending);
    }, forget);
    return pending;
  }
}
