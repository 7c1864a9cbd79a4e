import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { DISTRIBUTION_EVENTS_MEDIA_TYPE, RebuildWaveView, type BuildView } from '../../protocol/index.ts';
import { RegistryClient, fetchManifestDigest } from '../../adapters/registry-client.ts';
import { republishBase } from '../../cli/publish-base.ts';
import { storedEvents } from '../../client/index.ts';
import { execa } from 'execa';
import { FLEET_BIN, adminFetch, cliEnv, fixture, startTestFleet } from '../helpers/fleet.ts';
import { eventually, eventuallyValue } from '../helpers/eventually.ts';
import { z } from 'zod';

const RebuildsAnswer = z.object({ waves: z.array(RebuildWaveView), looks: z.number() });

/**
 * Rebuild on base update, end to end: a real registry that notifies the coordinator, real builds.
 * official/base ← bases/rebuild-base ← app/on-custom; official/base ← app/shop/tiny (tenant shop), app/leaky;
 * official/jre17 ← app/other. Republishing official/base (a real new layer, signed) starts one
 * wave: the custom base and the direct apps are rebuilt once, the app on the custom base once
 * after it (on its new digest), app/other never, and app/leaky's rebuild is blocked and stays so.
 */
describe('rebuilds', () => {
  let fleet: LocalFleet;
  let registry: RegistryClient;
  let baseRef: string;
  const released: Record<string, string> = {};

  let shopToken: string;

  /** Built as the platform's admin, or (`asShop`) by the tenant `shop` through the HTTP API with its own token. */
  async function build(id: string, app: string, repository: string, kind: 'custom' | 'custom-base' = 'custom', asShop = false): Promise<BuildView> {
    const { digest } = await fleet.client.uploadContext(fixture(app));
    const request = { id, kind, context: { digest }, image: { repository, tags: ['1'] } };
    if (!asShop) await fleet.client.submit(request);
    else {
      const res = await fetch(`${fleet.coordinator.httpUrl}/v1/builds`, { method: 'POST', headers: { authorization: `Bearer ${shopToken}`, 'content-type': 'application/json' }, body: JSON.stringify(request) });
      expect(res.status).toBe(202);
    }
    const done = await fleet.client.follow(id, {});
    expect(done.state.phase, `${id}: ${JSON.stringify(done.state)}`).toBe('pushed');
    return done;
  }

  async function rebuilds(base?: string): Promise<z.infer<typeof RebuildsAnswer>> {
    const res = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/rebuilds${base === undefined ? '' : `?base=${encodeURIComponent(base)}`}`);
    expect(res.status).toBe(200);
    return RebuildsAnswer.parse(await res.json());
  }

  beforeAll(async () => {
    fleet = await startTestFleet({
      workers: 2,
      registryNotifications: true,
      tenants: [{ name: 'shop', repositories: ['app/shop/*'], pools: ['default'], secrets: {}, limits: {} }],
      // The poller runs often here, so the test sees it notice the same change as the notifications.
      coordinator: { rebuilds: { debounceMs: 300, pollIntervalMs: 1_500, pollJitter: 0.2, maxInFlightPerPool: 2, pumpIntervalMs: 1_000 } },
    });
    registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
    baseRef = `${fleet.registry.host}/official/base:1`;
    shopToken = (await fleet.client.tokens({ op: 'create', tenant: 'shop', role: 'submitter', name: 'shop ci' })).token ?? '';
    // The custom base first: the app on it must be built on it.
    await build('rb-base-0', 'rebuild-base', 'bases/rebuild-base', 'custom-base');
    const apps = await Promise.all([
      build('rb-on-custom-0', 'rebuild-on-base', 'app/on-custom'),
      build('rb-tiny-0', 'tiny', 'app/shop/tiny', 'custom', true),
      build('rb-leaky-0', 'rebuild-leaky', 'app/leaky'),
      build('rb-other-0', 'rebuild-other', 'app/other'),
    ]);
    for (const b of apps) if (b.state.phase === 'pushed') released[b.request.image.repository] = b.state.digest;
  }, 900_000);
  afterAll(async () => {
    await fleet?.stop();
  });

  it('republishing official/base rebuilds every dependent once, bases before their dependents; other bases untouched; a blocked rebuild stays blocked', async () => {
    // Each first build followed its bases (the worker's resolved FROMs): the index has them.
    const tiny = await fleet.client.status('rb-tiny-0');
    expect(tiny.state.phase === 'pushed' ? tiny.state.bases?.map((b) => b.name) : null).toEqual([baseRef]);

    const { from, to, taggedAt: pushedAt } = await republishBase(registry.endpoint, 'official/base:1', 'test-1');
    expect(to).not.toBe(from);

    // Notified by the registry: the wave exists and its first rebuild is queued within moments.
    const wave = await eventuallyValue(async () => (await rebuilds(baseRef)).waves.find((w) => w.to === to), 60_000, 'a wave for the new official/base');
    const firstQueuedMs = await eventuallyValue(async () => {
      const submitted = (await rebuilds(baseRef)).waves.find((w) => w.to === to)?.members.filter((m) => m.submittedAt !== undefined) ?? [];
      const first = submitted.map((m) => Date.parse(m.submittedAt ?? '')).sort()[0];
      return first === undefined ? undefined : first - pushedAt;
    }, 60_000, 'a first rebuild queued');
    process.stderr.write(`rebuilds: base push → first dependent queued in ${firstQueuedMs} ms (noticed by ${wave.noticedBy})\n`);
    // Either path may see it first (the poller runs every 1.5 s here); both end in this one wave.
    expect(['notification', 'poller']).toContain(wave.noticedBy);
    // Direct dependents only: the app on the custom base is not in official/base's wave, app/other is in none.
    expect(wave.members.map((m) => m.repository).sort()).toEqual(['app/leaky', 'app/shop/tiny', 'bases/rebuild-base']);

    const ended = await eventuallyValue(async () => {
      const w = (await rebuilds(baseRef)).waves.find((x) => x.to === to);
      return w?.closedAt === undefined ? undefined : w;
    }, 600_000, 'the official/base wave to end');
    const phase = (repo: string) => ended.members.find((m) => m.repository === repo);
    expect(phase('app/shop/tiny')?.phase).toBe('pushed');
    expect(phase('bases/rebuild-base')?.phase).toBe('pushed');
    expect(phase('app/leaky')?.phase).toBe('failed');

    // The rebuilt app's record says why, names the new base digest, and is its tenant's (built on its behalf, its rules applied).
    const tinyRebuild = await fleet.client.status(phase('app/shop/tiny')?.rebuildId ?? '');
    expect(tinyRebuild.tenant).toBe('shop');
    expect(tinyRebuild.request.rebuildOf).toMatchObject({ buildId: 'rb-tiny-0', base: baseRef, from, to, reason: expect.stringContaining('official/base:1 sha256:') });
    expect(tinyRebuild.state.phase === 'pushed' ? tinyRebuild.state.bases : null).toEqual([{ name: baseRef, digest: to }]);
    expect((await storedEvents(fleet.client.nc, tinyRebuild.id)).some((e) => e.type === 'rebuild')).toBe(true);
    // The tenant is told (it has no webhook here: the delivery log records that, so nothing vanishes).
    await eventually(async () => {
      const res = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/notifications?tenant=shop`);
      const body = (await res.json()) as { deliveries?: Array<{ type: string; subject: string }> };
      return (body.deliveries ?? []).some((d) => d.type === 'dev.fleet.image.rebuilt' && d.subject === tinyRebuild.id);
    }, 60_000, 'the shop tenant to be told of its rebuild');

    // The chain: the custom base's own new digest starts its wave, which rebuilds the app on it once, after it.
    const customRebuild = await fleet.client.status(phase('bases/rebuild-base')?.rebuildId ?? '');
    const customDigest = customRebuild.state.phase === 'pushed' ? customRebuild.state.digest : '';
    const customRef = `${fleet.registry.host}/bases/rebuild-base:1`;
    const chained = await eventuallyValue(async () => {
      const w = (await rebuilds(customRef)).waves.find((x) => x.to === customDigest);
      return w?.closedAt === undefined ? undefined : w;
    }, 600_000, 'the custom base wave to end');
    expect(chained.members.map((m) => [m.repository, m.phase])).toEqual([['app/on-custom', 'pushed']]);
    const appRebuild = await fleet.client.status(chained.members[0]?.rebuildId ?? '');
    expect(appRebuild.request.rebuildOf).toMatchObject({ buildId: 'rb-on-custom-0', base: customRef, to: customDigest });
    expect(appRebuild.state.phase === 'pushed' ? appRebuild.state.bases : null).toEqual([{ name: customRef, digest: customDigest }]);
    expect(Date.parse(appRebuild.createdAt)).toBeGreaterThan(Date.parse(customRebuild.state.phase === 'pushed' ? customRebuild.state.finishedAt : ''));

    // app/other (on jre17) untouched; app/leaky's release tag still names its first build.
    expect(await fetchManifestDigest(registry.endpoint, 'app/other', '1')).toBe(released['app/other']);
    expect(await fetchManifestDigest(registry.endpoint, 'app/leaky', '1')).toBe(released['app/leaky']);
    const leaky = await fleet.client.status(phase('app/leaky')?.rebuildId ?? '');
    expect(leaky.state).toMatchObject({ phase: 'failed', error: { code: 'E_GATE_BLOCKED' } });
    expect((await rebuilds()).waves.flatMap((w) => w.members).filter((m) => m.repository === 'app/other')).toEqual([]);

    // The same notification five more times, and the poller's rounds: still one wave, one rebuild each, the blocked one not retried.
    const before = (await rebuilds()).looks;
    const envelope = { events: [{ action: 'push', target: { repository: 'official/base', tag: '1', digest: to, mediaType: 'application/vnd.oci.image.manifest.v1+json' } }] };
    for (let i = 0; i < 5; i++) {
      const res = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/registry/events`, { method: 'POST', headers: { 'content-type': DISTRIBUTION_EVENTS_MEDIA_TYPE }, body: JSON.stringify(envelope) });
      expect(res.status).toBe(200);
    }
    // One debounced look for the five, and at least two poller rounds over the three followed bases.
    await eventually(async () => (await rebuilds()).looks >= before + 1 + 2 * 3, 60_000, 'the notifications and two poller rounds to be looked at');
    const after = await rebuilds();
    expect(after.waves.filter((w) => w.base === baseRef && w.to === to)).toHaveLength(1);
    expect(after.waves.filter((w) => w.base === customRef)).toHaveLength(1);
    const all = after.waves.flatMap((w) => w.members);
    for (const repo of ['app/shop/tiny', 'app/leaky', 'bases/rebuild-base', 'app/on-custom']) expect(all.filter((m) => m.repository === repo), repo).toHaveLength(1);
    expect((await fleet.client.status(leaky.id)).state.phase).toBe('failed');

    // `fleet rebuilds` shows the same waves, for people and as JSON lines.
    const json = await execa(process.execPath, [FLEET_BIN, 'rebuilds', '--base', 'official/base:1', '--json'], { env: cliEnv(fleet) });
    const listed = json.stdout.split('\n').filter((l) => l !== '').map((l) => RebuildWaveView.parse(JSON.parse(l)));
    expect(listed.map((w) => [w.base, w.to, w.members.length])).toEqual([[baseRef, to, 3]]);
    const human = await execa(process.execPath, [FLEET_BIN, 'rebuilds'], { env: cliEnv(fleet) });
    expect(human.stdout).toContain(`${baseRef} → ${to.slice(0, 19)}…`);
    expect(human.stdout).toMatch(/app\/on-custom:1 +platform +from sha256:[0-9a-f]{12}… +pushed/);
    process.stderr.write(`${human.stdout}\n`);
  }, 1_200_000);

  it("registry notifications need a platform credential and a notification body; a tenant can neither notify nor claim a build is a rebuild", async () => {
    const res = await fetch(`${fleet.coordinator.httpUrl}/v1/registry/events`, { method: 'POST', body: '{"events":[]}' });
    expect(res.status).toBe(401);
    const bad = await adminFetch(fleet, `${fleet.coordinator.httpUrl}/v1/registry/events`, { method: 'POST', body: '{"hello":1}' });
    expect(bad.status).toBe(400);
    const asShop = (path: string, body: unknown) =>
      fetch(`${fleet.coordinator.httpUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${shopToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await asShop('/v1/registry/events', { events: [] })).status).toBe(403);
    const digest = `sha256:${'c'.repeat(64)}`;
    const forged = await asShop('/v1/builds', {
      id: 'shop-forged', context: { digest }, image: { repository: 'app/shop/api', tags: ['1'] },
      rebuildOf: { buildId: 'rb-tiny-0', base: baseRef, from: digest, to: digest, reason: 'forged' },
    });
    expect(forged.status).toBe(403);
    expect(await forged.text()).toContain('rebuildOf');
  });
});
