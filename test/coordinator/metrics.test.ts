import { describe, expect, it } from 'vitest';
import type { BuildRecord, BuildState } from '../../protocol/index.ts';
import { createCoordinatorMetrics, observeTransition } from '../../coordinator/metrics.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const at = (s: number): string => new Date(Date.parse(T0) + s * 1000).toISOString();

function record(state: BuildState, updatedAt: string, pool = 'default'): BuildRecord {
  return {
    id: 'b1',
    requestHash: 'h',
    request: { pool } as BuildRecord['request'],
    tenant: 'platform' as BuildRecord['tenant'],
    createdAt: T0,
    updatedAt,
    state,
  };
}

const value = async (m: ReturnType<typeof createCoordinatorMetrics>, name: string): Promise<Array<{ labels: Record<string, unknown>; value: number; metricName?: string }>> => {
  const metric = m.registry.getSingleMetric(name);
  if (metric === undefined) throw new Error(`no metric ${name}`);
  return (await metric.get()).values as Array<{ labels: Record<string, unknown>; value: number; metricName?: string }>;
};

describe('coordinator metrics', () => {
  const running: BuildState = { phase: 'running', attempt: 1, workerId: 'w1', startedAt: at(30) };
  const verifying: BuildState = { phase: 'verifying', attempt: 1, workerId: 'w1', digest: `sha256:${'a'.repeat(64)}`, quarantine: 'q', startedAt: at(30) };

  it('observes queue wait, run time, gate latency and the outcome of one build', async () => {
    const m = createCoordinatorMetrics({ processMetrics: false });
    observeTransition(m, record({ phase: 'queued' }, T0, 'gpu'), record(running, at(30), 'gpu'), 'buildkit');
    observeTransition(m, record(running, at(30), 'gpu'), record(verifying, at(90), 'gpu'), 'buildkit');
    observeTransition(
      m,
      record(verifying, at(90), 'gpu'),
      record({ phase: 'pushed', attempt: 1, digest: `sha256:${'a'.repeat(64)}`, references: ['r:1'], finishedAt: at(92) }, at(92), 'gpu'),
      'buildkit',
    );
    const wait = await value(m, 'fleet_build_queue_wait_seconds');
    expect(wait.find((v) => v.metricName === 'fleet_build_queue_wait_seconds_sum')).toMatchObject({ labels: { pool: 'gpu', builder: 'buildkit' }, value: 30 });
    const run = await value(m, 'fleet_build_run_seconds');
    expect(run.find((v) => v.metricName === 'fleet_build_run_seconds_sum')).toMatchObject({ labels: { pool: 'gpu', builder: 'buildkit', outcome: 'built' }, value: 60 });
    const gates = await value(m, 'fleet_gates_seconds');
    expect(gates.find((v) => v.metricName === 'fleet_gates_seconds_sum')).toMatchObject({ labels: { pool: 'gpu', outcome: 'pushed' }, value: 2 });
    expect(await value(m, 'fleet_builds_total')).toEqual([{ labels: { pool: 'gpu', builder: 'buildkit', outcome: 'pushed', code: '' }, value: 1 }]);
  });

  it('counts a failure by its error code and a dead letter as both', async () => {
    const m = createCoordinatorMetrics({ processMetrics: false });
    const failed = (code: string): BuildState => ({ phase: 'failed', attempt: 1, error: { code, message: 'x', retryable: false } as never, finishedAt: at(40) });
    observeTransition(m, record(running, at(30)), record(failed('E_BUILD_FAILED'), at(40)), 'buildah');
    observeTransition(m, record(running, at(30)), record(failed('E_DEAD_LETTER'), at(40)), 'buildah');
    observeTransition(m, record({ phase: 'queued' }, T0), record({ phase: 'expired', queueTtlSeconds: 60, finishedAt: at(60) }, at(60)), 'none');
    const builds = await value(m, 'fleet_builds_total');
    expect(builds).toEqual(
      expect.arrayContaining([
        { labels: { pool: 'default', builder: 'buildah', outcome: 'failed', code: 'E_BUILD_FAILED' }, value: 1 },
        { labels: { pool: 'default', builder: 'buildah', outcome: 'failed', code: 'E_DEAD_LETTER' }, value: 1 },
        { labels: { pool: 'default', builder: 'none', outcome: 'expired', code: '' }, value: 1 },
      ]),
    );
    expect(await value(m, 'fleet_dead_letters_total')).toEqual([{ labels: { pool: 'default' }, value: 1 }]);
    expect(await m.registry.metrics()).toContain('fleet_build_run_seconds_count{pool="default",builder="buildah",outcome="failed"} 2');
  });

  it('does not count a final state twice nor a redelivery as a new build', async () => {
    const m = createCoordinatorMetrics({ processMetrics: false });
    observeTransition(m, record(running, at(30)), record({ ...running, attempt: 2, startedAt: at(50) }, at(50)), 'buildah');
    expect(await value(m, 'fleet_builds_total')).toEqual([]);
    expect((await value(m, 'fleet_build_queue_wait_seconds')).find((v) => v.metricName?.endsWith('_count'))?.value ?? 0).toBe(0);
  });

  it('keeps two replicas in one process apart', async () => {
    const a = createCoordinatorMetrics();
    const b = createCoordinatorMetrics();
    observeTransition(a, record({ phase: 'queued' }, T0), record({ phase: 'cancelled', attempt: 0, finishedAt: at(1) }, at(1)), 'none');
    expect(await a.registry.metrics()).toContain('fleet_builds_total{pool="default",builder="none",outcome="cancelled",code=""} 1');
    expect(await b.registry.metrics()).not.toContain('outcome="cancelled"');
    expect(await a.registry.metrics()).toContain('process_cpu_user_seconds_total');
  });
});
