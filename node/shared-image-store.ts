import { mkdir } from 'node:fs/promises';
import { execa } from 'execa';
import { buildUserContainers } from './build-user-containers.ts';

/**
 * The node's read-only store of platform images (official bases, the kaniko image), filled once
 * per node as the build user, so a fresh worker (empty state of its own) builds on them without
 * pulling ~200 MB first. Workers list it as a containers-storage `additionalimagestores`; an
 * image missing from it is simply pulled. Returns the store's graph root.
 */
export async function fillSharedImageStore(dir: string, registryHost: string, references: readonly string[], authFile?: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const { opts, close } = await buildUserContainers(dir, [registryHost], authFile === undefined ? {} : { REGISTRY_AUTH_FILE: authFile });
  try {
    for (const ref of references) await execa('podman', ['pull', '--quiet', `${registryHost}/${ref}`], opts);
    return (await execa('podman', ['info', '--format', '{{.Store.GraphRoot}}'], opts)).stdout.trim();
  } finally {
    await close();
  }
}
