import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../adapters/registry-client.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { BUILDER_KINDS, type BuilderKind } from '../../protocol/index.ts';
import { archivedLog, startTestFleet } from '../helpers/fleet.ts';
import { runImage } from '../helpers/podman.ts';

/**
 * What a sandboxed builder (its daemon and RUN steps cannot reach the registry) needs the worker to
 * bring in besides the FROM images: a `COPY --from=<registry image>` (every builder) and a
 * `RUN --mount=from=<registry image>` (BuildKit and buildah: kaniko ignores --mount). The FROM
 * names the base by digest and the others by tag, so BuildKit cannot serve them from the FROM's
 * named context: each must be imported. And BuildKit's cheaper sandbox: a second build of the
 * same app finds its local layer cache equal to the registry's (no copy) and reuses the output
 * layout the first one left (its blobs skipped, the push still digest-checked).
 */

let fleet: LocalFleet;
let dir: string;
let registry: RegistryClient;
let baseDigest: string;
const contexts = new Map<string, string>();

const poolOf = (builder: BuilderKind): string => (builder === 'buildah' ? 'default' : builder);

beforeAll(async () => {
  fleet = await startTestFleet({ workers: 0, coordinator: { pools: ['buildkit', 'kaniko'] } });
  for (const builder of BUILDER_KINDS) await fleet.addWorker({ pool: poolOf(builder), builder });
  registry = new RegistryClient({ host: fleet.registry.host, insecure: true });
  const base = await registry.manifest('official/base', '1');
  if (base === null) throw new Error('no official/base:1 in the test registry');
  baseDigest = base.digest;
  const host = fleet.registry.host;
  dir = await mkdtemp(join(tmpdir(), 'fleet-sandbox-imports-'));
  // A --from cannot take a build arg (the platform refuses it on every builder): the registry is written out.
  const copy = `FROM ${host}/official/base@${baseDigest}\nCOPY --from=${host}/official/base:1 /etc/debian_version /from-copy\n`;
  const apps: Record<string, string> = {
    copy: `${copy}USER 1000\n`,
    mount: `${copy}RUN --mount=type=bind,from=${host}/official/base:1,target=/m cp /m/etc/os-release /from-mount\nUSER 1000\n`,
  };
  for (const [name, dockerfile] of Object.entries(apps)) {
    await writeFile(join(dir, 'Dockerfile'), dockerfile);
    contexts.set(name, (await fleet.client.uploadContext(dir)).digest);
  }
}, 300_000);
afterAll(async () => {
  await fleet?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function build(builder: BuilderKind, app: string, id: string, repository: string): Promise<Awaited<ReturnType<LocalFleet['client']['follow']>>> {
  const digest = contexts.get(app);
  if (digest === undefined) throw new Error(`no context ${app}`);
  await fleet.client.submit({ id, context: { digest }, pool: poolOf(builder), image: { repository, tags: [builder] } });
  return fleet.client.follow(id, {});
}

describe.each(BUILDER_KINDS)('registry images besides FROM (%s)', (builder) => {
  const app = builder === 'kaniko' ? 'copy' : 'mount';

  it(`${builder}: COPY --from=<registry image>${builder === 'kaniko' ? '' : ' and RUN --mount=from=<registry image>'} build, the file comes from that image, which is a recorded base`, async () => {
    const done = await build(builder, app, `imports-${builder}`, 'imports/app');
    expect(done.state, await archivedLog(fleet, `imports-${builder}`).catch(() => '')).toMatchObject({ phase: 'pushed' });
    const bases = 'bases' in done.state ? (done.state.bases ?? []) : [];
    expect(bases).toContainEqual({ name: `${fleet.registry.host}/official/base:1`, digest: baseDigest });
    const shell = app === 'copy' ? 'cat /etc/debian_version /from-copy' : 'cat /etc/debian_version /from-copy; cmp /etc/os-release /from-mount && echo same';
    const { stdout } = await runImage(`${fleet.registry.host}/imports/app:${builder}`, fleet.registry.host, { shell });
    const [own, copied, same] = stdout.split('\n');
    expect(own).toMatch(/^\d+/);
    expect(copied).toBe(own);
    if (app === 'mount') expect(same).toBe('same');
  });

  it.runIf(builder === 'buildkit')('buildkit: the same app again reads its layer cache from the local copy (no copy from the registry) and pushes from the kept output layout', async () => {
    const done = await build(builder, app, `imports-${builder}-again`, 'imports/app');
    expect(done.state).toMatchObject({ phase: 'pushed' });
    const log = await archivedLog(fleet, `imports-${builder}-again`);
    expect(log).toMatch(/layer cache \S+:buildkit: the local copy is the registry's \(sha256:[a-f0-9]{64}\)/);
    expect(log).toMatch(/CACHED/);
    // what was reported is what the registry serves under the release tag
    expect('digest' in done.state ? done.state.digest : undefined).toBe((await registry.manifest('imports/app', builder))?.digest);
  });
});
