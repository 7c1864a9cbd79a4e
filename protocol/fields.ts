import { z } from 'zod';

/** A build id doubles as a NATS subject token and a KV key: no dots, no wildcards. */
export const BuildId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/, 'must be 1-128 letters, digits, "_" or "-", starting with a letter or digit');

export const PoolName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'must be 1-63 lower-case letters, digits, "_" or "-"');

export const Digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'must be "sha256:" followed by 64 hex digits');

/** Repository path as the OCI distribution spec defines it, without the registry host. */
export const Repository = z
  .string()
  .max(255)
  .regex(
    /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/,
    'must be lower-case path components separated by "/" (e.g. "app/my-app")',
  );

export const Tag = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/, 'must be a valid OCI tag (1-128 of [A-Za-z0-9_.-])');

/** A path inside the build context: relative, no "..", no NUL. */
export const ContextPath = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => !p.startsWith('/') && !p.split('/').includes('..') && !p.includes('\0'), {
    message: 'must be a relative path inside the context (no leading "/", no "..")',
  });

export const StageName = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,62}$/, 'must be a stage name');

/** Build-arg names; FLEET_* is reserved for values the platform injects. */
export const BuildArgName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'must be a shell-style variable name')
  .refine((n) => !n.startsWith('FLEET_'), { message: 'FLEET_* build args are reserved for the platform' })
  // BuildKit reads these as its own options, not the Dockerfile's: BUILDKIT_SYNTAX would load a
  // frontend image from anywhere (past the `# syntax=` check), BUILDKIT_CACHE_MOUNT_NS would open
  // another tenant's cache mounts.
  .refine((n) => !n.startsWith('BUILDKIT_'), { message: "BUILDKIT_* build args set BuildKit's own options (its frontend, its cache-mount namespace); the platform sets those" });

export const LabelKey = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._\/-]{0,254}$/, 'must be a label key');

export const Timestamp = z.iso.datetime();

/** A build secret is named by id; its value lives with the worker pool, never in a request. */
export const SecretId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 letters, digits, ".", "_" or "-"');

export const S3Url = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/[^\0]{1,1024}$/, 'must be s3://BUCKET/KEY');

/** Where a context lives in the fleet's bucket, and the sha256 its bytes must have. */
export const ContextRef = z.strictObject({ key: z.string().min(1).max(1024), digest: Digest });

/** Ids from the platform's catalogs (runtimes, options, services) and environment names. */
export const CatalogId = z.string().regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be 1-40 lower-case letters, digits or "-", starting with a letter');
export const EnvironmentName = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'must be 1-32 lower-case letters, digits or "-", starting with a letter');
