import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import { fetchManifestDigest } from '../../adapters/registry-client.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { Kvm } from '@nats-io/kv';
import { ClaimReply, ErrorCode, buckets, encode, isFleetError, subjects, workerKey, type WorkerReport } from '../../protocol/index.ts';
import { fixture, startTestFleet, adminFetch } from '../helpers/fleet.ts';
import { pendingJobs, storedEvents } from '../../client/index.ts';

/** A claim as a worker of `pool` sends it (the test's admin user may publish any subject). */
async function claimAs(fleet: LocalFleet, pool: string, buildId: string, attempt: number, workerId: string): Promise<ClaimReply> {
  const reply = await fleet.client.nc.request(subjects.claim(pool), encode({ buildId, attempt, workerId }), { timeout: 5_000 });
  return ClaimReply.parse(JSON.parse(new TextDecoder().decode(reply.data)));
}

/** Registers a worker in the workers bucket as a real worker announces itself. */
async function register(fleet: LocalFleet, pool: string, workerId: string): Promise<void> {
  const kv = await new Kvm(fleet.client.nc).open(buckets.workers);
  const now = new Date().toISOString();
  await kv.put(workerKey(pool, workerId), encode({ workerId, pool, builder: 'buildah', version: 'test', state: 'idle', since: now, at: now }));
}

describe('accepting build requests', () => {
  let fleet: LocalFleet;
  let context: string;
  beforeAll(async () => {
    // `idle` has no worker: the tests act as its worker to send forged reports.
    fleet = await startTestFleet({ coordinator: { pools: ['idle'] } });
    context = (await fleet.client.uploadContext(fixture('two-stage'))).digest;
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('builds once when the same request id arrives 5 times concurrently, over NATS and HTTP', async () => {
    const request = { id: 'dup-1', context: { digest: context }, image: { repository: 'app/dup', tags: ['1'] } };
    const viaHttp = () =>
      adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request) }).then(
        async (r) => ({ status: r.status, body: (await r.json()) as { created: boolean; build: { id: string } } }),
      );
    const answers = await Promise.all([
      fleet.client.submit(request),
      fleet.client.submit(request),
      fleet.client.submit(request),
      viaHttp().then((r) => r.body),
      viaHttp().then((r) => r.body),
    ]);
    expect(answers.map((a) => a.build.id)).toEqual(Array(5).fill('dup-1'));
    expect(answers.filter((a) => a.created)).toHaveLength(1);

    const final = await fleet.client.follow('dup-1', {});
    expect(final.state.phase).toBe('pushed');
    const events = await storedEvents(fleet.client.nc, 'dup-1');
    expect(events.filter((e) => e.type === 'queued')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'started')).toHaveLength(1);
    expect(events.filter((e) => e.type === 'pushed')).toHaveLength(1);
    expect(await pendingJobs(fleet.client.nc)).toBe(0);

    // Submitting again after the end answers the same build, and builds nothing.
    const again = await fleet.client.submit(request);
    expect(again).toMatchObject({ created: false, build: { state: { phase: 'pushed' } } });
  });

  it('refuses the same id with a different body as a conflict naming the id', async () => {
    const request = { id: 'dup-2', context: { digest: context }, image: { repository: 'app/dup', tags: ['2'] } };
    await fleet.client.submit(request);
    const err = await fleet.client.submit({ ...request, image: { repository: 'app/dup', tags: ['other'] } }).catch((e: unknown) => e);
    expect(isFleetError(err, ErrorCode.E_CONFLICT)).toBe(true);
    const res = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...request, dockerfile: 'Other.Dockerfile' }),
    });
    expect(res.status).toBe(409);
    await fleet.client.follow('dup-2', {});
  });

  it('rejects an invalid request over HTTP with 400 naming each bad field, and queues nothing', async () => {
    const before = await pendingJobs(fleet.client.nc);
    const res = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'bad one', context: { digest: 'md5:abc' }, image: { repository: 'App/X', tags: [] }, dockerFile: 'x' }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; details: { issues: Array<{ path: string }> } } };
    expect(body.error.code).toBe('E_INVALID_REQUEST');
    const paths = body.error.details.issues.map((i) => i.path);
    expect(paths).toEqual(expect.arrayContaining(['id', 'context.digest', 'image.repository', 'image.tags']));
    expect(body.error.details.issues.some((i) => i.path === '(root)' || i.path.includes('dockerFile'))).toBe(true);
    expect(await pendingJobs(fleet.client.nc)).toBe(before);

    const notJson = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(notJson.status).toBe(400);
    // over the body limit (1 MiB by default): the same clear 400, not a dropped connection
    const huge = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"id":"${'x'.repeat(2 << 20)}"}` });
    expect(huge.status).toBe(400);
    expect(await huge.json()).toMatchObject({ error: { code: 'E_INVALID_REQUEST', message: expect.stringContaining('body larger than') } });
    expect(await (await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds/never-seen`)).json()).toMatchObject({ error: { code: 'E_NOT_FOUND' } });
  });

  it('rejects an invalid request over NATS with an error reply naming the field, and queues nothing', async () => {
    const before = await pendingJobs(fleet.client.nc);
    const err = await fleet.client
      .submit({ id: 'nats-bad', context: { digest: context }, image: { repository: 'app/x', tags: ['has space'] } })
      .catch((e: unknown) => e);
    expect(isFleetError(err, ErrorCode.E_INVALID_REQUEST)).toBe(true);
    if (!isFleetError(err)) return;
    expect(err.message).toContain('image.tags[0]');
    expect(err.details?.issues?.[0]?.path).toBe('image.tags[0]');

    const missing = await fleet.client
      .submit({ id: 'nats-missing-ctx', context: { digest: `sha256:${'0'.repeat(64)}` }, image: { repository: 'app/x', tags: ['1'] } })
      .catch((e: unknown) => e);
    expect(isFleetError(missing, ErrorCode.E_CONTEXT_MISSING)).toBe(true);

    const reserved = await fleet.client
      .submit({ id: 'nats-reserved', context: { digest: context }, buildArgs: { FLEET_REGISTRY: 'evil' }, image: { repository: 'app/x', tags: ['1'] } })
      .catch((e: unknown) => e);
    expect(isFleetError(reserved, ErrorCode.E_INVALID_REQUEST)).toBe(true);

    const garbage = await fleet.client.nc.request(subjects.submit('platform'), new TextEncoder().encode('\u0000not json'), { timeout: 5_000 });
    expect(JSON.parse(new TextDecoder().decode(garbage.data))).toMatchObject({ ok: false, error: { code: 'E_INVALID_REQUEST' } });
    expect(await pendingJobs(fleet.client.nc)).toBe(before);
  });

  it('survives garbage bytes on a job subject: the worker terminates it and builds the next real job', async () => {
    const js = jetstream(fleet.client.nc);
    await js.publish(subjects.jobs('default'), new Uint8Array([0xff, 0x00, 0x13, 0x37]));
    await js.publish(subjects.jobs('default'), new TextEncoder().encode(JSON.stringify({ v: 1, buildId: 'ghost', pool: 'default' })));
    await fleet.client.submit({ id: 'after-garbage', context: { digest: context }, image: { repository: 'app/after', tags: ['1'] } });
    const final = await fleet.client.follow('after-garbage', {});
    expect(final.state.phase).toBe('pushed');
    expect(await fetchManifestDigest({ host: fleet.registry.host, insecure: true }, 'app/after', '1')).not.toBeNull();
    expect(fleet.workers[0]?.pid).toBeGreaterThan(0);
    expect(await pendingJobs(fleet.client.nc)).toBe(0);
  });

  it('refuses a claim from a worker that is not registered in the pool, and keeps the job', async () => {
    await fleet.client.submit({ id: 'impostor-1', pool: 'idle', context: { digest: context }, image: { repository: 'app/impostor', tags: ['1'] } });
    const claim = await claimAs(fleet, 'idle', 'impostor-1', 1, 'impostor');
    expect(claim).toMatchObject({ ok: false, error: { code: 'E_FORBIDDEN' } });
    expect((await fleet.client.status('impostor-1')).state.phase).toBe('queued');
  });

  it('does not trust a worker: a pushed digest the registry does not have fails the build with E_DIGEST_MISMATCH', async () => {
    await fleet.client.submit({ id: 'forged-1', pool: 'idle', context: { digest: context }, image: { repository: 'app/forged', tags: ['1'] } });
    await register(fleet, 'idle', 'rogue');
    expect(await claimAs(fleet, 'idle', 'forged-1', 1, 'rogue')).toEqual({ ok: true });
    const js = jetstream(fleet.client.nc);
    const report = (attempt: number, digest: string, workerId = 'rogue'): WorkerReport => ({
      type: 'pushed', buildId: 'forged-1', attempt, workerId, at: new Date().toISOString(), digest,
      references: [`${fleet.registry.host}/app/forged:1`],
    });
    // Reports from an attempt that is not current, from a worker not holding the claim, or sent
    // under another pool are discarded, whatever they say.
    await js.publish(subjects.report('forged-1', 'idle'), encode(report(7, `sha256:${'1'.repeat(64)}`)));
    await js.publish(subjects.report('forged-1', 'idle'), encode({ ...report(1, `sha256:${'3'.repeat(64)}`, 'bystander'), type: 'failed', error: { code: 'E_INTERNAL', message: 'forged' } }));
    await js.publish(subjects.report('forged-1', 'default'), encode({ ...report(1, `sha256:${'4'.repeat(64)}`), type: 'failed', error: { code: 'E_INTERNAL', message: 'forged' } }));
    await js.publish(subjects.report('forged-1', 'idle'), encode(report(1, `sha256:${'2'.repeat(64)}`)));
    const final = await fleet.client.follow('forged-1', {});
    expect(final.state).toMatchObject({ phase: 'failed', attempt: 1, error: { code: 'E_DIGEST_MISMATCH' } });
    if (final.state.phase === 'failed') expect(final.state.error.message).toContain('no manifest');
    const events = await storedEvents(fleet.client.nc, 'forged-1');
    expect(events.map((e) => e.type)).toEqual(['queued', 'started', 'failed']);
  });

  it('refuses a second claim of the same attempt and a claim of an ended build', async () => {
    await register(fleet, 'idle', 'other');
    const claim = (id: string, attempt: number) => claimAs(fleet, 'idle', id, attempt, 'other');
    await fleet.client.submit({ id: 'claims-1', pool: 'idle', context: { digest: context }, image: { repository: 'app/claims', tags: ['1'] } });
    expect(await claim('claims-1', 1)).toEqual({ ok: true });
    expect(await claim('claims-1', 1)).toMatchObject({ ok: false, error: { code: 'E_STALE_ATTEMPT' } });
    expect(await claim('claims-1', 2)).toEqual({ ok: true });
    expect(await claim('forged-1', 2)).toMatchObject({ ok: false, error: { code: 'E_STALE_ATTEMPT' } });
  });

  it('expires a build no worker started within its queue TTL, and refuses a late claim', async () => {
    const started = Date.now();
    await fleet.client.submit({ id: 'expires-1', pool: 'idle', queueTtlSeconds: 2, context: { digest: context }, image: { repository: 'app/expire', tags: ['1'] } });
    const final = await fleet.client.follow('expires-1', {});
    expect(final.state).toMatchObject({ phase: 'expired', queueTtlSeconds: 2 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900);
    expect(Date.now() - started).toBeLessThan(10_000);
    const events = await storedEvents(fleet.client.nc, 'expires-1');
    expect(events.map((e) => e.type)).toEqual(['queued', 'expired']);
    await register(fleet, 'idle', 'late');
    expect(await claimAs(fleet, 'idle', 'expires-1', 1, 'late')).toMatchObject({ ok: false, error: { code: 'E_STALE_ATTEMPT' } });
    const tooLong = await fleet.client
      .submit({ id: 'expires-2', queueTtlSeconds: 10 ** 7, context: { digest: context }, image: { repository: 'app/expire', tags: ['2'] } })
      .catch((e: unknown) => e);
    expect(isFleetError(tooLong, ErrorCode.E_INVALID_REQUEST)).toBe(true);
  });

  it('builds each id once when 40 ids arrive 5 times each at once, over NATS and HTTP, through two coordinators', async () => {
    const replica = await fleet.addCoordinator();
    const idleJobs = () => pendingJobs(fleet.client.nc, 'idle');
    const before = await idleJobs();
    const ids = Array.from({ length: 40 }, (_, i) => `load-${i}`);
    const request = (id: string) => ({ id, pool: 'idle', context: { digest: context }, image: { repository: 'app/load', tags: [id] } });
    const post = async (url: string, id: string) =>
      (await (await adminFetch(fleet, `${url}/v1/builds`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request(id)) })).json()) as {
        created: boolean;
        build: { id: string };
      };
    const answers = await Promise.all(
      ids.flatMap((id) => [
        fleet.client.submit(request(id)),
        post(fleet.coordinator.httpUrl, id),
        post(replica.httpUrl, id),
        fleet.client.submit(request(id)),
        post(replica.httpUrl, id),
      ]),
    );
    expect(answers).toHaveLength(200);
    for (const id of ids) {
      const mine = answers.filter((a) => a.build.id === id);
      expect(mine, id).toHaveLength(5);
      expect(mine.filter((a) => a.created), id).toHaveLength(1);
    }
    expect((await idleJobs()) - before).toBe(40);
    const queuedEvents = await Promise.all(ids.map(async (id) => (await storedEvents(fleet.client.nc, id)).filter((e) => e.type === 'queued').length));
    expect(queuedEvents).toEqual(Array(40).fill(1));
    for (const id of ids) await fleet.client.cancel(id);
  });

  it('records and queues each id once when 20 ids arrive 64 times each at once (half HTTP, half NATS), and refuses another body for them', async () => {
    const idleJobs = () => pendingJobs(fleet.client.nc, 'idle');
    const before = await idleJobs();
    const ids = Array.from({ length: 20 }, (_, i) => `burst-${i}`);
    const request = (id: string, tag = id) => ({ id, pool: 'idle', context: { digest: context }, image: { repository: 'app/burst', tags: [tag] } });
    type Answer = { status: number; created: boolean; id: string } | { status: number; code: string };
    const viaHttp = async (body: object): Promise<Answer> => {
      const res = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/builds`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const json = (await res.json()) as { created?: boolean; build?: { id: string }; error?: { code: string } };
      return json.error === undefined ? { status: res.status, created: json.created === true, id: json.build?.id ?? '' } : { status: res.status, code: json.error.code };
    };
    const viaNats = (body: ReturnType<typeof request>): Promise<Answer> =>
      fleet.client.submit(body).then(
        (a) => ({ status: 0, created: a.created, id: a.build.id }),
        (e: unknown) => ({ status: 0, code: isFleetError(e) ? e.code : String(e) }),
      );

    const answers = await Promise.all(ids.flatMap((id) => Array.from({ length: 64 }, (_, i) => (i % 2 === 0 ? viaHttp(request(id)) : viaNats(request(id))))));
    expect(answers.filter((a) => 'code' in a)).toEqual([]);
    for (const id of ids) {
      const mine = answers.filter((a): a is Extract<Answer, { id: string }> => 'id' in a && a.id === id);
      expect(mine, id).toHaveLength(64);
      expect(mine.filter((a) => a.created), id).toHaveLength(1);
      // HTTP says it too: 202 for the one that created the build, 200 for its twins.
      expect(mine.filter((a) => a.status === 202).length, id).toBeLessThanOrEqual(1);
      expect(mine.filter((a) => a.status === 200).length + mine.filter((a) => a.status === 202).length, id).toBe(32);
    }
    expect((await idleJobs()) - before).toBe(20);
    const queuedEvents = await Promise.all(ids.map(async (id) => (await storedEvents(fleet.client.nc, id)).filter((e) => e.type === 'queued').length));
    expect(queuedEvents).toEqual(Array(20).fill(1));

    // Another body under the same ids, as concurrently: a conflict every time, and nothing queued.
    const conflicts = await Promise.all(ids.flatMap((id) => Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? viaHttp(request(id, 'other')) : viaNats(request(id, 'other'))))));
    expect(conflicts.map((a) => ('code' in a ? a.code : 'accepted'))).toEqual(Array(160).fill(ErrorCode.E_CONFLICT));
    expect(conflicts.filter((a) => a.status !== 0).every((a) => a.status === 409)).toBe(true);
    expect((await idleJobs()) - before).toBe(20);
    for (const id of ids) await fleet.client.cancel(id);
  });
});
