import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenAuthenticator } from '../../src/identity/authenticator.js';
import { OidcIssuer } from '../../src/identity/oidc-issuer.js';
import { startOidcProvider, type TestOidcProvider } from '../support/oidc.js';
import { authFailure, issuerConfig } from './idp-fixture.js';

let idp: TestOidcProvider;
beforeAll(async () => {
  idp = await startOidcProvider({ audience: 'https://sluice.test/pg' });
});
afterAll(async () => {
  await idp?.stop();
});

describe('tokens from a real OpenID provider', () => {
  it('verify into the principal via OpenID discovery', async () => {
    const issuer = new OidcIssuer(issuerConfig({ issuer: idp.issuer, audience: idp.audience, kind: 'machine' }), { clockSkewSeconds: 60 });
    const token = await idp.clientToken('ci-pipeline', { email: 'ci@example.com' });
    const p = await issuer.verify(token);
    expect(p).toMatchObject({ issuer: idp.issuer, subject: 'ci-pipeline', kind: 'machine', groups: ['ci', 'deployers'] });
    expect(p.claims).toMatchObject({ client_id: 'ci-pipeline', email: 'ci@example.com', aud: idp.audience });
    expect(p.expiresAt).toBe(decodeJwt(token).exp);
  });

  it('verify with an explicit jwks_uri', async () => {
    const issuer = new OidcIssuer(issuerConfig({ issuer: idp.issuer, audience: idp.audience, jwks_uri: idp.jwksUri }), { clockSkewSeconds: 60 });
    const p = await issuer.verify(await idp.clientToken('reporting'));
    expect(p).toMatchObject({ subject: 'reporting', kind: 'person', groups: ['analysts'] });
  });

  it('carry groups from extra claims, as a string or with a configured prefix', async () => {
    const issuer = new OidcIssuer(issuerConfig({ issuer: idp.issuer, audience: idp.audience, group_prefix: 'corp/' }), { clockSkewSeconds: 60 });
    const p = await issuer.verify(await idp.clientToken('reporting', { groups: 'dba, oncall  dba' }));
    expect(p.groups).toEqual(['corp/dba', 'corp/oncall']);
  });

  it('read a nested groups claim by dotted name', async () => {
    const issuer = new OidcIssuer(issuerConfig({ issuer: idp.issuer, audience: idp.audience, groups_claim: 'realm_access.roles' }), {
      clockSkewSeconds: 60,
    });
    const p = await issuer.verify(await idp.clientToken('reporting', { realm_access: { roles: ['auditor', 7, 'auditor'] } }));
    expect(p.groups).toEqual(['auditor']);
  });

  it('are refused when the issuer allows only ES256 (the provider signs RS256)', async () => {
    const issuer = new OidcIssuer(issuerConfig({ issuer: idp.issuer, audience: idp.audience, algorithms: ['ES256'] }), { clockSkewSeconds: 60 });
    const err = await authFailure(issuer.verify(await idp.clientToken()));
    expect(err.code).toBe('algorithm_not_allowed');
    expect(err.message).toContain('RS256');
    expect(err.message).toContain('ES256');
  });

  it('are refused for another audience', async () => {
    const issuer = new OidcIssuer(issuerConfig({ issuer: idp.issuer, audience: 'https://sluice.test/other' }), { clockSkewSeconds: 60 });
    const err = await authFailure(issuer.verify(await idp.clientToken()));
    expect(err.code).toBe('audience_mismatch');
    expect(err.message).toContain('request a token for audience "https://sluice.test/other"');
  });

  it.each([
    ['a trailing slash', (iss: string) => `${iss}/`],
    ['other case', (iss: string) => iss.replace('http://', 'HTTP://')],
    ['another host', (iss: string) => iss.replace('127.0.0.1', 'localhost')],
  ])('are refused when the configured issuer differs by %s', async (_what, variant) => {
    const configured = variant(idp.issuer);
    const auth = new TokenAuthenticator({ issuers: [issuerConfig({ issuer: configured, audience: idp.audience })], clockSkewSeconds: 60 });
    const err = await authFailure(auth.authenticate(await idp.clientToken()));
    expect(err.code).toBe('issuer_unknown');
  });

  it('verify through the authenticator, which adds no prefix with one issuer', async () => {
    const auth = new TokenAuthenticator({ issuers: [issuerConfig({ issuer: idp.issuer, audience: idp.audience })], clockSkewSeconds: 60 });
    const p = await auth.authenticate(await idp.clientToken());
    expect(p.groups).toEqual(['ci', 'deployers']);
  });

  it('exist for any client id, and for a plain (non-URI) audience', async () => {
    const plain = await startOidcProvider({ audience: 'sluice' });
    try {
      const issuer = new OidcIssuer(issuerConfig({ issuer: plain.issuer, audience: 'sluice' }), { clockSkewSeconds: 60 });
      const p = await issuer.verify(await plain.clientToken('alice', { groups: ['dba'] }));
      expect(p).toMatchObject({ subject: 'alice', groups: ['dba'] });
      expect(p.claims.aud).toBe('sluice');
      expect((await issuer.verify(await plain.clientToken('bob'))).groups).toEqual([]);
    } finally {
      await plain.stop();
    }
  });

  it('are refused once the provider is gone and no keys are cached', async () => {
    const other = await startOidcProvider();
    const token = await other.clientToken();
    await other.stop();
    const issuer = new OidcIssuer(issuerConfig({ issuer: other.issuer, audience: other.audience, http_timeout: 2 }), { clockSkewSeconds: 60 });
    const err = await authFailure(issuer.verify(token));
    expect(err.code).toBe('issuer_unavailable');
    expect(err.message).toContain('ECONNREFUSED');
  });
});

describe('an authenticator rebuilt by a configuration reload', () => {
  it('keeps the keys it fetched for unchanged issuers, so a reload during an IdP outage does not lock people out', async () => {
    const outage = await startOidcProvider({ audience: 'sluice' });
    const cfg = issuerConfig({ issuer: outage.issuer, audience: outage.audience, jwks_uri: outage.jwksUri });
    const before = new TokenAuthenticator({ issuers: [cfg], clockSkewSeconds: 60 });
    const token = await outage.clientToken('ci-pipeline');
    expect((await before.authenticate(token)).subject).toBe('ci-pipeline');
    await outage.stop();

    const reused = new TokenAuthenticator({ issuers: [{ ...cfg }], clockSkewSeconds: 60, previous: before });
    expect((await reused.authenticate(token)).subject).toBe('ci-pipeline');
    const fresh = new TokenAuthenticator({ issuers: [{ ...cfg }], clockSkewSeconds: 60 });
    expect(await authFailure(fresh.authenticate(token))).toMatchObject({ code: 'issuer_unavailable' });
    const changed = new TokenAuthenticator({ issuers: [{ ...cfg, groups_claim: 'roles' }], clockSkewSeconds: 60, previous: before });
    expect(await authFailure(changed.authenticate(token))).toMatchObject({ code: 'issuer_unavailable' });
  });
});
