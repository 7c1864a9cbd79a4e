import type { Consumer, JsMsg } from '@nats-io/jetstream';
import { isRetryable, toFleetError, type FleetError } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';

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
}

const BASE_DELAY_MS = 2_000;
const MAX_DELAY_MS = 30_000;

/**
 * The coordinator's loop over a durable consumer: decode, handle, ack; on failure the error
 * table decides (retryable → nak with backoff, final → term). Every loop the coordinator runs
 * over JetStream goes through here, so they all settle a message the same way.
 */
export async function consume<T>(consumer: Consumer, options: ConsumeOptions<T>, signal: AbortSignal): Promise<void> {
  const messages = await consumer.consume({ max_messages: options.maxMessages });
  signal.addEventListener('abort', () => void messages.close(), { once: true });
  for await (const msg of messages) {
    let value: T;
    try {
      value = options.decode(msg);
    } catch (e) {
      options.log.error({ err: e, subject: msg.subject }, `discarding a malformed ${options.what}`);
      msg.term('malformed');
      continue;
    }
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
        continue;
      }
      options.log.error({ err, deliveries }, `${options.what} could not be handled; giving up on it`);
      await options.giveUp?.(value, err).catch((ge: unknown) => options.log.error({ err: ge }, `could not end what waited on the ${options.what}`));
      msg.term(err.code);
    }
  }
}
