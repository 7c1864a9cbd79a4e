import { ErrorCode, FleetError, type BuildRecord, type BuildState, type ClaimRequest } from '../protocol/index.ts';

/**
 * A worker claims delivery `attempt` of a job. A queued build starts; a running build whose
 * current attempt is older was presumed lost and moves to the new attempt; anything else is
 * refused, and the worker drops the delivery — except a redelivery of the very message the
 * current attempt claimed with a delivery count not past it.
 */
export function claimState(record: BuildRecord, claim: ClaimRequest, expired: BuildState | null = null): BuildState {
  const s = record.state;
  // Past its queue TTL: the claim moves it to `expired` instead, and the worker is refused.
  if (expired !== null) return expired;
  const running: BuildState = {
    phase: 'running',
    attempt: claim.attempt,
    workerId: claim.workerId,
    startedAt: new Date().toISOString(),
    ...(claim.jobSeq === undefined ? {} : { jobSeq: claim.jobSeq }),
  };
  if (s.phase === 'queued') return running;
  if (s.phase === 'running' && claim.attempt > s.attempt) return running;
  if (s.phase === 'running' && claim.jobSeq !== undefined && claim.jobSeq === s.jobSeq) {
    // JetStream redelivers a message only when its holder went quiet; the count is low because a
    // nats-server killed and restarted lost the consumer's last deliveries (it keeps the stream).
    // Dropped, this delivery was the build's last: with the holder dead, the build would stay
    // running for ever. Handed back instead, it comes again counted higher and takes over.
    throw new FleetError(ErrorCode.E_UNAVAILABLE, `build ${record.id} is at attempt ${s.attempt} on this job message, redelivered counted ${claim.attempt}: handed back until its count passes ${s.attempt}`);
  }
  if (s.phase === 'running') {
    throw new FleetError(ErrorCode.E_STALE_ATTEMPT, `build ${record.id} is already at attempt ${s.attempt}`);
  }
  throw new FleetError(ErrorCode.E_STALE_ATTEMPT, `build ${record.id} is past building (${s.phase})`);
}

/** True when an outcome of `attempt` may still change the build (fencing by attempt). */
export function isCurrentAttempt(record: BuildRecord, attempt: number): boolean {
  const s = record.state;
  return (s.phase === 'running' || s.phase === 'verifying') && s.attempt === attempt;
}

/**
 * True when a worker's report may change the build: it must come from the worker holding the
 * current claim, for the current attempt. Anything else (another worker of the pool, an older
 * attempt, a build that is not running) is discarded.
 */
export function holdsClaim(record: BuildRecord, attempt: number, workerId: string): boolean {
  const s = record.state;
  if (s.phase === 'running') return s.attempt === attempt && s.workerId === workerId;
  // Records from before verifying kept the worker have no workerId: attempt fencing only.
  if (s.phase === 'verifying') return s.attempt === attempt && (s.workerId === undefined || s.workerId === workerId);
  return false;
}
