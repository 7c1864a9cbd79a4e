import { z } from 'zod';
import { ErrorCode, FleetError } from '../protocol/index.ts';
import { MEDIA, type RegistryClient } from '../adapters/registry-client.ts';

const ImageManifest = z.object({ config: z.object({ digest: z.string() }), layers: z.array(z.object({ digest: z.string() })) });

/**
 * Promotes a quarantined image: its blobs are mounted (not copied) into the release repository
 * and the very same manifest bytes are put under each tag, so the promoted digest is the one the
 * gates read.
 */
export async function promote(
  registry: RegistryClient,
  from: { repository: string; digest: string },
  to: { repository: string; tags: readonly string[] },
): Promise<string[]> {
  const manifest = await registry.manifest(from.repository, from.digest);
  if (manifest === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `quarantined image ${from.repository}@${from.digest} is gone`);
  if (manifest.digest !== from.digest) throw new FleetError(ErrorCode.E_DIGEST_MISMATCH, `registry returned other bytes for ${from.repository}@${from.digest}`);
  if (manifest.mediaType === MEDIA.ociIndex || manifest.mediaType === MEDIA.dockerList) {
    throw new FleetError(ErrorCode.E_BUILD_FAILED, 'multi-platform images are not promoted by this platform yet');
  }
  const parsed = ImageManifest.parse(JSON.parse(Buffer.from(manifest.bytes).toString('utf8')));
  for (const digest of [parsed.config.digest, ...parsed.layers.map((l) => l.digest)]) {
    await registry.mountBlob(to.repository, digest, from.repository);
  }
  const references: string[] = [];
  for (const tag of to.tags) {
    await registry.putManifest(to.repository, tag, manifest);
    references.push(`${registry.endpoint.host}/${to.repository}:${tag}`);
  }
  return references;
}
