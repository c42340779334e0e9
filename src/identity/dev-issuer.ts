import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { AuthenticationError, SluiceError } from '../errors.js';
import type { Keyring } from '../keys/keyring.js';
import { principalFromClaims } from './claims.js';
import type { Principal } from './principal.js';
import { peekToken, quoteUntrusted } from './unverified.js';
import { verifyJwt } from './verify-jwt.js';

export interface DevIssuerOptions {
  readonly issuer: string;
  readonly audience: string;
  readonly ttlSeconds: number;
  /** Epoch milliseconds; tests move time without sleeping. */
  readonly now?: () => number;
}

export interface DevTokenRequest {
  readonly subject: string;
  readonly groups?: string[];
  readonly kind?: 'person' | 'machine';
  readonly claims?: Record<string, unknown>;
  readonly ttlSeconds?: number;
}

/** Claims the issuer always sets itself; a request cannot supply them. */
const RESERVED = new Set(['iss', 'sub', 'aud', 'iat', 'nbf', 'exp', 'jti']);
const GROUPS_CLAIM = 'groups';
const KIND_CLAIM = 'kind';

/**
 * The built-in development issuer (quick start): mints tokens with the
 * keyring's current key and verifies only against the keyring's keys, so a
 * token from anywhere else can never pass as a dev token.
 */
export class DevIssuer {
  readonly name = 'dev';
  readonly issuer: string;
  readonly #keyring: Keyring;
  readonly #opts: DevIssuerOptions;
  readonly #now: () => number;

  constructor(keyring: Keyring, opts: DevIssuerOptions) {
    this.#keyring = keyring;
    this.#opts = opts;
    this.issuer = opts.issuer;
    this.#now = opts.now ?? Date.now;
  }

  async mint(req: DevTokenRequest): Promise<string> {
    if (typeof req.subject !== 'string' || req.subject.length === 0) {
      throw new SluiceError('dev_token_invalid', 'a dev token needs a subject; pass the user or machine name');
    }
    const ttl = req.ttlSeconds ?? this.#opts.ttlSeconds;
    if (!Number.isFinite(ttl) || ttl <= 0) {
      throw new SluiceError('dev_token_invalid', 'a dev token needs a positive lifetime in seconds');
    }
    const claims: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(req.claims ?? {})) if (!RESERVED.has(name)) claims[name] = value;
    if (req.groups) claims[GROUPS_CLAIM] = [...req.groups];
    claims[KIND_CLAIM] = req.kind ?? (claims[KIND_CLAIM] === 'machine' ? 'machine' : 'person');
    const key = this.#keyring.current;
    const iat = Math.floor(this.#now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setSubject(req.subject)
      .setAudience(this.#opts.audience)
      .setIssuedAt(iat)
      .setExpirationTime(iat + Math.ceil(ttl))
      .setJti(randomUUID())
      .sign(key.privateKey);
  }

  /** Verifies a dev token; groups come back unprefixed (the authenticator adds `dev:` when several issuers are configured). */
  async verify(token: string, clockSkewSeconds: number): Promise<Principal> {
    const { header, payload } = peekToken(token);
    if (payload.iss !== this.issuer) {
      throw new AuthenticationError('issuer_unknown', `the token issuer ${quoteUntrusted(payload.iss)} is not the dev issuer ${this.issuer}; mint a dev token`);
    }
    const keys = this.#keyring.all;
    const algorithms = [...new Set(keys.map((k) => k.alg))];
    if (!(algorithms as string[]).includes(header.alg)) {
      throw new AuthenticationError(
        'algorithm_not_allowed',
        `dev tokens are signed with ${algorithms.join(', ')}, not ${quoteUntrusted(header.alg)}; mint a new dev token`,
      );
    }
    const key = keys.find((k) => k.kid === header.kid && k.alg === header.alg);
    if (!key) {
      throw new AuthenticationError('key_unknown', 'the dev token was not signed by a key of this Sluice; mint a new dev token');
    }
    const verified = await verifyJwt(token, [key.publicKey], {
      issuer: this.issuer,
      audience: this.#opts.audience,
      alg: key.alg,
      clockSkewSeconds,
      now: this.#now(),
    });
    return principalFromClaims(verified, {
      issuer: this.issuer,
      kind: verified[KIND_CLAIM] === 'machine' ? 'machine' : 'person',
      groupsClaim: GROUPS_CLAIM,
      groupPrefix: '',
    });
  }
}
