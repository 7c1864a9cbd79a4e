import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet, LocalFleetOptions } from '../../deploy/local/fleet.ts';
import { BUILDER_KINDS, type BuilderKind } from '../../protocol/index.ts';
import type { BuildLimits } from '../../worker/builders/sandbox.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';

const MiB = 1024 ** 2;
/**
 * Small enough that each hog hits it within seconds, large enough for the builders themselves (a
 * worker's first build also pulls and unpacks its base into the storage the scratch cap watches).
 */
const LIMITS: BuildLimits = { pids: 64, memoryBytes: 384 * MiB, scratchBytes: 1024 * MiB };

/**
 * One Dockerfile, three hogs, each bounded in time so a missing cap shows as a plain step failure
 * or a slow success, never a hung test. The fork hog spawns far more processes than the cap
 * allows, as a fork bomb does, but from one shell: dash reports the refused fork ("Cannot fork")
 * every time, where a classic `:(){ :|:& };:` bomb sometimes died out with nothing said (two
 * full-suite runs saw that, on kaniko and on buildah). It exits 1 so the build fails either way,
 * and only the cap's refusal in the log makes that failure E_RESOURCE_LIMIT.
 */
const DOCKERFILE = `ARG FLEET_REGISTRY
FROM \${FLEET_REGISTRY}/official/base:1
ARG HOG
RUN case "$HOG" in \\
  log) seq 1 100000 ;; \\
  fork) timeout 20 sh -c 'i=0; while [ $i -lt 5000 ]; do sleep 5 & i=$((i+1)); done; wait'; exit 1 ;; \\
  memory) timeout 20 tail /dev/zero ;; \\
  disk) timeout 60 sh -c 'i=0; while [ $i -lt 600 ]; do head -c 4194304 /dev/zero > /tmp/fill-$i || exit 1; i=$((i+1)); done' ;; \\
  esac && echo "hog $HOG done"
USER 1000
`;

const poolOf = (builder: BuilderKind): string => `capped-${builder}`;

let fleet: LocalFleet;
let contextDir: string;
let hogs: string;
let calm: string;

beforeAll(async () => {
  contextDir = await mkdtemp(join(tmpdir(), 'fleet-hogs-'));
  await writeFile(join(contextDir, 'Dockerfile'), DOCKERFILE);
  // `default` (buildah, no caps) is the neighbour on the same node, same build user.
  fleet = await startTestFleet({ workers: 1, coordinator: { pools: [...BUILDER_KINDS.map(poolOf), 'capped-log'] } });
  for (const builder of BUILDER_KINDS) {
    // limits is a worker option the local fleet passes through as it is
    await fleet.addWorker({ pool: poolOf(builder), builder, limits: LIMITS } as LocalFleetOptions['worker']);
  }
  await fleet.addWorker({ pool: 'capped-log', limits: { logBytes: 64 * 1024 } } as LocalFleetOptions['worker']);
  hogs = (await fleet.client.uploadContext(contextDir)).digest;
  calm = (await fleet.client.uploadContext(fixture('two-stage'))).digest;
});
afterAll(async () => {
  await fleet?.stop();
  await rm(contextDir, { recursive: true, force: true });
});

const CASES = [
  { hog: 'fork', limit: 'pids' },
  { hog: 'memory', limit: 'memory' },
  { hog: 'disk', limit: 'scratch' },
] as const;

describe.each(BUILDER_KINDS)('resource limits: %s', (builder) => {
  it.each(CASES)(`resource limits (${builder}): a $hog hog fails with E_RESOURCE_LIMIT naming $limit, while a build on another worker of the node pushes`, async ({ hog, limit }) => {
    const id = `hog-${hog}-${builder}`;
    const started = Date.now();
    await fleet.client.submit({ id, context: { digest: hogs }, pool: poolOf(builder), buildArgs: { HOG: hog }, image: { repository: 'limits/hog', tags: [`${hog}-${builder}`] } });
    const neighbour = `calm-${hog}-${builder}`;
    await fleet.client.submit({ id: neighbour, context: { digest: calm }, image: { repository: 'limits/calm', tags: [`${hog}-${builder}`] } });
    const [done, calmDone] = await Promise.all([fleet.client.follow(id, {}), fleet.client.follow(neighbour, {})]);
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_RESOURCE_LIMIT', message: expect.stringContaining(`resource limit ${limit}`) } });
    expect(calmDone.state).toMatchObject({ phase: 'pushed' });
    // Every hog stops as soon as it hits its cap; the fork hog is still given its full 20 s of room.
    expect(Date.now() - started).toBeLessThan(hog === 'fork' ? 90_000 : 60_000);
  }, 300_000);
});

describe('resource limits: output', () => {
  it('a build printing more than its pool\'s logBytes stops with E_RESOURCE_LIMIT naming log', async () => {
    await fleet.client.submit({ id: 'hog-log', context: { digest: hogs }, pool: 'capped-log', buildArgs: { HOG: 'log' }, image: { repository: 'limits/hog', tags: ['log'] } });
    const lines: string[] = [];
    const done = await fleet.client.follow('hog-log', { line: (l) => void lines.push(l.text) });
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_RESOURCE_LIMIT', message: expect.stringContaining('resource limit log') } });
    // Cut at the cap: far fewer than the step's 100,000 numbers reached the log.
    expect(lines.filter((l) => /\b\d+$/.test(l)).length).toBeLessThan(20_000);
  }, 300_000);
});
