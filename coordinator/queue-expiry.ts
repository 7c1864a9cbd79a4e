import type { KV } from '@nats-io/kv';
import type { BuildRecord} from '../protocol/index.ts';
import { type BuildState } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { BuildStore } from './build-store.ts';
import type { CoordinatorConfig } from './config.ts';

/** The queue clock: a build may wait this long for a worker, from when it was accepted. */
export function queueTtlSeconds(record: BuildRecord, config: CoordinatorConfig): number {
  return record.request.queueTtlSeconds ?? config.defaultQueueTtlSeconds;
}

export function expiredState(record: BuildRecord, config: CoordinatorConfig, now = Date.now()): BuildState | null {
  if (record.state.phase !== 'queued') return null;
  const ttl = queueTtlSeconds(record, config);
  return now >= Date.parse(record.createdAt) + ttl * 1000 ? { phase: 'expired', queueTtlSeconds: ttl, finishedAt: new Date(now).toISOString() } : null;
}

/**
 * Expires queued builds whose queue TTL ran out while no worker started them. One timer per
 * queued build; on start the coordinator re-arms timers from the stored records, and several
 * coordinators may race on one build safely (the transition is a compare-and-swap).
 */
export class QueueExpiry {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: BuildStore,
    private readonly config: CoordinatorConfig,
    private readonly log: Logger,
  ) {}

  track(record: BuildRecord): void {
    if (record.state.phase !== 'queued' || this.timers.has(record.id)) return;
    const due = Date.parse(record.createdAt) + queueTtlSeconds(record, this.config) * 1000 - Date.now();
    const timer = setTimeout(() => void this.expire(record.id), Math.max(0, due));
    timer.unref();
    this.timers.set(record.id, timer);
  }

  /** Re-arms timers for every build still queued (after a coordinator restart). */
  async rearm(kv: KV): Promise<void> {
    for await (const key of await kv.keys()) {
      const found = await this.store.get(key).catch(() => null);
      if (found !== null) this.track(found.record);
    }
  }

  stop(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private async expire(id: string): Promise<void> {
    this.timers.delete(id);
    try {
      const record = await this.store.transition(id, (r) => expiredState(r, this.config));
      if (record.state.phase === 'expired') this.log.info({ buildId: id, queueTtlSeconds: record.state.queueTtlSeconds }, 'build expired in the queue');
    } catch (e) {
      this.log.warn({ err: e, buildId: id }, 'could not expire build');
    }
  }
}
