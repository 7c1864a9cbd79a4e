import { z } from 'zod';
import { Digest } from './fields.ts';
import { Finding, ScannerIdentity } from './scan.ts';

/** The compliance gates, each with a stable id the policy and the verdict use. */
export const GateId = z.enum(['official-base', 'non-root', 'no-secrets', 'base-signature', 'vulnerabilities']);
export type GateId = z.infer<typeof GateId>;

/** Stable result codes per gate (what a machine matches on; `reason` is for people). */
export const GateCode = {
  OFFICIAL_BASE_OK: 'OFFICIAL_BASE_OK',
  OFFICIAL_BASE_DIVERGES: 'OFFICIAL_BASE_DIVERGES',
  NON_ROOT_OK: 'NON_ROOT_OK',
  USER_UNSET: 'USER_UNSET',
  USER_IS_ROOT: 'USER_IS_ROOT',
  USER_UNKNOWN: 'USER_UNKNOWN',
  NO_SECRETS_OK: 'NO_SECRETS_OK',
  SECRET_IN_ENV: 'SECRET_IN_ENV',
  SECRET_IN_LABEL: 'SECRET_IN_LABEL',
  SECRET_IN_HISTORY: 'SECRET_IN_HISTORY',
  SECRET_IN_FILE: 'SECRET_IN_FILE',
  BASE_SIGNATURE_OK: 'BASE_SIGNATURE_OK',
  BASE_UNSIGNED: 'BASE_UNSIGNED',
  BASE_SIGNATURE_NOT_APPLICABLE: 'BASE_SIGNATURE_NOT_APPLICABLE',
  VULNERABILITIES_OK: 'VULNERABILITIES_OK',
  VULNERABILITIES_FOUND: 'VULNERABILITIES_FOUND',
  /** no scanner pool in this fleet: the gate did not run */
  VULNERABILITIES_NOT_SCANNED: 'VULNERABILITIES_NOT_SCANNED',
  /** the other gates blocked already: the image was not scanned */
  VULNERABILITIES_NOT_REACHED: 'VULNERABILITIES_NOT_REACHED',
} as const;
export type GateCode = (typeof GateCode)[keyof typeof GateCode];

export const GateResult = z.object({
  gate: GateId,
  /** pass; block (stops promotion); warn (failed, but the policy only reports it); excepted (failed, a policy exception applies); skipped (did not run) */
  outcome: z.enum(['pass', 'block', 'warn', 'excepted', 'skipped']),
  code: z.enum(GateCode),
  /** a human reason; never contains a secret value */
  reason: z.string(),
  /** the vulnerabilities gate's evidence */
  scan: z
    .object({
      scanner: ScannerIdentity,
      /** findings at or above the policy's threshold that no allowlist entry covers */
      blocking: z.array(Finding),
      /** every allowlist entry that matched a finding, and whether it had expired */
      allowlisted: z.array(
        z.object({ cve: z.string(), package: z.string(), reason: z.string(), expires: z.string(), addedBy: z.string(), expired: z.boolean() }),
      ),
      /** how many findings the scan had, all severities */
      total: z.number().int().nonnegative(),
    })
    .optional(),
});
export type GateResult = z.infer<typeof GateResult>;

export const Verdict = z.object({
  digest: Digest,
  /** true when no gate blocks: the image is promoted */
  promoted: z.boolean(),
  gates: z.array(GateResult),
  /** the official image whose layers lead this one's, when there is one */
  officialBase: z.string().optional(),
});
export type Verdict = z.infer<typeof Verdict>;
