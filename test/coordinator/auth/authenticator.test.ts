import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator, CachedTokenStore, MemoryTokenStore, OidcVerifier, createToken, type TokenRecord } from '../../../coordinator/auth/index.ts';
import { ErrorCode } from '../../../protocol/index.ts';
import { refusal } from '../../helpers/refusal.ts';
import { AUDIENCE, ISSUER, idToken, jwksFile, signingKey, type SigningKey } from './oidc-fixtures.ts';

class CountingStore extends MemoryTokenStore {
  reads = 0;
  override get(id: string): Promise<TokenRecord | null> {
    this.reads++;
    return super.get(id);
  }
}

let key: SigningKey;
let jwks: Awaited<ReturnType<typeof jwksFile>>;
let store: CountingStore;
let authenticator: Authenticator;
let apiToken: string;
let apiTokenId: string;

beforeAll(async () => {
  key = await signingKey('k1', 'ES256');
  jwks = await jwksFile([key]);
  store = new CountingStore();
  const oidc = await OidcVerifier.create([
    { issuer: ISSUER, audience: AUDIENCE, jwks: { file: jwks.path }, rules: [{ claims: { repository_owner: 'payments' }, tenant: 'payments', role: 'submitter' }] },
  ]);
  authenticator = new Authenticator({ tokens: new CachedTokenStore(store), oidc });
  const created = await createToken(store, { tenant: 'search', role: 'admin', name: 'ops', createdBy: 'token:00000000' });
  apiToken = created.token;
  apiTokenId = created.record.id;
});

afterAll(async () => {
  await jwks.dispose();
});

describe('the authenticator', () => {
  it.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['a blank header', '   '],
  ])('refuses %s as a missing bearer token', async (_, header) => {
    const e = await refusal(authenticator.authenticate(header));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'missing bearer token']);
  });

  it('takes an API token to the token store', async () => {
    expect(await authenticator.authenticate(`Bearer ${apiToken}`)).toEqual({ subject: `token:${apiTokenId}`, tenant: 'search', role: 'admin', via: 'token' });
  });

  it('takes a JWT to the OIDC verifier', async () => {
    expect(await authenticator.authenticate(`Bearer ${await idToken(key)}`)).toMatchObject({ tenant: 'payments', role: 'submitter', via: 'oidc' });
  });

  it('reads the scheme case-insensitively', async () => {
    expect(await authenticator.authenticate(`bearer ${apiToken}`)).toMatchObject({ tenant: 'search' });
    expect(await authenticator.authenticate(`BEARER ${apiToken}`)).toMatchObject({ tenant: 'search' });
  });

  it.each([
    ['another scheme', `Basic ${Buffer.from('user:pass').toString('base64')}`],
    ['a bare token', 'flt_0123abcd_x'],
    ['two tokens', `Bearer ${'flt_0123abcd_'}${'A'.repeat(43)} extra`],
    ['an unknown kind of token', 'Bearer ghp_abcdefabcdefabcdefabcdef'],
    ['a huge header', `Bearer eyJ${'A'.repeat(20_000)}`],
  ])('refuses %s', async (_, header) => {
    const e = await refusal(authenticator.authenticate(header));
    expect(e.code).toBe(ErrorCode.E_UNAUTHENTICATED);
  });

  it('refuses a JWT when no OIDC issuer is configured', async () => {
    const tokensOnly = new Authenticator({ tokens: store });
    const e = await refusal(tokensOnly.authenticate(`Bearer ${await idToken(key)}`));
    expect([e.code, e.message]).toEqual([ErrorCode.E_UNAUTHENTICATED, 'OIDC tokens are not accepted here']);
  });

  it('never puts the presented token, or its secret, in an error', async () => {
    const secretOf = (t: string): string => t.slice('flt_12345678_'.length);
    const presented = [
      `${apiToken.slice(0, -1)}${apiToken.endsWith('A') ? 'B' : 'A'}`,
      `flt_ffffffff_${secretOf(apiToken)}`,
      `${apiToken}x`,
      await idToken(key, { aud: 'elsewhere' }),
      await idToken(key, { claims: { repository_owner: 'search' } }),
      'eyJsecretgarbage.eyJmoregarbage.sig',
      'opaque-secret-value-1234567890',
    ];
    for (const token of presented) {
      const e = await refusal(authenticator.authenticate(`Bearer ${token}`));
      const shown = JSON.stringify(e.toBody()) + String(e.stack);
      expect(shown, token).not.toContain(token);
      expect(shown, token).not.toContain(secretOf(apiToken));
      expect(shown, token).not.toContain(token.split('.')[2] ?? token);
    }
  });

  it('reports the p50 cost of authenticate() for cached API and OIDC tokens', async () => {
    const idTokenHeader = `Bearer ${await idToken(key)}`;
    const apiHeader = `Bearer ${apiToken}`;
    await authenticator.authenticate(apiHeader);
    await authenticator.authenticate(idTokenHeader);
    const readsBefore = store.reads;
    const p50 = async (header: string, via: string): Promise<number> => {
      const samples: number[] = [];
      for (let i = 0; i < 20_000; i++) {
        const start = performance.now();
        const identity = await authenticator.authenticate(header);
        samples.push(performance.now() - start);
        if (identity.via !== via) throw new Error(`expected ${via}, got ${identity.via}`);
      }
      samples.sort((a, b) => a - b);
      return samples[samples.length >> 1] ?? NaN;
    };
    const api = await p50(apiHeader, 'token');
    const oidc = await p50(idTokenHeader, 'oidc');
    console.log(`authenticate() p50, cached: API token ${(api * 1000).toFixed(1)} µs, OIDC token ${(oidc * 1000).toFixed(1)} µs`);
    // The measurement is of the cached path only if the store was not read.
    expect(store.reads).toBe(readsBefore);
  });
});
