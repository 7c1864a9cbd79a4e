import { z } from 'zod';
import { ErrorCode, FleetError } from '../protocol/index.ts';
import { MEDIA, type RegistryClient } from '../adapters/registry-client.ts';

// `"layers": null` is an image of no layers (BuildKit's and kaniko's FROM scratch with metadata only)
const ImageManifest = z.object({ config: z.object({ digest: z.string() }), layers: z.array(z.object({ digest: z.string() })).nullish().transform((l) => l ?? []) });

/**
 * Stages a quarantined image's promotion: its blobs are mounted (not copied) into the release
 * repository, all at once. The function it returns puts the very same manifest bytes under each
 * tag, so the promoted digest is the one the gates read. Split so the caller can stage while it
 * signs the image's provenance, and move the tags only once that is stored.
 */
export async function stagePromotion(
  registry: RegistryClient,
  from: { repository: string; digest: string },
  to: { repository: string; tags: readonly string[] },
): Promise<() => Promise<string[]>> {
  const manifest = await registry.manifest(from.repository, from.digest);
  if (manifest === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `quarantined image ${from.repository}@${from.digest} is gone`);
  if (manifest.digest !== from.digest) throw new FleetError(ErrorCode.E_DIGEST_MISMATCH, `registry returned other bytes for ${from.repository}@${from.digest}`);
  if (manifest.mediaType === MEDIA.ociIndex || manifest.mediaType === MEDIA.dockerList) {
    throw new FleetError(ErrorCode.E_BUILD_FAILED, 'multi-platform images are not promoted by this platform yet');
  }
  const parsed = ImageManifest.parse(JSON.parse(Buffer.from(manifest.bytes).toString('utf8')));
  // one round trip's wait for all of them, not one per blob: a remote registry's latency is paid once
  await Promise.all([parsed.config.digest, ...parsed.layers.map((l) => l.digest)].map((digest) => registry.mountBlob(to.repository, digest, from.repository)));
  return () =>
    Promise.all(
      to.tags.map(async (tag) => {
        await registry.putManifest(to.repository, tag, manifest);
        return `${registry.endpoint.host}/${to.repository}:${tag}`;
      }),
    );
}
