import { copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { SETUP_DIR } from './corpus.ts';

/** The corpus's base: static busybox (from the host's busybox-static, a bootstrap apt package), about 1 MB, so each build stays tiny. */
export const CORPUS_BASE = { repository: 'conformance/busybox', tag: '1' } as const;
export const ONBUILD_PARENT = { repository: 'conformance/onbuild-parent', tag: '1' } as const;

const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'cat', 'chmod', 'chown', 'echo', 'false', 'id', 'ls', 'mkdir', 'pwd', 'rm', 'sleep', 'test', 'touch', 'true', 'wc'];
const BASE_DOCKERFILE = `FROM scratch
COPY rootfs/ /
ENV PATH=/bin
RUN chmod 1777 /tmp && rm /tmp/.keep
`;

/**
 * Builds the images the corpus starts FROM, once per run, through the fleet: the busybox base
 * (buildah) and an image with ONBUILD triggers (BuildKit), for onbuild-trigger. Every builder
 * pulls the same two images.
 */
export async function buildSetupImages(fleet: LocalFleet, runId: string, signal?: AbortSignal): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-corpus-base-'));
  try {
    const root = join(dir, 'rootfs');
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'etc'));
    await mkdir(join(root, 'tmp'));
    await copyFile(BUSYBOX, join(root, 'bin', 'busybox'));
    for (const applet of APPLETS) await symlink('busybox', join(root, 'bin', applet));
    await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
    await writeFile(join(root, 'etc', 'group'), 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n');
    // The context carries files only; a placeholder keeps /tmp.
    await writeFile(join(root, 'tmp', '.keep'), '');
    await writeFile(join(dir, 'Dockerfile'), BASE_DOCKERFILE);
    await buildOn(fleet, 'default', dir, `${runId}-setup-base`, CORPUS_BASE, signal);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  // BuildKit: buildah writes OCI images, whose config has no OnBuild (buildah#2388), so a parent
  // it built would carry no triggers and onbuild-trigger would test nothing.
  await buildOn(fleet, 'buildkit', join(SETUP_DIR, 'onbuild-parent'), `${runId}-setup-onbuild`, ONBUILD_PARENT, signal);
}

async function buildOn(fleet: LocalFleet, pool: string, dir: string, id: string, image: { repository: string; tag: string }, signal?: AbortSignal): Promise<void> {
  const { digest } = await fleet.client.uploadContext(dir);
  await fleet.client.submit({ id, context: { digest }, pool, image: { repository: image.repository, tags: [image.tag] } });
  const done = await fleet.client.follow(id, {}, signal);
  if (done.state.phase !== 'pushed') throw new Error(`corpus set-up image ${image.repository}:${image.tag} did not build: ${JSON.stringify(done.state)}`);
}
