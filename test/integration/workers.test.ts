import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import type { WorkerInfo } from '../../protocol/index.ts';
import { cliEnv, fixture, startTestFleet, FLEET_BIN } from '../helpers/fleet.ts';

async function until<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let v = await probe();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 100));
    v = await probe();
  }
  return v;
}

describe('worker registry', () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet({ coordinator: { workerTtlMs: 2_000 }, worker: { announceMs: 400 } });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('lists live workers with pool, builder, state and current build', async () => {
    await until(() => fleet.client.workers(), (ws) => ws.length === 1, 10_000);
    const cli = await execa(process.execPath, [FLEET_BIN, 'workers', '--json'], { reject: false, env: cliEnv(fleet) });
    expect(cli.exitCode).toBe(0);
    const listed = JSON.parse(cli.stdout) as WorkerInfo[];
    expect(listed).toEqual([expect.objectContaining({ workerId: fleet.workers[0]?.workerId, pool: 'default', builder: 'buildah', state: 'idle' })]);

    const { digest } = await fleet.client.uploadContext(fixture('slow-ticker'));
    await fleet.client.submit({ id: 'registry-1', context: { digest }, buildArgs: { TICKS: '3' }, image: { repository: 'app/reg', tags: ['1'] } });
    const busy = await until(() => fleet.client.workers(), (ws) => ws[0]?.state === 'building', 10_000);
    expect(busy[0]).toMatchObject({ state: 'building', buildId: 'registry-1' });
    await fleet.client.follow('registry-1', {});
    const idle = await until(() => fleet.client.workers(), (ws) => ws[0]?.state === 'idle', 5_000);
    expect(idle[0]?.buildId).toBeUndefined();
  });

  it('forgets a worker that was killed (kill -9) once its entry expires', async () => {
    const victim = fleet.workers[0];
    expect(victim).toBeDefined();
    victim?.signal('SIGKILL');
    await victim?.exited;
    const started = Date.now();
    const after = await until(() => fleet.client.workers(), (ws) => ws.length === 0, 10_000);
    expect(after).toEqual([]);
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});
