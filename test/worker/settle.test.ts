import { describe, expect, it } from 'vitest';
import { ErrorCode, FleetError, isRetryable } from '../../protocol/index.ts';
import { RETRY_MAX_MS, backoff, settle } from '../../worker/settle.ts';

const result = { digest: `sha256:${'a'.repeat(64)}`, references: ['r/x:1'], bases: [] };
const fail = (code: ErrorCode) => ({ type: 'failed' as const, error: new FleetError(code, 'boom') });

describe('settle', () => {
  it('reports a pushed build, whatever the delivery', () => {
    expect(settle({ type: 'pushed', result }, 1, 5)).toEqual({ action: 'report-pushed', result });
    expect(settle({ type: 'pushed', result }, 5, 5)).toEqual({ action: 'report-pushed', result });
  });

  it('acks a cancelled build and hands back a build the worker gave up on while stopping', () => {
    expect(settle({ type: 'cancelled' }, 2, 5)).toEqual({ action: 'ack' });
    expect(settle({ type: 'handed-back' }, 5, 5)).toEqual({ action: 'nak' });
  });

  it('waits for an unreachable coordinator but drops a delivery the coordinator refused', () => {
    expect(settle({ type: 'claim-refused', error: new FleetError(ErrorCode.E_UNAVAILABLE, 'x') }, 1, 5)).toMatchObject({ action: 'nak' });
    expect(settle({ type: 'claim-refused', error: new FleetError(ErrorCode.E_STALE_ATTEMPT, 'x') }, 1, 5)).toEqual({ action: 'term', reason: 'E_STALE_ATTEMPT' });
    // a refusal of the worker, not of the job: the job must survive for a legitimate worker
    expect(settle({ type: 'claim-refused', error: new FleetError(ErrorCode.E_FORBIDDEN, 'x') }, 1, 5)).toMatchObject({ action: 'nak' });
  });

  it('hands back a delivery whose set-up failed', () => {
    expect(settle({ type: 'not-started', error: new FleetError(ErrorCode.E_UNAVAILABLE, 'x') }, 1, 5)).toMatchObject({ action: 'nak' });
  });

  it.each(Object.values(ErrorCode))('settles a failure with %s by the error table, and reports it on the last delivery', (code) => {
    const early = settle(fail(code), 1, 5, () => 0.5);
    if (isRetryable(code)) expect(early).toEqual({ action: 'nak', delayMs: backoff(1, () => 0.5) });
    else expect(early).toMatchObject({ action: 'report-failed', error: { code } });
    expect(settle(fail(code), 5, 5)).toMatchObject({ action: 'report-failed', error: { code } });
  });

  it('backs off exponentially with jitter, in whole milliseconds, up to the cap', () => {
    expect(backoff(1, () => 1)).toBe(1_000);
    expect(backoff(3, () => 1)).toBe(4_000);
    expect(backoff(3, () => 0)).toBe(2_000);
    expect(backoff(40, () => 1)).toBe(RETRY_MAX_MS);
    expect(Number.isInteger(backoff(2, () => 0.123456))).toBe(true);
  });
});
