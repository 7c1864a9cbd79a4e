import type { KV } from '@nats-io/kv';
import { workerKey } from '../protocol/index.ts';
import { BoundedCache } from '../adapters/bounded-cache.ts';

/**
 * Whether a worker is announced in the workers bucket, for the claim check. A positive answer is
 * remembered for `ttlMs`: a worker claims once per build, so without this every claim paid a KV
 * round trip for an answer that rarely changes. The bucket itself keeps a killed worker's entry
 * for workerTtlMs (15 s by default), so remembering a yes for a few seconds less than that
 * widens nothing. A no is never remembered: a worker that just announced itself is let in.
 */
export class RegisteredWorkers {
  private readonly seen: BoundedCache<string, true>;

  constructor(
    private readonly workers: Pick<KV, 'get'>,
    ttlMs: number,
    maxEntries = 10_000,
    now: () => number = Date.now,
  ) {
    this.seen = new BoundedCache({ maxEntries, ttlMs, now });
  }

  async has(pool: string, workerId: string): Promise<boolean> {
    const key = workerKey(pool, workerId);
    if (this.seen.get(key) === true) return true;
    const entry = await this.workers.get(key).catch(() => null);
    if (entry === null || entry.operation !== 'PUT') {
      this.seen.delete(key);
      return false;
    }
    this.seen.set(key, true);
    return true;
  }
}
