import { FleetError, ErrorCode, type WorkerPhase } from '../protocol/index.ts';

/** The worker's one state; `fleet workers` shows it as announced. */
export type WorkerState =
  | { readonly phase: 'starting' }
  | { readonly phase: 'idle' }
  | { readonly phase: 'building'; readonly buildId: string }
  /** no more pulls; a build may still be finishing within the drain grace */
  | { readonly phase: 'draining'; readonly buildId?: string }
  | { readonly phase: 'stopped' }
  | { readonly phase: 'failed'; readonly reason: string };

const NEXT: Record<WorkerPhase, readonly WorkerPhase[]> = {
  starting: ['idle', 'draining', 'stopped', 'failed'],
  idle: ['building', 'draining', 'stopped', 'failed'],
  building: ['idle', 'draining', 'failed'],
  draining: ['draining', 'stopped', 'failed'],
  stopped: [],
  failed: [],
};

export function canMove(from: WorkerPhase, to: WorkerPhase): boolean {
  return NEXT[from].includes(to);
}

/**
 * Owns the worker's state and the two signals that follow from it: `pulling` ends when the
 * worker drains (or stops), `building` ends when the drain grace runs out, which hands the
 * running build back. Every change goes through `move`, so an illegal one is a bug caught here.
 */
export class WorkerLifecycle {
  private current: WorkerState = { phase: 'starting' };
  private readonly stopPulling = new AbortController();
  private readonly handBack = new AbortController();
  private readonly listeners: Array<(state: WorkerState) => void> = [];

  get state(): WorkerState {
    return this.current;
  }

  /** aborted once the worker must take no more jobs */
  get pulling(): AbortSignal {
    return this.stopPulling.signal;
  }

  /** aborted when the running build must be handed back (drain grace over) */
  get building(): AbortSignal {
    return this.handBack.signal;
  }

  get handedBack(): boolean {
    return this.handBack.signal.aborted;
  }

  onChange(listener: (state: WorkerState) => void): void {
    this.listeners.push(listener);
  }

  ready(): void {
    this.move({ phase: 'idle' });
  }

  buildStarted(buildId: string): void {
    // A job pulled just before a drain began still runs, within the grace.
    this.move(this.current.phase === 'draining' ? { phase: 'draining', buildId } : { phase: 'building', buildId });
  }

  buildEnded(): void {
    // A build that ends while draining leaves the worker draining, not idle.
    this.move(this.current.phase === 'draining' ? { phase: 'draining' } : { phase: 'idle' });
  }

  /** Phase one of a stop: no more pulls. Phase two (handOver) comes when the grace runs out. */
  drain(): void {
    if (this.current.phase === 'draining' || this.isOver()) return;
    this.move(this.current.phase === 'building' ? { phase: 'draining', buildId: this.current.buildId } : { phase: 'draining' });
    this.stopPulling.abort();
  }

  handOver(): void {
    this.handBack.abort();
  }

  stopped(): void {
    if (this.isOver()) return;
    this.stopPulling.abort();
    this.move({ phase: 'stopped' });
  }

  failed(reason: string): void {
    if (this.isOver()) return;
    this.stopPulling.abort();
    this.move({ phase: 'failed', reason });
  }

  private isOver(): boolean {
    return this.current.phase === 'stopped' || this.current.phase === 'failed';
  }

  private move(next: WorkerState): void {
    if (!canMove(this.current.phase, next.phase)) {
      throw new FleetError(ErrorCode.E_INTERNAL, `worker cannot go from ${this.current.phase} to ${next.phase}`);
    }
    this.current = next;
    for (const l of this.listeners) l(next);
  }
}
