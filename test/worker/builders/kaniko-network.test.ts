import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkKanikoNetwork, kanikoRunArgs, type KanikoNetwork, type KanikoRootfs, type KanikoSandbox } from '../../../worker/builders/kaniko.ts';
import type { BuildPlan } from '../../../worker/builders/types.ts';
import { compileWorkerConfig } from '../../../worker/config.ts';
import { FleetError } from '../../../protocol/index.ts';

const BASE = { natsUrl: 'nats://x:4222', natsCredentials: { seedFile: '/s', user: 'worker-default' }, stateDir: '/var/lib/fleet', s3: { bucket: 'contexts' } } as const;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kaniko-network-'));
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** the `--network` value of the `podman run` a plan gets with that sandbox network */
async function networkOf(network: KanikoNetwork): Promise<string | undefined> {
  const plan: BuildPlan = { buildId: 'b', contextDir: dir, dockerfile: join(dir, 'Dockerfile'), buildArgs: {}, secrets: {}, labels: {}, destinations: ['127.0.0.1:5000/app/x:1'], workDir: dir };
  const argv = await kanikoRunArgs(plan, 'img', 'name', { dockerfile: join(dir, 'Dockerfile'), bases: dir, cache: dir, cacheLayers: false, network }, []);
  expect(argv.filter((a) => a === '--network')).toHaveLength(1);
  // the pod's hostname only with the pod's network (runc's sethostname is refused in a pod)
  expect(argv.includes('--uts'), network).toBe(network === 'pod');
  return argv[argv.indexOf('--network') + 1];
}

describe('kaniko sandbox network', () => {
  it('uses slirp4netns with the host loopback out of reach unless the pool says pod', async () => {
    expect(await networkOf('private')).toBe('slirp4netns:allow_host_loopback=false');
    expect(await networkOf('none')).toBe('none');
    expect(compileWorkerConfig(BASE).kanikoNetwork).toBe('slirp4netns');
  });

  it('runs the executor in the pod’s own namespace (--network host) only for `pod`', async () => {
    expect(await networkOf('pod')).toBe('host');
    expect(compileWorkerConfig({ ...BASE, kanikoNetwork: 'pod' }).kanikoNetwork).toBe('pod');
  });

  it('refuses slirp4netns without a tun device instead of falling back', () => {
    expect(() => checkKanikoNetwork('private', false)).toThrow(FleetError);
    expect(() => checkKanikoNetwork('private', false)).toThrow(/"kanikoNetwork": "pod"/);
    expect(() => checkKanikoNetwork('private', true)).not.toThrow();
    expect(() => checkKanikoNetwork('pod', false)).not.toThrow();
    expect(() => checkKanikoNetwork('none', false)).not.toThrow();
    expect(() => compileWorkerConfig({ ...BASE, kanikoNetwork: 'host' as never })).toThrow();
  });
});

describe('kaniko snapshot mode', () => {
  const plan = (): BuildPlan => ({ buildId: 'b', contextDir: dir, dockerfile: join(dir, 'Dockerfile'), buildArgs: {}, secrets: {}, labels: {}, destinations: ['127.0.0.1:5000/app/x:1'], workDir: dir });
  const sandbox = (): KanikoSandbox => ({ dockerfile: join(dir, 'Dockerfile'), bases: dir, cache: dir, cacheLayers: false, network: 'none' });

  it("snapshots by ctime only with an executor that has the mode (the fleet's image says so), else kaniko's own default", async () => {
    const ctime = await kanikoRunArgs(plan(), 'img', 'name', { ...sandbox(), ctimeSnapshots: true }, []);
    expect(ctime[ctime.indexOf('--snapshot-mode') + 1]).toBe('ctime');
    expect(await kanikoRunArgs(plan(), 'img', 'name', { ...sandbox(), ctimeSnapshots: false }, [])).not.toContain('--snapshot-mode');
    expect(await kanikoRunArgs(plan(), 'img', 'name', sandbox(), [])).not.toContain('--snapshot-mode');
  });
});

describe('kaniko final stage in a container of its own', () => {
  const plan = (): BuildPlan => ({ buildId: 'b', contextDir: dir, dockerfile: join(dir, 'Dockerfile'), buildArgs: {}, secrets: {}, labels: {}, destinations: ['127.0.0.1:5000/app/x:1'], workDir: dir });
  const rootfs = (image: string): KanikoRootfs => ({ image, base: `r/${image}@sha256:aa`, executor: join(dir, 'executor') });
  const sandbox = (): KanikoSandbox => ({ dockerfile: join(dir, 'Dockerfile'), bases: dir, cache: dir, cacheLayers: false, network: 'none', rootfs: rootfs('first'), finalRootfs: rootfs('final') });

  it('runs the stages before the final one on the first base, then the final one on its own, and keeps the kaniko dir between them', async () => {
    const before = await kanikoRunArgs(plan(), 'img', 'name', sandbox(), [], {}, 'before-final');
    expect(before).toContain('first');
    expect(before).not.toContain('final');
    expect(before).toEqual(expect.arrayContaining(['--skip-final-stage', '--initial-fs-unpacked']));
    // what the first run leaves for the second
    await writeFile(join(dir, 'kaniko-dir', 'left'), 'x');
    const final = await kanikoRunArgs(plan(), 'img', 'name', sandbox(), [], {}, 'final');
    expect(final).toContain('final');
    expect(final).not.toContain('first');
    expect(final).toEqual(expect.arrayContaining(['--final-stage-only', '--initial-fs-unpacked', '--volume', `${join(dir, 'kaniko-dir')}:/kaniko`]));
    expect(final).not.toContain('--skip-final-stage');
    expect(await readFile(join(dir, 'kaniko-dir', 'left'), 'utf8')).toBe('x');
    // a run of every stage on the first base starts from an empty kaniko dir
    const all = await kanikoRunArgs(plan(), 'img', 'name', sandbox(), []);
    expect(all).not.toContain('--final-stage-only');
    expect(all).not.toContain('--skip-final-stage');
    await expect(readFile(join(dir, 'kaniko-dir', 'left'), 'utf8')).rejects.toThrow();
  });

  it('refuses a split run without that stage unpacked ahead', async () => {
    const unsplit = sandbox();
    delete unsplit.finalRootfs;
    await expect(kanikoRunArgs(plan(), 'img', 'name', unsplit, [], {}, 'final')).rejects.toThrow(/unpacked ahead/);
  });
});
