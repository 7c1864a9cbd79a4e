import type { KV, KvEntry } from '@nats-io/kv';
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
 *
 * The coordinator's watch of the bucket (coordinator/build-list.ts) hands every announcement to
 * `announced`, so a worker that announced itself before its first claim (every worker does, when
 * it starts) is known without a read: the opening burst of a fleet's claims (every idle worker
 * claiming at once) paid that read before its record's write, each.
 */
export class RegisteredWorkers {
  private readonly seen: BoundedCache<string, AnnouncedBuilder>;

  constructor(
    private readonly workers: Pick<KV, 'get'>,
    private readonly ttlMs: number,
    maxEntries = 10_000,
    private readonly now: () => number = Date.now,
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

  /**
   * An entry of the workers bucket as the watch delivers it. A PUT is remembered until ttlMs past
   * the time the server stored it, never longer than a read now would be (a clock behind the
   * server's); an old one (replayed when the watch starts) is past that already and changes
   * nothing. A delete or purge forgets the worker at once.
   */
  announced(entry: Pick<KvEntry, 'key' | 'operation' | 'created' | 'json'>): void {
    if (entry.operation !== 'PUT') {
      this.seen.delete(entry.key);
      return;
    }
    const now = this.now();
    const expiresAt = Math.min(entry.created.getTime(), now) + this.ttlMs;
    if (expiresAt <= now) return;
    // a worker announces every state change and every few seconds: its builder is decoded once
    this.seen.set(entry.key, this.seen.get(entry.key) ?? builderIn(entry.json.bind(entry)), expiresAt);
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
