import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConsoleLogins } from '../../coordinator/console-login.ts';
import { createLogger } from '../../adapters/logger.ts';

/** Which trusted issuers the console's sign-in page offers (coordinator/console-login.ts), over real HTTP. */

let server: Server;
let base: string;
let asked = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    asked++;
    const url = new URL(req.url ?? '/', base);
    const issuer = `${base}${url.pathname.replace('/.well-known/openid-configuration', '')}`;
    const docs: Record<string, object> = {
      // a people's issuer: it has a login page
      '/people': { issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, end_session_endpoint: `${issuer}/logout` },
      // a CI issuer: tokens for jobs, no login page
      '/ci': { issuer, jwks_uri: `${issuer}/jwks` },
      // a document naming another issuer (OIDC Discovery §4.3: must not be used)
      '/liar': { issuer: 'https://elsewhere.example.com', authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token` },
    };
    const doc = docs[url.pathname.replace('/.well-known/openid-configuration', '')];
    if (doc === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(doc));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const log = createLogger('console-login-test', { level: 'silent', pretty: false });

describe('ConsoleLogins', () => {
  it('offers issuers with a login page only, with their audience as the client id', async () => {
    const logins = new ConsoleLogins(
      ['people', 'ci', 'liar', 'gone'].map((p) => ({ issuer: `${base}/${p}`, audience: `fleet-${p}` })),
      log,
    );
    expect(await logins.list()).toEqual([
      { issuer: `${base}/people`, clientId: 'fleet-people', authorizationEndpoint: `${base}/people/authorize`, tokenEndpoint: `${base}/people/token`, endSessionEndpoint: `${base}/people/logout` },
    ]);
  });

  it('asks each issuer again only after a while: once its answer is kept, a page load costs no request', async () => {
    let now = 1_000_000;
    const logins = new ConsoleLogins([{ issuer: `${base}/people`, audience: 'fleet' }], log, () => now);
    await logins.list();
    const before = asked;
    await logins.list();
    expect(asked).toBe(before);
    now += 11 * 60_000;
    await logins.list();
    expect(asked).toBe(before + 1);
  });

  it('offers nothing, and asks nobody, without an OIDC file', async () => {
    const before = asked;
    expect(await (await ConsoleLogins.fromFile(undefined, log)).list()).toEqual([]);
    expect(asked).toBe(before);
  });
});
