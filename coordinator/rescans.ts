import type { JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/nats-core';
import { StorageType } from '@nats-io/jetstream';
import { Counter, Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import {
  COORDINATOR_QUEUE,
  RescanRequest,
  ScannerDbUpdated,
  buckets,
  decodeWith,
  encode,
  subjects,
  toFleetError,
  type BuildEvent,
  type BuildRecord,
  type Finding,
  type RescanReply,
} from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { RegistryClient } from '../adapters/registry-client.ts';
import type { BuildStore } from './build-store.ts';
import type { GatePolicy } from './gates/policy.ts';
import { vulnerabilitiesResult } from './gates/vulnerabilities.ts';
import type { ScanClient } from './scan-client.ts';
import type { JetStreamResources } from './jetstream-resources.ts';

const DB_KEY = 'db';
/** a scanner's clock may run ahead a little; a DB "built" further in the future is refused (it would mask every real update after it) */
const MAX_FUTURE_MS = 5 * 60_000;
/** an announcement of the DB the fleet already knows starts a catch-up (images a lagging scanner rescanned with an older DB) at most this often */
const CATCH_UP_EVERY_MS = 60_000;
const releasedKey = (buildId: string): string => `released.${buildId}`;
const findingKey = (f: Finding): string => `${f.id}\0${f.package}\0${f.installed}`;

const KnownDb = z.object({ dbBuilt: z.string() });
const ReleasedState = z.object({ dbBuilt: z.string(), blocking: z.array(z.string()) });

/** A promoted image that still carries at least one of its release tags. */
export interface ReleasedImage {
  record: BuildRecord;
  digest: string;
  /** the release references still pointing at the digest */
  references: string[];
}

export interface RescanSettings {
  registryHost: string;
  insecure: boolean;
  /** at most this many rescans start per minute: a DB update must not swamp the scanner pool the gates need */
  perMinute: number;
}

/**
 * Rescans of released images when the vulnerability DB moves. The scanners report their DB's
 * build time with every report; a gate scan showing a newer one than the fleet last saw (kept
 * in KV, so replicas agree and a restart remembers) starts a rescan of every promoted image still
 * carrying a release tag, one at a time at a bounded rate. A finding that blocks under today's
 * policy and did not block before is a `vulnerable` event on the build's event stream (which
 * the notifications turn into a webhook call); nothing is untagged: a release is people's call.
 */
export class Rescans {
  private running: Promise<void> | null = null;
  private again = false;
  /** the queued run must rescan every image (an admin asked), not only those not yet rescanned at the current DB */
  private againEvery = false;
  private readonly stopping = new AbortController();
  private readonly dbBuilt: Gauge;
  private readonly rescanned: Counter<'outcome'>;
  private lastCatchUp = 0;

  private constructor(
    private readonly kv: KV,
    private readonly buildsKv: KV,
    private readonly store: Pick<BuildStore, 'get'>,
    private readonly registry: Pick<RegistryClient, 'manifest'>,
    private readonly scan: ScanClient,
    private readonly policy: GatePolicy,
    private readonly js: JetStreamClient,
    private readonly settings: RescanSettings,
    private readonly log: Logger,
    metrics: Registry,
  ) {
    this.dbBuilt = new Gauge({ name: 'fleet_scanner_db_built_timestamp_seconds', help: 'Build time of the newest vulnerability DB a scanner reported (Unix seconds); alert when it gets old', registers: [metrics] });
    this.rescanned = new Counter({ name: 'fleet_rescans_total', help: 'Rescans of released images, by outcome (clean, vulnerable: new blocking findings, unchanged, failed, stale: scanned with an older DB than the one announced)', labelNames: ['outcome'] as const, registers: [metrics] });
  }

  static async open(
    resources: JetStreamResources,
    deps: { buildsKv: KV; store: Pick<BuildStore, 'get'>; registry: Pick<RegistryClient, 'manifest'>; scan: ScanClient; policy: GatePolicy; js: JetStreamClient; metrics: Registry },
    settings: RescanSettings,
    log: Logger,
  ): Promise<Rescans> {
    const kv = await resources.bucket(buckets.scanState, { history: 1, storage: StorageType.File });
    const r = new Rescans(kv, deps.buildsKv, deps.store, deps.registry, deps.scan, deps.policy, deps.js, settings, log.child({ component: 'rescans' }), deps.metrics);
    const known = await r.knownDb();
    if (known !== null) r.dbBuilt.set(Date.parse(known.value) / 1000);
    return r;
  }

  /**
   * Serves `fleet scan --rescan-released` (admins only: no other NATS user may publish the subject)
   * and the scanners' DB announcements (subjects.scannerDbUpdated, which only the scanner role may
   * publish besides admins). An announcement can do one thing: make the fleet learn a DB build
   * time, which starts a rescan when it is newer than the known one (compare-and-set: one rescan
   * per DB build time across scanners and replicas), or a cheap catch-up when it is the known one.
   */
  serve(nc: NatsConnection): { drain(): Promise<void> } {
    const announcements = nc.subscribe(subjects.scannerDbUpdated, {
      queue: COORDINATOR_QUEUE,
      callback: (err, msg) => {
        if (err !== null) return;
        const parsed = ScannerDbUpdated.safeParse(safeJson(msg.data));
        if (!parsed.success) {
          this.log.warn({ subject: msg.subject }, 'ignoring a malformed scanner DB announcement');
          return;
        }
        this.announced(parsed.data);
      },
    });
    const api = this.serveApi(nc);
    return {
      async drain() {
        await Promise.all([announcements.drain(), api.drain()]);
      },
    };
  }

  private announced(a: ScannerDbUpdated): void {
    const built = Date.parse(a.dbBuilt);
    if (built > Date.now() + MAX_FUTURE_MS) {
      this.log.warn({ scannerId: a.scannerId, dbBuilt: a.dbBuilt }, 'ignoring a scanner DB announcement from the future');
      return;
    }
    this.log.info({ scannerId: a.scannerId, dbBuilt: a.dbBuilt }, 'a scanner announced its vulnerability DB');
    void (async () => {
      const known = await this.knownDb();
      if (known !== null && Date.parse(known.value) === built && Date.now() - this.lastCatchUp >= CATCH_UP_EVERY_MS) {
        // Images already rescanned at this DB are skipped: only those a lagging scanner saw with an older one are redone.
        this.lastCatchUp = Date.now();
        this.trigger(`scanner ${a.scannerId} announced the current DB ${a.dbBuilt} (catch-up)`);
        return;
      }
      this.observeDb(a.dbBuilt);
    })().catch((e: unknown) => this.log.error({ err: e }, 'could not handle a scanner DB announcement'));
  }

  private serveApi(nc: NatsConnection): Subscription {
    return nc.subscribe(subjects.rescanApi, {
      queue: COORDINATOR_QUEUE,
      callback: (err, msg) => {
        if (err !== null) return;
        let reply: RescanReply;
        try {
          const req = decodeWith(RescanRequest, msg.data, 'rescan request');
          reply = { ok: true, started: this.trigger(req.reason, { every: true }) };
        } catch (e) {
          reply = { ok: false, error: toFleetError(e).toBody() };
        }
        msg.respond(encode(reply));
      },
    });
  }

  /**
   * Told the DB build time of every gate scan's report. A newer one than the fleet last saw
   * starts a rescan; the compare-and-set makes one replica (and one report) win.
   */
  observeDb(dbBuilt: string): void {
    void (async () => {
      const known = await this.knownDb();
      if (known !== null && Date.parse(known.value) >= Date.parse(dbBuilt)) return;
      try {
        if (known === null) await this.kv.create(DB_KEY, encode({ dbBuilt }));
        else await this.kv.update(DB_KEY, encode({ dbBuilt }), known.revision);
      } catch {
        return; // another report or replica stored it first: that one rescans
      }
      this.dbBuilt.set(Date.parse(dbBuilt) / 1000);
      // The first DB the fleet ever sees is no news: images were gated against it.
      if (known !== null) this.trigger(`vulnerability DB moved from ${known.value} to ${dbBuilt}`);
    })().catch((e: unknown) => this.log.error({ err: e }, 'could not record the scanner DB build time'));
  }

  /**
   * Starts a rescan of the released images; true if it started now, false if one runs (it runs
   * again after). A DB move rescans the images not yet rescanned at the current DB (so a repeated
   * announcement costs no scans); `every` (an admin's `fleet scan --rescan-released`) rescans all.
   */
  trigger(reason: string, options: { every?: boolean } = {}): boolean {
    const every = options.every === true;
    if (this.running !== null) {
      this.again = true;
      this.againEvery ||= every;
      return false;
    }
    this.log.info({ reason, every }, 'rescanning released images');
    this.running = this.runAll(every)
      .catch((e: unknown) => this.log.error({ err: e }, 'rescan of released images stopped'))
      .finally(() => {
        this.running = null;
        if (this.again && !this.stopping.signal.aborted) {
          const again = { every: this.againEvery };
          this.again = false;
          this.againEvery = false;
          this.trigger('asked again while the last rescan ran', again);
        }
      });
    return true;
  }

  async close(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  /** Every build whose image still carries a release tag, the newest build per digest and repository. */
  async released(): Promise<ReleasedImage[]> {
    const byImage = new Map<string, ReleasedImage>();
    for await (const id of await this.buildsKv.keys()) {
      const found = await this.store.get(id);
      const s = found?.record.state;
      if (found === null || s?.phase !== 'pushed') continue;
      const { repository, tags } = found.record.request.image;
      const references: string[] = [];
      for (const tag of tags) {
        // the tag may have moved on to a newer build: then this digest is no longer released under it
        if ((await this.registry.manifest(repository, tag, this.stopping.signal))?.digest === s.digest) references.push(`${this.settings.registryHost}/${repository}:${tag}`);
      }
      if (references.length === 0) continue;
      const key = `${repository}@${s.digest}`;
      const seen = byImage.get(key);
      if (seen === undefined || seen.record.updatedAt < found.record.updatedAt) byImage.set(key, { record: found.record, digest: s.digest, references });
    }
    return [...byImage.values()];
  }

  private async runAll(every: boolean): Promise<void> {
    const started = Date.now();
    // the DB this round rescans for: an image already rescanned at it (or later) is not scanned again
    const target = (await this.knownDb())?.value;
    const images: ReleasedImage[] = [];
    for (const image of await this.released()) {
      if (every || target === undefined || (await this.rescannedAt(image.record.id)) < Date.parse(target)) images.push(image);
    }
    const gapMs = 60_000 / this.settings.perMinute;
    let done = 0;
    for (const image of images) {
      if (this.stopping.signal.aborted) return;
      const t0 = Date.now();
      await this.rescan(image, target).catch((e: unknown) => {
        this.rescanned.inc({ outcome: 'failed' });
        this.log.warn({ err: e, buildId: image.record.id }, 'rescan failed; the next DB move or trigger tries again');
      });
      done++;
      const wait = gapMs - (Date.now() - t0);
      if (wait > 0 && done < images.length) await new Promise((r) => setTimeout(r, wait));
    }
    const seconds = (Date.now() - started) / 1000;
    this.log.info({ images: done, seconds, perMinute: seconds > 0 ? Math.round((done / seconds) * 60) : null }, 'rescan of released images done');
  }

  private async rescan(image: ReleasedImage, target: string | undefined): Promise<void> {
    const { record } = image;
    const repository = record.request.image.repository;
    const report = await this.scan.scan(
      { buildId: record.id, attempt: 0, registry: this.settings.registryHost, insecure: this.settings.insecure, repository, digest: image.digest },
      this.stopping.signal,
      { observeDb: false },
    );
    await this.noteDb(report.scanner.dbBuilt);
    if (target !== undefined && Date.parse(report.scanner.dbBuilt) < Date.parse(target)) {
      // a scanner that has not updated yet answered: its announcement of the new DB catches this image up
      this.rescanned.inc({ outcome: 'stale' });
      this.log.info({ buildId: record.id, dbBuilt: report.scanner.dbBuilt, target }, 'rescanned with an older DB than the current one; left for the catch-up');
      return;
    }
    const result = vulnerabilitiesResult(report, this.policy, record.request.kind, repository);
    const blocking = result.scan?.blocking ?? [];
    const before = await this.knownBlocking(record);
    const fresh = blocking.filter((f) => !before.has(findingKey(f)));
    await this.kv.put(releasedKey(record.id), encode({ dbBuilt: report.scanner.dbBuilt, blocking: blocking.map(findingKey) }));
    if (fresh.length === 0) {
      this.rescanned.inc({ outcome: blocking.length === 0 ? 'clean' : 'unchanged' });
      return;
    }
    const event: BuildEvent = { type: 'vulnerable', buildId: record.id, at: new Date().toISOString(), digest: image.digest, references: image.references, scanner: report.scanner, findings: fresh };
    await this.js.publish(subjects.event(record.id), encode(event), { msgID: `${record.id}.vulnerable.${report.scanner.dbBuilt}` });
    this.rescanned.inc({ outcome: 'vulnerable' });
    this.log.warn({ buildId: record.id, digest: image.digest, findings: fresh.map((f) => f.id) }, 'released image has new blocking findings (left tagged)');
  }

  /** The DB build time (ms) of this image's last rescan, -Infinity if never rescanned. */
  private async rescannedAt(buildId: string): Promise<number> {
    const entry = await this.kv.get(releasedKey(buildId));
    if (entry === null || entry.operation !== 'PUT') return -Infinity;
    const parsed = ReleasedState.safeParse(entry.json());
    return parsed.success ? Date.parse(parsed.data.dbBuilt) : -Infinity;
  }

  /** What blocked this image when it was last judged: the last rescan's, else its promotion verdict's (a warn or an exception). */
  private async knownBlocking(record: BuildRecord): Promise<Set<string>> {
    const entry = await this.kv.get(releasedKey(record.id));
    if (entry !== null && entry.operation === 'PUT') {
      const parsed = ReleasedState.safeParse(entry.json());
      if (parsed.success) return new Set(parsed.data.blocking);
    }
    const s = record.state;
    const gate = s.phase === 'pushed' ? s.verdict?.gates.find((g) => g.gate === 'vulnerabilities') : undefined;
    return new Set((gate?.scan?.blocking ?? []).map(findingKey));
  }

  /** Records a DB build time seen by a rescan as known, without starting another rescan over it. */
  private async noteDb(dbBuilt: string): Promise<void> {
    const known = await this.knownDb();
    if (known !== null && Date.parse(known.value) >= Date.parse(dbBuilt)) return;
    try {
      if (known === null) await this.kv.create(DB_KEY, encode({ dbBuilt }));
      else await this.kv.update(DB_KEY, encode({ dbBuilt }), known.revision);
      this.dbBuilt.set(Date.parse(dbBuilt) / 1000);
    } catch {
      // a gate scan's report stored it first
    }
  }

  private async knownDb(): Promise<{ value: string; revision: number } | null> {
    const entry = await this.kv.get(DB_KEY);
    if (entry === null || entry.operation !== 'PUT') return null;
    const parsed = KnownDb.safeParse(entry.json());
    return parsed.success ? { value: parsed.data.dbBuilt, revision: entry.revision } : null;
  }
}


function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}
