import type { Consumer } from '@nats-io/jetstream';
import { z } from 'zod';
import { BuildEvent, ErrorCode, decodeWith } from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';
import type { BuildStore } from '../build-store.ts';
import { consume } from '../consume.ts';
import type { Notifier } from './notifier.ts';

// Only the types told are parsed in full: a type added later (by another part of the fleet) is skipped, not refused.
const TOLD = new Set(['verdict', 'vulnerable', 'failed']);
const TypeOnly = z.object({ type: z.string() });

/**
 * Turns build events into notifications: a verdict that keeps an image from promotion (any gate,
 * the vulnerability scan included) → `dev.fleet.build.blocked`; a released image found vulnerable
 * by a rescan → `dev.fleet.image.vulnerable`; a build failed because no usable scan could be had
 * (E_SCAN_UNAVAILABLE: the gate fails closed, so the author must hear why nothing was promoted)
 * → `dev.fleet.build.scan-unavailable`. Reading the durable event stream, not hooking the
 * code that publishes, means a coordinator that dies between the two still tells (the event is
 * redelivered), and each notification id is derived from its event so a redelivery is queued once.
 */
export class EventNotifications {
  constructor(
    private readonly store: Pick<BuildStore, 'get'>,
    private readonly notifier: Notifier,
    private readonly log: Logger,
  ) {}

  run(consumer: Consumer, signal: AbortSignal): Promise<void> {
    return consume(
      consumer,
      {
        what: 'build event (for notifications)',
        decode: (msg) => {
          const { type } = decodeWith(TypeOnly, msg.data, 'build event', ErrorCode.E_INTERNAL);
          return TOLD.has(type) ? decodeWith(BuildEvent, msg.data, 'build event', ErrorCode.E_INTERNAL) : null;
        },
        handle: (event) => (event === null ? Promise.resolve() : this.tell(event)),
        log: this.log,
        maxMessages: 64,
        maxDeliveries: 20,
      },
      signal,
    );
  }

  private async tell(event: BuildEvent): Promise<void> {
    if (event.type === 'failed') {
      if (event.error.code !== ErrorCode.E_SCAN_UNAVAILABLE) return;
      const found = await this.store.get(event.buildId);
      if (found === null) return;
      const record = found.record;
      await this.notifier.notify(
        record.tenant,
        'dev.fleet.build.scan-unavailable',
        event.buildId,
        {
          buildId: event.buildId,
          attempt: event.attempt,
          repository: record.request.image.repository,
          tags: record.request.image.tags,
          code: event.error.code,
          reason: event.error.message,
          // the image waits in quarantine; nothing is promoted without a scan
          retry: `fleet dlq retry ${event.buildId} (or resubmit) once the scanners are healthy`,
        },
        { id: `build-scan-unavailable-${event.buildId}-${event.attempt}` },
      );
      this.log.info({ buildId: event.buildId, tenant: record.tenant }, 'scan unavailable notification queued');
      return;
    }
    if (event.type === 'verdict') {
      if (event.verdict.promoted) return;
      const found = await this.store.get(event.buildId);
      if (found === null) return;
      const record = found.record;
      const blocking = event.verdict.gates.filter((g) => g.outcome === 'block');
      await this.notifier.notify(
        record.tenant,
        'dev.fleet.build.blocked',
        event.buildId,
        {
          buildId: event.buildId,
          attempt: event.attempt,
          repository: record.request.image.repository,
          tags: record.request.image.tags,
          digest: event.verdict.digest,
          gates: blocking.map((g) => ({ gate: g.gate, code: g.code, reason: g.reason, ...(g.scan === undefined ? {} : { findings: g.scan.blocking }) })),
        },
        { id: `build-blocked-${event.buildId}-${event.attempt}` },
      );
      this.log.info({ buildId: event.buildId, tenant: record.tenant }, 'blocked build notification queued');
      return;
    }
    if (event.type === 'vulnerable') {
      const found = await this.store.get(event.buildId);
      if (found === null) return;
      const record = found.record;
      await this.notifier.notify(
        record.tenant,
        'dev.fleet.image.vulnerable',
        `${record.request.image.repository}@${event.digest}`,
        { buildId: event.buildId, digest: event.digest, references: event.references, scanner: event.scanner, findings: event.findings },
        { id: `image-vulnerable-${event.buildId}-${event.scanner.dbBuilt.replace(/[^0-9]/g, '')}` },
      );
      this.log.info({ buildId: event.buildId, tenant: record.tenant }, 'vulnerable image notification queued');
    }
  }
}
