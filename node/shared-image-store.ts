import { chmod, copyFile, mkdir, readdir } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { builderToolPath } from '../adapters/environment.ts';
import type { Logger } from '../adapters/logger.ts';
import { buildUserContainers } from './build-user-containers.ts';

/** containers/image's blob info cache, under a rootless user's HOME */
const USER_BLOB_INFO_CACHE = join('.local', 'share', 'containers', 'cache');
/** beside the store's graph root (never inside it: that is containers-storage's) */
const SEED_DIR = 'blob-info-cache';

/**
 * The node's read-only store of platform images (official bases, the kaniko image), filled once
 * per node as the build user, so a fresh worker (empty state of its own) builds on them without
 * pulling ~200 MB first. Workers list it as a containers-storage `additionalimagestores`; an
 * image missing from it is simply pulled. Returns the store's graph root.
 *
 * Filled with the workers' own buildah, whose blob info cache (which compressed blob in which
 * registry repository each layer is) is kept beside the store: see seedBlobInfoCache.
 */
export async function fillSharedImageStore(dir: string, registryHost: string, references: readonly string[], authFile?: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const { opts, close } = await buildUserContainers(dir, [registryHost], { PATH: builderToolPath(), ...(authFile === undefined ? {} : { REGISTRY_AUTH_FILE: authFile }) });
  try {
    for (const ref of references) await execa('buildah', ['pull', '--quiet', `${registryHost}/${ref}`], opts);
    const graphRoot = (await execa('buildah', ['info', '--format', '{{.store.GraphRoot}}'], opts)).stdout.trim();
    // readable by every worker of the node (the store is), written by none
    await copyCaches(join(opts.env.HOME ?? join(dir, 'home'), USER_BLOB_INFO_CACHE), join(dirname(graphRoot), SEED_DIR), 0, 0o755, 0o444);
    return graphRoot;
  } finally {
    await close();
  }
}

/**
 * A fresh worker starts with the blob info cache the store's fill wrote. Without it, the first
 * push that holds a base's layers (a build's first registry-cache push, or its image) knows only
 * their uncompressed digests: buildah compresses every base layer again to learn what to push
 * and finds the registry had them all along, about 4 s for the 200 MB jdk17 base on this
 * machine. With it, buildah mounts them from the official repository. The seed names only the
 * platform's images (the fill pulls nothing else); each worker writes its own copy, never the
 * seed, and a worker that has a cache of its own keeps it.
 */
export async function seedBlobInfoCache(sharedGraphRoot: string, home: string | undefined, log: Logger): Promise<void> {
  if (home === undefined) return;
  const copied = await copyCaches(join(dirname(sharedGraphRoot), SEED_DIR), join(home, USER_BLOB_INFO_CACHE), constants.COPYFILE_EXCL, 0o700, 0o600).catch((e: unknown) => {
    log.warn({ err: e }, "could not seed this worker's blob info cache from the node image store; its first push may compress the bases' layers again");
    return 0;
  });
  if (copied > 0) log.debug({ copied }, "blob info cache seeded from the node image store");
}

/** Copies containers/image's blob info cache files (its bolt or sqlite database) from one directory to another; how many. */
async function copyCaches(from: string, to: string, copyMode: number, dirMode: number, fileMode: number): Promise<number> {
  const names = (await readdir(from).catch(() => [])).filter((n) => n.startsWith('blob-info-cache-v1.'));
  if (names.length === 0) return 0;
  await mkdir(to, { recursive: true, mode: dirMode });
  await chmod(to, dirMode);
  let copied = 0;
  for (const name of names) {
    try {
      await copyFile(join(from, name), join(to, name), copyMode);
      await chmod(join(to, name), fileMode);
      copied += 1;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  return copied;
}
