import { describe, expect, it } from 'vitest';
import { createWorkerMetrics, meteredPorts, serveWorkerMetrics } from '../../worker/metrics.ts';
import type { AttemptLog, RunnerPorts } from '../../worker/ports.ts';
import { createLogger } from '../../adapters/logger.ts';

describe('worker metrics', () => {
  it('shows exactly one current state', async () => {
    const m = createWorkerMetrics({ pool: 'p', builder: 'kaniko' }, { processMetrics: false });
    m.setState('building');
    const text = await m.registry.metrics();
    expect(text).toContain('fleet_worker_state{state="building",pool="p",builder="kaniko"} 1');
    expect(text).toContain('fleet_worker_state{state="starting",pool="p",builder="kaniko"} 0');
    expect(text.match(/^fleet_worker_state\{.*\} 1$/gm)).toHaveLength(1);
  });

  it('counts reports by outcome and log lines by stream through the ports', async () => {
    const m = createWorkerMetrics({ pool: 'p', builder: 'buildah' }, { processMetrics: false });
    const lines: string[] = [];
    const log = { attempt: 1, line: (_s: string, t: string) => { lines.push(t); return Promise.resolve(); } } as unknown as AttemptLog;
    const ports = meteredPorts({ report: () => Promise.resolve(), openLog: () => log } as unknown as RunnerPorts, m);
    const opened = ports.openLog('b', 1, '/x', {} as never);
    await opened.line('stdout', 'a');
    await opened.line('stderr', 'b');
    await opened.line('stdout', 'c');
    await ports.report({ type: 'failed', buildId: 'b', attempt: 1, workerId: 'w', error: { code: 'E_BUILD_FAILED', message: 'x', retryable: false } } as never);
    expect(lines).toEqual(['a', 'b', 'c']);
    const text = await m.registry.metrics();
    expect(text).toContain('fleet_worker_log_lines_total{stream="stdout",pool="p",builder="buildah"} 2');
    expect(text).toContain('fleet_worker_builds_total{outcome="failed",code="E_BUILD_FAILED",pool="p",builder="buildah"} 1');
  });

  it('serves /metrics and /healthz on a free port', async () => {
    const m = createWorkerMetrics({ pool: 'p', builder: 'buildah' });
    let healthy = true;
    const s = await serveWorkerMetrics(0, m, () => healthy, createLogger('test', { pretty: false, level: 'warn' }));
    try {
      const base = `http://127.0.0.1:${s.port}`;
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      healthy = false;
      expect((await fetch(`${base}/healthz`)).status).toBe(503);
      const res = await fetch(`${base}/metrics`);
      expect(res.headers.get('content-type')).toContain('text/plain');
      expect(await res.text()).toContain('fleet_worker_state');
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    } finally {
      await s.close();
    }
  });
});
