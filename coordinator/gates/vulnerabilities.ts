import {
  ErrorCode,
  GateCode,
  SEVERITY_RANK,
  isFleetError,
  type BuildKind,
  type Finding,
  type FleetError,
  type GateResult,
  type ScanReport,
  type Severity,
  type Verdict,
} from '../../protocol/index.ts';
import type { ScanClient, ScanTarget } from '../scan-client.ts';
import { failureOutcome, type GatePolicy, type VulnerabilityPolicy } from './policy.ts';

type AllowlistEntry = VulnerabilityPolicy['allowlist'][number];
type Applied = NonNullable<GateResult['scan']>['allowlisted'][number];

export interface VulnerabilityEvaluation {
  /** findings that count (severity, fix state) and no live allowlist entry covers */
  blocking: Finding[];
  /** allowlist entries that matched a counted finding; `expired` ones did not let it through */
  allowlisted: Applied[];
}

/** The severity the policy judges a finding by: scanners leave some unrated. */
export function effectiveSeverity(finding: Finding, policy: VulnerabilityPolicy): Severity {
  return finding.severity === 'Unknown' ? policy.unknownAs : finding.severity;
}

function counts(finding: Finding, policy: VulnerabilityPolicy): boolean {
  if (SEVERITY_RANK[effectiveSeverity(finding, policy)] < SEVERITY_RANK[policy.blockAtOrAbove]) return false;
  return finding.fixState === 'fixed' || policy.countNotFixed;
}

function matches(entry: AllowlistEntry, finding: Finding, repository: string): boolean {
  if (entry.cve.toUpperCase() !== finding.id.toUpperCase()) return false;
  if (entry.package !== undefined && entry.package !== finding.package) return false;
  return entry.repositories === undefined || entry.repositories.some((prefix) => repository.startsWith(prefix));
}

/** Applies the policy to a scan's findings for an image bound for `repository`. Pure: `now` decides expiry. */
export function evaluateFindings(findings: readonly Finding[], policy: VulnerabilityPolicy, repository: string, now: Date = new Date()): VulnerabilityEvaluation {
  const blocking: Finding[] = [];
  const allowlisted = new Map<string, Applied>();
  for (const finding of findings) {
    if (!counts(finding, policy)) continue;
    const entries = policy.allowlist.filter((e) => matches(e, finding, repository));
    const live = entries.find((e) => new Date(e.expires) > now);
    // The verdict names every entry that matched, live or expired: an expired one is why a
    // build that passed last week is blocked today.
    for (const e of live === undefined ? entries : [live]) {
      const applied: Applied = { cve: e.cve, package: finding.package, reason: e.reason, expires: e.expires, addedBy: e.addedBy, expired: new Date(e.expires) <= now };
      allowlisted.set(`${e.cve}\0${finding.package}\0${e.expires}`, applied);
    }
    if (live === undefined) blocking.push(finding);
  }
  return { blocking, allowlisted: [...allowlisted.values()] };
}

const describe = (f: Finding): string =>
  `${f.id} ${f.severity} in ${f.package} ${f.installed}${f.fixed === undefined ? ' (no fix yet)' : ` (fixed in ${f.fixed})`}`;

/** The gate's result from a successful scan report. */
export function vulnerabilitiesResult(
  report: Extract<ScanReport, { ok: true }>,
  policy: GatePolicy,
  kind: BuildKind,
  repository: string,
  now: Date = new Date(),
): GateResult {
  const vp = policy.vulnerabilities;
  const { blocking, allowlisted } = evaluateFindings(report.findings, vp, repository, now);
  const scan = { scanner: report.scanner, blocking, allowlisted, total: report.findings.length };
  const notes = allowlisted.map((a) =>
    a.expired
      ? `allowlist entry for ${a.cve} in ${a.package} expired ${a.expires} (added by ${a.addedBy}: ${a.reason})`
      : `${a.cve} in ${a.package} allowlisted until ${a.expires} by ${a.addedBy}: ${a.reason}`,
  );
  const db = `${report.scanner.name} ${report.scanner.version}, DB built ${report.scanner.dbBuilt}`;
  const threshold = `${vp.blockAtOrAbove} or worse${vp.countNotFixed ? '' : ' with a fix'}`;
  if (blocking.length === 0) {
    const reason = [`no finding at ${threshold} (${report.findings.length} findings in all; ${db})`, ...notes].join('; ');
    return { gate: 'vulnerabilities', outcome: 'pass', code: GateCode.VULNERABILITIES_OK, reason, scan };
  }
  const reason = [`${blocking.length} finding(s) at ${threshold}: ${blocking.map(describe).join(', ')} (${db})`, ...notes].join('; ');
  const { outcome, note } = failureOutcome(policy, 'vulnerabilities', kind, repository, now);
  return { gate: 'vulnerabilities', outcome, code: GateCode.VULNERABILITIES_FOUND, reason: note === undefined ? reason : `${reason} (${note})`, scan };
}

/** When the gate does not run: no scanner pool in this fleet, or the image failed other gates first. */
export function vulnerabilitiesNotRun(why: 'not-configured' | 'not-reached'): GateResult {
  return why === 'not-configured'
    ? { gate: 'vulnerabilities', outcome: 'skipped', code: GateCode.VULNERABILITIES_NOT_SCANNED, reason: 'this fleet has no scanner pool: not scanned' }
    : { gate: 'vulnerabilities', outcome: 'skipped', code: GateCode.VULNERABILITIES_NOT_REACHED, reason: 'other gates blocked the image: not scanned' };
}

export interface VulnerabilityGateInput {
  /** absent: this fleet has no scanner pool */
  scan: ScanClient | undefined;
  policy: GatePolicy;
  kind: BuildKind;
  /** the repository the image would be promoted to (allowlists and exceptions are per repository) */
  repository: string;
  target: ScanTarget;
  /** called while the scan runs, so whatever the caller holds (a JetStream delivery) is not redelivered meanwhile */
  keepAlive?: () => void;
  signal?: AbortSignal;
}

const KEEP_ALIVE_MS = 15_000;

/**
 * The vulnerabilities gate, run after the other gates: only an image they let through is
 * scanned (a scan is the slow part). Returns the verdict with the gate's result, or the
 * E_SCAN_UNAVAILABLE that must fail the build: without a usable scan nothing is promoted.
 */
export async function withVulnerabilityScan(verdict: Verdict, input: VulnerabilityGateInput): Promise<Verdict | FleetError> {
  if (input.scan === undefined) return { ...verdict, gates: [...verdict.gates, vulnerabilitiesNotRun('not-configured')] };
  if (!verdict.promoted) return { ...verdict, gates: [...verdict.gates, vulnerabilitiesNotRun('not-reached')] };
  const beat = input.keepAlive === undefined ? undefined : setInterval(input.keepAlive, KEEP_ALIVE_MS);
  try {
    const report = await input.scan.scan(input.target, input.signal);
    const result = vulnerabilitiesResult(report, input.policy, input.kind, input.repository);
    return { ...verdict, promoted: result.outcome !== 'block', gates: [...verdict.gates, result] };
  } catch (e) {
    if (isFleetError(e, ErrorCode.E_SCAN_UNAVAILABLE)) return e;
    throw e;
  } finally {
    if (beat !== undefined) clearInterval(beat);
  }
}
