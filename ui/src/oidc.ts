import { token } from './api.ts';

/**
 * Sign-in at an OIDC issuer: authorization code with PKCE (RFC 7636), the console being a public
 * client (it holds no secret). The ID token that comes back is the bearer token for the API, kept
 * like a pasted one in this tab's sessionStorage; the API verifies it (signature, issuer,
 * audience, expiry) on every call. What the console checks here is only what the API cannot:
 * that the answer belongs to the sign-in this tab started (state, nonce).
 */

/** One issuer the console may use (coordinator/console-login.ts ConsoleLogin). */
export interface OidcLogin {
  issuer: string;
  clientId: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  endSessionEndpoint?: string;
}

/** The sign-in under way, between leaving for the issuer and coming back to the callback. */
interface Pending {
  login: OidcLogin;
  verifier: string;
  state: string;
  nonce: string;
  /** the console address to return to (with its #L… line) */
  back: string;
}

const PENDING_KEY = 'fleet.oidc.pending';
const EXPIRES_KEY = 'fleet.token.expires';
/** The issuer the token came from, when it publishes an end_session_endpoint (for Sign out). */
const ISSUER_SESSION_KEY = 'fleet.oidc.session';
export const CALLBACK_PATH = '/ui/oidc-callback';

const base64url = (bytes: Uint8Array): string => btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const random = (n = 32): string => base64url(crypto.getRandomValues(new Uint8Array(n)));

export async function logins(): Promise<OidcLogin[]> {
  const res = await fetch('/ui/login.json');
  if (!res.ok) return [];
  return ((await res.json()) as { oidc: OidcLogin[] }).oidc;
}

/** Leaves for the issuer's login page. */
export async function startLogin(login: OidcLogin): Promise<void> {
  const verifier = random();
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  const pending: Pending = { login, verifier, state: random(16), nonce: random(16), back: location.pathname + location.search + location.hash };
  sessionStorage.setItem(PENDING_KEY, JSON.stringify(pending));
  const url = new URL(login.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: login.clientId,
    redirect_uri: location.origin + CALLBACK_PATH,
    scope: 'openid',
    state: pending.state,
    nonce: pending.nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/** The claims of a JWT, unverified (the API verifies it; the console reads `nonce` and `exp`). */
function claimsOf(jwt: string): { nonce?: unknown; exp?: unknown } {
  const part = jwt.split('.')[1] ?? '';
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
  return JSON.parse(json) as { nonce?: unknown; exp?: unknown };
}

/**
 * On the callback page: trades the code for the ID token and keeps it. Returns where to go back
 * to; throws (with a message for the person) when the answer is not for this tab's sign-in.
 */
export async function finishLogin(search: string): Promise<string> {
  const params = new URLSearchParams(search);
  const raw = sessionStorage.getItem(PENDING_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  if (params.get('error') !== null) throw new Error(`The issuer refused the sign-in: ${params.get('error') ?? ''} ${params.get('error_description') ?? ''}`.trim());
  if (raw === null) throw new Error('No sign-in was started in this tab (or it was already finished). Sign in again.');
  const pending = JSON.parse(raw) as Pending;
  const code = params.get('code');
  if (code === null || params.get('state') !== pending.state) throw new Error('This answer is not for the sign-in this tab started. Sign in again.');
  const res = await fetch(pending.login.tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: location.origin + CALLBACK_PATH, client_id: pending.login.clientId, code_verifier: pending.verifier }),
  });
  if (!res.ok) throw new Error(`The issuer's token endpoint answered ${res.status}. Sign in again.`);
  const body = (await res.json()) as { id_token?: unknown };
  if (typeof body.id_token !== 'string') throw new Error('The issuer sent no ID token.');
  const claims = claimsOf(body.id_token);
  if (claims.nonce !== pending.nonce) throw new Error('The ID token is not for the sign-in this tab started. Sign in again.');
  token.set(body.id_token);
  if (typeof claims.exp === 'number') sessionStorage.setItem(EXPIRES_KEY, String(claims.exp * 1000));
  if (pending.login.endSessionEndpoint !== undefined) {
    sessionStorage.setItem(ISSUER_SESSION_KEY, JSON.stringify({ endSessionEndpoint: pending.login.endSessionEndpoint, clientId: pending.login.clientId }));
  }
  return pending.back;
}

/** When the token in use expires (ms since the epoch), if it is an ID token that says so. */
export function expiresAt(): number | null {
  const at = Number(sessionStorage.getItem(EXPIRES_KEY) ?? NaN);
  return Number.isFinite(at) ? at : null;
}

/**
 * Where to send the browser to end the issuer's own session too (OpenID Connect RP-Initiated
 * Logout 1.0), for a token from an issuer that publishes an `end_session_endpoint`; null for a
 * pasted token or an issuer without one. Read before signOut(), which forgets the token it names.
 */
export function issuerLogoutUrl(): string | null {
  const raw = sessionStorage.getItem(ISSUER_SESSION_KEY);
  const idToken = token.get();
  if (raw === null || idToken === null) return null;
  const { endSessionEndpoint, clientId } = JSON.parse(raw) as { endSessionEndpoint: string; clientId: string };
  const url = new URL(endSessionEndpoint);
  url.searchParams.set('id_token_hint', idToken);
  url.searchParams.set('client_id', clientId);
  url.searchParams.set('post_logout_redirect_uri', `${location.origin}/ui/`);
  return url.toString();
}

/** Forgets the session's token, pasted or from an issuer (issuerLogoutUrl() ends the issuer's own). */
export function signOut(): void {
  token.clear();
  sessionStorage.removeItem(EXPIRES_KEY);
  sessionStorage.removeItem(PENDING_KEY);
  sessionStorage.removeItem(ISSUER_SESSION_KEY);
}
