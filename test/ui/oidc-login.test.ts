import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { FleetClient } from '../../client/index.ts';
import type { TenancyConfig } from '../../coordinator/index.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { buildUi } from '../../ui/build.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';
import { launchChromium, shot } from './browser.ts';
import { startTestIssuer, type TestIssuer } from './oidc-issuer.ts';

/**
 * Issue 20: signing in to the console at the OIDC issuer the fleet trusts (authorization code +
 * PKCE), in Debian's chromium, through the issuer's own login page. The ID token is the bearer
 * token, kept in sessionStorage; signing out forgets it; at its expiry the console returns to
 * sign-in. A fleet with no worker: a queued build is all the list needs.
 */

const ALPHA: TenancyConfig['tenants'][number] = { name: 'alpha', repositories: ['app/alpha/*'], pools: ['default'], secrets: {}, limits: {} };
const BETA: TenancyConfig['tenants'][number] = { name: 'beta', repositories: ['app/beta/*'], pools: ['default'], secrets: {}, limits: {} };

let issuer: TestIssuer;
let fleet: LocalFleet;
let browser: Browser;
let base: string;

beforeAll(async () => {
  await buildUi();
  issuer = await startTestIssuer({ ada: { fleet_tenant: 'alpha' }, bob: { fleet_tenant: 'beta' } });
  fleet = await startTestFleet({
    workers: 0,
    tenants: [ALPHA, BETA],
    oidc: [{ issuer: issuer.issuer, audience: issuer.clientId, jwks: { url: `${issuer.issuer}/jwks` }, rules: [
      { claims: { fleet_tenant: 'alpha' }, tenant: 'alpha', role: 'submitter' },
      { claims: { fleet_tenant: 'beta' }, tenant: 'beta', role: 'submitter' },
    ] }],
  });
  base = fleet.coordinator.httpUrl;
  issuer.allowRedirect(`${base}/ui/oidc-callback`);
  // where the issuer returns the browser after ending its own session (RP-initiated logout)
  issuer.allowRedirect(`${base}/ui/`);
  // one build of each tenant, submitted as the CLI does
  for (const [tenant, repository] of [['alpha', 'app/alpha/web'], ['beta', 'app/beta/web']] as const) {
    const creds = fleet.natsCredentials[`tenant-${tenant}`];
    if (creds === undefined) throw new Error(`no NATS user for tenant ${tenant}`);
    const client = await FleetClient.connect(fleet.nats.url, creds, fleet.s3.options);
    try {
      const { digest } = await client.uploadContext(fixture('tiny'));
      await client.submit({ id: `oidc-${tenant}-1`, context: { digest }, image: { repository, tags: ['1'] } });
    } finally {
      await client.close();
    }
  }
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await fleet?.stop();
  await issuer?.close();
});

/** From the console's sign-in page through the issuer's login form, back to the console. */
async function logIn(page: Page, user: string, lifetimeSeconds = 600): Promise<void> {
  await page.getByRole('button', { name: `Sign in with ${new URL(issuer.issuer).host}` }).click();
  await page.getByRole('heading', { name: 'Test issuer' }).waitFor();
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Token lifetime (s)').fill(String(lifetimeSeconds));
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}

describe('signing in to the console at an OIDC issuer', () => {
  it('offers the issuer, logs in through its page (code + PKCE), and calls the API with the ID token as Bearer', async () => {
    const login = (await (await fetch(`${base}/ui/login.json`)).json()) as { oidc: { issuer: string; clientId: string }[] };
    expect(login.oidc).toMatchObject([{ issuer: issuer.issuer, clientId: 'fleet-console' }]);
    // the page may reach the issuer's token endpoint, and nothing else beyond its own origin
    expect((await fetch(`${base}/ui/`)).headers.get('content-security-policy')).toContain(`connect-src 'self' ${issuer.issuer}`);

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await ctx.newPage();
      const bearers: string[] = [];
      page.on('request', (r) => {
        const auth = r.headers().authorization;
        if (auth !== undefined && new URL(r.url()).pathname.startsWith('/v1/')) bearers.push(auth);
      });
      // a deep link survives the trip to the issuer
      await page.goto(`${base}/ui/workers`);
      await shot(page, 'signin-oidc');
      await logIn(page, 'ada');
      expect(new URL(page.url()).pathname).toBe('/ui/workers');
      await page.getByRole('link', { name: 'Builds' }).click();
      await page.locator('tr[data-build="oidc-alpha-1"]').waitFor();
      // ada is alpha: beta's build is not listed
      await page.getByText(/^1 build$/).waitFor();
      expect(await page.locator('tr[data-build="oidc-beta-1"]').count()).toBe(0);
      expect(bearers.length).toBeGreaterThan(0);
      expect(bearers.every((b) => /^Bearer eyJ[\w-]+\.[\w-]+\.[\w-]+$/.test(b))).toBe(true);
      // the console sent the PKCE verifier, and the issuer checked it against the challenge
      expect(issuer.tokenRequests.at(-1)?.get('code_verifier')).toMatch(/^[\w-]{43}$/);
      // kept in this tab's sessionStorage, never in localStorage
      const stored = JSON.parse(String(await page.evaluate('JSON.stringify({ session: sessionStorage.getItem("fleet.token"), local: Object.keys(localStorage) })'))) as { session: string | null; local: string[] };
      expect(stored.session).toBe(bearers.at(-1)?.slice('Bearer '.length));
      expect(stored.local).toEqual([]);
      await shot(page, 'builds-oidc');

      // sign out: the token is forgotten, the issuer (it publishes end_session_endpoint) ends its
      // own session with the ID token as the hint, and sends the browser back to the console's sign-in
      const idToken = stored.session;
      await page.getByRole('button', { name: 'Sign out' }).click();
      await page.waitForURL(`${base}/ui/`);
      await page.getByRole('button', { name: /^Sign in with / }).waitFor();
      expect(await page.evaluate('sessionStorage.getItem("fleet.token")')).toBeNull();
      const logout = issuer.logoutRequests.at(-1);
      expect(logout?.get('id_token_hint')).toBe(idToken);
      expect(logout?.get('client_id')).toBe(issuer.clientId);
      expect(logout?.get('post_logout_redirect_uri')).toBe(`${base}/ui/`);
    } finally {
      await ctx.close();
    }
  }, 120_000);

  it('returns to sign-in when the ID token expires', async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    try {
      const page = await ctx.newPage();
      await page.goto(`${base}/ui/`);
      await logIn(page, 'bob', 3);
      // the token's own `exp` ends the session (the API would still take it for its clock tolerance)
      await page.getByRole('alert').getByText('Your session has expired').waitFor({ timeout: 30_000 });
      expect(await page.evaluate('sessionStorage.getItem("fleet.token")')).toBeNull();
      await shot(page, 'signin-expired-390');
    } finally {
      await ctx.close();
    }
  }, 120_000);

  it('refuses a callback this tab did not start, and a code used twice', async () => {
    const ctx = await browser.newContext();
    try {
      const page = await ctx.newPage();
      await page.goto(`${base}/ui/oidc-callback?code=forged&state=forged`);
      await page.getByRole('alert').getByText(/No sign-in was started in this tab/).waitFor();
      expect(await page.evaluate('sessionStorage.getItem("fleet.token")')).toBeNull();
      // the issuer takes a code once: replaying the last one is refused
      const last = issuer.tokenRequests.at(-1);
      const replay = await fetch(`${issuer.issuer}/token`, { method: 'POST', body: last ?? new URLSearchParams() });
      expect(replay.status).toBe(400);
    } finally {
      await ctx.close();
    }
  });
});
