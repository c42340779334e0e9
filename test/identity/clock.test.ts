import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenAuthenticator } from '../../src/identity/authenticator.js';
import { authFailure, claimsFor, issuerConfig, manualClock, sign, startFixtureIdp, testKey, type FixtureIdp, type TestKey } from './idp-fixture.js';

const AUDIENCE = 'sluice';
let idp: FixtureIdp;
let key: TestKey;
const clock = manualClock();

beforeAll(async () => {
  idp = await startFixtureIdp();
  key = await testKey('EdDSA', 'ed-1');
  idp.keys = [key.publicJwk];
});
afterAll(async () => {
  await idp?.stop();
});

function authenticator(clockSkewSeconds: number): TokenAuthenticator {
  return new TokenAuthenticator({
    issuers: [issuerConfig({ issuer: idp.issuer, audience: AUDIENCE, algorithms: ['EdDSA'], jwks_uri: idp.jwksUri })],
    clockSkewSeconds,
    now: clock.now,
  });
}

/** A token whose exp/nbf sit at the given offsets (seconds) from now. */
function tokenAt(times: { exp?: number; nbf?: number }): Promise<string> {
  const now = clock.seconds();
  return sign(key, claimsFor(idp.issuer, AUDIENCE, now - 600, { exp: now + (times.exp ?? 300), ...(times.nbf === undefined ? {} : { nbf: now + times.nbf }) }));
}

describe('token lifetime', () => {
  it('refuses an expired token and says when it expired', async () => {
    const err = await authFailure(authenticator(60).authenticate(await tokenAt({ exp: -3600 })));
    expect(err.code).toBe('token_expired');
    expect(err.message).toBe(`the token expired at ${new Date((clock.seconds() - 3600) * 1000).toISOString()} (clock skew allowed: 60 s); get a new token`);
  });

  it('accepts expiry within the clock skew and refuses it beyond', async () => {
    const auth = authenticator(60);
    await expect(auth.authenticate(await tokenAt({ exp: -59 }))).resolves.toMatchObject({ subject: 'user-1' });
    expect((await authFailure(auth.authenticate(await tokenAt({ exp: -60 })))).code).toBe('token_expired');
    expect((await authFailure(auth.authenticate(await tokenAt({ exp: -61 })))).code).toBe('token_expired');
  });

  it('refuses a token that is not yet valid beyond the skew', async () => {
    const auth = authenticator(60);
    await expect(auth.authenticate(await tokenAt({ nbf: 60 }))).resolves.toMatchObject({ subject: 'user-1' });
    const err = await authFailure(auth.authenticate(await tokenAt({ nbf: 61 })));
    expect(err.code).toBe('token_not_yet_valid');
    expect(err.message).toContain(new Date((clock.seconds() + 61) * 1000).toISOString());
  });

  it('applies a smaller configured skew exactly', async () => {
    const auth = authenticator(5);
    await expect(auth.authenticate(await tokenAt({ exp: -4 }))).resolves.toMatchObject({ subject: 'user-1' });
    expect((await authFailure(auth.authenticate(await tokenAt({ exp: -6 })))).code).toBe('token_expired');
    expect((await authFailure(auth.authenticate(await tokenAt({ nbf: 6 })))).code).toBe('token_not_yet_valid');
  });

  it('never allows more than 60 s of skew, whatever it is given', async () => {
    const auth = authenticator(3600);
    const err = await authFailure(auth.authenticate(await tokenAt({ exp: -61 })));
    expect(err.code).toBe('token_expired');
    expect(err.message).toContain('clock skew allowed: 60 s');
    expect((await authFailure(auth.authenticate(await tokenAt({ nbf: 61 })))).code).toBe('token_not_yet_valid');
  });

  it('reports the principal expiry from the token', async () => {
    const p = await authenticator(60).authenticate(await tokenAt({ exp: 120 }));
    expect(p.expiresAt).toBe(clock.seconds() + 120);
  });

  it('refuses absurd time claims as malformed or expired, never crashing', async () => {
    const auth = authenticator(60);
    for (const exp of [-1e300, Number.MIN_SAFE_INTEGER]) {
      const err = await authFailure(auth.authenticate(await sign(key, claimsFor(idp.issuer, AUDIENCE, clock.seconds(), { exp }))));
      expect(err.code).toBe('token_expired');
    }
    for (const exp of [null, 'tomorrow', [1], {}]) {
      const err = await authFailure(auth.authenticate(await sign(key, claimsFor(idp.issuer, AUDIENCE, clock.seconds(), { exp: exp as number }))));
      expect(err.code).toBe('token_malformed');
    }
  });
});
