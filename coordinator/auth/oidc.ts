import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTVerifyGetKey,
} from 'jose';
import { z } from 'zod';
import { ErrorCode, FleetError, TenantName, isFleetError, parseWith, toFleetError, type Identity } from '../../protocol/index.ts';
import { BoundedCache } from '../../adapters/bounded-cache.ts';

/**
 * Public-key algorithms only. An HMAC algorithm would verify with a "secret" that is the
 * issuer's published key, which anyone can read: the classic alg-confusion forgery.
 */
export const OIDC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;

/** Tokens may be this far past `exp` (or before `nbf`): clocks of issuer and coordinator differ. */
export const OIDC_CLOCK_TOLERANCE_SECONDS = 30;

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

export const OidcRule = z.strictObject({
  /** every claim must equal its value exactly (string claims only), e.g. `{ repository_owner: 'payments' }` */
  claims: z
    .record(z.string().min(1), z.string())
    .refine((c) => Object.keys(c).length > 0, 'must name at least one claim: an empty rule would admit every token the issuer signs for anyone'),
  tenant: TenantName,
  /** admins come in with API tokens only: a CI job's token must never administer the fleet */
  role: z.enum(['submitter', 'reader']),
});
export type OidcRule = z.infer<typeof OidcRule>;

export const OidcIssuer = z.strictObject({
  /** compared exactly with the token's `iss` */
  issuer: z.url(),
  /** must be among the token's `aud` */
  audience: z.string().min(1),
  jwks: z.union([
    /** read at start and on reload(): for issuers the coordinator cannot reach, or tests */
    z.strictObject({ file: z.string().min(1) }),
    z.strictObject({
      // Keys fetched over plain HTTP could be swapped by anyone on the path.
      url: z.url().refine((u) => {
        const url = new URL(u);
        return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname));
      }, 'must be https (plain http only to a loopback address)'),
    }),
  ]),
  algorithms: z.array(z.enum(OIDC_ALGORITHMS)).min(1).default(['RS256', 'ES256']),
  /** the first rule whose claims all match decides tenant and role */
  rules: z.array(OidcRule),
});
export type OidcIssuer = z.infer<typeof OidcIssuer>;

export const OidcConfig = z.array(OidcIssuer).superRefine((issuers, ctx) => {
  const seen = new Set<string>();
  issuers.forEach((i, n) => {
    if (seen.has(i.issuer)) ctx.addIssue({ code: 'custom', path: [n, 'issuer'], message: `issuer ${i.issuer} is configured twice` });
    seen.add(i.issuer);
  });
});
export type OidcConfig = z.infer<typeof OidcConfig>;

/** Only what a JWKS file must be before jose judges each key. */
const JwksFile = z.looseObject({ keys: z.array(z.looseObject({ kty: z.string() })).min(1) });

/** What jwtVerify has already checked, restated for the types. */
const VerifiedClaims = z.looseObject({ iss: z.string(), sub: z.string().min(1), exp: z.number() });

export interface OidcVerifierOptions {
  /** tokens remembered as verified, each until its `exp` */
  maxCacheEntries?: number;
  now?: () => number;
}

interface TrustedIssuer {
  config: OidcIssuer;
  keys: JWTVerifyGetKey;
}

/**
 * Verifies OIDC ID tokens (e.g. a CI job's) from the configured issuers and maps their claims
 * to a tenant and role by the issuer's rules.
 */
export class OidcVerifier {
  private issuers = new Map<string, TrustedIssuer>();
  private readonly cache: BoundedCache<string, Identity>;
  private readonly now: () => number;

  private constructor(
    readonly config: OidcConfig,
    options: OidcVerifierOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.cache = new BoundedCache({ maxEntries: options.maxCacheEntries ?? 10_000, now: this.now });
  }

  /** Parses the config and reads every JWKS file; refuses to start on any bad one. */
  static async create(config: unknown, options: OidcVerifierOptions = {}): Promise<OidcVerifier> {
    const verifier = new OidcVerifier(parseWith(OidcConfig, config, 'OIDC config'), options);
    await verifier.reload();
    return verifier;
  }

  /**
   * Re-reads JWKS files and drops remote key sets and remembered tokens, e.g. after a key was
   * withdrawn. All or nothing: if a file is bad the previous keys stay and this throws.
   */
  async reload(): Promise<void> {
    const next = new Map<string, TrustedIssuer>();
    for (const config of this.config) {
      const keys = 'file' in config.jwks ? await readJwksFile(config.jwks.file) : remoteKeys(config.issuer, config.jwks.url);
      next.set(config.issuer, { config, keys });
    }
    this.issuers = next;
    this.cache.clear();
  }

  async verify(token: string): Promise<Identity> {
    // Keyed by a hash so the cache does not keep usable bearer tokens in memory.
    const key = createHash('sha256').update(token).digest('base64url');
    const cached = this.cache.get(key);
    if (cached !== undefined) return { ...cached };

    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'malformed OIDC token');
    }
    // `iss` is unverified here: it only picks which keys and rules to verify against.
    const trusted = typeof iss === 'string' ? this.issuers.get(iss) : undefined;
    if (trusted === undefined) throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'OIDC token from an issuer this fleet does not trust');
    const { config } = trusted;

    let payload;
    try {
      ({ payload } = await jwtVerify(token, trusted.keys, {
        issuer: config.issuer,
        audience: config.audience,
        algorithms: config.algorithms,
        clockTolerance: OIDC_CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['exp', 'sub'],
        currentDate: new Date(this.now()),
      }));
    } catch (e) {
      throw refusal(e);
    }
    const claims = parseWith(VerifiedClaims, payload, 'OIDC token claims', ErrorCode.E_UNAUTHENTICATED);
    const subject = `${claims.iss}#${claims.sub}`;
    const rule = config.rules.find((r) => Object.entries(r.claims).every(([name, value]) => Object.hasOwn(claims, name) && claims[name] === value));
    if (rule === undefined) throw new FleetError(ErrorCode.E_FORBIDDEN, `no rule maps this identity (${subject}) to a tenant`);

    const identity: Identity = { subject, tenant: rule.tenant, role: rule.role, via: 'oidc' };
    this.cache.set(key, identity, claims.exp * 1000);
    return { ...identity };
  }
}

async function readJwksFile(file: string): Promise<JWTVerifyGetKey> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new FleetError(ErrorCode.E_INVALID_REQUEST, `cannot read JWKS file ${file}: ${(e as Error).message}`, undefined, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new FleetError(ErrorCode.E_INVALID_REQUEST, `JWKS file ${file} is not JSON`);
  }
  // JwksFile has checked the shape JSONWebKeySet needs; jose checks each key when it is used.
  const jwks = parseWith(JwksFile, json, `JWKS file ${file}`) as JSONWebKeySet;
  try {
    return createLocalJWKSet(jwks);
  } catch (e) {
    throw new FleetError(ErrorCode.E_INVALID_REQUEST, `JWKS file ${file}: ${(e as Error).message}`, undefined, { cause: e });
  }
}

/** jose's remote set caches keys and refetches, rate-limited, when a token names an unknown `kid`. */
function remoteKeys(issuer: string, url: string): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(url), { timeoutDuration: 5_000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (e) {
      // The token's fault: no such key, or an algorithm the set cannot serve.
      if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys || e instanceof errors.JOSENotSupported) throw e;
      // The issuer's: unreachable, slow or serving garbage. The caller may try again later.
      throw new FleetError(ErrorCode.E_UNAVAILABLE, `cannot fetch the signing keys of ${issuer}`, undefined, { cause: e });
    }
  };
}

/** jose's messages name the check that failed and never contain the token. */
function refusal(e: unknown): FleetError {
  if (isFleetError(e)) return e;
  if (e instanceof errors.JWTExpired) return new FleetError(ErrorCode.E_UNAUTHENTICATED, 'OIDC token has expired');
  if (e instanceof errors.JOSEError) return new FleetError(ErrorCode.E_UNAUTHENTICATED, `OIDC token refused: ${e.message}`);
  return toFleetError(e);
}
