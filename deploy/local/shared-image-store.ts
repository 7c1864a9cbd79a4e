import { mkdir } from 'node:fs/promises';
import { execa } from 'execa';
import { writeContainersConfig } from '../../worker/containers-config.ts';
import { buildUser, chownTree } from './host.ts';

/**
 * The node's read-only store of platform images (official bases, the kaniko image), filled once
 * per node as the build user, so a fresh worker (empty state of its own) builds on them without
 * pulling ~200 MB first. Workers list it as a containers-storage `additionalimagestores`; an
 * image missing from it is simply pulled. Returns the store's graph root.
 */
export async function fillSharedImageStore(dir: string, registryHost: string, references: readonly string[], authFile?: string): Promise<string> {
  const user = await buildUser();
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const containers = await writeContainersConfig(dir, [registryHost], { owner: user.switchUser ? user : undefined });
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', ...containers.env, ...(authFile === undefined ? {} : { REGISTRY_AUTH_FILE: authFile }) };
  if (user.switchUser) await chownTree(dir, user.uid, user.gid);
  const opts = { env, extendEnv: false, cwd: dir, uid: user.switchUser ? user.uid : undefined, gid: user.switchUser ? user.gid : undefined };
  try {
    for (const ref of references) await execa('podman', ['pull', '--quiet', `${registryHost}/${ref}`], opts);
    return (await execa('podman', ['info', '--format', '{{.Store.GraphRoot}}'], opts)).stdout.trim();
  } finally {
    await containers.close();
  }
}
