/**
 * Notifications: a webhook per tenant (coordinator/tenancy, `notifications`), told in CloudEvents
 * JSON, HMAC-signed (signature.ts), delivered from a durable queue with bounded retries, every
 * attempt recorded. Other code emits with `Notifier.notify` (notifier.ts).
 */
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { consumers, streams } from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';
import type { BuildStore } from '../build-store.ts';
import type { NotificationHook } from '../tenancy/tenants.ts';
import { WebhookDelivery } from './delivery.ts';
import { EventNotifications } from './from-events.ts';
import { Notifier } from './notifier.ts';
import { ensureNotificationTopology } from './topology.ts';
import type { JetStreamResources } from '../jetstream-resources.ts';

export { Notifier, type NotifyOptions } from './notifier.ts';
export { readDeliveries } from './deliveries-log.ts';
export { DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signNotification, verifyNotification } from './signature.ts';

export interface Notifications {
  notifier: Notifier;
  /** ends the delivery and event loops (in-flight deliveries finish or are redelivered later) */
  close(): Promise<void>;
}

export async function startNotifications(
  nc: NatsConnection,
  resources: JetStreamResources,
  store: Pick<BuildStore, 'get'>,
  hookOf: (tenant: string) => NotificationHook | undefined,
  keepMs: number,
  log: Logger,
): Promise<Notifications> {
  const js = jetstream(nc);
  await ensureNotificationTopology(resources, keepMs);
  const notifier = new Notifier(js);
  const stop = new AbortController();
  const nlog = log.child({ component: 'notifications' });
  const loops = [
    new WebhookDelivery(js, hookOf, nlog).run(await js.consumers.get(streams.notify, consumers.notifier), stop.signal),
    new EventNotifications(store, notifier, nlog).run(await js.consumers.get(streams.builds, consumers.notifyEvents), stop.signal),
  ].map((p) => p.catch((e: unknown) => nlog.error({ err: e }, 'notification loop ended')));
  return {
    notifier,
    async close() {
      stop.abort();
      await Promise.all(loops);
    },
  };
}
