import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { FleetClient } from '../../client/index.ts';
import type { TenancyConfig } from '../../coordinator/index.ts';
import type { LocalFleet } from '../../deploy/local/fleet.ts';
import { DISTRIBUTION_EVENTS_MEDIA_TYPE, isTerminal, type BuildRequestInput } from '../../protocol/index.ts';
import { RegistryClient } from '../../adapters/registry-client.ts';
import { republishBase } from '../../cli/publish-base.ts';
import { buildUi } from '../../ui/build.ts';
import { eventually } from '../helpers/eventually.ts';
import { fixture, startTestFleet } from '../helpers/fleet.ts';
import { launchChromium, shot, signIn } from './browser.ts';

/**
 * Issue 20: the web console in a real browser (Debian's chromium through playwright-core) against
 * a real local fleet. Tenants alpha and beta; alpha's builds are submitted with the client, as the
 * CLI does, and watched appear and change in the page without a reload.
 */

const ALPHA: TenancyConfig['tenants'][number] = { name: 'alpha', repositories: ['app/alpha/*'], pools: ['default'], secrets: {}, limits: {} };
const BETA: TenancyConfig['tenants'][number] = { name: 'beta', repositories: ['app/beta/*'], pools: ['default'], secrets: {}, limits: {} };
const BIG_LINES = 200_000;
/** Far above any viewport's rows plus overscan, far below one node per line. */
const MAX_ROWS = 200;

let fleet: LocalFleet;
let browser: Browser;
let alpha: FleetClient;
let alphaToken: string;
let betaToken: string;
let base: string;
let alphaPage: Page;
let alphaContext: BrowserContext;
const contexts: Record<string, string> = {};

const request = (id: string, app: string, repository: string): BuildRequestInput => ({
  id,
  context: { digest: contexts[app] ?? '' },
  image: { repository, tags: ['1'] },
});

const api = (path: string, token: string, init: RequestInit = {}): Promise<Response> =>
  fetch(`${base}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) } });

beforeAll(async () => {
  await buildUi();
  // The live log must carry the whole 200,000-line build (the worker's default stops at 100,000).
  fleet = await startTestFleet({ tenants: [ALPHA, BETA], worker: { logs: { maxLiveLines: BIG_LINES + 1_000, maxLiveBytes: 256 * 1024 ** 2, maxLineChars: 16_384 } } });
  base = fleet.coordinator.httpUrl;
  const token = async (tenant: string): Promise<string> => (await fleet.client.tokens({ op: 'create', tenant, role: 'submitter', name: `${tenant} console` })).token ?? '';
  alphaToken = await token('alpha');
  betaToken = await token('beta');
  const creds = fleet.natsCredentials['tenant-alpha'];
  if (creds === undefined) throw new Error('no NATS user for tenant alpha');
  alpha = await FleetClient.connect(fleet.nats.url, creds, fleet.s3.options);
  for (const [app, dir] of [['tiny', fixture('tiny')], ['fails-42', fixture('fails-42')], ['runs-as-root', fixture('runs-as-root')], ['big', new URL('./fixtures/prints-200k', import.meta.url).pathname], ['on-jre17', fixture('rebuild-other')]] as const) {
    contexts[app] = (await alpha.uploadContext(dir)).digest;
  }
  browser = await launchChromium();
  alphaContext = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  alphaPage = await alphaContext.newPage();
});

afterAll(async () => {
  await browser?.close();
  await alpha?.close();
  await fleet?.stop();
});

describe('web console', () => {
  it('serves the built assets under /ui/ with a CSP, immutable hashed assets and 404s for the rest', async () => {
    const page = await fetch(`${base}/ui/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const html = await page.text();
    const script = /src="(\/ui\/assets\/app-[A-Z0-9]{8}\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`${base}${script ?? ''}`);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    // the log's reader (ui/src/log-worker.ts) is a hashed asset of its own, named by the page's script, allowed by the CSP
    expect(page.headers.get('content-security-policy')).toContain("worker-src 'self'");
    const worker = /\/ui\/assets\/log-worker-[A-Z0-9]{8}\.js/.exec(await asset.text())?.[0];
    expect(worker).toBeDefined();
    const workerAsset = await fetch(`${base}${worker ?? ''}`);
    expect(workerAsset.status).toBe(200);
    expect(workerAsset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(workerAsset.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${base}/ui/builds/any-id`)).status).toBe(200);
    expect((await fetch(`${base}/ui/rebuilds?base=official%2Fbase%3A1`)).status).toBe(200);
    for (const path of ['/ui/nope', '/ui/assets/app-AAAAAAAA.js', '/ui/assets/..%2F..%2Fpackage.json', '/ui/builds/a/b']) {
      expect((await fetch(`${base}${path}`)).status, path).toBe(404);
    }
    // The API stays behind the token.
    expect((await fetch(`${base}/v1/builds`)).status).toBe(401);
  });

  it('signs in, and a build submitted with the client appears and reaches pushed without a reload', async () => {
    await signIn(alphaPage, base, alphaToken);
    await alphaPage.getByRole('heading', { name: 'Builds' }).waitFor();
    const loads: string[] = [];
    alphaPage.on('framenavigated', (f) => loads.push(f.url()));
    await alpha.submit(request('ui-tiny-1', 'tiny', 'app/alpha/tiny'));
    // queued behind it on the one worker: the failing builds the next tests open
    await alpha.submit(request('ui-fails-1', 'fails-42', 'app/alpha/fails'));
    await alpha.submit(request('ui-root-1', 'runs-as-root', 'app/alpha/root'));
    await alphaPage.locator('tr[data-build="ui-tiny-1"]').waitFor({ timeout: 30_000 });
    await shot(alphaPage, 'builds-live');
    await alphaPage.locator('tr[data-build="ui-tiny-1"][data-phase="pushed"]').waitFor({ timeout: 180_000 });
    expect(loads).toEqual([]);
    await shot(alphaPage, 'builds-1280');
  }, 300_000);

  it('filters the list by state, repository and id (page and API)', async () => {
    const listed = async (query: string): Promise<string[]> => {
      const res = await api(`/v1/builds?${query}`, alphaToken);
      expect(res.status).toBe(200);
      return ((await res.json()) as { builds: { id: string }[] }).builds.map((b) => b.id);
    };
    expect(await listed('state=pushed')).toEqual(['ui-tiny-1']);
    expect(await listed('repository=app/alpha/fails')).toEqual(['ui-fails-1']);
    expect((await listed('repository=app/alpha/')).sort()).toEqual(['ui-fails-1', 'ui-root-1', 'ui-tiny-1']);
    expect(await listed('q=root')).toEqual(['ui-root-1']);
    expect(await listed(`since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).toEqual([]);
    expect((await api('/v1/builds?state=nonsense', alphaToken)).status).toBe(400);
    await alphaPage.getByLabel('Build id').fill('root');
    await alphaPage.locator('tr[data-build="ui-tiny-1"]').waitFor({ state: 'detached' });
    await alphaPage.locator('tr[data-build="ui-root-1"]').waitFor();
    await alphaPage.getByLabel('Build id').fill('');
  });

  it('shows a pushed build: timeline, gates, and the pushed reference with a copy button', async () => {
    await alphaContext.grantPermissions(['clipboard-read', 'clipboard-write']);
    await alphaPage.getByRole('link', { name: 'ui-tiny-1' }).click();
    await alphaPage.getByRole('heading', { name: 'ui-tiny-1' }).waitFor();
    const reference = await alphaPage.getByTestId('reference').textContent();
    expect(reference).toMatch(/app\/alpha\/tiny:1$/);
    const timeline = alphaPage.getByRole('list', { name: 'Timeline' });
    await timeline.getByText(/started on worker .+, attempt 1/).waitFor();
    await timeline.getByText(/^pushed /).waitFor();
    expect(await alphaPage.locator('tr[data-gate="non-root"]').getAttribute('data-outcome')).toBe('pass');
    await alphaPage.getByRole('button', { name: `Copy ${reference ?? ''}` }).click();
    expect(await alphaPage.evaluate('navigator.clipboard.readText()')).toBe(reference);
    await alphaPage.getByText(/\d+ lines/).waitFor();
    await shot(alphaPage, 'build-pushed');
  });

  it('opens a failing build at its failing step, and a build a gate blocked at that gate', async () => {
    for (const id of ['ui-fails-1', 'ui-root-1']) {
      await eventually(async () => isTerminal((await alpha.status(id)).state.phase), 240_000, `${id} ends`, { intervalMs: 500 });
    }
    await alphaPage.goto(`${base}/ui/builds/ui-fails-1`);
    const failure = alphaPage.locator('.failure');
    await failure.waitFor();
    expect(await failure.textContent()).toMatch(/E_BUILD_STEP_FAILED.*exit.*42|E_BUILD_STEP_FAILED.*about to fail/s);
    await alphaPage.getByRole('log').getByText('about to fail').first().waitFor();
    // the step the build stopped in is marked on its header
    await alphaPage.locator('.log .row.failed-step', { hasText: 'STEP 3/4: RUN echo "about to fail"' }).waitFor();
    await shot(alphaPage, 'build-failed-step');
    await alphaPage.goto(`${base}/ui/builds/ui-root-1`);
    await alphaPage.locator('tr[data-gate="non-root"][data-outcome="block"]').waitFor();
    expect(await alphaPage.locator('tr[data-gate="non-root"]').textContent()).toContain('USER_IS_ROOT');
    expect(await alphaPage.locator('.failure').textContent()).toContain('E_GATE_BLOCKED');
    await shot(alphaPage, 'build-gate-blocked');
  }, 300_000);

  it('follows a 200,000-line build to its end: every line, in order, with the DOM bounded', async () => {
    await alpha.submit(request('ui-big-1', 'big', 'app/alpha/big'));
    await alphaPage.goto(`${base}/ui/builds/ui-big-1`);
    const log = alphaPage.getByRole('log');
    await log.waitFor();
    // Sampled in the page on every frame while it streams, so a spike between polls is seen too.
    await alphaPage.evaluate(`(() => {
      window.__maxRows = 0;
      const sample = () => {
        window.__maxRows = Math.max(window.__maxRows, document.querySelectorAll('.log .row').length);
        window.__sampler = requestAnimationFrame(sample);
      };
      sample();
    })()`);
    await alphaPage.getByText(/ lines$/).and(alphaPage.getByTestId('line-count')).waitFor({ timeout: 240_000 });
    const maxRows = Number(await alphaPage.evaluate('window.__maxRows'));
    const count = Number((await alphaPage.getByTestId('line-count').textContent())?.split(' ')[0]);
    console.log(`200,000-line build: ${count} lines drawn, at most ${maxRows} row nodes in the DOM`);
    expect(count).toBeGreaterThan(BIG_LINES);
    expect(maxRows).toBeGreaterThan(10);
    expect(maxRows).toBeLessThan(MAX_ROWS);
    // Following kept the end in view.
    await log.getByText('n200000 the quick brown fox').waitFor();
    await shot(alphaPage, 'log-200k-end');
    // What the page holds, as the download saves it: every numbered line once, in order.
    const [download] = await Promise.all([alphaPage.waitForEvent('download'), alphaPage.getByRole('button', { name: 'Download' }).click()]);
    const text = await readFile(await download.path(), 'utf8');
    const numbered = text.split('\n').filter((l) => /^n\d{6} the quick brown fox$/.test(l));
    expect(numbered.length).toBe(BIG_LINES);
    numbered.forEach((l, i) => {
      if (l !== `n${String(i + 1).padStart(6, '0')} the quick brown fox`) expect.fail(`line ${i + 1} is ${l}`);
    });
  }, 300_000);

  it('search finds a line, and its link opens the page scrolled to it', async () => {
    await alphaPage.getByLabel('Search the log').fill('n123456');
    await alphaPage.getByRole('button', { name: 'Find' }).click();
    await alphaPage.getByTestId('matches').getByText('1/1').waitFor();
    const hit = alphaPage.locator('.log .row.target');
    expect(await hit.locator('mark').textContent()).toBe('n123456');
    const url = alphaPage.url();
    expect(url).toMatch(/#L\d+$/);
    await shot(alphaPage, 'log-search');
    // A new tab: the token lives in one tab's sessionStorage, so it signs in first, and the
    // address (with its #L…) survives the sign-in.
    const fresh = await alphaContext.newPage();
    await signIn(fresh, base, alphaToken, url.slice(base.length));
    const line = url.slice(url.lastIndexOf('#L') + 2);
    const row = fresh.locator(`.log .row#L${line}`);
    await row.waitFor({ timeout: 60_000 });
    expect(await row.textContent()).toContain('n123456 the quick brown fox');
    expect(await row.isVisible()).toBe(true);
    const inView = await fresh.evaluate(`(() => {
      const log = document.querySelector('.log').getBoundingClientRect();
      const row = document.getElementById('L${line}').getBoundingClientRect();
      return row.top >= log.top && row.bottom <= log.bottom;
    })()`);
    expect(inView).toBe(true);
    await fresh.close();
    // ANSI colours are drawn as classes on text nodes, never as markup.
    // the first match is the step header (its RUN line spells the escapes out), the second the output
    await alphaPage.getByLabel('Search the log').fill('green bold');
    await alphaPage.getByRole('button', { name: 'Find' }).click();
    await alphaPage.getByTestId('matches').getByText('1/2').waitFor();
    await alphaPage.getByRole('button', { name: 'Find' }).click();
    await alphaPage.getByTestId('matches').getByText('2/2').waitFor();
    const coloured = alphaPage.locator('.log .row.target');
    await coloured.locator('.fg-2.b', { hasText: 'green bold' }).waitFor();
    await coloured.locator('.fg-1', { hasText: 'red' }).waitFor();
    expect(await coloured.locator('.fg-4.u').textContent()).toBe('underlined blue');
    expect(await coloured.textContent()).not.toContain('\x1b');
    await shot(alphaPage, 'log-ansi');
  });

  it("keeps tenant beta from seeing alpha's builds, in the page and in the API", async () => {
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    try {
      const page = await ctx.newPage();
      await signIn(page, base, betaToken);
      await page.getByText(/^0 builds$/).waitFor();
      expect(await page.locator('tr[data-build]').count()).toBe(0);
      await page.goto(`${base}/ui/builds/ui-tiny-1`);
      await page.getByRole('alert').getByText(/E_FORBIDDEN|E_NOT_FOUND/).waitFor();
      expect(await page.getByTestId('reference').count()).toBe(0);
      const list = (await (await api('/v1/builds', betaToken)).json()) as { builds: unknown[]; total: number };
      expect(list).toEqual({ builds: [], total: 0 });
      expect([403, 404]).toContain((await api('/v1/builds/ui-tiny-1', betaToken)).status);
      expect([403, 404]).toContain((await api('/v1/builds/ui-tiny-1/logs', betaToken)).status);
      expect((await api('/v1/dead-letters', betaToken)).status).toBe(403);
      const workers = (await (await api('/v1/workers', betaToken)).json()) as { workers: { buildId?: string }[] };
      expect(workers.workers.length).toBeGreaterThan(0);
      expect(workers.workers.every((w) => w.buildId === undefined)).toBe(true);
    } finally {
      await ctx.close();
    }
  });

  it('shows workers and dead letters to the admin, at 1280 px, 390 px and in dark mode', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'dark' });
    try {
      const page = await ctx.newPage();
      await signIn(page, base, fleet.adminToken, '/ui/workers');
      await page.locator('tr[data-worker]').first().waitFor();
      expect(await page.locator('tr[data-worker]').first().textContent()).toMatch(/default.*(buildah|buildkit|kaniko).*(idle|building)/);
      await shot(page, 'workers-dark');
      await page.getByRole('link', { name: 'Dead letters' }).click();
      await page.getByText('The queue is empty.').waitFor();
      await shot(page, 'dead-letters-dark');
      await page.getByRole('link', { name: 'Builds' }).click();
      await page.locator('tr[data-build="ui-big-1"]').waitFor();
      await shot(page, 'builds-dark');
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${base}/ui/builds/ui-root-1`);
      await page.locator('tr[data-gate="non-root"]').waitFor();
      await shot(page, 'build-390-dark');
      await page.goto(`${base}/ui/`);
      await page.locator('tr[data-build="ui-big-1"]').waitFor();
      await shot(page, 'builds-390-dark');
      // keyboard: the skip link is the first stop, and the log is focusable for arrow-key scrolling
      await page.keyboard.press('Tab');
      expect(await page.evaluate('document.activeElement?.textContent')).toBe('Skip to content');
    } finally {
      await ctx.close();
    }
  });

  it('shows rebuild waves: a republished base, its dependents per tenant, linked both ways with their builds', async () => {
    // official/jre17:1 has no other dependent in this file, so the wave holds just these two builds
    // (official/base's would rebuild the 200,000-line build too).
    await alpha.submit(request('ui-rb-alpha', 'on-jre17', 'app/alpha/on-jre17'));
    const asBeta = await api('/v1/builds', betaToken, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request('ui-rb-beta', 'on-jre17', 'app/beta/on-jre17')) });
    expect(asBeta.status).toBe(202);
    for (const id of ['ui-rb-alpha', 'ui-rb-beta']) {
      await eventually(async () => (await alpha.status(id).catch(() => fleet.client.status(id))).state.phase === 'pushed', 240_000, `${id} pushed`, { intervalMs: 500 });
    }
    // The platform team republishes the base; the registry's notification (posted as the local
    // registry would, with a platform token) starts the wave.
    const baseRef = `${fleet.registry.host}/official/jre17:1`;
    const { to } = await republishBase(new RegistryClient({ host: fleet.registry.host, insecure: true }).endpoint, 'official/jre17:1', 'ui-console');
    const envelope = { events: [{ action: 'push', target: { repository: 'official/jre17', tag: '1', digest: to, mediaType: 'application/vnd.oci.image.manifest.v1+json' } }] };
    const noticed = await api('/v1/registry/events', fleet.adminToken, { method: 'POST', headers: { 'content-type': DISTRIBUTION_EVENTS_MEDIA_TYPE }, body: JSON.stringify(envelope) });
    expect(noticed.status).toBe(200);

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await ctx.newPage();
      await signIn(page, base, alphaToken);
      await page.getByRole('link', { name: 'Rebuild waves' }).click();
      await page.getByRole('heading', { name: 'Rebuild waves' }).waitFor();
      // It appears without a reload (the page polls), once the wave has submitted alpha's rebuild.
      const wave = page.locator('section[data-wave]', { has: page.locator('code.base', { hasText: baseRef }) });
      const row = wave.locator('tr[data-member]', { has: page.getByRole('link', { name: 'ui-rb-alpha' }) });
      const rebuildLink = row.locator('td').nth(1).getByRole('link');
      await rebuildLink.waitFor({ timeout: 60_000 });
      expect(await wave.locator('.move code').last().getAttribute('title')).toBe(to);
      expect(await wave.textContent()).toMatch(/noticed by (registry notification|poller)/);
      // alpha sees its own dependent only
      expect(await wave.locator('tr[data-member]').count()).toBe(1);
      expect(await wave.textContent()).not.toContain('app/beta');
      await shot(page, 'rebuilds-1280');
      // the rebuild's build page says why it exists, and links back to the waves of that base
      const rebuildId = (await rebuildLink.textContent()) ?? '';
      await rebuildLink.click();
      await page.getByRole('heading', { name: rebuildId }).waitFor();
      const why = page.getByTestId('rebuild-of');
      expect(await why.textContent()).toMatch(new RegExp(`^Rebuild of ui-rb-alpha because ${baseRef.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} moved sha256:[0-9a-f]{12} → sha256:[0-9a-f]{12}$`));
      // the timeline names the event that says so (published right after queued)
      await page.getByRole('list', { name: 'Timeline' }).getByText(new RegExp(`^rebuild: .*official/jre17:1 moved to sha256:${to.slice(7, 19)}$`)).waitFor();
      await shot(page, 'build-rebuild-of');
      await why.getByRole('link', { name: baseRef }).click();
      await page.getByRole('heading', { name: 'Rebuild waves' }).waitFor();
      expect(await page.getByLabel('Base').inputValue()).toBe(baseRef);
      await page.locator('section[data-wave]').first().waitFor();
      expect(await page.locator('section[data-wave] code.base').allTextContents()).toEqual([baseRef]);
    } finally {
      await ctx.close();
    }

    // beta, on a phone in dark mode: the same wave, with only beta's dependent (page and API)
    const betaCtx = await browser.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
    try {
      const page = await betaCtx.newPage();
      await signIn(page, base, betaToken, '/ui/rebuilds');
      const wave = page.locator('section[data-wave]', { has: page.locator('code.base', { hasText: baseRef }) });
      await wave.locator('tr[data-member]').first().waitFor({ timeout: 60_000 });
      expect(await wave.locator('tr[data-member]').count()).toBe(1);
      expect(await wave.textContent()).toContain('app/beta/on-jre17');
      expect(await wave.textContent()).not.toContain('alpha');
      const width = await page.evaluate('document.documentElement.scrollWidth');
      expect(width).toBeLessThanOrEqual(390);
      await shot(page, 'rebuilds-390-dark');
      const listed = (await (await api(`/v1/rebuilds?base=${encodeURIComponent(baseRef)}`, betaToken)).json()) as { waves: { members: { tenant: string }[] }[] };
      expect(listed.waves.flatMap((w) => w.members.map((m) => m.tenant))).toEqual(['beta']);
    } finally {
      await betaCtx.close();
    }
  }, 300_000);
});
