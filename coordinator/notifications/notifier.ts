import { randomUUID } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import { CloudEvent, encode, parseWith, subjects, type NotificationType } from '../../protocol/index.ts';

/** Where the fleet says its notifications come from (CloudEvents `source`). */
export const NOTIFICATION_SOURCE = '/fleet/coordinator';

export interface NotifyOptions {
  /**
   * A stable id for this event, when the caller may emit it twice (a redelivered message, two
   * replicas): the queue drops a repeated id, and receivers dedupe on it. Default: a fresh UUID.
   */
  id?: string;
}

/**
 * Tells a tenant something: `await notifier.notify('payments', 'dev.fleet.image.rebuilt',
 * 'app/payments/api@sha256:…', { buildId, references })`.
 *
 * The notification is stored in a durable JetStream work queue before this resolves, and is
 * delivered from there to the tenant's webhook (signed, retried with backoff, every attempt
 * recorded: see delivery.ts). A coordinator restart loses none. Resolving means queued, not
 * delivered; a tenant without a webhook gets a `no-hook` record instead. `data` is the
 * CloudEvent's JSON `data`: keep it small and free of secrets (it leaves the platform).
 */
export class Notifier {
  constructor(private readonly js: JetStreamClient) {}

  async notify(tenant: string, type: NotificationType, subject: string, data: Record<string, unknown>, options: NotifyOptions = {}): Promise<CloudEvent> {
    const event = parseWith(
      CloudEvent,
      {
        specversion: '1.0',
        id: options.id ?? randomUUID(),
        source: NOTIFICATION_SOURCE,
        type,
        time: new Date().toISOString(),
        subject,
        datacontenttype: 'application/json',
        data,
        fleettenant: tenant,
      },
      'notification',
    );
    await this.js.publish(subjects.notifyQueue(tenant), encode(event), { msgID: event.id });
    return event;
  }
}
