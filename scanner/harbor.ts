import { readFile } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { ErrorCode, FleetError, Severity, parseWith, type Finding } from '../protocol/index.ts';
import type { BackendResult, ImageToScan, ScanBackend } from './backend.ts';
import { ScanCache } from './grype.ts';

/** A Harbor scanner adapter (Trivy's, Clair's, …) the pool scans through instead of grype. */
export const HarborOptions = z.strictObject({
  /** the adapter's base URL; the API is under /api/v1 */
  url: z.url({ protocol: /^https?$/ }),
  /** a file holding the Authorization header value the adapter expects (`Bearer …`, `Basic …`), if any */
  authorizationFile: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /** how the adapter reaches the fleet's registry, when not as the scan job names it (http(s)://HOST) */
  registryUrl: z.url().optional(),
  /** a file holding the Authorization header value the adapter pulls from the registry with, if any */
  registryAuthorizationFile: z.string().refine(isAbsolute, 'must be an absolute path').optional(),
  /**
   * An adapter's DB older than this is refused (E_SCAN_UNAVAILABLE), as grype refuses a stale one;
   * the adapter itself may not check.
   */
  maxDbAgeHours: z.number().positive().default(120),
});
export type HarborOptions = z.input<typeof HarborOptions>;

export const REPORT_MIME = 'application/vnd.security.vulnerability.report; version=1.1';
const SCAN_REQUEST_MIME = 'application/vnd.scanner.adapter.scan.request+json; version=1.0';
const METADATA_MIME = 'application/vnd.scanner.adapter.metadata+json; version=1.0';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
/** the metadata property Harbor's adapters publish their DB's update time under */
export const DB_UPDATED_PROPERTY = 'harbor.scanner-adapter/vulnerability-database-updated-at';
/** a Refresh-After beyond this is waited this long: the scan timeout bounds the whole wait anyway */
const MAX_REFRESH_S = 30;

const Metadata = z.object({
  scanner: z.object({ name: z.string(), vendor: z.string().optional(), version: z.string() }),
  capabilities: z.array(z.object({ consumes_mime_types: z.array(z.string()), produces_mime_types: z.array(z.string()) })),
  properties: z.record(z.string(), z.string()).optional(),
});
const ScanResponse = z.object({ id: z.string().min(1).max(500) });
const Vulnerability = z.object({
  id: z.string().min(1),
  package: z.string().min(1),
  version: z.string(),
  fix_version: z.string().optional(),
  severity: z.string(),
});
const Report = z.object({
  generated_at: z.string().optional(),
  scanner: z.object({ name: z.string(), version: z.string() }).optional(),
  artifact: z.object({ repository: z.string().optional(), digest: z.string().optional() }).optional(),
  vulnerabilities: z.array(Vulnerability).default([]),
});
export type HarborReport = z.input<typeof Report>;

function severityOf(raw: string): Severity {
  const parsed = Severity.safeParse(raw.charAt(0).toUpperCase() + raw.slice(1).toLowerCase());
  return parsed.success ? parsed.data : 'Unknown';
}

/**
 * A v1.1 report as scanner-neutral findings, deduplicated on id + package + installed version
 * and sorted as grype's are, so the policy gives the same verdict for the same findings. Harbor's
 * report has no fix state: a fix version means fixed, none means not fixed.
 */
export function normaliseHarbor(report: z.infer<typeof Report>, source: string): Finding[] {
  const byKey = new Map<string, Finding>();
  for (const v of report.vulnerabilities) {
    const fixed = v.fix_version === undefined || v.fix_version === '' ? undefined : v.fix_version;
    const finding: Finding = {
      id: v.id,
      severity: severityOf(v.severity),
      package: v.package,
      installed: v.version,
      ...(fixed === undefined ? {} : { fixed }),
      fixState: fixed === undefined ? 'not-fixed' : 'fixed',
      source,
    };
    const key = `${finding.id}\0${finding.package}\0${finding.installed}`;
    if (!byKey.has(key)) byKey.set(key, finding);
  }
  return [...byKey.values()].sort(
    (a, b) => a.id.localeCompare(b.id) || a.package.localeCompare(b.package) || a.installed.localeCompare(b.installed),
  );
}

const unavailable = (message: string): FleetError => new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, message);

/**
 * A client of Harbor's Pluggable Scanner API v1.1: metadata (scanner, DB time), POST /scan, then
 * GET /scan/{id}/report until it is ready (302 + Refresh-After while pending). Fails closed like
 * grype: an adapter that cannot be reached, does not produce v1.1 reports, has no DB time or a
 * stale one, refuses the scan or answers anything unexpected is E_SCAN_UNAVAILABLE.
 */
export class HarborBackend implements ScanBackend {
  readonly kind = 'harbor' as const;
  private readonly options: z.infer<typeof HarborOptions>;
  private readonly cache = new ScanCache();

  constructor(options: HarborOptions) {
    this.options = parseWith(HarborOptions, options, 'harbor scanner options');
  }

  private api(path: string): string {
    return new URL(`api/v1/${path}`, this.options.url.endsWith('/') ? this.options.url : `${this.options.url}/`).toString();
  }

  private async secret(file: string | undefined): Promise<string | undefined> {
    return file === undefined ? undefined : (await readFile(file, 'utf8')).trim();
  }

  private async call(path: string, init: RequestInit & { accept: string }, signal: AbortSignal): Promise<Response> {
    const authorization = await this.secret(this.options.authorizationFile);
    try {
      return await fetch(this.api(path), {
        ...init,
        redirect: 'manual',
        signal,
        headers: { accept: init.accept, ...(init.headers as Record<string, string> | undefined), ...(authorization === undefined ? {} : { authorization }) },
      });
    } catch (e) {
      if (signal.aborted) throw unavailable(`scan through ${this.options.url} was stopped (timeout or shutdown)`);
      throw unavailable(`Harbor scanner adapter at ${this.options.url} unreachable: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private async json<T extends z.ZodType>(res: Response, schema: T, what: string): Promise<z.infer<T>> {
    let raw: unknown;
    try {
      raw = await res.json();
    } catch {
      throw unavailable(`${what} from ${this.options.url} is not JSON`);
    }
    return parseWith(schema, raw, `${what} from ${this.options.url}`, ErrorCode.E_SCAN_UNAVAILABLE);
  }

  /** The adapter's scanner and DB build time; refuses one that cannot produce v1.1 reports or has a stale DB. */
  async metadata(signal: AbortSignal): Promise<{ name: string; version: string; dbBuilt: string }> {
    const res = await this.call('metadata', { method: 'GET', accept: METADATA_MIME }, signal);
    if (res.status !== 200) throw unavailable(`Harbor scanner adapter metadata: HTTP ${res.status}`);
    const meta = await this.json(res, Metadata, 'scanner metadata');
    if (!meta.capabilities.some((c) => c.produces_mime_types.some((m) => m.replace(/\s/g, '') === REPORT_MIME.replace(/\s/g, '')))) {
      throw unavailable(`${meta.scanner.name} ${meta.scanner.version} does not produce ${REPORT_MIME} reports`);
    }
    const updated = meta.properties?.[DB_UPDATED_PROPERTY];
    const at = updated === undefined ? NaN : Date.parse(updated);
    // Without the DB's time a verdict cannot say what it was judged against, nor can staleness be seen: fail closed.
    if (Number.isNaN(at)) throw unavailable(`${meta.scanner.name} does not say when its vulnerability DB was updated (${DB_UPDATED_PROPERTY})`);
    const ageH = (Date.now() - at) / 3600_000;
    if (ageH > this.options.maxDbAgeHours) throw unavailable(`${meta.scanner.name}'s vulnerability DB is ${Math.round(ageH)} h old (more than ${this.options.maxDbAgeHours} h)`);
    return { name: meta.scanner.name, version: meta.scanner.version, dbBuilt: new Date(at).toISOString() };
  }

  async scan(image: ImageToScan, signal: AbortSignal): Promise<BackendResult> {
    const meta = await this.metadata(signal);
    const scanner = { name: meta.name, version: meta.version, dbBuilt: meta.dbBuilt };
    const key = `${image.registry}/${image.repository}@${image.digest}`;
    const hit = this.cache.get(key, meta.dbBuilt);
    if (hit !== undefined) return { findings: hit, scanner, cached: true };
    const registryAuthorization = await this.secret(this.options.registryAuthorizationFile);
    const request = {
      registry: { url: this.options.registryUrl ?? `${image.insecure ? 'http' : 'https'}://${image.registry}`, ...(registryAuthorization === undefined ? {} : { authorization: registryAuthorization }) },
      artifact: { repository: image.repository, digest: image.digest, mime_type: OCI_MANIFEST },
    };
    const accepted = await this.call('scan', { method: 'POST', accept: 'application/vnd.scanner.adapter.scan.response+json; version=1.0', headers: { 'content-type': SCAN_REQUEST_MIME }, body: JSON.stringify(request) }, signal);
    if (accepted.status !== 202) throw unavailable(`${meta.name} refused the scan of ${key}: HTTP ${accepted.status}`);
    const { id } = await this.json(accepted, ScanResponse, 'scan response');
    for (;;) {
      const res = await this.call(`scan/${encodeURIComponent(id)}/report`, { method: 'GET', accept: REPORT_MIME }, signal);
      if (res.status === 302) {
        await res.body?.cancel();
        const after = Number(res.headers.get('refresh-after') ?? '1');
        await sleep(Math.min(MAX_REFRESH_S, Number.isFinite(after) && after > 0 ? after : 1) * 1000, signal);
        continue;
      }
      if (res.status !== 200) throw unavailable(`${meta.name} report for ${key}: HTTP ${res.status}`);
      const report = await this.json(res, Report, 'vulnerability report');
      if (report.artifact?.digest !== undefined && report.artifact.digest !== image.digest) {
        throw unavailable(`${meta.name} reported on ${report.artifact.digest}, not ${image.digest}`);
      }
      const findings = normaliseHarbor(report, `harbor:${meta.name}`);
      this.cache.set(key, meta.dbBuilt, findings);
      return { findings, scanner, cached: false };
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(unavailable('scan wait aborted'));
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(unavailable('scan wait aborted (timeout or shutdown)'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
