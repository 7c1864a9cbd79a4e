import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import type { LogLine } from '../../protocol/index.ts';
import { cliEnv, fixture, startTestFleet, FLEET_BIN, archivedLog, adminFetch } from '../helpers/fleet.ts';
import { storedEvents } from '../../client/index.ts';
import { eventually, eventuallyValue } from '../helpers/eventually.ts';

async function sleepersLeft(): Promise<number> {
  const r = await execa('pgrep', ['-f', '^sleep 300$'], { reject: false });
  return r.stdout.split('\n').filter((l) => l !== '').length;
}

describe('cancelling builds', () => {
  let fleet: LocalFleet;
  let sleeper: string;
  beforeAll(async () => {
    fleet = await startTestFleet();
    sleeper = (await fleet.client.uploadContext(fixture('sleeper'))).digest;
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('stops a running build and a queued one: the builder process tree is gone, the log archived, the queued one never starts', async () => {
    await fleet.client.submit({ id: 'running-1', context: { digest: sleeper }, image: { repository: 'app/cancel', tags: ['running'] } });
    // One worker, one build at a time: this one waits in the queue behind running-1.
    await fleet.client.submit({ id: 'queued-1', context: { digest: sleeper }, image: { repository: 'app/cancel', tags: ['queued'] } });
    const seen: LogLine[] = [];
    const following = fleet.client.follow('running-1', { line: (l) => seen.push(l) });
    // Generous: under a loaded suite, pulling the Debian base can take a while before RUN starts.
    await eventually(() => seen.some((l) => l.text === 'sleeping'), 60_000, 'running-1 sleeping');
    expect(await sleepersLeft()).toBeGreaterThan(0);

    const queued = await fleet.client.cancel('queued-1');
    expect(queued).toMatchObject({ cancelled: true, build: { state: { phase: 'cancelled', attempt: 0 } } });
    const res = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds/running-1`, { method: 'DELETE' });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ cancelled: true, build: { state: { phase: 'cancelled', attempt: 1 } } });

    expect((await following).state.phase).toBe('cancelled');
    await eventually(async () => (await sleepersLeft()) === 0, 10_000, 'the cancelled build\'s sleep gone');
    // Wait for the archive, then check it and the scratch dir.
    const archive = await eventuallyValue(async () => {
      const text = await archivedLog(fleet, 'running-1');
      return text.includes('cancelled by request') ? text : undefined;
    }, 10_000, 'running-1\'s log archived with its cancellation');
    expect(archive).toContain('sleeping');
    expect(archive).toContain('cancelled by request');
    // The attempt's scratch dir holds the log file the archive is uploaded from, so it is removed
    // just after the archive appears: waited for, not read in that instant.
    const worker = fleet.workers[0];
    await eventually(async () => (worker === undefined ? [] : await readdir(join(worker.stateDir, 'scratch'))).length === 0, 10_000, 'the attempt\'s scratch dir removed');

    // The queued build's job is still delivered, but its claim is refused: it never starts.
    const { digest } = await fleet.client.uploadContext(fixture('two-stage'));
    await fleet.client.submit({ id: 'after-cancel', context: { digest }, image: { repository: 'app/cancel', tags: ['after'] } });
    expect((await fleet.client.follow('after-cancel', {})).state.phase).toBe('pushed');
    const events = await storedEvents(fleet.client.nc, 'queued-1');
    expect(events.map((e) => e.type)).toEqual(['queued', 'cancelled']);
    const status = await execa(process.execPath, [FLEET_BIN, 'status', 'running-1'], { reject: false, env: cliEnv(fleet) });
    expect(status.exitCode).toBe(3);
  });

  it('answers a cancel of a finished build with a clear no-op', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('two-stage'));
    await fleet.client.submit({ id: 'done-1', context: { digest }, image: { repository: 'app/cancel', tags: ['done'] } });
    await fleet.client.follow('done-1', {});
    expect(await fleet.client.cancel('done-1')).toMatchObject({ cancelled: false, build: { state: { phase: 'pushed' } } });
    const cli = await execa(process.execPath, [FLEET_BIN, 'cancel', 'done-1'], { reject: false, env: cliEnv(fleet) });
    expect(cli.exitCode).toBe(0);
    expect(cli.stdout).toContain('nothing to cancel: done-1 already ended (pushed)');
    const missing = await execa(process.execPath, [FLEET_BIN, 'cancel', 'never-was'], { reject: false, env: cliEnv(fleet) });
    expect(missing.exitCode).toBe(7);
  });
});
