import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { S3Options } from '../adapters/s3-store.ts';
import { fleetHome } from '../adapters/environment.ts';
import { NatsCredentials } from '../adapters/nats.ts';

/** Where `fleet up` tells other `fleet` commands how to reach it. */
const LocalFleetFile = z.object({ natsUrl: z.string(), natsCredentials: NatsCredentials, httpUrl: z.string(), registry: z.string(), s3: S3Options, pid: z.number() });
export type LocalFleetFile = z.infer<typeof LocalFleetFile>;

const file = (): string => join(fleetHome(), 'local.json');

export async function writeLocalFleet(info: z.input<typeof LocalFleetFile>): Promise<void> {
  await mkdir(dirname(file()), { recursive: true });
  // 0600: it holds the local S3 server's throwaway keys and names the admin's NATS seed.
  await writeFile(file(), JSON.stringify(info, null, 2), { mode: 0o600 });
}

export async function readLocalFleet(): Promise<LocalFleetFile | null> {
  const text = await readFile(file(), 'utf8').catch(() => null);
  if (text === null) return null;
  const parsed = LocalFleetFile.safeParse(JSON.parse(text));
  return parsed.success ? parsed.data : null;
}

export async function clearLocalFleet(): Promise<void> {
  await rm(file(), { force: true });
}
