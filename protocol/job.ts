import { z } from 'zod';
import { BuildId, ContextPath, ContextRef, PoolName, Repository, SecretId, StageName, Tag } from './fields.ts';
import { TenantName } from './identity.ts';
import { BuildKind } from './request.ts';

/**
 * A registry (host[:port], as written in a FROM; `docker.io` for Docker Hub) a base may come from,
 * and optionally which repositories there: `library/*` (a prefix) or `app/x` (exactly).
 */
export const AllowedBase = z.strictObject({
  registry: z.string().min(1).regex(/^[^/\s]+$/, 'a registry host, without a path'),
  repositories: z.array(z.string().regex(/^[a-z0-9][a-z0-9._/-]*(\/\*)?$/, 'a repository path, optionally ending in "/*"')).min(1).optional(),
});
export type AllowedBase = z.infer<typeof AllowedBase>;

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
  /**
   * where every FROM (and COPY --from image) may come from, for this build's tenant: checked by
   * the worker after build args, before any pull. Absent (a coordinator from before the policy):
   * only the job's own registry.
   */
  allowedBases: z.array(AllowedBase).optional(),
  /**
   * the tenant the build belongs to. What a worker keeps between builds for RUN steps (their
   * `--mount=type=cache` directories) is kept per tenant, never seen by another tenant's build.
   * Absent (a coordinator from before it): kept per image repository.
   */
  tenant: TenantName.optional(),
});
export type BuildJob = z.infer<typeof BuildJob>;
