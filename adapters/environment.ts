import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { parseWith } from '../protocol/index.ts';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const absolute = z.string().refine(isAbsolute, 'must be an absolute path');
const flag = z.enum(['0', '1']).transform((v) => v === '1');

/**
 * Every environment variable the fleet reads, validated once. Nothing else reads `process.env`
 * for the fleet's own settings: a typo'd value fails here, naming the variable.
 */
export const FleetEnvironment = z.object({
  /** where the bootstrap keeps pinned binaries, image layouts and keys */
  FLEET_CACHE_DIR: absolute.default('/var/cache/fleet'),
  /** the unprivileged user rootless builds run as */
  FLEET_BUILD_USER: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/).default('fleetbuild'),
  FLEET_LOG_LEVEL: z.enum(LOG_LEVELS).optional(),
  /** any value: JSON logs even on a terminal */
  FLEET_LOG_JSON: z.string().optional(),
  /** the CLI's own state (which local fleet it talks to) */
  FLEET_HOME: absolute.optional(),
  /** the CLI's fleet, when not the local one */
  FLEET_NATS_URL: z.string().min(1).optional(),
  /** with FLEET_NATS_URL: the CLI's NATS identity, an nkey seed file and the user it belongs to (`admin` or `tenant-<name>`) */
  FLEET_NATS_NKEY: absolute.optional(),
  FLEET_NATS_USER: z.string().regex(/^(admin|tenant-[a-z][a-z0-9-]{0,39})$/, 'must be admin or tenant-<name>').optional(),
  FLEET_S3_BUCKET: z.string().min(3).optional(),
  FLEET_S3_ENDPOINT: z.url().optional(),
  FLEET_S3_REGION: z.string().min(1).optional(),
  FLEET_S3_PATH_STYLE: flag.optional(),
  /** the worker's `maxBuilds`, over its config file: one image's config serves a Deployment and a one-build-per-pod ScaledJob */
  FLEET_WORKER_MAX_BUILDS: z.coerce.number().int().positive().optional(),
});
export type FleetEnvironment = z.infer<typeof FleetEnvironment>;

let current: FleetEnvironment | null = null;

/** The process's environment, parsed on first use and kept. */
export function fleetEnvironment(): FleetEnvironment {
  current ??= readEnvironment(process.env);
  return current;
}

export function readEnvironment(env: Readonly<Record<string, string | undefined>>): FleetEnvironment {
  // Empty values count as unset, as in a shell's `${X:-default}`.
  const set = Object.fromEntries(Object.entries(env).filter(([k, v]) => k.startsWith('FLEET_') && v !== undefined && v !== ''));
  return parseWith(FleetEnvironment, set, 'environment');
}

export const cacheDir = (): string => fleetEnvironment().FLEET_CACHE_DIR;
/** pinned binaries the bootstrap built (nats-server, versitygw, buildkitd, buildctl) */
export const cacheBin = (): string => join(cacheDir(), 'bin');
/** The PATH builders run with: the bootstrap's builds first, so a worker and a node's tools run the same buildah. */
export const builderToolPath = (): string => `${cacheBin()}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
export const platformPublicKeyPath = (): string => join(cacheDir(), 'keys', 'official.pub');
export const fleetHome = (): string => fleetEnvironment().FLEET_HOME ?? join(homedir(), '.fleet');
