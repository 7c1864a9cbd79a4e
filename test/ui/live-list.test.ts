import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Request } from 'playwright-core';
import { FleetClient } from '../../client/index.ts';
import type { TenancyConfig } from '../../coordinator/index.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { BuildListEvent, type BuildRequestInput } from '../../protocol/index.ts';
import { buildUi } from '../../ui/build.ts';
import { eventually } from '../helpers/eventually.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';
import { launchChromium, shot, signIn } from './browser.ts';
import { dropProxy } from './drop-proxy.ts';

/**
 * Issue 20: the builds list is live from the coordinator's stream (GET /v1/builds?watch=1), not
 * polled, and a tenant's stream carries only its own builds. A fleet with no worker: the builds
 * stay queued, which is all a list needs, and the file starts in seconds.
 */

const ALPHA: TenancyConfig['tenants'][number] = { name: 'alpha', repositories: ['app/alpha/*'], pools: ['default'], secrets: {}, limits: {} };
const BETA: TenancyConfig['tenants'][number] = { name: 'beta', repositories: ['app/beta/*'], pools: ['default'], secrets: {}, limits: {} };

let fleet: LocalFleet;
let browser: Browser;
let base: string;
let alphaToken: string;
let betaToken: string;
let digest: string;

const request = (id: string, repository: string): BuildRequestInput => ({ id, context: { digest }, image: { repository, tags: ['1'] } });

/** Submits over the HTTP API as `token`'s tenant. */
async function submit(token: string, id: string, repository: string): Promise<void> {
  const res = await fetch(`${base}/v1/builds`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(request(id, repository)) });
  expect(res.status, await res.clone().text()).toBe(202);
}

/** Reads a tenant's stream from Node (the API, without the page), collecting its events. */
function watch(token: string): { events: BuildListEvent[]; stop: () => void; done: Promise<void> } {
  const ac = new AbortController();
  const events: BuildListEvent[] = [];
  const done = (async () => {
    const res = await fetch(`${base}/v1/builds?watch=1`, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
    expect(res.status).toBe(200);
    let buffer = '';
    for await (const chunk of res.body ?? []) {
      buffer += Buffer.from(chunk as Uint8Array).toString();
      let cut: number;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const data = buffer.slice(0, cut).split('\n').find((l) => l.startsWith('data: '));
        buffer = buffer.slice(cut + 2);
        if (data !== undefined) events.push(BuildListEvent.parse(JSON.parse(data.slice(6))));
      }
    }
  })().catch((e: unknown) => {
    if (!ac.signal.aborted) throw e;
  });
  return { events, stop: () => ac.abort(), done };
}

const named = (events: BuildListEvent[]): string[] => events.flatMap((e) => (e.type === 'snapshot' ? e.builds.map((b) => b.id) : e.type === 'upsert' ? [e.build.id] : [e.id]));

beforeAll(async () => {
  await buildUi();
  fleet = await startTestFleet({ workers: 0, tenants: [ALPHA, BETA] });
  base = fleet.coordinator.httpUrl;
  const token = async (tenant: string): Promise<string> => (await fleet.client.tokens({ op: 'create', tenant, role: 'submitter', name: `${tenant} live list` })).token ?? '';
  alphaToken = await token('alpha');
  betaToken = await token('beta');
  const creds = fleet.natsCredentials['tenant-alpha'];
  if (creds === undefined) throw new Error('no NATS user for tenant alpha');
  const alpha = await FleetClient.connect(fleet.nats.url, creds, fleet.s3.options);
  try {
    digest = (await alpha.uploadContext(fixture('tiny'))).digest;
  } finally {
    await alpha.close();
  }
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await fleet?.stop();
});

describe('the live builds list', () => {
  it("streams a tenant its own builds only: beta's stream never names alpha's", async () => {
    const beta = watch(betaToken);
    const alpha = watch(alphaToken);
    try {
      await eventually(() => beta.events.length > 0 && alpha.events.length > 0, 30_000, 'the snapshots');
      expect(beta.events[0]).toEqual({ type: 'snapshot', builds: [], total: 0 });
      await submit(alphaToken, 'live-alpha-1', 'app/alpha/one');
      await submit(betaToken, 'live-beta-1', 'app/beta/one');
      await eventually(() => named(beta.events).includes('live-beta-1') && named(alpha.events).includes('live-alpha-1'), 30_000, 'the submits on their streams');
      // alpha's was written first: had it reached beta's stream, it would be there by now
      expect(named(beta.events)).toEqual(['live-beta-1']);
      expect(JSON.stringify(beta.events)).not.toContain('alpha');
      expect(named(alpha.events)).toEqual(['live-alpha-1']);
      expect(alpha.events.at(-1)).toMatchObject({ type: 'upsert', total: 1, build: { id: 'live-alpha-1', tenant: 'alpha', phase: 'queued', repository: 'app/alpha/one' } });
      // the same refusals as the list: no token, a bad filter
      expect((await fetch(`${base}/v1/builds?watch=1`)).status).toBe(401);
      expect((await fetch(`${base}/v1/builds?watch=1&state=nonsense`, { headers: { authorization: `Bearer ${alphaToken}` } })).status).toBe(400);
    } finally {
      beta.stop();
      alpha.stop();
      await Promise.all([beta.done, alpha.done]);
    }
  }, 120_000);

  it('shows a new build in the page from the stream, with no poll of the list', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await ctx.newPage();
      const listCalls: string[] = [];
      page.on('request', (r: Request) => {
        const url = new URL(r.url());
        if (url.pathname === '/v1/builds' && r.method() === 'GET') listCalls.push(url.search);
      });
      await signIn(page, base, alphaToken);
      await page.locator('tr[data-build="live-alpha-1"]').waitFor();
      expect(await page.locator('section[data-list-mode]').getAttribute('data-list-mode')).toBe('stream');
      await submit(alphaToken, 'live-alpha-2', 'app/alpha/two');
      await page.locator('tr[data-build="live-alpha-2"][data-phase="queued"]').waitFor({ timeout: 30_000 });
      await page.getByText(/^2 builds/).waitFor();
      // one request: the stream. Every list the page showed came from it.
      expect(listCalls.length).toBe(1);
      expect(listCalls[0]).toContain('watch=1');
      expect(await page.locator('tr[data-build="live-beta-1"]').count()).toBe(0);
      // a filter reopens the stream with it; a state change the filter excludes removes the row
      await page.getByLabel('Build id').fill('alpha-2');
      await page.locator('tr[data-build="live-alpha-1"]').waitFor({ state: 'detached' });
      const cancelled = await fetch(`${base}/v1/builds/live-alpha-2`, { method: 'DELETE', headers: { authorization: `Bearer ${alphaToken}` } });
      expect(cancelled.status).toBe(200);
      await page.locator('tr[data-build="live-alpha-2"][data-phase="cancelled"]').waitFor({ timeout: 30_000 });
      expect(listCalls.every((q) => q.includes('watch=1'))).toBe(true);
      await shot(page, 'builds-live-stream');
    } finally {
      await ctx.close();
    }
  }, 120_000);

  it('resumes the stream with Last-Event-ID after the connection drops: no reload, and a build changed meanwhile shows its new state', async () => {
    const proxy = await dropProxy(base);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      // Polls of the list are refused: what the page shows after the drop can only come from the resumed stream.
      await ctx.route(/\/v1\/builds(\?(?!.*watch=1).*)?$/, (route) => route.abort());
      const page = await ctx.newPage();
      await signIn(page, proxy.url, alphaToken);
      await submit(alphaToken, 'live-alpha-4', 'app/alpha/four');
      await page.locator('tr[data-build="live-alpha-4"][data-phase="queued"]').waitFor({ timeout: 30_000 });
      await page.evaluate('window.__sameDocument = true');
      const before = proxy.connections.length;
      proxy.down();
      await page.locator('section[data-list-mode="poll"]').waitFor({ timeout: 30_000 });
      // changed while the page cannot hear of it (straight to the coordinator, not through the proxy)
      const cancelled = await fetch(`${base}/v1/builds/live-alpha-4`, { method: 'DELETE', headers: { authorization: `Bearer ${alphaToken}` } });
      expect(cancelled.status).toBe(200);
      proxy.up();
      await page.locator('tr[data-build="live-alpha-4"][data-phase="cancelled"]').waitFor({ timeout: 30_000 });
      await page.locator('section[data-list-mode="stream"]').waitFor();
      expect(await page.evaluate('window.__sameDocument')).toBe(true);
      const resumed = proxy.connections.slice(before).filter((c) => /^GET \/v1\/builds\?[^ ]*watch=1/.test(c.request));
      expect(resumed.length).toBeGreaterThan(0);
      for (const c of resumed) {
        expect(c.request).toMatch(/\r\nlast-event-id: \S+\r\n/i);
        expect(c.response).not.toContain('event: snapshot');
      }
      expect(resumed.some((c) => c.response.includes('event: upsert') && c.response.includes('live-alpha-4'))).toBe(true);
      await shot(page, 'builds-live-resumed');
    } finally {
      await ctx.close();
      await proxy.close();
    }
  }, 120_000);

  it('falls back to polling when the stream cannot be opened, and still shows new builds', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      // a proxy that refuses event streams, as some do
      await ctx.route(/\/v1\/builds\?.*watch=1/, (route) => route.abort());
      const page = await ctx.newPage();
      await signIn(page, base, alphaToken);
      await page.locator('section[data-list-mode="poll"]').waitFor();
      await page.locator('tr[data-build="live-alpha-1"]').waitFor();
      await submit(alphaToken, 'live-alpha-3', 'app/alpha/three');
      await page.locator('tr[data-build="live-alpha-3"]').waitFor({ timeout: 30_000 });
      await page.getByText('live updates unavailable').waitFor();
    } finally {
      await ctx.close();
    }
  }, 120_000);
});
