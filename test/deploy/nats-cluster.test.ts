import { jetstreamManager } from '@nats-io/jetstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import type { NatsCluster } from '../../deploy/local/nats-cluster.ts';
import { storedEvents } from '../../client/index.ts';
import { buckets, streams } from '../../protocol/index.ts';
import { eventuallyValue } from '../helpers/eventually.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';

let fleet: LocalFleet;
let cluster: NatsCluster;
beforeAll(async () => {
  fleet = await startTestFleet({ natsCluster: 3 });
  cluster = fleet.nats as NatsCluster;
}, 180_000);
afterAll(async () => {
  await fleet?.stop();
});

describe('the fleet on a 3-node JetStream cluster, configured as the Kubernetes manifests configure it', () => {
  it('keeps every stream and bucket at three replicas', async () => {
    const jsm = await jetstreamManager(fleet.client.nc);
    for (const name of [streams.jobs, streams.builds, streams.notify, `KV_${buckets.builds}`, `KV_${buckets.workers}`, `KV_${buckets.tokens}`, `KV_${buckets.dependents}`, `KV_${buckets.rebuilds}`]) {
      const info = await jsm.streams.info(name);
      expect(info.config.num_replicas, name).toBe(3);
      expect(info.cluster?.replicas?.length, name).toBe(2);
    }
  });

  it('loses nothing when the server leading the job queue is killed mid-build: the build finishes, each event once', async () => {
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    await fleet.client.submit({ id: 'cluster-1', context: { digest }, buildArgs: { SLEEP: '8' }, image: { repository: 'app/cluster', tags: ['1'] } });
    await eventuallyValue(async () => ((await fleet.client.status('cluster-1')).state.phase === 'running' ? true : undefined), 120_000, 'the build running');

    const jsm = await jetstreamManager(fleet.client.nc);
    const leader = (await jsm.streams.info(streams.jobs)).cluster?.leader ?? '';
    const victim = cluster.members[cluster.indexOf(leader)];
    expect(victim, `leader ${leader}`).toBeDefined();
    await victim?.stop();

    const final = await fleet.client.follow('cluster-1', {});
    expect(final.state.phase, JSON.stringify(final.state)).toBe('pushed');
    const types = (await storedEvents(fleet.client.nc, 'cluster-1')).map((e) => e.type);
    for (const t of ['queued', 'started', 'verifying', 'verdict', 'pushed']) expect(types.filter((x) => x === t), `${t} in ${types.join(',')}`).toHaveLength(1);

    // The member comes back and catches up; a build submitted now is queued and built as usual.
    await victim?.restart();
    const { digest: tiny } = await fleet.client.uploadContext(fixture('tiny'));
    await fleet.client.submit({ id: 'cluster-2', context: { digest: tiny }, image: { repository: 'app/cluster', tags: ['2'] } });
    expect((await fleet.client.follow('cluster-2', {})).state.phase).toBe('pushed');
  }, 300_000);
});
