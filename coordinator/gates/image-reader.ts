import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Parser, type ReadEntry } from 'tar';
import { z } from 'zod';
import { ErrorCode, FleetError } from '../../protocol/index.ts';
import { MEDIA, type RegistryClient } from '../../adapters/registry-client.ts';

const Descriptor = z.object({ mediaType: z.string(), digest: z.string(), size: z.number() });
const ImageManifest = z.object({ config: Descriptor, layers: z.array(Descriptor) });
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
  rootfs: z.object({ diff_ids: z.array(z.string()) }),
  history: z.array(z.object({ created_by: z.string().optional(), empty_layer: z.boolean().optional() })).default([]),
});
export type ImageConfig = z.infer<typeof ImageConfig>;

export interface Image {
  repository: string;
  /** the manifest digest (of the platform-specific manifest when the reference was an index) */
  digest: string;
  config: ImageConfig;
  layers: z.infer<typeof Descriptor>[];
}

/** Reads an image's manifest and config from the registry by digest (or tag). */
export async function readImage(registry: RegistryClient, repository: string, reference: string, signal?: AbortSignal): Promise<Image> {
  let manifest = await registry.manifest(repository, reference, signal);
  if (manifest === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `registry has no image ${repository}@${reference}`);
  if (manifest.mediaType === MEDIA.ociIndex || manifest.mediaType === MEDIA.dockerList) {
    const index = ImageIndex.parse(JSON.parse(Buffer.from(manifest.bytes).toString('utf8')));
    const pick = index.manifests.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64') ?? index.manifests[0];
    if (pick === undefined) throw new FleetError(ErrorCode.E_NOT_FOUND, `image index ${repository}@${reference} is empty`);
    manifest = await registry.manifest(repository, pick.digest, signal);
    if (manifest === null) throw new FleetError(ErrorCode.E_NOT_FOUND, `registry has no image ${repository}@${pick.digest}`);
  }
  const parsed = ImageManifest.parse(JSON.parse(Buffer.from(manifest.bytes).toString('utf8')));
  const configBytes = await registry.blob(repository, parsed.config.digest, signal);
  const config = ImageConfig.parse(JSON.parse(Buffer.from(configBytes).toString('utf8')));
  return { repository, digest: manifest.digest, config, layers: parsed.layers };
}

export interface LayerFile {
  /** absolute path in the image, e.g. /etc/passwd */
  path: string;
  /** index of the layer it comes from */
  layer: number;
  bytes: Buffer;
}

/**
 * Streams layers `from..layers.length-1` and hands `onFile` every regular file `want(path, size)`
 * asks for. Layers are never stored; files are held only while `onFile` looks at them.
 */
export async function scanLayers(
  registry: RegistryClient,
  image: Image,
  from: number,
  want: (path: string, size: number) => boolean,
  onFile: (file: LayerFile) => void,
  signal?: AbortSignal,
): Promise<void> {
  for (let i = from; i < image.layers.length; i++) {
    const layer = image.layers[i];
    if (layer === undefined) continue;
    const body = Readable.fromWeb((await registry.blobStream(image.repository, layer.digest, signal)) as WebReadableStream<Uint8Array>);
    const parser = new Parser({
      onReadEntry: (entry: ReadEntry) => {
        const path = `/${entry.path.replace(/^\.?\/+/, '')}`;
        if (entry.type !== 'File' || !want(path, entry.size)) {
          entry.resume();
          return;
        }
        const chunks: Buffer[] = [];
        entry.on('data', (c: Buffer) => chunks.push(c));
        entry.on('end', () => onFile({ path, layer: i, bytes: Buffer.concat(chunks) }));
      },
    });
    const gzipped = layer.mediaType.endsWith('gzip') || layer.mediaType.endsWith('+gzip');
    if (gzipped) await pipeline(body, createGunzip(), parser);
    else await pipeline(body, parser);
  }
}
