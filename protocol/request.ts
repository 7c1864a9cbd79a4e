import { z } from 'zod';
import { RebuildOf } from './rebuild.ts';
import { BuildArgName, BuildId, CatalogId, ContextPath, Digest, EnvironmentName, LabelKey, PoolName, Repository, S3Url, SecretId, StageName, Tag } from './fields.ts';

/** Where custom bases live; standard builds may only name a base from here (or an official one). */
export const BASES_NAMESPACE = 'bases/';

/**
 * The three ways an app gets its image:
 * - `standard`: the platform renders a canonical Dockerfile for the runtime (never from user text);
 * - `custom-base`: any Dockerfile, pushed under `bases/`, that must derive from an official base;
 * - `custom`: any Dockerfile (multi-stage, target, args, secrets); the gates matter most.
 */
export const BuildKind = z.enum(['standard', 'custom-base', 'custom']);
export type BuildKind = z.infer<typeof BuildKind>;

export const StandardSpec = z.strictObject({
  /** runtime id from the platform catalog, e.g. `java17` */
  runtime: CatalogId,
  /** the environment the image is for; services are enabled per environment */
  environment: EnvironmentName,
  /** environment option ids from the catalog (checkbox extras) */
  options: z.array(CatalogId).max(32).default([]),
  /** the app's service config: service id → environments it is enabled in */
  services: z.record(CatalogId, z.array(EnvironmentName).max(16)).default({}),
  /** an approved custom base (`bases/…:tag`) to run on instead of the runtime's official base */
  base: z.string().max(300).regex(/^bases\/[a-z0-9._\/-]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be bases/NAME:TAG').optional(),
});
export type StandardSpec = z.infer<typeof StandardSpec>;
export type StandardSpecInput = z.input<typeof StandardSpec>;

/**
 * What the release system sends. `id` is the idempotency key: the same id with the same body is
 * the same build; with a different body it is a conflict. Unknown fields are rejected so that a
 * typo never silently builds something else.
 */
export const BuildRequest = z
  .strictObject({
    id: BuildId,
    kind: BuildKind.default('custom'),
    /** required for `standard`, refused otherwise */
    standard: StandardSpec.optional(),
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
    /** set by the platform only: this build repeats a dependent's last request because its base moved */
    rebuildOf: RebuildOf.optional(),
  })
  .superRefine((r, ctx) => {
    const issue = (path: (string | number)[], message: string): void => ctx.addIssue({ code: 'custom', path, message });
    if (r.kind === 'standard') {
      if (r.standard === undefined) issue(['standard'], 'is required for kind "standard"');
      if (r.target !== undefined) issue(['target'], 'is not allowed for kind "standard" (the platform renders the Dockerfile)');
      if (r.dockerfile !== 'Dockerfile') issue(['dockerfile'], 'is not allowed for kind "standard" (the platform renders the Dockerfile)');
    } else if (r.standard !== undefined) {
      issue(['standard'], `is only allowed for kind "standard", not "${r.kind}"`);
    }
    const inBases = r.image.repository.startsWith(BASES_NAMESPACE);
    if (r.kind === 'custom-base' && !inBases) issue(['image', 'repository'], `must be under "${BASES_NAMESPACE}" for kind "custom-base"`);
    if (r.kind !== 'custom-base' && inBases) issue(['image', 'repository'], `"${BASES_NAMESPACE}" is reserved for kind "custom-base"`);
    if (/^(official|platform|quarantine|cache)\//.test(r.image.repository)) issue(['image', 'repository'], 'official/, platform/, quarantine/ and cache/ are reserved for the platform');
  });
export type BuildRequest = z.infer<typeof BuildRequest>;
/** The request as a client writes it, defaults not yet applied. */
export type BuildRequestInput = z.input<typeof BuildRequest>;
