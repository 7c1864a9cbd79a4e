import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseWith } from '../protocol/index.ts';
import type { Logger } from '../adapters/logger.ts';
import { OidcConfig } from './auth/oidc.ts';

/**
 * What the console needs to sign a person in at an issuer (authorization code + PKCE, as a public
 * client): the ID token it gets back is verified by the API like any other (coordinator/auth/oidc.ts).
 * The client id is the issuer's configured `audience`: an ID token's `aud` is the client it was issued to.
 */
export const ConsoleLogin = z.object({
  issuer: z.string(),
  clientId: z.string(),
  authorizationEndpoint: z.url(),
  tokenEndpoint: z.url(),
  endSessionEndpoint: z.url().optional(),
});
export type ConsoleLogin = z.infer<typeof ConsoleLogin>;

/** The parts of an issuer's discovery document (OpenID Connect Discovery 1.0 §3) the console uses. */
const Discovery = z.looseObject({
  issuer: z.string(),
  authorization_endpoint: z.url().optional(),
  token_endpoint: z.url().optional(),
  end_session_endpoint: z.url().optional(),
});

/** A discovery answer is kept this long; a failed one is asked again after RETRY_MS. */
const DISCOVERY_TTL_MS = 10 * 60_000;
const DISCOVERY_TIMEOUT_MS = 5_000;
const RETRY_MS = 30_000;

/**
 * The OIDC issuers a person can sign in with in the browser: every trusted issuer (the platform's
 * OIDC file) whose discovery document names an authorization and a token endpoint. A CI issuer
 * (GitHub Actions' and the like) has none, so it is not offered.
 */
export class ConsoleLogins {
  private cache: { at: number; logins: ConsoleLogin[] } | null = null;

  constructor(
    private readonly issuers: readonly { issuer: string; audience: string }[],
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** From the coordinator's OIDC file (`platform.oidcPath`); none configured: no browser login. */
  static async fromFile(path: string | undefined, log: Logger): Promise<ConsoleLogins> {
    if (path === undefined) return new ConsoleLogins([], log);
    const config = parseWith(OidcConfig, JSON.parse(await readFile(path, 'utf8')), 'OIDC config');
    return new ConsoleLogins(config.map((i) => ({ issuer: i.issuer, audience: i.audience })), log);
  }

  async list(signal?: AbortSignal): Promise<ConsoleLogin[]> {
    if (this.issuers.length === 0) return [];
    if (this.cache !== null && this.now() - this.cache.at < DISCOVERY_TTL_MS) return this.cache.logins;
    let complete = true;
    const found = await Promise.all(
      this.issuers.map(async (i): Promise<ConsoleLogin | null> => {
        try {
          const d = await discover(i.issuer, signal);
          if (d.authorization_endpoint === undefined || d.token_endpoint === undefined) return null;
          return {
            issuer: i.issuer,
            clientId: i.audience,
            authorizationEndpoint: d.authorization_endpoint,
            tokenEndpoint: d.token_endpoint,
            ...(d.end_session_endpoint === undefined ? {} : { endSessionEndpoint: d.end_session_endpoint }),
          };
        } catch (e) {
          complete = false;
          this.log.warn({ err: e, issuer: i.issuer }, 'cannot read the OIDC discovery document; its browser login is not offered for now');
          return null;
        }
      }),
    );
    const logins = found.filter((l): l is ConsoleLogin => l !== null);
    // An issuer that did not answer is asked again soon, not on every page load (each would wait for it).
    this.cache = { at: complete ? this.now() : this.now() - DISCOVERY_TTL_MS + RETRY_MS, logins };
    return logins;
  }
}

async function discover(issuer: string, signal?: AbortSignal): Promise<z.infer<typeof Discovery>> {
  const timeout = AbortSignal.timeout(DISCOVERY_TIMEOUT_MS);
  const res = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { signal: signal === undefined ? timeout : AbortSignal.any([signal, timeout]) });
  if (!res.ok) throw new Error(`discovery answered ${res.status}`);
  const d = parseWith(Discovery, await res.json(), `discovery document of ${issuer}`);
  // OIDC Discovery §4.3: the document must name the issuer it was asked for.
  if (d.issuer !== issuer) throw new Error(`discovery document names issuer ${d.issuer}, not ${issuer}`);
  return d;
}
