import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { SluiceError } from '../errors.js';

export const SIGNING_KEY_FILE = 'signing-ed25519.pem';
const ROOT_SECRET_FILE = 'root.secret';
const ROOT_SECRET_BYTES = 32;

/** Creates the key directory owner-only, and tightens it if it already exists. */
export function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
  } catch (err) {
    throw new SluiceError('keys_dir_unusable', `cannot create key directory ${dir} (${errCode(err)}); set keys.dir to a writable directory`);
  }
}

export function loadOrCreateRootSecret(dir: string): Buffer {
  const path = join(dir, ROOT_SECRET_FILE);
  const text = readOrCreate(path, () => `${randomBytes(ROOT_SECRET_BYTES).toString('base64url')}\n`);
  const secret = Buffer.from(text.trim(), 'base64url');
  if (secret.length !== ROOT_SECRET_BYTES) {
    throw new SluiceError('key_invalid', `${path} is not a Sluice root secret; restore it from backup (removing it invalidates every derived key)`);
  }
  return secret;
}

export function loadOrCreateSigningKey(dir: string): KeyObject {
  const path = join(dir, SIGNING_KEY_FILE);
  const pem = readOrCreate(path, () => generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
  try {
    return createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new SluiceError('key_invalid', `${path} is not a PEM private key; restore it from backup or remove it to generate a new one`);
  }
}

/**
 * Reads a key file, or creates it when absent. The new content is written to
 * a temporary file and hard-linked into place, so two processes starting on
 * the same directory agree on one key and nobody reads a half-written file.
 */
function readOrCreate(path: string, create: () => string): string {
  const existing = readPrivateFile(path);
  if (existing !== undefined) return existing;
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, create(), { mode: 0o600, flag: 'wx' });
    try {
      linkSync(tmp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  } catch (err) {
    throw new SluiceError('keys_dir_unusable', `cannot write ${path} (${errCode(err)}); check that the key directory is writable`);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // The temporary file may never have been created; nothing to clean up then.
    }
  }
  const created = readPrivateFile(path);
  if (created === undefined) throw new SluiceError('keys_dir_unusable', `${path} disappeared while Sluice created it; start again`);
  return created;
}

/** Like ssh, refuses key files that other users can read. */
function readPrivateFile(path: string): string | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SluiceError('keys_dir_unusable', `cannot read ${path} (${errCode(err)})`);
  }
  if ((mode & 0o077) !== 0) {
    throw new SluiceError('key_file_exposed', `${path} is readable by other users (mode ${(mode & 0o777).toString(8)}); run chmod 600 ${path}`);
  }
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new SluiceError('keys_dir_unusable', `cannot read ${path} (${errCode(err)})`);
  }
}

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'error';
}
