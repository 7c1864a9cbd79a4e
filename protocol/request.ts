import { z } from 'zod';
import { BuildArgName, BuildId, ContextPath, Digest, LabelKey, PoolName, Repository, S3Url, SecretId, StageName, Tag } from './fields.ts';

/**
 * What the release system sends. `id` is the idempotency key: the same id with the same body is
 * the same build; with a different body it is a conflict. Unknown fields are rejected so that a
 * typo never silently builds something else.
 */
export const BuildRequest = z.strictObject({
  id: BuildId,
  pool: PoolName.default('default'),
  context: z.strictObject({
    digest: Digest,
    /** a context already in the fleet's bucket (`s3://BUCKET/KEY`); by default the content address */
    url: S3Url.optional(),
  }),
  dockerfile: ContextPath.default('Dockerfile'),
  target: StageName.optional(),
  buildArgs: z.record(BuildArgName, z.string().max(4096)).default({}),
  labels: z.record(LabelKey, z.string().max(4096)).default({}),
  /** ids of build secrets the pool holds, for `RUN --mount=type=secret,id=…` */
  secrets: z.array(SecretId).max(32).default([]),
  /** run timeout from the build's start (queue wait does not count); capped by the platform */
  timeoutSeconds: z.number().int().min(1).optional(),
  /** how long the build may wait for a worker before it is `expired`; capped by the platform */
  queueTtlSeconds: z.number().int().min(1).optional(),
  image: z.strictObject({
    repository: Repository,
    tags: z.array(Tag).min(1).max(16),
  }),
});
export type BuildRequest = z.infer<typeof BuildRequest>;
/** The request as a client writes it, defaults not yet applied. */
export type BuildRequestInput = z.input<typeof BuildRequest>;
