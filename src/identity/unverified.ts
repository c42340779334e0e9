import { decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import { AuthenticationError } from '../errors.js';

/** Longer than any real access token (Entra ID tokens with many groups stay under 8 KiB). */
export const MAX_TOKEN_LENGTH = 16 * 1024;

/** Three base64url parts; the signature may be empty so that `alg: none` gets a precise refusal. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface UnverifiedToken {
  readonly header: ProtectedHeaderParameters & { alg: string };
  readonly payload: JWTPayload;
}

/**
 * Decodes header and payload without verifying anything. Only used to pick
 * the issuer and key; every value read here is attacker-controlled until the
 * signature has been checked.
 */
export function peekToken(token: unknown): UnverifiedToken {
  if (typeof token !== 'string' || token.length === 0) {
    throw malformed('no token was presented; send an OIDC/JWT access token as the password');
  }
  if (token.length > MAX_TOKEN_LENGTH) {
    throw malformed(`the token is longer than ${MAX_TOKEN_LENGTH} characters; send an OIDC/JWT access token`);
  }
  if (!COMPACT_JWS.test(token)) {
    throw malformed('the token is not a JWT (expected three base64url parts separated by dots); send a JWT access token (opaque tokens cannot be verified by Sluice)');
  }
  let header: ProtectedHeaderParameters;
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    payload = decodeJwt(token);
  } catch {
    throw malformed('the token header or payload is not valid base64url JSON; send an OIDC/JWT access token');
  }
  if (typeof header.alg !== 'string') throw malformed('the token header has no alg; send a signed JWT');
  if (header.kid !== undefined && typeof header.kid !== 'string') throw malformed('the token header kid is not a string; send a token from a configured issuer');
  return { header: header as UnverifiedToken['header'], payload };
}

function malformed(message: string): AuthenticationError {
  return new AuthenticationError('token_malformed', message);
}

/**
 * Quotes a value taken from a token for an error message, or says it is not
 * shown: messages reach logs and clients, so only short printable text goes in.
 */
export function quoteUntrusted(value: unknown): string {
  if (typeof value === 'string' && value.length <= 200 && /^[\x20-\x7e]*$/.test(value)) return JSON.stringify(value);
  return '(a value not shown)';
}

/** ISO time for an epoch-seconds claim, falling back to the number when it is out of Date's range. */
export function isoTime(epochSeconds: unknown): string {
  if (typeof epochSeconds !== 'number' || !Number.isFinite(epochSeconds)) return '(an invalid time)';
  const d = new Date(epochSeconds * 1000);
  return Number.isNaN(d.getTime()) ? String(epochSeconds) : d.toISOString();
}
