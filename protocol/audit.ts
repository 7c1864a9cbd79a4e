import { z } from 'zod';
import { ErrorCode } from './errors.ts';
import { TenantName } from './identity.ts';

/** Everything the audit trail records: who asked for what, and whether it was done. */
export const AuditAction = z.enum(['build.submit', 'build.cancel', 'dlq.retry', 'dlq.drop', 'token.create', 'token.revoke']);
export type AuditAction = z.infer<typeof AuditAction>;

/**
 * One line of the audit trail. It names the request (a build id, a token id), never its body:
 * build args, secret values and token secrets never reach it.
 */
export const AuditEntry = z.strictObject({
  at: z.string(),
  /** the caller's stable subject: `token:<id>`, `<issuer>#<sub>`, `nats:tenant-<name>`, `platform` */
  who: z.string().max(300),
  tenant: TenantName,
  action: AuditAction,
  /** what it acted on: a build id, a token id, a tenant for a new token */
  target: z.string().max(300),
  verdict: z.enum(['accepted', 'refused']),
  code: z.enum(ErrorCode).optional(),
  /** why it was refused (the error's message, cut short) */
  reason: z.string().max(500).optional(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;
