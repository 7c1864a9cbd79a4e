import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { createGunzip } from 'node:zlib';
import { z } from 'zod';
import { ErrorCode, FleetError, GateCode, decodeWith } from '../protocol/index.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';

/** Below this many bytes a secret's value would turn up in some layer by chance: not searched. */
export const MIN_SEARCHED_BYTES = 8;

const PushedManifest = z.object({
  config: z.object({ digest: z.string() }),
  layers: z.array(z.object({ digest: z.string(), mediaType: z.string() })).nullish().transform((l) => l ?? []),
});

/**
 * The build's own secret values, searched for in the image it pushed: its config (ENV, labels,
 * history) and every layer the bases do not hold, uncompressed. A secret is mounted for RUN steps
 * only; a step that copies it into a file (`cp /run/secrets/npm_token .npmrc`) or an ENV would ship
 * it. The gates look for secret-shaped files; only the worker knows the values, and only while
 * the build runs. Returns the refusal (E_GATE_BLOCKED, `no-secrets`), never the value; null when
 * the image holds none.
 */
export async function secretInImage(
  registry: RegistryClient,
  repository: string,
  digest: string,
  baseLayers: ReadonlySet<string>,
  secrets: ReadonlyMap<string, Buffer>,
  signal: AbortSignal,
): Promise<FleetError | null> {
  const searched = [...secrets].filter(([, value]) => value.length >= MIN_SEARCHED_BYTES);
  if (searched.length === 0) return null;
  const manifest = await registry.manifest(repository, digest, signal);
  if (manifest === null) throw new FleetError(ErrorCode.E_PUSH_FAILED, `the pushed image ${repository}@${digest} is not in the registry`);
  const parsed = decodeWith(PushedManifest, manifest.bytes, `pushed image manifest ${repository}@${digest}`, ErrorCode.E_BUILD_FAILED);
  const inConfig = firstFound(Buffer.from(await registry.blob(repository, parsed.config.digest, signal)), searched);
  if (inConfig !== null) return leak(inConfig, 'the image config (ENV, a label or the history)');
  for (const [i, layer] of parsed.layers.entries()) {
    if (baseLayers.has(layer.digest)) continue;
    const stream = Readable.fromWeb((await registry.blobStream(repository, layer.digest, signal)) as WebReadableStream<Uint8Array>);
    const bytes = layer.mediaType.includes('gzip') ? stream.pipe(createGunzip()) : stream;
    const found = await searchStream(bytes, searched);
    if (found !== null) return leak(found, `layer ${i + 1}`);
  }
  return null;
}

/** The build's secrets as searched (values, and trimmed values as written by `$(cat …)`), by id. */
export function secretValues(values: Readonly<Record<string, string>>): Map<string, Buffer> {
  const searched = new Map<string, Buffer>();
  for (const [id, value] of Object.entries(values)) {
    searched.set(id, Buffer.from(value));
    if (value.trim() !== value) searched.set(`${id} (trimmed)`, Buffer.from(value.trim()));
  }
  return searched;
}

function leak(id: string, where: string): FleetError {
  const reason = `the value of build secret ${id.replace(/ \(trimmed\)$/, '')} is in ${where}: a secret is mounted for RUN steps, never to be written into the image`;
  return new FleetError(ErrorCode.E_GATE_BLOCKED, `gates blocked promotion: no-secrets ${GateCode.SECRET_IN_FILE}: ${reason}`, { gates: [{ gate: 'no-secrets', code: GateCode.SECRET_IN_FILE, reason }] });
}

function firstFound(bytes: Buffer, secrets: ReadonlyArray<[string, Buffer]>): string | null {
  return secrets.find(([, value]) => bytes.includes(value))?.[0] ?? null;
}

/** Searches a stream chunk by chunk, keeping the longest secret's length less one across chunk edges. */
async function searchStream(stream: NodeJS.ReadableStream, secrets: ReadonlyArray<[string, Buffer]>): Promise<string | null> {
  const keep = Math.max(...secrets.map(([, v]) => v.length)) - 1;
  let tail = Buffer.alloc(0);
  for await (const chunk of stream) {
    const window = Buffer.concat([tail, chunk as Buffer]);
    const found = firstFound(window, secrets);
    if (found !== null) {
      if ('destroy' in stream && typeof stream.destroy === 'function') stream.destroy();
      return found;
    }
    tail = window.subarray(Math.max(0, window.length - keep));
  }
  return null;
}
