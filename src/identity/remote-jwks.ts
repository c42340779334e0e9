import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { AuthenticationError } from '../errors.js';
import { FetchFailure, fetchJson } from './fetch-json.js';
import { keyFitsAlgorithm } from './algorithms.js';
import { quoteUntrusted } from './unverified.js';

export interface RemoteJwksOptions {
  /** Configured issuer; discovery must return exactly this. */
  readonly issuer: string;
  /** Explicit JWKS URL; when absent, found by OpenID discovery. */
  readonly jwksUri?: string;
  readonly cacheSeconds: number;
  readonly cooldownSeconds: number;
  readonly timeoutSeconds: number;
  /** Epoch milliseconds. */
  readonly now: () => number;
}

interface JwksEntry {
  readonly kid: string | undefined;
  readonly alg: string | undefined;
  readonly key: KeyObject;
}

const MAX_KEYS = 100;
/** After a failed fetch, requests fail fast for this long (at most the cooldown) instead of each hitting a down IdP. */
const MAX_FAILURE_BACKOFF_SECONDS = 5;

/**
 * The verification keys of one issuer, fetched only from its configured or
 * discovered JWKS URL. Keys are cached for `cacheSeconds`; an unknown kid
 * triggers a refetch at most once per `cooldownSeconds`. When keys cannot be
 * fetched (and the cache is empty or stale) verification fails closed; the
 * next request after the backoff tries again, so service recovers on its own.
 */
export class RemoteJwks {
  readonly #opts: RemoteJwksOptions;
  #discoveredUri: string | undefined;
  #keys: readonly JwksEntry[] | undefined;
  #fetchedAt = Number.NEGATIVE_INFINITY;
  #failedAt = Number.NEGATIVE_INFINITY;
  #failure = '';
  #pending: Promise<void> | undefined;

  constructor(opts: RemoteJwksOptions) {
    this.#opts = opts;
  }

  /** Keys that may have signed a token with this alg and kid; throws key_unknown or issuer_unavailable. */
  async keysFor(alg: string, kid: string | undefined): Promise<KeyObject[]> {
    const { cacheSeconds, cooldownSeconds, now } = this.#opts;
    if (!this.#keys || now() - this.#fetchedAt >= cacheSeconds * 1000) await this.#refresh();
    let found = this.#match(alg, kid);
    if (found.length === 0 && now() - this.#fetchedAt >= cooldownSeconds * 1000) {
      await this.#refresh();
      found = this.#match(alg, kid);
    }
    if (found.length === 0) {
      const which = kid === undefined ? `no ${alg} key` : `no key with the token's kid for ${alg}`;
      throw new AuthenticationError(
        'key_unknown',
        `issuer ${this.#opts.issuer} publishes ${which}; get a new token (if the issuer just rotated keys, retry in ${cooldownSeconds} s)`,
      );
    }
    return found;
  }

  #match(alg: string, kid: string | undefined): KeyObject[] {
    return (this.#keys ?? [])
      .filter((e) => (kid === undefined || e.kid === kid) && (e.alg === undefined || e.alg === alg) && keyFitsAlgorithm(e.key, alg))
      .map((e) => e.key);
  }

  #refresh(): Promise<void> {
    if (this.#pending) return this.#pending;
    const backoff = Math.min(this.#opts.cooldownSeconds, MAX_FAILURE_BACKOFF_SECONDS) * 1000;
    if (this.#opts.now() - this.#failedAt < backoff) return Promise.reject(this.#unavailable(this.#failure));
    this.#pending = this.#load().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #load(): Promise<void> {
    let uri = this.#opts.jwksUri ?? this.#discoveredUri;
    try {
      uri ??= this.#discoveredUri = await this.#discover();
      this.#keys = parseJwks(await fetchJson(uri, this.#opts.timeoutSeconds));
      this.#fetchedAt = this.#opts.now();
    } catch (err) {
      this.#failedAt = this.#opts.now();
      this.#discoveredUri = undefined;
      const detail = err instanceof FetchFailure ? err.reason : err instanceof Error ? err.message : 'unknown error';
      this.#failure = uri ? `fetching keys from ${uri} failed: ${detail}` : detail;
      throw this.#unavailable(this.#failure, err);
    }
  }

  async #discover(): Promise<string> {
    const url = `${this.#opts.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
    let doc: unknown;
    try {
      doc = await fetchJson(url, this.#opts.timeoutSeconds);
    } catch (err) {
      throw new Error(`OpenID discovery at ${url} failed: ${err instanceof FetchFailure ? err.reason : 'unknown error'}`, { cause: err });
    }
    const meta = (typeof doc === 'object' && doc !== null ? doc : {}) as Record<string, unknown>;
    if (meta.issuer !== this.#opts.issuer) {
      throw new Error(
        `OpenID discovery at ${url} names issuer ${quoteUntrusted(meta.issuer)}, not the configured ${JSON.stringify(this.#opts.issuer)}; the issuer setting must match the IdP byte for byte`,
      );
    }
    if (typeof meta.jwks_uri !== 'string' || !/^https?:$/.test(URL.parse(meta.jwks_uri)?.protocol ?? '')) {
      throw new Error(`OpenID discovery at ${url} has no usable jwks_uri; set jwks_uri for this issuer`);
    }
    return meta.jwks_uri;
  }

  #unavailable(detail: string, cause?: unknown): AuthenticationError {
    return new AuthenticationError(
      'issuer_unavailable',
      `cannot get the signing keys of issuer ${this.#opts.issuer} (${detail}); retry shortly, and tell the Sluice operator if it persists`,
      cause === undefined ? undefined : { cause },
    );
  }
}

/** Keeps the keys that can verify signatures; symmetric, encryption-only and unparsable keys are dropped. */
function parseJwks(doc: unknown): JwksEntry[] {
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new FetchFailure('response is not a JWKS (no keys array)');
  const entries: JwksEntry[] = [];
  for (const jwk of keys.slice(0, MAX_KEYS)) {
    if (typeof jwk !== 'object' || jwk === null) continue;
    const { kty, use, key_ops: ops, kid, alg } = jwk as Record<string, unknown>;
    if (kty !== 'RSA' && kty !== 'EC' && kty !== 'OKP') continue;
    if (use !== undefined && use !== 'sig') continue;
    if (ops !== undefined && !(Array.isArray(ops) && ops.includes('verify'))) continue;
    if ((kid !== undefined && typeof kid !== 'string') || (alg !== undefined && typeof alg !== 'string')) continue;
    const key = importPublic(jwk as Record<string, unknown>);
    if (key) entries.push({ kid, alg, key });
  }
  return entries;
}

function importPublic(jwk: Record<string, unknown>): KeyObject | undefined {
  // Only public members go in, so a JWKS that leaks private parts never yields a private key object.
  const publicPart: JsonWebKey = {};
  for (const member of ['kty', 'crv', 'n', 'e', 'x', 'y']) {
    if (typeof jwk[member] === 'string') publicPart[member] = jwk[member];
  }
  try {
    return createPublicKey({ key: publicPart, format: 'jwk' });
  } catch {
    return undefined;
  }
}
