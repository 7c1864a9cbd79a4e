import { describe, expect, it } from 'vitest';
import { ratioAgainst, renderTable, type AllResults } from '../../bench/all.ts';

const results = (commit: string, what: string, value: number): AllResults => ({
  date: '2026-12-01T00:00:00.000Z',
  commit,
  machine: { nproc: 2, load1: 1, load5: 1, load15: 1 },
  durations: {},
  rows: [{ what, measured: `${value}x`, target: '<= 0.25x', pass: value <= 0.25, value, unit: 'x', better: 'lower' }],
});

describe('the one table', () => {
  it('prints a third decimal only where two would round a ratio onto its target and hide a miss', () => {
    expect(ratioAgainst(0.2512, 0.25)).toBe('0.251');
    expect(ratioAgainst(1.0549, 1.05)).toBe('1.055');
    expect(ratioAgainst(0.25, 0.25)).toBe('0.25');
    expect(ratioAgainst(0.1834, 0.25)).toBe('0.18');
  });

  it('compares a figure with the last run even when that run took another number of rounds', () => {
    const before = results('aaaaaaa', 'warm rebuild on a fresh worker / cold, buildah (Java multi-stage, median of 3)', 0.29);
    const now = results('bbbbbbb', 'warm rebuild on a fresh worker / cold, buildah (Java multi-stage, median of 5)', 0.25);
    expect(renderTable(now, { file: 'before.json', results: before })).toContain('| -14% (0.29 → 0.25 x) |');
  });
});
