import { describe, expect, it } from 'vitest';
import { BuildState, canTransition, isTerminal, type Phase } from '../../protocol/index.ts';

/**
 * The legal moves of a build's state union, written out independently of protocol/state.ts.
 * BuildStore.transition refuses (E_CONFLICT) any change this table does not allow, before it
 * ever compare-and-swaps the record, so this is the whole rule; the CAS itself is integration.
 */
const LEGAL: Record<Phase, readonly Phase[]> = {
  queued: ['running', 'failed', 'cancelled', 'expired'],
  running: ['running', 'verifying', 'failed', 'cancelled'],
  verifying: ['pushed', 'failed', 'cancelled'],
  pushed: [],
  failed: [],
  cancelled: [],
  expired: [],
};

/** Every phase the schema knows, read from the union itself so a new phase cannot be missed. */
const SCHEMA_PHASES: Phase[] = BuildState.options.map((o) => o.shape.phase.value);
const PHASES = Object.keys(LEGAL) as Phase[];
const PAIRS = PHASES.flatMap((from) => PHASES.map((to) => ({ from, to, legal: LEGAL[from].includes(to) })));

describe('build state transitions', () => {
  it('the table covers every phase of the BuildState union, and no other', () => {
    expect([...PHASES].sort()).toEqual([...SCHEMA_PHASES].sort());
  });

  it('checks all phase pairs (7 × 7)', () => {
    expect(PAIRS).toHaveLength(SCHEMA_PHASES.length ** 2);
  });

  it.each(PAIRS.filter((p) => p.legal))('allows $from -> $to', ({ from, to }) => {
    expect(canTransition(from, to)).toBe(true);
  });

  it.each(PAIRS.filter((p) => !p.legal))('refuses $from -> $to', ({ from, to }) => {
    expect(canTransition(from, to)).toBe(false);
  });

  it('nothing ever goes back to queued (a build is queued only when created)', () => {
    expect(PHASES.filter((from) => canTransition(from, 'queued'))).toEqual([]);
  });

  it('only running may move to itself (a redelivered attempt takes over); no other phase repeats', () => {
    expect(PHASES.filter((p) => canTransition(p, p))).toEqual(['running']);
  });

  it('a build reaches pushed only through verifying (no image is promoted ungated)', () => {
    expect(PHASES.filter((from) => canTransition(from, 'pushed'))).toEqual(['verifying']);
  });

  it('a build expires only from queued (the queue clock stops once a worker starts it)', () => {
    expect(PHASES.filter((from) => canTransition(from, 'expired'))).toEqual(['queued']);
  });

  it('every non-terminal phase can be cancelled and can fail', () => {
    for (const from of PHASES.filter((p) => !isTerminal(p))) {
      expect(canTransition(from, 'cancelled'), from).toBe(true);
      expect(canTransition(from, 'failed'), from).toBe(true);
    }
  });

  it.each(PHASES)('%s is terminal exactly when it has no way out', (phase) => {
    expect(isTerminal(phase)).toBe(LEGAL[phase].length === 0);
  });
});
