import { z } from 'zod';

/**
 * Who is calling, once authenticated. HTTP and CLI callers hold one of the user roles; the
 * machine roles (worker, coordinator, scanner) exist only as NATS accounts and never reach here.
 */
export const TenantName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,39}$/, 'must be 1-40 lower-case letters, digits or "-", starting with a letter');
export type TenantName = z.infer<typeof TenantName>;

/** The platform team's own tenant: official images, platform services, every tenant's admin. */
export const PLATFORM_TENANT = 'platform';

export const Role = z.enum(['admin', 'submitter', 'reader']);
export type Role = z.infer<typeof Role>;

/** How the caller proved who it is: an opaque API token, an OIDC ID token, or a NATS account. */
export const IdentityVia = z.enum(['token', 'oidc', 'nats']);
export type IdentityVia = z.infer<typeof IdentityVia>;

export const Identity = z.strictObject({
  /** stable and unique across the ways in: `token:<id>` or `<issuer>#<sub>` */
  subject: z.string().min(1),
  tenant: TenantName,
  role: Role,
  via: IdentityVia,
});
export type Identity = z.infer<typeof Identity>;
