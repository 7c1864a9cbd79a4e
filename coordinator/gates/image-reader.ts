import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { z } from 'zod';
import { ErrorCode, FleetError, decodeWith } from '../../protocol/index.ts';
import { MEDIA, type RegistryClient } from '../../adapters/registry-client.ts';

const Descriptor = z.object({ mediaType: z.string(), digest: z.string(), size: z.number() });
export type Descriptor = z.infer<typeof Descriptor>;
// An image of no layers (FROM scratch and only metadata) comes from BuildKit and kaniko with
// `"layers": null` (Go's nil slice), not `[]`.
const ImageManifest = z.object({ config: Descriptor, layers: z.array(Descriptor).nullish().transform((l) => l ?? []) });
const ImageIndex = z.object({
  manifests: z.array(Descriptor.extend({ platform: z.object({ os: z.string(), architecture: z.string() }).optional() })),
});

/** The parts of an image config the gates read. */
export const ImageConfig = z.object({
  config: z
    .object({
      User: z.string().optional(),
      Env: z.array(z.string()).nullish(),
      WorkingDir: z.string().optional(),
      Entrypoint: z.array(z.string()).nullish(),
      Cmd: z.array(z.string()).nullish(),
      Labels: z.record(z.string(), z.string()).nullish(),
    })
    .default({}),
  rootfs: z.object({ diff_ids: z.array(z.string()).nullish().transform((d) => d ?? []) }),
  history: z.array(z.object({ created_by: z.string().optional(), empty_layer: z.boolean().optional() })).default([]),
});
export type ImageConfig = z.infer<typeof ImageConfig>;

export interface Image {
  repository: string;
  /** the manifest digest (of the platform-specific manifest when the reference was an index) */
  digest: string;
  config: ImageConfig;
  layers: Descriptor[];
}

/** Where configs already read can be looked up by their blob digest (see GateCache). */
export interface ConfigLookup {
  get(digest: string, read: () => Promise<ImageConfig>): Promise<ImageConfig>;
}

/**
 * What an image that is not a readable OCI image is: the build's product is broken, final (as an
 * unexpected error it was retried for as long as a report may be, its build left verifying).
 */
const UNREADABLE = ErrorCode.E_BUILD_FAILED;

/** Reads an image's manifest and config from the registry by digest (or tag). */
export async function readImage(registry: RegistryClient, repository: string, reference: string, signal?: AbortSignal, configs?: ConfigLookup): Promise<Image> {
  let manifest = await registry.manifest(repository, reference, signal);
  if (manifest === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `registry has no image ${repository}@${reference}`);
  if (manifest.mediaType === MEDIA.ociIndex || manifest.mediaType === MEDIA.dockerList) {
    const index = decodeWith(ImageIndex, manifest.bytes, `image index ${repository}@${reference}`, UNREADABLE);
    const pick = index.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64') ?? index.manifests[0];
    if (pick === undefined) throw new FleetError(ErrorCode.E_NOT_FOUND, `image index ${repository}@${reference} is empty`);
    manifest = await registry.manifest(repository, pick.digest, signal);
    if (manifest === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `registry has no image ${repository}@${pick.digest}`);
  }
  const parsed = decodeWith(ImageManifest, manifest.bytes, `image manifest ${repository}@${manifest.digest}`, UNREADABLE);
  // registry.blob checks the bytes against the digest, so a config is safe to remember by it.
  const read = async (): Promise<ImageConfig> => decodeWith(ImageConfig, await registry.blob(repository, parsed.config.digest, signal), `image config ${repository}@${parsed.config.digest}`, UNREADABLE);
  const config = configs === undefined ? await read() : await configs.get(parsed.config.digest, read);
  return { repository, digest: manifest.digest, config, layers: parsed.layers };
}

export interface LayerFile {
  /** absolute path in the image, e.g. /etc/passwd */
  path: string;
  bytes: Buffer;
}

/** Inflated in large chunks: the default 16 KiB made a 36 MB layer's gunzip ~1.7x slower. */
const GUNZIP_CHUNK = 256 * 1024;

/**
 * Streams one layer blob and hands `onFile`, in tar order, every regular file `want(path, size)`
 * asks for. The blob is never stored: other entries' bodies are skipped as they pass, and a
 * wanted file is held only while `onFile` looks at it. The compressed bytes are checked against
 * the layer's digest (sha256 or sha512, the algorithms OCI registers), so what is learned about
 * them may be remembered by it; a mismatch is E_DIGEST_MISMATCH.
 */
export async function scanLayer(
  registry: RegistryClient,
  repository: string,
  layer: Descriptor,
  want: (path: string, size: number) => boolean,
  onFile: (file: LayerFile) => void,
  signal?: AbortSignal,
): Promise<void> {
  const body = Readable.fromWeb((await registry.blobStream(repository, layer.digest, signal)) as WebReadableStream<Uint8Array>);
  const [algorithm, expected] = layer.digest.split(':');
  const hash = algorithm === 'sha256' || algorithm === 'sha512' ? createHash(algorithm) : null;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash?.update(chunk);
      done(null, chunk);
    },
  });
  const entryPath = (raw: string): string => `/${raw.replace(/^\.?\/+/, '')}`;
  const parser = new Parser({
    filter: (path, entry) => 'type' in entry && entry.type === 'File' && want(entryPath(path), entry.size),
    onReadEntry: (entry: ReadEntry) => {
      const path = entryPath(entry.path);
      const chunks: Buffer[] = [];
      entry.on('data', (c: Buffer) => chunks.push(c));
      entry.on('end', () => onFile({ path, bytes: Buffer.concat(chunks) }));
    },
  });
  const gzipped = layer.mediaType.endsWith('gzip') || layer.mediaType.endsWith('+gzip');
  if (gzipped) await pipeline(body, hashing, createGunzip({ chunkSize: GUNZIP_CHUNK }), parser);
  else await pipeline(body, hashing, parser);
  if (hash !== null && hash.digest('hex') !== expected) {
    throw new FleetError(ErrorCode.E_DIGEST_MISMATCH, `layer ${layer.digest} of ${repository} does not match its digest`);
  }
}
