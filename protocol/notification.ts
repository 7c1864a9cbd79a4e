import { z } from 'zod';
import { Timestamp } from './fields.ts';
import { TenantName } from './identity.ts';
import { ErrorBody } from './errors.ts';

/**
 * What the fleet tells a tenant's webhook about. `dev.fleet.<noun>.<verb>`, as CloudEvents
 * recommends a reverse-DNS type; receivers switch on it.
 */
export const NotificationType = z.enum([
  /** a gate (the vulnerability scan included) kept a build's image from its release tags */
  'dev.fleet.build.blocked',
  /** a released image has a newly blocking finding after the vulnerability DB moved (its tags are left alone) */
  'dev.fleet.image.vulnerable',
  /** an image was rebuilt (a rebuild wave after its base moved) */
  'dev.fleet.image.rebuilt',
  /**
   * a build's image was not promoted because no usable vulnerability scan could be had
   * (E_SCAN_UNAVAILABLE: scanner down, its DB missing or stale): nothing wrong with the image
   * yet; retry (`fleet dlq retry`, resubmit) once the scanners are healthy
   */
  'dev.fleet.build.scan-unavailable',
]);
export type NotificationType = z.infer<typeof NotificationType>;

/**
 * One notification, CloudEvents 1.0 structured-mode JSON (`application/cloudevents+json`): the
 * exact body a webhook receives. `id` is unique per event and stays the same across retries of
 * its delivery, so a receiver can drop duplicates by it.
 */
export const CloudEvent = z.strictObject({
  specversion: z.literal('1.0'),
  id: z.string().min(1).max(200),
  /** the fleet that sent it, e.g. `/fleet/coordinator` */
  source: z.string().min(1),
  type: NotificationType,
  time: Timestamp,
  /** what it is about: a build id, or an image reference */
  subject: z.string().min(1).max(500),
  datacontenttype: z.literal('application/json'),
  data: z.record(z.string(), z.unknown()),
  /** extension attribute: the tenant it was sent for */
  fleettenant: TenantName,
});
export type CloudEvent = z.infer<typeof CloudEvent>;

/** One attempt to deliver a notification, as `fleet notifications` and GET /v1/notifications list it. */
export const NotificationDelivery = z.strictObject({
  /** the CloudEvent's id */
  id: z.string(),
  tenant: TenantName,
  type: NotificationType,
  subject: z.string(),
  /** 1 for the first try; a retry counts up */
  attempt: z.number().int().positive(),
  at: Timestamp,
  /**
   * delivered: the receiver answered 2xx; failed: it did not (will be retried); gave-up: the last
   * retry failed; no-hook: the tenant has no webhook configured (recorded so nothing vanishes silently)
   */
  outcome: z.enum(['delivered', 'failed', 'gave-up', 'no-hook']),
  /** the webhook's origin and path (never its query, which may carry a token) */
  url: z.string().optional(),
  httpStatus: z.number().int().optional(),
  error: z.string().max(500).optional(),
  durationMs: z.number().int().nonnegative().optional(),
});
export type NotificationDelivery = z.infer<typeof NotificationDelivery>;

export const NotificationsReply = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), deliveries: z.array(NotificationDelivery) }),
  z.object({ ok: z.literal(false), error: ErrorBody }),
]);
export type NotificationsReply = z.infer<typeof NotificationsReply>;
