import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { AllowedBase, BuildKind, GateId, Severity, TenantName, parseWith, type GateResult } from '../../protocol/index.ts';

const Enforcement = z.enum(['block', 'report']);

/** What the vulnerabilities gate blocks on (see coordinator/gates/vulnerabilities.ts). */
export const VulnerabilityPolicy = z.strictObject({
  /** a finding at or above this severity blocks */
  blockAtOrAbove: Severity.exclude(['Unknown']).default('Critical'),
  /**
   * whether a finding with no fix yet counts. Off by default: nobody can act on it but by an
   * allowlist entry, and every image of the base would be blocked until Debian ships a fix.
   */
  countNotFixed: z.boolean().default(false),
  /** the severity a finding of unknown severity is taken for */
  unknownAs: Severity.exclude(['Unknown']).default('High'),
  allowlist: z
    .array(
      z.strictObject({
        cve: z.string().min(1),
        /** only this package (a Debian source or binary name as the scanner reports it); absent: any */
        package: z.string().min(1).optional(),
        /** only repositories starting with one of these; absent: every repository */
        repositories: z.array(z.string().min(1)).min(1).optional(),
        reason: z.string().min(10, 'say why, in a sentence'),
        /** after this instant the entry no longer applies (and the verdict says it expired) */
        expires: z.iso.datetime(),
        addedBy: z.string().min(1),
      }),
    )
    .default([]),
});
export type VulnerabilityPolicy = z.infer<typeof VulnerabilityPolicy>;

/** The gate policy file the platform team edits (`images/platform/gate-policy.json`). */
export const GatePolicy = z.strictObject({
  $comment: z.string().optional(),
  /** official images, `repository:tag` in the fleet's registry; the official-base gate compares against these */
  officialBases: z.array(z.string().regex(/^official\/[a-z0-9._\/-]+:[A-Za-z0-9_][A-Za-z0-9_.-]*$/)).min(1),
  /** per gate, per kind of build: does a failure block promotion or is it only reported? */
  gates: z.partialRecord(GateId, z.partialRecord(BuildKind, Enforcement)),
  exceptions: z
    .array(
      z.strictObject({
        /** repository (without registry host) the exception covers */
        repository: z.string().min(1),
        gate: GateId,
        reason: z.string().min(10, 'say why, in a sentence'),
        /** after this instant the exception no longer applies */
        expires: z.iso.datetime(),
      }),
    )
    .default([]),
  vulnerabilities: VulnerabilityPolicy.prefault({}),
  /**
   * Where a FROM may pull from. Always allowed: the platform's images (`official/*` and `platform/*`
   * in the fleet's registry) and the tenant's own repositories there (the platform tenant: the whole
   * registry). Anything else must be listed here; the worker refuses the rest with E_BASE_NOT_ALLOWED
   * before any pull.
   */
  bases: z
    .strictObject({
      allowed: z
        .array(
          AllowedBase.extend({
            /** only these tenants; absent: every tenant */
            tenants: z.array(TenantName).min(1).optional(),
          }),
        )
        .default([]),
    })
    .prefault({}),
});
export type GatePolicy = z.infer<typeof GatePolicy>;

export const DEFAULT_POLICY_PATH = new URL('../../images/platform/gate-policy.json', import.meta.url).pathname;

export async function loadGatePolicy(path: string = DEFAULT_POLICY_PATH): Promise<GatePolicy> {
  return parseWith(GatePolicy, JSON.parse(await readFile(path, 'utf8')), `gate policy ${path}`);
}

/** What a gate's failure means for this build: block, only warn, or excepted (with the reason). */
export function failureOutcome(
  policy: GatePolicy,
  gate: GateId,
  kind: BuildKind,
  repository: string,
  now: Date = new Date(),
): { outcome: GateResult['outcome']; note?: string } {
  const exception = policy.exceptions.find((e) => e.gate === gate && e.repository === repository && new Date(e.expires) > now);
  if (exception !== undefined) return { outcome: 'excepted', note: `exception until ${exception.expires}: ${exception.reason}` };
  // A gate the policy does not mention for this kind blocks: forgetting to configure is not consent.
  return { outcome: (policy.gates[gate]?.[kind] ?? 'block') === 'block' ? 'block' : 'warn' };
}
