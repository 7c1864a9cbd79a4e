import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/nats-core';
import { consumers, streams, subjects } from '../../protocol/index.ts';

/** How many times a notification is tried before it is given up (with backoff: about 2 minutes in all). */
export const MAX_DELIVERY_ATTEMPTS = 8;

/** The notification queue, the delivery log and their consumers. Idempotent: every coordinator start runs it. */
export async function ensureNotificationTopology(jsm: JetStreamManager, keepMs: number): Promise<void> {
  await upsertStream(jsm, {
    name: streams.notify,
    subjects: [subjects.notifyQueueWildcard],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    max_age: nanos(keepMs),
    // the same event emitted twice (a redelivered build event, two replicas) is queued once
    duplicate_window: nanos(10 * 60_000),
  });
  await upsertStream(jsm, {
    name: streams.notifyDeliveries,
    subjects: [subjects.notifyDeliveryWildcard],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    max_age: nanos(keepMs),
  });
  await upsertConsumer(jsm, streams.notify, {
    durable_name: consumers.notifier,
    ack_policy: AckPolicy.Explicit,
    // a webhook call is bounded by its own timeout (delivery.ts), far below this
    ack_wait: nanos(60_000),
    max_deliver: MAX_DELIVERY_ATTEMPTS + 2,
    deliver_policy: DeliverPolicy.All,
  });
  await upsertConsumer(jsm, streams.builds, {
    durable_name: consumers.notifyEvents,
    filter_subject: subjects.event('*'),
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(60_000),
    // created on a fleet that already has history: only what happens from now on is told
    deliver_policy: DeliverPolicy.New,
  });
}

type StreamConfig = Parameters<JetStreamManager['streams']['add']>[0];
type ConsumerConfig = Parameters<JetStreamManager['consumers']['add']>[1];

async function upsertStream(jsm: JetStreamManager, cfg: StreamConfig & { name: string }): Promise<void> {
  try {
    await jsm.streams.info(cfg.name);
    await jsm.streams.update(cfg.name, cfg);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await jsm.streams.add(cfg);
  }
}

async function upsertConsumer(jsm: JetStreamManager, stream: string, cfg: ConsumerConfig & { durable_name: string }): Promise<void> {
  try {
    await jsm.consumers.info(stream, cfg.durable_name);
    // deliver_policy cannot change on an existing consumer (nor needs to): the rest is updated
    const update: Partial<ConsumerConfig> = { ...cfg };
    delete update.deliver_policy;
    await jsm.consumers.update(stream, cfg.durable_name, update);
  } catch (e) {
    if (!isNotFound(e)) throw e;
    await jsm.consumers.add(stream, cfg);
  }
}

function isNotFound(e: unknown): boolean {
  return e instanceof Error && /not found/i.test(e.message);
}
