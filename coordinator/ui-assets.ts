import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConsoleLogin } from './console-login.ts';

/** Where `npm run ui:build` (ui/build.ts) writes the console. */
export const UI_DIST = fileURLToPath(new URL('../ui/dist/', import.meta.url));

/**
 * The console is static and talks to the same API with the same bearer token, so nothing here
 * needs a login: the assets hold no data. The policy allows only this origin, and no inline script
 * or style (the build emits none), so injected log text could not run even if it reached markup.
 * The log is read by a worker from this origin's assets (ui/src/log-worker.ts): worker-src says so
 * outright rather than through the fallback to default-src.
 */
const CSP = "default-src 'self'; worker-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";
const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
} as const;

/** The browser sign-in choices (coordinator/console-login.ts); absent: API tokens only. */
export interface UiLogins {
  list(): Promise<ConsoleLogin[]>;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

/** The console's own page routes (client-side); anything else under /ui/ is a 404. */
const PAGES = [/^\/ui\/$/, /^\/ui\/builds\/[^/]+$/, /^\/ui\/workers$/, /^\/ui\/dead-letters$/, /^\/ui\/rebuilds$/, /^\/ui\/oidc-callback$/];
/** Built assets carry a content hash in their names (ui/build.ts): they never change in place. */
const ASSET = /^\/ui\/assets\/([A-Za-z0-9_-]+-[A-Z0-9]{8}\.(?:js|css|map|svg))$/;

/**
 * Answers GET/HEAD under /ui; returns false for any other path. `dist` is the build output (tests
 * point it at a directory of their own).
 */
export async function serveUi(method: string, path: string, res: ServerResponse, dist: string = UI_DIST, logins?: UiLogins): Promise<boolean> {
  if (path !== '/ui' && !path.startsWith('/ui/')) return false;
  if (method !== 'GET' && method !== 'HEAD') return reply(res, method, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' });
  if (path === '/ui') {
    res.writeHead(308, { location: '/ui/', ...SECURITY_HEADERS });
    res.end();
    return true;
  }
  // Public, like the page: where a person may sign in (issuer, client id, endpoints), nothing secret.
  if (path === '/ui/login.json') {
    return reply(res, method, 200, 'application/json', JSON.stringify({ oidc: (await logins?.list()) ?? [] }), { 'cache-control': 'no-cache' });
  }
  if (PAGES.some((p) => p.test(path))) {
    const page = await readIfExists(join(dist, 'index.html'));
    if (page === null) {
      return reply(res, method, 503, 'text/plain; charset=utf-8', 'The web console was not built: run `npm run ui:build` (ui/build.ts) on this machine.\n');
    }
    // The page names the current hashed assets, so it must be revalidated every time.
    // The code-for-token exchange goes from the page to the issuer's token endpoint (a public
    // client with PKCE): that origin, and only it, is added to where the page may connect.
    const tokenOrigins = [...new Set(((await logins?.list()) ?? []).map((l) => new URL(l.tokenEndpoint).origin))];
    const csp = tokenOrigins.length === 0 ? {} : { 'content-security-policy': `${CSP}; connect-src 'self' ${tokenOrigins.join(' ')}` };
    return reply(res, method, 200, 'text/html; charset=utf-8', page, { 'cache-control': 'no-cache', ...csp });
  }
  const asset = ASSET.exec(path)?.[1];
  const type = asset === undefined ? undefined : TYPES[extname(asset)];
  const body = asset === undefined || type === undefined ? null : await readIfExists(join(dist, 'assets', asset));
  if (body === null || type === undefined) return reply(res, method, 404, 'text/plain; charset=utf-8', 'not found\n');
  return reply(res, method, 200, type, body, { 'cache-control': 'public, max-age=31536000, immutable' });
}

function reply(res: ServerResponse, method: string, status: number, type: string, body: Buffer | string, headers: Record<string, string> = {}): true {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), ...SECURITY_HEADERS, ...headers });
  res.end(method === 'HEAD' ? undefined : body);
  return true;
}

async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}
