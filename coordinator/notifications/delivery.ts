import { readFile } from 'node:fs/promises';
import type { Consumer, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { CloudEvent, ErrorCode, FleetError, decodeWith, encode, subjects, type NotificationDelivery } from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';
import { consume } from '../consume.ts';
import type { NotificationHook } from '../tenancy/tenants.ts';
import { DELIVERY_HEADER, signNotification } from './signature.ts';
import { MAX_DELIVERY_ATTEMPTS } from './topology.ts';

/** A receiver gets this long to answer; a slow one is retried like a failed one. */
const WEBHOOK_TIMEOUT_MS = 10_000;

/** The webhook's origin and path for the record: a query string may carry a receiver's token. */
function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/**
 * Delivers the notification queue: one POST per notification to its tenant's webhook, body the
 * CloudEvent (structured mode), signed (signature.ts). A 2xx acks it; anything else is retried
 * by JetStream with backoff (consume.ts: 2 s doubling to 30 s) up to MAX_DELIVERY_ATTEMPTS. Every
 * attempt is appended to the delivery log, which `fleet notifications` and GET /v1/notifications read.
 */
export class WebhookDelivery {
  constructor(
    private readonly js: JetStreamClient,
    private readonly hookOf: (tenant: string) => NotificationHook | undefined,
    private readonly log: Logger,
  ) {}

  run(consumer: Consumer, signal: AbortSignal): Promise<void> {
    return consume(
      consumer,
      {
        what: 'notification',
        decode: (msg) => decodeWith(CloudEvent, msg.data, 'notification', ErrorCode.E_INVALID_JOB),
        handle: (event, msg) => this.deliver(event, msg, signal),
        log: this.log,
        maxMessages: 8,
        maxDeliveries: MAX_DELIVERY_ATTEMPTS,
      },
      signal,
    );
  }

  private async deliver(event: CloudEvent, msg: JsMsg, signal: AbortSignal): Promise<void> {
    const attempt = msg.info.deliveryCount;
    const base = { id: event.id, tenant: event.fleettenant, type: event.type, subject: event.subject, attempt };
    const hook = this.hookOf(event.fleettenant);
    if (hook === undefined) {
      await this.record({ ...base, at: new Date().toISOString(), outcome: 'no-hook' });
      return;
    }
    const log = this.log.child({ notification: event.id, tenant: event.fleettenant, type: event.type, attempt });
    const started = Date.now();
    let httpStatus: number | undefined;
    let error: string | undefined;
    try {
      // Read each time: a rotated secret signs the very next delivery.
      const secret = (await readFile(hook.secretFile, 'utf8')).trim();
      const body = JSON.stringify(event);
      const res = await fetch(hook.url, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json', [DELIVERY_HEADER]: event.id, ...signNotification(secret, body) },
        body,
        redirect: 'manual',
        signal: AbortSignal.any([signal, AbortSignal.timeout(WEBHOOK_TIMEOUT_MS)]),
      });
      httpStatus = res.status;
      await res.body?.cancel();
      if (res.status < 200 || res.status > 299) error = `the webhook answered HTTP ${res.status}`;
    } catch (e) {
      error = e instanceof Error ? e.message : String(e);
    }
    const last = attempt >= MAX_DELIVERY_ATTEMPTS;
    await this.record({
      ...base,
      at: new Date().toISOString(),
      outcome: error === undefined ? 'delivered' : last ? 'gave-up' : 'failed',
      url: shownUrl(hook.url),
      ...(httpStatus === undefined ? {} : { httpStatus }),
      ...(error === undefined ? {} : { error: error.slice(0, 500) }),
      durationMs: Date.now() - started,
    });
    if (error === undefined) {
      log.info({ httpStatus }, 'notification delivered');
      return;
    }
    log.warn({ httpStatus, error, last }, last ? 'notification given up' : 'notification not delivered; will retry');
    // Retryable: consume() naks with backoff, and terminates it after the last attempt.
    throw new FleetError(ErrorCode.E_UNAVAILABLE, `notification ${event.id} to ${shownUrl(hook.url)}: ${error}`);
  }

  private async record(delivery: NotificationDelivery): Promise<void> {
    await this.js.publish(subjects.notifyDelivery(delivery.tenant), encode(delivery));
  }
}
