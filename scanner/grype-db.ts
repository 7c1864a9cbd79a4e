import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { ErrorCode, FleetError, toFleetError } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { grypeDbStatus, grypeEnv } from './grype.ts';
import { outputTail, runScannerTool } from './scanner-tool.ts';
import type { BackendResult, ImageToScan, ScanBackend } from './backend.ts';

/**
 * Where a grype scanner keeps its DB current: a mirror of grype's DB distribution. `url` is
 * GRYPE_DB_UPDATE_URL: a base under which `v6/latest.json` lists the archive (grype appends
 * `/v6/latest.json`), or the listing's own URL ending in `.json`. The listing names the archive
 * by a path relative to itself, with its sha256; `scripts/grype-fixture-db -archive` writes both.
 */
export const GrypeDbUpdateOptions = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  /** how often to ask the mirror for a newer DB (also once at start, before the first scan) */
  everyMs: z.number().int().min(1000).default(60 * 60_000),
  /** GRYPE_DB_UPDATE_AVAILABLE_TIMEOUT: fetching the listing */
  listingTimeoutMs: z.number().int().min(1000).default(30_000),
  /** GRYPE_DB_UPDATE_DOWNLOAD_TIMEOUT: fetching the archive (the public DB is ~200 MB) */
  downloadTimeoutMs: z.number().int().min(1000).default(5 * 60_000),
});
export type GrypeDbUpdateOptions = z.output<typeof GrypeDbUpdateOptions>;

/** What the last update attempt did: the DB in use afterwards, or why there is none fit to use. */
export type DbUpdateOutcome =
  | { ok: true; at: string; updated: boolean; built: string }
  | { ok: false; at: string; error: string };

// grype colours its stderr even off a terminal
const goDuration = (ms: number): string => `${Math.ceil(ms / 1000)}s`;

/**
 * One `grype db update` from the mirror into dbDir, then the DB's status under the configured age.
 * grype itself keeps the old DB when a download or its checksum fails, and replaces a stale or
 * missing one with whatever the mirror lists, even a stale one: so the verdict on the result is
 * always `grype db status` with the age check on, never the update's exit code alone.
 */
export async function updateGrypeDb(
  grypeBin: string,
  dbDir: string,
  mirror: GrypeDbUpdateOptions,
  maxDbAgeHours: number,
  signal: AbortSignal,
): Promise<{ updated: boolean; built: string }> {
  const r = await runScannerTool(
    grypeBin,
    ['db', 'update'],
    {
      ...grypeEnv({ dbDir, insecureRegistry: false, maxDbAgeHours }),
      GRYPE_DB_UPDATE_URL: mirror.url,
      // a mirror that cannot be asked is an error here, not a warning on stderr
      GRYPE_DB_REQUIRE_UPDATE_CHECK: 'true',
      GRYPE_DB_UPDATE_AVAILABLE_TIMEOUT: goDuration(mirror.listingTimeoutMs),
      GRYPE_DB_UPDATE_DOWNLOAD_TIMEOUT: goDuration(mirror.downloadTimeoutMs),
    },
    signal,
  );
  if (signal.aborted || r.isCanceled) throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, 'vulnerability DB update stopped');
  if (r.exitCode !== 0) {
    throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `vulnerability DB update from ${mirror.url} failed (grype db update exit ${r.exitCode ?? r.signal}): ${outputTail(r.stderr || r.stdout)}`);
  }
  const status = await grypeDbStatus(grypeBin, dbDir, signal, maxDbAgeHours);
  // grype prints this line only when it installed a DB (stdout, "Vulnerability database updated…")
  return { updated: /updated to latest/i.test(r.stdout), built: status.built };
}

/**
 * grype with its DB kept current from a mirror: updates at start and every `everyMs`, never while
 * a scan runs (grype swaps the DB directory on update; a scan reading the build time of one DB
 * and matching against the next would cache its findings under the wrong DB). Fails closed like
 * plain grype: a scan checks the DB's age itself, so a DB past `maxDbAgeHours` (the mirror gone
 * quiet, or serving only stale DBs) is E_SCAN_UNAVAILABLE, the last update's failure named.
 * A newer DB is announced (`onDbChanged`) and shows in the next report's `dbBuilt`; the
 * coordinator rescans released images on either.
 */
export class MirroredGrypeBackend implements ScanBackend {
  readonly kind = 'grype' as const;
  private tail: Promise<unknown> = Promise.resolve();
  private last: DbUpdateOutcome | null = null;
  /**
   * Told the DB build time after each update that left a usable DB of another build time than the
   * last one told (the first successful update included): the scanner announces it so the
   * coordinator rescans released images now rather than at the next build's scan.
   */
  onDbChanged: ((built: string) => void) | undefined;
  private told: string | null = null;

  constructor(
    private readonly inner: ScanBackend,
    private readonly grypeBin: string,
    private readonly dbDir: string,
    private readonly mirror: GrypeDbUpdateOptions,
    private readonly maxDbAgeHours: number,
    private readonly log: Logger,
  ) {}

  /** the last update attempt's outcome (null before the first) */
  get lastUpdate(): DbUpdateOutcome | null {
    return this.last;
  }

  /** One update now (queued behind a running scan). Never throws: the outcome says what happened. */
  updateNow(signal: AbortSignal): Promise<DbUpdateOutcome> {
    return this.exclusive(async () => {
      const at = new Date().toISOString();
      try {
        const { updated, built } = await updateGrypeDb(this.grypeBin, this.dbDir, this.mirror, this.maxDbAgeHours, signal);
        this.last = { ok: true, at, updated, built };
        this.log.info({ updated, dbBuilt: built, mirror: this.mirror.url }, updated ? 'vulnerability DB updated from the mirror' : 'vulnerability DB current');
        if (built !== this.told) {
          this.told = built;
          this.onDbChanged?.(built);
        }
      } catch (e) {
        const err = toFleetError(e, ErrorCode.E_SCAN_UNAVAILABLE);
        this.last = { ok: false, at, error: err.message };
        // stopped by a shutdown: nothing went wrong
        if (signal.aborted) return this.last;
        this.log.error({ err, mirror: this.mirror.url }, 'vulnerability DB update failed; scans refuse a DB past its age');
      }
      return this.last;
    });
  }

  /** Updates on the schedule until `signal` aborts (the first one is the caller's `updateNow`). */
  async runSchedule(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await sleep(this.mirror.everyMs, undefined, { signal });
      } catch {
        return;
      }
      await this.updateNow(signal);
    }
  }

  async scan(image: ImageToScan, signal: AbortSignal): Promise<BackendResult> {
    try {
      return await this.exclusive(() => this.inner.scan(image, signal));
    } catch (e) {
      const err = toFleetError(e, ErrorCode.E_SCAN_UNAVAILABLE);
      const last = this.last;
      if (last === null || last.ok) throw err;
      throw new FleetError(ErrorCode.E_SCAN_UNAVAILABLE, `${err.message} (last DB update ${last.at}: ${last.error})`);
    }
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }
}
