import type { KeyObject } from 'node:crypto';
import { errors, jwtVerify, type JWTPayload } from 'jose';
import { AuthenticationError } from '../errors.js';
import { isoTime, quoteUntrusted } from './unverified.js';

export interface JwtCheck {
  /** Exact issuer string; compared byte for byte. */
  readonly issuer: string;
  readonly audience: string;
  /** The one algorithm this token may use, already checked against configuration. */
  readonly alg: string;
  readonly clockSkewSeconds: number;
  /** Current time in epoch milliseconds. */
  readonly now: number;
}

/** Verification never tolerates more than this, whatever the caller asks for. */
const MAX_CLOCK_SKEW_SECONDS = 60;

/**
 * Verifies signature and claims against candidate keys (normally one: the
 * key with the token's kid). Only a signature mismatch moves on to the next
 * candidate; every other failure is final. jose's own errors never leave
 * here: they become AuthenticationErrors with our wording.
 */
export async function verifyJwt(token: string, keys: readonly KeyObject[], check: JwtCheck): Promise<JWTPayload> {
  const skew = Math.min(Math.max(check.clockSkewSeconds, 0), MAX_CLOCK_SKEW_SECONDS);
  for (const key of keys) {
    try {
      const { payload } = await jwtVerify(token, key, {
        issuer: check.issuer,
        audience: check.audience,
        algorithms: [check.alg],
        clockTolerance: skew,
        currentDate: new Date(check.now),
        requiredClaims: ['exp', 'sub'],
      });
      return payload;
    } catch (err) {
      if (err instanceof errors.JWSSignatureVerificationFailed) continue;
      throw explainJoseError(err, check, skew);
    }
  }
  throw new AuthenticationError(
    'signature_invalid',
    `the token signature does not verify with the keys of issuer ${check.issuer}; get a new token from that issuer`,
  );
}

function explainJoseError(err: unknown, check: JwtCheck, skew: number): AuthenticationError {
  if (err instanceof AuthenticationError) return err;
  if (err instanceof errors.JWTExpired) {
    return new AuthenticationError(
      'token_expired',
      `the token expired at ${isoTime(err.payload.exp)} (clock skew allowed: ${skew} s); get a new token`,
    );
  }
  if (err instanceof errors.JWTClaimValidationFailed) return explainClaimFailure(err, check, skew);
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new AuthenticationError('algorithm_not_allowed', `the token is not signed with ${check.alg}; get a new token from ${check.issuer}`);
  }
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid || err instanceof errors.JOSENotSupported) {
    return new AuthenticationError('token_malformed', 'the token is not a well-formed signed JWT; send an OIDC/JWT access token');
  }
  return new AuthenticationError('signature_invalid', `the token could not be verified against issuer ${check.issuer}; get a new token from that issuer`);
}

function explainClaimFailure(err: InstanceType<typeof errors.JWTClaimValidationFailed>, check: JwtCheck, skew: number): AuthenticationError {
  const { claim, reason, payload } = err;
  if (claim === 'aud') {
    const what = reason === 'missing' ? 'the token has no aud claim' : `the token audience ${quoteUntrusted(payload.aud)} does not include ${JSON.stringify(check.audience)}`;
    return new AuthenticationError('audience_mismatch', `${what}; request a token for audience ${JSON.stringify(check.audience)}`);
  }
  if (reason === 'missing') {
    return new AuthenticationError('claim_missing', `the token has no ${claim} claim; ask the issuer ${check.issuer} for a token that carries it`);
  }
  if (reason === 'invalid') {
    return new AuthenticationError('token_malformed', `the token ${claim} claim is not a number of seconds; get a new token from ${check.issuer}`);
  }
  if (claim === 'nbf') {
    return new AuthenticationError(
      'token_not_yet_valid',
      `the token is not valid before ${isoTime(payload.nbf)} (clock skew allowed: ${skew} s); check the clock of the issuing machine or wait`,
    );
  }
  if (claim === 'iss') {
    return new AuthenticationError('issuer_unknown', `the token issuer is not ${check.issuer}; get a token from a configured issuer`);
  }
  return new AuthenticationError('token_malformed', `the token ${claim} check failed; get a new token from ${check.issuer}`);
}
