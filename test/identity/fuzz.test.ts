import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthenticationError } from '../../src/errors.js';
import { TokenAuthenticator } from '../../src/identity/authenticator.js';
import { groupsFromClaims } from '../../src/identity/claims.js';
import { AUTH_ERROR_CODES, b64url, claimsFor, issuerConfig, manualClock, sign, startFixtureIdp, testKey, type FixtureIdp, type TestKey } from './idp-fixture.js';

const AUDIENCE = 'sluice';
let idp: FixtureIdp;
let key: TestKey;
let auth: TokenAuthenticator;
const clock = manualClock();

beforeAll(async () => {
  idp = await startFixtureIdp();
  key = await testKey('ES256', 'k1');
  idp.keys = [key.publicJwk];
  auth = new TokenAuthenticator({
    issuers: [issuerConfig({ issuer: idp.issuer, audience: AUDIENCE, jwks_uri: idp.jwksUri, algorithms: ['ES256', 'RS256'] })],
    clockSkewSeconds: 60,
    now: clock.now,
  });
});
afterAll(async () => {
  await idp?.stop();
});

/** The input must be refused with a known code, and no sizeable part of it may appear in the message. */
async function refusedCleanly(input: string, secretParts: string[] = []): Promise<void> {
  let caught: unknown;
  try {
    await auth.authenticate(input);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(AuthenticationError);
  const err = caught as AuthenticationError;
  expect(AUTH_ERROR_CODES).toContain(err.code);
  if (input.length >= 12) expect(err.message).not.toContain(input);
  for (const part of secretParts) if (part.length >= 12) expect(err.message).not.toContain(part);
}

const base64urlPart = fc.stringMatching(/^[A-Za-z0-9_-]{0,80}$/);
const headerArb = fc.record(
  {
    alg: fc.oneof(fc.constantFrom('none', 'HS256', 'RS256', 'ES256', 'EdDSA', 'PS256', 'ES512', ''), fc.string(), fc.integer()),
    kid: fc.oneof(fc.constant('k1'), fc.string(), fc.integer(), fc.constant(null)),
    typ: fc.constantFrom('JWT', 'at+jwt'),
    crit: fc.array(fc.string(), { maxLength: 2 }),
    jwk: fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
  },
  { requiredKeys: [] },
);
const payloadArb = fc.record(
  {
    iss: fc.oneof(fc.constant('ISSUER'), fc.string(), fc.integer(), fc.constant(null)),
    aud: fc.oneof(fc.constant(AUDIENCE), fc.array(fc.string(), { maxLength: 3 }), fc.integer()),
    sub: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
    exp: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(null)),
    nbf: fc.oneof(fc.integer(), fc.double(), fc.string()),
    groups: fc.oneof(fc.array(fc.anything(), { maxLength: 4 }), fc.string(), fc.anything()),
  },
  { requiredKeys: [] },
);

describe('authentication fuzzing', () => {
  it('refuses arbitrary strings with an AuthenticationError that does not echo them', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'binary', maxLength: 300 }), fc.base64String()), (input) =>
        refusedCleanly(input),
      ),
      { numRuns: 400 },
    );
  });

  it('refuses JWT-shaped garbage', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(headerArb.map(b64url), base64urlPart),
        fc.oneof(payloadArb.map((p) => b64url({ ...p, ...(p.iss === 'ISSUER' ? { iss: idp.issuer } : {}) })), base64urlPart, fc.jsonValue().map(b64url)),
        fc.oneof(base64urlPart, fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('base64url'))),
        (h, p, s) => refusedCleanly(`${h}.${p}.${s}`, [s, `${h}.${p}`]),
      ),
      { numRuns: 400 },
    );
  });

  it('refuses any single-character change to the header or payload of a valid token', async () => {
    const token = await sign(key, claimsFor(idp.issuer, AUDIENCE, clock.seconds(), { groups: ['a'] }));
    await expect(auth.authenticate(token)).resolves.toMatchObject({ subject: 'user-1' });
    const signedPartLength = token.lastIndexOf('.');
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: signedPartLength - 1 }), fc.constantFrom(...'ABCabc012_-.='), async (at, ch) => {
        fc.pre(token[at] !== ch);
        await refusedCleanly(token.slice(0, at) + ch + token.slice(at + 1), [token.slice(signedPartLength + 1)]);
      }),
      { numRuns: 300 },
    );
  });

  it('reads groups from any claim value without throwing, always as prefixed unique strings', () => {
    fc.assert(
      fc.property(fc.anything(), fc.constantFrom('groups', 'a.b', 'roles'), fc.constantFrom('', 'corp:'), (value, claim, prefix) => {
        const groups = groupsFromClaims({ [claim]: value, a: { b: value } }, claim, prefix);
        expect(new Set(groups).size).toBe(groups.length);
        for (const g of groups) {
          expect(typeof g).toBe('string');
          expect(g.startsWith(prefix)).toBe(true);
          expect(g.length).toBeGreaterThan(prefix.length);
        }
      }),
      { numRuns: 500 },
    );
  });
});
