import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { isRetryable, toFleetError, type FleetError } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { KeyedLanes } from './keyed-lanes.ts';

export interface ConsumeOptions<T> {
  /** what the messages are, for logs */
  what: string;
  /** parses a message; a throw (or a FleetError) means it can never be handled: terminated */
  decode: (msg: JsMsg) => T;
  handle: (value: T, msg: JsMsg) => Promise<void>;
  /**
   * Called once when a message is given up on (a final error, or retries used up), so whatever
   * waited on it can be ended instead of left hanging.
   */
  giveUp?: (value: T, err: FleetError) => Promise<void>;
  log: Logger;
  maxMessages: number;
  /** a retryable failure is retried (with backoff) up to this many deliveries; then it is given up */
  maxDeliveries: number;
  /**
   * Messages handled at once (default 1: one at a time). Above 1, `keyOf` must be given: messages
   * with the same key are handled in order, one after another; different keys run concurrently.
   */
  concurrency?: number;
  /** the ordering key of a decoded message (e.g. its build id) */
  keyOf?: (value: T) => string;
}

const BASE_DELAY_MS = 2_000;
const MAX_DELAY_MS = 30_000;

/**
 * The coordinator's loop over a durable consumer: decode, handle, ack; on failure the error
 * table decides (retryable → nak with backoff, final → term). Every loop the coordinator runs
 * over JetStream goes through here, so they all settle a message the same way. With
 * `concurrency` above 1, messages are handled concurrently but in order per `keyOf` key, and at
 * most `concurrency` are held at once; an abort stops taking messages and waits for those held.
 */
export async function consume<T>(consumer: Consumer, options: ConsumeOptions<T>, signal: AbortSignal): Promise<void> {
  const concurrency = options.concurrency ?? 1;
  const keyOf = options.keyOf ?? (() => '');
  if (concurrency > 1 && options.keyOf === undefined) throw new RangeError(`consume ${options.what}: concurrency ${concurrency} needs keyOf`);
  // Never more buffered than can be held: a message waiting in the client's buffer ages toward its ack wait.
  const messages = await consumer.consume({ max_messages: Math.max(options.maxMessages, concurrency) });
  signal.addEventListener('abort', () => void messages.close(), { once: true });
  const lanes = new KeyedLanes(concurrency);
  try {
    for await (const msg of messages) {
      let value: T;
      try {
        value = options.decode(msg);
      } catch (e) {
        options.log.error({ err: e, subject: msg.subject }, `discarding a malformed ${options.what}`);
        msg.term('malformed');
        continue;
      }
      const settled = lanes.run(keyOf(value), () => settle(msg, value, options));
      if (concurrency === 1) await settled;
      // Backpressure: the next message is taken from the iterator (and so pulled) only with room for it.
      else await lanes.admit();
    }
  } finally {
    // Drain: what was taken is handled and acked before the loop ends (the connection closes after).
    await lanes.idle();
  }
}

/** Handles one message and settles it: ack after the handler, nak with backoff, or term. */
async function settle<T>(msg: JsMsg, value: T, options: ConsumeOptions<T>): Promise<void> {
  try {
    await options.handle(value, msg);
    msg.ack();
  } catch (e) {
    const err = toFleetError(e);
    const deliveries = msg.info.deliveryCount;
    if (isRetryable(err.code) && deliveries < options.maxDeliveries) {
      const delayMs = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** Math.min(deliveries - 1, 10));
      options.log.warn({ err, deliveries, delayMs }, `${options.what} not handled yet; will retry`);
      msg.nak(delayMs);
      return;
    }
    options.log.error({ err, deliveries }, `${options.what} could not be handled; giving up on it`);
    await options.giveUp?.(value, err).catch((ge: unknown) => options.log.error({ err: ge }, `could not end what waited on the ${options.what}`));
    msg.term(err.code);
  }
}
