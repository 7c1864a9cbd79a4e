import { z } from 'zod';
import { ErrorBody } from './errors.ts';
import { BuildId, Digest, PoolName, Repository, Tag, Timestamp } from './fields.ts';
import { TenantName } from './identity.ts';

/**
 * Rebuild on base update: the dependency index, the waves it starts and the registry
 * notifications that start them. A base is named as a FROM line names it after build args
 * (`127.0.0.1:5000/official/base:1`, see BaseImage); a base pinned by digest never moves.
 */

/** A tag reference a rebuild can watch: `host/path:tag` (the host is the registry's, with its port). */
export const BaseName = z
  .string()
  .min(3)
  .max(512)
  .regex(/^[^\s@]+\/[^\s@]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be HOST/REPOSITORY:TAG');
export type BaseName = z.infer<typeof BaseName>;

/** Why a build exists: its dependent's base moved. Stored in the request, so the record says so. */
export const RebuildOf = z.strictObject({
  /** the dependent's last promoted build, whose request this one repeats */
  buildId: BuildId,
  /** the base that moved */
  base: BaseName,
  from: Digest,
  to: Digest,
  /** for people: `official/base:1 sha256:aaa… → sha256:bbb…` */
  reason: z.string().max(700),
});
export type RebuildOf = z.infer<typeof RebuildOf>;

/**
 * One dependent of one base in the dependency index: the latest promoted build of a
 * `(repository, tag stream)` that used `base` at `baseDigest`. Rewritten at every promotion.
 */
export const Dependent = z.strictObject({
  base: BaseName,
  baseDigest: Digest,
  repository: Repository,
  tags: z.array(Tag).min(1),
  tenant: TenantName,
  pool: PoolName,
  /** the promoted build: its request is what a rebuild submits again */
  buildId: BuildId,
  /** what it promoted */
  digest: Digest,
  promotedAt: Timestamp,
});
export type Dependent = z.infer<typeof Dependent>;

/**
 * A dependent's part in a wave: `pending` waits for room in its pool (the in-flight cap),
 * `submitted` has a build (its phase is read from the build record), `refused` never became a
 * build (the intake said no: a missing context, a tenant limit), `superseded` was still pending
 * when the same base moved again (the newer wave rebuilds it once, on the newer digest); nothing
 * is retried.
 */
export const WaveMember = z.strictObject({
  repository: Repository,
  tags: z.array(Tag).min(1),
  tenant: TenantName,
  pool: PoolName,
  previousBuildId: BuildId,
  /** derived from (dependent, new base digest): the same pair is always the same build */
  rebuildId: BuildId,
  from: Digest,
  status: z.enum(['pending', 'submitted', 'refused', 'superseded']),
  submittedAt: Timestamp.optional(),
  error: ErrorBody.optional(),
  /** the phase its build ended in, once it has (the tenant is told then, once) */
  ended: z.string().optional(),
});
export type WaveMember = z.infer<typeof WaveMember>;

/** How the change was noticed first (later notices of the same change are dropped). */
export const NoticedBy = z.enum(['notification', 'poller', 'promotion']);
export type NoticedBy = z.infer<typeof NoticedBy>;

/** A base moved to `to`: every dependent not built on it yet is rebuilt once. One per (base, new digest). */
export const RebuildWave = z.strictObject({
  id: z.string(),
  base: BaseName,
  to: Digest,
  noticedBy: NoticedBy,
  /** when the first notice of this change arrived (the push, as near as the fleet knows) */
  noticedAt: Timestamp,
  createdAt: Timestamp,
  members: z.array(WaveMember),
  /** set once every member has ended (or was refused) */
  closedAt: Timestamp.optional(),
});
export type RebuildWave = z.infer<typeof RebuildWave>;

/** A wave as listed: each member with its build's phase now (`pending`/`refused` before it has one). */
export const RebuildWaveView = RebuildWave.extend({
  members: z.array(
    WaveMember.extend({
      phase: z.string(),
      digest: Digest.optional(),
      /** the error code its build failed with, so a list can tell a gate's block (E_GATE_BLOCKED) from a broken build */
      failedWith: z.string().optional(),
    }),
  ),
});
export type RebuildWaveView = z.infer<typeof RebuildWaveView>;

export const RebuildsRequest = z.strictObject({
  /** only waves of this base (`official/base:1` or with the registry host) */
  base: z.string().max(512).optional(),
});
export type RebuildsRequest = z.infer<typeof RebuildsRequest>;

export const RebuildsReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), waves: z.array(RebuildWaveView) }),
  z.object({ ok: z.literal(false), error: ErrorBody }),
]);
export type RebuildsReply = z.infer<typeof RebuildsReply>;

/** The CNCF distribution registry's notification media type (its `Content-Type`). */
export const DISTRIBUTION_EVENTS_MEDIA_TYPE = 'application/vnd.docker.distribution.events.v1+json';

/**
 * distribution's notification envelope, as much of it as a rebuild reads. Pushes of blobs come
 * as events too (no tag): only manifest pushes with a tag can move a base.
 */
export const DistributionEnvelope = z.object({
  events: z
    .array(
      z.object({
        action: z.string(),
        target: z.object({
          repository: z.string().max(255),
          digest: z.string().optional(),
          tag: z.string().max(128).optional(),
          mediaType: z.string().optional(),
        }),
        request: z.object({ host: z.string().optional() }).optional(),
      }),
    )
    .max(1000),
});
export type DistributionEnvelope = z.infer<typeof DistributionEnvelope>;

/** Harbor's webhook (`PUSH_ARTIFACT` is the one a rebuild reads; others are ignored). */
export const HarborWebhook = z.object({
  type: z.string(),
  event_data: z.object({
    resources: z.array(z.object({ digest: z.string().optional(), tag: z.string().optional(), resource_url: z.string().optional() })).max(1000),
    repository: z.object({ repo_full_name: z.string().max(255) }),
  }),
});
export type HarborWebhook = z.infer<typeof HarborWebhook>;
