import { rm } from 'node:fs/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { streams, subjects, type LogLine } from '../../protocol/index.ts';
import { cliEnv, fixture, startTestFleet, FLEET_BIN, archivedLog, adminFetch } from '../helpers/fleet.ts';
import { eventually } from '../helpers/eventually.ts';
import { secretsDir } from '../helpers/secrets.ts';

const SECRET = 'npm_9f8e7d6c5b4a-very-secret';

async function liveText(fleet: LocalFleet, id: string): Promise<string[]> {
  const lines: LogLine[] = [];
  await fleet.client.logs(id, { line: (l) => lines.push(l) }, { follow: false });
  return lines.map((l) => l.text);
}

describe('build logs', () => {
  let fleet: LocalFleet;
  let ticker: string;
  let secrets: string;
  beforeAll(async () => {
    secrets = await secretsDir({ npm_token: SECRET });
    // No worker at first: the first test attaches before its build can start.
    fleet = await startTestFleet({ workers: 0, worker: { secretsDir: secrets, maskPatterns: ['ghp_[A-Za-z0-9]{20,}'] } });
    await fleet.addWorker();
    ticker = (await fleet.client.uploadContext(fixture('slow-ticker'))).digest;
  });
  afterAll(async () => {
    await fleet?.stop();
    await rm(secrets, { recursive: true, force: true });
  });

  it('`fleet logs -f` attached before the build starts shows every line once, in order', async () => {
    await fleet.workers[0]?.stop();
    fleet.workers.length = 0;
    await fleet.client.submit({ id: 'attach-before', context: { digest: ticker }, buildArgs: { TICKS: '3' }, image: { repository: 'app/logs', tags: ['before'] } });
    const cli = execa(process.execPath, [FLEET_BIN, 'logs', '-f', 'attach-before'], { reject: false, env: cliEnv(fleet) });
    // Attached once it has printed the build's first event; only then may the build start.
    let attached = '';
    cli.stdout.on('data', (chunk: Buffer) => (attached += chunk.toString()));
    await eventually(() => {
      if (cli.exitCode !== null) throw new Error(`fleet logs -f exited ${cli.exitCode}`);
      return attached.includes('queued attach-before');
    }, 60_000, '`fleet logs -f` attached');
    await fleet.addWorker();
    const result = await cli;
    expect(result.exitCode).toBe(0);
    const ticks = result.stdout.split('\n').filter((l) => l.startsWith('tick '));
    expect(ticks).toEqual(['tick 1', 'tick 2', 'tick 3']);
    expect(result.stdout).toMatch(/queued[\s\S]*started[\s\S]*tick 1[\s\S]*pushed/);
  });

  it('`fleet logs -f` attached mid-build replays from the first line and follows to the end', async () => {
    await fleet.client.submit({ id: 'attach-mid', context: { digest: ticker }, buildArgs: { TICKS: '4' }, image: { repository: 'app/logs', tags: ['mid'] } });
    await eventually(async () => (await liveText(fleet, 'attach-mid')).includes('tick 2'), 60_000, 'attach-mid printing tick 2');
    const cli = await execa(process.execPath, [FLEET_BIN, 'logs', '-f', 'attach-mid'], { reject: false, env: cliEnv(fleet) });
    expect(cli.exitCode).toBe(0);
    expect(cli.stdout.split('\n').filter((l) => l.startsWith('tick '))).toEqual(['tick 1', 'tick 2', 'tick 3', 'tick 4']);
  });

  it('archives the log to S3 on success and on failure, and `fleet logs` reads the archive once the live copy is gone', async () => {
    const failing = (await fleet.client.uploadContext(fixture('fails-42'))).digest;
    await fleet.client.submit({ id: 'archived-fail', context: { digest: failing }, image: { repository: 'app/logs', tags: ['fail'] } });
    expect((await fleet.client.follow('archived-fail', {})).state.phase).toBe('failed');
    expect(await archivedLog(fleet, 'archived-fail')).toContain('about to fail');
    expect(await archivedLog(fleet, 'attach-mid')).toContain('tick 4');

    const jsm = await jetstreamManager(fleet.client.nc);
    await jsm.streams.purge(streams.builds, { filter: subjects.log('archived-fail', 'default') });
    const cli = await execa(process.execPath, [FLEET_BIN, 'logs', 'archived-fail'], { reject: false, env: cliEnv(fleet) });
    expect(cli.exitCode).toBe(1);
    expect(cli.stdout).toContain('about to fail');
    // Each archived line printed exactly once; the failure event names the step besides.
    const archivedMentions = (await archivedLog(fleet, 'archived-fail')).split('\n').filter((l) => l.includes('about to fail')).length;
    const [failure, ...others] = [...cli.stdout.split('\n').filter((l) => l.includes('E_BUILD_STEP_FAILED')), ''];
    expect(failure).toContain('about to fail');
    expect(others).toEqual(['']);
    expect(cli.stdout.split('\n').filter((l) => l.includes('about to fail') && !l.includes('E_BUILD_STEP_FAILED'))).toHaveLength(archivedMentions);
  });

  it('masks a secret printed by a RUN step (plain and base64) and platform patterns: never on NATS, in S3 or in the CLI', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('prints-secret'));
    await fleet.client.submit({ id: 'prints-secret', context: { digest }, secrets: ['npm_token'], image: { repository: 'app/logs', tags: ['secret'] } });
    const final = await fleet.client.follow('prints-secret', {});
    expect(final.state.phase).toBe('pushed');
    const b64 = Buffer.from(`${SECRET}\n`).toString('base64');
    const live = (await liveText(fleet, 'prints-secret')).join('\n');
    const archive = await archivedLog(fleet, 'prints-secret');
    const cli = (await execa(process.execPath, [FLEET_BIN, 'logs', 'prints-secret', '--json'], { reject: false, env: cliEnv(fleet) })).stdout;
    for (const text of [live, archive, cli]) {
      expect(text).toContain('token is ***');
      expect(text).toContain('done');
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(b64.slice(0, 24));
      expect(text).not.toContain('ghp_0123456789abcdefghijABCD');
    }
  });

  it('refuses a build that asks for a secret the pool does not hold, naming it', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('prints-secret'));
    await fleet.client.submit({ id: 'no-such-secret', context: { digest }, secrets: ['aws_key'], image: { repository: 'app/logs', tags: ['nosecret'] } });
    const final = await fleet.client.follow('no-such-secret', {});
    expect(final.state).toMatchObject({ phase: 'failed', error: { code: 'E_SECRET_MISSING' } });
    if (final.state.phase === 'failed') expect(final.state.error.message).toContain('aws_key');
  });

  it('serves the same log over HTTP as Server-Sent Events, live with follow=1', async () => {
    await fleet.client.submit({ id: 'sse-live', context: { digest: ticker }, buildArgs: { TICKS: '2' }, image: { repository: 'app/logs', tags: ['sse'] } });
    const res = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds/sse-live/logs?follow=1`);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const body = await res.text();
    const events = body.split('\n\n').filter((b) => b !== '').map((b) => ({ type: /^event: (.*)$/m.exec(b)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(b)?.[1] ?? 'null') as unknown }));
    const logText = events.filter((e) => e.type === 'log').map((e) => (e.data as { text: string }).text);
    expect(logText.filter((t) => t.startsWith('tick '))).toEqual(['tick 1', 'tick 2']);
    expect(events.at(-1)).toMatchObject({ type: 'end', data: { id: 'sse-live', state: { phase: 'pushed' } } });
    expect((await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds/nope/logs`)).status).toBe(404);
  });

  it('stops a build at its run timeout, fails it with E_TIMEOUT and still archives its log', async () => {
    // Ten minutes of ticks: ending within the test's own timeout proves the build was stopped.
    // Ten seconds leave room to reach the RUN step (and its first tick) on a loaded machine;
    // three did not.
    await fleet.client.submit({ id: 'times-out', context: { digest: ticker }, buildArgs: { TICKS: '600' }, timeoutSeconds: 10, image: { repository: 'app/logs', tags: ['timeout'] } });
    const final = await fleet.client.follow('times-out', {});
    expect(final.state).toMatchObject({ phase: 'failed', error: { code: 'E_TIMEOUT' } });
    const archive = await archivedLog(fleet, 'times-out');
    expect(archive).toContain('tick 1');
    expect(archive).not.toContain('tick 600');
    expect(archive).toContain('run timeout of 10s');
    const events = (await liveText(fleet, 'times-out')).join('\n');
    expect(events).toContain('tick 1');
  });
});
