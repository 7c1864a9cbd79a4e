import { chown, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { buildUser } from '../../node/host.ts';
import { RegistryClient } from '../../adapters/registry-client.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';

/** A registry that takes only the pool's credentials: every builder pulls, caches and pushes with them. */
describe('a registry that wants credentials', () => {
  let fleet: LocalFleet;
  beforeAll(async () => {
    fleet = await startTestFleet({ registryAuth: true, coordinator: { pools: ['buildkit', 'kaniko', 'nocreds'] } });
    for (const builder of ['buildkit', 'kaniko'] as const) await fleet.addWorker({ pool: builder, builder });
  });
  afterAll(async () => {
    await fleet?.stop();
  });

  it('refuses anonymous reads, so the builds below really used credentials', async () => {
    expect(fleet.registry.credentials).toBeDefined();
    const res = await fetch(`http://${fleet.registry.host}/v2/official/base/manifests/1`);
    expect(res.status).toBe(401);
    const anonymous = new RegistryClient({ host: fleet.registry.host, insecure: true });
    await expect(anonymous.manifest('official/base', '1')).rejects.toMatchObject({ code: 'E_REGISTRY_AUTH' });
  });

  it.each(['default', 'buildkit', 'kaniko'])('pool %s builds, caches and pushes with the docker config it was given; gates and promotion use the coordinator\'s', async (pool) => {
    const { digest } = await fleet.client.uploadContext(fixture('two-stage'));
    await fleet.client.submit({ id: `auth-${pool}`, pool, context: { digest }, image: { repository: `app/auth-${pool}`, tags: ['1'] } });
    const done = await fleet.client.follow(`auth-${pool}`, {});
    expect(done.state).toMatchObject({ phase: 'pushed', verdict: { promoted: true } });
    const client = new RegistryClient({ host: fleet.registry.host, insecure: true, credentials: fleet.registry.credentials });
    expect((await client.manifest(`app/auth-${pool}`, '1'))?.digest).toBe(done.state.phase === 'pushed' ? done.state.digest : '');
  });

  it('fails a build whose pool has no credentials for the registry at its base check (E_BASE_UNAUTHORIZED, saying none are configured), not a retry', async () => {
    const other = join(fleet.stateDir, 'other-auth.json');
    await writeFile(other, JSON.stringify({ auths: { 'registry.example:5000': { auth: Buffer.from('a:b').toString('base64') } } }), { mode: 0o600 });
    const user = await buildUser();
    if (user.switchUser) await chown(other, user.uid, user.gid);
    await fleet.addWorker({ pool: 'nocreds', registryAuthFile: other });
    const { digest } = await fleet.client.uploadContext(fixture('two-stage'));
    await fleet.client.submit({ id: 'auth-none', pool: 'nocreds', context: { digest }, image: { repository: 'app/auth-none', tags: ['1'] } });
    const done = await fleet.client.follow('auth-none', {});
    expect(done.state).toMatchObject({ phase: 'failed', attempt: 1, error: { code: 'E_BASE_UNAUTHORIZED', message: expect.stringContaining('none are configured') } });
  });
});
