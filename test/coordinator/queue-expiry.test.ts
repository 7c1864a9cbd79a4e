import { describe, expect, it } from 'vitest';
import { expiredState, expiryDelayMs, queueDeadline, queueTtlSeconds, type QueueClockConfig } from '../../coordinator/queue-expiry.ts';
import { BuildRecord, ErrorCode, type BuildState, type Phase } from '../../protocol/index.ts';

const CREATED = '2030-01-02T03:00:00.000Z';
const T0 = Date.parse(CREATED);
const DIGEST = `sha256:${'b'.repeat(64)}`;
const CONFIG: QueueClockConfig = { defaultQueueTtlSeconds: 600 };

const NOT_QUEUED: Record<Exclude<Phase, 'queued'>, BuildState> = {
  running: { phase: 'running', attempt: 1, workerId: 'w', startedAt: CREATED },
  verifying: { phase: 'verifying', attempt: 1, digest: DIGEST, quarantine: 'q', startedAt: CREATED },
  pushed: { phase: 'pushed', attempt: 1, digest: DIGEST, references: ['r/app:1'], finishedAt: CREATED },
  failed: { phase: 'failed', attempt: 1, error: { code: ErrorCode.E_BUILD_STEP_FAILED, message: 'x' }, finishedAt: CREATED },
  cancelled: { phase: 'cancelled', attempt: 0, finishedAt: CREATED },
  expired: { phase: 'expired', queueTtlSeconds: 600, finishedAt: CREATED },
};

function record(opts: { state?: BuildState; queueTtlSeconds?: number } = {}): BuildRecord {
  return BuildRecord.parse({
    id: 'b-1',
    requestHash: 'h',
    request: {
      id: 'b-1',
      context: { digest: DIGEST },
      image: { repository: 'apps/app', tags: ['1'] },
      ...(opts.queueTtlSeconds === undefined ? {} : { queueTtlSeconds: opts.queueTtlSeconds }),
    },
    createdAt: CREATED,
    // The queue clock runs from acceptance, not from the last update.
    updatedAt: '2030-01-02T03:09:00.000Z',
    state: opts.state ?? { phase: 'queued' },
  });
}

describe('queue TTL', () => {
  it("uses the request's own queueTtlSeconds when it names one", () => {
    expect(queueTtlSeconds(record({ queueTtlSeconds: 30 }), CONFIG)).toBe(30);
  });

  it("falls back to the platform default when the request names none", () => {
    expect(queueTtlSeconds(record(), CONFIG)).toBe(600);
  });

  it('runs from createdAt (acceptance), not updatedAt: the deadline is createdAt + TTL', () => {
    expect(queueDeadline(record(), CONFIG)).toBe(T0 + 600_000);
    expect(queueDeadline(record({ queueTtlSeconds: 30 }), CONFIG)).toBe(T0 + 30_000);
  });
});

describe('expiredState: when a queued build expires', () => {
  it('a queued build one millisecond before its deadline does not expire', () => {
    expect(expiredState(record(), CONFIG, T0 + 600_000 - 1)).toBeNull();
  });

  it('a queued build expires exactly at its deadline', () => {
    expect(expiredState(record(), CONFIG, T0 + 600_000)).toEqual({ phase: 'expired', queueTtlSeconds: 600, finishedAt: '2030-01-02T03:10:00.000Z' });
  });

  it('a queued build long past its deadline expires, stamped with the time of the check and the TTL that ran out', () => {
    const now = T0 + 86_400_000;
    expect(expiredState(record({ queueTtlSeconds: 30 }), CONFIG, now)).toEqual({
      phase: 'expired',
      queueTtlSeconds: 30,
      finishedAt: new Date(now).toISOString(),
    });
  });

  it("a request's short TTL expires it before the platform default would", () => {
    expect(expiredState(record({ queueTtlSeconds: 30 }), CONFIG, T0 + 30_000)?.phase).toBe('expired');
    expect(expiredState(record(), CONFIG, T0 + 30_000)).toBeNull();
  });

  it.each(Object.keys(NOT_QUEUED) as (keyof typeof NOT_QUEUED)[])('a %s build never expires, however late it is', (phase) => {
    expect(expiredState(record({ state: NOT_QUEUED[phase] }), CONFIG, T0 + 365 * 86_400_000)).toBeNull();
  });
});

describe('expiryDelayMs: when the expiry timer fires', () => {
  it('a freshly accepted build is due after its whole TTL', () => {
    expect(expiryDelayMs(record(), CONFIG, T0)).toBe(600_000);
  });

  it('counts down from acceptance: a build re-armed later waits only the rest of its TTL', () => {
    expect(expiryDelayMs(record({ queueTtlSeconds: 30 }), CONFIG, T0 + 20_000)).toBe(10_000);
  });

  it('a build already past its deadline (e.g. re-armed after a long coordinator outage) fires at once, never with a negative delay', () => {
    expect(expiryDelayMs(record(), CONFIG, T0 + 600_000)).toBe(0);
    expect(expiryDelayMs(record(), CONFIG, T0 + 10 * 600_000)).toBe(0);
  });

  it('the timer fires no earlier than the moment expiredState agrees the build has expired', () => {
    for (const now of [T0, T0 + 1, T0 + 599_999, T0 + 600_000, T0 + 700_000]) {
      const delay = expiryDelayMs(record(), CONFIG, now);
      expect(delay).not.toBeNull();
      expect(expiredState(record(), CONFIG, now + (delay ?? 0))?.phase).toBe('expired');
      if (delay !== null && delay > 0) expect(expiredState(record(), CONFIG, now + delay - 1)).toBeNull();
    }
  });

  it.each(Object.keys(NOT_QUEUED) as (keyof typeof NOT_QUEUED)[])('a %s build arms no timer', (phase) => {
    expect(expiryDelayMs(record({ state: NOT_QUEUED[phase] }), CONFIG, T0)).toBeNull();
  });
});
