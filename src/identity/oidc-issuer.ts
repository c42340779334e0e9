import type { IssuerConfig } from '../config/schema.js';
import { AuthenticationError, SluiceError } from '../errors.js';
import { isAsymmetricAlgorithm } from './algorithms.js';
import { principalFromClaims } from './claims.js';
import type { Principal } from './principal.js';
import { RemoteJwks } from './remote-jwks.js';
import { peekToken, quoteUntrusted } from './unverified.js';
import { verifyJwt } from './verify-jwt.js';

export interface OidcIssuerOptions {
  readonly clockSkewSeconds: number;
  /** Prefix for group names; default the issuer's `group_prefix`, else none. */
  readonly groupPrefix?: string;
  /** Epoch milliseconds; tests move time without sleeping. */
  readonly now?: () => number;
}

/**
 * Verifies tokens of one configured OIDC issuer: exact iss, required aud,
 * exp and sub, algorithms from configuration only, keys from its JWKS only.
 */
export class OidcIssuer {
  readonly name: string;
  readonly issuer: string;
  readonly #cfg: IssuerConfig;
  readonly #algorithms: ReadonlySet<string>;
  readonly #jwks: RemoteJwks;
  readonly #skew: number;
  readonly #prefix: string;
  readonly #now: () => number;

  constructor(cfg: IssuerConfig, opts: OidcIssuerOptions) {
    const bad = cfg.algorithms.filter((a) => !isAsymmetricAlgorithm(a));
    if (bad.length > 0 || cfg.algorithms.length === 0) {
      throw new SluiceError('issuer_config_invalid', `issuer ${cfg.name}: algorithms must be asymmetric JWS algorithms (RS*, PS*, ES*, EdDSA)`);
    }
    this.name = cfg.name;
    this.issuer = cfg.issuer;
    this.#cfg = cfg;
    this.#algorithms = new Set(cfg.algorithms);
    this.#skew = opts.clockSkewSeconds;
    this.#prefix = opts.groupPrefix ?? cfg.group_prefix ?? '';
    this.#now = opts.now ?? Date.now;
    this.#jwks = new RemoteJwks({
      issuer: cfg.issuer,
      jwksUri: cfg.jwks_uri,
      cacheSeconds: cfg.jwks_cache,
      cooldownSeconds: cfg.jwks_cooldown,
      timeoutSeconds: cfg.http_timeout,
      now: this.#now,
    });
  }

  async verify(token: string): Promise<Principal> {
    const { header, payload } = peekToken(token);
    if (payload.iss !== this.issuer) {
      throw new AuthenticationError('issuer_unknown', `the token issuer ${quoteUntrusted(payload.iss)} is not ${this.issuer}; get a token from that issuer`);
    }
    if (!this.#algorithms.has(header.alg)) {
      throw new AuthenticationError(
        'algorithm_not_allowed',
        `the token is signed with ${isAsymmetricAlgorithm(header.alg) ? header.alg : 'an algorithm Sluice never accepts'}, but issuer ${this.name} allows only ${[...this.#algorithms].join(', ')}; get a token from ${this.issuer}`,
      );
    }
    const keys = await this.#jwks.keysFor(header.alg, header.kid);
    const verified = await verifyJwt(token, keys, {
      issuer: this.issuer,
      audience: this.#cfg.audience,
      alg: header.alg,
      clockSkewSeconds: this.#skew,
      now: this.#now(),
    });
    return principalFromClaims(verified, {
      issuer: this.issuer,
      kind: this.#cfg.kind,
      groupsClaim: this.#cfg.groups_claim,
      groupPrefix: this.#prefix,
    });
  }
}
