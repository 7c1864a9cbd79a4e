import { stat } from 'node:fs/promises';
import { z } from 'zod';
import { ErrorCode, FleetError, Severity, parseWith, type Finding, type ScannerIdentity } from '../protocol/index.ts';
import { BoundedCache } from '../adapters/bounded-cache.ts';
import type { BackendResult, ImageToScan, ScanBackend } from './backend.ts';
import { outputTail, readReport, runScannerTool } from './scanner-tool.ts';

/** What one grype run needs: the binary, its vulnerability DB (a grype cache dir) and the image. */
export interface GrypeRun {
  grypeBin: string;
  /** GRYPE_DB_CACHE_DIR: holds the imported DB under its schema dir (e.g. 6/vulnerability.db) */
  dbDir: string;
  /** `registry:HOST/REPO@DIGEST`: grype reads the image straight from the registry, no daemon */
  source: string;
  insecureRegistry: boolean;
  signal: AbortSignal;
  /** earlier results, per image digest and DB build: the same pair always gives the same findings */
  cache?: ScanCache;
  /** GRYPE_DB_MAX_ALLOWED_BUILT_AGE: a DB built longer ago is refused (grype's default: 120 h) */
  maxDbAgeHours?: number;
}

/** Scan results by (image, DB build time), the least recently used forgotten past `max`. */
export class ScanCache {
  private readonly entries: BoundedCache<string, Finding[]>;
  constructor(max = 256) {
    this.entries = new BoundedCache({ maxEntries: max });
  }
  get(source: string, dbBuilt: string): Finding[] | undefined {
    return this.entries.get(`${source}\0${dbBuilt}`);
  }
  set(source: string, dbBuilt: string, findings: Finding[]): void {
    this.entries.set(`${source}\0${dbBuilt}`, findings);
  }
}

// The parts of grype's JSON we rely on; anything else may change between versions.
const GrypeMatch = z.object({
  vulnerability: z.object({
    id: z.string().min(1),
    severity: z.string().optional(),
    namespace: z.string().optional(),
    fix: z.object({ versions: z.array(z.string()).default([]), state: z.string().default('unknown') }).optional(),
  }),
  artifact: z.object({
    name: z.string().min(1),
    version: z.string(),
    upstreams: z.array(z.object({ name: z.string(), version: z.string().optional() })).optional(),
  }),
});
const GrypeDocument = z.object({
  matches: z.array(GrypeMatch),
  descriptor: z.object({ name: z.string(), version: z.string() }).optional(),
});
export type GrypeDocument = z.infer<typeof GrypeDocument>;

const GrypeDbStatus = z.object({
  built: z.string().optional(),
  schemaVersion: z.string().optional(),
  valid: z.boolean().optional(),
  error: z.string().optional(),
});

const FIX_STATES = new Set<Finding['fixState']>(['fixed', 'not-fixed', 'wont-fix', 'unknown']);

function severityOf(raw: string | undefined): Severity {
  const parsed = Severity.safeParse(raw === undefined ? 'Unknown' : raw.charAt(0).toUpperCase() + raw.slice(1).toLowerCase());
  return parsed.success ? parsed.data : 'Unknown';
}

/**
 * grype's matches as scanner-neutral findings. Debian advisories name source packages, and one
 * source (glibc) ships several binaries (libc6, libc-bin) that would each repeat the same CVE:
 * a finding is per source package, deduplicated on id + package + installed version, sorted so
 * equal scans give equal reports.
 */
export function normaliseGrype(doc: GrypeDocument): Finding[] {
  const byKey = new Map<string, Finding>();
  for (const m of doc.matches) {
    const upstream = m.artifact.upstreams?.[0];
    const pkg = upstream?.name ?? m.artifact.name;
    const installed = upstream?.version ?? m.artifact.version;
    const state = (m.vulnerability.fix?.state ?? 'unknown') as Finding['fixState'];
    const fixed = m.vulnerability.fix?.versions[0];
    const finding: Finding = {
      id: m.vulnerability.id,
      severity: severityOf(m.vulnerability.severity),
      package: pkg,
      installed,
      ...(fixed === undefined || fixed === '' ? {} : { fixed }),
      fixState: FIX_STATES.has(state) ? state : 'unknown',
      source: m.vulnerability.namespace ?? 'unknown',
    };
    const key = `${finding.id}\0${finding.package}\0${finding.installed}`;
    if (!byKey.has(key)) byKey.set(key, finding);
  }
  return [...byKey.values()].sort(
    (a, b) => a.id.localeCompare(b.id) || a.package.localeCompare(b.package) || a.installed.localeCompare(b.installed),
  );
}

export function grypeEnv(run: Pick<GrypeRun, 'dbDir' | 'insecureRegistry' | 'maxDbAgeHours'>): Record<string, string> {
  return {
    GRYPE_DB_CACHE_DIR: run.dbDir,
    // Never fetch a DB at scan time: the DB is the operator's, and a scanner that quietly
    // updated would make the same digest's verdict depend on when it was scanned.
    GRYPE_DB_AUTO_UPDATE: 'false',
    GRYPE_DB_VALIDATE_AGE: 'true',
    ...(run.maxDbAgeHours === undefined ? {} : { GRYPE_DB_MAX_ALLOWED_BUILT_AGE: `${run.maxDbAgeHours}h` }),
    GRYPE_CHECK_FOR_APP_UPDATE: 'false',
    ...(run.insecureRegistry ? { GRYPE_REGISTRY_INSECURE_USE_HTTP: 'true' } : {}),
  };
}

/** The DB's build time, or E_SCAN_UNAVAILABLE when there is none or grype will not use it (stale, corrupt). */
export async function grypeDbStatus(grypeBin: string, dbDir: string, signal: AbortSignal, maxDbAgeHours?: number): Promise<{ built: string; schemaVersion?: string }> {
  if (!(await stat(dbDir).then((s) => s.isDirectory(), () => false))) {
    throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `no vulnerability DB at ${dbDir}`);
  }
  const r = await runScannerTool(grypeBin, ['db', 'status', '-o', 'json'], grypeEnv({ dbDir, insecureRegistry: false, ...(maxDbAgeHours === undefined ? {} : { maxDbAgeHours }) }), signal);
  if (signal.aborted) throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, 'scan aborted');
  let status: z.infer<typeof GrypeDbStatus>;
  try {
    status = parseWith(GrypeDbStatus, JSON.parse(r.stdout), 'grype db status', ErrorCode.E_SCAN_UNAVAILABLE);
  } catch {
    throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `vulnerability DB at ${dbDir} is unusable (grype db status exit ${r.exitCode ?? r.signal}): ${outputTail(r.stderr || r.stdout)}`);
  }
  if (r.exitCode !== 0 || status.valid === false || status.built === undefined) {
    throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `vulnerability DB at ${dbDir} is unusable: ${status.error ?? outputTail(r.stderr)}`);
  }
  return { built: new Date(status.built).toISOString(), ...(status.schemaVersion === undefined ? {} : { schemaVersion: status.schemaVersion }) };
}

/**
 * Scans one image. Every way grype can fail (no DB, a stale or corrupt one, an unreadable
 * image, an exit code we do not know, a kill) is an E_SCAN_UNAVAILABLE: the gate fails closed.
 */
export async function scanWithGrype(run: GrypeRun): Promise<{ findings: Finding[]; scanner: ScannerIdentity; cached: boolean }> {
  const db = await grypeDbStatus(run.grypeBin, run.dbDir, run.signal, run.maxDbAgeHours);
  const version = await grypeVersion(run.grypeBin, run.signal);
  const hit = run.cache?.get(run.source, db.built);
  if (hit !== undefined) return { findings: hit, scanner: { name: 'grype', version, dbBuilt: db.built }, cached: true };
  const r = await runScannerTool(run.grypeBin, [run.source, '-o', 'json', '-q'], grypeEnv(run), run.signal);
  // without --fail-on grype exits non-zero only when it could not scan
  const doc = readReport('grype', run.source, r, GrypeDocument, run.signal);
  const findings = normaliseGrype(doc);
  run.cache?.set(run.source, db.built, findings);
  return { findings, scanner: { name: doc.descriptor?.name ?? 'grype', version: doc.descriptor?.version ?? version, dbBuilt: db.built }, cached: false };
}

let knownVersion: { bin: string; version: string } | null = null;

/** grype's own version (`grype version -o json`), asked once per binary. */
async function grypeVersion(grypeBin: string, signal: AbortSignal): Promise<string> {
  if (knownVersion?.bin === grypeBin) return knownVersion.version;
  const r = await runScannerTool(grypeBin, ['version', '-o', 'json'], { GRYPE_CHECK_FOR_APP_UPDATE: 'false' }, signal);
  const parsed = z.object({ version: z.string() }).safeParse(r.exitCode === 0 ? JSON.parse(r.stdout) : null);
  if (!parsed.success) throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `${grypeBin} does not say its version (exit ${r.exitCode ?? r.signal}): ${outputTail(r.stderr)}`);
  knownVersion = { bin: grypeBin, version: parsed.data.version };
  return parsed.data.version;
}

/** grype as the pool's scan backend: one binary, one DB dir, results cached per (image, DB build). */
export class GrypeBackend implements ScanBackend {
  readonly kind = 'grype' as const;
  private readonly cache = new ScanCache();
  constructor(
    private readonly grypeBin: string,
    private readonly dbDir: string,
    private readonly maxDbAgeHours?: number,
  ) {}

  scan(image: ImageToScan, signal: AbortSignal): Promise<BackendResult> {
    const source = `registry:${image.registry}/${image.repository}@${image.digest}`;
    return scanWithGrype({
      grypeBin: this.grypeBin,
      dbDir: this.dbDir,
      source,
      insecureRegistry: image.insecure,
      signal,
      cache: this.cache,
      ...(this.maxDbAgeHours === undefined ? {} : { maxDbAgeHours: this.maxDbAgeHours }),
    });
  }
}
