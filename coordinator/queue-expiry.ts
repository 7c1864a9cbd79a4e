import type { KV } from '@nats-io/kv';
import type { BuildRecord} from '../protocol/index.ts';
import { type BuildState } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { BuildStore } from './build-store.ts';
import type { CoordinatorConfig } from './config.ts';

/** The one setting the queue clock reads. */
export type QueueClockConfig = Pick<CoordinatorConfig, 'defaultQueueTtlSeconds'>;

/** The queue clock: a build may wait this long for a worker, from when it was accepted. */
export function queueTtlSeconds(record: BuildRecord, config: QueueClockConfig): number {
  return record.request.queueTtlSeconds ?? config.defaultQueueTtlSeconds;
}

/** When (epoch ms) a build's queue TTL runs out: its acceptance time plus its TTL. */
export function queueDeadline(record: BuildRecord, config: QueueClockConfig): number {
  return Date.parse(record.createdAt) + queueTtlSeconds(record, config) * 1000;
}

export function expiredState(record: BuildRecord, config: QueueClockConfig, now = Date.now()): BuildState | null {
  if (record.state.phase !== 'queued') return null;
  const ttl = queueTtlSeconds(record, config);
  return now >= queueDeadline(record, config) ? { phase: 'expired', queueTtlSeconds: ttl, finishedAt: new Date(now).toISOString() } : null;
}

/** How long (ms) from `now` until a queued build's expiry timer should fire: 0 when already due; null when it is not queued. */
export function expiryDelayMs(record: BuildRecord, config: QueueClockConfig, now = Date.now()): number | null {
  if (record.state.phase !== 'queued') return null;
  return Math.max(0, queueDeadline(record, config) - now);
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
    const due = expiryDelayMs(record, this.config);
    if (due === null || this.timers.has(record.id)) return;
    const timer = setTimeout(() => void this.expire(record.id), due);
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
      // A timer that fired a moment early (clock steps, timer rounding) found it not yet due: arm again.
      else this.track(record);
    } catch (e) {
      this.log.warn({ err: e, buildId: id }, 'could not expire build');
    }
  }
}
