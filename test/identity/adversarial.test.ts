import { createHmac, createPublicKey, type JsonWebKey } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { SluiceError } from '../../src/errors.js';
import { TokenAuthenticator } from '../../src/identity/authenticator.js';
import { OidcIssuer } from '../../src/identity/oidc-issuer.js';
import { authFailure, b64url, claimsFor, issuerConfig, manualClock, sign, startFixtureIdp, testKey, type FixtureIdp, type TestKey } from './idp-fixture.js';

const AUDIENCE = 'sluice';
let idp: FixtureIdp;
let rsa: TestKey;
let ec: TestKey;
let auth: TokenAuthenticator;
const clock = manualClock();

beforeAll(async () => {
  idp = await startFixtureIdp();
  rsa = await testKey('RS256', 'rsa-1');
  ec = await testKey('ES256', 'ec-1');
  idp.keys = [rsa.publicJwk, ec.publicJwk];
  auth = new TokenAuthenticator({
    issuers: [issuerConfig({ issuer: idp.issuer, audience: AUDIENCE, jwks_uri: idp.jwksUri, algorithms: ['RS256', 'ES256'] })],
    clockSkewSeconds: 60,
    now: clock.now,
  });
});
afterAll(async () => {
  await idp?.stop();
});

const valid = (extra = {}) => claimsFor(idp.issuer, AUDIENCE, clock.seconds(), extra);

/** A compact JWS assembled by hand, for headers and signatures no library would produce. */
function forge(header: Record<string, unknown>, payload: Record<string, unknown>, signature = ''): string {
  return `${b64url(header)}.${b64url(payload)}.${signature}`;
}

function hmac(secret: string | Buffer, header: Record<string, unknown>, payload: Record<string, unknown>): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

async function expectRefused(token: string, code: string): Promise<void> {
  const err = await authFailure(auth.authenticate(token));
  expect(err.code).toBe(code);
  if (token.length >= 8) expect(err.message).not.toContain(token);
  const signature = token.split('.')[2] ?? '';
  if (signature.length >= 8) expect(err.message).not.toContain(signature);
}

describe('token verification under attack', () => {
  it('accepts the genuine article (the baseline the attacks below start from)', async () => {
    await expect(auth.authenticate(await sign(rsa, valid()))).resolves.toMatchObject({ subject: 'user-1', issuer: idp.issuer });
    await expect(auth.authenticate(await sign(ec, valid()))).resolves.toMatchObject({ subject: 'user-1' });
  });

  it.each(['none', 'None', 'NONE', 'nOnE'])('refuses alg %s, with or without a signature', async (alg) => {
    await expectRefused(forge({ alg, typ: 'JWT' }, valid()), 'algorithm_not_allowed');
    await expectRefused(forge({ alg, kid: 'rsa-1' }, valid(), 'c2lnbmF0dXJl'), 'algorithm_not_allowed');
  });

  it('refuses HS256 signed with the public key as the HMAC secret', async () => {
    const pem = createPublicKey({ key: rsa.publicJwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
    const jwkText = JSON.stringify(rsa.publicJwk);
    for (const secret of [pem, pem.trim(), jwkText, Buffer.from(rsa.publicJwk.n as string, 'base64url')]) {
      await expectRefused(hmac(secret, { alg: 'HS256', kid: 'rsa-1', typ: 'JWT' }, valid()), 'algorithm_not_allowed');
    }
  });

  it('cannot be configured to accept HS256 or none, even bypassing the schema', () => {
    expect(configSchema.safeParse({ identity: { issuers: [{ name: 'x', issuer: idp.issuer, audience: 'a', algorithms: ['HS256'] }] } }).success).toBe(false);
    for (const alg of ['HS256', 'none']) {
      const cfg = { ...issuerConfig({ issuer: idp.issuer }), algorithms: [alg] } as unknown as ReturnType<typeof issuerConfig>;
      expect(() => new OidcIssuer(cfg, { clockSkewSeconds: 60 })).toThrow(SluiceError);
    }
  });

  it('refuses a token signed by an attacker key that carries the real kid', async () => {
    const attacker = await testKey('RS256', 'rsa-1');
    await expectRefused(await sign(attacker, valid()), 'signature_invalid');
    const attackerEc = await testKey('ES256', 'ec-1');
    await expectRefused(await sign(attackerEc, valid()), 'signature_invalid');
  });

  it('ignores keys embedded in the header (jwk, jku, x5u)', async () => {
    let attackerFetches = 0;
    const attacker = await testKey('RS256', 'rsa-1');
    const evil = createServer((_req, res) => {
      attackerFetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [attacker.publicJwk] }));
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/jwks`;
    try {
      await expectRefused(await sign(attacker, valid(), { jwk: attacker.publicJwk }), 'signature_invalid');
      await expectRefused(await sign(attacker, valid(), { jku: evilUrl, x5u: evilUrl }), 'signature_invalid');
      expect(attackerFetches).toBe(0);
    } finally {
      await new Promise<void>((resolve) => evil.close(() => resolve()));
    }
  });

  it('never lets a key serve an algorithm of another key type', async () => {
    const ecSignature = (await sign(ec, valid())).split('.')[2];
    await expectRefused(forge({ alg: 'RS256', kid: 'rsa-1' }, valid(), ecSignature), 'signature_invalid');
    await expectRefused(forge({ alg: 'ES256', kid: 'rsa-1' }, valid(), ecSignature), 'key_unknown');
    await expectRefused(forge({ alg: 'PS256', kid: 'rsa-1' }, valid(), ecSignature), 'algorithm_not_allowed');
  });

  it('refuses a payload changed after signing', async () => {
    const [h, , s] = (await sign(rsa, valid())).split('.');
    await expectRefused(`${h}.${b64url(valid({ sub: 'admin' }))}.${s}`, 'signature_invalid');
    const [, p] = (await sign(rsa, valid())).split('.');
    await expectRefused(`${b64url({ alg: 'ES256', kid: 'ec-1' })}.${p}.${s}`, 'signature_invalid');
  });

  it('refuses tokens whose issuer differs from the configured one in any byte', async () => {
    for (const iss of [`${idp.issuer}/`, idp.issuer.replace('http', 'HTTP'), idp.issuer.replace('127.0.0.1', 'localhost'), ` ${idp.issuer}`, `${idp.issuer}\u0000`]) {
      await expectRefused(await sign(rsa, valid({ iss })), 'issuer_unknown');
    }
  });

  it('hints at the configured issuer on a near miss, and not otherwise', async () => {
    const near = await authFailure(auth.authenticate(await sign(rsa, valid({ iss: `${idp.issuer}/` }))));
    expect(near.message).toContain(`the configured one is "${idp.issuer}"`);
    const far = await authFailure(auth.authenticate(await sign(rsa, valid({ iss: 'https://evil.example' }))));
    expect(far.message).not.toContain(idp.issuer);
  });

  it('requires an audience that includes ours', async () => {
    await expect(auth.authenticate(await sign(rsa, valid({ aud: ['other', AUDIENCE] })))).resolves.toMatchObject({ subject: 'user-1' });
    await expectRefused(await sign(rsa, valid({ aud: 'other' })), 'audience_mismatch');
    await expectRefused(await sign(rsa, valid({ aud: [] })), 'audience_mismatch');
    await expectRefused(await sign(rsa, valid({ aud: 'SLUICE' })), 'audience_mismatch');
    const { aud: _aud, ...noAud } = valid();
    await expectRefused(await sign(rsa, noAud), 'audience_mismatch');
  });

  it('requires exp and sub, and iss to pick the issuer', async () => {
    const { exp: _exp, ...noExp } = valid();
    await expectRefused(await sign(rsa, noExp), 'claim_missing');
    const { sub: _sub, ...noSub } = valid();
    await expectRefused(await sign(rsa, noSub), 'claim_missing');
    await expectRefused(await sign(rsa, valid({ sub: '' })), 'claim_missing');
    await expectRefused(await sign(rsa, valid({ sub: 42 })), 'claim_missing');
    const { iss: _iss, ...noIss } = valid();
    await expectRefused(await sign(rsa, noIss), 'claim_missing');
    await expectRefused(await sign(rsa, valid({ exp: `${clock.seconds() + 300}` })), 'token_malformed');
  });

  it('refuses garbage with token_malformed', async () => {
    const garbage = [
      '',
      'abc',
      'a.b',
      'a.b.c.d',
      'not a token at all',
      `${b64url({ alg: 'RS256' })}.${b64url('[]')}.sig`,
      `${b64url('"str"')}.${b64url(valid())}.sig`,
      `${b64url({ alg: 'RS256' })}.not-json.sig`,
      `${b64url({ alg: 42 })}.${b64url(valid())}.sig`,
      `${b64url({ alg: 'RS256', kid: 7 })}.${b64url(valid())}.sig`,
      `${b64url({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.${b64url('k')}.${b64url('iv')}.${b64url('ct')}.${b64url('tag')}`,
      `${(await sign(rsa, valid())).replace('.', '..')}`,
      ` ${await sign(rsa, valid())}`,
      `${await sign(rsa, valid())}\n`,
      `Bearer ${await sign(rsa, valid())}`,
      'x'.repeat(100_000),
    ];
    for (const token of garbage) await expectRefused(token, 'token_malformed');
  });

  it('refuses a non-string token without throwing anything else', async () => {
    for (const token of [undefined, null, 42, {}, ['a.b.c']]) {
      const err = await authFailure(auth.authenticate(token as unknown as string));
      expect(err.code).toBe('token_malformed');
    }
  });

  it('refuses unknown critical header parameters', async () => {
    const token = await new SignJWT(valid())
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1', crit: ['exp-policy'], 'exp-policy': 1 })
      .sign(rsa.privateKey, { crit: { 'exp-policy': true } });
    await expectRefused(token, 'token_malformed');
  });
});
