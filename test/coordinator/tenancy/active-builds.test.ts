import { describe, expect, it } from 'vitest';
import { BuildRecord, type BuildState } from '../../../protocol/index.ts';
import { ActiveBuilds } from '../../../coordinator/tenancy/active-builds.ts';

const at = '2026-11-29T00:00:00.000Z';
const record = (id: string, tenant: string, state: BuildState) =>
  BuildRecord.parse({ id, requestHash: 'h', tenant, request: { id, context: { digest: `sha256:${'a'.repeat(64)}` }, image: { repository: 'app/x', tags: ['1'] } }, createdAt: at, updatedAt: at, state });

describe('active builds per tenant', () => {
  it('counts queued, running and verifying builds, and forgets ended ones', () => {
    const active = new ActiveBuilds();
    active.apply(record('a', 'payments', { phase: 'queued' }));
    active.apply(record('b', 'payments', { phase: 'running', attempt: 1, workerId: 'w', startedAt: at }));
    active.apply(record('c', 'search', { phase: 'queued' }));
    expect([active.count('payments'), active.count('search'), active.count('nobody')]).toEqual([2, 1, 0]);
    active.apply(record('a', 'payments', { phase: 'cancelled', attempt: 0, finishedAt: at }));
    active.apply(record('b', 'payments', { phase: 'failed', attempt: 1, error: { code: 'E_INTERNAL', message: 'x' }, finishedAt: at }));
    expect(active.count('payments')).toBe(0);
    // the same build seen twice counts once
    active.apply(record('c', 'search', { phase: 'queued' }));
    expect(active.count('search')).toBe(1);
  });
});
