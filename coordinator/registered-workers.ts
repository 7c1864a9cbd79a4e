import type { KV } from '@nats-io/kv';
import { WorkerInfo, workerKey } from '../protocol/index.ts';
import { BoundedCache } from '../adapters/bounded-cache.ts';

/** The builder an announced worker runs, as its entry names it. */
export interface AnnouncedBuilder {
  kind: string;
  version: string;
}

/** What an announced worker's entry names as its builder when the entry does not parse. */
export const UNKNOWN_BUILDER: AnnouncedBuilder = { kind: 'unknown', version: 'unknown' };

/**
 * Whether a worker is announced in the workers bucket, for the claim check, and which builder it
 * announced, for the metrics and the provenance: one read of its entry serves all three. A positive answer is remembered
 * for `ttlMs`: a worker claims once per build, so without this every claim paid a KV round trip
 * for an answer that rarely changes (and a claim by a worker not yet seen paid two, the second
 * for the metrics' builder label, before its reply). The bucket itself keeps a killed worker's
 * entry for workerTtlMs (15 s by default), so remembering a yes for a few seconds less than that
 * widens nothing. A no is never remembered: a worker that just announced itself is let in.
 */
export class RegisteredWorkers {
  private readonly seen: BoundedCache<string, AnnouncedBuilder>;

  constructor(
    private readonly workers: Pick<KV, 'get'>,
    ttlMs: number,
    maxEntries = 10_000,
    now: () => number = Date.now,
  ) {
    this.seen = new BoundedCache({ maxEntries, ttlMs, now });
  }

  async has(pool: string, workerId: string): Promise<boolean> {
    return (await this.builderOf(pool, workerId)) !== null;
  }

  /** The builder the worker announced (`UNKNOWN_BUILDER` if its entry does not parse), or null if it is not announced. */
  async builderOf(pool: string, workerId: string): Promise<AnnouncedBuilder | null> {
    const key = workerKey(pool, workerId);
    const known = this.seen.get(key);
    if (known !== undefined) return known;
    const entry = await this.workers.get(key).catch(() => null);
    if (entry === null || entry.operation !== 'PUT') {
      this.seen.delete(key);
      return null;
    }
    const builder = builderIn(entry.json.bind(entry));
    this.seen.set(key, builder);
    return builder;
  }
}

function builderIn(json: () => unknown): AnnouncedBuilder {
  try {
    const info = WorkerInfo.safeParse(json());
    return info.success ? { kind: info.data.builder, version: info.data.version } : UNKNOWN_BUILDER;
  } catch {
    return UNKNOWN_BUILDER;
  }
}
