import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  DeleteObjectsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { z } from 'zod';
import { ErrorCode, FleetError, parseWith } from '../protocol/index.ts';

/**
 * Where contexts and archived logs live. Credentials come from the AWS default chain (env,
 * profile, instance role); endpoint and path-style are for S3-compatible servers.
 */
export const S3Options = z.strictObject({
  bucket: z.string().min(3),
  region: z.string().default('us-east-1'),
  endpoint: z.url().optional(),
  forcePathStyle: z.boolean().default(false),
  /** explicit keys, for the local fleet and tests; production leaves this to the default chain */
  credentials: z.strictObject({ accessKeyId: z.string(), secretAccessKey: z.string() }).optional(),
});
export type S3Options = z.input<typeof S3Options>;

/** Multipart above this size, in parts of this size, two at a time: memory stays ~2 parts. */
const MULTIPART_THRESHOLD = 16 * 1024 ** 2;
const PART_SIZE = 8 * 1024 ** 2;

export const contextKey = (digest: string): string => `contexts/sha256/${digest.replace(/^sha256:/, '')}.tar.gz`;
export const logKey = (buildId: string, attempt: number): string => `logs/${buildId}/attempt-${String(attempt).padStart(3, '0')}.log.gz`;

export class S3Store {
  readonly bucket: string;
  private readonly client: S3Client;

  constructor(options: S3Options) {
    const o = parseWith(S3Options, options, 's3 options');
    this.bucket = o.bucket;
    this.client = new S3Client({
      region: o.region,
      forcePathStyle: o.forcePathStyle,
      ...(o.endpoint === undefined ? {} : { endpoint: o.endpoint }),
      ...(o.credentials === undefined ? {} : { credentials: { ...o.credentials } }),
    });
  }

  async head(key: string): Promise<{ size: number } | null> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0 };
    } catch (e) {
      if (isS3Status(e, 404)) return null;
      throw unavailable('HEAD', key, e);
    }
  }

  /**
   * Uploads a file unless the key exists (content-addressed keys never change). Small files use
   * a conditional put (If-None-Match: *); large ones multipart with bounded memory, aborted on
   * failure so no orphan parts stay behind.
   */
  async putFileOnce(key: string, file: string, signal?: AbortSignal): Promise<{ uploaded: boolean }> {
    if ((await this.head(key)) !== null) return { uploaded: false };
    const size = (await stat(file)).size;
    try {
      if (size < MULTIPART_THRESHOLD) {
        await this.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: createReadStream(file), ContentLength: size, IfNoneMatch: '*' }),
          signal === undefined ? {} : { abortSignal: signal },
        );
      } else {
        const upload = new Upload({
          client: this.client,
          params: { Bucket: this.bucket, Key: key, Body: createReadStream(file) },
          partSize: PART_SIZE,
          queueSize: 2,
          leavePartsOnError: false,
          ...(signal === undefined ? {} : { abortController: abortControllerFor(signal) }),
        });
        await upload.done();
      }
      return { uploaded: true };
    } catch (e) {
      // Someone else stored the same content first: that is success for a content address.
      if (isS3Status(e, 412)) return { uploaded: false };
      throw unavailable('PUT', key, e);
    }
  }

  async putBytes(key: string, body: Uint8Array, contentType: string): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: contentType }));
    } catch (e) {
      throw unavailable('PUT', key, e);
    }
  }

  async get(key: string, signal?: AbortSignal): Promise<Readable | null> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }), signal === undefined ? {} : { abortSignal: signal });
      return out.Body as Readable;
    } catch (e) {
      if (isS3Status(e, 404)) return null;
      throw unavailable('GET', key, e);
    }
  }

  async list(prefix: string): Promise<Array<{ key: string; lastModified: Date | undefined; size: number }>> {
    const out: Array<{ key: string; lastModified: Date | undefined; size: number }> = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key !== undefined) out.push({ key: o.Key, lastModified: o.LastModified, size: o.Size ?? 0 });
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return out;
  }

  async delete(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      await this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) } }));
    }
  }

  close(): void {
    this.client.destroy();
  }
}

function isS3Status(e: unknown, status: number): boolean {
  if (e instanceof S3ServiceException) return e.$metadata.httpStatusCode === status;
  return typeof e === 'object' && e !== null && '$metadata' in e && (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === status;
}

function unavailable(op: string, key: string, e: unknown): FleetError {
  return new FleetError(ErrorCode.E_UNAVAILABLE, `S3 ${op} ${key} failed: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
}

function abortControllerFor(signal: AbortSignal): AbortController {
  const ac = new AbortController();
  signal.addEventListener('abort', () => ac.abort(), { once: true });
  return ac;
}
