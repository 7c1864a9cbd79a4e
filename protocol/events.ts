import { z } from 'zod';
import { ErrorBody } from './errors.ts';
import { BuildId, Digest, Timestamp } from './fields.ts';
import { BaseImage } from './provenance.ts';
import { RebuildOf } from './rebuild.ts';
import { Finding, ScannerIdentity } from './scan.ts';
import { BuildView, type Phase } from './state.ts';
import { Verdict } from './verdict.ts';

const base = { buildId: BuildId, at: Timestamp };

/** Authoritative lifecycle events, published by the coordinator after the state is stored. */
export const BuildEvent = z.discriminatedUnion('type', [
  z.object({ ...base, type: z.literal('queued') }),
  z.object({ ...base, type: z.literal('started'), attempt: z.number().int().positive(), workerId: z.string() }),
  z.object({ ...base, type: z.literal('verifying'), attempt: z.number().int().positive(), digest: Digest, quarantine: z.string() }),
  z.object({ ...base, type: z.literal('verdict'), attempt: z.number().int().positive(), verdict: Verdict }),
  z.object({ ...base, type: z.literal('pushed'), attempt: z.number().int().positive(), digest: Digest, references: z.array(z.string()) }),
  z.object({ ...base, type: z.literal('failed'), attempt: z.number().int().nonnegative(), error: ErrorBody }),
  z.object({ ...base, type: z.literal('cancelled'), attempt: z.number().int().nonnegative() }),
  z.object({ ...base, type: z.literal('expired'), queueTtlSeconds: z.number().int().positive() }),
  /**
   * a released image (still carrying a release tag) has findings that now block, after the
   * scanner's DB moved (coordinator/rescans.ts); its tags are left alone: people decide
   */
  z.object({ ...base, type: z.literal('vulnerable'), digest: Digest, references: z.array(z.string()), scanner: ScannerIdentity, findings: z.array(Finding) }),
  /** this build rebuilds a dependent because its base moved (published right after `queued`) */
  z.object({ ...base, type: z.literal('rebuild'), rebuildOf: RebuildOf }),
]);
export type BuildEvent = z.infer<typeof BuildEvent>;

/** The phase a build is in once an event of this type was published. */
export const PHASE_OF_EVENT: Readonly<Record<BuildEvent['type'], Phase>> = {
  queued: 'queued',
  started: 'running',
  verifying: 'verifying',
  verdict: 'verifying',
  pushed: 'pushed',
  failed: 'failed',
  cancelled: 'cancelled',
  expired: 'expired',
  vulnerable: 'pushed',
  rebuild: 'queued',
};

/** One line of builder output. `n` counts from 1 per attempt, so a reader can spot gaps. */
export const LogLine = z.object({
  buildId: BuildId,
  attempt: z.number().int().positive(),
  n: z.number().int().positive(),
  stream: z.enum(['stdout', 'stderr', 'system']),
  at: Timestamp,
  text: z.string(),
});
export type LogLine = z.infer<typeof LogLine>;

/**
 * What travels on a build's log subject: consecutive lines of one attempt, batched so a flood
 * of output costs one publish per batch rather than per line. Readers see single LogLines.
 */
export const LogBatch = z.object({
  buildId: BuildId,
  attempt: z.number().int().positive(),
  lines: z.array(LogLine.omit({ buildId: true, attempt: true })).min(1),
});
export type LogBatch = z.infer<typeof LogBatch>;

/** A worker's claim about its attempt. The coordinator verifies it before it becomes an event. */
export const WorkerReport = z.discriminatedUnion('type', [
  z.object({
    ...base,
    type: z.literal('pushed'),
    attempt: z.number().int().positive(),
    workerId: z.string(),
    digest: Digest,
    references: z.array(z.string()).min(1),
    /** every FROM image resolved to its digest (absent from workers older than this field) */
    bases: z.array(BaseImage).max(64).optional(),
  }),
  /**
   * The image's base (its final stage's FROM image) resolved to its digest, sent as the builder
   * starts: the coordinator reads its packages for the SBOM while the build runs, not after it.
   * Changes no state; a coordinator older than this type cannot read it, so coordinators are
   * upgraded before workers.
   */
  z.object({
    ...base,
    type: z.literal('resolved'),
    attempt: z.number().int().positive(),
    workerId: z.string(),
    base: BaseImage,
  }),
  z.object({
    ...base,
    type: z.literal('failed'),
    attempt: z.number().int().nonnegative(),
    workerId: z.string(),
    error: ErrorBody,
  }),
]);
export type WorkerReport = z.infer<typeof WorkerReport>;

export const ClaimRequest = z.object({
  buildId: BuildId,
  attempt: z.number().int().positive(),
  workerId: z.string().min(1),
  /**
   * the job message's stream sequence: tells a redelivery of the message the current attempt
   * holds (after a server restart its delivery count can go back) from another message of the build
   */
  jobSeq: z.number().int().positive().optional(),
});
export type ClaimRequest = z.infer<typeof ClaimRequest>;

export const ClaimReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true) }),
  z.object({ ok: z.literal(false), error: ErrorBody }),
]);
export type ClaimReply = z.infer<typeof ClaimReply>;

/** Published once a pushed digest is verified against the registry. */
export const ScanRequest = z.object({
  buildId: BuildId,
  digest: Digest,
  repository: z.string(),
  registry: z.string(),
  references: z.array(z.string()),
  at: Timestamp,
});
export type ScanRequest = z.infer<typeof ScanRequest>;

/** Answers of the request-reply API (submit, status). */
export const ApiReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), build: BuildView, created: z.boolean() }),
  z.object({ ok: z.literal(false), error: ErrorBody }),
]);
export type ApiReply = z.infer<typeof ApiReply>;

export const StatusRequest = z.object({ id: BuildId });

/** A worker's life: starting → idle ⇄ building → draining → stopped (or failed from anywhere). */
export const WorkerPhase = z.enum(['starting', 'idle', 'building', 'draining', 'stopped', 'failed']);
export type WorkerPhase = z.infer<typeof WorkerPhase>;

/** What a worker announces about itself, every few seconds, in the workers bucket. */
export const WorkerInfo = z.object({
  workerId: z.string(),
  pool: z.string(),
  builder: z.string(),
  version: z.string(),
  state: WorkerPhase,
  /** the build it is on (building, or draining with a build still running) */
  buildId: BuildId.optional(),
  since: Timestamp,
  at: Timestamp,
});
export type WorkerInfo = z.infer<typeof WorkerInfo>;

export const WorkersReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), workers: z.array(WorkerInfo) }),
  z.object({ ok: z.literal(false), error: ErrorBody }),
]);
export type WorkersReply = z.infer<typeof WorkersReply>;

/** A job parked after it exhausted its deliveries, with what is known of why. */
export const DeadLetter = z.object({
  buildId: BuildId,
  pool: z.string(),
  deliveries: z.number().int().nonnegative(),
  parkedAt: Timestamp,
  /** the job as it was queued (JSON), so a person can read and retry it */
  job: z.string(),
  lastError: z.string(),
});
export type DeadLetter = z.infer<typeof DeadLetter>;

export const DlqRequest = z.discriminatedUnion('op', [
  z.object({ op: z.literal('ls') }),
  z.object({ op: z.literal('retry'), buildId: BuildId }),
  z.object({ op: z.literal('drop'), buildId: BuildId }),
]);
export type DlqRequest = z.infer<typeof DlqRequest>;

export const DlqReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), letters: z.array(DeadLetter), retriedAs: BuildId.optional() }),
  z.object({ ok: z.literal(false), error: ErrorBody }),
]);
export type DlqReply = z.infer<typeof DlqReply>;

/** Cancelling an ended build changes nothing and says so (`cancelled: false`). */
export const CancelReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), build: BuildView, cancelled: z.boolean() }),
  z.object({ ok: z.literal(false), error: ErrorBody }),
]);
export type CancelReply = z.infer<typeof CancelReply>;
