import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export const ISSUER = 'https://token.ci.example.com';
export const AUDIENCE = 'https://fleet.example.com';

export interface SigningKey {
  kid: string;
  alg: 'RS256' | 'ES256';
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function signingKey(kid: string, alg: 'RS256' | 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { kid, alg, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** A JWKS file in a directory of its own; `dispose` removes both. */
export async function jwksFile(keys: SigningKey[]): Promise<{ path: string; write: (keys: SigningKey[]) => Promise<void>; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'fleet-jwks-'));
  const path = join(dir, 'jwks.json');
  const write = (ks: SigningKey[]): Promise<void> => writeFile(path, JSON.stringify({ keys: ks.map((k) => k.publicJwk) }));
  await write(keys);
  return { path, write, dispose: () => rm(dir, { recursive: true, force: true }) };
}

export interface TokenOptions {
  iss?: string;
  aud?: string | string[];
  sub?: string;
  /** seconds since the epoch; `null` leaves the claim out */
  exp?: number | null;
  nbf?: number;
  iat?: number;
  claims?: JWTPayload;
  kid?: string;
}

export const GITHUB_LIKE_CLAIMS = { repository_owner: 'payments', repository: 'payments/app', ref: 'refs/heads/main' };

export async function idToken(key: SigningKey, o: TokenOptions = {}): Promise<string> {
  const iat = o.iat ?? Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...GITHUB_LIKE_CLAIMS, ...o.claims })
    .setProtectedHeader({ alg: key.alg, kid: o.kid ?? key.kid, typ: 'JWT' })
    .setIssuer(o.iss ?? ISSUER)
    .setAudience(o.aud ?? AUDIENCE)
    .setSubject(o.sub ?? 'repo:payments/app:ref:refs/heads/main')
    .setIssuedAt(iat);
  if (o.exp !== null) jwt.setExpirationTime(o.exp ?? iat + 600);
  if (o.nbf !== undefined) jwt.setNotBefore(o.nbf);
  return jwt.sign(key.privateKey);
}

export function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
