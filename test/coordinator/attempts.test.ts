import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { claimState, holdsClaim, isCurrentAttempt } from '../../coordinator/attempts.ts';
import { BuildRecord, ErrorCode, FleetError, canTransition, isRetryable, type BuildState, type ClaimRequest, type Phase } from '../../protocol/index.ts';

const NOW = '2030-01-02T03:04:05.000Z';
const EARLIER = '2030-01-02T03:00:00.000Z';
const DIGEST = `sha256:${'a'.repeat(64)}`;
const FAILURE = { code: ErrorCode.E_BUILD_STEP_FAILED, message: 'RUN exited 1' };

/** One representative stored state per phase; building phases are at attempt 2. */
const STATES: Record<Phase, BuildState> = {
  queued: { phase: 'queued' },
  running: { phase: 'running', attempt: 2, workerId: 'w-old', startedAt: EARLIER },
  verifying: { phase: 'verifying', attempt: 2, digest: DIGEST, quarantine: 'quarantine/app@x', startedAt: EARLIER },
  pushed: { phase: 'pushed', attempt: 2, digest: DIGEST, references: ['registry/app:1'], finishedAt: EARLIER },
  failed: { phase: 'failed', attempt: 2, error: FAILURE, finishedAt: EARLIER },
  cancelled: { phase: 'cancelled', attempt: 2, finishedAt: EARLIER },
  expired: { phase: 'expired', queueTtlSeconds: 60, finishedAt: EARLIER },
};
const PHASES = Object.keys(STATES) as Phase[];

function record(state: BuildState): BuildRecord {
  return BuildRecord.parse({
    id: 'b-1',
    requestHash: 'h',
    request: { id: 'b-1', context: { digest: DIGEST }, image: { repository: 'apps/app', tags: ['1'] } },
    createdAt: EARLIER,
    updatedAt: EARLIER,
    state,
  });
}

function claim(attempt: number, workerId = 'w-new'): ClaimRequest {
  return { buildId: 'b-1', attempt, workerId };
}

/** Runs `fn` and returns the FleetError it throws (fails the test if it returns or throws anything else). */
function refusal(fn: () => unknown): FleetError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FleetError);
    return e as FleetError;
  }
  throw new Error('expected the claim to be refused');
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] });
  vi.setSystemTime(new Date(NOW));
});
afterEach(() => {
  vi.useRealTimers();
});

describe('claimState: which claims start a build', () => {
  it.each([1, 2, 7])('a queued build is started by a claim of any attempt (%i), by the claiming worker, now', (attempt) => {
    expect(claimState(record(STATES.queued), claim(attempt))).toEqual({ phase: 'running', attempt, workerId: 'w-new', startedAt: NOW });
  });

  it('a running build whose attempt is older than the claim moves to the newer attempt and worker (presumed-lost redelivery)', () => {
    expect(claimState(record(STATES.running), claim(3))).toEqual({ phase: 'running', attempt: 3, workerId: 'w-new', startedAt: NOW });
  });

  it('a running build refuses a claim of its own attempt with E_STALE_ATTEMPT (a duplicate delivery never restarts it)', () => {
    expect(refusal(() => claimState(record(STATES.running), claim(2))).code).toBe(ErrorCode.E_STALE_ATTEMPT);
  });

  it('the claim records the job message it was made for', () => {
    expect(claimState(record(STATES.queued), { ...claim(1), jobSeq: 41 })).toEqual({ phase: 'running', attempt: 1, workerId: 'w-new', startedAt: NOW, jobSeq: 41 });
  });

  it('a redelivery of the message the running attempt claimed, counted no higher (a restarted server lost the count), is handed back with a retryable E_UNAVAILABLE, never dropped', () => {
    const running = record({ ...STATES.running, jobSeq: 41 } as BuildState);
    for (const attempt of [1, 2]) {
      const e = refusal(() => claimState(running, { ...claim(attempt), jobSeq: 41 }));
      expect(e.code).toBe(ErrorCode.E_UNAVAILABLE);
      expect(isRetryable(e.code)).toBe(true);
    }
    // counted past the running attempt, it takes over as any redelivery does
    expect(claimState(running, { ...claim(3), jobSeq: 41 })).toMatchObject({ phase: 'running', attempt: 3, jobSeq: 41 });
    // another message of the same build (a second enqueue) is still dropped
    expect(refusal(() => claimState(running, { ...claim(1), jobSeq: 42 })).code).toBe(ErrorCode.E_STALE_ATTEMPT);
  });

  it('a running build refuses a claim of an older attempt with E_STALE_ATTEMPT (a presumed-dead worker is fenced out)', () => {
    const e = refusal(() => claimState(record(STATES.running), claim(1)));
    expect(e.code).toBe(ErrorCode.E_STALE_ATTEMPT);
    expect(e.message).toContain('attempt 2');
  });

  it.each(['verifying', 'pushed', 'failed', 'cancelled', 'expired'] as const)(
    'a %s build refuses every claim, even of a newer attempt, with E_STALE_ATTEMPT',
    (phase) => {
      for (const attempt of [1, 2, 3, 100]) {
        const e = refusal(() => claimState(record(STATES[phase]), claim(attempt)));
        expect(e.code).toBe(ErrorCode.E_STALE_ATTEMPT);
        expect(e.message).toContain(phase);
      }
    },
  );

  it('a queue-expired verdict wins over the claim: the build becomes that expired state, not running', () => {
    const expired: BuildState = { phase: 'expired', queueTtlSeconds: 60, finishedAt: NOW };
    expect(claimState(record(STATES.queued), claim(1), expired)).toBe(expired);
  });

  it('every state a claim produces is a legal transition from the stored phase (the store would accept it)', () => {
    for (const phase of PHASES) {
      for (const attempt of [1, 2, 3]) {
        let next: BuildState;
        try {
          next = claimState(record(STATES[phase]), claim(attempt));
        } catch {
          continue;
        }
        expect(canTransition(phase, next.phase), `${phase} -> ${next.phase}`).toBe(true);
      }
    }
  });

  it('exactly queued and running accept some claim; every other phase refuses all', () => {
    const accepting = PHASES.filter((phase) =>
      [1, 2, 3].some((attempt) => {
        try {
          claimState(record(STATES[phase]), claim(attempt));
          return true;
        } catch {
          return false;
        }
      }),
    );
    expect(accepting.sort()).toEqual(['queued', 'running']);
  });
});

describe('isCurrentAttempt: which reports may still change a build', () => {
  it.each(['running', 'verifying'] as const)('a %s build accepts reports of its own attempt only', (phase) => {
    expect(isCurrentAttempt(record(STATES[phase]), 2)).toBe(true);
    expect(isCurrentAttempt(record(STATES[phase]), 1)).toBe(false);
    expect(isCurrentAttempt(record(STATES[phase]), 3)).toBe(false);
  });

  it('a queued build accepts no report: nothing holds a claim on it', () => {
    for (const attempt of [0, 1, 2, 9]) expect(isCurrentAttempt(record(STATES.queued), attempt)).toBe(false);
    for (const attempt of [0, 1, 2, 9]) expect(holdsClaim(record(STATES.queued), attempt, 'w-old')).toBe(false);
  });

  it('a running build accepts reports only from the worker holding its claim', () => {
    expect(holdsClaim(record(STATES.running), 2, 'w-old')).toBe(true);
    expect(holdsClaim(record(STATES.running), 2, 'impostor')).toBe(false);
    expect(holdsClaim(record(STATES.running), 3, 'w-old')).toBe(false);
  });

  it('a verifying build accepts the redelivered report of the worker that started verification', () => {
    const verifying = record({ ...STATES.verifying, workerId: 'w-old' } as BuildState);
    expect(holdsClaim(verifying, 2, 'w-old')).toBe(true);
    expect(holdsClaim(verifying, 2, 'impostor')).toBe(false);
  });

  it.each(['pushed', 'failed', 'cancelled', 'expired'] as const)('a %s build accepts no report, not even of its own attempt', (phase) => {
    for (const attempt of [0, 1, 2, 3]) expect(isCurrentAttempt(record(STATES[phase]), attempt)).toBe(false);
  });
});
