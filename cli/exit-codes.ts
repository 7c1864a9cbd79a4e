import { ErrorCode, type Phase } from '../protocol/index.ts';

/** `fleet status` / `fleet logs -f` / `fleet submit --follow` exit with the build's outcome. */
export const ExitCode = {
  PUSHED: 0,
  FAILED: 1,
  /** bad usage or a request the coordinator rejected */
  INVALID: 2,
  CANCELLED: 3,
  EXPIRED: 4,
  /** `fleet status` of a build that has not ended yet */
  IN_PROGRESS: 5,
  /** NATS or the coordinator could not be reached */
  UNAVAILABLE: 6,
  NOT_FOUND: 7,
  /** a request id reused with a different body */
  CONFLICT: 8,
} as const;

export function exitCodeForPhase(phase: Phase): number {
  switch (phase) {
    case 'pushed':
      return ExitCode.PUSHED;
    case 'failed':
      return ExitCode.FAILED;
    case 'cancelled':
      return ExitCode.CANCELLED;
    case 'expired':
      return ExitCode.EXPIRED;
    case 'queued':
    case 'running':
    case 'verifying':
      return ExitCode.IN_PROGRESS;
  }
}

export function exitCodeForError(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.E_INVALID_REQUEST:
    case ErrorCode.E_CONTEXT_MISSING:
      return ExitCode.INVALID;
    case ErrorCode.E_NOT_FOUND:
      return ExitCode.NOT_FOUND;
    case ErrorCode.E_CONFLICT:
      return ExitCode.CONFLICT;
    case ErrorCode.E_UNAVAILABLE:
      return ExitCode.UNAVAILABLE;
    default:
      return ExitCode.FAILED;
  }
}
