import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { z } from 'zod';
import { builderToolPath } from '../../adapters/environment.ts';
import { RegistryClient } from '../../adapters/registry-client.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { buildkitSeedRoot } from '../../worker/builders/buildkit-seed.ts';
import { eventually, eventuallyValue } from '../helpers/eventually.ts';
import { archivedLog, fixture, startTestFleet } from '../helpers/fleet.ts';
import { startWebhookReceiver } from '../helpers/webhook-receiver.ts';

/** distribution's notification envelope, the fields read here */
const RegistryEvents = z.object({
  events: z.array(z.object({ action: z.string(), target: z.object({ mediaType: z.string().optional(), size: z.number().optional(), repository: z.string(), fromRepository: z.string().optional() }) })),
});

describe("the node's shared image store", () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet({ workers: 0, sharedImageStore: true, buildkitSeed: true, coordinator: { pools: ['plain', 'seeded', 'buildkit', 'buildkit-plain'] } });
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

  /** official/base:1's layers, as the registry has them */
  async function baseLayers(): Promise<Array<{ digest: string; size: number }>> {
    const base = await new RegistryClient({ host: fleet.registry.host, insecure: true }).manifest('official/base', '1');
    return z.object({ layers: z.array(z.object({ digest: z.string(), size: z.number() })) }).parse(JSON.parse(Buffer.from(base?.bytes ?? []).toString('utf8'))).layers;
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

  it("a fresh worker's pushes mount the official base's layers, none compressed and uploaded again", async () => {
    // Without the node's blob info cache a fresh worker knows the store's layers only by their
    // uncompressed digests: its first push holding the base compressed it again and uploaded it
    // (about 4 s for jdk17). With it, the layers are mounted from official/base.
    const receiver = await startWebhookReceiver();
    try {
      await fleet.registry.notifyTo(receiver.url, 'registry-events');
      await fleet.addWorker({ pool: 'seeded' });
      await buildOn('seeded', 'shared-3');
      const baseLayerBytes = (await baseLayers())[0]?.size ?? 0;
      expect(baseLayerBytes).toBeGreaterThan(1_000_000);
      const ours = (e: { target: { repository: string } }): boolean => e.target.repository.endsWith('app/shared-seeded');
      // the release manifest's push is the build's last event: every blob event came before it
      const events = await eventuallyValue(() => {
        const all = receiver.received.flatMap((r) => RegistryEvents.parse(JSON.parse(r.body)).events).filter(ours);
        return Promise.resolve(all.some((e) => e.action === 'push' && e.target.repository === 'app/shared-seeded' && e.target.mediaType?.includes('manifest') === true) ? all : undefined);
      }, 30_000, "the release manifest's push event");
      const blobUploads = events.filter((e) => e.action === 'push' && e.target.mediaType?.includes('manifest') !== true);
      expect(blobUploads.filter((e) => (e.target.size ?? 0) >= baseLayerBytes / 2)).toEqual([]);
      expect(events.some((e) => e.action === 'mount' && e.target.fromRepository === 'official/base')).toBe(true);
    } finally {
      await receiver.close();
    }
  });

  describe("BuildKit's seed root", () => {
    /** The seed's files the daemon writes in place: a worker must never have written them. */
    async function seedDatabases(): Promise<string> {
      const root = buildkitSeedRoot(join(fleet.stateDir, 'shared-images'));
      const files = ['cache.db', 'runc-overlayfs/metadata_v2.db', 'runc-overlayfs/snapshots/metadata.db'];
      return (await Promise.all(files.map(async (f) => `${f} ${createHash('sha256').update(await readFile(join(root, f))).digest('hex')} links=${(await stat(join(root, f))).nlink}`))).join('\n');
    }

    it("a fresh BuildKit worker finds the official base unpacked in a root the node copied ahead, with a daemon it started ahead, leaves a copy for the next worker, and never writes the node's seed", async () => {
      const before = await seedDatabases();
      expect(before).not.toContain('links=2');
      const worker = await fleet.addWorker({ pool: 'buildkit', builder: 'buildkit' });
      // idle long enough for its spare root and the daemon on it to be ready (the daemon answers)
      const socket = `unix://${join(worker.stateDir, 'buildkit', 'buildkitd.sock')}`;
      const buildctl = async (): Promise<boolean> => (await execa('buildctl', ['--addr', socket, 'debug', 'workers'], { env: { PATH: builderToolPath() }, reject: false })).exitCode === 0;
      await eventually(buildctl, 60_000, "the worker's buildkitd, started ahead");
      const log = await buildOn('buildkit', 'seed-bk-1');
      expect(log).toContain("starts from the node's BuildKit seed");
      expect(log).toContain('its daemon already running');
      expect(log).not.toContain('buildkitd restarted');
      expect(log).toContain('[build 1/');
      expect(log).not.toMatch(/extracting sha256:/);
      // The node's fill made that root ahead (a rename, not a copy); the worker makes the next one after its build.
      expect(log).toContain('a copy the node made ahead');
      const ready = join(dirname(buildkitSeedRoot(join(fleet.stateDir, 'shared-images'))), 'ready');
      const copiedAhead = (): Promise<void> => eventually(async () => (await readdir(ready)).some((e) => /^[0-9a-f]{12}-[0-9a-f]{8}$/.test(e)), 60_000, 'a copy of the seed made ahead for the next worker');
      await copiedAhead();
      // read once that copy is done: while it is made, the seed's files have a second link for a moment
      expect(await seedDatabases()).toBe(before);
      await worker.stop();
      await fleet.addWorker({ pool: 'buildkit', builder: 'buildkit' });
      const next = await buildOn('buildkit', 'seed-bk-3');
      expect(next).toContain('a copy the node made ahead');
      // the app's own layers come from its registry layer cache; the base's are unpacked already
      const layers = await baseLayers();
      expect(layers.length).toBeGreaterThan(0);
      for (const { digest } of layers) expect(next).not.toContain(`extracting ${digest}`);
      await copiedAhead();
      expect(await seedDatabases()).toBe(before);
    });

    it('a fresh BuildKit worker without the store unpacks the base (control)', async () => {
      await fleet.addWorker({ pool: 'buildkit-plain', builder: 'buildkit', sharedImageStore: undefined });
      const log = await buildOn('buildkit-plain', 'seed-bk-2');
      expect(log).not.toContain("starts from the node's BuildKit seed");
      expect(log).toMatch(/extracting sha256:/);
    });
  });
});
