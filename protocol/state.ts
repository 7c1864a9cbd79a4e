import { z } from 'zod';
import { PLATFORM_TENANT, TenantName } from './identity.ts';
import { ErrorBody } from './errors.ts';
import { BuildId, Digest, Timestamp } from './fields.ts';
import { BaseImage, ProvenanceSummary } from './provenance.ts';
import { BuildRequest } from './request.ts';
import { Verdict } from './verdict.ts';

/**
 * A build's life is one state union. `attempt` counts deliveries of the job: a worker may only
 * move a build that is at the attempt it claimed (fencing against presumed-dead workers).
 *
 *   queued ──► running ──► verifying ──► pushed (promoted)
 *     │          │ ▲ │          ├──────► failed (a blocking gate)
 *     │          │ │ │          └──────► cancelled
 *     │          └─┘ ├───► failed
 *     │              └───► cancelled
 *     │  (redelivered: next attempt)
 *     ├──────────────────► failed (unbuildable job)
 *     ├──────────────────► cancelled (never starts)
 *     └──────────────────► expired (no worker started it within its queue TTL)
 */
export const BuildState = z.discriminatedUnion('phase', [
  z.object({ phase: z.literal('queued') }),
  z.object({
    phase: z.literal('running'),
    attempt: z.number().int().positive(),
    workerId: z.string(),
    startedAt: Timestamp,
    /** the stream sequence of the job message this attempt claimed */
    jobSeq: z.number().int().positive().optional(),
  }),
  z.object({
    /** the image is in quarantine; the gates are reading it */
    phase: z.literal('verifying'),
    attempt: z.number().int().positive(),
    /** the worker whose report started verification (a redelivered report must come from it) */
    workerId: z.string().optional(),
    digest: Digest,
    quarantine: z.string(),
    /** the FROM images the worker resolved, carried on to `pushed` */
    bases: z.array(BaseImage).optional(),
    /** when the worker's attempt started (the running phase's startedAt), for provenance */
    buildStartedAt: Timestamp.optional(),
    startedAt: Timestamp,
  }),
  z.object({
    phase: z.literal('pushed'),
    attempt: z.number().int().positive(),
    digest: Digest,
    references: z.array(z.string()).min(1),
    verdict: Verdict.optional(),
    /** every FROM image as `name` (after build args) and the manifest digest built on; absent on records older than this field */
    bases: z.array(BaseImage).optional(),
    /** the signed provenance written at promotion (absent where the coordinator has no signing key) */
    provenance: ProvenanceSummary.optional(),
    finishedAt: Timestamp,
  }),
  z.object({
    phase: z.literal('failed'),
    attempt: z.number().int().nonnegative(),
    error: ErrorBody,
    finishedAt: Timestamp,
  }),
  z.object({
    phase: z.literal('expired'),
    /** the queue TTL that ran out */
    queueTtlSeconds: z.number().int().positive(),
    finishedAt: Timestamp,
  }),
  z.object({
    phase: z.literal('cancelled'),
    /** the attempt that was running, 0 if none had started */
    attempt: z.number().int().nonnegative(),
    finishedAt: Timestamp,
  }),
]);
export type BuildState = z.infer<typeof BuildState>;
export type Phase = BuildState['phase'];

const TRANSITIONS: Readonly<Record<Phase, readonly Phase[]>> = {
  queued: ['running', 'failed', 'cancelled', 'expired'],
  running: ['running', 'verifying', 'failed', 'cancelled'],
  verifying: ['pushed', 'failed', 'cancelled'],
  pushed: [],
  failed: [],
  cancelled: [],
  expired: [],
};

export function canTransition(from: Phase, to: Phase): boolean {
  return TRANSITIONS[from].includes(to);
}

export function isTerminal(phase: Phase): boolean {
  return TRANSITIONS[phase].length === 0;
}

/** The stored record of one build (the KV value). */
export const BuildRecord = z.object({
  id: BuildId,
  requestHash: z.string(),
  request: BuildRequest,
  /** who owns the build: reads and cancels are scoped to it (records from before tenancy are the platform's) */
  tenant: TenantName.default(PLATFORM_TENANT),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  state: BuildState,
});
export type BuildRecord = z.infer<typeof BuildRecord>;

/** What the API answers about a build: the record without internals. */
export const BuildView = BuildRecord.omit({ requestHash: true });
export type BuildView = z.infer<typeof BuildView>;
