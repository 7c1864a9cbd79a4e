import { z } from 'zod';
import { ErrorBody } from './errors.ts';
import { Role, TenantName } from './identity.ts';

/** An API token as listed: never its secret or hash. */
export const TokenView = z.object({
  id: z.string(),
  tenant: TenantName,
  role: Role,
  name: z.string(),
  createdAt: z.string(),
  createdBy: z.string(),
  expiresAt: z.string().optional(),
  revokedAt: z.string().optional(),
});
export type TokenView = z.infer<typeof TokenView>;

/** The admin API for HTTP tokens (`fleet tokens create|ls|revoke`), on NATS for admins only. */
export const TokensRequest = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('create'), tenant: TenantName, role: Role, name: z.string().min(1).max(100), ttlSeconds: z.number().int().positive().optional() }),
  z.strictObject({ op: z.literal('list'), tenant: TenantName.optional() }),
  z.strictObject({ op: z.literal('revoke'), id: z.string().min(1).max(64) }),
]);
export type TokensRequest = z.infer<typeof TokensRequest>;

export const TokensReply = z.discriminatedUnion('ok', [
  /** `token` only once, in the answer to `create` */
  z.object({ ok: z.literal(true), tokens: z.array(TokenView), token: z.string().optional() }),
  z.object({ ok: z.literal(false), error: ErrorBody }),
]);
export type TokensReply = z.infer<typeof TokensReply>;
