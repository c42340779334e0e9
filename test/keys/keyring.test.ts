import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, createLocalJWKSet, jwtVerify, SignJWT } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { SluiceError } from '../../src/errors.js';
import { Keyring } from '../../src/keys/keyring.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sluice-keys-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  delete process.env.SLUICE_TEST_SIGNING_KEY;
});

function keysConfig(raw: Record<string, unknown> = {}) {
  return configSchema.parse({ keys: raw }).keys;
}

function pemFile(dir: string, name: string, type: 'ed25519' | 'ec' | 'rsa'): string {
  const { privateKey } =
    type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      : type === 'rsa'
        ? generateKeyPairSync('rsa', { modulusLength: 2048 })
        : generateKeyPairSync('ed25519');
  const path = join(dir, name);
  writeFileSync(path, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  return path;
}

async function failure(promise: Promise<unknown>): Promise<SluiceError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof SluiceError) return err;
    throw err;
  }
  throw new Error('expected a SluiceError');
}

describe('Keyring', () => {
  it('generates an Ed25519 key and a root secret on first start, owner-only', async () => {
    const data = tempDir();
    const ring = await Keyring.load(keysConfig(), data);
    const dir = join(data, 'keys');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir).sort()).toEqual(['root.secret', 'signing-ed25519.pem']);
    for (const f of readdirSync(dir)) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
    expect(ring.current.alg).toBe('EdDSA');
    expect(ring.current.privateKey.asymmetricKeyType).toBe('ed25519');
    expect(ring.all).toEqual([ring.current]);
  });

  it('names the key by its RFC 7638 thumbprint and publishes only public parts', async () => {
    const ring = await Keyring.load(keysConfig(), tempDir());
    const { keys } = ring.jwks();
    expect(keys).toHaveLength(1);
    const [jwk] = keys;
    expect(jwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: ring.current.kid, alg: 'EdDSA', use: 'sig' });
    expect(jwk).not.toHaveProperty('d');
    expect(ring.current.kid).toBe(await calculateJwkThumbprint({ kty: 'OKP', crv: 'Ed25519', x: jwk.x }, 'sha256'));
  });

  it('reuses the same key and secret on later starts', async () => {
    const data = tempDir();
    const first = await Keyring.load(keysConfig(), data);
    const second = await Keyring.load(keysConfig(), data);
    expect(second.current.kid).toBe(first.current.kid);
    expect(second.secret('cookies').equals(first.secret('cookies'))).toBe(true);
  });

  it('keeps keys in keys.dir when it is set', async () => {
    const data = tempDir();
    const keyDir = join(tempDir(), 'nested', 'keys');
    await Keyring.load(keysConfig({ dir: keyDir }), data);
    expect(existsSync(join(keyDir, 'signing-ed25519.pem'))).toBe(true);
    expect(existsSync(join(data, 'keys'))).toBe(false);
  });

  it('tightens an existing key directory to 0700', async () => {
    const data = tempDir();
    const keyDir = join(data, 'keys');
    await Keyring.load(keysConfig(), data);
    chmodSync(keyDir, 0o755);
    await Keyring.load(keysConfig(), data);
    expect(statSync(keyDir).mode & 0o777).toBe(0o700);
  });

  it('refuses a key file that other users can read', async () => {
    const data = tempDir();
    await Keyring.load(keysConfig(), data);
    const file = join(data, 'keys', 'signing-ed25519.pem');
    chmodSync(file, 0o644);
    const err = await failure(Keyring.load(keysConfig(), data));
    expect(err.code).toBe('key_file_exposed');
    expect(err.message).toContain('chmod 600');
  });

  it('refuses a corrupted root secret instead of silently replacing it', async () => {
    const data = tempDir();
    await Keyring.load(keysConfig(), data);
    writeFileSync(join(data, 'keys', 'root.secret'), 'short\n', { mode: 0o600 });
    const err = await failure(Keyring.load(keysConfig(), data));
    expect(err.code).toBe('key_invalid');
  });

  it('uses a P-256 signing key from ${file:...} instead of generating one', async () => {
    const data = tempDir();
    const file = pemFile(tempDir(), 'signing.pem', 'ec');
    const ring = await Keyring.load(keysConfig({ signing: `\${file:${file}}` }), data);
    expect(ring.current.alg).toBe('ES256');
    expect(ring.jwks().keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', kid: ring.current.kid });
    expect(existsSync(join(data, 'keys', 'signing-ed25519.pem'))).toBe(false);
    const again = await Keyring.load(keysConfig({ signing: `\${file:${file}}` }), data);
    expect(again.current.kid).toBe(ring.current.kid);
  });

  it('uses an Ed25519 signing key from ${env:...}', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    process.env.SLUICE_TEST_SIGNING_KEY = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    const ring = await Keyring.load(keysConfig({ signing: '${env:SLUICE_TEST_SIGNING_KEY}' }), tempDir());
    expect(ring.current.alg).toBe('EdDSA');
    expect(ring.current.privateKey.export({ format: 'pem', type: 'pkcs8' })).toBe(process.env.SLUICE_TEST_SIGNING_KEY);
  });

  it('refuses RSA signing keys and says which keys it takes', async () => {
    const file = pemFile(tempDir(), 'rsa.pem', 'rsa');
    const err = await failure(Keyring.load(keysConfig({ signing: `\${file:${file}}` }), tempDir()));
    expect(err.code).toBe('key_unsupported');
    expect(err.message).toMatch(/keys\.signing: .*Ed25519 or P-256/);
  });

  it('refuses a signing file that is not a key, without quoting its content', async () => {
    const file = join(tempDir(), 'junk.pem');
    writeFileSync(file, 'TOPSECRETVALUE-not-a-pem');
    const err = await failure(Keyring.load(keysConfig({ signing: `\${file:${file}}` }), tempDir()));
    expect(err.code).toBe('key_invalid');
    expect(err.message).not.toContain('TOPSECRETVALUE');
  });

  it('publishes previous keys after the current one, once each', async () => {
    const keyDir = tempDir();
    const old1 = pemFile(keyDir, 'old1.pem', 'ed25519');
    const old2 = pemFile(keyDir, 'old2.pem', 'ec');
    const current = pemFile(keyDir, 'current.pem', 'ed25519');
    const previousOnly = await Keyring.load(keysConfig({ signing: `\${file:${old1}}` }), tempDir());
    const ring = await Keyring.load(
      keysConfig({ signing: `\${file:${current}}`, previous: [`\${file:${old1}}`, `\${file:${old2}}`, `\${file:${current}}`] }),
      tempDir(),
    );
    const kids = ring.jwks().keys.map((k) => k.kid);
    expect(kids).toHaveLength(3);
    expect(kids[0]).toBe(ring.current.kid);
    expect(kids[1]).toBe(previousOnly.current.kid);
    expect(ring.all.map((k) => k.alg)).toEqual(['EdDSA', 'EdDSA', 'ES256']);
  });

  it('signs tokens that verify against its own JWKS, for every published key', async () => {
    const keyDir = tempDir();
    const old = pemFile(keyDir, 'old.pem', 'ec');
    const ring = await Keyring.load(keysConfig({ previous: [`\${file:${old}}`] }), tempDir());
    const jwks = createLocalJWKSet(ring.jwks());
    for (const key of ring.all) {
      const token = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: key.alg, kid: key.kid }).sign(key.privateKey);
      const { protectedHeader } = await jwtVerify(token, jwks);
      expect(protectedHeader.kid).toBe(key.kid);
    }
  });

  it('derives a stable 32-byte secret per purpose', async () => {
    const data = tempDir();
    const ring = await Keyring.load(keysConfig(), data);
    const masking = ring.secret('masking');
    expect(masking).toHaveLength(32);
    expect(ring.secret('masking').equals(masking)).toBe(true);
    expect(ring.secret('cookies').equals(masking)).toBe(false);
    expect(ring.secret('masking ').equals(masking)).toBe(false);
    masking.fill(0);
    expect(ring.secret('masking').equals(masking)).toBe(false);
    const elsewhere = await Keyring.load(keysConfig(), tempDir());
    expect(elsewhere.secret('masking').equals(ring.secret('masking'))).toBe(false);
    expect(() => ring.secret('')).toThrow(SluiceError);
  });

  it('keeps the root secret when the signing key is configured', async () => {
    const data = tempDir();
    const generated = await Keyring.load(keysConfig(), data);
    const file = pemFile(tempDir(), 'signing.pem', 'ed25519');
    const configured = await Keyring.load(keysConfig({ signing: `\${file:${file}}` }), data);
    expect(configured.current.kid).not.toBe(generated.current.kid);
    expect(configured.secret('webhooks').equals(generated.secret('webhooks'))).toBe(true);
  });
});
