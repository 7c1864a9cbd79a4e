import { mkdir } from 'node:fs/promises';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium (scripts/versions.env APT_PACKAGES): nothing downloads a browser build. */
export const CHROMIUM = process.env.FLEET_CHROMIUM ?? '/usr/bin/chromium';

/** Screenshots of the main views, kept as CI artifacts (gitignored), never committed. */
export const ARTIFACTS = new URL('../../test-artifacts/ui/', import.meta.url).pathname;

export async function launchChromium(): Promise<Browser> {
  await mkdir(ARTIFACTS, { recursive: true });
  // --no-sandbox: the tests run as root, where chromium refuses its own sandbox.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
}

/** The whole page (the log has a fixed height, so a build page stays a few screens long). */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true });
}

/** Signs in on the console's own form, as a person pastes a token. */
export async function signIn(page: Page, baseUrl: string, token: string, path = '/ui/'): Promise<void> {
  await page.goto(`${baseUrl}${path}`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
}
