import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { execa } from 'execa';
import { cacheBin } from '../../adapters/environment.ts';
import { diesWithParent, KILL_GRACE_MS, type ChildHandle } from '../../adapters/child-process.ts';
import type { S3Options } from '../../adapters/s3-store.ts';
import { freePort, waitFor } from '../../node/host.ts';

export interface S3Server {
  options: S3Options & { endpoint: string; credentials: { accessKeyId: string; secretAccessKey: string } };
  stop(): Promise<void>;
}

/** versitygw (posix backend) on a free loopback port, with one bucket and throwaway keys. */
export async function startS3Server(dir: string, bucket = 'fleet'): Promise<S3Server> {
  const data = join(dir, 'data');
  await mkdir(data, { recursive: true });
  const port = await freePort();
  const credentials = { accessKeyId: `fleet${randomBytes(6).toString('hex')}`, secretAccessKey: randomBytes(24).toString('hex') };
  // Dies with the fleet's process, even a kill -9'd one.
  const child: ChildHandle = execa(...diesWithParent(join(cacheBin(), 'versitygw'), ['--port', `127.0.0.1:${port}`, 'posix', data]), {
    env: { ROOT_ACCESS_KEY: credentials.accessKeyId, ROOT_SECRET_KEY: credentials.secretAccessKey },
    stdio: ['ignore', 'ignore', 'pipe'],
    reject: false,
    forceKillAfterDelay: KILL_GRACE_MS,
  });
  const endpoint = `http://127.0.0.1:${port}`;
  // A copy: the SDK tags the credentials object it is given.
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { ...credentials } });
  try {
    await waitFor('versitygw', async () => {
      if (child.exitCode !== null) throw new Error(`versitygw exited ${child.exitCode}`);
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      return true;
    });
  } finally {
    client.destroy();
  }
  return {
    options: { bucket, endpoint, region: 'us-east-1', forcePathStyle: true, credentials },
    async stop() {
      child.kill('SIGTERM');
      await child;
    },
  };
}
