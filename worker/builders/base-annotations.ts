import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { MEDIA, sha256, type RegistryClient } from '../../adapters/registry-client.ts';

export const BASE_NAME_ANNOTATION = 'org.opencontainers.image.base.name';
export const BASE_DIGEST_ANNOTATION = 'org.opencontainers.image.base.digest';

const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
/** docker schema2 layer types → their OCI equivalents (same bytes, so the same digests) */
const OCI_LAYER: Readonly<Record<string, string>> = {
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'application/vnd.oci.image.layer.v1.tar+gzip',
  'application/vnd.docker.image.rootfs.diff.tar': 'application/vnd.oci.image.layer.v1.tar',
  'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip': 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
};

interface Descriptor {
  mediaType: string;
  [key: string]: unknown;
}
interface ImageManifestJson {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

/**
 * The manifest with `annotations` set (replacing what a builder put under the same keys), as an
 * OCI image manifest: a docker schema2 manifest has no annotations, so it is converted (only
 * media types change; config and layers are the same blobs). Pure, for any push path: a
 * registry manifest (below) or an OCI layout's manifest blob before it is pushed.
 */
export function annotateManifest(bytes: Uint8Array, annotations: Readonly<Record<string, string>>): Buffer {
  const manifest = JSON.parse(Buffer.from(bytes).toString('utf8')) as ImageManifestJson;
  if (manifest.mediaType === MEDIA.ociIndex || manifest.mediaType === MEDIA.dockerList || !Array.isArray(manifest.layers)) {
    throw new FleetError(ErrorCode.E_BUILD_FAILED, 'base annotations: the builder pushed an index, not one image manifest');
  }
  const docker = manifest.mediaType === MEDIA.dockerManifest;
  const out: ImageManifestJson = {
    ...manifest,
    mediaType: MEDIA.ociManifest,
    config: docker && manifest.config.mediaType === DOCKER_CONFIG ? { ...manifest.config, mediaType: MEDIA.ociConfig } : manifest.config,
    layers: docker ? manifest.layers.map((l) => ({ ...l, mediaType: OCI_LAYER[l.mediaType] ?? l.mediaType })) : manifest.layers,
    annotations: { ...manifest.annotations, ...annotations },
  };
  return Buffer.from(JSON.stringify(out));
}

/** The two base annotations for a final stage built on `base` (nothing for `FROM scratch`). */
export function baseAnnotations(base: { name: string; digest: string } | null): Record<string, string> {
  return base === null ? {} : { [BASE_NAME_ANNOTATION]: base.name, [BASE_DIGEST_ANNOTATION]: base.digest };
}

/**
 * Rewrites a pushed image's manifest with the platform's base annotations, in place of the tag,
 * and returns the new digest (the one to report). Done by the worker after any builder's push, so
 * buildah (which sets its own, naming the pinned reference), BuildKit and kaniko (which set none)
 * all end up with the same two values. Blobs are untouched; only the small manifest is re-put.
 */
export async function annotatePushed(
  registry: RegistryClient,
  repository: string,
  tag: string,
  pushedDigest: string,
  annotations: Readonly<Record<string, string>>,
  signal?: AbortSignal,
): Promise<string> {
  if (Object.keys(annotations).length === 0) return pushedDigest;
  const manifest = await registry.manifest(repository, pushedDigest, signal);
  if (manifest === null) throw new FleetError(ErrorCode.E_PUSH_FAILED, `${repository}@${pushedDigest} is not in the registry after the push`);
  const annotated = annotateManifest(manifest.bytes, annotations);
  if (sha256(annotated) === pushedDigest) return pushedDigest;
  return registry.putManifest(repository, tag, { bytes: annotated, mediaType: MEDIA.ociManifest });
}
