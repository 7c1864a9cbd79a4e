import { describe, expect, it } from 'vitest';
import { canTransition, isRetryable, isTerminal, ErrorCode, type Phase } from '../../protocol/index.ts';

describe('build state machine', () => {
  it('allows exactly the documented transitions', () => {
    const phases: Phase[] = ['queued', 'running', 'verifying', 'pushed', 'failed', 'cancelled', 'expired'];
    const allowed = phases.flatMap((from) => phases.filter((to) => canTransition(from, to)).map((to) => `${from}->${to}`));
    expect(allowed.sort()).toEqual(
      [
        'queued->cancelled', 'queued->expired', 'queued->failed', 'queued->running',
        'running->cancelled', 'running->failed', 'running->running', 'running->verifying',
        'verifying->cancelled', 'verifying->failed', 'verifying->pushed',
      ].sort(),
    );
  });

  it('treats pushed and failed as terminal', () => {
    expect(isTerminal('pushed')).toBe(true);
    expect(isTerminal('failed')).toBe(true);
    expect(isTerminal('cancelled')).toBe(true);
    expect(isTerminal('expired')).toBe(true);
    expect(isTerminal('running')).toBe(false);
    expect(isTerminal('verifying')).toBe(false);
  });
});

describe('retry classification', () => {
  it('retries infrastructure faults', () => {
    for (const c of [ErrorCode.E_PUSH_FAILED, ErrorCode.E_REGISTRY_UNAVAILABLE, ErrorCode.E_UNAVAILABLE]) expect(isRetryable(c)).toBe(true);
  });
  it('never retries what the request author caused', () => {
    for (const c of [ErrorCode.E_BUILD_STEP_FAILED, ErrorCode.E_CONTEXT_INVALID, ErrorCode.E_INVALID_JOB, ErrorCode.E_INVALID_REQUEST, ErrorCode.E_DIGEST_MISMATCH]) {
      expect(isRetryable(c)).toBe(false);
    }
  });
});
