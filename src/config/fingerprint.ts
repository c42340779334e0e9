import { createHash } from 'node:crypto';
import { canonicalJson } from '../audit/hash-chain.js';
import type { SluiceConfig } from './schema.js';

/**
 * SHA-256 of a configuration version, whole and of its policies alone, over
 * canonical JSON (sorted keys) of the validated config, so the same file
 * gives the same hash whatever its formatting. Secrets are references in the
 * config, never values, so nothing secret is hashed or recorded. An auditor
 * matches `policiesHash` to a commit of the policy file in git.
 */
export function configFingerprint(config: SluiceConfig): { configHash: string; policiesHash: string } {
  const sha = (v: unknown) => createHash('sha256').update(canonicalJson(v)).digest('hex');
  return { configHash: sha(config), policiesHash: sha(config.policies) };
}
