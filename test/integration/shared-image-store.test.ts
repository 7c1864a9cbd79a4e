import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { archivedLog, fixture, startTestFleet } from '../helpers/fleet.ts';

describe("the node's shared image store", () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet({ workers: 0, sharedImageStore: true, coordinator: { pools: ['plain'] } });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  async function buildOn(pool: string, id: string): Promise<string> {
    const { digest } = await fleet.client.uploadContext(fixture('two-stage'));
    await fleet.client.submit({ id, pool, context: { digest }, image: { repository: `app/shared-${pool}`, tags: ['1'] } });
    expect((await fleet.client.follow(id, {})).state.phase).toBe('pushed');
    return archivedLog(fleet, id);
  }

  it('a fresh worker builds on the official base from the shared store without pulling it', async () => {
    await fleet.addWorker();
    const log = await buildOn('default', 'shared-1');
    expect(log).toContain('STEP 1/');
    expect(log).not.toMatch(/Trying to pull [^"]*official\/base/);
  });

  it('a worker without the shared store pulls the base (control)', async () => {
    // Same fleet, a pool whose worker was started without the store.
    await fleet.addWorker({ pool: 'plain', sharedImageStore: undefined });
    const log = await buildOn('plain', 'shared-2');
    expect(log).toMatch(/Trying to pull [^"]*official\/base/);
  });
});
