import { ErrorCode, FleetError, type Identity } from '../../protocol/index.ts';
import type { OidcVerifier } from './oidc.ts';
import { TOKEN_PREFIX, verifyToken, type TokenStore } from './tokens.ts';

/** Far above any real ID token (a few KiB); refusing early keeps hashing and decoding cheap. */
const MAX_HEADER_LENGTH = 16 * 1024;
/** RFC 7235: the scheme is case-insensitive. The token itself is never put in a message. */
const BEARER = /^bearer +([^\s]+) *$/i;
/** Every JWT starts with a base64url JSON object: `{"` encodes as `eyJ`. */
const JWT_PREFIX = 'eyJ';

export interface AuthenticatorOptions {
  /** share one CachedTokenStore with the token endpoints, so a revocation here applies at once */
  tokens: TokenStore;
  /** absent: OIDC tokens are refused */
  oidc?: OidcVerifier;
  now?: () => number;
}

/** The one way an HTTP request (or CLI call) becomes an Identity. */
export class Authenticator {
  private readonly now: () => number;

  constructor(private readonly options: AuthenticatorOptions) {
    this.now = options.now ?? Date.now;
  }

  async authenticate(authorizationHeader: string | undefined): Promise<Identity> {
    if (authorizationHeader === undefined || authorizationHeader.trim() === '') {
      throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'missing bearer token');
    }
    if (authorizationHeader.length > MAX_HEADER_LENGTH) throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'bearer token too long');
    const token = BEARER.exec(authorizationHeader)?.[1];
    if (token === undefined) throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'expected "Authorization: Bearer <token>"');
    if (token.startsWith(TOKEN_PREFIX)) return verifyToken(this.options.tokens, token, this.now());
    if (token.startsWith(JWT_PREFIX)) {
      if (this.options.oidc === undefined) throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'OIDC tokens are not accepted here');
      return this.options.oidc.verify(token);
    }
    throw new FleetError(ErrorCode.E_UNAUTHENTICATED, 'unrecognized bearer token: expected an API token (flt_…) or an OIDC ID token');
  }
}
