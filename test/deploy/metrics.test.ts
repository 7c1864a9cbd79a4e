import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { eventuallyValue } from '../helpers/eventually.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';

/** A port free right now (the worker, another process, binds it a moment later). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, () => {
      const addr = s.address();
      s.close(() => (typeof addr === 'object' && addr !== null ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

describe('metrics and health of a local fleet', () => {
  let fleet: LocalFleet;
  let workerPort: number;
  beforeAll(async () => {
    workerPort = await freePort();
    fleet = await startTestFleet({ worker: { metricsPort: workerPort, announceMs: 400 } });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('serves /healthz, /readyz and /metrics on the coordinator without a token, and counts a build', async () => {
    const base = fleet.coordinator.httpUrl;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ok: true, nats: true, topology: true });

    const { digest } = await fleet.client.uploadContext(fixture('slow-ticker'));
    await fleet.client.submit({ id: 'metrics-1', context: { digest }, buildArgs: { TICKS: '1' }, image: { repository: 'app/metrics', tags: ['1'] } });
    await fleet.client.follow('metrics-1', {});
    const text = await eventuallyValue(async () => {
      const t = await (await fetch(`${base}/metrics`)).text();
      return t.includes('outcome="pushed"') ? t : undefined;
    }, 10_000, 'the pushed build counted');
    expect(text).toMatch(/^fleet_builds_total\{pool="default",builder="buildah",outcome="pushed",code=""\} 1$/m);
    expect(text).toMatch(/^fleet_build_queue_wait_seconds_count\{pool="default",builder="buildah"\} 1$/m);
    expect(text).toMatch(/^fleet_gates_seconds_count\{pool="default",outcome="pushed"\} 1$/m);
    // the worker's claim, and the client's submit, each answered once and timed
    expect(text).toMatch(/^fleet_nats_api_answer_seconds_count\{api="claim"\} 1$/m);
    expect(text).toContain('process_resident_memory_bytes');
  });

  it('serves the worker /healthz and /metrics: its state, builds and log lines', async () => {
    const base = `http://127.0.0.1:${workerPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const text = await eventuallyValue(async () => {
      const t = await (await fetch(`${base}/metrics`)).text();
      return /^fleet_worker_state\{state="idle".*\} 1$/m.test(t) ? t : undefined;
    }, 10_000, 'the worker idle');
    expect(text).toMatch(/^fleet_worker_builds_total\{outcome="pushed",code="",pool="default",builder="buildah"\} 1$/m);
    expect(text).toMatch(/^fleet_worker_log_lines_total\{stream="[a-z]+",pool="default",builder="buildah"\} [1-9]/m);
  });
});
