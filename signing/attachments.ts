import { z } from 'zod';
import { ErrorCode, FleetError } from '../protocol/index.ts';
import { MEDIA, sha256, type RegistryClient } from '../adapters/registry-client.ts';

/**
 * Artifacts stored in the registry next to an image (attestations, SBOMs). Where the registry has
 * the OCI 1.1 referrers API, the artifact manifest names the image as its `subject` and is pushed
 * by digest; where it has not (distribution 2.x), it goes under the tag `sha256-<hex>.<suffix>`,
 * the scheme cosign reads (`.att` for attestations, `.sbom` for SBOMs). The manifest carries
 * `subject` either way, so a registry upgraded later indexes it.
 */
export type AttachmentKind = 'att' | 'sbom';

export interface AttachmentLayer {
  mediaType: string;
  bytes: Uint8Array;
  annotations?: Record<string, string>;
}

export interface StoredAttachment {
  /** `host/repository@sha256:…` of the artifact manifest */
  reference: string;
  digest: string;
  storedAs: 'referrers' | 'tag';
  /** the tag, under the tag scheme */
  tag?: string;
}

const Descriptor = z.object({ mediaType: z.string(), digest: z.string(), size: z.number(), annotations: z.record(z.string(), z.string()).optional() });
const ArtifactManifest = z.object({ artifactType: z.string().optional(), layers: z.array(Descriptor) });

/** An empty JSON config (`{}`): cosign's attachments use an image config; `{}` parses as one for distribution 2.x too. */
const EMPTY_CONFIG = Buffer.from('{}');

export function attachmentTagOf(digest: string, kind: AttachmentKind): string {
  return `${digest.replace(':', '-')}.${kind}`;
}

/** An attachment whose manifest is built but not pushed: where it will be is known already. */
export interface PreparedAttachment {
  repository: string;
  subject: { digest: string; mediaType: string; size: number };
  kind: AttachmentKind;
  layer: AttachmentLayer;
  manifest: Buffer;
  /** the artifact manifest's digest: the same under either storing scheme */
  digest: string;
  /** `host/repository@digest`, what `putPrepared` will answer */
  reference: string;
}

/**
 * Builds one artifact's manifest (one layer) about `repository@subject`, pushing nothing: its
 * digest and reference are known before it is stored, so another artifact can name it and both
 * can be pushed at once.
 */
export function prepareAttachment(
  host: string,
  repository: string,
  subject: { digest: string; mediaType: string; size: number },
  kind: AttachmentKind,
  artifactType: string,
  layer: AttachmentLayer,
): PreparedAttachment {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      artifactType,
      config: { mediaType: MEDIA.ociConfig, size: EMPTY_CONFIG.length, digest: sha256(EMPTY_CONFIG) },
      layers: [{ mediaType: layer.mediaType, size: layer.bytes.length, digest: sha256(layer.bytes), ...(layer.annotations === undefined ? {} : { annotations: layer.annotations }) }],
      subject,
    }),
  );
  const digest = sha256(manifest);
  return { repository, subject, kind, layer, manifest, digest, reference: `${host}/${repository}@${digest}` };
}

/** Pushes a prepared attachment and says where it went. */
export async function putPrepared(registry: RegistryClient, a: PreparedAttachment, signal?: AbortSignal): Promise<StoredAttachment> {
  // independent round trips, waited on together (a remote registry's latency is paid once, not three times)
  const [, , referrers] = await Promise.all([registry.putBlob(a.repository, a.layer.bytes), registry.putBlob(a.repository, EMPTY_CONFIG), registry.referrers(a.repository, a.subject.digest, signal)]);
  const manifest = { bytes: a.manifest, mediaType: MEDIA.ociManifest };
  const tag = referrers === null ? attachmentTagOf(a.subject.digest, a.kind) : undefined;
  const digest = await registry.putManifest(a.repository, tag ?? a.digest, manifest);
  return tag === undefined ? { reference: a.reference, digest, storedAs: 'referrers' } : { reference: a.reference, digest, storedAs: 'tag', tag };
}

/**
 * The layers of the newest artifact of `artifactType` about `repository@subject`: the tag
 * scheme's manifest first, then the referrers API. Null when there is none. Bytes are checked
 * against their digests by the registry client; whether they are trustworthy is the caller's
 * question (a signature check).
 */
export async function readAttachment(
  registry: RegistryClient,
  repository: string,
  subject: string,
  kind: AttachmentKind,
  artifactType: string,
  signal?: AbortSignal,
): Promise<{ digest: string; layers: AttachmentLayer[] } | null> {
  let manifest = await registry.manifest(repository, attachmentTagOf(subject, kind), signal);
  if (manifest === null) {
    const referrers = await registry.referrers(repository, subject, signal);
    const newest = referrers?.filter((r) => r.artifactType === artifactType).at(-1);
    if (newest !== undefined) manifest = await registry.manifest(repository, newest.digest, signal);
  }
  if (manifest === null) return null;
  const parsed = ArtifactManifest.safeParse(JSON.parse(Buffer.from(manifest.bytes).toString('utf8')));
  if (!parsed.success) throw new FleetError(ErrorCode.E_ATTESTATION_INVALID, `${repository}@${manifest.digest} is not an artifact manifest`);
  const layers: AttachmentLayer[] = [];
  for (const l of parsed.data.layers) {
    layers.push({ mediaType: l.mediaType, bytes: await registry.blob(repository, l.digest, signal), ...(l.annotations === undefined ? {} : { annotations: l.annotations }) });
  }
  return { digest: manifest.digest, layers };
}
