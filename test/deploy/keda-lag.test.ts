import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { JszResponse, jszUrl, kedaLag, scaledJobsToStart, scaledObjectReplicas, type NatsJetStreamTrigger } from '../../deploy/kubernetes/keda-model.ts';
import { consumers, streams } from '../../protocol/index.ts';
import { eventuallyValue } from '../helpers/eventually.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';

const POOL = 'keda';
/** the trigger as deploy/kubernetes/base/workers/scaledobjects.yaml writes it, for this pool */
const TRIGGER: NatsJetStreamTrigger = { account: '$G', stream: streams.jobs, consumer: consumers.pool(POOL), lagThreshold: 1, activationLagThreshold: 0 };

let fleet: LocalFleet;
beforeAll(async () => {
  fleet = await startTestFleet({ workers: 0, natsMonitoring: true, coordinator: { pools: [POOL] } });
});
afterAll(async () => {
  await fleet?.stop();
});

async function lag(): Promise<number | undefined> {
  const url = fleet.nats.monitoringUrl;
  if (url === undefined) throw new Error('monitoring is off');
  const res = await fetch(jszUrl(url, TRIGGER.account));
  expect(res.ok).toBe(true);
  return kedaLag(JszResponse.parse(await res.json()), TRIGGER);
}

/** what the coordinator knows: builds of the pool still waiting or running */
async function queuedAndRunning(ids: readonly string[]): Promise<{ queued: number; running: number }> {
  const states = await Promise.all(ids.map(async (id) => (await fleet.client.status(id)).state.phase));
  return { queued: states.filter((s) => s === 'queued').length, running: states.filter((s) => s === 'running').length };
}

describe('KEDA scaling on true lag, against a real nats-server /jsz', () => {
  it('the manifests trigger on the consumer and the thresholds this model assumes', async () => {
    const yaml = await readFile(new URL('../../deploy/kubernetes/base/workers/scaledobjects.yaml', import.meta.url), 'utf8');
    expect(yaml).toContain(`stream: ${streams.jobs}`);
    expect(yaml).toContain(`consumer: ${consumers.pool('buildah')}`);
    expect(yaml).toMatch(/lagThreshold: "1"/);
    expect(yaml).toMatch(/activationLagThreshold: "0"/);
    const job = await readFile(new URL('../../deploy/kubernetes/components/scaledjob/scaledjob.yaml', import.meta.url), 'utf8');
    // the lag counts in-flight builds, which are the running pods: `default` subtracts them
    expect(job).toMatch(/strategy: default/);
  });

  it('lag = pending + in-flight builds, from queued through running to done; desired replicas follow', async () => {
    expect(await lag()).toBe(0);
    expect(scaledObjectReplicas(0, TRIGGER, 0, 10)).toBe(0);

    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    const ids = ['keda-1', 'keda-2', 'keda-3'];
    for (const id of ids) await fleet.client.submit({ id, pool: POOL, context: { digest }, buildArgs: { SLEEP: '600' }, image: { repository: 'app/keda', tags: [id] } });
    const queued = await eventuallyValue(async () => ((await lag()) === 3 ? 3 : undefined), 10_000, 'three jobs pending on the pool consumer');
    expect(await queuedAndRunning(ids)).toEqual({ queued: 3, running: 0 });
    expect(scaledObjectReplicas(queued, TRIGGER, 0, 10)).toBe(3);
    expect(scaledObjectReplicas(queued, TRIGGER, 0, 2)).toBe(2);
    expect(scaledJobsToStart(queued, TRIGGER.lagThreshold, 10, 0)).toBe(3);

    // One worker takes one build: still three builds wanting a worker each (2 pending + 1 ack-pending).
    await fleet.addWorker({ pool: POOL });
    await eventuallyValue(async () => ((await queuedAndRunning(ids)).running === 1 ? true : undefined), 120_000, 'one build running');
    expect(await lag()).toBe(3);
    expect(await queuedAndRunning(ids)).toEqual({ queued: 2, running: 1 });
    // a ScaledJob with one pod already running the build starts two more, not three
    expect(scaledJobsToStart(3, TRIGGER.lagThreshold, 10, 1)).toBe(2);

    // Cancelling the queued two leaves the running one: lag 1, one replica.
    for (const id of ids) if ((await fleet.client.status(id)).state.phase === 'queued') await fleet.client.cancel(id);
    const one = await eventuallyValue(async () => ((await lag()) === 1 ? 1 : undefined), 30_000, 'lag 1 after the queued builds are cancelled');
    expect(scaledObjectReplicas(one, TRIGGER, 0, 10)).toBe(1);

    // And nothing left: the running build cancelled, the lag falls to 0 and the pool to its minimum.
    for (const id of ids) await fleet.client.cancel(id);
    await eventuallyValue(async () => ((await lag()) === 0 ? true : undefined), 60_000, 'lag 0 once every build ended');
    expect(scaledObjectReplicas(0, TRIGGER, 0, 10)).toBe(0);
  });
});
