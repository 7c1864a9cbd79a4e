import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { create as createTar } from 'tar';
import { z } from 'zod';
import { ErrorCode, FleetError } from '../protocol/index.ts';
import { MEDIA, RegistryClient, sha256, type RegistryEndpoint } from '../adapters/registry-client.ts';
import { cacheDir } from '../adapters/environment.ts';
import { openSigstorePrivateKey } from '../signing/sigstore-key.ts';
import { signImage } from '../signing/sigstore.ts';

const Manifest = z.looseObject({
  mediaType: z.string().optional(),
  config: z.looseObject({ mediaType: z.string(), digest: z.string(), size: z.number() }),
  layers: z.array(z.looseObject({ mediaType: z.string(), digest: z.string(), size: z.number() })),
});
const Config = z.looseObject({
  rootfs: z.looseObject({ diff_ids: z.array(z.string()) }),
  history: z.array(z.looseObject({})).optional(),
});

const GZIP_LAYER: Readonly<Record<string, string>> = {
  [MEDIA.ociManifest]: 'application/vnd.oci.image.layer.v1.tar+gzip',
  [MEDIA.dockerManifest]: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
};

/** The file the new layer adds: a real change to the image, small enough to cost nothing. */
export const RELEASE_FILE = 'etc/fleet-base-release';

/**
 * Republishes an official image with a real change, as the platform team does when a base gets a
 * security update: one small layer (`/etc/fleet-base-release` naming `release`) on top of what the
 * tag names now, signed with the platform key (the same scheme as images/official) BEFORE the tag
 * moves, so no worker ever sees the new digest unsigned. The registry's push of the tag is what
 * notifies the coordinator; the rebuild wave follows as it would in production.
 */
export async function republishBase(registry: RegistryEndpoint, ref: string, release: string, signal?: AbortSignal): Promise<{ from: string; to: string; /** when the tag moved (ms since the epoch) */ taggedAt: number }> {
  const colon = ref.lastIndexOf(':');
  if (!ref.startsWith('official/') || colon < 0) throw new FleetError(ErrorCode.E_INVALID_REQUEST, `${ref}: publish-base republishes an official image by tag (official/NAME:TAG)`);
  const [repository, tag] = [ref.slice(0, colon), ref.slice(colon + 1)];
  const client = new RegistryClient(registry);
  const current = await client.manifest(repository, tag, signal);
  if (current === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `${registry.host}/${ref} is not in the registry`);
  const layerType = GZIP_LAYER[current.mediaType];
  if (layerType === undefined) throw new FleetError(ErrorCode.E_INVALID_REQUEST, `${ref} is a ${current.mediaType}: only single-platform images are republished`);
  const manifest = Manifest.parse(JSON.parse(Buffer.from(current.bytes).toString('utf8')));
  const config = Config.parse(JSON.parse(Buffer.from(await client.blob(repository, manifest.config.digest, signal)).toString('utf8')));

  const tar = await releaseTar(`release=${release}\npublished=${new Date().toISOString()}\n`);
  const layer = gzipSync(tar);
  const layerDigest = await client.putBlob(repository, layer);
  const created = new Date().toISOString();
  const nextConfig = {
    ...config,
    created,
    rootfs: { ...config.rootfs, diff_ids: [...config.rootfs.diff_ids, sha256(tar)] },
    history: [...(config.history ?? []), { created, created_by: `fleet publish-base: /${RELEASE_FILE} (${release})` }],
  };
  const configBytes = Buffer.from(JSON.stringify(nextConfig));
  const configDigest = await client.putBlob(repository, configBytes);
  const nextManifest = {
    ...manifest,
    config: { ...manifest.config, digest: configDigest, size: configBytes.length },
    layers: [...manifest.layers, { mediaType: layerType, digest: layerDigest, size: layer.length }],
  };
  const bytes = Buffer.from(JSON.stringify(nextManifest));
  const to = sha256(bytes);
  await client.putManifest(repository, to, { bytes, mediaType: current.mediaType });
  const keyDir = join(cacheDir(), 'keys');
  const key = openSigstorePrivateKey(await readFile(join(keyDir, 'official.key'), 'utf8'), await readFile(join(keyDir, 'official.pass'), 'utf8'));
  await signImage(client, repository, to, `${registry.host}/${ref}`, key);
  await client.putManifest(repository, tag, { bytes, mediaType: current.mediaType });
  return { from: current.digest, to, taggedAt: Date.now() };
}

/** An uncompressed tar holding the release file only (no directory entries: /etc keeps its mode). */
async function releaseTar(content: string): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-publish-base-'));
  try {
    await mkdir(join(dir, 'etc'));
    await writeFile(join(dir, RELEASE_FILE), content, { mode: 0o644 });
    const out = join(dir, 'layer.tar');
    await createTar({ cwd: dir, file: out, portable: true, noDirRecurse: true }, [RELEASE_FILE]);
    return await readFile(out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
