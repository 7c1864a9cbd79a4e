import { z } from 'zod';
import { BuildId, ContextPath, ContextRef, PoolName, Repository, SecretId, StageName, Tag } from './fields.ts';

/**
 * The concrete plan a worker receives. It is rendered by the coordinator from a validated
 * request and names everything the worker needs; the worker still parses it, because the queue
 * is a boundary like any other.
 */
export const BuildJob = z.strictObject({
  v: z.literal(1),
  buildId: BuildId,
  pool: PoolName,
  context: ContextRef,
  dockerfile: ContextPath,
  target: StageName.optional(),
  buildArgs: z.record(z.string(), z.string()),
  labels: z.record(z.string(), z.string()),
  secrets: z.array(SecretId),
  timeoutSeconds: z.number().int().positive(),
  image: z.strictObject({
    registry: z.string().min(1),
    repository: Repository,
    tags: z.array(Tag).min(1),
  }),
});
export type BuildJob = z.infer<typeof BuildJob>;
