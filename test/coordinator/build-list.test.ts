import { describe, expect, it } from 'vitest';
import { BuildList, BuildListQuery, queryOf } from '../../coordinator/build-list.ts';
import { decodeWith } from '../../protocol/index.ts';
import { buildRecord } from './build-records.ts';
import { PLATFORM_ADMIN } from '../../coordinator/tenancy/authorize.ts';

/** The console's list route: what each caller sees, and how the query string is read. */

const record = buildRecord;

const parse = (qs: string): BuildListQuery => decodeWith(BuildListQuery, Buffer.from(JSON.stringify(queryOf(new URLSearchParams(qs)))), 'query');
const alpha = { subject: 'a', tenant: 'alpha', role: 'reader' as const };

function list(): BuildList {
  const l = new BuildList();
  l.apply(record('a-1', 'alpha', 'app/alpha/web', '2026-11-29T10:00:00.000Z'));
  l.apply(record('a-2', 'alpha', 'app/alpha/api', '2026-11-29T11:00:00.000Z', { phase: 'running', attempt: 2, workerId: 'w1', startedAt: '2026-11-29T11:00:01.000Z' }));
  l.apply(record('b-1', 'beta', 'app/beta/web', '2026-11-29T12:00:00.000Z'));
  return l;
}

describe('BuildList', () => {
  it("answers only the caller's tenant, newest first; a platform admin sees all", () => {
    expect(list().query(alpha, parse('')).builds.map((b) => b.id)).toEqual(['a-2', 'a-1']);
    expect(list().query(PLATFORM_ADMIN, parse('')).builds.map((b) => b.id)).toEqual(['b-1', 'a-2', 'a-1']);
  });

  it('filters by state (repeated or comma-separated), repository or prefix, since and id', () => {
    const l = list();
    expect(l.query(alpha, parse('state=running')).builds.map((b) => b.id)).toEqual(['a-2']);
    expect(l.query(alpha, parse('state=running,queued')).total).toBe(2);
    expect(l.query(alpha, parse('state=running&state=queued')).total).toBe(2);
    expect(l.query(alpha, parse('repository=app/alpha/web')).builds.map((b) => b.id)).toEqual(['a-1']);
    expect(l.query(alpha, parse('repository=app/alpha/')).total).toBe(2);
    expect(l.query(alpha, parse('repository=app/alpha')).total).toBe(0);
    expect(l.query(alpha, parse('since=2026-11-29T10:30:00Z')).builds.map((b) => b.id)).toEqual(['a-2']);
    expect(l.query(alpha, parse('q=A-1')).builds.map((b) => b.id)).toEqual(['a-1']);
    expect(l.query(alpha, parse('limit=1'))).toMatchObject({ total: 2, builds: [{ id: 'a-2', attempt: 2, workerId: 'w1' }] });
  });

  it('keeps the worker of a build after it ends, and follows state changes', () => {
    const l = list();
    l.apply(record('a-2', 'alpha', 'app/alpha/api', '2026-11-29T11:00:00.000Z', { phase: 'failed', attempt: 2, error: { code: 'E_BUILD_STEP_FAILED', message: 'x' }, finishedAt: '2026-11-29T11:05:00.000Z' }));
    expect(l.query(alpha, parse('state=failed')).builds).toMatchObject([{ id: 'a-2', workerId: 'w1', error: 'E_BUILD_STEP_FAILED' }]);
    expect(l.tenantOf('a-2')).toBe('alpha');
  });

  it('refuses an unknown state, field or a bad limit as an invalid request', () => {
    for (const qs of ['state=nonsense', 'colour=red', 'limit=0', 'limit=501', 'since=yesterday']) {
      expect(() => parse(qs), qs).toThrow(/invalid/i);
    }
  });

  it("keeps the builder a worker announced on the builds it runs, and ignores an announcement that is not one", () => {
    const l = list();
    l.noteWorker({ workerId: 'w1', pool: 'default', builder: 'kaniko', version: '1', state: 'building', since: 'x', at: 'x' });
    l.noteWorker({ workerId: 'w2' });
    l.noteWorker('not an object');
    l.apply(record('a-3', 'alpha', 'app/alpha/api', '2026-11-29T12:00:00.000Z', { phase: 'running', attempt: 1, workerId: 'w1', startedAt: '2026-11-29T12:00:01.000Z' }));
    l.apply(record('a-4', 'alpha', 'app/alpha/api', '2026-11-29T12:30:00.000Z', { phase: 'running', attempt: 1, workerId: 'w2', startedAt: '2026-11-29T12:30:01.000Z' }));
    const builds = l.query(alpha, parse('')).builds;
    expect(builds.find((b) => b.id === 'a-3')?.builder).toBe('kaniko');
    expect(builds.find((b) => b.id === 'a-4')?.builder).toBeUndefined();
  });
});

describe('active builds per tenant (intake\'s maxActiveBuilds)', () => {
  const at = '2026-11-29T00:00:00.000Z';
  it('counts queued, running and verifying builds, and forgets ended ones', () => {
    const active = new BuildList();
    active.apply(record('a', 'payments', 'app/x', at));
    active.apply(record('b', 'payments', 'app/x', at, { phase: 'running', attempt: 1, workerId: 'w', startedAt: at }));
    active.apply(record('c', 'search', 'app/x', at));
    expect([active.activeCount('payments'), active.activeCount('search'), active.activeCount('nobody')]).toEqual([2, 1, 0]);
    active.apply(record('a', 'payments', 'app/x', at, { phase: 'cancelled', attempt: 0, finishedAt: at }));
    active.apply(record('b', 'payments', 'app/x', at, { phase: 'failed', attempt: 1, error: { code: 'E_INTERNAL', message: 'x' }, finishedAt: at }));
    expect(active.activeCount('payments')).toBe(0);
    // the same build seen twice counts once
    active.apply(record('c', 'search', 'app/x', at));
    expect(active.activeCount('search')).toBe(1);
  });
});
