import { z } from 'zod';
import { BuildId, Digest, Timestamp } from './fields.ts';
import { ErrorBody } from './errors.ts';

/** Severities as grype names them, most severe first; `Unknown` is mapped by the policy (`unknownAs`). */
export const Severity = z.enum(['Critical', 'High', 'Medium', 'Low', 'Negligible', 'Unknown']);
export type Severity = z.infer<typeof Severity>;

/** Higher is worse; the policy compares ranks. */
export const SEVERITY_RANK: Record<Severity, number> = { Critical: 5, High: 4, Medium: 3, Low: 2, Negligible: 1, Unknown: 0 };

/** A scan id doubles as a NATS subject token: no dots, no wildcards. */
export const ScanId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,200}$/);

/** What the vulnerabilities gate asks a scanner: one image, by digest, in the fleet's registry. */
export const ScanJob = z.strictObject({
  scanId: ScanId,
  buildId: BuildId,
  /** registry host[:port] as in image references */
  registry: z.string().min(1),
  /** plain HTTP (a loopback development registry) */
  insecure: z.boolean().default(false),
  repository: z.string().min(1),
  digest: Digest,
  at: Timestamp,
});
export type ScanJob = z.infer<typeof ScanJob>;

/** One vulnerability in one installed package, scanner-neutral. */
export const Finding = z.strictObject({
  /** CVE (or GHSA, DSA…) id */
  id: z.string().min(1),
  severity: Severity,
  package: z.string().min(1),
  installed: z.string(),
  /** the lowest version that fixes it, when one exists */
  fixed: z.string().optional(),
  fixState: z.enum(['fixed', 'not-fixed', 'wont-fix', 'unknown']),
  /** where the advisory comes from (the DB namespace, e.g. debian:distro:debian:12) */
  source: z.string(),
});
export type Finding = z.infer<typeof Finding>;

export const ScannerIdentity = z.strictObject({
  name: z.string(),
  version: z.string(),
  /** when the vulnerability DB was built: a finding set means nothing without it */
  dbBuilt: Timestamp,
});
export type ScannerIdentity = z.infer<typeof ScannerIdentity>;

export const ScanReport = z.discriminatedUnion('ok', [
  z.strictObject({
    ok: z.literal(true),
    scanId: ScanId,
    digest: Digest,
    scanner: ScannerIdentity,
    findings: z.array(Finding),
    durationMs: z.number().int().nonnegative(),
    at: Timestamp,
  }),
  z.strictObject({
    ok: z.literal(false),
    scanId: ScanId,
    digest: Digest,
    error: ErrorBody,
    at: Timestamp,
  }),
]);
export type ScanReport = z.infer<typeof ScanReport>;

/** `fleet scan --rescan-released` (admin, request-reply on subjects.rescanApi): rescan every released image now. */
/**
 * A scanner's word that its vulnerability DB moved (published on `subjects.scannerDbUpdated`
 * after an update installed a DB of another build time). Only a hint: the coordinator records the
 * build time (compare-and-set, so each DB starts one rescan however many scanners announce it) and
 * rescans released images; the message carries nothing else a scanner could steer.
 */
export const ScannerDbUpdated = z.strictObject({
  scannerId: z.string().min(1).max(200),
  /** the build time of the DB the scanner now scans with */
  dbBuilt: Timestamp,
  at: Timestamp,
});
export type ScannerDbUpdated = z.infer<typeof ScannerDbUpdated>;

export const RescanRequest = z.strictObject({ reason: z.string().max(200).default('asked by an admin') });
export type RescanRequest = z.infer<typeof RescanRequest>;

export const RescanReply = z.discriminatedUnion('ok', [
  /** `started: false`: a rescan was running already; it runs once more when it ends */
  z.strictObject({ ok: z.literal(true), started: z.boolean() }),
  z.strictObject({ ok: z.literal(false), error: ErrorBody }),
]);
export type RescanReply = z.infer<typeof RescanReply>;
