import { AckPolicy, DeliverPolicy, type JetStreamManager, type Consumer, type JetStreamClient } from '@nats-io/jetstream';
import { z } from 'zod';
import { ErrorCode, consumers, decodeWith, parseWith, streams, subjects, type BuildRecord } from '../../protocol/index.ts';
import type { Logger } from '../../adapters/logger.ts';
import { consume } from '../consume.ts';

const EVENTS_FILTER = subjects.event('*');
/** Only these are read; any other event type (added later by another part of the fleet) is skipped, not refused. */
const ENDINGS = ['pushed', 'failed', 'cancelled', 'expired'] as const;
const ENDING_TYPES = new Set<string>(ENDINGS);
const Ending = z.object({ type: z.enum(ENDINGS), buildId: z.string() });
const TypeOnly = z.object({ type: z.string() });
/** built once, not per event (a schema's construction showed in the scale bench's profile) */
const AnyFields = z.record(z.string(), z.unknown());

/** The durable consumer of build events the rebuilds read (new events only: history was indexed by whoever ran then). */
export async function rebuildEventsConsumer(jsm: JetStreamManager, js: JetStreamClient): Promise<Consumer> {
  const config = { durable_name: consumers.rebuilds, filter_subject: EVENTS_FILTER, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.New, max_deliver: 20, ack_wait: 30_000_000_000 };
  try {
    await jsm.consumers.info(streams.builds, consumers.rebuilds);
  } catch {
    await jsm.consumers.add(streams.builds, config);
  }
  return js.consumers.get(streams.builds, consumers.rebuilds);
}

/**
 * Reads the durable event stream rather than hooking promotion: a coordinator that dies after
 * promoting still indexes the build (the event is redelivered to the next one), and all of it is
 * idempotent. A promotion updates the dependency index and is a notice that its own tags moved
 * (so a rebuilt custom base starts its dependents' wave); any ending of a rebuild moves its wave.
 */
export function followBuildEvents(
  consumer: Consumer,
  handlers: { record(id: string): Promise<BuildRecord | null>; promoted(record: BuildRecord): Promise<void>; ended(record: BuildRecord): void },
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  return consume(
    consumer,
    {
      what: 'build event (for rebuilds)',
      decode: (msg) => {
        const fields = decodeWith(AnyFields, msg.data, 'build event', ErrorCode.E_INTERNAL);
        const { type } = parseWith(TypeOnly, fields, 'build event', ErrorCode.E_INTERNAL);
        // Most events are not endings: skipped before a failing safeParse builds a ZodError (with its stack) for each.
        if (!ENDING_TYPES.has(type)) return null;
        return Ending.safeParse(fields).data ?? null;
      },
      handle: async (event) => {
        if (event === null) return;
        const record = await handlers.record(event.buildId);
        if (record === null) return;
        if (record.state.phase === 'pushed') await handlers.promoted(record);
        if (record.request.rebuildOf !== undefined) handlers.ended(record);
      },
      log,
      maxMessages: 64,
      maxDeliveries: 20,
    },
    signal,
  );
}
