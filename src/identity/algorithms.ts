import type { KeyObject } from 'node:crypto';

/**
 * The only JWS algorithms Sluice ever verifies: asymmetric ones. `none` and
 * the HS* family are absent on purpose, so no configuration and no token
 * header can make a shared-secret or unsigned token pass.
 */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export type AsymmetricAlgorithm = (typeof ASYMMETRIC_ALGORITHMS)[number];

export function isAsymmetricAlgorithm(alg: unknown): alg is AsymmetricAlgorithm {
  return typeof alg === 'string' && (ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg);
}

const EC_CURVES: Record<string, string> = { ES256: 'prime256v1', ES384: 'secp384r1', ES512: 'secp521r1' };

/** Whether a public key can verify a signature made with this algorithm (a key never serves a foreign algorithm). */
export function keyFitsAlgorithm(key: KeyObject, alg: string): boolean {
  if (key.type !== 'public') return false;
  if (/^(RS|PS)(256|384|512)$/.test(alg)) return key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048;
  if (Object.hasOwn(EC_CURVES, alg)) return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === EC_CURVES[alg];
  if (alg === 'EdDSA') return key.asymmetricKeyType === 'ed25519';
  return false;
}
