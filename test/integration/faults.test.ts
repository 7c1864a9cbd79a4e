import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchManifestDigest } from '../../adapters/registry-client.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';
import { storedEvents } from '../../client/index.ts';
import { eventually, eventuallyValue } from '../helpers/eventually.ts';

/** What `buildah push --retry` prints when an attempt fails and it tries again. */
const PUSH_RETRY = 'Failed, retrying';

async function childrenOf(pid: number): Promise<number[]> {
  const r = await execa('pgrep', ['-P', String(pid)], { reject: false });
  return r.stdout.split('\n').filter((l) => l !== '').map(Number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('worker faults', () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    // Short ack wait so a dead worker's job is redelivered quickly; heartbeats keep live ones.
    fleet = await startTestFleet({ workers: 2, coordinator: { jobAckWaitMs: 3_000, workerTtlMs: 2_000 }, worker: { heartbeatMs: 1_000, announceMs: 400 } });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('finishes a build on another worker after its worker is killed with kill -9 mid-build: one pushed event, one image', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    await fleet.client.submit({ id: 'survives-kill', context: { digest }, buildArgs: { SLEEP: '10' }, image: { repository: 'app/faults', tags: ['1'] } });
    // Killed once the RUN step sleeps (base pulled, builder busy and silent).
    await untilLine('survives-kill', 'going quiet');
    const running = (await fleet.client.status('survives-kill')).state;
    expect(running).toMatchObject({ phase: 'running' });
    const victim = fleet.workers.find((w) => running.phase === 'running' && w.workerId === running.workerId);
    expect(victim).toBeDefined();
    const builderPids = await childrenOf(victim?.pid ?? -1);
    expect(builderPids.length).toBeGreaterThan(0);
    victim?.signal('SIGKILL');
    await victim?.exited;
    // Its builder dies with it (no orphan build pushing behind the next attempt's back): checked
    // while the orphan would still have seconds of sleeping left. Buildah needs 1–2 s to stop:
    // the container's PID 1 ignores SIGTERM, so buildah escalates to SIGKILL itself.
    await eventually(() => !builderPids.some(alive), 5_000, 'the killed worker\'s builder gone');

    const final = await fleet.client.follow('survives-kill', {});
    expect(final.state).toMatchObject({ phase: 'pushed', attempt: 2 });
    const events = await storedEvents(fleet.client.nc, 'survives-kill');
    const started = events.filter((e) => e.type === 'started');
    expect(started).toHaveLength(2);
    expect(started[1]).toMatchObject({ attempt: 2 });
    expect(started[1]?.type === 'started' && started[1].workerId).not.toBe(victim?.workerId);
    expect(events.filter((e) => e.type === 'pushed')).toHaveLength(1);
    if (final.state.phase === 'pushed') {
      expect(await fetchManifestDigest({ host: fleet.registry.host, insecure: true }, 'app/faults', '1')).toBe(final.state.digest);
    }
  });

  it('drains on SIGTERM: the current build finishes, then the worker exits 0', async () => {
    await stopAllWorkers();
    const worker = await fleet.addWorker();
    await waitUntilOnly(worker.workerId);
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    await fleet.client.submit({ id: 'drain-finish', context: { digest }, buildArgs: { SLEEP: '3' }, image: { repository: 'app/faults', tags: ['drain'] } });
    await runningOn('drain-finish');
    worker.signal('SIGTERM');
    const final = await fleet.client.follow('drain-finish', {});
    expect(final.state).toMatchObject({ phase: 'pushed', attempt: 1 });
    expect((await worker.exited).exitCode).toBe(0);
  });

  it('hands the build back when the drain grace runs out: another worker finishes it, the first exits 75', async () => {
    await stopAllWorkers();
    const first = await fleet.addWorker({ drainGraceMs: 500 });
    await waitUntilOnly(first.workerId);
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    await fleet.client.submit({ id: 'drain-handback', context: { digest }, buildArgs: { SLEEP: '6' }, image: { repository: 'app/faults', tags: ['handback'] } });
    expect(await runningOn('drain-handback')).toBe(first.workerId);
    const second = await fleet.addWorker();
    // The first worker's drain grace (0.5 s) is shorter than the build (6 s).
    first.signal('SIGTERM');
    const final = await fleet.client.follow('drain-handback', {});
    expect(final.state).toMatchObject({ phase: 'pushed', attempt: 2 });
    const events = await storedEvents(fleet.client.nc, 'drain-handback');
    const started = events.filter((e) => e.type === 'started');
    expect(started.map((e) => (e.type === 'started' ? e.workerId : ''))).toEqual([first.workerId, second.workerId]);
    expect(events.filter((e) => e.type === 'pushed')).toHaveLength(1);
    expect((await first.exited).exitCode).toBe(75);
  });

  async function stopAllWorkers(): Promise<void> {
    await Promise.all(fleet.workers.map((w) => w.stop()));
    fleet.workers.length = 0;
  }

  it('survives a nats-server restart mid-build: the build still ends pushed, once, and nothing accepted is lost', async () => {
    await stopAllWorkers();
    await fleet.addWorker();
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    await fleet.client.submit({ id: 'nats-restart', context: { digest }, buildArgs: { SLEEP: '5' }, image: { repository: 'app/faults', tags: ['restart'] } });
    await runningOn('nats-restart');
    await fleet.nats.restart({ kill: true, downMs: 1_000 });
    // Accepted while the fleet reconnects: must not be lost either.
    const accepted = await retry(() => fleet.client.submit({ id: 'after-restart', context: { digest }, buildArgs: { SLEEP: '1' }, image: { repository: 'app/faults', tags: ['after-restart'] } }));
    expect(accepted.build.id).toBe('after-restart');
    const final = await fleet.client.follow('nats-restart', {});
    expect(final.state.phase).toBe('pushed');
    const events = await storedEvents(fleet.client.nc, 'nats-restart');
    expect(events.filter((e) => e.type === 'pushed')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'failed')).toHaveLength(0);
    expect((await fleet.client.follow('after-restart', {})).state.phase).toBe('pushed');
    // The worker registry survived the restart too (it once lived in memory and vanished).
    await eventually(async () => (await fleet.client.workers()).length > 0, 10_000, 'a worker listed after the restart');
  });

  it('retries a push through a registry outage: exactly one image and one pushed event', async () => {
    await stopAllWorkers();
    await fleet.addWorker();
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    await fleet.client.submit({ id: 'registry-outage', context: { digest }, buildArgs: { SLEEP: '2' }, image: { repository: 'app/faults', tags: ['outage'] } });
    // Down once the base is pulled and the RUN step sleeps; back once the push has met the
    // outage (buildah says it retries), so the retry is what gets the image through.
    await untilLine('registry-outage', 'going quiet');
    await fleet.registry.stop();
    await untilLine('registry-outage', PUSH_RETRY);
    await fleet.registry.start();
    const final = await fleet.client.follow('registry-outage', {});
    expect(final.state.phase).toBe('pushed');
    const events = await storedEvents(fleet.client.nc, 'registry-outage');
    expect(events.filter((e) => e.type === 'pushed')).toHaveLength(1);
    if (final.state.phase === 'pushed') {
      expect(await fetchManifestDigest({ host: fleet.registry.host, insecure: true }, 'app/faults', 'outage')).toBe(final.state.digest);
    }
  });

  it('builds on when the registry refuses the layer cache: pushed, saying the cache was not updated', async () => {
    await stopAllWorkers();
    await fleet.addWorker();
    // The cache repository's manifests cannot be stored (a file where distribution keeps its
    // _manifests directory): every manifest put there fails, as one does in distribution's race
    // of concurrent pushes of a shared blob (DIGEST_INVALID), which ended a chaos run's build.
    const manifests = join(fleet.stateDir, 'registry', 'data', 'docker', 'registry', 'v2', 'repositories', 'cache', 'app', 'cache-refused', '_manifests');
    await mkdir(dirname(manifests), { recursive: true });
    await writeFile(manifests, 'not a directory\n');
    const { digest } = await fleet.client.uploadContext(fixture('tiny'));
    await fleet.client.submit({ id: 'cache-refused', context: { digest }, buildArgs: { N: 'cache-refused' }, image: { repository: 'app/cache-refused', tags: ['1'] } });
    const lines: string[] = [];
    const final = await fleet.client.follow('cache-refused', { line: (l) => lines.push(l.text) });
    expect(final.state, lines.slice(-20).join('\n')).toMatchObject({ phase: 'pushed', attempt: 1 });
    expect(lines.some((l) => l.startsWith('the layer cache could not be pushed (') && l.endsWith('building again from this worker\'s layers without updating it'))).toBe(true);
    if (final.state.phase === 'pushed') {
      expect(await fetchManifestDigest({ host: fleet.registry.host, insecure: true }, 'app/cache-refused', '1')).toBe(final.state.digest);
    }
  });

  /** Follows a build's log until a line contains `text`. */
  async function untilLine(id: string, text: string): Promise<void> {
    const seen = new AbortController();
    await fleet.client.follow(id, { line: (l) => { if (l.text.includes(text)) seen.abort(); } }, seen.signal).catch(() => undefined);
    if (!seen.signal.aborted) throw new Error(`${id} ended without printing "${text}"`);
  }

  /** Retries `fn` while the fleet reconnects, until it succeeds. */
  function retry<T>(fn: () => Promise<T>): Promise<T> {
    return eventuallyValue(fn, 30_000, 'a call through the reconnecting fleet', { intervalMs: 250, retryErrors: true });
  }

  /** Waits until `workerId` is the only live worker that is not draining. */
  async function waitUntilOnly(workerId: string): Promise<void> {
    await eventually(async () => {
      const ws = (await fleet.client.workers()).filter((w) => w.state !== 'draining');
      return ws.length === 1 && ws[0]?.workerId === workerId;
    }, 30_000, `worker ${workerId} the only one`);
  }

  async function runningOn(id: string): Promise<string> {
    return eventuallyValue(async () => {
      const s = (await fleet.client.status(id)).state;
      return s.phase === 'running' ? s.workerId : undefined;
    }, 60_000, `${id} running`);
  }
});
