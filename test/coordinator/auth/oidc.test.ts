import { SignJWT, exportSPKI, importJWK, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OidcConfig, OidcVerifier } from '../../../coordinator/auth/index.ts';
import { ErrorCode } from '../../../protocol/index.ts';
import { refusal } from '../../helpers/refusal.ts';
import { AUDIENCE, ISSUER, base64url, idToken, jwksFile, signingKey, type SigningKey } from './oidc-fixtures.ts';

let rsa: SigningKey;
let ec: SigningKey;
let outsider: SigningKey;
let impostor: SigningKey;
let jwks: Awaited<ReturnType<typeof jwksFile>>;

function config(overrides: Record<string, unknown> = {}): unknown {
  return [
    {
      issuer: ISSUER,
      audience: AUDIENCE,
      jwks: { file: jwks.path },
      rules: [
        { claims: { repository_owner: 'payments', ref: 'refs/heads/main' }, tenant: 'payments', role: 'submitter' },
        { claims: { repository_owner: 'payments' }, tenant: 'payments', role: 'reader' },
        { claims: { repository_owner: 'numbers' }, tenant: 'numbers', role: 'reader' },
      ],
      ...overrides,
    },
  ];
}

const nowSeconds = (): number => Math.floor(Date.now() / 1000);

beforeAll(async () => {
  rsa = await signingKey('rsa-1', 'RS256');
  ec = await signingKey('ec-1', 'ES256');
  outsider = await signingKey('outsider', 'RS256');
  // Claims the kid of a trusted key, signs with its own.
  impostor = { ...(await signingKey('rsa-1', 'RS256')), kid: 'rsa-1' };
  jwks = await jwksFile([rsa, ec]);
});

afterAll(async () => {
  await jwks.dispose();
});

describe('OIDC ID tokens', () => {
  it('maps a valid token to the tenant and role of the first rule whose claims all match', async () => {
    const verifier = await OidcVerifier.create(config());
    expect(await verifier.verify(await idToken(rsa))).toEqual({
      subject: `${ISSUER}#repo:payments/app:ref:refs/heads/main`,
      tenant: 'payments',
      role: 'submitter',
      via: 'oidc',
    });
    const branch = await idToken(ec, { sub: 'repo:payments/app:ref:refs/heads/feature', claims: { ref: 'refs/heads/feature' } });
    expect(await verifier.verify(branch)).toMatchObject({ tenant: 'payments', role: 'reader' });
  });

  it('accepts the audience among several', async () => {
    const verifier = await OidcVerifier.create(config());
    expect(await verifier.verify(await idToken(rsa, { aud: ['other', AUDIENCE] }))).toMatchObject({ tenant: 'payments' });
  });

  it('refuses an expired token, beyond the clock tolerance only', async () => {
    const verifier = await OidcVerifier.create(config());
    const now = nowSeconds();
    const e = await refusal(verifier.verify(await idToken(rsa, { iat: now - 700, exp: now - 60 })));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token has expired']);
    expect(await verifier.verify(await idToken(rsa, { iat: now - 700, exp: now - 10 }))).toMatchObject({ tenant: 'payments' });
  });

  it('refuses a token that is not yet valid', async () => {
    const verifier = await OidcVerifier.create(config());
    const e = await refusal(verifier.verify(await idToken(rsa, { nbf: nowSeconds() + 120 })));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token refused: "nbf" claim timestamp check failed']);
  });

  it('refuses a token without an expiry', async () => {
    const verifier = await OidcVerifier.create(config());
    const e = await refusal(verifier.verify(await idToken(rsa, { exp: null })));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token refused: missing required "exp" claim']);
  });

  it('refuses a token for another audience', async () => {
    const verifier = await OidcVerifier.create(config());
    const e = await refusal(verifier.verify(await idToken(rsa, { aud: 'https://other.example.com' })));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token refused: unexpected "aud" claim value']);
  });

  it.each([
    ['an unknown issuer', 'https://evil.example.com'],
    ['a trailing slash', `${ISSUER}/`],
    ['another case', ISSUER.toUpperCase()],
  ])('refuses a token from %s', async (_, iss) => {
    const verifier = await OidcVerifier.create(config());
    const e = await refusal(verifier.verify(await idToken(rsa, { iss })));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token from an issuer this fleet does not trust']);
  });

  it('refuses an unsigned token (alg none)', async () => {
    const verifier = await OidcVerifier.create(config());
    const now = nowSeconds();
    const unsigned = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ iss: ISSUER, aud: AUDIENCE, sub: 'x', repository_owner: 'payments', iat: now, exp: now + 600 })}.`;
    const e = await refusal(verifier.verify(unsigned));
    expect(e.code).toBe(ErrorCode.E_UNAUTHENTICATED);
    expect(e.message).toMatch(/^OIDC token refused: /);
  });

  it('refuses a token MACed with HS256 using the public key as the secret', async () => {
    const verifier = await OidcVerifier.create(config());
    const now = nowSeconds();
    const pem = await exportSPKI((await importJWK(rsa.publicJwk, rsa.alg)) as CryptoKey);
    for (const secret of [new TextEncoder().encode(pem), new TextEncoder().encode(JSON.stringify(rsa.publicJwk))]) {
      const forged = await new SignJWT({ repository_owner: 'payments', ref: 'refs/heads/main' })
        .setProtectedHeader({ alg: 'HS256', kid: rsa.kid })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject('forged')
        .setIssuedAt(now)
        .setExpirationTime(now + 600)
        .sign(secret);
      const e = await refusal(verifier.verify(forged));
      expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token refused: "alg" (Algorithm) Header Parameter value not allowed']);
    }
  });

  it('refuses a token signed by a key that is not in the JWKS', async () => {
    const verifier = await OidcVerifier.create(config());
    const unknownKid = await refusal(verifier.verify(await idToken(outsider)));
    expect([unknownKid.code, unknownKid.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token refused: no applicable key found in the JSON Web Key Set']);
    const stolenKid = await refusal(verifier.verify(await idToken(impostor)));
    expect([stolenKid.code, stolenKid.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token refused: signature verification failed']);
  });

  it('refuses an algorithm the issuer is not configured for', async () => {
    const verifier = await OidcVerifier.create(config({ algorithms: ['RS256'] }));
    const e = await refusal(verifier.verify(await idToken(ec)));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token refused: "alg" (Algorithm) Header Parameter value not allowed']);
  });

  it('forbids a valid token that no rule maps to a tenant', async () => {
    const verifier = await OidcVerifier.create(config());
    const e = await refusal(verifier.verify(await idToken(rsa, { sub: 'repo:search/app', claims: { repository_owner: 'search' } })));
    expect([e.code, e.message]).toEqual([ErrorCode.E_FORBIDDEN, `no rule maps this identity (${ISSUER}#repo:search/app) to a tenant`]);
  });

  it('matches string claims only, never a number or list that prints the same', async () => {
    const verifier = await OidcVerifier.create(config({ rules: [{ claims: { repository_owner_id: '42' }, tenant: 'payments', role: 'reader' }] }));
    expect(await verifier.verify(await idToken(rsa, { claims: { repository_owner_id: '42' } }))).toMatchObject({ tenant: 'payments' });
    for (const value of [42, ['42']]) {
      const e = await refusal(verifier.verify(await idToken(rsa, { claims: { repository_owner_id: value } })));
      expect(e.code, JSON.stringify(value)).toBe(ErrorCode.E_FORBIDDEN);
    }
  });

  it('refuses a token that is not a JWT', async () => {
    const verifier = await OidcVerifier.create(config());
    for (const junk of ['eyJ', 'eyJhbGciOiJSUzI1NiJ9.e30', 'eyJ.eyJ.eyJ']) {
      const e = await refusal(verifier.verify(junk));
      expect([e.code, e.message], junk).toEqual([ErrorCode.E_UNAUTHENTICATED, 'malformed OIDC token']);
    }
  });

  it('remembers a verified token until its expiry, not beyond', async () => {
    let now = Date.now();
    const verifier = await OidcVerifier.create(config(), { now: () => now });
    const iat = Math.floor(now / 1000);
    const token = await idToken(rsa, { iat, nbf: iat, exp: iat + 60 });
    await verifier.verify(token);
    // A clock turned back before `nbf`: verifying afresh would refuse, only a remembered verdict accepts.
    now = (iat - 120) * 1000;
    expect(await verifier.verify(token)).toMatchObject({ tenant: 'payments' });
    now = (iat + 60 + 31) * 1000;
    expect((await refusal(verifier.verify(token))).message).toBe('OIDC token has expired');
  });

  it('stops accepting a key removed from the JWKS file once reloaded, cached tokens included', async () => {
    const verifier = await OidcVerifier.create(config());
    const token = await idToken(rsa);
    await verifier.verify(token);
    await jwks.write([ec]);
    try {
      await verifier.reload();
      const e = await refusal(verifier.verify(token));
      expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC token refused: no applicable key found in the JSON Web Key Set']);
      expect(await verifier.verify(await idToken(ec))).toMatchObject({ tenant: 'payments' });
    } finally {
      await jwks.write([rsa, ec]);
    }
  });

  it('keeps the previous keys when a reload finds a broken file', async () => {
    const verifier = await OidcVerifier.create(config());
    await jwks.write([]);
    try {
      expect((await refusal(verifier.reload())).code).toBe(ErrorCode.E_INVALID_REQUEST);
      expect(await verifier.verify(await idToken(rsa))).toMatchObject({ tenant: 'payments' });
    } finally {
      await jwks.write([rsa, ec]);
    }
  });
});

describe('OIDC keys fetched from a URL', () => {
  it('answers E_UNAVAILABLE, not a refusal, when the issuer\'s keys cannot be fetched', async () => {
    const verifier = await OidcVerifier.create(config({ jwks: { url: 'http://127.0.0.1:1/jwks' } }));
    const e = await refusal(verifier.verify(await idToken(rsa)));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAVAILABLE, `cannot fetch the signing keys of ${ISSUER}`]);
  });
});

describe('the OIDC config', () => {
  const valid = { issuer: ISSUER, audience: AUDIENCE, jwks: { url: 'https://token.ci.example.com/.well-known/jwks' }, rules: [] };

  it('defaults the algorithms to RS256 and ES256', () => {
    expect(OidcConfig.parse([valid])[0]?.algorithms).toEqual(['RS256', 'ES256']);
  });

  it.each([
    ['an HMAC algorithm', { algorithms: ['HS256'] }],
    ['alg none', { algorithms: ['none'] }],
    ['a rule that matches every token', { rules: [{ claims: {}, tenant: 'payments', role: 'reader' }] }],
    ['an admin rule', { rules: [{ claims: { repository_owner: 'payments' }, tenant: 'payments', role: 'admin' }] }],
    ['an invalid tenant', { rules: [{ claims: { repository_owner: 'payments' }, tenant: 'Payments', role: 'reader' }] }],
    ['keys over plain http', { jwks: { url: 'http://token.ci.example.com/jwks' } }],
    ['an issuer that is not a URL', { issuer: 'ci' }],
  ])('refuses %s', (_, overrides) => {
    expect(OidcConfig.safeParse([{ ...valid, ...overrides }]).success).toBe(false);
  });

  it('accepts keys over plain http from a loopback address', () => {
    expect(OidcConfig.safeParse([{ ...valid, jwks: { url: 'http://127.0.0.1:8080/jwks' } }]).success).toBe(true);
  });

  it('refuses an issuer configured twice', () => {
    expect(OidcConfig.safeParse([valid, valid]).success).toBe(false);
  });

  it('refuses to start with a JWKS file that is missing', async () => {
    const e = await refusal(OidcVerifier.create(config({ jwks: { file: '/nonexistent/jwks.json' } })));
    expect(e.code).toBe(ErrorCode.E_INVALID_REQUEST);
  });
});
