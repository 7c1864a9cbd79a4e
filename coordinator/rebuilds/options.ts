import { z } from 'zod';

/** Rebuild on base update (coordinator/rebuilds): how changes are noticed and how fast waves go. */
export const RebuildOptions = z.strictObject({
  /** off: no dependency index, no waves (promotion is unchanged) */
  enabled: z.boolean().default(true),
  /** notices of one base within this window are one look at the registry */
  debounceMs: z.number().int().min(0).max(600_000).default(500),
  /** how often the poller looks at every followed tag (for registries that cannot notify); 0: no poller */
  pollIntervalMs: z.number().int().min(0).default(15 * 60_000),
  /** the poll interval varies by up to this fraction either way, so replicas and fleets do not ask at once */
  pollJitter: z.number().min(0).max(1).default(0.2),
  /** rebuilds queued or running at once per pool; the rest of a wave waits, so release builds are not starved */
  maxInFlightPerPool: z.number().int().min(1).default(2),
  /** how often open waves look at their builds (besides every build event) */
  pumpIntervalMs: z.number().int().min(100).default(5_000),
});
export type RebuildOptions = z.infer<typeof RebuildOptions>;
