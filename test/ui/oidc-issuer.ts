import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { signingKey } from '../coordinator/auth/oidc-fixtures.ts';

/**
 * A small real OIDC issuer for the console's browser sign-in: discovery, JWKS, an authorize page
 * (a form: user name and how long the ID token lives), and a token endpoint that checks the code,
 * the redirect URI and the PKCE verifier. Users are claims: a user's `fleet_tenant` is what the
 * fleet's rule maps to a tenant. The coordinator fetches discovery and keys over loopback HTTP.
 */
export interface TestIssuer {
  issuer: string;
  clientId: string;
  /** redirect URIs must be registered, as at a real issuer (the console's is known once the fleet is up) */
  allowRedirect(uri: string): void;
  /** every token request, to check what the console sent */
  tokenRequests: URLSearchParams[];
  /** every RP-initiated logout (end_session_endpoint) request's parameters */
  logoutRequests: URLSearchParams[];
  close(): Promise<void>;
}

interface Grant {
  clientId: string;
  redirectUri: string;
  challenge: string;
  nonce: string;
  user: string;
  lifetimeSeconds: number;
}

export async function startTestIssuer(users: Record<string, Record<string, string>>, clientId = 'fleet-console'): Promise<TestIssuer> {
  const key = await signingKey('console-1', 'ES256');
  const redirects = new Set<string>();
  const grants = new Map<string, Grant>();
  const tokenRequests: URLSearchParams[] = [];
  const logoutRequests: URLSearchParams[] = [];
  let issuer = '';

  const html = (res: ServerResponse, status: number, body: string): void => {
    res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><html><head><title>Test issuer</title></head><body>${body}</body></html>`);
  };
  const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);
  const form = async (req: IncomingMessage): Promise<URLSearchParams> => {
    let body = '';
    for await (const chunk of req as AsyncIterable<Buffer>) body += chunk.toString();
    return new URLSearchParams(body);
  };

  const server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', issuer);
      if (url.pathname === '/.well-known/openid-configuration') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ issuer, authorization_endpoint: `${issuer}/authorize`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`, end_session_endpoint: `${issuer}/logout`, response_types_supported: ['code'], code_challenge_methods_supported: ['S256'] }));
      }
      // RP-initiated logout 1.0: ends the session and returns to a registered post-logout URI
      if (url.pathname === '/logout' && req.method === 'GET') {
        logoutRequests.push(url.searchParams);
        const back = url.searchParams.get('post_logout_redirect_uri');
        if (back === null || !redirects.has(back)) return html(res, 200, '<h1>Signed out</h1>');
        res.writeHead(302, { location: back });
        return void res.end();
      }
      if (url.pathname === '/jwks') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ keys: [key.publicJwk] }));
      }
      if (url.pathname === '/authorize' && req.method === 'GET') {
        const p = url.searchParams;
        if (p.get('client_id') !== clientId || !redirects.has(p.get('redirect_uri') ?? '')) return html(res, 400, '<p>unknown client or redirect URI</p>');
        if (p.get('response_type') !== 'code' || p.get('code_challenge_method') !== 'S256' || p.get('code_challenge') === null) return html(res, 400, '<p>code flow with PKCE (S256) only</p>');
        const hidden = [...p.entries()].map(([k, v]) => `<input type="hidden" name="${escape(k)}" value="${escape(v)}">`).join('');
        return html(res, 200, `<h1>Test issuer</h1><form method="post" action="/authorize">${hidden}<label for="user">User name</label><input id="user" name="user"><label for="lifetime">Token lifetime (s)</label><input id="lifetime" name="lifetime" value="600"><button type="submit">Log in</button></form>`);
      }
      if (url.pathname === '/authorize' && req.method === 'POST') {
        const p = await form(req);
        const user = p.get('user') ?? '';
        const redirectUri = p.get('redirect_uri') ?? '';
        if (users[user] === undefined) return html(res, 401, '<p>no such user</p>');
        if (p.get('client_id') !== clientId || !redirects.has(redirectUri)) return html(res, 400, '<p>unknown client or redirect URI</p>');
        const code = randomBytes(16).toString('base64url');
        grants.set(code, { clientId, redirectUri, challenge: p.get('code_challenge') ?? '', nonce: p.get('nonce') ?? '', user, lifetimeSeconds: Number(p.get('lifetime') ?? 600) });
        const back = new URL(redirectUri);
        back.searchParams.set('code', code);
        back.searchParams.set('state', p.get('state') ?? '');
        res.writeHead(302, { location: back.toString() });
        return void res.end();
      }
      if (url.pathname === '/token' && req.method === 'POST') {
        // A browser app calls this from its own origin: CORS, as real issuers allow for public clients.
        const cors = { 'access-control-allow-origin': req.headers.origin ?? '*', 'content-type': 'application/json' };
        const p = await form(req);
        tokenRequests.push(p);
        const code = p.get('code') ?? '';
        const grant = grants.get(code);
        grants.delete(code); // a code is good once
        const verifier = p.get('code_verifier') ?? '';
        const ok =
          grant !== undefined &&
          p.get('grant_type') === 'authorization_code' &&
          p.get('client_id') === grant.clientId &&
          p.get('redirect_uri') === grant.redirectUri &&
          createHash('sha256').update(verifier).digest('base64url') === grant.challenge;
        if (!ok || grant === undefined) {
          res.writeHead(400, cors);
          return void res.end(JSON.stringify({ error: 'invalid_grant' }));
        }
        const now = Math.floor(Date.now() / 1000);
        const idToken = await new SignJWT({ ...users[grant.user], nonce: grant.nonce })
          .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
          .setIssuer(issuer)
          .setAudience(grant.clientId)
          .setSubject(grant.user)
          .setIssuedAt(now)
          .setExpirationTime(now + grant.lifetimeSeconds)
          .sign(key.privateKey);
        res.writeHead(200, cors);
        return void res.end(JSON.stringify({ id_token: idToken, token_type: 'Bearer', expires_in: grant.lifetimeSeconds }));
      }
      res.writeHead(404).end();
    })().catch((e: unknown) => {
      res.writeHead(500).end(String(e));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    issuer,
    clientId,
    allowRedirect: (uri) => void redirects.add(uri),
    tokenRequests,
    logoutRequests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
