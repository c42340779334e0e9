import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { SluiceError } from '../../src/errors.js';
import { DevIssuer } from '../../src/identity/dev-issuer.js';
import { Keyring } from '../../src/keys/keyring.js';
import { authFailure, b64url, manualClock, sign, testKey } from './idp-fixture.js';

const ISSUER = 'https://sluice.local/dev';
const AUDIENCE = 'sluice';
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'sluice-dev-'));
  dirs.push(d);
  return d;
};
const keys = (raw: Record<string, unknown> = {}) => configSchema.parse({ keys: raw }).keys;

let keyring: Keyring;
const clock = manualClock();
let dev: DevIssuer;

beforeAll(async () => {
  keyring = await Keyring.load(keys(), tempDir());
  dev = new DevIssuer(keyring, { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 3600, now: clock.now });
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('DevIssuer', () => {
  it('mints an EdDSA token with the current key that verifies into the principal', async () => {
    const token = await dev.mint({ subject: 'alice', groups: ['admins', 'dba'], claims: { email: 'alice@example.com' } });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'EdDSA', kid: keyring.current.kid, typ: 'JWT' });
    const p = await dev.verify(token, 60);
    expect(p).toMatchObject({ issuer: ISSUER, subject: 'alice', kind: 'person', groups: ['admins', 'dba'] });
    expect(p.claims).toMatchObject({ email: 'alice@example.com', aud: AUDIENCE });
    expect(p.expiresAt).toBe(clock.seconds() + 3600);
  });

  it('mints machine principals and honours a per-token lifetime', async () => {
    const token = await dev.mint({ subject: 'build-42', kind: 'machine', ttlSeconds: 120 });
    const p = await dev.verify(token, 60);
    expect(p.kind).toBe('machine');
    expect(p.groups).toEqual([]);
    expect(p.expiresAt).toBe(clock.seconds() + 120);
  });

  it('does not let requested claims override the registered ones', async () => {
    const token = await dev.mint({
      subject: 'alice',
      claims: { iss: 'https://evil.example', sub: 'root', aud: 'elsewhere', exp: 9_999_999_999, nbf: 0, jti: 'fixed' },
    });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ iss: ISSUER, sub: 'alice', aud: AUDIENCE, exp: clock.seconds() + 3600 });
    expect(claims.nbf).toBeUndefined();
    expect(claims.jti).not.toBe('fixed');
  });

  it('refuses to mint without a subject or with a non-positive lifetime', async () => {
    await expect(dev.mint({ subject: '' })).rejects.toThrow(SluiceError);
    await expect(dev.mint({ subject: 'a', ttlSeconds: 0 })).rejects.toThrow(SluiceError);
    await expect(dev.mint({ subject: 'a', ttlSeconds: Number.NaN })).rejects.toThrow(SluiceError);
  });

  it('refuses its own token once expired', async () => {
    const later = manualClock(clock.now());
    const issuer = new DevIssuer(keyring, { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60, now: later.now });
    const token = await issuer.mint({ subject: 'alice' });
    later.advance(60 + 61);
    expect((await authFailure(issuer.verify(token, 60))).code).toBe('token_expired');
  });

  it('refuses tokens for another audience or issuer', async () => {
    const other = new DevIssuer(keyring, { issuer: ISSUER, audience: 'other', ttlSeconds: 60, now: clock.now });
    expect((await authFailure(dev.verify(await other.mint({ subject: 'a' }), 60))).code).toBe('audience_mismatch');
    const elsewhere = new DevIssuer(keyring, { issuer: 'https://elsewhere', audience: AUDIENCE, ttlSeconds: 60, now: clock.now });
    expect((await authFailure(dev.verify(await elsewhere.mint({ subject: 'a' }), 60))).code).toBe('issuer_unknown');
  });

  it('accepts only the keyring keys: another Sluice, a forged kid and alg none all fail', async () => {
    const otherRing = await Keyring.load(keys(), tempDir());
    const impostor = new DevIssuer(otherRing, { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60, now: clock.now });
    expect((await authFailure(dev.verify(await impostor.mint({ subject: 'a' }), 60))).code).toBe('key_unknown');

    const forged = await testKey('EdDSA', keyring.current.kid);
    const claims = { iss: ISSUER, aud: AUDIENCE, sub: 'root', exp: clock.seconds() + 60 };
    expect((await authFailure(dev.verify(await sign(forged, claims), 60))).code).toBe('signature_invalid');
    const none = `${b64url({ alg: 'none', kid: keyring.current.kid })}.${b64url(claims)}.`;
    expect((await authFailure(dev.verify(none, 60))).code).toBe('algorithm_not_allowed');
    const rs = await testKey('RS256', keyring.current.kid);
    expect((await authFailure(dev.verify(await sign(rs, claims), 60))).code).toBe('algorithm_not_allowed');
  });

  it('still verifies tokens of a previous key after rotation', async () => {
    const dir = tempDir();
    const oldPem = join(dir, 'old.pem');
    const newPem = join(dir, 'new.pem');
    writeFileSync(oldPem, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    writeFileSync(newPem, generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const before = await Keyring.load(keys({ signing: `\${file:${oldPem}}` }), dir);
    const after = await Keyring.load(keys({ signing: `\${file:${newPem}}`, previous: [`\${file:${oldPem}}`] }), dir);
    const opts = { issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 600, now: clock.now };
    const oldToken = await new DevIssuer(before, opts).mint({ subject: 'alice' });
    const rotated = new DevIssuer(after, opts);
    await expect(rotated.verify(oldToken, 60)).resolves.toMatchObject({ subject: 'alice' });
    const newToken = await rotated.mint({ subject: 'bob' });
    expect(decodeProtectedHeader(newToken).alg).toBe('ES256');
    await expect(rotated.verify(newToken, 60)).resolves.toMatchObject({ subject: 'bob' });
    expect((await authFailure(new DevIssuer(before, opts).verify(newToken, 60))).code).toBe('algorithm_not_allowed');
  });
});
