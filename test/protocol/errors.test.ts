import { describe, expect, it } from 'vitest';
import { ERROR_TABLE, ErrorCode, ExitCode, exitCodeForError, httpStatusOf, isRetryable } from '../../protocol/index.ts';

// Written out by hand on purpose: a change to any answer, or a new code, must change this list too.
const EXPECTED: Record<ErrorCode, [retryable: boolean, http: number, exit: number]> = {
  E_INVALID_REQUEST: [false, 400, ExitCode.INVALID],
  E_CONFLICT: [false, 409, ExitCode.CONFLICT],
  E_NOT_FOUND: [false, 404, ExitCode.NOT_FOUND],
  E_INVALID_JOB: [false, 500, ExitCode.FAILED],
  E_CONTEXT_MISSING: [false, 422, ExitCode.INVALID],
  E_CONTEXT_INVALID: [false, 422, ExitCode.FAILED],
  E_SECRET_MISSING: [false, 422, ExitCode.FAILED],
  E_BUILD_STEP_FAILED: [false, 422, ExitCode.FAILED],
  E_BUILD_FAILED: [false, 422, ExitCode.FAILED],
  E_PUSH_FAILED: [true, 502, ExitCode.FAILED],
  E_DIGEST_MISMATCH: [false, 502, ExitCode.FAILED],
  E_REGISTRY_UNAVAILABLE: [true, 503, ExitCode.FAILED],
  E_REGISTRY_AUTH: [false, 502, ExitCode.FAILED],
  E_WORKER_AS_ROOT: [false, 500, ExitCode.FAILED],
  E_STALE_ATTEMPT: [false, 409, ExitCode.CONFLICT],
  E_UNAVAILABLE: [true, 503, ExitCode.UNAVAILABLE],
  E_CANCELLED: [false, 409, ExitCode.CANCELLED],
  E_TIMEOUT: [false, 422, ExitCode.FAILED],
  E_DEAD_LETTER: [false, 500, ExitCode.FAILED],
  E_BASE_UNSIGNED: [false, 422, ExitCode.FAILED],
  E_GATE_BLOCKED: [false, 422, ExitCode.FAILED],
  E_SCAN_UNAVAILABLE: [false, 503, ExitCode.UNAVAILABLE],
  E_UNAUTHENTICATED: [false, 401, ExitCode.UNAUTHENTICATED],
  E_FORBIDDEN: [false, 403, ExitCode.FORBIDDEN],
  E_RESOURCE_LIMIT: [false, 422, ExitCode.FAILED],
  E_DOCKERFILE_INVALID: [false, 422, ExitCode.FAILED],
  E_COPY_SOURCE_MISSING: [false, 422, ExitCode.FAILED],
  E_TARGET_NOT_FOUND: [false, 422, ExitCode.FAILED],
  E_BASE_NOT_FOUND: [false, 422, ExitCode.FAILED],
  E_BASE_UNAUTHORIZED: [false, 422, ExitCode.FAILED],
  E_BASE_NOT_ALLOWED: [false, 422, ExitCode.FAILED],
  E_ATTESTATION_INVALID: [false, 422, ExitCode.FAILED],
  E_INTERNAL: [true, 500, ExitCode.FAILED],
};

describe('the error table', () => {
  it('answers retry, HTTP status and exit code for every error code', () => {
    expect(Object.keys(ERROR_TABLE).sort()).toEqual(Object.values(ErrorCode).sort());
    for (const code of Object.values(ErrorCode)) {
      expect([isRetryable(code), httpStatusOf(code), exitCodeForError(code)], code).toEqual(EXPECTED[code]);
    }
  });

  it('retries only infrastructure faults, never what the request caused', () => {
    const retryable = Object.values(ErrorCode).filter(isRetryable).sort();
    expect(retryable).toEqual(['E_INTERNAL', 'E_PUSH_FAILED', 'E_REGISTRY_UNAVAILABLE', 'E_UNAVAILABLE']);
  });

  it('gives every client error a 4xx and every fault a 5xx status', () => {
    for (const code of Object.values(ErrorCode)) {
      const status = httpStatusOf(code);
      expect(status >= 400 && status < 600, code).toBe(true);
      if (isRetryable(code)) expect(status, code).toBeGreaterThanOrEqual(500);
    }
  });
});
