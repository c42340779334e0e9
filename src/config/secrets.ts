import { readFileSync } from 'node:fs';
import { SluiceError } from '../errors.js';
import { SECRET_REF } from './schema.js';

/**
 * Resolves a `${env:NAME}` / `${file:/path}` reference to its value. The
 * value lives only in memory; errors name the reference, never the value.
 */
export function resolveSecret(ref: string, path: string): string {
  const m = SECRET_REF.exec(ref);
  if (!m) throw new SluiceError('secret_ref_invalid', `${path}: expected \${env:NAME} or \${file:/path}`);
  const [, kind, name] = m;
  if (kind === 'env') {
    const v = process.env[name];
    if (v === undefined || v === '') {
      throw new SluiceError('secret_missing', `${path}: environment variable ${name} is not set; export it before starting Sluice`);
    }
    return v;
  }
  try {
    return readFileSync(name, 'utf8').replace(/\r?\n$/, '');
  } catch (err) {
    throw new SluiceError('secret_missing', `${path}: cannot read secret file ${name} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}
