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
  /** the vulnerabilities gate got no usable scan (no report in time, scanner error, missing or stale DB): not promoted */
  E_SCAN_UNAVAILABLE: 'E_SCAN_UNAVAILABLE',
  /** no credentials, or ones that are malformed, unknown, revoked or expired */
  E_UNAUTHENTICATED: 'E_UNAUTHENTICATED',
  /** the caller is known but may not do this (or no rule maps it to a tenant) */
  E_FORBIDDEN: 'E_FORBIDDEN',
  /** the build went over one of its pool's caps (memory, processes, scratch storage, log size) */
  E_RESOURCE_LIMIT: 'E_RESOURCE_LIMIT',
  /** the Dockerfile does not parse: unknown instruction, bad syntax, a frontend the platform does not allow */
  E_DOCKERFILE_INVALID: 'E_DOCKERFILE_INVALID',
  /** a COPY or ADD names a source the context (or the stage it copies from) does not have */
  E_COPY_SOURCE_MISSING: 'E_COPY_SOURCE_MISSING',
  /** the requested --target, or a stage a COPY --from names, is not in the Dockerfile */
  E_TARGET_NOT_FOUND: 'E_TARGET_NOT_FOUND',
  /** a FROM names an image that does not exist: no such manifest, or a registry host that does not resolve */
  E_BASE_NOT_FOUND: 'E_BASE_NOT_FOUND',
  /** a FROM names an image its registry will not serve to the platform's credentials (401/403) */
  E_BASE_UNAUTHORIZED: 'E_BASE_UNAUTHORIZED',
  /** a FROM names a registry or repository the platform policy does not allow for this tenant */
  E_BASE_NOT_ALLOWED: 'E_BASE_NOT_ALLOWED',
  /** an image's provenance attestation does not verify: tampered, signed by another key, or not about this image */
  E_ATTESTATION_INVALID: 'E_ATTESTATION_INVALID',
  E_INTERNAL: 'E_INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** `fleet` exits with these; scripts and release systems branch on them. */
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
  /** missing, invalid, revoked or expired credentials */
  UNAUTHENTICATED: 9,
  /** credentials accepted, the action refused */
  FORBIDDEN: 10,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorAnswers {
  /** another attempt may succeed: infrastructure faults, never what the request's author caused */
  readonly retryable: boolean;
  /** the HTTP API's status for this error */
  readonly httpStatus: number;
  /** what `fleet` exits with when a command ends with this error */
  readonly exitCode: ExitCode;
}

/**
 * The one table every decision about an error derives from: retry (worker and coordinator),
 * HTTP status and CLI exit code. `satisfies Record<ErrorCode, …>` makes a new code a compile
 * error until each answer is given.
 */
export const ERROR_TABLE = {
  E_INVALID_REQUEST: { retryable: false, httpStatus: 400, exitCode: ExitCode.INVALID },
  E_CONFLICT: { retryable: false, httpStatus: 409, exitCode: ExitCode.CONFLICT },
  E_NOT_FOUND: { retryable: false, httpStatus: 404, exitCode: ExitCode.NOT_FOUND },
  E_INVALID_JOB: { retryable: false, httpStatus: 500, exitCode: ExitCode.FAILED },
  E_CONTEXT_MISSING: { retryable: false, httpStatus: 422, exitCode: ExitCode.INVALID },
  E_CONTEXT_INVALID: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_SECRET_MISSING: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_BUILD_STEP_FAILED: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_BUILD_FAILED: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_PUSH_FAILED: { retryable: true, httpStatus: 502, exitCode: ExitCode.FAILED },
  E_DIGEST_MISMATCH: { retryable: false, httpStatus: 502, exitCode: ExitCode.FAILED },
  E_REGISTRY_UNAVAILABLE: { retryable: true, httpStatus: 503, exitCode: ExitCode.FAILED },
  E_REGISTRY_AUTH: { retryable: false, httpStatus: 502, exitCode: ExitCode.FAILED },
  E_WORKER_AS_ROOT: { retryable: false, httpStatus: 500, exitCode: ExitCode.FAILED },
  E_STALE_ATTEMPT: { retryable: false, httpStatus: 409, exitCode: ExitCode.CONFLICT },
  E_UNAVAILABLE: { retryable: true, httpStatus: 503, exitCode: ExitCode.UNAVAILABLE },
  E_CANCELLED: { retryable: false, httpStatus: 409, exitCode: ExitCode.CANCELLED },
  E_TIMEOUT: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_DEAD_LETTER: { retryable: false, httpStatus: 500, exitCode: ExitCode.FAILED },
  E_BASE_UNSIGNED: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_GATE_BLOCKED: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  // Not retried by the fleet: a DB that is missing or stale stays so until someone acts; the
  // build is resubmitted (or `fleet dlq retry`) once the scanners are healthy.
  E_SCAN_UNAVAILABLE: { retryable: false, httpStatus: 503, exitCode: ExitCode.UNAVAILABLE },
  E_UNAUTHENTICATED: { retryable: false, httpStatus: 401, exitCode: ExitCode.UNAUTHENTICATED },
  E_FORBIDDEN: { retryable: false, httpStatus: 403, exitCode: ExitCode.FORBIDDEN },
  E_RESOURCE_LIMIT: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  // The author's mistakes (or a registry's refusal): another attempt gives the same answer, so
  // none is retried; an unreachable or failing registry stays E_REGISTRY_UNAVAILABLE (retried).
  E_DOCKERFILE_INVALID: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_COPY_SOURCE_MISSING: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_TARGET_NOT_FOUND: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_BASE_NOT_FOUND: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_BASE_UNAUTHORIZED: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_BASE_NOT_ALLOWED: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  // A bad signature stays bad: never retried, and the image is not to be trusted.
  E_ATTESTATION_INVALID: { retryable: false, httpStatus: 422, exitCode: ExitCode.FAILED },
  E_INTERNAL: { retryable: true, httpStatus: 500, exitCode: ExitCode.FAILED },
} as const satisfies Record<ErrorCode, ErrorAnswers>;

export function isRetryable(code: ErrorCode): boolean {
  return ERROR_TABLE[code].retryable;
}

export function httpStatusOf(code: ErrorCode): number {
  return ERROR_TABLE[code].httpStatus;
}

export function exitCodeForError(code: ErrorCode): ExitCode {
  return ERROR_TABLE[code].exitCode;
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
