/**
 * Authentication for the HTTP API and the CLI: opaque API tokens (`flt_…`) kept hashed in the
 * FLEET_TOKENS bucket, and OIDC ID tokens from configured issuers mapped to tenants by rules.
 * Authorization (what each role may do in which tenant) is the caller's business.
 *
 * Wiring: one `CachedTokenStore` over a `KvTokenStore`, shared by the `Authenticator` and the
 * token endpoints (create/revoke/list), so that a revocation applies at once on this replica and
 * within the cache TTL (30 s) on the others.
 */
export { Authenticator, type AuthenticatorOptions } from './authenticator.ts';
export {
  CachedTokenStore,
  CreateTokenInput,
  KvTokenStore,
  MemoryTokenStore,
  TOKEN_PREFIX,
  TokenId,
  TokenRecord,
  createToken,
  openTokenBucket,
  revokeToken,
  verifyToken,
  type CreatedToken,
  type TokenCacheOptions,
  type TokenStore,
} from './tokens.ts';
export {
  OIDC_ALGORITHMS,
  OIDC_CLOCK_TOLERANCE_SECONDS,
  OidcConfig,
  OidcIssuer,
  OidcRule,
  OidcVerifier,
  type OidcVerifierOptions,
} from './oidc.ts';
