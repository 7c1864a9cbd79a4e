import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { consumers, streams, subjects } from '../../protocol/index.ts';
import type { JetStreamResources } from '../jetstream-resources.ts';

/** How many times a notification is tried before it is given up (with backoff: about 2 minutes in all). */
export const MAX_DELIVERY_ATTEMPTS = 8;

/** The notification queue, the delivery log and their consumers. Idempotent: every coordinator start runs it. */
export async function ensureNotificationTopology(js: JetStreamResources, keepMs: number): Promise<void> {
  await js.stream({
    name: streams.notify,
    subjects: [subjects.notifyQueueWildcard],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    max_age: nanos(keepMs),
    // the same event emitted twice (a redelivered build event, two replicas) is queued once
    duplicate_window: nanos(10 * 60_000),
  });
  await js.stream({
    name: streams.notifyDeliveries,
    subjects: [subjects.notifyDeliveryWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(keepMs),
  });
  await js.consumer(streams.notify, {
    durable_name: consumers.notifier,
    ack_policy: AckPolicy.Explicit,
    // a webhook call is bounded by its own timeout (delivery.ts), far below this
    ack_wait: nanos(60_000),
    max_deliver: MAX_DELIVERY_ATTEMPTS + 2,
    deliver_policy: DeliverPolicy.All,
  });
  await js.consumer(streams.builds, {
    durable_name: consumers.notifyEvents,
    filter_subject: subjects.event('*'),
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(60_000),
    // created on a fleet that already has history: only what happens from now on is told
    deliver_policy: DeliverPolicy.New,
  });
}
