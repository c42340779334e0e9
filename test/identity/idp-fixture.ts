import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload, type JWTHeaderParameters } from 'jose';
import { configSchema, type IssuerConfig } from '../../src/config/schema.js';
import { AuthenticationError } from '../../src/errors.js';

/**
 * A hand-built IdP for tests that need control the real provider does not
 * give: it publishes whatever JWKS and discovery document a test sets, counts
 * every fetch, can answer with errors, hang, or go away and come back on the
 * same port. Tokens are signed by the test with keys from `testKey`.
 */
export interface FixtureIdp {
  readonly issuer: string;
  readonly jwksUri: string;
  readonly fetches: { jwks: number; discovery: number };
  keys: JWK[];
  /** What discovery returns as `issuer` (default: the real one). */
  discoveryIssuer: string;
  mode: 'ok' | 'error' | 'hang' | 'redirect' | 'huge';
  stop(): Promise<void>;
  /** Starts again on the same port after stop(). */
  restart(): Promise<void>;
}

export async function startFixtureIdp(): Promise<FixtureIdp> {
  let server: Server | undefined;
  let port = 0;
  const state = {
    keys: [] as JWK[],
    discoveryIssuer: '',
    mode: 'ok' as FixtureIdp['mode'],
    fetches: { jwks: 0, discovery: 0 },
  };
  const listen = async (): Promise<void> => {
    const s = createServer((req, res) => {
      const isJwks = req.url === '/jwks';
      const isDiscovery = req.url === '/.well-known/openid-configuration';
      if (isJwks) state.fetches.jwks++;
      if (isDiscovery) state.fetches.discovery++;
      if (!isJwks && !isDiscovery) {
        res.statusCode = 404;
        res.end();
        return;
      }
      if (state.mode === 'hang') return;
      if (state.mode === 'error') {
        res.statusCode = 500;
        res.end('{"error":"down"}');
        return;
      }
      if (state.mode === 'redirect') {
        res.writeHead(302, { location: 'http://127.0.0.1:9/elsewhere' });
        res.end();
        return;
      }
      res.setHeader('content-type', 'application/json');
      if (state.mode === 'huge' && isJwks) {
        res.end(JSON.stringify({ keys: state.keys, padding: 'x'.repeat(1024 * 1024) }));
        return;
      }
      res.end(JSON.stringify(isJwks ? { keys: state.keys } : { issuer: state.discoveryIssuer, jwks_uri: `${base()}/jwks` }));
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  };
  const base = (): string => `http://127.0.0.1:${port}`;
  await listen();
  state.discoveryIssuer = base();
  return {
    issuer: base(),
    jwksUri: `${base()}/jwks`,
    fetches: state.fetches,
    get keys() {
      return state.keys;
    },
    set keys(k: JWK[]) {
      state.keys = k;
    },
    get discoveryIssuer() {
      return state.discoveryIssuer;
    },
    set discoveryIssuer(v: string) {
      state.discoveryIssuer = v;
    },
    get mode() {
      return state.mode;
    },
    set mode(m: FixtureIdp['mode']) {
      state.mode = m;
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    },
    restart: listen,
  };
}

export interface TestKey {
  readonly alg: string;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicJwk: JWK;
}

export async function testKey(alg: 'RS256' | 'ES256' | 'ES384' | 'PS256' | 'EdDSA', kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { alg, kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

/** Signs claims as given (no defaults are added), with the key's alg and kid unless the header overrides them. */
export function sign(key: TestKey, claims: JWTPayload, header: Partial<JWTHeaderParameters> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...header }).sign(key.privateKey);
}

/** Standard valid claims for an issuer at a given time (epoch seconds). */
export function claimsFor(issuer: string, audience: string, nowSeconds: number, extra: JWTPayload = {}): JWTPayload {
  return { iss: issuer, aud: audience, sub: 'user-1', iat: nowSeconds, exp: nowSeconds + 300, ...extra };
}

/** An IssuerConfig with the schema's own defaults filled in. */
export function issuerConfig(raw: Record<string, unknown>): IssuerConfig {
  return configSchema.parse({ identity: { issuers: [{ name: 'corp', audience: 'sluice', ...raw }] } }).identity.issuers[0];
}

/** A clock tests move by hand (epoch milliseconds). */
export function manualClock(startMs = Date.UTC(2026, 0, 15, 12)): { now: () => number; advance(seconds: number): void; seconds(): number } {
  let t = startMs;
  return {
    now: () => t,
    advance(seconds: number) {
      t += seconds * 1000;
    },
    seconds: () => Math.floor(t / 1000),
  };
}

export function b64url(value: unknown): string {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
}

export const AUTH_ERROR_CODES = [
  'token_malformed',
  'issuer_unknown',
  'issuer_unavailable',
  'algorithm_not_allowed',
  'signature_invalid',
  'key_unknown',
  'audience_mismatch',
  'token_expired',
  'token_not_yet_valid',
  'claim_missing',
] as const;

/** Awaits a promise that must fail with an AuthenticationError, and returns that error. */
export async function authFailure(promise: Promise<unknown>): Promise<AuthenticationError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof AuthenticationError) return err;
    throw new Error(`expected an AuthenticationError, got ${String(err)}`);
  }
  throw new Error('expected an AuthenticationError, but the token was accepted');
}
