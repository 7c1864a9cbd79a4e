import { createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { MEDIA, type RegistryClient } from '../adapters/registry-client.ts';

/**
 * Sigstore signatures stored as registry attachments, the layout containers/image reads with
 * `use-sigstore-attachments: true` (and cosign writes): an OCI manifest tagged
 * `sha256-<hex>.sig` in the image's repository whose layers are simple-signing payloads, each
 * carrying its signature in an annotation. Debian's skopeo/podman have sigstore *signing*
 * patched out ("Debian-local change: sigstore disabled"), so the platform signs here; workers
 * still verify through containers/image's `sigstoreSigned` policy.
 */
const PAYLOAD_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
const SIGNATURE_ANNOTATION = 'dev.cosignproject.cosign/signature';

const Payload = z.object({
  critical: z.object({
    identity: z.object({ 'docker-reference': z.string() }),
    image: z.object({ 'docker-manifest-digest': z.string() }),
    type: z.literal('cosign container image signature'),
  }),
});

const AttachmentManifest = z.object({
  layers: z.array(z.object({ mediaType: z.string(), digest: z.string(), annotations: z.record(z.string(), z.string()).optional() })),
});

export function attachmentTag(digest: string): string {
  return `${digest.replace(':', '-')}.sig`;
}

/** Signs `repository@digest` as `identity` (a full reference, e.g. `host/official/base:1`). */
export async function signImage(registry: RegistryClient, repository: string, digest: string, identity: string, key: KeyObject): Promise<void> {
  const payload = Buffer.from(
    JSON.stringify({
      critical: { identity: { 'docker-reference': identity }, image: { 'docker-manifest-digest': digest }, type: 'cosign container image signature' },
      optional: { creator: 'fleet', timestamp: Math.floor(Date.now() / 1000) },
    }),
  );
  const signature = sign('sha256', payload, key).toString('base64');
  const payloadDigest = await registry.putBlob(repository, payload);
  const config = Buffer.from(JSON.stringify({ architecture: '', os: '', config: {}, rootfs: { type: 'layers', diff_ids: [payloadDigest] } }));
  const configDigest = await registry.putBlob(repository, config);
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    config: { mediaType: MEDIA.ociConfig, size: config.length, digest: configDigest },
    layers: [{ mediaType: PAYLOAD_TYPE, size: payload.length, digest: payloadDigest, annotations: { [SIGNATURE_ANNOTATION]: signature } }],
  };
  await registry.putManifest(repository, attachmentTag(digest), { bytes: Buffer.from(JSON.stringify(manifest)), mediaType: MEDIA.ociManifest });
}

export type SignatureCheck = { ok: true; identity: string } | { ok: false; reason: string };

/** Whether `repository@digest` carries a signature by `publicKeyPem` that names this digest. */
export async function verifyImageSignature(registry: RegistryClient, repository: string, digest: string, publicKeyPem: string): Promise<SignatureCheck> {
  const attachment = await registry.manifest(repository, attachmentTag(digest));
  if (attachment === null) return { ok: false, reason: `no signature for ${repository}@${digest}` };
  const layers = AttachmentManifest.parse(JSON.parse(Buffer.from(attachment.bytes).toString('utf8'))).layers;
  const key = createPublicKey(publicKeyPem);
  for (const layer of layers) {
    const signature = layer.annotations?.[SIGNATURE_ANNOTATION];
    if (layer.mediaType !== PAYLOAD_TYPE || signature === undefined) continue;
    const payload = await registry.blob(repository, layer.digest);
    if (!verify('sha256', payload, key, Buffer.from(signature, 'base64'))) continue;
    const parsed = Payload.safeParse(JSON.parse(Buffer.from(payload).toString('utf8')));
    // The signature must name this digest, and an identity in this repository (any tag): a
    // signature copied over to another repository proves nothing about it.
    if (parsed.success && parsed.data.critical.image['docker-manifest-digest'] === digest) {
      const identity = parsed.data.critical.identity['docker-reference'];
      if (repositoryOf(identity) === `${registry.endpoint.host}/${repository}`) return { ok: true, identity };
    }
  }
  return { ok: false, reason: `no signature on ${repository}@${digest} verifies with the platform key` };
}

/** `host/repo:tag` or `host/repo@digest` → `host/repo` (a colon in `host:port` is not a tag). */
function repositoryOf(reference: string): string {
  const at = reference.indexOf('@');
  if (at >= 0) return reference.slice(0, at);
  const slash = reference.lastIndexOf('/');
  const colon = reference.lastIndexOf(':');
  return colon > slash ? reference.slice(0, colon) : reference;
}
