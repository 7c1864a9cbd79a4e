import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { storedEvents } from '../../client/index.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { buildUser } from '../../node/host.ts';
import { BUILDER_KINDS, type BuildRequestInput, type BuildView, type BuilderKind } from '../../protocol/index.ts';
import { eventually } from '../helpers/eventually.ts';
import { startTestFleet } from '../helpers/fleet.ts';

/**
 * Bases through the whole fleet, on every builder: refused by the allowed-bases policy, missing,
 * unresolvable, refused by the registry, or behind a registry that is down; and the failure
 * taxonomy where a builder does run. Everything but the outage ends at attempt 1, before any
 * builder starts.
 */

const MAX_DELIVER = 3;
const OFFICIAL = 'FROM ${FLEET_REGISTRY}/official/base:1';
const APPS: Record<string, string> = {
  'docker-hub': 'ARG FLEET_REGISTRY\nFROM docker.io/library/alpine:3.20\nRUN true\n',
  'by-arg': 'ARG FLEET_REGISTRY\nARG BASE="unset"\nFROM ${BASE} AS Build\nRUN true\n',
  'no-stage': `ARG FLEET_REGISTRY\n${OFFICIAL}\nCOPY --from=nosuchstage /x /x\n`,
  nxdomain: 'FROM nonexistent.invalid/x:1\nRUN true\n',
  down: 'FROM 127.0.0.1:1/x:1\nRUN true\n',
  'copy-missing': `ARG FLEET_REGISTRY\n${OFFICIAL}\nRUN true\nCOPY missing.txt /missing.txt\n`,
  tiny: `ARG FLEET_REGISTRY\n${OFFICIAL}\nUSER 1000\n`,
};

let fleet: LocalFleet;
let dir: string;
const contexts = new Map<string, string>();
/** what each failing FROM cost: printed at the end (the issue asks for attempts and seconds) */
const costs: string[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'base-policy-'));
  // The platform policy grants every tenant two hosts this machine cannot pull from: one that
  // does not resolve, one where nothing listens (a registry that is down).
  const policy = JSON.parse(await readFile(new URL('../../images/platform/gate-policy.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  const policyPath = join(dir, 'gate-policy.json');
  await writeFile(policyPath, JSON.stringify({ ...policy, bases: { allowed: [{ registry: 'nonexistent.invalid' }, { registry: '127.0.0.1:1' }] } }));
  fleet = await startTestFleet({ workers: 1, registryAuth: true, gatePolicyPath: policyPath, coordinator: { pools: ['buildkit', 'kaniko', 'badauth'], maxDeliver: MAX_DELIVER } });
  for (const builder of ['buildkit', 'kaniko'] as const) await fleet.addWorker({ pool: builder, builder });
  // A pool whose registry credentials the registry refuses.
  const badAuth = join(fleet.stateDir, 'bad-auth.json'); // where the build user can read it
  await writeFile(badAuth, JSON.stringify({ auths: { [fleet.registry.host]: { auth: Buffer.from('fleet:not-the-password').toString('base64') } } }), { mode: 0o600 });
  const user = await buildUser();
  if (user.switchUser) await chown(badAuth, user.uid, user.gid);
  await fleet.addWorker({ pool: 'badauth', registryAuthFile: badAuth });
  for (const [name, dockerfile] of Object.entries(APPS)) {
    await mkdir(join(dir, name));
    await writeFile(join(dir, name, 'Dockerfile'), dockerfile);
    contexts.set(name, (await fleet.client.uploadContext(join(dir, name))).digest);
  }
});
afterAll(async () => {
  if (costs.length > 0) console.info(`failing FROM, attempts and seconds:\n${costs.join('\n')}`);
  await fleet?.stop();
  await rm(dir, { recursive: true, force: true });
});

const poolOf = (builder: BuilderKind): string => (builder === 'buildah' ? 'default' : builder);

async function build(app: string, id: string, pool: string, request: Partial<BuildRequestInput> = {}): Promise<{ done: BuildView; attempts: number; seconds: number }> {
  const started = Date.now();
  await fleet.client.submit({ id, context: { digest: contexts.get(app) ?? '' }, pool, image: { repository: `app/bases/${app}`, tags: [pool] }, ...request });
  const done = await fleet.client.follow(id, {});
  const seconds = (Date.now() - started) / 1000;
  const attempts = (await storedEvents(fleet.client.nc, id)).filter((e) => e.type === 'started').length;
  costs.push(`${id}: ${done.state.phase} ${done.state.phase === 'failed' ? done.state.error.code : ''} after ${attempts} attempt(s), ${seconds.toFixed(1)} s`);
  return { done, attempts, seconds };
}

describe.each(BUILDER_KINDS)('bases on %s', (builder) => {
  const pool = poolOf(builder);

  it(`${builder}: a FROM outside the allowed registries is refused at once with E_BASE_NOT_ALLOWED naming its line`, async () => {
    const { done, attempts } = await build('docker-hub', `hub-${builder}`, pool);
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_BASE_NOT_ALLOWED' } });
    if (done.state.phase === 'failed') expect(done.state.error.message).toContain('at Dockerfile line 2 (FROM docker.io/library/alpine:3.20)');
    expect(attempts).toBe(1);
  });

  it(`${builder}: a base chosen by a build arg is checked as resolved: another registry is refused, a missing image is E_BASE_NOT_FOUND`, async () => {
    const refused = await build('by-arg', `arg-hub-${builder}`, pool, { buildArgs: { BASE: 'phusion/baseimage:0.11' } });
    expect(refused.done.state).toMatchObject({ phase: 'failed', error: { code: 'E_BASE_NOT_ALLOWED', message: expect.stringContaining('at Dockerfile line 3 (FROM ${BASE} AS Build): docker.io/phusion/baseimage:0.11 is not among') as unknown } });
    expect(refused.attempts).toBe(1);
    const missing = await build('by-arg', `arg-404-${builder}`, pool, { buildArgs: { BASE: `${fleet.registry.host}/official/doesnotexist:1` } });
    expect(missing.done.state).toMatchObject({ phase: 'failed', error: { code: 'E_BASE_NOT_FOUND' } });
    if (missing.done.state.phase === 'failed') expect(missing.done.state.error.message).toMatch(/^base image not found at Dockerfile line 3 \(FROM \$\{BASE\} AS Build\): .*official\/doesnotexist:1: .* \(404\)$/);
    expect(missing.attempts).toBe(1);
  });

  it(`${builder}: COPY --from naming no stage is an image, and refused like one`, async () => {
    const { done } = await build('no-stage', `nostage-${builder}`, pool);
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_BASE_NOT_ALLOWED', message: expect.stringContaining('--from=nosuchstage names no stage') as unknown } });
  });

  it(`${builder}: a registry host that does not resolve is final at once (E_BASE_NOT_FOUND), not retried as an outage`, async () => {
    const { done, attempts } = await build('nxdomain', `nxdomain-${builder}`, pool);
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_BASE_NOT_FOUND', message: expect.stringContaining('does not resolve') as unknown } });
    expect(attempts).toBe(1);
  });

  it(`${builder}: a registry that is down is an outage: E_REGISTRY_UNAVAILABLE, retried with backoff to the last delivery`, async () => {
    const { done, attempts } = await build('down', `down-${builder}`, pool);
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_REGISTRY_UNAVAILABLE' } });
    expect(attempts).toBe(MAX_DELIVER);
  });

  it(`${builder}: a missing COPY source is E_COPY_SOURCE_MISSING naming the Dockerfile line and the builder's reason`, async () => {
    const { done } = await build('copy-missing', `copy-${builder}`, pool);
    expect(done.state).toMatchObject({ phase: 'failed', attempt: 1, error: { code: 'E_COPY_SOURCE_MISSING', details: { step: 'COPY missing.txt /missing.txt' } } });
    if (done.state.phase === 'failed') expect(done.state.error.message).toContain(`at Dockerfile line 4 (COPY missing.txt /missing.txt): ${builder}: `);
  });

  it(`${builder}: an unknown --target is E_TARGET_NOT_FOUND`, async () => {
    const { done } = await build('tiny', `target-${builder}`, pool, { target: 'nosuch' });
    expect(done.state).toMatchObject({ phase: 'failed', attempt: 1, error: { code: 'E_TARGET_NOT_FOUND', message: expect.stringContaining('--target nosuch') as unknown } });
  });
});

describe('the registry refusing or stopping', () => {
  it('a base the registry refuses to the pool\'s credentials is final at once (E_BASE_UNAUTHORIZED)', async () => {
    const { done, attempts } = await build('tiny', 'unauthorized', 'badauth');
    expect(done.state).toMatchObject({ phase: 'failed', error: { code: 'E_BASE_UNAUTHORIZED' } });
    expect(attempts).toBe(1);
  });

  it('a stopped registry is retried, and the build lands once it is back', async () => {
    await fleet.registry.stop();
    const id = 'registry-back';
    await fleet.client.submit({ id, context: { digest: contexts.get('tiny') ?? '' }, image: { repository: 'app/bases/tiny', tags: ['back'] } });
    await eventually(async () => (await storedEvents(fleet.client.nc, id)).some((e) => e.type === 'started' && e.attempt === 2), 60_000, 'a second attempt after the outage');
    await fleet.registry.start();
    const done = await fleet.client.follow(id, {});
    expect(done.state).toMatchObject({ phase: 'pushed' });
    expect(done.state.phase === 'pushed' && done.state.attempt).toBeGreaterThanOrEqual(2);
  });
});
