import { z } from 'zod';
import { BuildId, ContextPath, ContextRef, PoolName, Repository, SecretId, StageName, Tag } from './fields.ts';
import { BuildKind } from './request.ts';

/**
 * The concrete plan a worker receives. It is rendered by the coordinator from a validated
 * request and names everything the worker needs; the worker still parses it, because the queue
 * is a boundary like any other.
 */
export const BuildJob = z.strictObject({
  v: z.literal(1),
  buildId: BuildId,
  pool: PoolName,
  kind: BuildKind,
  context: ContextRef,
  dockerfile: ContextPath,
  /** the canonical Dockerfile the platform rendered (standard builds); replaces `dockerfile` */
  renderedDockerfile: z.string().max(65_536).optional(),
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
  /** where the worker pushes: gates run there, and only a passing image is promoted to `image` */
  quarantine: z.strictObject({ repository: Repository, tag: Tag }),
});
export type BuildJob = z.infer<typeof BuildJob>;
