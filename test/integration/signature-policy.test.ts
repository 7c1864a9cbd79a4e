import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../adapters/registry-client.ts';
import { cacheBin } from '../../adapters/environment.ts';
import { startRegistry, type Registry } from '../../deploy/local/registry.ts';
import { buildUserContainers, type BuildUserContainers } from '../../node/build-user-containers.ts';
import { buildUser } from '../../node/host.ts';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { generateSigstoreKeyPair, openSigstorePrivateKey } from '../../signing/sigstore-key.ts';
import { signImage } from '../../signing/sigstore.ts';
import { BuildahBuilder } from '../../worker/builders/buildah.ts';
import type { BuildOutput } from '../../worker/builders/types.ts';
import { LogMasker } from '../../worker/log-masker.ts';
import { BaseResolver } from '../../worker/base-resolver.ts';
import { verifiedDigest, verifyOfficialBases } from '../../worker/official-bases.ts';

/**
 * The two checks of an official base agree: the project's own verifier (run before every
 * builder, and the only one BuildKit and kaniko have) and the containers `policy.json` with
 * `sigstoreSigned` the buildah builder pulls through. One image, pushed to four official
 * repositories: signed by the platform key, unsigned, signed by another key, and carrying a
 * platform signature made for another repository.
 */
const CASES = [
  { repo: 'official/signed', accepted: true },
  { repo: 'official/unsigned', accepted: false },
  { repo: 'official/forged', accepted: false },
  { repo: 'official/copied', accepted: false },
] as const;

describe('official bases: the signature policy and the project verifier agree', () => {
  let root: string;
  let registry: Registry;
  let client: RegistryClient;
  let runtime: BuildUserContainers;
  let publicKeyPath: string;
  let publicKeyPem: string;
  let builderEnv: Record<string, string>;
  let owner: { uid: number; gid: number };

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'fleet-signature-policy-'));
    await chmod(root, 0o755);
    registry = await startRegistry(join(root, 'registry'));
    client = new RegistryClient({ host: registry.host, insecure: true });
    const platform = generateSigstoreKeyPair('platform');
    const other = generateSigstoreKeyPair('other');
    publicKeyPem = platform.publicKeyPem;
    publicKeyPath = join(root, 'official.pub');
    await writeFile(publicKeyPath, publicKeyPem, { mode: 0o644 });

    runtime = await buildUserContainers(join(root, 'state'), [registry.host]);
    const user = await buildUser();
    owner = { uid: user.uid, gid: user.gid };
    // The worker finds buildah on its PATH, the cache bin dir first (worker/worker.ts); here a
    // shim first on that PATH runs the same binary as the build user, as a worker process is.
    const shims = join(root, 'shims');
    await mkdir(shims, { mode: 0o755 });
    const drop = user.switchUser ? `setpriv --reuid=${user.uid} --regid=${user.gid} --init-groups -- ` : '';
    await writeFile(join(shims, 'buildah'), `#!/bin/sh\nexec ${drop}${join(cacheBin(), 'buildah')} "$@"\n`, { mode: 0o755 });
    builderEnv = { ...runtime.opts.env, PATH: `${shims}:${cacheBin()}:/usr/sbin:/usr/bin:/sbin:/bin` };

    // An image of nothing but static busybox, pushed to every repository of the cases.
    const buildah = join(cacheBin(), 'buildah');
    const ctr = (await execa(buildah, ['from', 'scratch'], runtime.opts)).stdout.trim();
    await execa(buildah, ['copy', ctr, '/bin/busybox', '/bin/busybox'], runtime.opts);
    await execa(buildah, ['commit', '--quiet', ctr, 'localhost/fleet-test-base:1'], runtime.opts);
    await execa(buildah, ['rm', ctr], runtime.opts);
    for (const { repo } of CASES) await execa(buildah, ['push', '--quiet', 'localhost/fleet-test-base:1', `docker://${registry.host}/${repo}:1`], runtime.opts);
    const digest = async (repo: string): Promise<string> => (await client.manifest(repo, '1'))?.digest ?? '';
    const platformKey = openSigstorePrivateKey(platform.privateKeyPem, 'platform');
    await signImage(client, 'official/signed', await digest('official/signed'), `${registry.host}/official/signed:1`, platformKey);
    await signImage(client, 'official/forged', await digest('official/forged'), `${registry.host}/official/forged:1`, openSigstorePrivateKey(other.privateKeyPem, 'other'));
    // The platform key, but an identity in another repository: proves nothing about this one.
    await signImage(client, 'official/copied', await digest('official/copied'), `${registry.host}/official/signed:1`, platformKey);
  }, 180_000);

  afterAll(async () => {
    await runtime.close();
    await execa('buildah', ['unshare', 'rm', '-rf', join(root, 'state')], { ...runtime.opts, cwd: root, reject: false });
    await registry.stop();
    await rm(root, { recursive: true, force: true });
  });

  /** What buildah makes of `FROM <base>`, through the builder a buildah worker runs. */
  const buildOn = async (repo: string, withPolicy = true): Promise<string> => {
    const name = repo.replace(/\W/g, '-');
    const dir = join(root, 'builds', name);
    await mkdir(join(dir, 'context'), { recursive: true, mode: 0o755 });
    await writeFile(join(dir, 'context', 'Dockerfile'), `FROM ${registry.host}/${repo}:1\nLABEL case=${name}${withPolicy ? '' : '-no-policy'}\n`);
    await chown(dir, owner.uid, owner.gid);
    const output: BuildOutput = { masker: new LogMasker([]), maxLine: 4096, line: () => Promise.resolve() };
    const builder = new BuildahBuilder(builderEnv, 'none', {}, withPolicy ? publicKeyPath : undefined);
    const result = await builder.build(
      {
        buildId: `sigpolicy-${name}`,
        contextDir: join(dir, 'context'),
        dockerfile: join(dir, 'context', 'Dockerfile'),
        buildArgs: {},
        secrets: {},
        labels: {},
        destinations: [`${registry.host}/app/sigpolicy:${name}`],
        workDir: dir,
      },
      output,
      AbortSignal.timeout(120_000),
    );
    return result.digest;
  };

  /** The code either check fails with, or 'accepted'. */
  const outcome = async (check: () => Promise<unknown>): Promise<string> =>
    check().then(
      () => 'accepted',
      (e: unknown) => (e instanceof FleetError ? `${e.code}: ${e.message}` : `unexpected: ${String(e)}`),
    );

  for (const { repo, accepted } of CASES) {
    it(`${repo}: ${accepted ? 'both accept it' : 'both refuse it with E_BASE_UNSIGNED naming it'}`, async () => {
      const ours = await outcome(() => verifiedDigest(client, repo, '1', publicKeyPem));
      const policy = await outcome(() => buildOn(repo));
      if (accepted) {
        expect({ ours, policy }).toEqual({ ours: 'accepted', policy: 'accepted' });
      } else {
        const refusal = `${ErrorCode.E_BASE_UNSIGNED}: refusing to use ${registry.host}/${repo}:1: `;
        expect(ours.startsWith(refusal), ours).toBe(true);
        expect(policy.startsWith(refusal) && policy.endsWith('(signature policy)'), policy).toBe(true);
      }
    }, 120_000);
  }

  it('an official image a COPY --from or RUN --mount=from pulls is verified like a FROM', async () => {
    const check = (dockerfile: string, copiedFrom: string[]): Promise<string> =>
      outcome(() => verifyOfficialBases(dockerfile, {}, client, publicKeyPem, new BaseResolver(() => client), copiedFrom));
    const signed = `${registry.host}/official/signed:1`;
    for (const repo of ['official/unsigned', 'official/forged', 'official/copied']) {
      const image = `${registry.host}/${repo}:1`;
      const copy = await check(`FROM ${signed}\nCOPY --from=${image} /bin/busybox /x\n`, [image]);
      expect(copy.startsWith(`${ErrorCode.E_BASE_UNSIGNED}: refusing to use ${image}: `), copy).toBe(true);
      const mount = await check(`FROM ${signed}\nRUN --mount=type=bind,from=${image},target=/m true\n`, [image]);
      expect(mount.startsWith(`${ErrorCode.E_BASE_UNSIGNED}: refusing to use ${image}: `), mount).toBe(true);
    }
    expect(await check(`FROM ${signed}\nCOPY --from=${signed} /bin/busybox /x\n`, [signed])).toBe('accepted');
  });

  it('the refusal is the policy\'s: without it, buildah builds on the unsigned base', async () => {
    expect(await outcome(() => buildOn('official/unsigned', false))).toBe('accepted');
  }, 120_000);
});
