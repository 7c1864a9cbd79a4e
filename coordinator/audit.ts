import type { JetStreamClient } from '@nats-io/jetstream';
import { encode, subjects, toFleetError, type AuditAction, type AuditEntry } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import type { Caller } from './tenancy/authorize.ts';

const MAX_REASON = 500;

/** The id a request names, for the trail, even when the request is refused as invalid. */
export function requestIdOf(raw: unknown): string {
  const id = typeof raw === 'object' && raw !== null && 'id' in raw ? raw.id : undefined;
  return typeof id === 'string' ? id.slice(0, 128) : '(none)';
}

/**
 * Appends to the audit trail (a JetStream stream, one subject per tenant). Appending never delays
 * or fails the request it records: a trail that cannot be written is logged loudly instead.
 */
export class AuditTrail {
  constructor(
    private readonly js: JetStreamClient,
    private readonly log: Logger,
  ) {}

  /** Runs `act` and records it as accepted, or as refused with the error's code, then returns or rethrows. */
  async around<T>(caller: Caller, action: AuditAction, target: string, act: () => Promise<T>): Promise<T> {
    try {
      const result = await act();
      this.append(caller, action, target, null);
      return result;
    } catch (e) {
      this.append(caller, action, target, e);
      throw e;
    }
  }

  private append(caller: Caller, action: AuditAction, target: string, failure: unknown): void {
    const err = failure === null ? null : toFleetError(failure);
    const entry: AuditEntry = {
      at: new Date().toISOString(),
      who: caller.subject,
      tenant: caller.tenant,
      action,
      target: target.slice(0, 300),
      verdict: err === null ? 'accepted' : 'refused',
      ...(err === null ? {} : { code: err.code, reason: err.message.slice(0, MAX_REASON) }),
    };
    this.js.publish(subjects.audit(caller.tenant), encode(entry)).catch((e: unknown) => this.log.error({ err: e, audit: entry }, 'could not append to the audit trail'));
  }
}
