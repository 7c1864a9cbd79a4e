import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchManifestDigest } from '../../coordinator/registry-client.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';
import { storedEvents } from '../helpers/streams.ts';

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
    fleet = await startTestFleet({ workers: 2, coordinator: { jobAckWaitMs: 3_000 }, worker: { heartbeatMs: 1_000 } });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('finishes a build on another worker after its worker is killed with kill -9 mid-build: one pushed event, one image', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    await fleet.client.submit({ id: 'survives-kill', context: { digest }, buildArgs: { SLEEP: '8' }, image: { repository: 'app/faults', tags: ['1'] } });
    let victimId: string | undefined;
    for (let i = 0; i < 100 && victimId === undefined; i++) {
      const s = (await fleet.client.status('survives-kill')).state;
      if (s.phase === 'running') victimId = s.workerId;
      else await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1_500)); // let it get into the RUN step
    const victim = fleet.workers.find((w) => w.workerId === victimId);
    expect(victim).toBeDefined();
    const builderPids = await childrenOf(victim?.pid ?? -1);
    expect(builderPids.length).toBeGreaterThan(0);
    victim?.signal('SIGKILL');
    await victim?.exited;
    // Its builder dies with it (no orphan build pushing behind the next attempt's back): checked
    // while the orphan would still have seconds of ticking left.
    for (let i = 0; i < 20 && builderPids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(builderPids.filter(alive)).toEqual([]);

    const final = await fleet.client.follow('survives-kill', {});
    expect(final.state).toMatchObject({ phase: 'pushed', attempt: 2 });
    const events = await storedEvents(fleet.client.nc, 'survives-kill');
    const started = events.filter((e) => e.type === 'started');
    expect(started).toHaveLength(2);
    expect(started[1]).toMatchObject({ attempt: 2 });
    expect(started[1]?.type === 'started' && started[1].workerId).not.toBe(victimId);
    expect(events.filter((e) => e.type === 'pushed')).toHaveLength(1);
    if (final.state.phase === 'pushed') {
      expect(await fetchManifestDigest({ host: fleet.registry.host, insecure: true }, 'app/faults', '1')).toBe(final.state.digest);
    }
  });
});
