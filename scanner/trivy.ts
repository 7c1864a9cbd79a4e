import { isAbsolute } from 'node:path';
import { stat } from 'node:fs/promises';
import { z } from 'zod';
import { ErrorCode, FleetError, parseWith, type Finding, type ScannerIdentity, type Severity } from '../protocol/index.ts';
import { ScanCache } from './grype.ts';
import type { BackendResult, ImageToScan, ScanBackend } from './backend.ts';
import { outputTail, readReport, runScannerTool } from './scanner-tool.ts';

export const TrivyOptions = z.strictObject({
  /**
   * trivy's --cache-dir: its DB is `db/trivy.db` + `db/metadata.json` there, put by the operator
   * (an `oras pull` of the DB artifact from a mirror, or scripts/trivy-fixture-db). trivy never
   * updates it from here (--skip-db-update: the default source, ghcr.io, is often unreachable).
   */
  cacheDir: z.string().refine(isAbsolute, 'must be an absolute path'),
  trivyBin: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /**
   * a DB whose UpdatedAt is older is refused (E_SCAN_UNAVAILABLE). trivy itself scans happily
   * with a stale DB when told not to update, so this check is the fleet's.
   */
  maxDbAgeHours: z.number().positive().max(24 * 365).default(120),
});
export type TrivyOptions = z.input<typeof TrivyOptions>;

// The parts of trivy's JSON report (SchemaVersion 2) we rely on.
const TrivyVulnerability = z.object({
  VulnerabilityID: z.string().min(1),
  PkgID: z.string().optional(),
  PkgName: z.string().min(1),
  InstalledVersion: z.string(),
  FixedVersion: z.string().optional(),
  Status: z.string().optional(),
  Severity: z.string().optional(),
  DataSource: z.object({ ID: z.string().optional() }).optional(),
});
const TrivyPackage = z.object({ ID: z.string().optional(), Name: z.string(), SrcName: z.string().optional() });
const TrivyResult = z.object({
  Target: z.string(),
  Class: z.string().optional(),
  Type: z.string().optional(),
  Vulnerabilities: z.array(TrivyVulnerability).nullish(),
  Packages: z.array(TrivyPackage).nullish(),
});
export const TrivyReport = z.object({
  SchemaVersion: z.literal(2),
  Results: z.array(TrivyResult).nullish(),
});
export type TrivyReport = z.infer<typeof TrivyReport>;

const TrivyVersion = z.object({
  Version: z.string(),
  VulnerabilityDB: z.object({ Version: z.number().optional(), UpdatedAt: z.string() }).optional(),
});

const SEVERITIES: Record<string, Severity> = { CRITICAL: 'Critical', HIGH: 'High', MEDIUM: 'Medium', LOW: 'Low', UNKNOWN: 'Unknown' };

/** trivy's vulnerability status (pkg/types Status) as the fleet's fix state. */
function fixStateOf(status: string | undefined, fixed: string | undefined): Finding['fixState'] {
  if (fixed !== undefined && fixed !== '') return 'fixed';
  const states: Record<string, Finding['fixState']> = { fixed: 'fixed', affected: 'not-fixed', fix_deferred: 'not-fixed', will_not_fix: 'wont-fix' };
  return (status === undefined ? undefined : states[status]) ?? 'unknown';
}

/**
 * trivy's report as scanner-neutral findings, the same shape grype's give: a finding per CVE and
 * Debian **source** package (trivy names the binary, libc6 and libc-bin both for glibc; its
 * package list, --list-all-pkgs, says the source), deduplicated on id + package + installed
 * version, sorted. So the policy gives the same verdict whichever scanner found it.
 */
export function normaliseTrivy(report: TrivyReport): Finding[] {
  const byKey = new Map<string, Finding>();
  for (const result of report.Results ?? []) {
    const sourceOf = new Map<string, string>();
    for (const p of result.Packages ?? []) if (p.SrcName !== undefined && p.SrcName !== '') sourceOf.set(p.ID ?? p.Name, p.SrcName);
    for (const v of result.Vulnerabilities ?? []) {
      const fixed = v.FixedVersion === undefined || v.FixedVersion === '' ? undefined : v.FixedVersion.split(',')[0]?.trim();
      const finding: Finding = {
        id: v.VulnerabilityID,
        severity: SEVERITIES[(v.Severity ?? 'UNKNOWN').toUpperCase()] ?? 'Unknown',
        package: sourceOf.get(v.PkgID ?? v.PkgName) ?? sourceOf.get(v.PkgName) ?? v.PkgName,
        installed: v.InstalledVersion,
        ...(fixed === undefined || fixed === '' ? {} : { fixed }),
        fixState: fixStateOf(v.Status, fixed),
        source: `${v.DataSource?.ID ?? result.Type ?? 'unknown'}:${result.Target}`,
      };
      const key = `${finding.id}\0${finding.package}\0${finding.installed}`;
      if (!byKey.has(key)) byKey.set(key, finding);
    }
  }
  return [...byKey.values()].sort(
    (a, b) => a.id.localeCompare(b.id) || a.package.localeCompare(b.package) || a.installed.localeCompare(b.installed),
  );
}

function trivyEnv(insecure: boolean): Record<string, string> {
  return {
    // no telemetry, no version check, no network for the DB: the operator's DB or none
    TRIVY_DISABLE_TELEMETRY: 'true',
    TRIVY_SKIP_VERSION_CHECK: 'true',
    TRIVY_NO_PROGRESS: 'true',
    ...(insecure ? { TRIVY_INSECURE: 'true' } : {}),
  };
}

/**
 * trivy's version and its DB's UpdatedAt (`trivy version --format json`), refused when there is
 * no DB or it is older than maxDbAgeHours: E_SCAN_UNAVAILABLE, the gate fails closed.
 */
export async function trivyDbStatus(bin: string, cacheDir: string, maxDbAgeHours: number, signal: AbortSignal): Promise<{ version: string; dbBuilt: string }> {
  if (!(await stat(`${cacheDir}/db/metadata.json`).then((s) => s.isFile(), () => false))) {
    throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `no trivy vulnerability DB in ${cacheDir}/db`);
  }
  const r = await runScannerTool(bin, ['version', '--format', 'json', '--cache-dir', cacheDir], trivyEnv(false), signal);
  if (signal.aborted || r.isCanceled) throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, 'trivy stopped (timeout or shutdown)');
  let parsed: z.infer<typeof TrivyVersion>;
  try {
    parsed = parseWith(TrivyVersion, JSON.parse(r.stdout), 'trivy version', ErrorCode.E_SCAN_UNAVAILABLE);
  } catch {
    throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `trivy does not say its version and DB (exit ${r.exitCode ?? r.signal}): ${outputTail(r.stderr || r.stdout)}`);
  }
  const updated = parsed.VulnerabilityDB === undefined ? NaN : Date.parse(parsed.VulnerabilityDB.UpdatedAt);
  if (r.exitCode !== 0 || Number.isNaN(updated)) {
    throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `trivy's vulnerability DB in ${cacheDir}/db is unusable: ${outputTail(r.stderr) || 'no UpdatedAt'}`);
  }
  const ageHours = (Date.now() - updated) / 3600_000;
  if (ageHours > maxDbAgeHours) {
    throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `trivy's vulnerability DB was updated ${ageHours.toFixed(1)} h ago (max allowed age is ${maxDbAgeHours} h)`);
  }
  return { version: parsed.Version.startsWith('v') ? parsed.Version : `v${parsed.Version}`, dbBuilt: new Date(updated).toISOString() };
}

/** What one trivy run scans: `image` (by digest from a registry) or `rootfs` (a directory). */
export interface TrivyTarget {
  kind: 'image' | 'rootfs';
  /** HOST/REPO@DIGEST, or a directory */
  target: string;
  insecure: boolean;
}

/**
 * One trivy scan against the operator's DB. Every way it can fail (no DB, a stale one, an
 * unreadable image, a non-zero exit, output that is not a v2 report) is E_SCAN_UNAVAILABLE.
 * Only OS packages are matched (--pkg-types os): the fixture and the Debian advisories are about
 * them, and language packages would need trivy's Java DB, also from ghcr.io.
 */
export async function scanWithTrivy(
  options: z.output<typeof TrivyOptions> & { trivyBin: string },
  what: TrivyTarget,
  signal: AbortSignal,
  cache?: ScanCache,
): Promise<{ findings: Finding[]; scanner: ScannerIdentity; cached: boolean }> {
  const { version, dbBuilt } = await trivyDbStatus(options.trivyBin, options.cacheDir, options.maxDbAgeHours, signal);
  const scanner = { name: 'trivy', version, dbBuilt };
  const hit = cache?.get(what.target, dbBuilt);
  if (hit !== undefined) return { findings: hit, scanner, cached: true };
  const r = await runScannerTool(
    options.trivyBin,
    [
      what.kind,
      '--format', 'json',
      '--quiet',
      '--cache-dir', options.cacheDir,
      // fanal's layer cache in memory: the cache dir stays the operator's DB, shared by scans
      '--cache-backend', 'memory',
      '--skip-db-update',
      '--skip-java-db-update',
      '--skip-check-update',
      '--offline-scan',
      '--scanners', 'vuln',
      '--pkg-types', 'os',
      '--list-all-pkgs',
      ...(what.kind === 'image' ? ['--image-src', 'remote'] : []),
      what.target,
    ],
    trivyEnv(what.insecure),
    signal,
  );
  // without --exit-code trivy exits non-zero only when it could not scan
  const report = readReport('trivy', what.target, r, TrivyReport, signal);
  const findings = normaliseTrivy(report);
  cache?.set(what.target, dbBuilt, findings);
  return { findings, scanner, cached: false };
}

/** trivy as the pool's scan backend: the image by digest straight from the registry. */
export class TrivyBackend implements ScanBackend {
  readonly kind = 'trivy' as const;
  private readonly cache = new ScanCache();
  constructor(private readonly options: z.output<typeof TrivyOptions> & { trivyBin: string }) {}

  scan(image: ImageToScan, signal: AbortSignal): Promise<BackendResult> {
    return scanWithTrivy(this.options, { kind: 'image', target: `${image.registry}/${image.repository}@${image.digest}`, insecure: image.insecure }, signal, this.cache);
  }
}
