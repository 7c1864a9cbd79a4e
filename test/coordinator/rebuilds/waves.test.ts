import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsServer, type NatsServer } from '../../../deploy/local/nats-server.ts';
import { issueNatsUsers, renderAuthorization } from '../../../node/nats-authorization.ts';
import { connectNats, type NatsConnection } from '../../../adapters/nats.ts';
import { createLogger } from '../../../adapters/logger.ts';
import { ErrorCode, FleetError, type BuildEvent, type BuildRecord, type Dependent, type Phase } from '../../../protocol/index.ts';
import { Waves, rebuildIdOf } from '../../../coordinator/rebuilds/waves.ts';
import type { Caller } from '../../../coordinator/tenancy/authorize.ts';
import { eventually } from '../../helpers/eventually.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { JetStreamResources } from '../../../coordinator/jetstream-resources.ts';

const log = createLogger('waves-test', { level: 'warn', pretty: false });
const OLD = `sha256:${'a'.repeat(64)}`;
const NEW = `sha256:${'b'.repeat(64)}`;
const BASE = '127.0.0.1:5000/official/base:1';

function dependent(i: number, pool = 'default', tenant = 'shop'): Dependent {
  return { base: BASE, baseDigest: OLD, repository: `app/shop/a${i}`, tags: ['1'], tenant, pool, buildId: `a${i}-0`, digest: OLD, promotedAt: new Date().toISOString() };
}

/** A stand-in for the intake and the records: builds stay in the phase the test sets. */
class FakeFleet {
  readonly phases = new Map<string, Phase>();
  readonly submitted: Array<{ id: string; caller: Caller; rebuildOf: unknown }> = [];
  readonly events: BuildEvent[] = [];
  readonly told: Array<{ tenant: string; id: string; outcome: unknown }> = [];
  refuse = new Set<string>();

  deps() {
    return {
      submit: async (raw: unknown, caller: Caller) => {
        const r = raw as { id: string; rebuildOf: unknown };
        if (this.refuse.has(r.id)) throw new FleetError(ErrorCode.E_CONTEXT_MISSING, 'no build context');
        this.submitted.push({ id: r.id, caller, rebuildOf: r.rebuildOf });
        this.phases.set(r.id, 'queued');
        return {};
      },
      record: async (id: string): Promise<BuildRecord | null> => {
        const prev = /^(a\d+)-0$/.exec(id);
        const phase = this.phases.get(id);
        if (prev === null && phase === undefined) return null;
        const repository = `app/shop/${prev?.[1] ?? 'x'}`;
        const at = new Date().toISOString();
        const state = phase === undefined || phase === 'pushed' ? { phase: 'pushed' as const, attempt: 1, digest: OLD, references: ['r'], finishedAt: at } : phase === 'failed' ? { phase: 'failed' as const, attempt: 1, error: { code: ErrorCode.E_GATE_BLOCKED, message: 'blocked' }, finishedAt: at } : { phase: 'queued' as const };
        return { id, requestHash: 'h', tenant: 'shop', createdAt: at, updatedAt: at, state, request: { id, kind: 'custom', pool: 'default', context: { digest: OLD }, dockerfile: 'Dockerfile', buildArgs: {}, labels: {}, secrets: [], image: { repository, tags: ['1'] } } };
      },
      publish: async (e: BuildEvent) => void this.events.push(e),
      notify: async (tenant: string, _subject: string, data: Record<string, unknown>, id: string) => void this.told.push({ tenant, id, outcome: data['outcome'] }),
    };
  }
}

describe('rebuild waves (real JetStream KV)', () => {
  let dir: string;
  let nats: NatsServer;
  let nc: NatsConnection;
  let resources: JetStreamResources;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'waves-'));
    const users = await issueNatsUsers(join(dir, 'creds'), [{ kind: 'coordinator' }]);
    nats = await startNatsServer(join(dir, 'nats'), { authorization: renderAuthorization(users) });
    const creds = users[0]?.credentials;
    if (creds === undefined) throw new Error('no coordinator user');
    nc = await connectNats(nats.url, 'waves-test', creds, log);
    resources = new JetStreamResources(nc, await jetstreamManager(nc), 1);
  });
  afterAll(async () => {
    await nc?.drain();
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('one wave per (base, new digest) however often noticed; at most maxInFlightPerPool rebuilds per pool at once; refused and blocked ones are reported and never retried', async () => {
    const fleet = new FakeFleet();
    const waves = await Waves.open(resources, fleet.deps(), 2, log);
    const stale = [dependent(1), dependent(2), dependent(3), dependent(4, 'other'), dependent(5)];
    fleet.refuse.add(rebuildIdOf(stale[4] ?? dependent(5), NEW));
    const started = await Promise.all(Array.from({ length: 6 }, (_, i) => waves.start(BASE, NEW, stale, i % 2 === 0 ? 'notification' : 'poller', new Date().toISOString())));
    expect(started.filter(Boolean)).toHaveLength(1);
    // A second coordinator replica noticing the same change makes nothing new.
    const replica = await Waves.open(resources, fleet.deps(), 2, log);
    expect(await replica.start(BASE, NEW, stale, 'promotion', new Date().toISOString())).toBe(false);

    // The cap: two of the default pool's four, and the other pool's one; the refused one reported.
    await eventually(() => fleet.submitted.length === 3, 10_000, 'the first rebuilds to be submitted');
    await waves.settled();
    expect(fleet.submitted.map((s) => s.id).sort()).toEqual([rebuildIdOf(stale[0] ?? dependent(1), NEW), rebuildIdOf(stale[1] ?? dependent(2), NEW), rebuildIdOf(stale[3] ?? dependent(4), NEW)].sort());
    expect(fleet.submitted[0]?.caller).toEqual({ subject: 'platform:rebuilds', tenant: 'shop', role: 'submitter' });
    expect(fleet.submitted[0]?.rebuildOf).toMatchObject({ base: BASE, from: OLD, to: NEW, reason: expect.stringContaining('official/base:1') });
    expect(fleet.events.map((e) => e.type)).toEqual(['rebuild', 'rebuild', 'rebuild']);
    let [view] = await waves.list();
    expect(view?.members.filter((m) => m.status === 'pending').map((m) => m.repository)).toEqual(['app/shop/a3', 'app/shop/a5']);

    // One ends blocked, one promoted: the pending take their places (the refused one reported); nothing is resubmitted.
    fleet.phases.set(rebuildIdOf(stale[0] ?? dependent(1), NEW), 'failed');
    fleet.phases.set(rebuildIdOf(stale[1] ?? dependent(2), NEW), 'pushed');
    waves.pump();
    await eventually(() => fleet.submitted.length === 4, 10_000, 'the last pending rebuild to be submitted');
    await waves.settled();
    [view] = await waves.list();
    expect(view?.members.find((m) => m.repository === 'app/shop/a5')).toMatchObject({ status: 'refused', error: { code: 'E_CONTEXT_MISSING' } });
    for (const id of fleet.phases.keys()) fleet.phases.set(id, fleet.phases.get(id) === 'failed' ? 'failed' : 'pushed');
    waves.pump();
    await eventually(async () => (await waves.list())[0]?.closedAt !== undefined, 10_000, 'the wave to close');
    [view] = await waves.list();
    expect(view?.members.map((m) => [m.repository, m.phase])).toEqual([
      ['app/shop/a1', 'failed'], ['app/shop/a2', 'pushed'], ['app/shop/a3', 'pushed'], ['app/shop/a4', 'pushed'], ['app/shop/a5', 'refused'],
    ]);
    // the failure's code, so the console can say a gate blocked it
    expect(view?.members.map((m) => m.failedWith)).toEqual(['E_GATE_BLOCKED', undefined, undefined, undefined, undefined]);
    expect(new Set(fleet.submitted.map((s) => s.id)).size).toBe(fleet.submitted.length);
    waves.pump();
    await waves.settled();
    expect(fleet.submitted).toHaveLength(4);
    // Each tenant told once per member, however often the waves were pumped.
    expect(fleet.told.map((t) => t.outcome).sort()).toEqual(['failed', 'pushed', 'pushed', 'pushed', 'refused']);
    expect(await waves.start(BASE, NEW, stale, 'poller', new Date().toISOString())).toBe(false);
  });

  it('a base that moves again supersedes what its older wave had not submitted yet: each dependent waits for the newer digest only', async () => {
    const fleet = new FakeFleet();
    const waves = await Waves.open(resources, fleet.deps(), 1, log);
    const base = '127.0.0.1:5000/official/jre17:1';
    const NEWER = `sha256:${'c'.repeat(64)}`;
    const stale = [6, 7, 8].map((i) => ({ ...dependent(i), base }));
    await waves.start(base, NEW, stale, 'notification', new Date().toISOString());
    await eventually(() => fleet.submitted.length === 1, 10_000, 'the first rebuild of the older wave');
    await waves.settled();
    await waves.start(base, NEWER, stale, 'notification', new Date().toISOString());
    await eventually(async () => (await waves.list({ base })).find((w) => w.to === NEW)?.members.filter((m) => m.status === 'superseded').length === 2, 10_000, 'the older wave to be superseded');
    // The older wave's one build is still in flight: the cap holds the newer wave back until it ends.
    await waves.settled();
    expect(fleet.submitted).toHaveLength(1);
    fleet.phases.set(fleet.submitted[0]?.id ?? '', 'pushed');
    waves.pump();
    await eventually(() => fleet.submitted.length === 2, 10_000, 'the newer wave to start');
    const [newer, older] = await waves.list({ base });
    expect(older?.closedAt).toBeDefined();
    expect(older?.members.map((m) => m.phase)).toEqual(['pushed', 'superseded', 'superseded']);
    expect(newer?.to).toBe(NEWER);
    expect(fleet.submitted[1]?.id).toBe(rebuildIdOf(stale[0] ?? dependent(6), NEWER));
  });
});
