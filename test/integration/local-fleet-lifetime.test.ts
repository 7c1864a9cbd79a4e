import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { FleetClient } from '../../client/index.ts';
import type { LocalFleetFile } from '../../cli/local-state.ts';
import { eventually, eventuallyValue } from '../helpers/eventually.ts';
import { FLEET_BIN, fixture } from '../helpers/fleet.ts';
import { descendantsOf, processesMentioning, stillRunning, type ProcessInfo } from '../helpers/processes.ts';

const list = (ps: readonly ProcessInfo[]): string => ps.map((p) => `${p.pid} ${p.command.slice(0, 160)}`).join('\n');

describe('a local fleet whose `fleet up` is killed with kill -9', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('takes every process it started with it: servers, workers and a running build', async () => {
    const home = await mkdtemp(join(tmpdir(), 'fleet-lifetime-'));
    // The workers and the shared image store's podman run as the build user, inside.
    await chmod(home, 0o755);
    const stateDir = join(home, 'state');
    const up = execa(process.execPath, [FLEET_BIN, 'up', '--json', '--state-dir', stateDir], {
      env: { FLEET_HOME: join(home, 'home') },
      stdin: 'ignore',
      reject: false,
    });
    let recorded: ProcessInfo[] = [];
    // The fleet's tree as recorded, and the daemons that double-forked out of it (rootless
    // podman's pause process, conmon), which still name the state dir.
    const left = async (): Promise<ProcessInfo[]> => {
      const mentioning = (await processesMentioning(stateDir)).filter((p) => !recorded.some((r) => r.pid === p.pid));
      return stillRunning([...recorded, ...mentioning]);
    };
    cleanups.push(async () => {
      // Whatever the outcome, nothing of this fleet outlives the test.
      up.kill('SIGKILL');
      await up;
      for (const p of await left()) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }
      await rm(home, { recursive: true, force: true });
    });
    let stdout = '';
    let stderr = '';
    up.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    up.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await eventually(
      () => {
        if (up.exitCode !== null) throw new Error(`fleet up exited ${up.exitCode}: ${stderr}`);
        return stdout.includes('"kind":"up"');
      },
      180_000,
      'fleet up ready',
    );

    // A build in its RUN step, so the worker has builder processes of its own.
    const local = JSON.parse(await readFile(join(home, 'home', 'local.json'), 'utf8')) as LocalFleetFile;
    const client = await FleetClient.connect(local.natsUrl, local.natsCredentials, local.s3);
    try {
      const { digest } = await client.uploadContext(fixture('quiet-sleeper'));
      await client.submit({ id: 'outlived', context: { digest }, buildArgs: { SLEEP: '291' }, image: { repository: 'app/lifetime', tags: ['1'] } });
      const quiet = new AbortController();
      await client.follow('outlived', { line: (l) => { if (l.text.includes('going quiet')) quiet.abort(); } }, quiet.signal).catch(() => undefined);
      expect(quiet.signal.aborted).toBe(true);
    } finally {
      await client.close();
    }

    const upPid = up.pid ?? -1;
    recorded = await eventuallyValue(
      async () => {
        const tree = await descendantsOf(upPid);
        return tree.some((p) => p.command === 'sleep 291') ? tree : undefined;
      },
      30_000,
      'the build sleeping in the process tree',
    );
    for (const server of ['nats-server', 'docker-registry', 'versitygw', 'worker/main.ts']) {
      expect(recorded.some((p) => p.command.includes(server)), `${server} in\n${list(recorded)}`).toBe(true);
    }

    up.kill('SIGKILL');
    await up;
    await eventually(async () => (await left()).length === 0, 60_000, 'every process of the killed fleet gone').catch(async (e: unknown) => {
      throw new Error(`${String(e)}; still running:\n${list(await left())}`);
    });
  }, 300_000);
});
