import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { ObjectStore } from '@nats-io/obj';
import { ErrorCode, FleetError } from '../protocol/index.ts';

/** Downloads a context tarball by digest and refuses it unless its bytes hash to that digest. */
export async function downloadContext(store: ObjectStore, digest: string, file: string, signal: AbortSignal): Promise<void> {
  const result = await store.get(digest);
  if (result === null) throw new FleetError(ErrorCode.E_CONTEXT_MISSING, `build context ${digest} is not in the store`);
  const hash = createHash('sha256');
  const out = createWriteStream(file, { mode: 0o600 });
  const source = result.data.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        hash.update(chunk);
        controller.enqueue(chunk);
      },
    }),
  );
  await pipeline(source, out, { signal });
  const streamError = await result.error;
  if (streamError) throw new FleetError(ErrorCode.E_UNAVAILABLE, `context download failed: ${streamError.message}`);
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== digest) throw new FleetError(ErrorCode.E_CONTEXT_INVALID, `context bytes hash to ${actual}, not ${digest}`);
}

