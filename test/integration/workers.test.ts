import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import type { WorkerInfo } from '../../protocol/index.ts';
import { eventuallyValue } from '../helpers/eventually.ts';
import { cliEnv, fixture, startTestFleet, FLEET_BIN } from '../helpers/fleet.ts';

/** The fleet's worker list once `ok` holds for it. */
function workersWhen(fleet: LocalFleet, ok: (ws: WorkerInfo[]) => boolean, what: string, ms: number): Promise<WorkerInfo[]> {
  return eventuallyValue(async () => {
    const ws = await fleet.client.workers();
    return ok(ws) ? ws : undefined;
  }, ms, what);
}

describe('worker registry', () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet({ coordinator: { workerTtlMs: 2_000, pools: ['once'] }, worker: { announceMs: 400 } });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('lists live workers with pool, builder, state and current build', async () => {
    await workersWhen(fleet, (ws) => ws.length === 1, 'one worker listed', 30_000);
    const cli = await execa(process.execPath, [FLEET_BIN, 'workers', '--json'], { reject: false, env: cliEnv(fleet) });
    expect(cli.exitCode).toBe(0);
    const listed = JSON.parse(cli.stdout) as WorkerInfo[];
    expect(listed).toEqual([expect.objectContaining({ workerId: fleet.workers[0]?.workerId, pool: 'default', builder: 'buildah', state: 'idle' })]);

    const { digest } = await fleet.client.uploadContext(fixture('slow-ticker'));
    await fleet.client.submit({ id: 'registry-1', context: { digest }, buildArgs: { TICKS: '3' }, image: { repository: 'app/reg', tags: ['1'] } });
    const busy = await workersWhen(fleet, (ws) => ws[0]?.state === 'building', 'the worker building', 30_000);
    expect(busy[0]).toMatchObject({ state: 'building', buildId: 'registry-1' });
    await fleet.client.follow('registry-1', {});
    const idle = await workersWhen(fleet, (ws) => ws[0]?.state === 'idle', 'the worker idle again', 10_000);
    expect(idle[0]?.buildId).toBeUndefined();
  });

  it('a worker with maxBuilds 1 (one pod per build) takes one build, then exits 0 and leaves the next one queued', async () => {
    const once = await fleet.addWorker({ pool: 'once', maxBuilds: 1 });
    const { digest } = await fleet.client.uploadContext(fixture('tiny'));
    for (const id of ['once-1', 'once-2']) await fleet.client.submit({ id, pool: 'once', context: { digest }, image: { repository: 'app/once', tags: [id] } });
    expect((await once.exited).exitCode).toBe(0);
    // exactly one of the two ran to its end on the worker (verified after it left); the other waits for the next pod
    const states = await eventuallyValue(async () => {
      const now = await Promise.all(['once-1', 'once-2'].map(async (id) => (await fleet.client.status(id)).state.phase));
      return now.includes('pushed') ? now : undefined;
    }, 30_000, 'the one build pushed');
    expect(states.toSorted()).toEqual(['pushed', 'queued']);
  });

  it('forgets a worker that was killed (kill -9) once its entry expires', async () => {
    const victim = fleet.workers[0];
    expect(victim).toBeDefined();
    victim?.signal('SIGKILL');
    await victim?.exited;
    const started = Date.now();
    await workersWhen(fleet, (ws) => ws.length === 0, 'the killed worker forgotten', 10_000);
    expect(Date.now() - started).toBeLessThan(8_000);
  });
});
