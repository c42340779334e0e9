import { createPrivateKey, createPublicKey, hkdfSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import type { SluiceConfig } from '../config/schema.js';
import { resolveSecret } from '../config/secrets.js';
import { SluiceError } from '../errors.js';
import { SIGNING_KEY_FILE, ensurePrivateDir, loadOrCreateRootSecret, loadOrCreateSigningKey } from './key-files.js';

export interface SigningKey {
  /** RFC 7638 JWK thumbprint of the public key: stable across restarts. */
  readonly kid: string;
  readonly alg: 'EdDSA' | 'ES256';
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** Public JWK with kid, alg and use, as published in the JWKS. */
  readonly publicJwk: JWK;
}

/**
 * Sluice's own key material: the key it signs tokens with (plus older keys
 * still published during rotation) and a root secret from which every other
 * capability derives its own key, so one file backs them all and no two
 * purposes ever share a key.
 */
export class Keyring {
  readonly current: SigningKey;
  readonly all: readonly SigningKey[];
  readonly #root: Buffer;
  readonly #derived = new Map<string, Buffer>();

  private constructor(current: SigningKey, previous: readonly SigningKey[], root: Buffer) {
    this.current = current;
    const byKid = new Map([[current.kid, current]]);
    for (const k of previous) if (!byKid.has(k.kid)) byKid.set(k.kid, k);
    this.all = [...byKid.values()];
    this.#root = root;
  }

  /**
   * Loads the keys, generating the Ed25519 signing key and the root secret
   * under `keys.dir` (default `<dataDir>/keys`) on first start.
   */
  static async load(cfg: SluiceConfig['keys'], dataDir: string): Promise<Keyring> {
    const dir = cfg.dir ?? join(dataDir, 'keys');
    ensurePrivateDir(dir);
    const root = loadOrCreateRootSecret(dir);
    const currentPrivate = cfg.signing
      ? parsePrivateKey(resolveSecret(cfg.signing, 'keys.signing'), 'keys.signing')
      : loadOrCreateSigningKey(dir);
    const current = await signingKey(currentPrivate, cfg.signing ? 'keys.signing' : join(dir, SIGNING_KEY_FILE));
    const previous: SigningKey[] = [];
    for (const [i, ref] of (cfg.previous ?? []).entries()) {
      const path = `keys.previous[${i}]`;
      previous.push(await signingKey(parsePrivateKey(resolveSecret(ref, path), path), path));
    }
    return new Keyring(current, previous, root);
  }

  /** The public keys (current first) as a JWKS document. */
  jwks(): { keys: JWK[] } {
    return { keys: this.all.map((k) => ({ ...k.publicJwk })) };
  }

  /**
   * A 32-byte key for one purpose ("masking", "cookies", ...), derived with
   * HKDF-SHA256 from the root secret: stable across restarts, independent
   * between purposes.
   */
  secret(purpose: string): Buffer {
    if (purpose.length === 0) throw new SluiceError('key_purpose_invalid', 'secret(purpose): name a purpose, for example "cookies"');
    let key = this.#derived.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.#root, 'sluice keyring v1', `sluice:${purpose}`, 32));
      this.#derived.set(purpose, key);
    }
    return Buffer.from(key);
  }
}

function parsePrivateKey(pem: string, path: string): KeyObject {
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new SluiceError('key_invalid', `${path}: not a PEM private key; provide an Ed25519 or P-256 key in PKCS#8 or SEC1 PEM`);
  }
}

async function signingKey(privateKey: KeyObject, path: string): Promise<SigningKey> {
  const alg = algorithmFor(privateKey);
  if (!alg) {
    const what = privateKey.asymmetricKeyType === 'ec' ? `an EC key on ${privateKey.asymmetricKeyDetails?.namedCurve ?? 'another curve'}` : `a ${privateKey.asymmetricKeyType} key`;
    throw new SluiceError('key_unsupported', `${path}: ${what} cannot sign Sluice tokens; use an Ed25519 or P-256 private key`);
  }
  const publicKey = createPublicKey(privateKey);
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return { kid, alg, privateKey, publicKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
}

function algorithmFor(key: KeyObject): SigningKey['alg'] | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return undefined;
}
