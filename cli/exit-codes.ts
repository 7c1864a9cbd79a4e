import { ExitCode, type Phase } from '../protocol/index.ts';

/** `fleet status` / `fleet logs -f` / `fleet submit --follow` exit with the build's outcome. */
export function exitCodeForPhase(phase: Phase): ExitCode {
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
