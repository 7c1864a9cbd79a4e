import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { fetchManifestDigest } from '../../adapters/registry-client.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { cliEnv, fixture, startTestFleet, FLEET_BIN } from '../helpers/fleet.ts';
import { runImage } from '../helpers/podman.ts';
import { storedEvents, storedScanRequests } from '../../client/index.ts';

describe('a build through the fleet', () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet();
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('lands a two-stage app in the registry with the digest the registry has, and the image runs', async () => {
    const { digest: context } = await fleet.client.uploadContext(fixture('two-stage'));
    const accepted = await fleet.client.submit({ id: 'two-stage-1', context: { digest: context }, image: { repository: 'app/two-stage', tags: ['1', 'latest'] } });
    expect(accepted.created).toBe(true);
    expect(accepted.build.state.phase).toBe('queued');

    const final = await fleet.client.follow('two-stage-1', {});
    expect(final.state.phase).toBe('pushed');
    if (final.state.phase !== 'pushed') return;
    const registry = { host: fleet.registry.host, insecure: true };
    expect(await fetchManifestDigest(registry, 'app/two-stage', '1')).toBe(final.state.digest);
    expect(await fetchManifestDigest(registry, 'app/two-stage', 'latest')).toBe(final.state.digest);
    const pushed = (await storedEvents(fleet.client.nc, 'two-stage-1')).filter((e) => e.type === 'pushed');
    expect(pushed).toHaveLength(1);
    expect(pushed[0]).toMatchObject({ digest: final.state.digest });
    const scans = (await storedScanRequests(fleet.client.nc)).filter((r) => r.buildId === 'two-stage-1');
    expect(scans).toEqual([expect.objectContaining({ digest: final.state.digest, repository: 'app/two-stage' })]);

    const run = await runImage(`${fleet.registry.host}/app/two-stage@${final.state.digest}`, fleet.registry.host);
    expect(run.stdout.trim()).toBe('hello from the fleet');
  });

  it('honours .dockerignore: ignored files never reach the builder', async () => {
    // The fixture ignores notes/ and *.tmp; the context digest must not change when they do.
    const a = await fleet.client.uploadContext(fixture('two-stage'));
    const { writeFile, rm } = await import('node:fs/promises');
    const extra = `${fixture('two-stage')}/notes/changed.txt`;
    await writeFile(extra, String(Date.now()));
    try {
      const b = await fleet.client.uploadContext(fixture('two-stage'));
      expect(b.digest).toBe(a.digest);
      expect(b.uploaded).toBe(false);
    } finally {
      await rm(extra, { force: true });
    }
  });

  it('fails a RUN that exits 42 naming the step and exit code with the log tail, pushes nothing, does not retry', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('fails-42'));
    await fleet.client.submit({ id: 'fails-42', context: { digest }, image: { repository: 'app/fails', tags: ['1'] } });
    const final = await fleet.client.follow('fails-42', {});
    expect(final.state.phase).toBe('failed');
    if (final.state.phase !== 'failed') return;
    expect(final.state.error.code).toBe('E_BUILD_STEP_FAILED');
    expect(final.state.error.details?.exitCode).toBe(42);
    expect(final.state.error.details?.step).toContain('RUN echo "about to fail" && exit 42');
    expect(final.state.error.details?.logTail?.join('\n')).toContain('about to fail');
    expect(await fetchManifestDigest({ host: fleet.registry.host, insecure: true }, 'app/fails', '1')).toBeNull();
    const events = await storedEvents(fleet.client.nc, 'fails-42');
    expect(events.filter((e) => e.type === 'started')).toHaveLength(1);
    expect(events.at(-1)?.type).toBe('failed');
  });

  it('`fleet logs -f` prints lines while the build runs and exits with the build outcome', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('slow-ticker'));
    await fleet.client.submit({ id: 'ticker-1', context: { digest }, image: { repository: 'app/ticker', tags: ['1'] } });
    const cli = execa(process.execPath, [FLEET_BIN, 'logs', '-f', 'ticker-1'], { reject: false, env: cliEnv(fleet) });
    const seen: Array<{ line: string; at: number }> = [];
    cli.stdout.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line !== '') seen.push({ line, at: Date.now() });
    });
    const result = await cli;
    const exitedAt = Date.now();
    expect(result.exitCode).toBe(0);
    const firstTick = seen.find((s) => s.line === 'tick 1');
    expect(firstTick).toBeDefined();
    // tick 1 is printed ~3 s before the build can end: it must reach us while the build runs.
    expect(exitedAt - (firstTick?.at ?? exitedAt)).toBeGreaterThan(1_500);
    expect(seen.map((s) => s.line)).toEqual(expect.arrayContaining(['tick 2', 'tick 3', 'tick 4']));
    expect(seen.filter((s) => s.line === 'tick 2')).toHaveLength(1);
  });

  it('`fleet logs` and `fleet status` exit 1 for a failed build and replay it after the end', async () => {
    const logs = await execa(process.execPath, [FLEET_BIN, 'logs', 'fails-42'], { reject: false, env: cliEnv(fleet) });
    expect(logs.exitCode).toBe(1);
    expect(logs.stdout).toContain('about to fail');
    const status = await execa(process.execPath, [FLEET_BIN, 'status', 'fails-42', '--json'], { reject: false, env: cliEnv(fleet) });
    expect(status.exitCode).toBe(1);
    expect(JSON.parse(status.stdout)).toMatchObject({ id: 'fails-42', state: { phase: 'failed', error: { code: 'E_BUILD_STEP_FAILED' } } });
  });
});
