import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { BuilderKind, PoolName, parseWith } from '../protocol/index.ts';
import { KANIKO_IMAGE } from '../images/versions.ts';
import { S3Options } from '../adapters/s3-store.ts';
import { NatsCredentials } from '../adapters/nats.ts';
import { platformPublicKeyPath } from '../adapters/environment.ts';
import { DEFAULT_EXTRACT_LIMITS } from './context-extract.ts';

export const WorkerOptions = z.strictObject({
  natsUrl: z.string().min(1),
  /** the worker's NATS identity: its pool's user (`worker-<pool>`), which the server lets touch only that pool */
  natsCredentials: NatsCredentials,
  pool: PoolName.default('default'),
  workerId: z.string().regex(/^[A-Za-z0-9_.-]{1,128}$/).optional(),
  /** owned by the worker's user; holds builder storage, scratch dirs and runtime files */
  stateDir: z.string().refine(isAbsolute, 'must be an absolute path'),
  builder: BuilderKind.default('buildah'),
  /** the kaniko builder's image, `repository:tag` in the job's registry; must carry the platform signature */
  kanikoImage: z.string().regex(/^[a-z0-9._/-]+:[A-Za-z0-9_][A-Za-z0-9_.-]*$/, 'must be REPOSITORY:TAG').default(KANIKO_IMAGE),
  /** contexts and archived logs */
  s3: S3Options,
  /** caps on what a context may unpack to (see context-extract.ts) */
  extract: z
    .strictObject({
      maxEntries: z.number().int().positive(),
      maxBytes: z.number().int().positive(),
      maxRatio: z.number().positive(),
      ratioFloorBytes: z.number().int().nonnegative(),
    })
    .default(DEFAULT_EXTRACT_LIMITS),
  /** public key official images are signed with; a build on an image it does not verify fails */
  signingPublicKeyPath: z.string().refine(isAbsolute, 'must be an absolute path').default(platformPublicKeyPath),
  /** the node's read-only store of platform images (containers-storage additionalimagestores), if it keeps one */
  sharedImageStore: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /** docker config.json with the pool's registry credentials, handed to every builder */
  registryAuthFile: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /**
   * docker config.json with pull-only credentials the worker pulls a kaniko pool's bases with
   * (kaniko itself gets no credentials: the worker brings bases in and pushes out). `{}` means
   * anonymous; absent: registryAuthFile.
   */
  registryPullAuthFile: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /** registries reached over plain HTTP: a loopback development registry, nothing else */
  insecureRegistries: z.array(z.string()).default([]),
  /** the pool's build secrets, one file per id (readable by the worker only) */
  secretsDir: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /** extra patterns (regular expressions) masked in build logs, e.g. token formats */
  maskPatterns: z
    .array(z.string().refine((p) => { try { new RegExp(p, 'g'); return true; } catch { return false; } }, 'must be a valid regular expression'))
    .default([]),
  logs: z
    .strictObject({
      maxLiveLines: z.number().int().positive(),
      maxLiveBytes: z.number().int().positive(),
      maxLineChars: z.number().int().min(256),
    })
    .default({ maxLiveLines: 100_000, maxLiveBytes: 64 * 1024 ** 2, maxLineChars: 16_384 }),
  /** how often the worker announces itself in the workers bucket (keep well under its TTL) */
  announceMs: z.number().int().min(100).default(5_000),
  /** how often the worker tells JetStream it is still working on a job */
  heartbeatMs: z.number().int().min(100).default(10_000),
  /**
   * stop (drained, exit 0) after this many builds: 1 gives one fresh pod per build under a KEDA
   * ScaledJob; absent, the worker takes builds until it is told to stop
   */
  maxBuilds: z.number().int().positive().optional(),
  /** how long SIGTERM waits for the current build before handing it back */
  drainGraceMs: z.number().int().min(0).default(120_000),
  /** serve GET /metrics (Prometheus) and /healthz on this port, all interfaces; 0 picks a free one; absent: no server */
  metricsPort: z.number().int().min(0).max(65535).optional(),
  /**
   * caps on one build (absent: unlimited): memoryBytes per process (RLIMIT_DATA), pids (RLIMIT_NPROC
   * of the steps in the builder's user namespace), scratchBytes (storage growth, watched; also
   * RLIMIT_FSIZE), logBytes (build output); over one, the build fails with E_RESOURCE_LIMIT
   */
  limits: z
    .strictObject({
      memoryBytes: z.number().int().min(16 * 1024 ** 2).optional(),
      pids: z.number().int().min(8).optional(),
      scratchBytes: z.number().int().min(1024 ** 2).optional(),
      logBytes: z.number().int().min(1024).optional(),
    })
    .default({}),
  /**
   * network for RUN steps on every builder: `private` (own namespace, outbound only through
   * slirp4netns, the host's loopback unreachable) or `none` (loopback only)
   */
  runNetwork: z.enum(['private', 'none']).default('private'),
  /**
   * the BuildKit pool's sandbox network (buildkitd and its RUN steps): `slirp4netns` (own namespace,
   * outbound only; needs /dev/net/tun) or `pod` (the worker's own network namespace, for a Kubernetes
   * pod, which has no tun device: its NetworkPolicy is then the bound). Without a tun device and
   * without `pod` the worker refuses to start; it never falls back by itself
   */
  buildkitNetwork: z.enum(['slirp4netns', 'pod']).default('slirp4netns'),
  /**
   * the kaniko pool's sandbox network for the executor and its RUN steps when `runNetwork` is
   * `private`: `slirp4netns` (own namespace, outbound only; needs /dev/net/tun) or `pod` (podman
   * `--network host`: the worker's own network namespace, for a Kubernetes pod, which has no tun
   * device: its NetworkPolicy is then the bound). `runNetwork: none` stays none. Without a tun
   * device and without `pod` the worker refuses to start; it never falls back by itself
   */
  kanikoNetwork: z.enum(['slirp4netns', 'pod']).default('slirp4netns'),
});
export type WorkerOptions = z.input<typeof WorkerOptions>;
export type WorkerConfig = z.infer<typeof WorkerOptions> & { workerId: string };

export function compileWorkerConfig(options: WorkerOptions): WorkerConfig {
  const parsed = parseWith(WorkerOptions, options, 'worker options');
  return { ...parsed, workerId: parsed.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}` };
}
