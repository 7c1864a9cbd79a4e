import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readImage, type Image } from '../../coordinator/gates/image-reader.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import type { WorkerProcess } from '../../deploy/local/worker-process.ts';
import { BUILDER_KINDS, ErrorCode, type BuildRequestInput, type BuildView, type BuilderKind } from '../../protocol/index.ts';
import { RegistryClient, fetchManifestDigest } from '../../adapters/registry-client.ts';
import { eventually } from '../helpers/eventually.ts';
import { archivedLog, fixture, startTestFleet } from '../helpers/fleet.ts';
import { runImage } from '../helpers/podman.ts';
import { secretsDir } from '../helpers/secrets.ts';

/** The same fixtures through every builder, one pool per builder (buildah serves `default`). */
const BUILDERS = BUILDER_KINDS;
/** two-stage's compile step printing, as an archived log line (BuildKit prefixes `#n 0.12 `). */
const COMPILED = /"text":"(?:#\d+ [\d.]+ )?compiling \d+ line\(s\)"/;
type BuilderName = BuilderKind;

const SECRET = 'npm_conformance-0123456789-secret';
let fleet: LocalFleet;
let secrets: string;
let registry: RegistryClient;
/** the worker serving each builder's pool (replaced by a fresh one in the cache test) */
const workerOf = new Map<BuilderName, WorkerProcess>();
const configs = new Map<string, Map<BuilderName, Image['config']['config'] & { diffIds: string[] }>>();

beforeAll(async () => {
  secrets = await secretsDir({ npm_token: SECRET });
  fleet = await startTestFleet({ workers: 1, coordinator: { pools: ['buildkit', 'kaniko'] }, worker: { secretsDir: secrets } });
  const first = fleet.workers[0];
  if (first !== undefined) workerOf.set('buildah', first);
  for (const builder of ['buildkit', 'kaniko'] as const) workerOf.set(builder, await fleet.addWorker({ pool: builder, builder }));
  registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
});
afterAll(async () => {
  await fleet?.stop();
  await rm(secrets, { recursive: true, force: true });
});

async function build(builder: BuilderName, app: string, id: string, request: Partial<BuildRequestInput> = {}): Promise<BuildView> {
  const { digest } = await fleet.client.uploadContext(fixture(app));
  await fleet.client.submit({ id: `${id}-${builder}`, context: { digest }, pool: poolOf(builder), image: { repository: `conf/${app}`, tags: [builder] }, ...request });
  return fleet.client.follow(`${id}-${builder}`, {});
}

function poolOf(builder: BuilderName): string {
  return builder === 'buildah' ? 'default' : builder;
}

async function remember(fixtureName: string, builder: BuilderName, repository: string, tag: string): Promise<Image> {
  const image = await readImage(registry, repository, tag);
  const byBuilder = configs.get(fixtureName) ?? new Map();
  byBuilder.set(builder, { ...image.config.config, diffIds: image.config.rootfs.diff_ids });
  configs.set(fixtureName, byBuilder);
  return image;
}

describe.each(BUILDERS)('conformance: %s', (builder) => {
  it(`conformance (${builder}): a two-stage app lands with the registry's digest, derives from official/base and runs`, async () => {
    const done = await build(builder, 'two-stage', 'two');
    expect(done.state).toMatchObject({ phase: 'pushed' });
    if (done.state.phase !== 'pushed') return;
    expect(await fetchManifestDigest(registry.endpoint, 'conf/two-stage', builder)).toBe(done.state.digest);
    expect((await runImage(`${fleet.registry.host}/conf/two-stage:${builder}`, fleet.registry.host)).stdout).toContain('hello from the fleet');
    // Built for real (no cache yet): the compile step's own output is in the log.
    expect(await archivedLog(fleet, `two-${builder}`)).toMatch(COMPILED);
    const image = await remember('two-stage', builder, 'conf/two-stage', builder);
    const base = await readImage(registry, 'official/base', '1');
    expect(image.config.rootfs.diff_ids.slice(0, base.config.rootfs.diff_ids.length)).toEqual(base.config.rootfs.diff_ids);
  });

  it(`conformance (${builder}): --target, build args and labels give the same image config`, async () => {
    const done = await build(builder, 'multi-stage', 'multi', { target: 'runtime', buildArgs: { GREETING: 'conformant' }, labels: { 'org.example.team': 'builds' } });
    expect(done.state).toMatchObject({ phase: 'pushed' });
    expect((await runImage(`${fleet.registry.host}/conf/multi-stage:${builder}`, fleet.registry.host)).stdout).toBe('multi-stage says conformant');
    const image = await remember('multi-stage', builder, 'conf/multi-stage', builder);
    expect(image.config.config.Labels?.['org.example.team']).toBe('builds');
  });

  it(`conformance (${builder}): a build secret reaches RUN at its default and target paths, never a layer or the history`, async () => {
    const done = await build(builder, 'uses-secret', 'secret', { secrets: ['npm_token'] });
    expect(done.state).toMatchObject({ phase: 'pushed' });
    const look = await runImage(`${fleet.registry.host}/conf/uses-secret:${builder}`, fleet.registry.host, {
      shell: 'cat /etc/app/token-length /etc/app/npmrc-lines; ls /run/secrets/npm_token /root/.npmrc 2>/dev/null; true',
    });
    expect(look.stdout.split('\n')).toEqual([String(SECRET.length + 1), '1']);
    const image = await readImage(registry, 'conf/uses-secret', builder);
    expect(JSON.stringify(image.config.history ?? [])).not.toContain(SECRET);
    for (const layer of image.layers) {
      const blob = Buffer.from(await registry.blob('conf/uses-secret', layer.digest));
      const bytes = layer.mediaType.endsWith('gzip') ? gunzipSync(blob) : blob;
      expect(bytes.includes(SECRET), `layer ${layer.digest}`).toBe(false);
    }
  });

  it(`conformance (${builder}): a build that writes its secret's value into the image is blocked, never promoted`, async () => {
    const done = await build(builder, 'leaks-secret', 'leak', { secrets: ['npm_token'] });
    expect(done.state.phase, JSON.stringify(done.state)).toBe('failed');
    const error = (done.state as { error?: { code: string; message: string; details?: { gates?: { gate: string; code: string }[] } } }).error;
    expect(error?.code).toBe(ErrorCode.E_GATE_BLOCKED);
    expect(error?.details?.gates).toEqual([expect.objectContaining({ gate: 'no-secrets', code: 'SECRET_IN_FILE' })]);
    expect(error?.message).toContain('the value of build secret npm_token is in layer');
    expect(error?.message).not.toContain(SECRET);
    expect(await fetchManifestDigest(registry.endpoint, 'conf/leaks-secret', builder)).toBeNull();
  });

  it(`conformance (${builder}): a fresh worker (empty local state) rebuilds from the app's registry cache`, async () => {
    // two-stage was built above, exporting its layers to cache/conf/two-stage. A new worker with
    // nothing local takes over the pool and builds the same app again.
    const old = workerOf.get(builder);
    const fresh = await fleet.addWorker({ pool: poolOf(builder), builder });
    await old?.stop();
    workerOf.set(builder, fresh);
    const done = await build(builder, 'two-stage', 'two-again');
    expect(done.state).toMatchObject({ phase: 'pushed', attempt: 1 });
    const log = await archivedLog(fleet, `two-again-${builder}`);
    expect(log).toContain(fresh.workerId);
    // buildah: "--> Using cache <id>"; BuildKit: "#n CACHED"; kaniko: "Found cached layer". The
    // compile step must be one of them.
    const hits = log.split('\n').filter((l) => /Using cache|CACHED|Found cached layer/.test(l)).length;
    expect(hits).toBeGreaterThanOrEqual(2);
    expect(log).not.toMatch(COMPILED);
  });

  it(`conformance (${builder}): cancelling a running build stops its RUN step and pushes nothing`, async () => {
    // A sleep length no other test uses, so a leftover process is this test's own.
    const sleepers = async (): Promise<number> => (await execa('pgrep', ['-f', '^sleep 293$'], { reject: false })).stdout.split('\n').filter((l) => l !== '').length;
    const { digest } = await fleet.client.uploadContext(fixture('quiet-sleeper'));
    const id = `cancel-${builder}`;
    await fleet.client.submit({ id, context: { digest }, pool: poolOf(builder), buildArgs: { SLEEP: '293' }, image: { repository: 'conf/cancel', tags: [builder] } });
    let quiet = false;
    const following = fleet.client.follow(id, { line: (l) => void (quiet ||= l.text.includes('going quiet for 293s')) });
    await eventually(async () => quiet && (await sleepers()) > 0, 120_000, 'the RUN step sleeping');
    expect((await fleet.client.cancel(id)).cancelled).toBe(true);
    expect((await following).state.phase).toBe('cancelled');
    await eventually(async () => (await sleepers()) === 0, 15_000, 'no sleep 293 left');
    expect(await fetchManifestDigest(registry.endpoint, 'quarantine/conf/cancel', id)).toBeNull();
  });

  it(`conformance (${builder}): RUN --mount=type=bind reads the context over WORKDIR and leaves it as it was, and a change to a bound file is a cache miss`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-bind-'));
    try {
      await writeFile(join(dir, 'Dockerfile'), 'ARG FLEET_REGISTRY\nFROM ${FLEET_REGISTRY}/official/base:1\nWORKDIR /src\nCOPY keep.txt ./\nRUN --mount=type=bind,target=. cat version.txt > /version.txt\nRUN ls /src > /after.txt\nUSER 1000\n');
      await writeFile(join(dir, 'keep.txt'), 'kept');
      for (const version of ['one', 'two']) {
        await writeFile(join(dir, 'version.txt'), version);
        const { digest } = await fleet.client.uploadContext(dir);
        const id = `bind-${version}-${builder}`;
        await fleet.client.submit({ id, context: { digest }, pool: poolOf(builder), image: { repository: 'conf/bind', tags: [`${builder}-${version}`] } });
        const done = await fleet.client.follow(id, {});
        expect(done.state, await archivedLog(fleet, id)).toMatchObject({ phase: 'pushed' });
        // the second build has the first's layer cache: only the bound file differs
        const out = await runImage(`${fleet.registry.host}/conf/bind:${builder}-${version}`, fleet.registry.host, { shell: 'cat /version.txt /after.txt' });
        expect(out.stdout).toBe(`${version}keep.txt`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it(`conformance (${builder}): a failing RUN names its step and exit code, and nothing is pushed`, async () => {
    const done = await build(builder, 'fails-42', 'fails');
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_BUILD_STEP_FAILED', details: { exitCode: 42 } } });
    if (done.state.phase === 'failed') expect(done.state.error.details?.step).toContain('exit 42');
    expect(await fetchManifestDigest(registry.endpoint, 'conf/fails-42', builder)).toBeNull();
  });
});

describe('buildkit daemon', () => {
  it('restarts a dead buildkitd and says so in the build log', async () => {
    const worker = workerOf.get('buildkit');
    expect(worker).toBeDefined();
    const killed = await execa('pkill', ['-9', '-f', `buildkitd --rootless --addr unix://${worker?.stateDir ?? '/nonexistent'}/`], { reject: false });
    expect(killed.exitCode).toBe(0);
    const done = await build('buildkit', 'two-stage', 'after-kill');
    expect(done.state).toMatchObject({ phase: 'pushed' });
    expect(await archivedLog(fleet, 'after-kill-buildkit')).toContain('buildkitd had died; restarted it');
  });

  it("builds a # syntax=docker/dockerfile Dockerfile with its own frontend, # check=error=true included, and loads no frontend image", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fleet-syntax-'));
    try {
      await writeFile(join(dir, 'Dockerfile'), '# syntax=docker/dockerfile:1.7\n# check=error=true\nARG FLEET_REGISTRY\nFROM ${FLEET_REGISTRY}/official/base:1\nCOPY Dockerfile /Dockerfile\nUSER 1000\n');
      const { digest } = await fleet.client.uploadContext(dir);
      await fleet.client.submit({ id: 'syntax-buildkit', context: { digest }, pool: 'buildkit', image: { repository: 'conf/syntax', tags: ['1'] } });
      const done = await fleet.client.follow('syntax-buildkit', {});
      expect(done.state).toMatchObject({ phase: 'pushed' });
      const log = await archivedLog(fleet, 'syntax-buildkit');
      expect(log).toContain("# syntax=docker/dockerfile:1.7: built with buildkit's own Dockerfile parser");
      // the platform's FROM convention trips no check: not even as a warning
      expect(log).not.toContain('InvalidDefaultArgInFrom');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('conformance: across builders', () => {
  it('conformance: every builder produced every compared image', () => {
    expect([...configs.keys()].sort()).toEqual(['multi-stage', 'two-stage']);
    for (const byBuilder of configs.values()) expect([...byBuilder.keys()].sort()).toEqual([...BUILDERS].sort());
  });

  it('conformance: User, Env, WorkingDir, Entrypoint and Labels match across builders', () => {
    for (const [name, byBuilder] of configs) {
      const [first, ...rest] = BUILDERS.map((b) => byBuilder.get(b));
      expect(first, name).toBeDefined();
      expect(rest.length, name).toBe(BUILDERS.length - 1);
      for (const other of rest) {
        for (const field of ['User', 'WorkingDir', 'Entrypoint', 'Env'] as const) expect(other?.[field] ?? null, `${name} ${field}`).toEqual(first?.[field] ?? null);
        const user = (l: Record<string, string> | null | undefined): Record<string, string> =>
          Object.fromEntries(Object.entries(l ?? {}).filter(([k]) => !k.startsWith('io.buildah.') && !k.startsWith('io.fleet.')));
        expect(user(other?.Labels), `${name} Labels`).toEqual(user(first?.Labels));
      }
    }
  });
});
