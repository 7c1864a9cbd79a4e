import { DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { ErrorCode, NotificationDelivery, decodeWith, streams, subjects } from '../../protocol/index.ts';

/**
 * Recorded delivery attempts, oldest first: every tenant's or one tenant's, at most the last
 * `limit`. Read by `fleet notifications` (admin, over NATS) and GET /v1/notifications.
 */
export async function readDeliveries(nc: NatsConnection, tenant?: string, limit = 1000): Promise<NotificationDelivery[]> {
  const subject = tenant === undefined ? subjects.notifyDeliveryWildcard : subjects.notifyDelivery(tenant);
  const jsm = await jetstreamManager(nc);
  let count: number;
  try {
    const info = await jsm.streams.info(streams.notifyDeliveries, { subjects_filter: subject });
    count = Object.values(info.state.subjects ?? {}).reduce((a, b) => a + b, 0);
  } catch (e) {
    // no coordinator with notifications has run yet: nothing was ever delivered
    if (e instanceof Error && /not found/i.test(e.message)) return [];
    throw e;
  }
  if (count === 0) return [];
  const consumer = await jetstream(nc).consumers.get(streams.notifyDeliveries, { filter_subjects: [subject], deliver_policy: DeliverPolicy.All });
  const out: NotificationDelivery[] = [];
  for await (const m of await consumer.fetch({ max_messages: count, expires: 2_000 })) {
    out.push(decodeWith(NotificationDelivery, m.data, 'notification delivery', ErrorCode.E_INTERNAL));
    if (out.length === count) break;
  }
  return out.slice(-limit);
}
