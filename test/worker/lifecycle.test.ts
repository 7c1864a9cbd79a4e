import { describe, expect, it } from 'vitest';
import { WorkerLifecycle, canMove } from '../../worker/lifecycle.ts';

describe('worker lifecycle', () => {
  it('goes starting → idle → building → idle and reports each state', () => {
    const l = new WorkerLifecycle();
    const seen: string[] = [];
    l.onChange((s) => seen.push(s.phase));
    l.ready();
    l.buildStarted('b1');
    expect(l.state).toEqual({ phase: 'building', buildId: 'b1' });
    l.buildEnded();
    expect(seen).toEqual(['idle', 'building', 'idle']);
  });

  it('stops pulling when draining, keeps the running build, and stays draining when it ends', () => {
    const l = new WorkerLifecycle();
    l.ready();
    l.buildStarted('b1');
    l.drain();
    expect(l.pulling.aborted).toBe(true);
    expect(l.building.aborted).toBe(false);
    expect(l.state).toEqual({ phase: 'draining', buildId: 'b1' });
    l.buildEnded();
    expect(l.state).toEqual({ phase: 'draining' });
    l.stopped();
    expect(l.state.phase).toBe('stopped');
  });

  it('hands the build back only when the grace runs out', () => {
    const l = new WorkerLifecycle();
    l.ready();
    l.drain();
    expect(l.handedBack).toBe(false);
    l.handOver();
    expect(l.handedBack).toBe(true);
    expect(l.building.aborted).toBe(true);
  });

  it('refuses illegal moves and never leaves a final state', () => {
    const l = new WorkerLifecycle();
    expect(() => l.buildStarted('b1')).toThrow(/starting to building/);
    l.failed('boom');
    l.stopped();
    l.drain();
    expect(l.state).toEqual({ phase: 'failed', reason: 'boom' });
    expect(canMove('stopped', 'idle')).toBe(false);
    expect(canMove('building', 'building')).toBe(false);
  });
});
