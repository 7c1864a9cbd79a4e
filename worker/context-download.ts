import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ErrorCode, FleetError, type BuildJob } from '../protocol/index.ts';
import type { S3Store } from '../adapters/s3-store.ts';

/**
 * Downloads a context by its key and refuses it unless its bytes hash to the digest the request
 * named, and unless it stays under the size cap while downloading.
 */
export async function downloadContext(s3: S3Store, context: BuildJob['context'], file: string, maxBytes: number, signal: AbortSignal): Promise<void> {
  const body = await s3.get(context.key, signal);
  if (body === null) throw new FleetError(ErrorCode.E_CONTEXT_MISSING, `build context s3://${s3.bucket}/${context.key} is gone`);
  const hash = createHash('sha256');
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      if (bytes > maxBytes) return done(new FleetError(ErrorCode.E_CONTEXT_INVALID, `context is larger than ${maxBytes} bytes`));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  await pipeline(body, meter, createWriteStream(file, { mode: 0o600 }), { signal });
  const actual = `sha256:${hash.digest('hex')}`;
  if (actual !== context.digest) throw new FleetError(ErrorCode.E_CONTEXT_INVALID, `context bytes hash to ${actual}, not ${context.digest}`);
}
