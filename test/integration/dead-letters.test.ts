import { jetstreamManager } from '@nats-io/jetstream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { cliEnv, fixture, startTestFleet, FLEET_BIN } from '../helpers/fleet.ts';
import { streams } from '../../protocol/index.ts';
import { eventually, eventuallyValue } from '../helpers/eventually.ts';
import { pendingJobs } from '../../client/index.ts';

describe('dead letters', () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet({ coordinator: { maxDeliver: 2, jobAckWaitMs: 2_000 }, worker: { heartbeatMs: 500 } });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  function runningAttempt(id: string, attempt: number): Promise<string> {
    return eventuallyValue(async () => {
      const s = (await fleet.client.status(id)).state;
      return s.phase === 'running' && s.attempt === attempt ? s.workerId : undefined;
    }, 60_000, `${id} running attempt ${attempt}`);
  }

  async function killWorker(workerId: string): Promise<void> {
    const victim = fleet.workers.find((w) => w.workerId === workerId);
    victim?.signal('SIGKILL');
    await victim?.exited;
  }

  it('parks a job that crashes every worker after max deliveries, fails its build, and the queue moves on', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    await fleet.client.submit({ id: 'poison-1', context: { digest }, buildArgs: { SLEEP: '60' }, image: { repository: 'app/dlq', tags: ['1'] } });
    for (const attempt of [1, 2]) {
      await killWorker(await runningAttempt('poison-1', attempt));
      await fleet.addWorker();
    }
    const final = await fleet.client.follow('poison-1', {});
    expect(final.state).toMatchObject({ phase: 'failed', error: { code: 'E_DEAD_LETTER' } });

    const ls = await execa(process.execPath, [FLEET_BIN, 'dlq', 'ls', '--json'], { reject: false, env: cliEnv(fleet) });
    expect(ls.exitCode).toBe(0);
    const { letters } = JSON.parse(ls.stdout) as { letters: Array<{ buildId: string; deliveries: number; lastError: string; job: string }> };
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ buildId: 'poison-1', deliveries: 2 });
    expect(letters[0]?.lastError).toContain('worker was lost');
    expect(JSON.parse(letters[0]?.job ?? '{}')).toMatchObject({ buildId: 'poison-1' });
    expect(await pendingJobs(fleet.client.nc)).toBe(0);

    const { digest: ok } = await fleet.client.uploadContext(fixture('two-stage'));
    await fleet.client.submit({ id: 'behind-poison', context: { digest: ok }, image: { repository: 'app/dlq', tags: ['2'] } });
    expect((await fleet.client.follow('behind-poison', {})).state.phase).toBe('pushed');
  });

  it('retries a dead letter as a new build and removes it; drop of an unknown letter says so', async () => {
    const retry = await execa(process.execPath, [FLEET_BIN, 'dlq', 'retry', 'poison-1', '--json'], { reject: false, env: cliEnv(fleet) });
    expect(retry.exitCode).toBe(0);
    const out = JSON.parse(retry.stdout) as { letters: unknown[]; retriedAs: string };
    expect(out.letters).toEqual([]);
    expect(out.retriedAs).toMatch(/^poison-1-retry-/);
    expect((await fleet.client.status(out.retriedAs)).request.buildArgs).toEqual({ SLEEP: '60' });
    expect((await fleet.client.cancel(out.retriedAs)).cancelled).toBe(true);

    const drop = await execa(process.execPath, [FLEET_BIN, 'dlq', 'drop', 'poison-1'], { reject: false, env: cliEnv(fleet) });
    expect(drop.exitCode).toBe(7);
    expect(drop.stderr).toContain('no dead letter for poison-1');
  });

  it('parks a job whose deliveries ran out while no coordinator was running, once one starts', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    await fleet.client.submit({ id: 'orphan-1', context: { digest }, buildArgs: { SLEEP: '60' }, image: { repository: 'app/dlq', tags: ['3'] } });
    const first = await runningAttempt('orphan-1', 1);
    await killWorker(first);
    await fleet.addWorker();
    const last = await runningAttempt('orphan-1', 2);
    await fleet.restartCoordinator(async () => {
      // The last delivery's worker dies while no coordinator listens; JetStream gives up on the
      // job when the next worker pulls, and its advisory must wait in a stream, not vanish.
      await killWorker(last);
      await fleet.addWorker();
      await eventually(async () => (await (await jetstreamManager(fleet.client.nc)).streams.info(streams.advisories)).state.messages === 1, 15_000);
    });
    const final = await fleet.client.follow('orphan-1', {});
    expect(final.state).toMatchObject({ phase: 'failed', error: { code: 'E_DEAD_LETTER' } });
    expect(await pendingJobs(fleet.client.nc)).toBe(0);
    await eventually(async () => (await (await jetstreamManager(fleet.client.nc)).streams.info(streams.advisories)).state.messages === 0, 5_000);
  });
});
