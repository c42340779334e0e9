import type { IssuerConfig } from '../config/schema.js';
import { AuthenticationError, ConfigError } from '../errors.js';
import type { DevIssuer } from './dev-issuer.js';
import { OidcIssuer } from './oidc-issuer.js';
import type { Authenticator, Principal } from './principal.js';
import { peekToken, quoteUntrusted } from './unverified.js';

export interface TokenAuthenticatorOptions {
  readonly issuers: readonly IssuerConfig[];
  readonly clockSkewSeconds: number;
  readonly devIssuer?: DevIssuer;
  /**
   * The authenticator this one replaces (configuration reload): issuers
   * configured exactly as before keep their verifier, and with it the keys
   * already fetched, so a reload during an IdP outage does not lock people out.
   */
  readonly previous?: TokenAuthenticator;
  /** Epoch milliseconds; tests move time without sleeping. */
  readonly now?: () => number;
}

type Verify = (token: string) => Promise<Principal>;

/**
 * Turns a bearer token into a Principal. The unverified `iss` only selects
 * which issuer verifies (exact map lookup, no normalisation); everything
 * else is decided by that issuer's full verification. Every failure, ours or
 * a library's, leaves as an AuthenticationError that never quotes the token.
 */
export class TokenAuthenticator implements Authenticator {
  readonly #byIssuer = new Map<string, Verify>();
  /** Verifiers by everything they were built from, for `previous` of the next authenticator. */
  readonly #verifiers = new Map<string, OidcIssuer>();

  constructor(opts: TokenAuthenticatorOptions) {
    const several = opts.issuers.length + (opts.devIssuer ? 1 : 0) > 1;
    const problems: { path: string; message: string }[] = [];
    opts.issuers.forEach((cfg, i) => {
      if (this.#byIssuer.has(cfg.issuer)) {
        problems.push({ path: `identity.issuers[${i}].issuer`, message: `issuer ${cfg.issuer} is configured twice` });
        return;
      }
      if (opts.devIssuer && cfg.name === opts.devIssuer.name) {
        problems.push({ path: `identity.issuers[${i}].name`, message: `the name ${cfg.name} is taken by the dev issuer; choose another` });
      }
      const groupPrefix = cfg.group_prefix ?? (several ? `${cfg.name}:` : '');
      const key = JSON.stringify([cfg, opts.clockSkewSeconds, groupPrefix]);
      const issuer = (opts.previous ? opts.previous.#verifiers.get(key) : undefined) ?? new OidcIssuer(cfg, { clockSkewSeconds: opts.clockSkewSeconds, groupPrefix, now: opts.now });
      this.#verifiers.set(key, issuer);
      this.#byIssuer.set(cfg.issuer, (token) => issuer.verify(token));
    });
    const dev = opts.devIssuer;
    if (dev) {
      if (this.#byIssuer.has(dev.issuer)) {
        problems.push({ path: 'identity.dev_issuer', message: `the dev issuer ${dev.issuer} is also a configured issuer; use a different URL` });
      }
      const prefix = several ? `${dev.name}:` : '';
      this.#byIssuer.set(dev.issuer, async (token) => {
        const p = await dev.verify(token, opts.clockSkewSeconds);
        return prefix ? { ...p, groups: p.groups.map((g) => prefix + g) } : p;
      });
    }
    if (problems.length > 0) throw new ConfigError(problems);
  }

  async authenticate(token: string): Promise<Principal> {
    try {
      const { payload } = peekToken(token);
      if (typeof payload.iss !== 'string') {
        throw new AuthenticationError('claim_missing', 'the token has no iss claim; send an access token from a configured issuer');
      }
      const verify = this.#byIssuer.get(payload.iss);
      if (!verify) throw this.#unknownIssuer(payload.iss);
      return await verify(token);
    } catch (err) {
      if (err instanceof AuthenticationError) throw err;
      throw new AuthenticationError('signature_invalid', 'the token could not be verified; get a new token from a configured issuer');
    }
  }

  /** Issuers are compared exactly; a near miss (case, trailing slash) gets a hint, since it is the usual mistake. */
  #unknownIssuer(iss: string): AuthenticationError {
    const loose = (s: string): string => s.toLowerCase().replace(/\/+$/, '');
    const near = [...this.#byIssuer.keys()].find((known) => loose(known) === loose(iss));
    const hint = near ? `; issuers are compared exactly and the configured one is ${JSON.stringify(near)}` : '; get a token from a configured issuer';
    return new AuthenticationError('issuer_unknown', `Sluice does not trust the token issuer ${quoteUntrusted(iss)}${hint}`);
  }
}
