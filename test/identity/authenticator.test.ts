import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { AuthenticationError, ConfigError } from '../../src/errors.js';
import { TokenAuthenticator } from '../../src/identity/authenticator.js';
import { DevIssuer } from '../../src/identity/dev-issuer.js';
import type { Principal } from '../../src/identity/principal.js';
import { Keyring } from '../../src/keys/keyring.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';
import { authFailure, claimsFor, issuerConfig, sign, startFixtureIdp, testKey, type FixtureIdp, type TestKey } from './idp-fixture.js';

let idp: TestOidcProvider;
let fixture: FixtureIdp;
let fixtureKey: TestKey;
let dataDir: string;
let dev: DevIssuer;

beforeAll(async () => {
  [idp, fixture] = await Promise.all([startOidcProvider(), startFixtureIdp()]);
  fixtureKey = await testKey('ES256', 'f1');
  fixture.keys = [fixtureKey.publicJwk];
  dataDir = mkdtempSync(join(tmpdir(), 'sluice-auth-'));
  const keyring = await Keyring.load(configSchema.parse({}).keys, dataDir);
  dev = new DevIssuer(keyring, { issuer: 'https://sluice.local/dev', audience: 'sluice', ttlSeconds: 600 });
});
afterAll(async () => {
  await Promise.all([idp?.stop(), fixture?.stop()]);
  rmSync(dataDir, { recursive: true, force: true });
});

const corp = (raw: Record<string, unknown> = {}) => issuerConfig({ name: 'corp', issuer: idp.issuer, audience: idp.audience, ...raw });
const ci = (raw: Record<string, unknown> = {}) =>
  issuerConfig({ name: 'ci', issuer: fixture.issuer, audience: 'sluice', jwks_uri: fixture.jwksUri, algorithms: ['ES256'], kind: 'machine', ...raw });
const ciToken = (extra = {}) => sign(fixtureKey, claimsFor(fixture.issuer, 'sluice', Math.floor(Date.now() / 1000), { groups: ['deploy'], ...extra }));

describe('TokenAuthenticator', () => {
  it('routes each token to its issuer and prefixes groups with the issuer name when several are configured', async () => {
    const auth = new TokenAuthenticator({ issuers: [corp(), ci()], clockSkewSeconds: 60, devIssuer: dev });
    const fromCorp = await auth.authenticate(await idp.clientToken('reporting'));
    expect(fromCorp).toMatchObject({ issuer: idp.issuer, subject: 'reporting', groups: ['corp:analysts'] });
    const fromCi = await auth.authenticate(await ciToken());
    expect(fromCi).toMatchObject({ issuer: fixture.issuer, kind: 'machine', groups: ['ci:deploy'] });
    const fromDev = await auth.authenticate(await dev.mint({ subject: 'alice', groups: ['analysts'] }));
    expect(fromDev).toMatchObject({ issuer: 'https://sluice.local/dev', subject: 'alice', groups: ['dev:analysts'] });
  });

  it('counts the dev issuer: one OIDC issuer plus dev means prefixes', async () => {
    const auth = new TokenAuthenticator({ issuers: [corp()], clockSkewSeconds: 60, devIssuer: dev });
    expect((await auth.authenticate(await idp.clientToken('reporting'))).groups).toEqual(['corp:analysts']);
    expect((await auth.authenticate(await dev.mint({ subject: 'a', groups: ['x'] }))).groups).toEqual(['dev:x']);
  });

  it('adds no prefix with a single issuer, dev or OIDC', async () => {
    const devOnly = new TokenAuthenticator({ issuers: [], clockSkewSeconds: 60, devIssuer: dev });
    expect((await devOnly.authenticate(await dev.mint({ subject: 'a', groups: ['x'] }))).groups).toEqual(['x']);
    const oidcOnly = new TokenAuthenticator({ issuers: [corp()], clockSkewSeconds: 60 });
    expect((await oidcOnly.authenticate(await idp.clientToken('reporting'))).groups).toEqual(['analysts']);
  });

  it('keeps an explicit group_prefix, including an empty one', async () => {
    const auth = new TokenAuthenticator({ issuers: [corp({ group_prefix: '' }), ci({ group_prefix: 'pipelines/' })], clockSkewSeconds: 60 });
    expect((await auth.authenticate(await idp.clientToken('reporting'))).groups).toEqual(['analysts']);
    expect((await auth.authenticate(await ciToken())).groups).toEqual(['pipelines/deploy']);
  });

  it('keeps the two issuers apart: one issuer\'s key cannot sign for the other', async () => {
    const auth = new TokenAuthenticator({ issuers: [corp({ algorithms: ['RS256', 'ES256'] }), ci()], clockSkewSeconds: 60 });
    const claims = claimsFor(idp.issuer, idp.audience, Math.floor(Date.now() / 1000));
    expect((await authFailure(auth.authenticate(await sign(fixtureKey, claims)))).code).toBe('key_unknown');
    const providerKid = decodeProtectedHeader(await idp.clientToken()).kid;
    expect((await authFailure(auth.authenticate(await sign(fixtureKey, claims, { kid: providerKid })))).code).toBe('key_unknown');
    const corpOnly = new TokenAuthenticator({ issuers: [corp()], clockSkewSeconds: 60 });
    expect((await authFailure(corpOnly.authenticate(await dev.mint({ subject: 'root' })))).code).toBe('issuer_unknown');
  });

  it('refuses an unconfigured issuer', async () => {
    const auth = new TokenAuthenticator({ issuers: [ci()], clockSkewSeconds: 60 });
    const err = await authFailure(auth.authenticate(await idp.clientToken()));
    expect(err.code).toBe('issuer_unknown');
    expect(err.message).toContain(idp.issuer);
  });

  it('rejects configurations where an issuer would be ambiguous', () => {
    expect(() => new TokenAuthenticator({ issuers: [corp(), corp({ name: 'corp2' })], clockSkewSeconds: 60 })).toThrow(ConfigError);
    expect(() => new TokenAuthenticator({ issuers: [ci({ issuer: 'https://sluice.local/dev' })], clockSkewSeconds: 60, devIssuer: dev })).toThrow(
      ConfigError,
    );
    expect(() => new TokenAuthenticator({ issuers: [corp({ name: 'dev' })], clockSkewSeconds: 60, devIssuer: dev })).toThrow(ConfigError);
  });

  it('converts unexpected exceptions into AuthenticationError without leaking their text', async () => {
    class BrokenDevIssuer extends DevIssuer {
      override async verify(): Promise<Principal> {
        throw new TypeError('internal detail with s3cr3t');
      }
    }
    const keyring = await Keyring.load(configSchema.parse({}).keys, dataDir);
    const broken = new BrokenDevIssuer(keyring, { issuer: 'https://sluice.local/dev', audience: 'sluice', ttlSeconds: 60 });
    const auth = new TokenAuthenticator({ issuers: [], clockSkewSeconds: 60, devIssuer: broken });
    const err = await authFailure(auth.authenticate(await dev.mint({ subject: 'a' })));
    expect(err).toBeInstanceOf(AuthenticationError);
    expect(err.message).not.toContain('s3cr3t');
    expect(err.cause).toBeUndefined();
  });
});
