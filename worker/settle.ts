import { ErrorCode, isRetryable, type BaseImage, type FleetError } from '../protocol/index.ts';
import type { BuildResult } from './builders/index.ts';

/** A pushed build as reported: the builder's result and the base images it was built on. */
export type PushedResult = BuildResult & { readonly bases: BaseImage[] };

/** How one delivery of a job ended, as the runner saw it. */
export type Outcome =
  /** the coordinator would not give this delivery a claim */
  | { readonly type: 'claim-refused'; readonly error: FleetError }
  /** something the attempt needs before building could not be set up (e.g. the cancel watch) */
  | { readonly type: 'not-started'; readonly error: FleetError }
  | { readonly type: 'pushed'; readonly result: PushedResult }
  /** cancelled by request: the coordinator has recorded it already */
  | { readonly type: 'cancelled' }
  /** the worker is stopping: another worker takes the job */
  | { readonly type: 'handed-back' }
  | { readonly type: 'failed'; readonly error: FleetError };

/** What to do with the JetStream message (and whether to tell the coordinator first). */
export type Settlement =
  | { readonly action: 'ack' }
  | { readonly action: 'nak'; readonly delayMs?: number }
  | { readonly action: 'term'; readonly reason: string }
  /** store the report, then ack; a report that cannot be stored hands the job back instead */
  | { readonly action: 'report-pushed'; readonly result: PushedResult }
  | { readonly action: 'report-failed'; readonly error: FleetError };

export const RETRY_BASE_MS = 1_000;
export const RETRY_MAX_MS = 30_000;

/**
 * The one decision about a delivery's ending. Pure: the error table says what is retryable; the
 * last delivery never retries, it reports (so the build fails with its real reason, not as a
 * dead letter).
 */
export function settle(outcome: Outcome, attempt: number, maxDeliver: number, random: () => number = Math.random): Settlement {
  switch (outcome.type) {
    case 'claim-refused':
      // An unreachable coordinator is no refusal, and a refusal of this worker (not registered,
      // wrong pool) says nothing about the job: either way another delivery may take it. Only
      // a refusal about the job itself (stale attempt, ended, unknown) drops it.
      return outcome.error.code === ErrorCode.E_UNAVAILABLE || outcome.error.code === ErrorCode.E_FORBIDDEN
        ? { action: 'nak', delayMs: RETRY_BASE_MS }
        : { action: 'term', reason: outcome.error.code };
    case 'not-started':
      return { action: 'nak', delayMs: RETRY_BASE_MS };
    case 'pushed':
      return { action: 'report-pushed', result: outcome.result };
    case 'cancelled':
      return { action: 'ack' };
    case 'handed-back':
      return { action: 'nak' };
    case 'failed':
      if (isRetryable(outcome.error.code) && attempt < maxDeliver) return { action: 'nak', delayMs: backoff(attempt, random) };
      return { action: 'report-failed', error: outcome.error };
  }
}

/**
 * Exponential with jitter, in whole milliseconds: a fractional delay is sent as fractional
 * nanoseconds, which the server ignores.
 */
export function backoff(attempt: number, random: () => number = Math.random): number {
  return Math.round(Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1)) * (0.5 + random() / 2));
}
