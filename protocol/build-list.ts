import { z } from 'zod';
import type { Phase as PhaseType } from './state.ts';

/** Every phase of protocol/state.ts, as a schema (query strings, list rows). */
export const BuildPhase = z.enum(['queued', 'running', 'verifying', 'pushed', 'failed', 'cancelled', 'expired']) satisfies z.ZodType<PhaseType>;

/** One row of the builds list (`GET /v1/builds`, its live stream): enough for the console's table. */
export const BuildSummary = z.object({
  id: z.string(),
  tenant: z.string(),
  phase: BuildPhase,
  pool: z.string(),
  repository: z.string(),
  tags: z.array(z.string()),
  kind: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
  attempt: z.number().int().nonnegative().optional(),
  workerId: z.string().optional(),
  builder: z.string().optional(),
  /** the failure's code, for failed builds */
  error: z.string().optional(),
});
export type BuildSummary = z.infer<typeof BuildSummary>;

/** `GET /v1/builds`: the newest `limit` matches, newest first, and how many matched in all. */
export const BuildListReply = z.object({ builds: z.array(BuildSummary), total: z.number().int().nonnegative() });
export type BuildListReply = z.infer<typeof BuildListReply>;

/**
 * `GET /v1/builds?watch=1` (Server-Sent Events; the SSE event name equals `type`): first a
 * `snapshot` (exactly what `GET /v1/builds` with the same filters answers), then an `upsert` for
 * each build that newly matches the filters or changed, and a `remove` for each that stopped
 * matching (its phase left a `state` filter, or the record was deleted). `total` is the number of
 * matching builds after the event, so a client that shows only the newest `limit` still counts
 * right. After a reconnect with `Last-Event-ID` the server may send, instead of a snapshot, the
 * current summary (or a `remove`) of every build changed since that id; a `remove` of an id the
 * client does not hold is harmless.
 */
export const BuildListEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), builds: z.array(BuildSummary), total: z.number().int().nonnegative() }),
  z.object({ type: z.literal('upsert'), build: BuildSummary, total: z.number().int().nonnegative() }),
  z.object({ type: z.literal('remove'), id: z.string(), total: z.number().int().nonnegative() }),
]);
export type BuildListEvent = z.infer<typeof BuildListEvent>;
