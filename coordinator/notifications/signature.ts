import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * How a webhook receiver knows a notification is the fleet's and fresh.
 *
 * Every POST carries
 *   X-Fleet-Timestamp: <unix seconds when it was signed>
 *   X-Fleet-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 *   X-Fleet-Delivery:  <the CloudEvent id, the same on every retry>
 * A receiver recomputes the HMAC over the raw body bytes as received (before any JSON parsing),
 * compares in constant time, and refuses a timestamp older than a few minutes: the timestamp is
 * under the signature, so a captured request cannot be replayed later with a new one. Each retry
 * is signed afresh. (The scheme of Stripe's and GitHub's webhooks, with the timestamp signed.)
 */
export const SIGNATURE_HEADER = 'x-fleet-signature';
export const TIMESTAMP_HEADER = 'x-fleet-timestamp';
export const DELIVERY_HEADER = 'x-fleet-delivery';

/** Receivers should refuse signatures older (or further in the future) than this. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

function mac(secret: string, timestamp: string, body: string | Buffer): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
}

/** The two headers to send with `body`, signed now (or at `at`). */
export function signNotification(secret: string, body: string | Buffer, at: Date = new Date()): Record<string, string> {
  const timestamp = String(Math.floor(at.getTime() / 1000));
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `sha256=${mac(secret, timestamp, body).toString('hex')}` };
}

/**
 * A receiver's check (exported for receivers written in TypeScript, and for the tests): true only
 * when the signature is the secret's over this timestamp and body and the timestamp is recent.
 */
export function verifyNotification(
  secret: string,
  body: string | Buffer,
  headers: { signature: string | undefined; timestamp: string | undefined },
  options: { now?: Date; toleranceSeconds?: number } = {},
): boolean {
  const { signature, timestamp } = headers;
  if (signature === undefined || timestamp === undefined || !/^\d{1,12}$/.test(timestamp) || !signature.startsWith('sha256=')) return false;
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  if (Math.abs(now - Number(timestamp)) > (options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS)) return false;
  const given = Buffer.from(signature.slice('sha256='.length), 'hex');
  const expected = mac(secret, timestamp, body);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
