import { z } from 'zod';

/** Stable error codes. The CLI, the HTTP API and events carry them to the user unchanged. */
export const ErrorCode = {
  E_INVALID_REQUEST: 'E_INVALID_REQUEST',
  E_CONFLICT: 'E_CONFLICT',
  E_NOT_FOUND: 'E_NOT_FOUND',
  E_INVALID_JOB: 'E_INVALID_JOB',
  E_CONTEXT_MISSING: 'E_CONTEXT_MISSING',
  E_CONTEXT_INVALID: 'E_CONTEXT_INVALID',
  E_SECRET_MISSING: 'E_SECRET_MISSING',
  E_BUILD_STEP_FAILED: 'E_BUILD_STEP_FAILED',
  E_BUILD_FAILED: 'E_BUILD_FAILED',
  E_PUSH_FAILED: 'E_PUSH_FAILED',
  E_DIGEST_MISMATCH: 'E_DIGEST_MISMATCH',
  E_REGISTRY_UNAVAILABLE: 'E_REGISTRY_UNAVAILABLE',
  /** the registry refused the platform's credentials (or asked for some it has not got) */
  E_REGISTRY_AUTH: 'E_REGISTRY_AUTH',
  E_WORKER_AS_ROOT: 'E_WORKER_AS_ROOT',
  E_STALE_ATTEMPT: 'E_STALE_ATTEMPT',
  E_UNAVAILABLE: 'E_UNAVAILABLE',
  E_CANCELLED: 'E_CANCELLED',
  E_TIMEOUT: 'E_TIMEOUT',
  E_DEAD_LETTER: 'E_DEAD_LETTER',
  /** an official base the build uses has no valid platform signature */
  E_BASE_UNSIGNED: 'E_BASE_UNSIGNED',
  /** a blocking gate refused the image; it stays in quarantine */
  E_GATE_BLOCKED: 'E_GATE_BLOCKED',
  E_INTERNAL: 'E_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The one place that decides whether a failure is worth another attempt. Infrastructure faults
 * retry; anything the request's author caused (a failing step, a bad context) never does.
 */
const RETRYABLE: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.E_PUSH_FAILED,
  ErrorCode.E_REGISTRY_UNAVAILABLE,
  ErrorCode.E_UNAVAILABLE,
  ErrorCode.E_INTERNAL,
]);

export function isRetryable(code: ErrorCode): boolean {
  return RETRYABLE.has(code);
}

export const Issue = z.object({ path: z.string(), message: z.string() });
export type Issue = z.infer<typeof Issue>;

/** Extra facts a failure carries: which step, what exit code, the last lines of the log. */
export const ErrorDetails = z.object({
  issues: z.array(Issue).optional(),
  step: z.string().optional(),
  exitCode: z.number().int().optional(),
  logTail: z.array(z.string()).optional(),
  /** for E_GATE_BLOCKED: each gate that blocked, with its code and reason */
  gates: z.array(z.object({ gate: z.string(), code: z.string(), reason: z.string() })).optional(),
});
export type ErrorDetails = z.infer<typeof ErrorDetails>;

export const ErrorBody = z.object({
  code: z.enum(ErrorCode),
  message: z.string(),
  details: ErrorDetails.optional(),
});
export type ErrorBody = z.infer<typeof ErrorBody>;

export class FleetError extends Error {
  override readonly name = 'FleetError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetails,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }

  toBody(): ErrorBody {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  static fromBody(body: ErrorBody): FleetError {
    return new FleetError(body.code, body.message, body.details);
  }
}

export function isFleetError(e: unknown, code?: ErrorCode): e is FleetError {
  return e instanceof FleetError && (code === undefined || e.code === code);
}

/** Wraps anything thrown into a FleetError, keeping typed ones as they are. */
export function toFleetError(e: unknown, fallback: ErrorCode = ErrorCode.E_INTERNAL): FleetError {
  if (isFleetError(e)) return e;
  const message = e instanceof Error ? e.message : String(e);
  return new FleetError(fallback, message, undefined, { cause: e });
}
