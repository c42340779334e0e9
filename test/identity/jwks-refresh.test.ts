import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OidcIssuer } from '../../src/identity/oidc-issuer.js';
import { authFailure, claimsFor, issuerConfig, manualClock, sign, startFixtureIdp, testKey, type FixtureIdp, type TestKey } from './idp-fixture.js';

const AUDIENCE = 'sluice';
let idp: FixtureIdp;
let key: TestKey;
let clock: ReturnType<typeof manualClock>;

beforeEach(async () => {
  idp = await startFixtureIdp();
  key = await testKey('ES256', 'k1');
  idp.keys = [key.publicJwk];
  clock = manualClock();
});
afterEach(async () => {
  await idp.stop();
});

function issuer(raw: Record<string, unknown> = {}): OidcIssuer {
  return new OidcIssuer(issuerConfig({ issuer: idp.issuer, audience: AUDIENCE, algorithms: ['ES256'], ...raw }), {
    clockSkewSeconds: 60,
    now: clock.now,
  });
}

const tokenFrom = (k: TestKey) => sign(k, claimsFor(idp.issuer, AUDIENCE, clock.seconds()));

describe('JWKS fetching', () => {
  it('discovers the JWKS once and serves later tokens from the cache', async () => {
    const iss = issuer();
    for (let i = 0; i < 5; i++) await iss.verify(await tokenFrom(key));
    expect(idp.fetches).toEqual({ discovery: 1, jwks: 1 });
  });

  it('never fetches discovery when jwks_uri is configured', async () => {
    await issuer({ jwks_uri: idp.jwksUri }).verify(await tokenFrom(key));
    expect(idp.fetches).toEqual({ discovery: 0, jwks: 1 });
  });

  it('fetches once for many concurrent first requests', async () => {
    const iss = issuer({ jwks_uri: idp.jwksUri });
    const token = await tokenFrom(key);
    await Promise.all(Array.from({ length: 20 }, () => iss.verify(token)));
    expect(idp.fetches.jwks).toBe(1);
  });

  it('refetches on an unknown kid, at most once per cooldown', async () => {
    const iss = issuer({ jwks_uri: idp.jwksUri, jwks_cooldown: 30 });
    await iss.verify(await tokenFrom(key));
    const rotated = await testKey('ES256', 'k2');
    idp.keys = [key.publicJwk, rotated.publicJwk];

    clock.advance(10);
    const early = await authFailure(iss.verify(await tokenFrom(rotated)));
    expect(early.code).toBe('key_unknown');
    expect(early.message).toContain('retry in 30 s');
    expect(idp.fetches.jwks).toBe(1);

    clock.advance(21);
    await expect(iss.verify(await tokenFrom(rotated))).resolves.toMatchObject({ subject: 'user-1' });
    expect(idp.fetches.jwks).toBe(2);

    for (let i = 0; i < 10; i++) {
      clock.advance(1);
      const stranger = await testKey('ES256', `unknown-${i}`);
      expect((await authFailure(iss.verify(await tokenFrom(stranger)))).code).toBe('key_unknown');
    }
    expect(idp.fetches.jwks).toBe(2);
    clock.advance(30);
    expect((await authFailure(iss.verify(await tokenFrom(await testKey('ES256', 'unknown-late'))))).code).toBe('key_unknown');
    expect(idp.fetches.jwks).toBe(3);
  });

  it('refetches after jwks_cache expires, and stops trusting a key the IdP dropped', async () => {
    const iss = issuer({ jwks_uri: idp.jwksUri, jwks_cache: 600 });
    await iss.verify(await tokenFrom(key));
    const next = await testKey('ES256', 'k2');
    idp.keys = [next.publicJwk];
    clock.advance(599);
    await iss.verify(await tokenFrom(key));
    expect(idp.fetches.jwks).toBe(1);
    clock.advance(1);
    expect((await authFailure(iss.verify(await tokenFrom(key)))).code).toBe('key_unknown');
    expect(idp.fetches.jwks).toBe(2);
    await expect(iss.verify(await tokenFrom(next))).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('fails closed while the JWKS endpoint is down and recovers when it is back', async () => {
    const iss = issuer({ jwks_uri: idp.jwksUri, jwks_cooldown: 30 });
    const token = await tokenFrom(key);
    await idp.stop();
    const down = await authFailure(iss.verify(token));
    expect(down.code).toBe('issuer_unavailable');
    expect(down.message).toContain('ECONNREFUSED');
    expect(down.message).toContain(idp.jwksUri);

    await idp.restart();
    const backingOff = await authFailure(iss.verify(token));
    expect(backingOff.code).toBe('issuer_unavailable');
    expect(idp.fetches.jwks).toBe(0);

    clock.advance(5);
    await expect(iss.verify(token)).resolves.toMatchObject({ subject: 'user-1' });
    expect(idp.fetches.jwks).toBe(1);
  });

  it('fails closed when the cache is stale and the IdP is down, then recovers', async () => {
    const iss = issuer({ jwks_uri: idp.jwksUri, jwks_cache: 60 });
    await iss.verify(await tokenFrom(key));
    idp.mode = 'error';
    clock.advance(61);
    const err = await authFailure(iss.verify(await tokenFrom(key)));
    expect(err.code).toBe('issuer_unavailable');
    expect(err.message).toContain('HTTP 500');
    idp.mode = 'ok';
    clock.advance(5);
    await expect(iss.verify(await tokenFrom(key))).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('keeps serving cached keys when an unknown-kid refetch fails', async () => {
    const iss = issuer({ jwks_uri: idp.jwksUri });
    await iss.verify(await tokenFrom(key));
    idp.mode = 'error';
    clock.advance(31);
    expect((await authFailure(iss.verify(await tokenFrom(await testKey('ES256', 'k9')))))).toMatchObject({ code: 'issuer_unavailable' });
    await expect(iss.verify(await tokenFrom(key))).resolves.toMatchObject({ subject: 'user-1' });
  });

  it('gives up on a hanging IdP after http_timeout', async () => {
    idp.mode = 'hang';
    const err = await authFailure(issuer({ jwks_uri: idp.jwksUri, http_timeout: 0.3 }).verify(await tokenFrom(key)));
    expect(err.code).toBe('issuer_unavailable');
    expect(err.message).toContain('no answer within 0.3 s');
  });

  it.each([
    ['redirect', 'redirect refused'],
    ['huge', 'larger than 512 KiB'],
  ] as const)('refuses a JWKS response that is a %s', async (mode, expected) => {
    idp.mode = mode;
    const err = await authFailure(issuer({ jwks_uri: idp.jwksUri }).verify(await tokenFrom(key)));
    expect(err.code).toBe('issuer_unavailable');
    expect(err.message).toContain(expected);
  });

  it('refuses discovery that names another issuer', async () => {
    idp.discoveryIssuer = `${idp.issuer}/`;
    const err = await authFailure(issuer().verify(await tokenFrom(key)));
    expect(err.code).toBe('issuer_unavailable');
    expect(err.message).toContain('byte for byte');
    expect(idp.fetches.jwks).toBe(0);
  });

  it('uses no symmetric, encryption or private-looking keys from the JWKS', async () => {
    const { d: _d, ...rest } = { ...key.publicJwk, d: 'ignored' };
    idp.keys = [
      { kty: 'oct', k: 'c2VjcmV0', kid: 'k1', alg: 'HS256' },
      { ...key.publicJwk, use: 'enc' },
      { ...key.publicJwk, key_ops: ['encrypt'] },
      { ...rest, alg: 'ES384' },
    ];
    expect((await authFailure(issuer({ jwks_uri: idp.jwksUri }).verify(await tokenFrom(key)))).code).toBe('key_unknown');
  });

  it('accepts a token without kid when exactly the right key type is published', async () => {
    const { kid: _kid, ...noKid } = key.publicJwk;
    idp.keys = [noKid];
    const token = await sign(key, claimsFor(idp.issuer, AUDIENCE, clock.seconds()), { kid: undefined });
    await expect(issuer({ jwks_uri: idp.jwksUri }).verify(token)).resolves.toMatchObject({ subject: 'user-1' });
  });
});
