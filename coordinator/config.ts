import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { PoolName, parseWith } from '../protocol/index.ts';
import { S3Options } from '../adapters/s3-store.ts';
import { NatsCredentials } from '../adapters/nats.ts';
import { platformPublicKeyPath } from '../adapters/environment.ts';
import { DEFAULT_POLICY_PATH } from './gates/policy.ts';
import { DEFAULT_CATALOG_PATH } from './platform/catalog.ts';
import { RebuildOptions } from './rebuilds/options.ts';
import { platformSigningKeyPath, platformSigningPassphrasePath } from './provenance/signing-key.ts';

/** Options are validated once, here, into a compiled config the rest of the coordinator trusts. */
export const CoordinatorOptions = z.strictObject({
  natsUrl: z.string().min(1),
  /** the coordinator's NATS identity (user `coordinator`) */
  natsCredentials: NatsCredentials,
  http: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(8080),
      maxBodyBytes: z.number().int().positive().default(1 << 20),
    })
    .default({ host: '127.0.0.1', port: 8080, maxBodyBytes: 1 << 20 }),
  registry: z.strictObject({
    /** host[:port] as it appears in image references */
    host: z.string().min(1),
    /** plain HTTP; only for a loopback development registry */
    insecure: z.boolean().default(false),
    /** docker config.json with the coordinator's credentials for it (gates read, promotion writes) */
    authFile: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  }),
  /** the platform team's files: standard-build catalog, gate policy, official-image signing key */
  platform: z
    .strictObject({
      catalogPath: z.string().default(DEFAULT_CATALOG_PATH),
      policyPath: z.string().default(DEFAULT_POLICY_PATH),
      /** public half of the key official images are signed with (made by scripts/bootstrap) */
      signingPublicKeyPath: z.string().default(platformPublicKeyPath),
      /** private half of that key (encrypted sigstore PEM): the coordinator signs each promoted image's provenance with it */
      signingKeyPath: z.string().default(platformSigningKeyPath),
      /**
       * `required`: every promoted image carries a signed provenance attestation, and a coordinator
       * that cannot open the signing key refuses to start (it would otherwise promote unattested
       * images); `off`: no attestations (a fleet without the platform key, e.g. a laptop)
       */
      provenance: z.enum(['required', 'off']).default('required'),
      /** the passphrase of signingKeyPath */
      signingPassphrasePath: z.string().default(platformSigningPassphrasePath),
      /** tenants and what each owns (see coordinator/tenancy); reloaded when the file changes. Absent: only admins submit */
      tenancyPath: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
      /** OIDC issuers whose ID tokens the HTTP API accepts, and the rules mapping them to tenants (coordinator/auth/oidc.ts) */
      oidcPath: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
    })
    .prefault({}),
  /** contexts and archived logs */
  s3: S3Options,
  /** contexts larger than this are refused */
  maxContextBytes: z.number().int().positive().default(1024 ** 3),
  /** run timeout when a request names none, and the most a request may ask for */
  defaultRunTimeoutSeconds: z.number().int().positive().default(3600),
  maxRunTimeoutSeconds: z.number().int().positive().default(4 * 3600),
  /** how long a build may wait for a worker, when a request names none, and the most it may ask */
  defaultQueueTtlSeconds: z.number().int().positive().default(6 * 3600),
  maxQueueTtlSeconds: z.number().int().positive().default(24 * 3600),
  pools: z.array(PoolName).min(1).default(['default']),
  /** how long a worker may stay silent before its job is redelivered */
  jobAckWaitMs: z.number().int().min(1000).default(30_000),
  maxDeliver: z.number().int().min(1).default(5),
  /**
   * workers' reports applied at once (gates, promotion), each build's in order; past this the
   * coordinator stops pulling reports until one is done
   */
  reportConcurrency: z.number().int().min(1).max(1024).default(64),
  /** a worker that has not announced itself for this long is gone from `fleet workers` */
  workerTtlMs: z.number().int().min(1000).default(15_000),
  /**
   * Vulnerability scanning before promotion (the vulnerabilities gate). Absent: this fleet has no
   * scanner pool and the gate is reported as skipped. Present: no report within `timeoutMs` fails
   * the build with E_SCAN_UNAVAILABLE, never promotes it.
   */
  scan: z
    .strictObject({
      timeoutMs: z.number().int().min(1000).default(10 * 60_000),
      /** when the scanners' DB moves, released images are rescanned, at most this many starting per minute (coordinator/rescans.ts) */
      rescanPerMinute: z.number().int().min(1).default(30),
      /** a scan job no scanner marks in progress for this long goes to another scanner (a scanner killed mid-scan) */
      ackWaitMs: z.number().int().min(1000).default(60_000),
    })
    .optional(),
  /** how long the audit trail is kept */
  auditMaxAgeMs: z.number().int().positive().default(365 * 24 * 3600 * 1000),
  /** replicas of every stream and bucket: 1 on a single server, 3 on a 3-node JetStream cluster (deploy/kubernetes) */
  jetstreamReplicas: z.number().int().min(1).max(5).default(1),
  /** rebuild on base update: notice base changes (registry notifications, a poller), rebuild dependents in waves */
  rebuilds: RebuildOptions.prefault({}),
  /** how long build logs and events stay in JetStream */
  buildsMaxAgeMs: z.number().int().positive().default(7 * 24 * 3600 * 1000),
});
export type CoordinatorOptions = z.input<typeof CoordinatorOptions>;
export type CoordinatorConfig = z.infer<typeof CoordinatorOptions>;

export function compileCoordinatorConfig(options: CoordinatorOptions): CoordinatorConfig {
  return parseWith(CoordinatorOptions, options, 'coordinator options');
}
