import { createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import type { SluiceConfig } from '../config/schema.js';
import { resolveSecret } from '../config/secrets.js';
import { SluiceError } from '../errors.js';
import { SIGNING_KEY_FILE } from '../keys/key-files.js';

/**
 * The public keys checkpoints are checked against, as Keyring.jwks() would
 * publish them (same kids), read without creating or changing anything:
 * `keys.signing` or the generated key in the key directory, and
 * `keys.previous`. Empty when there is no key yet.
 */
export async function trustedKeys(keys: SluiceConfig['keys'], dataDir: string): Promise<{ keys: JWK[] }> {
  const pems: { pem: string; from: string }[] = [];
  if (keys.signing) pems.push({ pem: resolveSecret(keys.signing, 'keys.signing'), from: 'keys.signing' });
  else {
    const file = join(keys.dir ?? join(dataDir, 'keys'), SIGNING_KEY_FILE);
    if (existsSync(file)) pems.push({ pem: readKeyFile(file), from: file });
  }
  for (const [i, ref] of (keys.previous ?? []).entries()) pems.push({ pem: resolveSecret(ref, `keys.previous[${i}]`), from: `keys.previous[${i}]` });
  const out: JWK[] = [];
  for (const { pem, from } of pems) {
    let jwk: JWK;
    try {
      jwk = await exportJWK(createPublicKey(createPrivateKey({ key: pem, format: 'pem' })));
    } catch {
      throw new SluiceError('key_invalid', `${from}: not a PEM private key; provide the Ed25519 or P-256 key Sluice signs with`);
    }
    out.push({ ...jwk, kid: await calculateJwkThumbprint(jwk, 'sha256') });
  }
  return { keys: out };
}

/** A JWKS document saved from /.well-known/jwks.json. */
export function readJwksFile(file: string): { keys: JWK[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const why = err instanceof SyntaxError ? 'not JSON' : ((err as NodeJS.ErrnoException).code ?? 'unreadable');
    throw new SluiceError('jwks_unreadable', `cannot read the JWKS ${file} (${why}); save it from Sluice's /.well-known/jwks.json`);
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.some((k) => k === null || typeof k !== 'object')) {
    throw new SluiceError('jwks_unreadable', `${file} is not a JWKS ({"keys": [...]}); save it from Sluice's /.well-known/jwks.json`);
  }
  return { keys: keys as JWK[] };
}

function readKeyFile(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new SluiceError('key_unreadable', `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'}); run verify as a user who can read the key directory, or pass --jwks`);
  }
}
